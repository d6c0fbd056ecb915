"""A run killed with SIGKILL leaves a journal, and 'isobench clean' removes what it names."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from isobench.remnants import count, remnants
from tests.conftest import REPO, require_runtime
from tests.integration.test_cli import isobench

pytestmark = pytest.mark.integration


def _journals_of(pid: int, paths: set[Path]) -> set[str]:
    """Return the run ids of the journals that the process ``pid`` opened."""
    found = set()
    for path in paths:
        first = path.read_text(encoding="utf-8").splitlines()[:1]
        if first and json.loads(first[0]).get("pid") == pid:
            found.add(path.stem)
    return found


@pytest.mark.parametrize("delay", [3, 6, 9])
def test_sigkill_then_clean(tmp_path: Path, delay: int) -> None:
    """SIGKILL at 3, 6 and 9 seconds, then 'isobench clean': nothing of the run remains."""
    for runtime in ("docker", "podman", "runc"):
        require_runtime(runtime)
    out = tmp_path / "run"
    journals = Path("/var/lib/isobench/journal")
    before = set(journals.glob("*.jsonl")) if journals.exists() else set()
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "isobench", "run", "--suite", "cgroups"),
            *("--runtime", "docker", "--runtime", "runc", "--runtime", "podman"),
            *("--out", str(out)),
        ],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(delay)
    os.kill(process.pid, signal.SIGKILL)
    process.wait(30)
    # The run's id is in its run.json, or, if it was killed before writing that, in
    # the name of the journal it started. Journals of other runs on the host are left out.
    run_ids = _journals_of(process.pid, set(journals.glob("*.jsonl")) - before)
    if (out / "run.json").exists():
        run_ids.add(json.loads((out / "run.json").read_text())["run_id"])

    cleaned = isobench("clean")

    assert cleaned.returncode == 0, cleaned.stdout + cleaned.stderr
    for run_id in run_ids:
        found = remnants(run_id)
        assert count(found) == 0, found


def test_next_run_cleans_killed(tmp_path: Path) -> None:
    """The next 'isobench run' removes what a run killed with SIGKILL left."""
    require_runtime("runc")
    journals = Path("/var/lib/isobench/journal")
    before = set(journals.glob("*.jsonl")) if journals.exists() else set()
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "isobench", "run", "--suite", "cgroups"),
            *("--runtime", "runc", "--out", str(tmp_path / "killed")),
        ],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(6)
    os.kill(process.pid, signal.SIGKILL)
    process.wait(30)
    killed = _journals_of(process.pid, set(journals.glob("*.jsonl")) - before)
    assert killed

    result = isobench(
        *("run", "--suite", "namespaces", "--runtime", "runc", "-k", "pid-ns-private"),
        *("--out", str(tmp_path / "next")),
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "earlier run: removed" in result.stderr
    for run_id in killed:
        found = remnants(run_id)
        assert count(found) == 0, found
