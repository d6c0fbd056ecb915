"""Tests of the OCI config.json that isobench.runtimes.oci.build_config writes for a request."""

from __future__ import annotations

from typing import Any

import pytest

from isobench.model import Request
from isobench.runtimes.oci import (
    DEFAULT_CAPABILITIES,
    RUNC,
    RUNSC,
    USERNS_HOST_ID,
    USERNS_SIZE,
    OciAdapter,
    build_config,
)

ARGV = ["/isobench/probe.sh"]


def config_for(request: Request, env: dict[str, str] | None = None) -> dict[str, Any]:
    return build_config(request, ARGV, env or {})


def namespace_types(request: Request) -> list[str]:
    return [namespace["type"] for namespace in config_for(request)["linux"]["namespaces"]]


def capabilities(request: Request) -> list[str]:
    return config_for(request)["process"]["capabilities"]["bounding"]


def mount_points(request: Request) -> list[str]:
    return [mount["destination"] for mount in config_for(request)["mounts"]]


# -- namespaces --------------------------------------------------------------


def test_default_namespaces() -> None:
    assert namespace_types(Request()) == ["mount", "pid", "network", "ipc", "uts"]


@pytest.mark.parametrize(
    ("field", "value", "namespace"),
    [
        ("pid", "host", "pid"),
        ("network", "host", "network"),
        ("ipc", "host", "ipc"),
        ("uts", "host", "uts"),
    ],
)
def test_host_namespace_absent(field: str, value: str, namespace: str) -> None:
    types = namespace_types(Request.model_validate({field: value}))

    assert namespace not in types
    assert "mount" in types


@pytest.mark.parametrize("network", ["none", "default"])
def test_network_namespace_private(network: str) -> None:
    assert "network" in namespace_types(Request(network=network))


def test_cgroupns_private() -> None:
    assert "cgroup" in namespace_types(Request(cgroupns="private"))


@pytest.mark.parametrize("cgroupns", [None, "host"])
def test_cgroupns_not_private(cgroupns: str | None) -> None:
    assert "cgroup" not in namespace_types(Request(cgroupns=cgroupns))


def test_userns_private_namespace() -> None:
    assert "user" in namespace_types(Request(userns="private"))


def test_userns_private_mappings() -> None:
    linux = config_for(Request(userns="private"))["linux"]

    expected = [{"containerID": 0, "hostID": USERNS_HOST_ID, "size": USERNS_SIZE}]
    assert linux["uidMappings"] == expected
    assert linux["gidMappings"] == expected


def test_userns_host_no_mappings() -> None:
    linux = config_for(Request())["linux"]

    assert "user" not in namespace_types(Request())
    assert "uidMappings" not in linux
    assert "gidMappings" not in linux


def test_userns_private_binds_sys() -> None:
    mounts = config_for(Request(userns="private"))["mounts"]

    (sys_mount,) = [mount for mount in mounts if mount["destination"] == "/sys"]
    assert sys_mount["type"] == "none"
    assert "rbind" in sys_mount["options"]


def test_userns_private_no_mqueue() -> None:
    points = mount_points(Request(userns="private"))

    assert "/dev/mqueue" not in points
    assert "/sys/fs/cgroup" not in points


def test_default_mounts() -> None:
    points = mount_points(Request())

    assert points[0] == "/proc"
    assert {"/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys", "/sys/fs/cgroup"} <= set(points)


# -- hostname ----------------------------------------------------------------


def test_hostname_default() -> None:
    assert config_for(Request())["hostname"] == "isobench"


def test_hostname_requested() -> None:
    assert config_for(Request(hostname="isobench-uts"))["hostname"] == "isobench-uts"


def test_hostname_absent_uts_host() -> None:
    assert "hostname" not in config_for(Request(uts="host"))


# -- capabilities ------------------------------------------------------------


def test_capabilities_default() -> None:
    assert capabilities(Request()) == sorted(DEFAULT_CAPABILITIES)


def test_capability_sets_equal() -> None:
    caps = config_for(Request(cap_add=("SYS_ADMIN",)))["process"]["capabilities"]

    assert caps["effective"] == caps["bounding"]
    assert caps["permitted"] == caps["bounding"]


@pytest.mark.parametrize("name", ["ALL", "all", "CAP_ALL"])
def test_cap_drop_all(name: str) -> None:
    assert capabilities(Request(cap_drop=(name,))) == []


def test_cap_drop_all_then_add() -> None:
    caps = capabilities(Request(cap_drop=("ALL",), cap_add=("NET_ADMIN",)))

    assert caps == ["CAP_NET_ADMIN"]


def test_cap_drop_one() -> None:
    caps = capabilities(Request(cap_drop=("net_raw",)))

    assert "CAP_NET_RAW" not in caps
    assert "CAP_CHOWN" in caps


def test_cap_add_prefixed() -> None:
    caps = capabilities(Request(cap_add=("CAP_SYS_ADMIN",)))

    assert "CAP_SYS_ADMIN" in caps
    assert len(caps) == len(DEFAULT_CAPABILITIES) + 1


def test_cap_add_lower_case() -> None:
    assert "CAP_SYS_ADMIN" in capabilities(Request(cap_add=("sys_admin",)))


def test_cap_add_all() -> None:
    # docker run accepts --cap-add ALL, which grants every capability.
    caps = capabilities(Request(cap_add=("ALL",)))

    assert "CAP_ALL" not in caps
    assert "CAP_SYS_ADMIN" in caps


# -- process -----------------------------------------------------------------


def test_user_default_root() -> None:
    assert config_for(Request())["process"]["user"] == {"uid": 0, "gid": 0}


def test_user_uid_gid() -> None:
    assert config_for(Request(user="1000:2000"))["process"]["user"] == {"uid": 1000, "gid": 2000}


def test_user_uid_only() -> None:
    assert config_for(Request(user="1000"))["process"]["user"]["uid"] == 1000


def test_env_order() -> None:
    request = Request(env=(("A", "1"), ("B", "two words")))

    env = config_for(request, {"ISOBENCH_PROBE_HOLD": "1"})["process"]["env"]

    assert env == ["PATH=/bin", "TERM=xterm", "A=1", "B=two words", "ISOBENCH_PROBE_HOLD=1"]


def test_args_copied() -> None:
    config = build_config(Request(), ("sh", "-c", "echo x"), {})

    assert config["process"]["args"] == ["sh", "-c", "echo x"]


def test_no_new_privileges() -> None:
    assert config_for(Request())["process"]["noNewPrivileges"] is True


def test_rootfs_path() -> None:
    assert build_config(Request(), ARGV, {}, rootfs="root")["root"] == {
        "path": "root",
        "readonly": False,
    }


# -- what each OCI runtime cannot express ------------------------------------


def test_runc_default_network() -> None:
    reason = OciAdapter(RUNC).unsupported(Request(network="default"))

    assert reason is not None
    assert "runc" in reason


@pytest.mark.parametrize(
    "request_",
    [Request(), Request(network="host"), Request(userns="private"), Request(pid="host")],
    ids=["defaults", "network-host", "userns-private", "pid-host"],
)
def test_runc_supported(request_: Request) -> None:
    assert OciAdapter(RUNC).unsupported(request_) is None


@pytest.mark.parametrize(
    "request_",
    [Request(network="default"), Request(network="host"), Request(userns="private")],
    ids=["network-default", "network-host", "userns-private"],
)
def test_runsc_unsupported(request_: Request) -> None:
    assert OciAdapter(RUNSC).unsupported(request_) is not None


@pytest.mark.parametrize(
    "request_",
    [Request(), Request(cgroupns="private"), Request(ipc="host")],
    ids=["defaults", "cgroupns-private", "ipc-host"],
)
def test_runsc_supported(request_: Request) -> None:
    assert OciAdapter(RUNSC).unsupported(request_) is None


def test_adapter_names() -> None:
    assert OciAdapter(RUNC).name == "runc"
    assert OciAdapter(RUNSC).name == "runsc"


def test_runsc_no_network_flag() -> None:
    assert "--network=none" in RUNSC.global_flags
