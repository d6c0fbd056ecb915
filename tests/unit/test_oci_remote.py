"""The OCI rows on another host: what they read, write and look up goes through the run's host.

The host is a Loopback (tests/unit/test_hosts.py): an ssh:// host whose commands run
here, so every file lands on this machine, and the argv of each command and call is
recorded, which shows that it went through the remote code path.
"""

from __future__ import annotations

import base64
import inspect
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from isobench import hosts
from isobench.commands import _OUTPUT_THROUGH_FILES
from isobench.errors import HarnessError
from isobench.journal import Journal
from isobench.model import Request
from isobench.probe import cgroups
from isobench.probe import host as host_probe
from isobench.runtimes import shim
from isobench.runtimes.base import Context, Launched, ProbeImage, journal_cgroups
from isobench.runtimes.oci import (
    CRUN,
    ISOBOX,
    RUNC,
    OciAdapter,
    OciProfile,
    device_entry,
    host_bounding_set,
    hybrid_unified_with_controllers,
)
from tests.unit.loopback import Loopback

ARGV = ["/isobench/probe.sh"]


def calls(host: Loopback) -> list[tuple[str, str, list[object]]]:
    """Return the module, function and arguments of each call sent to the host's python3."""
    found = []
    for argv in host.sent:
        if argv[:2] == ["python3", "-c"] and len(argv) == 4:
            payload = json.loads(base64.b64decode(argv[3]))
            module, function, args = payload["call"]
            found.append((module, function, args))
    return found


def commands_sent(host: Loopback) -> list[list[str]]:
    """Return the commands sent through commands.run, without the timeout(1) in front."""
    return [argv[3:] for argv in host.sent if argv[:2] == ["timeout", "--kill-after=5"]]


def make_image(base: Path) -> ProbeImage:
    """Lay out a small image as the image cache does: a rootfs beside a file 'complete'."""
    rootfs = base / "probe-test" / "rootfs"
    (rootfs / "bin").mkdir(parents=True)
    (rootfs / "etc").mkdir()
    (rootfs / "etc" / "passwd").write_text("root:x:0:0::/:/bin/sh\nnobody:x:65534:65533::/:\n")
    (rootfs / "bin" / "busybox").write_text("not a real binary\n")
    (rootfs / "bin" / "sh").symlink_to("busybox")
    (base / "probe-test" / "complete").write_text("test\n")
    return ProbeImage(rootfs, "test")


def make_context(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run_id: str) -> Context:
    monkeypatch.setenv("ISOBENCH_BUNDLE_DIR", str(tmp_path / "bundles"))
    journal = Journal(run_id, directory=tmp_path / "journal")
    return Context(run_id, journal, image=make_image(tmp_path / "images"))


def runc_adapter(tmp_path: Path) -> OciAdapter:
    """Return a runc row whose state root is under ``tmp_path``, not /run/isobench."""
    adapter = OciAdapter(RUNC, binary="runc")
    state_root = tmp_path / "state" / "runc"
    adapter.state_root = lambda ctx: state_root  # type: ignore[method-assign]
    return adapter


def prepared(adapter: OciAdapter, ctx: Context, request: Request) -> tuple[Path, dict[str, object]]:
    """Prepare a bundle; return its directory and its config.json without the names
    that differ from one container to the next."""
    name, bundle, _ = adapter.prepare_bundle(ctx, request, ARGV, {"GREETING": "hello"})
    config = json.loads((bundle / "config.json").read_text())
    assert config["linux"]["cgroupsPath"] == f"/{name}"
    del config["linux"]["cgroupsPath"]
    return bundle, config


# -- bundles -----------------------------------------------------------------


def test_bundle_is_laid_out_through_the_host(
    loopback: Loopback, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx = make_context(tmp_path, monkeypatch, "remote1")
    adapter = runc_adapter(tmp_path)

    bundle, _ = prepared(adapter, ctx, Request())

    sent = commands_sent(loopback)
    copies = [argv for argv in sent if argv[:2] == ["sh", "-c"] and "cp -a" in argv[2]]
    assert len(copies) == 1
    image = ctx.image
    assert image is not None
    # bundle parent, state root, bundle, rootfs on the host
    assert copies[0][4:] == [
        str(bundle.parent),
        str(tmp_path / "state" / "runc"),
        str(bundle),
        str(image.rootfs),
    ]
    writes = [argv for argv in sent if argv[:3] == ["sh", "-c", 'cat > "$1"']]
    assert writes == [["sh", "-c", 'cat > "$1"', "sh", str(bundle / "config.json")]]
    assert (bundle / "rootfs" / "bin" / "sh").is_symlink()
    assert (bundle / "rootfs" / "etc" / "passwd").exists()


def test_bundle_facts_are_read_on_the_host(
    loopback: Loopback, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx = make_context(tmp_path, monkeypatch, "remote2")
    adapter = runc_adapter(tmp_path)

    prepared(adapter, ctx, Request())
    prepared(adapter, ctx, Request())

    functions = [(module, function) for module, function, _ in calls(loopback)]
    # The cgroup directories are read for each container, the bounding set once per host.
    assert functions.count(("isobench.probe.cgroups", "directory_names")) == 2
    assert functions.count(("isobench.probe.host", "bounding_set_mask")) == 1


def test_remote_config_matches_local_one(
    loopback: Loopback, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    request = Request(user="65534", devices=("/dev/null",), privileged=True)
    ctx = make_context(tmp_path, monkeypatch, "remote3")
    _, remote = prepared(runc_adapter(tmp_path), ctx, request)
    assert ("isobench.probe.host", "device_node", ["/dev/null"]) in calls(loopback)

    hosts.use(hosts.LOCAL)
    local_ctx = make_context(tmp_path / "here", monkeypatch, "local3")
    local_bundle, local = prepared(runc_adapter(tmp_path), local_ctx, request)

    assert remote == local
    assert local_bundle.is_relative_to(tmp_path / "here")


def test_userns_bundle_is_chowned_on_the_host(
    loopback: Loopback, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if os.geteuid() != 0:
        pytest.skip("chown to the user namespace's uid needs root")
    ctx = make_context(tmp_path, monkeypatch, "remote4")
    adapter = runc_adapter(tmp_path)

    bundle, _ = prepared(adapter, ctx, Request(userns="private"))

    chown = [argv for argv in commands_sent(loopback) if argv[:1] == ["chown"]]
    assert chown == [["chown", "-R", "100000:100000", str(bundle / "rootfs")]]


# -- host facts --------------------------------------------------------------


def test_journal_cgroups_reads_the_host_mounts(
    loopback: Loopback, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx = make_context(tmp_path, monkeypatch, "remote5")

    found = journal_cgroups(ctx, "runc", "/isobench-remote5-runc-1")

    assert [directory for directory, _ in found] == cgroups.directories_for(
        "/isobench-remote5-runc-1"
    )
    assert calls(loopback) == [
        ("isobench.probe.cgroups", "directory_names", ["/isobench-remote5-runc-1"])
    ]
    assert all(entry.host == "ssh://root@node1" for _, entry in found)


def test_bounding_set_is_the_hosts(loopback: Loopback) -> None:
    remote = host_bounding_set()
    assert calls(loopback) == [("isobench.probe.host", "bounding_set_mask", [])]
    hosts.use(hosts.LOCAL)
    assert remote == host_bounding_set()


def test_device_entry_is_the_hosts(loopback: Loopback, tmp_path: Path) -> None:
    remote = device_entry("/dev/null")
    hosts.use(hosts.LOCAL)
    assert remote == device_entry("/dev/null")


def test_missing_device_names_the_host(loopback: Loopback, tmp_path: Path) -> None:
    with pytest.raises(HarnessError, match="on node1 cannot be added: No such file"):
        device_entry(str(tmp_path / "fuse"))
    with pytest.raises(HarnessError, match="on node1 is not a device node"):
        device_entry(str(tmp_path))


def test_unified_hierarchy_is_read_on_the_host(loopback: Loopback) -> None:
    adapter = OciAdapter(CRUN, binary="crun")

    remote = adapter.unified_to_hide()
    adapter.unified_to_hide()

    assert calls(loopback) == [("isobench.probe.cgroups", "hybrid_unified", [])]
    assert remote == hybrid_unified_with_controllers(Path("/proc/self/mountinfo").read_text())


def test_hybrid_unified_lists_controllers(tmp_path: Path) -> None:
    unified = tmp_path / "unified"
    unified.mkdir()
    (unified / "cgroup.controllers").write_text("hugetlb rdma\n")
    mountinfo = (
        "30 25 0:26 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n"
        f"29 25 0:25 / {unified} rw - cgroup2 cgroup2 rw\n"
    )

    found = cgroups.hybrid_unified(mountinfo)

    assert found == {"mount_point": str(unified), "controllers": ["hugetlb", "rdma"]}
    assert json.loads(json.dumps(found)) == found


def test_storage_device_is_read_on_the_host(
    loopback: Loopback, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx = make_context(tmp_path, monkeypatch, "remote6")
    adapter = OciAdapter(RUNC, binary="runc")
    try:
        remote: object = adapter.storage_device(ctx)
    except HarnessError as exc:
        remote = "error"
        assert "node1" in str(exc)
    assert calls(loopback) == [
        ("isobench.probe.host", "block_device", [str(tmp_path / "bundles" / "remote6")])
    ]
    hosts.use(hosts.LOCAL)
    try:
        local: object = adapter.storage_device(ctx)
    except HarnessError:
        local = "error"
    assert remote == local


# -- programs ------------------------------------------------------------------


def test_program_is_looked_up_on_the_host(loopback: Loopback, tmp_path: Path) -> None:
    program = tmp_path / "runc"
    program.write_text("#!/bin/sh\necho 'runc version 9.9.9'\n")
    program.chmod(0o755)
    adapter = OciAdapter(RUNC, binary=str(program))

    info = adapter.availability()

    assert info.available, info.reason
    assert info.version == "9.9.9"
    assert info.details["binary"] == str(program)
    assert ("isobench.probe.host", "find_program", [[str(program)]]) in calls(loopback)
    assert [str(program), "--version"] in commands_sent(loopback)
    assert adapter.global_argv(Context("r", journal=None))[0] == str(program)  # type: ignore[arg-type]


def test_missing_program_names_the_host(
    loopback: Loopback, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "runc"
    monkeypatch.setenv("ISOBENCH_RUNC", str(missing))

    info = OciAdapter(RUNC).availability()

    assert info.state == "not installed"
    assert info.reason == f"'{missing}' (set by ISOBENCH_RUNC) not found on node1"
    assert info.hint.startswith("On node1: Install it with 'apt-get install runc'")
    assert info.hint.endswith("Or set ISOBENCH_RUNC to its path on that host.")


def test_bundled_program_lookup_order(loopback: Loopback, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ISOBENCH_ISOBOX", raising=False)
    adapter = OciAdapter(ISOBOX)

    adapter.binary  # noqa: B018 - the lookup is what is tested

    beside = str(Path(sys.executable).parent / "isobox")
    assert calls(loopback) == [("isobench.probe.host", "find_program", [[beside, "isobox"]])]


def test_find_program_takes_the_first_found(tmp_path: Path) -> None:
    present = tmp_path / "tool"
    present.write_text("")
    assert host_probe.find_program([str(tmp_path / "absent"), str(present)]) == str(present)
    assert host_probe.find_program([str(tmp_path / "absent")]) is None


def test_bounding_set_mask_reads_capbnd(tmp_path: Path) -> None:
    status = tmp_path / "status"
    status.write_text("Name:\tsh\nCapEff:\t0000000000000000\nCapBnd:\t00000000a80425fb\n")
    assert host_probe.bounding_set_mask(status) == 0xA80425FB
    status.write_text("Name:\tsh\n")
    assert host_probe.bounding_set_mask(status) is None


# -- processes -----------------------------------------------------------------


def test_shim_runs_from_source_remotely(loopback: Loopback) -> None:
    profile = OciProfile(runtime="box", binary_env="", lifecycle="create-start")
    adapter = OciAdapter(profile, binary="/usr/bin/box")
    ctx = Context("r", journal=None)  # type: ignore[arg-type]

    argv = adapter.run_argv(ctx, "c1", Path("/b/c1"))

    assert argv[:3] == ["python3", "-c", inspect.getsource(shim)]
    assert argv[3:] == ["/usr/bin/box", "--root", "/run/isobench/box", "--", "c1", "/b/c1"]
    # Run with -c, the source is the main module: a wrong usage gives the shim's status.
    done = subprocess.run(
        [sys.executable, "-c", inspect.getsource(shim), "box"], capture_output=True, text=True
    )
    assert done.returncode == shim.FAILURE_STATUS
    assert done.stderr.startswith(shim.MESSAGE_PREFIX + "usage:")


def test_exec_detached_keeps_no_pipe_open(tmp_path: Path) -> None:
    """A process left running by the command does not hold the output pipes of the wrapper,
    so the ssh session that carries it ends with the command."""
    pid_file = tmp_path / "child.pid"
    leaves_child = f"sleep 30 & echo $! > {pid_file}; echo started; echo warning >&2; exit 4"
    started = time.monotonic()
    try:
        done = subprocess.run(
            ["sh", "-c", _OUTPUT_THROUGH_FILES, "sh", "sh", "-c", leaves_child],
            capture_output=True,
            text=True,
            timeout=20,
        )
    finally:
        if pid_file.exists():
            os.kill(int(pid_file.read_text()), signal.SIGKILL)
    assert time.monotonic() - started < 10
    assert done.returncode == 4
    assert done.stdout == "started\n"
    assert done.stderr == "warning\n"


def test_exec_detached_is_wrapped_on_the_host(loopback: Loopback, tmp_path: Path) -> None:
    program = tmp_path / "runc"
    program.write_text("#!/bin/sh\nexit 0\n")
    program.chmod(0o755)
    adapter = OciAdapter(RUNC, binary=str(program))
    ended = subprocess.Popen(["true"], text=True)
    ended.wait()
    launched = Launched(name="c1", process=ended, argv=["true"])
    ctx = Context("r", journal=None)  # type: ignore[arg-type]

    adapter.exec_detached(ctx, launched, ["sleep", "1"])

    # The files are on the host: commands.run wraps any output_to_files command there.
    (sent,) = [argv for argv in loopback.sent if argv[:3] == ["sh", "-c", _OUTPUT_THROUGH_FILES]]
    assert sent[4:6] == ["timeout", "--kill-after=5"]
    runtime = [str(program), "--root", "/run/isobench/runc"]
    assert sent[7:] == [*runtime, "exec", "--detach", "c1", "sleep", "1"]


def test_create_start_launch_on_the_host(
    loopback: Loopback, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The shim started on the host runs the row's create; its failure is the shim's."""
    program = tmp_path / "box"
    # Called as 'box --root DIR VERB ...': delete succeeds, any other verb fails.
    program.write_text('#!/bin/sh\n[ "$3" = delete ] && exit 0\necho "box $3 failed" >&2\nexit 1\n')
    program.chmod(0o755)
    profile = OciProfile(runtime="box", binary_env="", lifecycle="create-start")
    adapter = OciAdapter(profile, binary=str(program))
    state_root = tmp_path / "state" / "box"
    adapter.state_root = lambda ctx: state_root  # type: ignore[method-assign]
    ctx = make_context(tmp_path, monkeypatch, "remote7")

    launched = adapter.launch(ctx, Request(), ARGV, {})
    try:
        _, stderr = launched.process.communicate(timeout=30)
    finally:
        adapter.finish(ctx, launched)

    assert not list((tmp_path / "bundles" / "remote7").iterdir())
    assert launched.argv[:3] == ["python3", "-c", "<source of isobench.runtimes.shim>"]
    assert launched.process.returncode == shim.FAILURE_STATUS
    assert "box create failed" in stderr
    assert adapter.runtime_failure(launched.process.returncode, stderr) == (
        f"'{program} --root {state_root} create' exited with status 1"
    )


def test_prepare_copies_the_rootfs_once(
    loopback: Loopback, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx = make_context(tmp_path, monkeypatch, "remote8")
    image = ctx.image
    assert image is not None
    (image.rootfs.parent / "complete").unlink()

    runc_adapter(tmp_path).prepare(ctx)

    copies = [argv for argv in loopback.sent if argv[:2] == ["sh", "-c"] and "tar -x" in argv[2]]
    assert len(copies) == 1
    assert (image.rootfs.parent / "complete").read_text() == "test\n"
    assert (image.rootfs / "etc" / "passwd").exists()


def test_prepare_does_nothing_here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ctx = make_context(tmp_path, monkeypatch, "local8")
    image = ctx.image
    assert image is not None
    (image.rootfs.parent / "complete").unlink()

    runc_adapter(tmp_path).prepare(ctx)

    assert not (image.rootfs.parent / "complete").exists()
