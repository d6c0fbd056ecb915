"""Capability masks and read-only mounts, as derived from the probe's raw facts."""

from __future__ import annotations

from isobench.probe.derive import decode_caps, derive

DOCKER_DEFAULT_MASK = "00000000a80425fb"


def test_decode_docker_default() -> None:
    names = decode_caps(DOCKER_DEFAULT_MASK)

    assert "CAP_NET_BIND_SERVICE" in names
    assert "CAP_SYS_ADMIN" not in names
    assert len(names) == 14


def test_decode_empty_mask() -> None:
    assert decode_caps("0000000000000000") == []


def test_decode_net_bind_only() -> None:
    assert decode_caps("0000000000000400") == ["CAP_NET_BIND_SERVICE"]


def test_decode_unknown_bits_named() -> None:
    names = decode_caps(f"{1 << 50:016x}")

    assert names == [f"unknown bits {1 << 50:#x}"]


def test_derive_cap_sets() -> None:
    facts = derive({"status.CapEff": "0000000000000400", "status.CapBnd": DOCKER_DEFAULT_MASK})

    assert facts["caps.eff"] == ["CAP_NET_BIND_SERVICE"]
    assert "CAP_KILL" in facts["caps.bnd"]


MOUNTINFO = [
    "20 1 0:20 / / rw,relatime - overlay overlay rw",
    "21 20 0:21 / /proc rw,nosuid - proc proc rw",
    "22 21 0:21 /sys /proc/sys ro,nosuid - proc proc rw",
    "23 21 0:21 /irq /proc/irq ro,nosuid - proc proc rw",
]


def test_readonly_mount_found() -> None:
    facts = derive({"mountinfo": MOUNTINFO, "path.exists": ["/proc/sys", "/proc/irq"]})

    assert facts["readonly.present"] == ["/proc/sys", "/proc/irq"]
    assert facts["readonly.writable"] == []


def test_writable_mount_found() -> None:
    facts = derive({"mountinfo": MOUNTINFO, "path.exists": ["/proc/bus"]})

    assert facts["readonly.writable"] == ["/proc/bus"]


def test_later_mount_on_top_wins() -> None:
    mounts = [*MOUNTINFO, "24 21 0:21 /sys /proc/sys rw,nosuid - proc proc rw"]

    facts = derive({"mountinfo": mounts, "path.exists": ["/proc/sys"]})

    assert facts["readonly.writable"] == ["/proc/sys"]
