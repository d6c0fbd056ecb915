"""The containerd row: its private daemon keeps the namespace guarantees and leaves nothing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from isobench.checks import Harness
from isobench.remnants import count, remnants
from isobench.runtimes.containerd import daemon_dirs
from isobench.spec.loader import LoadedSuite
from tests.conftest import REPO, require_root, require_runtime
from tests.integration.test_cli import isobench

pytestmark = pytest.mark.integration

ACCEPTED = ("pass", "xfail", "skip")
JOURNALS = Path("/var/lib/isobench/journal")


def _processes_of(run_id: str) -> list[str]:
    """Return the processes whose command line names the run: its containerd, shims, ctr."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if run_id in cmdline:
            found.append(f"{entry.name} {cmdline.strip()}")
    return found


def containerd_remnants(run_id: str, wait_s: float = 15.0) -> dict[str, list[str]]:
    """Return what a run left: the shared scan, plus containerd's processes and directories.

    Processes get ``wait_s`` seconds to end, because a ctr client exits only after
    its daemon or its container has gone.
    """
    deadline = time.monotonic() + wait_s
    while _processes_of(run_id) and time.monotonic() < deadline:
        time.sleep(0.5)
    found = remnants(run_id)
    found["processes"] = _processes_of(run_id)
    found["containerd directories"] = [str(p) for p in daemon_dirs(run_id) if p.exists()]
    return found


def test_namespaces_suite(harness: Harness, namespaces_suite: LoadedSuite) -> None:
    require_runtime("containerd")
    broken = []
    for loaded in namespaces_suite.checks:
        verdict = harness.evaluate(loaded, "containerd")
        if verdict.outcome not in ACCEPTED:
            broken.append(f"{loaded.id}: {verdict.outcome}: {verdict.message}")
    assert not broken, "\n".join(broken)


def test_run_leaves_nothing(tmp_path: Path) -> None:
    """After a finished run, no daemon, shim, mount, directory or cgroup of it remains."""
    require_root()
    require_runtime("containerd")
    out = tmp_path / "run"

    result = isobench("run", "--runtime", "containerd", "--suite", "namespaces", "--out", str(out))

    assert result.returncode == 0, result.stdout + result.stderr
    run_id = json.loads((out / "run.json").read_text())["run_id"]
    found = containerd_remnants(run_id)
    assert count(found) == 0, found


def _wait_for_container(run_id_paths: set[Path], timeout: float) -> str | None:
    """Wait until a new run's daemon has a shim running; return the run id."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        new = {path.stem for path in set(JOURNALS.glob("*.jsonl")) - run_id_paths}
        for run_id in new:
            if any("containerd-shim" in line for line in _processes_of(run_id)):
                return run_id
        time.sleep(0.2)
    return None


def test_sigkill_then_clean(tmp_path: Path) -> None:
    """A run killed with SIGKILL while a container runs is removed by 'isobench clean'."""
    require_root()
    require_runtime("containerd")
    before = set(JOURNALS.glob("*.jsonl")) if JOURNALS.exists() else set()
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "isobench", "run", "--runtime", "containerd"),
            *("--suite", "namespaces", "--suite", "process", "--out", str(tmp_path / "run")),
        ],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        run_id = _wait_for_container(before, timeout=60)
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait(30)
    assert run_id is not None, "no containerd shim of the run was seen within 60 s"
    assert _processes_of(run_id), "the daemon ended with the harness, so nothing is tested"

    cleaned = isobench("clean")

    assert cleaned.returncode == 0, cleaned.stdout + cleaned.stderr
    found = containerd_remnants(run_id)
    assert count(found) == 0, found
