"""Tests of the containerd row: request translation, reasons, the image archive, ctr output."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tarfile
import tomllib
from pathlib import Path
from typing import Any

import pytest

from isobench.model import CAPABILITIES, Request
from isobench.runtimes.containerd import (
    CANNOT,
    ContainerdAdapter,
    Daemon,
    capability_options,
    config_toml,
    ctr_failure,
    is_daemon,
    is_shim,
    main,
    parse_task_pid,
    parse_task_status,
    removal_argv,
    remove_container,
    run_options,
    stop_daemon,
    unsupported_reason,
    write_oci_archive,
)

DAEMON_PID = 4242
DEFAULT_OPTIONS = run_options(Request(), DAEMON_PID)


def options_for(**fields: Any) -> list[str]:
    return run_options(Request.model_validate(fields), DAEMON_PID)


def values_of(options: list[str], flag: str) -> list[str]:
    return [options[index + 1] for index, option in enumerate(options) if option == flag]


# -- every field: translated or rejected ---------------------------------------

#: One non-default value per request field (several for the fields with several values).
SAMPLES: list[tuple[str, Any]] = [
    ("hostname", "isobench-uts"),
    ("env", [["A", "1"]]),
    ("user", "1000:1000"),
    ("pid", "host"),
    ("network", "host"),
    ("network", "default"),
    ("network_name", "isobench-net"),
    ("publish", [{"host_port": 8080, "container_port": 80}]),
    ("add_hosts", [{"name": "db.test", "address": "10.0.0.2"}]),
    ("dns", ["127.0.0.53"]),
    ("dns_search", ["example.test"]),
    ("ipc", "host"),
    ("uts", "host"),
    ("cgroupns", "host"),
    ("cgroupns", "private"),
    ("userns", "private"),
    ("cap_add", ["NET_ADMIN"]),
    ("cap_drop", ["CHOWN"]),
    ("seccomp", "unconfined"),
    ("no_new_privs", True),
    ("no_new_privs", False),
    ("privileged", True),
    ("masked_paths", "unconfined"),
    ("read_only", True),
    ("mounts", [{"source": "/srv", "target": "/data"}]),
    ("tmpfs", [{"target": "/scratch", "size": "8MiB"}]),
    ("devices", ["/dev/fuse"]),
    ("ulimits", [{"name": "nofile", "soft": 64, "hard": 64}]),
    ("init", True),
    ("init", False),
    ("workdir", "/tmp"),
    ("image", "static"),
    ("memory", "64MiB"),
    ("memory_swap", "64MiB"),
    ("pids_limit", 32),
    ("cpus", 0.5),
    ("cpuset_cpus", "0"),
    ("cpu_shares", 512),
    ("device_write_bps", "1MiB"),
    ("device_read_bps", "1MiB"),
]

#: Values that ctr's defaults already give, so they are expressed without an option.
NO_OPTION_NEEDED = {
    ("cgroupns", "host"): "ctr's spec has no cgroup namespace on a cgroup v1 host",
    ("seccomp", "unconfined"): "ctr applies no seccomp filter without --seccomp",
    ("no_new_privs", True): "ctr sets no_new_privs unless --allow-new-privs is given",
    ("init", False): "ctr runs no init process",
    ("image", "static"): "the image is the reference, not an option",
}


def test_samples_cover_every_field() -> None:
    covered = {name for name, _ in SAMPLES}
    assert covered == set(Request.model_fields)


@pytest.mark.parametrize(("field", "value"), SAMPLES, ids=[f"{f}={v}" for f, v in SAMPLES])
def test_field_translated_or_rejected(field: str, value: Any) -> None:
    """No request is accepted and then dropped: it changes the options, or it has a reason."""
    # A network of the check's and published ports need the default network.
    needs_network = {"network": "default"} if field in ("network_name", "publish") else {}
    request = Request.model_validate({field: value, **needs_network})
    reason = unsupported_reason(request)
    options = run_options(request, DAEMON_PID)
    if reason is not None:
        assert reason.strip()
        return
    if not isinstance(value, list) and (field, value) in NO_OPTION_NEEDED:
        assert options == DEFAULT_OPTIONS
        return
    assert options != DEFAULT_OPTIONS, f"{field}={value!r} is accepted but sets no option"


def test_default_request_has_no_options() -> None:
    assert DEFAULT_OPTIONS == []
    assert unsupported_reason(Request()) is None


# -- translation -------------------------------------------------------------------


def test_env_and_workdir() -> None:
    options = options_for(env=[["A", "1"], ["B", "x=y"]], workdir="/tmp")

    assert values_of(options, "--env") == ["A=1", "B=x=y"]
    assert values_of(options, "--cwd") == ["/tmp"]


@pytest.mark.parametrize("kind", ["pid", "ipc", "uts"])
def test_host_namespace_joins_daemons(kind: str) -> None:
    options = options_for(**{kind: "host"})

    assert values_of(options, "--with-ns") == [f"{kind}:/proc/{DAEMON_PID}/ns/{kind}"]


def test_host_network() -> None:
    assert options_for(network="host") == ["--net-host"]


def test_user_namespace_maps() -> None:
    options = options_for(userns="private")

    assert values_of(options, "--uidmap") == ["0:100000:65536"]
    assert values_of(options, "--gidmap") == ["0:100000:65536"]


def test_capabilities_get_prefix() -> None:
    options = options_for(cap_add=["net_admin"], cap_drop=["CAP_CHOWN"])

    assert values_of(options, "--cap-add") == ["CAP_NET_ADMIN"]
    assert values_of(options, "--cap-drop") == ["CAP_CHOWN"]


def test_cap_drop_all_lists_every_capability() -> None:
    options = capability_options(Request(cap_drop=("ALL",)), CAPABILITIES)

    assert values_of(options, "--cap-drop") == list(CAPABILITIES)
    assert "CAP_ALL" not in options


def test_cap_add_wins_over_drop_all() -> None:
    options = capability_options(Request(cap_drop=("ALL",), cap_add=("SYS_ADMIN",)), CAPABILITIES)

    assert values_of(options, "--cap-add") == ["CAP_SYS_ADMIN"]
    assert "CAP_SYS_ADMIN" not in values_of(options, "--cap-drop")
    assert "CAP_CHOWN" in values_of(options, "--cap-drop")


def test_cap_add_all_uses_host_set() -> None:
    host_caps = ["CAP_CHOWN", "CAP_SYS_ADMIN"]
    options = capability_options(Request(cap_add=("ALL",)), host_caps)

    assert values_of(options, "--cap-add") == host_caps


def test_allow_new_privs() -> None:
    assert options_for(no_new_privs=False) == ["--allow-new-privs"]


def test_privileged_and_read_only() -> None:
    options = options_for(privileged=True, read_only=True)

    assert "--privileged" in options
    assert "--read-only" in options


def test_privileged_unmasked_accepted() -> None:
    request = Request(privileged=True, masked_paths="unconfined")

    assert unsupported_reason(request) is None


def test_bind_mounts() -> None:
    options = options_for(
        mounts=[
            {"source": "/srv/a", "target": "/a", "read_only": True},
            {"source": "/srv/b", "target": "/b"},
        ]
    )

    assert values_of(options, "--mount") == [
        "type=bind,src=/srv/a,dst=/a,options=rbind:ro",
        "type=bind,src=/srv/b,dst=/b,options=rbind:rw",
    ]


def test_tmpfs_mount_size() -> None:
    options = options_for(tmpfs=[{"target": "/scratch", "size": "1MiB"}])

    assert values_of(options, "--mount") == [
        "type=tmpfs,src=tmpfs,dst=/scratch,options=nosuid:nodev:size=1048576"
    ]


def test_devices() -> None:
    assert values_of(options_for(devices=["/dev/fuse"]), "--device") == ["/dev/fuse"]


def test_limits() -> None:
    options = options_for(memory="64MiB", cpus=0.5, cpu_shares=512)

    assert values_of(options, "--memory-limit") == [str(64 * 1024 * 1024)]
    assert values_of(options, "--cpus") == ["0.5"]
    assert values_of(options, "--cpu-shares") == ["512"]


# -- reasons -------------------------------------------------------------------


@pytest.mark.parametrize("field", sorted(CANNOT))
def test_cannot_fields_name_ctr(field: str) -> None:
    sample = next(value for name, value in SAMPLES if name == field)
    reason = unsupported_reason(Request.model_validate({field: sample}))

    assert reason == CANNOT[field]
    assert "ctr" in reason


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"network": "default"}, "CNI"),
        ({"cgroupns": "private"}, "cgroup namespace"),
        ({"masked_paths": "unconfined"}, "--privileged"),
        ({"mounts": [{"source": "/srv/a,b", "target": "/a"}]}, "commas"),
        ({"tmpfs": [{"target": "/x,y", "size": 1024}]}, "commas"),
        ({"env": [["A=B", "1"]]}, "'='"),
    ],
)
def test_unsupported_reasons(fields: dict[str, Any], words: str) -> None:
    reason = unsupported_reason(Request.model_validate(fields))

    assert reason is not None
    assert words in reason


def test_adapter_unsupported_matches() -> None:
    adapter = ContainerdAdapter()

    assert adapter.unsupported(Request(hostname="x")) == CANNOT["hostname"]
    assert adapter.unsupported(Request()) is None


# -- the image archive ------------------------------------------------------------


@pytest.fixture
def rootfs(tmp_path: Path) -> Path:
    root = tmp_path / "rootfs"
    (root / "bin").mkdir(parents=True)
    (root / "bin" / "busybox").write_bytes(b"\x7fELF not really")
    (root / "bin" / "busybox").chmod(0o755)
    (root / "bin" / "sh").symlink_to("busybox")
    (root / "etc").mkdir()
    (root / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    return root


def _members(archive: Path) -> dict[str, bytes]:
    found = {}
    with tarfile.open(archive) as tar:
        for member in tar.getmembers():
            handle = tar.extractfile(member)
            assert handle is not None
            found[member.name] = handle.read()
    return found


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def test_archive_layout(rootfs: Path, tmp_path: Path) -> None:
    archive = tmp_path / "image.tar"
    digests = write_oci_archive(rootfs, "localhost/isobench-probe:abc123", archive)
    members = _members(archive)

    assert json.loads(members["oci-layout"]) == {"imageLayoutVersion": "1.0.0"}
    for digest in digests.values():
        blob = members[f"blobs/sha256/{digest.removeprefix('sha256:')}"]
        assert _sha256(blob) == digest
    assert not list(tmp_path.glob("*.layer")), "the layer's temporary file is left"


def test_archive_index_names_image(rootfs: Path, tmp_path: Path) -> None:
    archive = tmp_path / "image.tar"
    digests = write_oci_archive(rootfs, "localhost/isobench-probe:abc123", archive)
    members = _members(archive)
    index = json.loads(members["index.json"])

    [entry] = index["manifests"]
    assert entry["digest"] == digests["manifest"]
    assert entry["annotations"]["io.containerd.image.name"] == "localhost/isobench-probe:abc123"
    assert entry["annotations"]["org.opencontainers.image.ref.name"] == "abc123"
    manifest_blob = members[f"blobs/sha256/{digests['manifest'].removeprefix('sha256:')}"]
    assert entry["size"] == len(manifest_blob)


def test_archive_manifest_and_config(rootfs: Path, tmp_path: Path) -> None:
    archive = tmp_path / "image.tar"
    digests = write_oci_archive(rootfs, "localhost/isobench-probe:abc123", archive)
    members = _members(archive)

    def blob(digest: str) -> bytes:
        return members[f"blobs/sha256/{digest.removeprefix('sha256:')}"]

    manifest = json.loads(blob(digests["manifest"]))
    assert manifest["config"]["digest"] == digests["config"]
    assert manifest["config"]["size"] == len(blob(digests["config"]))
    [layer] = manifest["layers"]
    assert layer["digest"] == digests["layer"]
    assert layer["size"] == len(blob(digests["layer"]))
    config = json.loads(blob(digests["config"]))
    assert config["rootfs"] == {"type": "layers", "diff_ids": [digests["layer"]]}
    assert config["os"] == "linux"


def test_archive_layer_content(rootfs: Path, tmp_path: Path) -> None:
    archive = tmp_path / "image.tar"
    digests = write_oci_archive(rootfs, "localhost/isobench-probe:abc123", archive)
    layer_bytes = _members(archive)[f"blobs/sha256/{digests['layer'].removeprefix('sha256:')}"]

    with tarfile.open(fileobj=io.BytesIO(layer_bytes)) as layer:
        names = {member.name: member for member in layer.getmembers()}
        busybox = layer.extractfile("bin/busybox")
        assert busybox is not None
        assert busybox.read() == b"\x7fELF not really"
    assert names["bin/sh"].issym()
    assert names["bin/sh"].linkname == "busybox"
    assert names["bin/busybox"].mode & 0o777 == 0o755
    assert names["etc"].isdir()


# -- ctr output and the daemon's files --------------------------------------------

TASK_LS = """TASK                                       PID      STATUS
isobench-run-containerd-1                  11674    RUNNING
isobench-run-containerd-12                 11800    RUNNING
"""


def test_task_pid_parsed() -> None:
    assert parse_task_pid(TASK_LS, "isobench-run-containerd-1") == 11674
    assert parse_task_pid(TASK_LS, "isobench-run-containerd-12") == 11800


def test_task_pid_missing() -> None:
    assert parse_task_pid(TASK_LS, "isobench-run-containerd-2") is None
    assert parse_task_pid("TASK    PID    STATUS\n", "x") is None


def test_ctr_failure_message() -> None:
    stderr = (
        "ctr: failed to create shim task: OCI runtime create failed: runc create failed: "
        'unable to start container process: exec: "nope": not found: unknown\n'
    )

    message = ctr_failure(1, stderr)

    assert message is not None
    assert message.startswith("ctr itself failed: failed to create shim task")


def test_ctr_failure_needs_status_and_prefix() -> None:
    assert ctr_failure(1, "cat: no such file\n") is None
    assert ctr_failure(2, "ctr: something\n") is None
    assert ctr_failure(0, "") is None


def test_config_listens_on_unix_only(tmp_path: Path) -> None:
    socket_path = tmp_path / "state" / "containerd.sock"
    config = tomllib.loads(config_toml(tmp_path / "root", tmp_path / "state", socket_path))

    assert config["version"] == 2
    assert config["root"] == str(tmp_path / "root")
    assert config["state"] == str(tmp_path / "state")
    assert "io.containerd.grpc.v1.cri" in config["disabled_plugins"]
    assert config["grpc"]["address"] == str(socket_path)
    assert config["metrics"]["address"] == ""
    assert config["debug"]["address"].startswith(str(tmp_path / "state"))
    assert config["ttrpc"]["address"].startswith(str(tmp_path / "state"))


def test_daemon_command_line_matched() -> None:
    config = Path("/run/isobench/containerd/R/config.toml")

    assert is_daemon(["/usr/bin/containerd", "--config", str(config)], config)
    assert not is_daemon(["/usr/bin/containerd", "--config", "/etc/containerd.toml"], config)
    assert not is_daemon(["sh", "-c", "x", "--config", str(config)], config)
    assert not is_daemon([], config)


def test_shim_command_line_matched() -> None:
    socket_path = Path("/run/isobench/containerd/R/containerd.sock")
    shim = ["/usr/bin/containerd-shim-runc-v2", "-namespace", "isobench", "-id", "c1"]

    assert is_shim([*shim, "-address", str(socket_path)], socket_path)
    assert not is_shim([*shim, "-address", "/run/containerd/containerd.sock"], socket_path)


def test_daemon_runs_in_own_mount_namespace(tmp_path: Path) -> None:
    daemon = Daemon("R", tmp_path / "root", tmp_path / "state")
    argv = ContainerdAdapter().daemon_argv(daemon)

    assert argv[:5] == ["unshare", "--mount", "--propagation", "slave", "--"]
    assert str(daemon.shim_dir) in argv
    assert argv[-2:] == ["--config", str(daemon.config)]


# -- availability ----------------------------------------------------------------


def test_missing_ctr_not_found(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ISOBENCH_CTR", "/nonexistent/ctr")

    info = ContainerdAdapter().availability()

    assert not info.available
    assert info.reason == "'/nonexistent/ctr' (set by ISOBENCH_CTR) not found"
    assert "apt-get install containerd" in info.hint


def test_rejected_config_shows_message(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for binary in ("containerd-shim-runc-v2", "runc", "unshare"):
        if shutil.which(binary) is None:
            pytest.skip(f"{binary} is not installed")
    fake = tmp_path / "containerd"
    fake.write_text(
        "#!/bin/sh\n"
        'if [ "$1" = --version ]; then echo "containerd github.com/containerd/containerd 9.9"; '
        "exit 0; fi\n"
        'echo "containerd: failed to load TOML: simulated" >&2\n'
        "exit 1\n"
    )
    fake.chmod(0o755)
    fake_ctr = tmp_path / "ctr"
    fake_ctr.write_text('#!/bin/sh\necho "ctr github.com/containerd/containerd 9.9"\n')
    fake_ctr.chmod(0o755)
    monkeypatch.setenv("ISOBENCH_CONTAINERD", str(fake))
    monkeypatch.setenv("ISOBENCH_CTR", str(fake_ctr))

    info = ContainerdAdapter().availability()

    assert not info.available
    assert info.version == "9.9"
    assert "containerd: failed to load TOML: simulated" in info.reason


# -- removal commands ------------------------------------------------------------


def test_stop_without_daemon_succeeds(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / "containerd.pid").write_text(f"{os.getpid()}\n")

    assert stop_daemon(state, timeout=1) == []
    assert main(["stop", "--state", str(state)]) == 0


def test_stop_ignores_other_pid(tmp_path: Path) -> None:
    """A pid file that names a process other than this config's containerd is not trusted."""
    state = tmp_path / "state"
    state.mkdir()
    (state / "containerd.pid").write_text(f"{os.getpid()}\n")

    stop_daemon(state, timeout=1)

    assert Path(f"/proc/{os.getpid()}").exists()


def test_remove_without_socket_succeeds(tmp_path: Path) -> None:
    assert remove_container(tmp_path, "isobench-x-containerd-1") == []
    assert main(["remove", "--state", str(tmp_path), "--name", "isobench-x-containerd-1"]) == 0


def test_removal_argv_names_module(tmp_path: Path) -> None:
    argv = removal_argv("remove", tmp_path, "--name", "c1")

    assert argv[1:3] == ["-m", "isobench.runtimes.containerd"]
    assert argv[3:] == ["remove", "--state", str(tmp_path), "--name", "c1"]


def test_task_status_parsed() -> None:
    output = "TASK    PID     STATUS\nbox-1   4242    RUNNING\nbox-2   4243    STOPPED\n"
    assert parse_task_status(output, "box-1") == "RUNNING"
    assert parse_task_status(output, "box-2") == "STOPPED"
    assert parse_task_status(output, "box-3") is None
