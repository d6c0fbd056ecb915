"""isobox, the reference runtime: the namespaces and cgroups suites, and nothing left behind."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from isobench import runtimes
from isobench.model import Request
from isobench.remnants import count, remnants
from isobench.results import read_run
from isobench.runtimes.oci import build_config
from tests.conftest import require_root, require_runtime
from tests.integration.test_cli import isobench

pytestmark = pytest.mark.integration

ISOBOX = Path(sys.executable).parent / "isobox"
IMAGES = Path("/var/cache/isobench/images")


def _bundle(tmp_path: Path, request: Request, argv: list[str], cgroup: str) -> Path:
    """Lay out a bundle with a copy of the probe image's root, as the OCI adapter does."""
    probes = sorted(IMAGES.glob("probe-*/rootfs"))
    if not probes:
        isobench("run", "--runtime", "runc", "--suite", "namespaces", "-k", "pid-ns-private")
        probes = sorted(IMAGES.glob("probe-*/rootfs"))
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    shutil.copytree(probes[-1], bundle / "rootfs", symlinks=True)
    config = build_config(request, argv, {})
    config["linux"]["cgroupsPath"] = cgroup
    (bundle / "config.json").write_text(json.dumps(config))
    return bundle


def _left(state: Path, cgroup: str) -> list[str]:
    found = [str(p) for p in state.glob("*")] if state.exists() else []
    found += [str(p) for p in Path("/sys/fs/cgroup").glob(f"*{cgroup}")]
    found += [
        line
        for line in Path("/proc/self/mountinfo").read_text().splitlines()
        if "bundle/rootfs" in line
    ]
    return found


@pytest.mark.parametrize("suite", ["namespaces", "cgroups"])
def test_suite_only_pass_xfail_skip(tmp_path: Path, suite: str) -> None:
    require_root()
    require_runtime("isobox")
    out = tmp_path / "run"

    result = isobench("run", "--runtime", "isobox", "--suite", suite, "--out", str(out))

    meta, records = read_run(out)
    outcomes = {r["outcome"] for r in records}
    problems = [
        (r["check"], r["control"], r["outcome"], r["message"][:200])
        for r in records
        if r["outcome"] not in ("pass", "xfail", "skip")
    ]
    assert result.returncode == 0, result.stdout + result.stderr
    assert records
    assert outcomes <= {"pass", "xfail", "skip"}, problems
    assert count(remnants(meta["run_id"])) == 0, remnants(meta["run_id"])


def test_run_leaves_nothing(tmp_path: Path) -> None:
    require_root()
    require_runtime("isobox")
    state = tmp_path / "state"
    bundle = _bundle(
        tmp_path, Request(memory=64 << 20, pids_limit=50), ["/bin/echo", "hi"], "/isobox-test-run"
    )

    result = subprocess.run(
        [str(ISOBOX), "--root", str(state), "run", "--bundle", str(bundle), "t1"],
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout == "hi\n"
    assert _left(state, "isobox-test-run") == []


def test_failed_create_leaves_nothing(tmp_path: Path) -> None:
    require_root()
    require_runtime("isobox")
    state = tmp_path / "state"
    bundle = _bundle(tmp_path, Request(workdir="/no/such/dir"), ["/bin/true"], "/isobox-test-fail")

    result = subprocess.run(
        [str(ISOBOX), "--root", str(state), "run", "--bundle", str(bundle), "t2"],
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 1
    assert "the working directory /no/such/dir cannot be entered" in result.stderr
    assert _left(state, "isobox-test-fail") == []


def test_missing_command_exit_127(tmp_path: Path) -> None:
    require_root()
    require_runtime("isobox")
    state = tmp_path / "state"
    bundle = _bundle(tmp_path, Request(), ["/no/such/command"], "/isobox-test-127")

    result = subprocess.run(
        [str(ISOBOX), "--root", str(state), "run", "--bundle", str(bundle), "t3"],
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 127
    assert "exec /no/such/command failed: No such file or directory" in result.stderr
    assert _left(state, "isobox-test-127") == []


def test_rejects_what_it_cannot_apply(tmp_path: Path) -> None:
    require_root()
    require_runtime("isobox")
    state = tmp_path / "state"
    bundle = _bundle(tmp_path, Request(), ["/bin/true"], "/isobox-test-seccomp")
    config = json.loads((bundle / "config.json").read_text())
    config["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ERRNO"}
    (bundle / "config.json").write_text(json.dumps(config))

    result = subprocess.run(
        [str(ISOBOX), "--root", str(state), "run", "--bundle", str(bundle), "t4"],
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 1
    assert "isobox does not load seccomp filters" in result.stderr
    assert _left(state, "isobox-test-seccomp") == []


def test_lifecycle_create_start_delete(tmp_path: Path) -> None:
    require_root()
    require_runtime("isobox")
    state = tmp_path / "state"
    bundle = _bundle(tmp_path, Request(), ["/bin/sleep", "60"], "/isobox-test-life")
    base = [str(ISOBOX), "--root", str(state)]

    # The container inherits the standard streams of 'create', so they go to a file:
    # a pipe would stay open as long as the container runs.
    with (tmp_path / "create.log").open("wb") as log:
        created = subprocess.run(
            [*base, "create", "--bundle", str(bundle), "t5"],
            stdout=log,
            stderr=log,
            timeout=60,
        )
    first = json.loads(
        subprocess.run([*base, "state", "t5"], capture_output=True, timeout=30).stdout
    )
    subprocess.run([*base, "start", "t5"], check=True, timeout=30)
    second = json.loads(
        subprocess.run([*base, "state", "t5"], capture_output=True, timeout=30).stdout
    )
    inside = subprocess.run(
        [*base, "exec", "t5", "/bin/cat", "/proc/1/cmdline"], capture_output=True, timeout=30
    )
    subprocess.run([*base, "kill", "t5", "KILL"], check=True, timeout=30)
    deadline = time.monotonic() + 10
    status = "running"
    while status != "stopped" and time.monotonic() < deadline:
        status = json.loads(
            subprocess.run([*base, "state", "t5"], capture_output=True, timeout=30).stdout
        )["status"]
        time.sleep(0.05)
    deleted = subprocess.run([*base, "delete", "t5"], capture_output=True, timeout=30)
    gone = subprocess.run([*base, "state", "t5"], capture_output=True, text=True, timeout=30)

    assert created.returncode == 0, (tmp_path / "create.log").read_text()
    assert first["status"] == "created"
    assert first["pid"] > 0
    assert second["status"] == "running"
    assert inside.stdout == b"/bin/sleep\x0060\x00"
    assert status == "stopped"
    assert deleted.returncode == 0
    assert gone.returncode == 1
    assert "container t5 does not exist" in gone.stderr
    assert _left(state, "isobox-test-life") == []


def test_signal_reaches_container(tmp_path: Path) -> None:
    require_root()
    require_runtime("isobox")
    state = tmp_path / "state"
    script = 'trap "exit 3" TERM; echo ready; while :; do sleep 1; done'
    bundle = _bundle(tmp_path, Request(), ["/bin/sh", "-c", script], "/isobox-test-sig")
    process = subprocess.Popen(
        [str(ISOBOX), "--root", str(state), "run", "--bundle", str(bundle), "t6"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None
    ready = process.stdout.readline()

    # As with runc, 'run' passes SIGTERM on to the container's init, and returns its status.
    process.send_signal(signal.SIGTERM)
    code = process.wait(30)

    assert ready == b"ready\n"
    assert code == 3
    assert _left(state, "isobox-test-sig") == []


def test_killed_run_removed_by_force_delete(tmp_path: Path) -> None:
    require_root()
    require_runtime("isobox")
    state = tmp_path / "state"
    bundle = _bundle(tmp_path, Request(), ["/bin/sleep", "600"], "/isobox-test-kill")
    process = subprocess.Popen(
        [str(ISOBOX), "--root", str(state), "run", "--bundle", str(bundle), "t7"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while not (state / "t7" / "state.json").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.2)

    # SIGKILL leaves the container running, as it does with runc; the harness's
    # journal then runs 'delete --force', which ends it and removes the rest.
    process.kill()
    process.wait(30)
    pid = json.loads((state / "t7" / "state.json").read_text())["pid"]
    deleted = subprocess.run(
        [str(ISOBOX), "--root", str(state), "delete", "--force", "t7"],
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert deleted.returncode == 0, deleted.stderr
    assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text()
    assert _left(state, "isobox-test-kill") == []


def test_listed_by_isobench() -> None:
    assert "isobox" in runtimes.names()
    assert runtimes.get("isobox").family == "oci"
    assert os.access(ISOBOX, os.X_OK)
