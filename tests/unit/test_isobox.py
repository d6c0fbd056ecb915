"""isobox's parsing, without starting containers: config checks, mounts, cgroups, signals."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from isobench.model import Request
from isobench.runtimes.oci import build_config
from isobox import kernel
from isobox.cgroups import Cgroup, hierarchies
from isobox.cli import main
from isobox.container import (
    ContainerError,
    _inside,
    _mount_options,
    load_config,
    parse_signal,
    read_state,
)

MOUNTINFO_V1 = """\
25 30 0:22 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
26 25 0:23 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw
27 25 0:24 / /sys/fs/cgroup/systemd rw,nosuid shared:11 - cgroup cgroup rw,xattr,name=systemd
30 25 0:27 / /sys/fs/cgroup/memory rw,nosuid,nodev shared:14 - cgroup cgroup rw,memory
31 25 0:28 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid shared:15 - cgroup cgroup rw,cpu,cpuacct
"""
MOUNTINFO_V2 = "25 30 0:22 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n"


def _bundle(tmp_path: Path, config: dict[str, object]) -> str:
    (tmp_path / "config.json").write_text(json.dumps(config))
    return str(tmp_path)


def test_isobench_config_accepted(tmp_path: Path) -> None:
    request = Request(memory=64 << 20, pids_limit=10, cpus=0.5, userns="private", read_only=True)
    config = build_config(request, ["/bin/true"], {"A": "1"})
    assert load_config(_bundle(tmp_path, config))["process"]["args"] == ["/bin/true"]


@pytest.mark.parametrize(
    ("section", "key", "value", "message"),
    [
        ("linux", "seccomp", {"defaultAction": "SCMP_ACT_ERRNO"}, "does not load seccomp"),
        ("process", "apparmorProfile", "docker-default", "does not apply AppArmor"),
        ("linux", "sysctl", {"net.ipv4.ip_forward": "1"}, "does not set sysctls"),
        ("linux", "personality", {"domain": "LINUX32"}, "does not implement"),
        ("process", "terminal", True, "asks for a terminal"),
    ],
)
def test_unsupported_config_rejected(
    tmp_path: Path, section: str, key: str, value: object, message: str
) -> None:
    config = build_config(Request(), ["/bin/true"], {})
    config[section][key] = value
    with pytest.raises(ContainerError, match=message):
        load_config(_bundle(tmp_path, config))


def test_unapplied_resource_rejected(tmp_path: Path) -> None:
    config = build_config(Request(memory=64 << 20), ["/bin/true"], {})
    config["linux"]["resources"]["memory"]["swappiness"] = 0
    with pytest.raises(ContainerError, match=r"linux\.resources\.memory\.swappiness"):
        load_config(_bundle(tmp_path, config))


def test_namespace_path_rejected(tmp_path: Path) -> None:
    config = build_config(Request(), ["/bin/true"], {})
    config["linux"]["namespaces"].append({"type": "ipc", "path": "/proc/1/ns/ipc"})
    with pytest.raises(ContainerError, match="namespace path"):
        load_config(_bundle(tmp_path, config))


def test_missing_config(tmp_path: Path) -> None:
    with pytest.raises(ContainerError, match=r"config\.json not found"):
        load_config(str(tmp_path))


def test_mount_options_split() -> None:
    flags, data = _mount_options(["nosuid", "noexec", "mode=755", "size=65536k", "rslave", "ro"])
    assert flags == kernel.MS_NOSUID | kernel.MS_NOEXEC | kernel.MS_RDONLY
    assert data == ["mode=755", "size=65536k"]
    flags, _ = _mount_options(["rbind", "ro", "rw"])
    assert flags == kernel.MS_BIND | kernel.MS_REC


def test_inside_keeps_symlinks_in_root(tmp_path: Path) -> None:
    root = tmp_path / "rootfs"
    (root / "etc").mkdir(parents=True)
    (root / "escape").symlink_to("/etc")
    (root / "up").symlink_to("../../..")
    assert _inside(str(root), "/escape/x") == str(root / "etc" / "x")
    assert _inside(str(root), "/up/x").startswith(str(root))
    assert _inside(str(root), "/plain/dir") == str(root / "plain" / "dir")


def test_hierarchies_v1_and_v2() -> None:
    found = hierarchies(MOUNTINFO_V1)
    assert found["memory"] == "/sys/fs/cgroup/memory"
    assert found["cpu,cpuacct"] == "/sys/fs/cgroup/cpu,cpuacct"
    assert found[""] == "/sys/fs/cgroup/unified"
    assert found["name=systemd"] == "/sys/fs/cgroup/systemd"
    assert hierarchies(MOUNTINFO_V2) == {"": "/sys/fs/cgroup"}


def test_cgroup_directories() -> None:
    hybrid = Cgroup("/box-1", MOUNTINFO_V1)
    assert "/sys/fs/cgroup/memory/box-1" in hybrid.directories()
    assert not hybrid.unified
    unified = Cgroup("box-1", MOUNTINFO_V2)
    assert unified.directories() == ["/sys/fs/cgroup/box-1"]
    assert unified.unified


@pytest.mark.parametrize(
    ("text", "number"),
    [("TERM", signal.SIGTERM), ("SIGKILL", signal.SIGKILL), ("9", 9), ("hup", signal.SIGHUP)],
)
def test_signal_names(text: str, number: int) -> None:
    assert parse_signal(text) == number


def test_unknown_signal() -> None:
    with pytest.raises(ContainerError, match="unknown signal 'NOPE'"):
        parse_signal("NOPE")


def test_state_of_missing_container(tmp_path: Path) -> None:
    with pytest.raises(ContainerError, match="container x does not exist"):
        read_state(str(tmp_path), "x")


@pytest.mark.parametrize("name", ["", "a/b", "..", "."])
def test_invalid_container_id(tmp_path: Path, name: str) -> None:
    with pytest.raises(ContainerError, match="invalid container id"):
        read_state(str(tmp_path), name)


def test_cli_error_exit_one(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["--root", str(tmp_path), "state", "nosuch"])
    assert status == 1
    assert "isobox: container nosuch does not exist" in capsys.readouterr().err


def test_cli_list_empty(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--root", str(tmp_path / "none"), "list", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == []
