"""Tests of the security and process fields of a request: validation, engine options and
the OCI config.json that each field produces."""

from __future__ import annotations

import json
import os
import resource
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from isobench.errors import HarnessError
from isobench.model import CAPABILITIES, MASKED_PATHS, READONLY_PATHS, Mount, Request, Ulimit
from isobench.probe.derive import decode_caps
from isobench.runtimes.engine import DOCKER, PODMAN, EngineAdapter
from isobench.runtimes.oci import (
    DEFAULT_CAPABILITIES,
    RUNC,
    RUNSC,
    OciAdapter,
    OciProfile,
    build_config,
    device_entry,
    host_bounding_set,
)
from tests.unit.test_engine_options import value_of, values_of

ARGV = ["/isobench/probe.sh"]
BIND = Mount(source="/srv/data", target="/data")
READ_ONLY_BIND = Mount(source="/srv/data", target="/data", read_only=True)
#: /dev/null is character device 1:3 on Linux, which test_dev_null_major_minor checks here.
NULL_DEVICE = ("c", 1, 3)


def config_for(request: Request, **kwargs: Any) -> dict[str, Any]:
    return build_config(request, ARGV, {}, **kwargs)


def mount_at(config: dict[str, Any], destination: str) -> dict[str, Any]:
    """Return the only mount of ``config`` at ``destination``."""
    found = [mount for mount in config["mounts"] if mount["destination"] == destination]
    assert len(found) == 1, f"{len(found)} mounts at {destination}"
    mount: dict[str, Any] = found[0]
    return mount


def rlimits_by_type(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    limits = config["process"]["rlimits"]
    by_type = {limit["type"]: limit for limit in limits}
    assert len(by_type) == len(limits), f"a limit type appears twice in {limits}"
    return by_type


# -- request validation ------------------------------------------------------


def test_ulimit_soft_above_hard_rejected() -> None:
    with pytest.raises(ValidationError) as info:
        Ulimit(name="nofile", soft=2048, hard=1024)

    assert "the soft limit 2048 is above the hard limit 1024" in str(info.value)


def test_ulimit_soft_equal_hard_accepted() -> None:
    limit = Ulimit(name="nofile", soft=1024, hard=1024)

    assert (limit.soft, limit.hard) == (1024, 1024)


def test_request_ulimit_soft_above_hard_rejected() -> None:
    with pytest.raises(ValidationError) as info:
        Request.model_validate({"ulimits": [{"name": "nproc", "soft": 10, "hard": 5}]})

    assert info.value.errors()[0]["loc"] == ("ulimits", 0)


@pytest.mark.parametrize("name", ["files", "NOFILE", "RLIMIT_NOFILE", ""])
def test_ulimit_unknown_name_rejected(name: str) -> None:
    with pytest.raises(ValidationError) as info:
        Ulimit(name=name, soft=1, hard=1)

    assert info.value.errors()[0]["loc"] == ("name",)


def test_ulimit_negative_rejected() -> None:
    with pytest.raises(ValidationError):
        Ulimit(name="core", soft=-1, hard=0)


def test_ulimit_extra_field_rejected() -> None:
    with pytest.raises(ValidationError) as info:
        Ulimit.model_validate({"name": "core", "soft": 0, "hard": 0, "units": "blocks"})

    assert info.value.errors()[0]["type"] == "extra_forbidden"


@pytest.mark.parametrize("workdir", ["tmp", "./tmp", "", "~/x"])
def test_workdir_relative_rejected(workdir: str) -> None:
    with pytest.raises(ValidationError) as info:
        Request(workdir=workdir)

    assert info.value.errors()[0]["loc"] == ("workdir",)


def test_workdir_absolute_accepted() -> None:
    assert Request(workdir="/tmp").workdir == "/tmp"


def test_mount_target_relative_rejected() -> None:
    with pytest.raises(ValidationError) as info:
        Mount(source="/srv", target="data")

    assert info.value.errors()[0]["loc"] == ("target",)


def test_mount_read_only_default_false() -> None:
    assert Mount(source="/srv", target="/data").read_only is False


def test_request_mounts_equal_hash_equal() -> None:
    from_models = Request(mounts=(READ_ONLY_BIND,))
    from_yaml = Request.model_validate(
        {"mounts": [{"source": "/srv/data", "target": "/data", "read_only": True}]}
    )

    assert from_models == from_yaml
    assert hash(from_models) == hash(from_yaml)


def test_request_mounts_set_deduplicates() -> None:
    requests = {
        Request(mounts=(BIND,)),
        Request(mounts=(Mount(source="/srv/data", target="/data"),)),
        Request(mounts=(READ_ONLY_BIND,)),
    }

    assert len(requests) == 2


def test_request_mounts_read_only_differs() -> None:
    assert Request(mounts=(BIND,)) != Request(mounts=(READ_ONLY_BIND,))


def test_request_ulimits_hashable() -> None:
    first = Request.model_validate({"ulimits": [{"name": "nofile", "soft": 512, "hard": 1024}]})
    second = Request(ulimits=(Ulimit(name="nofile", soft=512, hard=1024),))

    assert first == second
    assert hash(first) == hash(second)


def test_mount_frozen() -> None:
    with pytest.raises(ValidationError):
        BIND.source = "/elsewhere"


@pytest.mark.parametrize(
    ("field", "value"), [("masked_paths", "none"), ("image", "alpine"), ("privileged", "maybe")]
)
def test_request_invalid_security_choice(field: str, value: str) -> None:
    with pytest.raises(ValidationError):
        Request.model_validate({field: value})


def test_new_fields_default_off() -> None:
    request = Request()

    assert request.privileged is False
    assert request.masked_paths == "default"
    assert request.read_only is False
    assert request.mounts == ()
    assert request.devices == ()
    assert request.ulimits == ()
    assert request.init is None
    assert request.workdir is None
    assert request.image == "probe"


# -- engine run options ------------------------------------------------------

ENGINES = {
    "docker": EngineAdapter(DOCKER),
    "podman": EngineAdapter(PODMAN, oci_runtime="runc"),
}

NEW_FLAGS = (
    "--privileged",
    "--security-opt",
    "--read-only",
    "--volume",
    "--device",
    "--ulimit",
    "--init",
    "--workdir",
)


@pytest.fixture(params=sorted(ENGINES))
def engine(request: pytest.FixtureRequest) -> EngineAdapter:
    return ENGINES[request.param]


def test_engine_defaults_no_new_flags(engine: EngineAdapter) -> None:
    options = engine.run_options(Request())

    for flag in NEW_FLAGS:
        assert flag not in options


def test_engine_privileged_flag(engine: EngineAdapter) -> None:
    options = engine.run_options(Request(privileged=True))

    assert options.count("--privileged") == 1


@pytest.mark.parametrize(
    ("engine_name", "expected"), [("docker", "systempaths=unconfined"), ("podman", "unmask=ALL")]
)
def test_engine_unmask_option(engine_name: str, expected: str) -> None:
    options = ENGINES[engine_name].run_options(Request(masked_paths="unconfined"))

    assert value_of(options, "--security-opt") == expected


def test_engine_masked_default_no_option(engine: EngineAdapter) -> None:
    assert value_of(engine.run_options(Request(masked_paths="default")), "--security-opt") is None


def test_engine_unmask_beside_seccomp(engine: EngineAdapter) -> None:
    options = engine.run_options(Request(masked_paths="unconfined", seccomp="unconfined"))

    assert values_of(options, "--security-opt") == [
        "seccomp=unconfined",
        engine.profile.unmask_option,
    ]


def test_engine_read_only_flag(engine: EngineAdapter) -> None:
    assert engine.run_options(Request(read_only=True)).count("--read-only") == 1


def test_engine_volume_options(engine: EngineAdapter) -> None:
    request = Request(mounts=(BIND, Mount(source="/srv/logs", target="/logs", read_only=True)))

    assert values_of(engine.run_options(request), "--volume") == [
        "/srv/data:/data",
        "/srv/logs:/logs:ro",
    ]


def test_engine_device_options(engine: EngineAdapter) -> None:
    options = engine.run_options(Request(devices=("/dev/fuse", "/dev/net/tun")))

    assert values_of(options, "--device") == ["/dev/fuse", "/dev/net/tun"]


def test_engine_ulimit_options(engine: EngineAdapter) -> None:
    request = Request(
        ulimits=(
            Ulimit(name="nofile", soft=512, hard=1024),
            Ulimit(name="core", soft=0, hard=0),
        )
    )

    assert values_of(engine.run_options(request), "--ulimit") == ["nofile=512:1024", "core=0:0"]


def test_engine_init_flag(engine: EngineAdapter) -> None:
    assert engine.run_options(Request(init=True)).count("--init") == 1


@pytest.mark.parametrize("init", [None, False])
def test_engine_init_unset_no_flag(engine: EngineAdapter, init: bool | None) -> None:
    assert "--init" not in engine.run_options(Request(init=init))


def test_engine_workdir_option(engine: EngineAdapter) -> None:
    assert value_of(engine.run_options(Request(workdir="/srv")), "--workdir") == "/srv"


def test_engine_image_not_an_option(engine: EngineAdapter) -> None:
    # The image is the reference after the options, chosen by launch(), not an option.
    assert engine.run_options(Request(image="static")) == engine.run_options(Request())


# -- podman's fitted ulimits against the request's own ---------------------------


@pytest.fixture
def finite_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    """Give this process finite hard limits, so that podman's fitted ulimits are all present."""
    hard = {resource.RLIMIT_NOFILE: 4096, resource.RLIMIT_NPROC: 100}
    monkeypatch.setattr(resource, "getrlimit", lambda which: (0, hard[which]))


def ulimit_names(options: list[str]) -> list[str]:
    return [value.split("=", 1)[0] for value in values_of(options, "--ulimit")]


@pytest.mark.usefixtures("finite_limits")
def test_podman_fits_both_unrequested() -> None:
    flags = ENGINES["podman"]._runtime_flags(Request())

    assert ulimit_names(flags) == ["nofile", "nproc"]


@pytest.mark.usefixtures("finite_limits")
@pytest.mark.parametrize(
    ("requested", "fitted"),
    [(("nofile",), ["nproc"]), (("nproc",), ["nofile"]), (("nofile", "nproc"), [])],
)
def test_podman_skips_requested_ulimit(requested: tuple[str, ...], fitted: list[str]) -> None:
    request = Request(ulimits=tuple(Ulimit(name=name, soft=64, hard=64) for name in requested))

    assert ulimit_names(ENGINES["podman"]._runtime_flags(request)) == fitted


@pytest.mark.usefixtures("finite_limits")
def test_podman_one_nofile_in_argv() -> None:
    podman = ENGINES["podman"]
    request = Request(ulimits=(Ulimit(name="nofile", soft=512, hard=1024),))

    argv = [*podman._runtime_flags(request), *podman.run_options(request)]

    nofile = [value for value in values_of(argv, "--ulimit") if value.startswith("nofile=")]
    assert nofile == ["nofile=512:1024"]


@pytest.mark.usefixtures("finite_limits")
def test_podman_fits_unrelated_request_ulimit() -> None:
    request = Request(ulimits=(Ulimit(name="core", soft=0, hard=0),))

    assert ulimit_names(ENGINES["podman"]._runtime_flags(request)) == ["nofile", "nproc"]


@pytest.mark.usefixtures("finite_limits")
def test_docker_fits_no_ulimits() -> None:
    request = Request(ulimits=(Ulimit(name="nofile", soft=512, hard=1024),))

    assert ENGINES["docker"]._runtime_flags(request) == []


# -- OCI config: privileged ---------------------------------------------------


def test_privileged_grants_host_caps() -> None:
    host_caps = ("CAP_SYS_ADMIN", "CAP_CHOWN", "CAP_NET_ADMIN")

    caps = config_for(Request(privileged=True), host_caps=host_caps)["process"]["capabilities"]

    for cap_set in ("bounding", "effective", "permitted"):
        assert caps[cap_set] == ["CAP_CHOWN", "CAP_NET_ADMIN", "CAP_SYS_ADMIN"]


def test_privileged_default_every_capability() -> None:
    bounding = config_for(Request(privileged=True))["process"]["capabilities"]["bounding"]

    assert bounding == sorted(CAPABILITIES)


def test_unprivileged_ignores_host_caps() -> None:
    config = config_for(Request(), host_caps=("CAP_SYS_ADMIN",))

    assert config["process"]["capabilities"]["bounding"] == sorted(DEFAULT_CAPABILITIES)


def test_privileged_cap_drop_applies() -> None:
    request = Request(privileged=True, cap_drop=("SYS_ADMIN",))

    bounding = config_for(request)["process"]["capabilities"]["bounding"]

    assert "CAP_SYS_ADMIN" not in bounding
    assert len(bounding) == len(CAPABILITIES) - 1


def test_privileged_clears_masked_paths() -> None:
    linux = config_for(Request(privileged=True))["linux"]

    assert linux["maskedPaths"] == []
    assert linux["readonlyPaths"] == []


def test_privileged_allows_every_device() -> None:
    rules = config_for(Request(privileged=True))["linux"]["resources"]["devices"]

    assert rules == [{"allow": True, "access": "rwm"}]


def test_unprivileged_denies_devices_first() -> None:
    rules = config_for(Request())["linux"]["resources"]["devices"]

    assert rules == [{"allow": False, "access": "rwm"}]


@pytest.mark.parametrize("destination", ["/sys", "/sys/fs/cgroup"])
def test_privileged_sys_writable(destination: str) -> None:
    mount = mount_at(config_for(Request(privileged=True)), destination)

    assert "ro" not in mount["options"]
    assert "nosuid" in mount["options"]


@pytest.mark.parametrize("destination", ["/sys", "/sys/fs/cgroup"])
def test_unprivileged_sys_read_only(destination: str) -> None:
    assert "ro" in mount_at(config_for(Request()), destination)["options"]


def test_privileged_userns_sys_bind_writable() -> None:
    mount = mount_at(config_for(Request(privileged=True, userns="private")), "/sys")

    assert mount["type"] == "none"
    assert "rbind" in mount["options"]
    assert "ro" not in mount["options"]


def test_privileged_keeps_dev_shm_options() -> None:
    privileged = mount_at(config_for(Request(privileged=True)), "/dev/shm")
    default = mount_at(config_for(Request()), "/dev/shm")

    assert privileged == default


def test_host_bounding_set_matches_status() -> None:
    status = Path("/proc/self/status").read_text()
    (line,) = [line for line in status.splitlines() if line.startswith("CapBnd:")]
    known = [name for name in decode_caps(line.split()[1]) if name.startswith("CAP_")]

    assert host_bounding_set() == known


# -- OCI config: masked paths and the root filesystem -------------------------


def test_masked_paths_default_listed() -> None:
    linux = config_for(Request())["linux"]

    assert linux["maskedPaths"] == list(MASKED_PATHS)
    assert linux["readonlyPaths"] == list(READONLY_PATHS)


def test_masked_paths_unconfined_empty() -> None:
    linux = config_for(Request(masked_paths="unconfined"))["linux"]

    assert linux["maskedPaths"] == []
    assert linux["readonlyPaths"] == []


def test_masked_paths_unconfined_keeps_capabilities() -> None:
    config = config_for(Request(masked_paths="unconfined"))

    assert config["process"]["capabilities"]["bounding"] == sorted(DEFAULT_CAPABILITIES)
    assert config["linux"]["resources"]["devices"] == [{"allow": False, "access": "rwm"}]


def test_read_only_root() -> None:
    assert config_for(Request(read_only=True))["root"] == {"path": "rootfs", "readonly": True}


def test_writable_root_by_default() -> None:
    assert config_for(Request())["root"]["readonly"] is False


# -- OCI config: binds, devices, limits and the working directory --------------


def test_bind_mount_entry() -> None:
    mount = mount_at(config_for(Request(mounts=(BIND,))), "/data")

    assert mount == {
        "destination": "/data",
        "type": "bind",
        "source": "/srv/data",
        "options": ["rbind"],
    }


def test_read_only_bind_mount_entry() -> None:
    mount = mount_at(config_for(Request(mounts=(READ_ONLY_BIND,))), "/data")

    assert mount["options"] == ["rbind", "ro"]


def test_bind_mounts_after_defaults() -> None:
    request = Request(mounts=(BIND, Mount(source="/srv/logs", target="/logs")))

    destinations = [mount["destination"] for mount in config_for(request)["mounts"]]

    assert destinations[-2:] == ["/data", "/logs"]
    assert destinations.index("/sys") < destinations.index("/data")


def test_device_entry_dev_null() -> None:
    entry = device_entry("/dev/null")

    assert (entry["type"], entry["major"], entry["minor"]) == NULL_DEVICE
    assert entry["path"] == "/dev/null"
    assert entry["fileMode"] == 0o666
    assert (entry["uid"], entry["gid"]) == (0, 0)


def test_device_entry_regular_file(tmp_path: Path) -> None:
    regular = tmp_path / "not-a-device"
    regular.write_text("")

    with pytest.raises(HarnessError, match="is not a device node"):
        device_entry(str(regular))


def test_device_entry_directory(tmp_path: Path) -> None:
    with pytest.raises(HarnessError, match="is not a device node"):
        device_entry(str(tmp_path))


def test_device_entry_missing(tmp_path: Path) -> None:
    missing = tmp_path / "fuse"

    with pytest.raises(HarnessError) as info:
        device_entry(str(missing))

    assert str(missing) in str(info.value)
    assert "No such file or directory" in str(info.value)


def test_config_device_listed() -> None:
    linux = config_for(Request(devices=("/dev/null",)))["linux"]

    (entry,) = linux["devices"]
    assert (entry["path"], entry["type"], entry["major"], entry["minor"]) == (
        "/dev/null",
        *NULL_DEVICE,
    )


def test_config_device_cgroup_rule() -> None:
    rules = config_for(Request(devices=("/dev/null",)))["linux"]["resources"]["devices"]

    assert rules == [
        {"allow": False, "access": "rwm"},
        {"allow": True, "access": "rwm", "type": "c", "major": 1, "minor": 3},
    ]


def test_config_no_devices_key() -> None:
    assert "devices" not in config_for(Request())["linux"]


def test_privileged_device_rule_after_allow_all() -> None:
    request = Request(privileged=True, devices=("/dev/null",))

    rules = config_for(request)["linux"]["resources"]["devices"]

    assert rules[0] == {"allow": True, "access": "rwm"}
    assert rules[1] == {"allow": True, "access": "rwm", "type": "c", "major": 1, "minor": 3}


def test_config_non_device_raises(tmp_path: Path) -> None:
    regular = tmp_path / "file"
    regular.write_text("")

    with pytest.raises(HarnessError, match="not a device node"):
        config_for(Request(devices=(str(regular),)))


def test_default_nofile_rlimit() -> None:
    assert config_for(Request())["process"]["rlimits"] == [
        {"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}
    ]


def test_requested_nofile_replaces_default() -> None:
    request = Request(ulimits=(Ulimit(name="nofile", soft=256, hard=512),))

    limits = rlimits_by_type(config_for(request))

    assert limits == {"RLIMIT_NOFILE": {"type": "RLIMIT_NOFILE", "hard": 512, "soft": 256}}


def test_requested_rlimits_added() -> None:
    request = Request(
        ulimits=(Ulimit(name="core", soft=0, hard=0), Ulimit(name="nproc", soft=64, hard=128))
    )

    limits = rlimits_by_type(config_for(request))

    assert limits["RLIMIT_CORE"] == {"type": "RLIMIT_CORE", "hard": 0, "soft": 0}
    assert limits["RLIMIT_NPROC"] == {"type": "RLIMIT_NPROC", "hard": 128, "soft": 64}
    assert limits["RLIMIT_NOFILE"]["soft"] == 1024


def test_workdir_sets_cwd() -> None:
    assert config_for(Request(workdir="/tmp"))["process"]["cwd"] == "/tmp"


def test_cwd_default_root() -> None:
    assert config_for(Request())["process"]["cwd"] == "/"


def test_config_json_serialisable() -> None:
    request = Request(
        privileged=True,
        read_only=True,
        mounts=(READ_ONLY_BIND,),
        devices=("/dev/null",),
        ulimits=(Ulimit(name="nofile", soft=1, hard=2),),
        workdir="/tmp",
    )

    text = json.dumps(config_for(request))

    assert json.loads(text)["process"]["cwd"] == "/tmp"


# -- OCI runtimes and init ---------------------------------------------------


@pytest.mark.parametrize("profile", [RUNC, RUNSC], ids=["runc", "runsc"])
def test_oci_init_unsupported(profile: OciProfile) -> None:
    reason = OciAdapter(profile).unsupported(Request(init=True))

    assert reason is not None
    assert f"{profile.runtime} has no init process" in reason


@pytest.mark.parametrize("init", [None, False])
def test_runc_without_init_supported(init: bool | None) -> None:
    assert OciAdapter(RUNC).unsupported(Request(init=init)) is None


@pytest.mark.parametrize(
    "request_fields",
    [
        {"privileged": True},
        {"masked_paths": "unconfined"},
        {"read_only": True},
        {"mounts": [{"source": "/srv", "target": "/data"}]},
        {"devices": ["/dev/null"]},
        {"ulimits": [{"name": "nofile", "soft": 1, "hard": 1}]},
        {"workdir": "/tmp"},
    ],
)
def test_runc_supports_field(request_fields: dict[str, Any]) -> None:
    assert OciAdapter(RUNC).unsupported(Request.model_validate(request_fields)) is None


def test_dev_null_major_minor() -> None:
    # The device tests above rely on this machine's /dev/null being the real device.
    info = os.stat("/dev/null")

    assert (os.major(info.st_rdev), os.minor(info.st_rdev)) == NULL_DEVICE[1:]
