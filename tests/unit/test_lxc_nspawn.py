"""Tests of the lxc and systemd-nspawn rows: the LXC config and the nspawn options written
for each request field, the cgroup files of the limits, and the reasons of unsupported()."""

from __future__ import annotations

from pathlib import Path

import pytest

from isobench import runtimes
from isobench.errors import HarnessError
from isobench.model import CAPABILITIES, Request
from isobench.runtimes import lxc, nspawn, sandbox
from isobench.runtimes.lxc import LxcAdapter, build_config
from isobench.runtimes.nspawn import NspawnAdapter, build_flags, nspawn_environment

ROOTFS = Path("/bundles/c1/rootfs")
V1 = {name: 1 for name in ("memory", "pids", "cpu", "cpuacct", "cpuset", "blkio", "devices")}
V2 = {name: 2 for name in ("memory", "pids", "cpu", "cpuset", "io")}
HOST_CAPS = list(CAPABILITIES)

HYBRID_MOUNTINFO = """\
30 25 0:26 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
31 25 0:27 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
32 25 0:28 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
33 25 0:29 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
"""


def config(request: Request, env: dict[str, str] | None = None, **kwargs: object) -> list[str]:
    options: dict[str, object] = {"versions": V1, "host_caps": HOST_CAPS, **kwargs}
    return build_config(request, ROOTFS, env or {}, **options)  # type: ignore[arg-type]


def values(lines: list[str], key: str) -> list[str]:
    return [line.split(" = ", 1)[1] for line in lines if line.split(" = ", 1)[0] == key]


# -- the LXC config ----------------------------------------------------------


def test_lxc_default_config() -> None:
    lines = config(Request())

    assert values(lines, "lxc.rootfs.path") == [f"dir:{ROOTFS}"]
    assert values(lines, "lxc.uts.name") == ["isobench"]
    assert values(lines, "lxc.mount.auto") == ["proc:mixed sys:ro cgroup:ro:force"]
    assert values(lines, "lxc.namespace.keep") == ["user"]
    assert values(lines, "lxc.net.0.type") == ["empty"]
    assert values(lines, "lxc.seccomp.profile") == [str(lxc.SECCOMP_PROFILE)]
    assert "lxc.rootfs.options = ro" not in lines
    assert not values(lines, "lxc.idmap")


def test_lxc_default_capabilities_drop_common_conf_set() -> None:
    kept = values(config(Request()), "lxc.cap.keep")[0].split()

    assert "sys_admin" in kept
    assert "chown" in kept
    for name in lxc.DEFAULT_CAP_DROP:
        assert name.removeprefix("CAP_").lower() not in kept


def test_lxc_default_device_rules() -> None:
    lines = config(Request())

    assert values(lines, "lxc.cgroup.devices.deny") == ["a"]
    assert values(lines, "lxc.cgroup.devices.allow") == list(lxc.DEFAULT_DEVICE_RULES)


def test_lxc_device_rules_on_v2() -> None:
    lines = config(Request(), versions=V2)

    assert values(lines, "lxc.cgroup2.devices.deny") == ["a"]
    assert not values(lines, "lxc.cgroup.devices.deny")


@pytest.mark.parametrize(
    ("field", "namespace"),
    [("network", "net"), ("pid", "pid"), ("ipc", "ipc"), ("uts", "uts"), ("cgroupns", "cgroup")],
)
def test_lxc_host_namespace_kept(field: str, namespace: str) -> None:
    lines = config(Request.model_validate({field: "host"}))

    assert namespace in values(lines, "lxc.namespace.keep")[0].split()
    assert "user" in values(lines, "lxc.namespace.keep")[0].split()


def test_lxc_host_network_has_no_net_entry() -> None:
    assert not values(config(Request(network="host")), "lxc.net.0.type")


def test_lxc_host_uts_sets_no_hostname() -> None:
    assert not values(config(Request(uts="host", hostname="box")), "lxc.uts.name")


def test_lxc_default_network_uses_bridge() -> None:
    lines = config(Request(network="default"), bridge="lxcbr0")

    assert values(lines, "lxc.net.0.type") == ["veth"]
    assert values(lines, "lxc.net.0.link") == ["lxcbr0"]


def test_lxc_default_network_without_bridge_raises() -> None:
    with pytest.raises(HarnessError, match="lxcbr0"):
        config(Request(network="default"))


def test_lxc_private_userns_maps_ids() -> None:
    lines = config(Request(userns="private"))

    span = f"0 {sandbox.USERNS_HOST_ID} {sandbox.USERNS_SIZE}"
    assert values(lines, "lxc.idmap") == [f"u {span}", f"g {span}"]
    assert not values(lines, "lxc.namespace.keep")


def test_lxc_hostname_env_workdir() -> None:
    request = Request(hostname="box", env=(("A", "b c"),), workdir="/tmp")
    lines = config(request, {"ISOBENCH_PROBE_HOLD": "1"})

    assert values(lines, "lxc.uts.name") == ["box"]
    assert values(lines, "lxc.environment") == ["A=b c", "ISOBENCH_PROBE_HOLD=1"]
    assert values(lines, "lxc.init.cwd") == ["/tmp"]


def test_lxc_env_with_newline_raises() -> None:
    with pytest.raises(HarnessError, match="newline"):
        config(Request(env=(("A", "b\nlxc.cap.keep = all"),)))


def test_lxc_user_with_group() -> None:
    lines = config(Request(user="1000:100"))

    assert values(lines, "lxc.init.uid") == ["1000"]
    assert values(lines, "lxc.init.gid") == ["100"]


def test_lxc_user_group_from_passwd(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "passwd").write_text("user:x:1000:1001:user:/home/user:/bin/sh\n")

    lines = build_config(Request(user="1000"), tmp_path, {}, versions=V1, host_caps=HOST_CAPS)

    assert values(lines, "lxc.init.gid") == ["1001"]


def test_lxc_cap_drop_and_add() -> None:
    lines = config(Request(cap_drop=("ALL",), cap_add=("NET_BIND_SERVICE",)))

    assert values(lines, "lxc.cap.keep") == ["net_bind_service"]


def test_lxc_cap_drop_all_keeps_none() -> None:
    assert values(config(Request(cap_drop=("ALL",))), "lxc.cap.keep") == ["none"]


def test_lxc_cap_add_restores_dropped_default() -> None:
    kept = values(config(Request(cap_add=("SYS_TIME",))), "lxc.cap.keep")[0].split()

    assert "sys_time" in kept


def test_lxc_seccomp_unconfined_has_no_profile() -> None:
    assert not values(config(Request(seccomp="unconfined")), "lxc.seccomp.profile")


@pytest.mark.parametrize(("value", "expected"), [(True, "1"), (False, "0")])
def test_lxc_no_new_privs(value: bool, expected: str) -> None:
    assert values(config(Request(no_new_privs=value)), "lxc.no_new_privs") == [expected]


def test_lxc_privileged() -> None:
    lines = config(Request(privileged=True))

    assert values(lines, "lxc.mount.auto") == ["proc:rw sys:rw cgroup:rw:force"]
    assert values(lines, "lxc.cgroup.devices.allow") == ["a"]
    assert not values(lines, "lxc.cap.keep")
    assert not values(lines, "lxc.seccomp.profile")


def test_lxc_masked_paths_unconfined() -> None:
    lines = config(Request(masked_paths="unconfined"))

    assert values(lines, "lxc.mount.auto") == ["proc:rw sys:rw cgroup:ro:force"]


def test_lxc_read_only_root() -> None:
    assert values(config(Request(read_only=True)), "lxc.rootfs.options") == ["ro"]


def test_lxc_mounts_and_tmpfs(tmp_path: Path) -> None:
    request = Request.model_validate(
        {
            "mounts": [
                {"source": str(tmp_path), "target": "/data dir", "read_only": True},
                {"source": "/etc/hostname", "target": "/etc/host-name"},
            ],
            "tmpfs": [{"target": "/scratch", "size": "8MiB"}],
        }
    )
    entries = values(config(request), "lxc.mount.entry")

    assert entries == [
        f"{tmp_path} data\\040dir none bind,ro,create=dir 0 0",
        "/etc/hostname etc/host-name none bind,create=file 0 0",
        "tmpfs scratch tmpfs nosuid,nodev,size=8388608,create=dir 0 0",
    ]


def test_lxc_device_is_bound_and_allowed() -> None:
    lines = config(Request(devices=("/dev/null",)))

    assert "c 1:3 rwm" in values(lines, "lxc.cgroup.devices.allow")
    assert values(lines, "lxc.mount.entry") == ["/dev/null dev/null none bind,create=file 0 0"]


def test_lxc_ulimits() -> None:
    request = Request.model_validate({"ulimits": [{"name": "nofile", "soft": 100, "hard": 200}]})

    assert values(config(request), "lxc.prlimit.nofile") == ["100:200"]


def test_lxc_limits_on_v1() -> None:
    request = Request(memory="64MiB", memory_swap="128MiB", pids_limit=20, cpus=0.5)
    lines = config(request, versions=V1)

    assert values(lines, "lxc.cgroup.memory.limit_in_bytes") == ["67108864"]
    assert values(lines, "lxc.cgroup.memory.memsw.limit_in_bytes") == ["134217728"]
    assert values(lines, "lxc.cgroup.pids.max") == ["20"]
    assert values(lines, "lxc.cgroup.cpu.cfs_period_us") == ["100000"]
    assert values(lines, "lxc.cgroup.cpu.cfs_quota_us") == ["50000"]


def test_lxc_limits_on_v2() -> None:
    request = Request(memory="64MiB", memory_swap="128MiB", pids_limit=20, cpus=0.5)
    lines = config(request, versions=V2)

    assert values(lines, "lxc.cgroup2.memory.max") == ["67108864"]
    assert values(lines, "lxc.cgroup2.memory.swap.max") == ["67108864"]
    assert values(lines, "lxc.cgroup2.pids.max") == ["20"]
    assert values(lines, "lxc.cgroup2.cpu.max") == ["50000 100000"]
    assert not any(line.startswith("lxc.cgroup.") for line in lines)


# -- cgroup files ------------------------------------------------------------


def test_cgroup_settings_cpuset_and_shares() -> None:
    request = Request(cpuset_cpus="0", cpu_shares=512)

    v1 = sandbox.cgroup_settings(request, V1)
    v2 = sandbox.cgroup_settings(request, V2)

    assert [(s.file, s.value) for s in v1] == [("cpu.shares", "512"), ("cpuset.cpus", "0")]
    assert [(s.file, s.value) for s in v2] == [("cpu.weight", "20"), ("cpuset.cpus", "0")]


def test_cgroup_settings_bandwidth() -> None:
    request = Request(device_write_bps="1MiB", device_read_bps="2MiB")
    device = ("/dev/vda", 254, 0)

    v1 = sandbox.cgroup_settings(request, V1, device)
    v2 = sandbox.cgroup_settings(request, V2, device)

    assert [(s.file, s.value) for s in v1] == [
        ("blkio.throttle.write_bps_device", "254:0 1048576"),
        ("blkio.throttle.read_bps_device", "254:0 2097152"),
    ]
    assert [(s.file, s.value) for s in v2] == [("io.max", "254:0 wbps=1048576 rbps=2097152")]


def test_cgroup_settings_missing_controller_raises() -> None:
    with pytest.raises(HarnessError, match="pids controller"):
        sandbox.cgroup_settings(Request(pids_limit=5), {"memory": 1})


def test_controller_versions_of_hybrid_host(tmp_path: Path) -> None:
    (tmp_path / "cgroup.controllers").write_text("hugetlb\n")

    versions = sandbox.controller_versions(HYBRID_MOUNTINFO, root=tmp_path)

    assert versions == {"memory": 1, "pids": 1, "name=systemd": 1, "hugetlb": 2}


def test_limits_problem_names_missing_controller() -> None:
    reason = sandbox.limits_problem(Request(cpus=0.5), {"memory": 1})

    assert reason == "the host mounts no cgroup hierarchy with the cpu controller"


def test_limits_problem_swap_without_memory_on_v2() -> None:
    reason = sandbox.limits_problem(Request(memory_swap="64MiB"), V2)

    assert reason is not None
    assert "memory.swap.max" in reason


def test_limits_problem_swap_accounting_off(tmp_path: Path) -> None:
    reason = sandbox.limits_problem(
        Request(memory="32MiB", memory_swap="64MiB"), V1, swap_file=tmp_path / "absent"
    )

    assert reason is not None
    assert "swapaccount=1" in reason


def test_subid_problem(tmp_path: Path) -> None:
    (tmp_path / "subuid").write_text("root:100000:65536\n")
    (tmp_path / "subgid").write_text("someone:100000:65536\n")

    reason = sandbox.subid_problem(tmp_path)

    assert reason is not None
    assert "subgid" in reason
    (tmp_path / "subgid").write_text("root:0:1000000000\n")
    assert sandbox.subid_problem(tmp_path) is None


def test_make_targets_skips_symlinked_path(tmp_path: Path) -> None:
    rootfs = tmp_path / "rootfs"
    outside = tmp_path / "outside"
    rootfs.mkdir()
    outside.mkdir()
    (rootfs / "link").symlink_to(outside)
    request = Request.model_validate(
        {"tmpfs": [{"target": "/link/made", "size": 1024}, {"target": "/scratch", "size": 1024}]}
    )

    sandbox.make_targets(rootfs, request)

    assert not (outside / "made").exists()
    assert (rootfs / "scratch").is_dir()


# -- nspawn options ----------------------------------------------------------


def test_nspawn_default_flags() -> None:
    assert build_flags(Request(), {}) == ["--private-network"]


@pytest.mark.parametrize("network", ["host", "default"])
def test_nspawn_shares_host_network(network: str) -> None:
    assert "--private-network" not in build_flags(Request(network=network), {})


def test_nspawn_fields() -> None:
    request = Request.model_validate(
        {
            "hostname": "box",
            "workdir": "/tmp",
            "read_only": True,
            "init": True,
            "userns": "private",
            "env": [["A", "b"]],
            "no_new_privs": True,
            "ulimits": [{"name": "nofile", "soft": 100, "hard": 200}],
            "mounts": [{"source": "/srv/a:b", "target": "/data", "read_only": True}],
            "tmpfs": [{"target": "/scratch", "size": "1MiB"}],
            "devices": ["/dev/fuse"],
        }
    )

    flags = build_flags(request, {"ISOBENCH_PROBE_HOLD": "1"})

    assert flags == [
        "--private-network",
        "--hostname=box",
        "--as-pid2",
        "--chdir=/tmp",
        "--read-only",
        f"--private-users={sandbox.USERNS_HOST_ID}:{sandbox.USERNS_SIZE}",
        "--setenv=A=b",
        "--setenv=ISOBENCH_PROBE_HOLD=1",
        "--no-new-privileges=yes",
        "--bind-ro=/srv/a\\:b:/data",
        "--tmpfs=/scratch:nosuid,nodev,size=1048576",
        "--bind=/dev/fuse",
        "--rlimit=RLIMIT_NOFILE=100:200",
    ]


def test_nspawn_capabilities() -> None:
    flags = build_flags(Request(cap_add=("NET_ADMIN",), cap_drop=("chown", "NET_ADMIN")), {})

    assert "--capability=CAP_NET_ADMIN" in flags
    assert "--drop-capability=CAP_CHOWN" in flags
    assert "--drop-capability=CAP_NET_ADMIN" not in flags


def test_nspawn_drop_all() -> None:
    assert "--drop-capability=all" in build_flags(Request(cap_drop=("ALL",)), {})


def test_nspawn_drop_all_but_added() -> None:
    flags = build_flags(Request(cap_drop=("ALL",), cap_add=("NET_BIND_SERVICE",)), {})

    assert "--capability=CAP_NET_BIND_SERVICE" in flags
    assert "--drop-capability=CAP_CHOWN" in flags
    assert "--drop-capability=CAP_NET_BIND_SERVICE" not in flags
    assert "--drop-capability=all" not in flags


def test_nspawn_add_all() -> None:
    flags = build_flags(Request(cap_add=("ALL",), cap_drop=("CHOWN",)), {})

    assert flags == ["--private-network", "--capability=all"]


def test_nspawn_seccomp_unconfined_environment() -> None:
    environment = nspawn_environment(Request(seccomp="unconfined"))

    assert environment is not None
    assert environment["SYSTEMD_SECCOMP"] == "0"
    assert nspawn_environment(Request()) is None


# -- unsupported() -----------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "words"),
    [
        ({"user": "1000"}, "getent"),
        ({"pid": "host"}, "PID namespace"),
        ({"ipc": "host"}, "IPC namespace"),
        ({"uts": "host"}, "UTS namespace"),
        ({"cgroupns": "host"}, "cgroup namespace"),
        ({"privileged": True}, "privileged"),
        ({"masked_paths": "unconfined"}, "read-only /proc"),
        ({"devices": ["/dev/isobench-absent"]}, "does not exist"),
    ],
)
def test_nspawn_unsupported_reasons(values: dict[str, object], words: str) -> None:
    reason = NspawnAdapter().unsupported(Request.model_validate(values))

    assert reason is not None
    assert words in reason


@pytest.mark.parametrize(
    "values",
    [
        {},
        {"network": "default"},
        {"network": "host"},
        {"userns": "private"},
        {"init": True},
        {"init": False},
        {"seccomp": "unconfined"},
        {"cap_drop": ["ALL"]},
        {"read_only": True},
    ],
)
def test_nspawn_expresses(values: dict[str, object]) -> None:
    assert NspawnAdapter().unsupported(Request.model_validate(values)) is None


def test_lxc_unsupported_init_false() -> None:
    reason = LxcAdapter().unsupported(Request(init=False))

    assert reason is not None
    assert "lxc-init" in reason


def test_lxc_unsupported_cap_for_non_root_user() -> None:
    reason = LxcAdapter().unsupported(Request(user="1000", cap_add=("NET_BIND_SERVICE",)))

    assert reason is not None
    assert "ambient" in reason
    assert LxcAdapter().unsupported(Request(user="0", cap_add=("NET_BIND_SERVICE",))) is None


def test_lxc_unsupported_env_newline() -> None:
    reason = LxcAdapter().unsupported(Request(env=(("A", "b\nc"),)))

    assert reason is not None
    assert "newline" in reason


def test_lxc_unsupported_default_network_without_bridge(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lxc, "BRIDGE", "isobench-absent0")

    reason = LxcAdapter().unsupported(Request(network="default"))

    assert reason is not None
    assert "isobench-absent0" in reason


def test_lxc_unsupported_userns_without_subids(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sandbox, "subid_problem", lambda: "no subuid range")

    assert LxcAdapter().unsupported(Request(userns="private")) == "no subuid range"


@pytest.mark.parametrize(
    "values",
    [
        {},
        {"network": "host"},
        {"pid": "host"},
        {"ipc": "host"},
        {"uts": "host"},
        {"cgroupns": "host"},
        {"init": True},
        {"privileged": True},
        {"user": "1000"},
    ],
)
def test_lxc_expresses(values: dict[str, object]) -> None:
    assert LxcAdapter().unsupported(Request.model_validate(values)) is None


# -- failures of the tools ---------------------------------------------------


def test_lxc_runtime_failure() -> None:
    stderr = (
        "lxc-execute: c1: ../src/lxc/confile.c: set_config_unsupported_key: 164 Invalid "
        'argument - Unsupported config key "lxc.bogus"\n'
        "lxc-execute: c1: ../src/lxc/tools/lxc_execute.c: main: 167 Failed to load rcfile\n"
    )

    reason = LxcAdapter().runtime_failure(1, stderr)

    assert reason is not None
    assert "Unsupported config key" in reason
    assert "Failed to load rcfile" in reason


def test_lxc_command_status_is_not_failure() -> None:
    noise = (
        "lxc-execute: c1: ../src/lxc/confile.c: get_config_unsupported_key: 170 Invalid "
        'argument - Unsupported config key "lxc.seccomp"\n'
    )

    assert LxcAdapter().runtime_failure(3, noise) is None
    assert LxcAdapter().runtime_failure(0, "") is None


def test_nspawn_runtime_failure() -> None:
    stderr = "Failed to resolve user 1000.\nChild died too early.\n"

    reason = NspawnAdapter().runtime_failure(1, stderr)

    assert reason is not None
    assert "Failed to resolve user 1000." in reason


def test_nspawn_launcher_failure() -> None:
    stderr = f"{nspawn.LAUNCHER_PREFIX}joining the cgroup /sys/fs/cgroup/x failed: No such file"

    reason = NspawnAdapter().runtime_failure(nspawn.LAUNCHER_FAILURE, stderr)

    assert reason == "joining the cgroup /sys/fs/cgroup/x failed: No such file"


def test_nspawn_command_status_is_not_failure() -> None:
    assert NspawnAdapter().runtime_failure(1, "sh: can't open x\n") is None
    assert NspawnAdapter().runtime_failure(3, "Failed to do what the command does\n") is None


def test_launcher_without_command_fails() -> None:
    assert nspawn.main(["enter", "/sys/fs/cgroup/x"]) == nspawn.LAUNCHER_FAILURE


def test_launcher_reports_missing_cgroup(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = nspawn.main(["enter", str(tmp_path / "absent"), "--", "true"])

    assert status == nspawn.LAUNCHER_FAILURE
    assert "joining the cgroup" in capsys.readouterr().err


# -- registry ----------------------------------------------------------------


def test_rows_registered_before_host() -> None:
    names = list(runtimes.BUILTIN)

    assert names.index("lxc") < names.index("host")
    assert names.index("systemd-nspawn") == names.index("host") - 1
    assert runtimes.get("lxc").family == "sandbox"
    assert runtimes.get("systemd-nspawn").family == "sandbox"


def test_missing_binary_is_not_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lxc.shutil, "which", lambda name: None)
    monkeypatch.setattr(nspawn.shutil, "which", lambda name: None)

    for adapter in (LxcAdapter(), NspawnAdapter()):
        info = adapter.availability()
        assert info.state == "not installed"
        assert "apt-get install" in info.hint
