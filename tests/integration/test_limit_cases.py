"""Limits where runtimes differ: OOM flags, exec and the pids limit, gVisor sandboxes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from isobench.checks import Harness
from isobench.model import Request
from isobench.runtimes import get
from isobench.spec.loader import LoadedCheck, load_suite
from tests.conftest import SUITES, require_runtime

pytestmark = pytest.mark.integration


def cgroups_check(check_id: str) -> LoadedCheck:
    return next(c for c in load_suite(SUITES / "cgroups.yaml").checks if c.id == check_id)


@pytest.mark.parametrize(("runtime", "flag"), [("docker", "true"), ("podman", "false")])
def test_oom_flag_beside_kernel(harness: Harness, runtime: str, flag: str) -> None:
    """The kernel's OOM count decides the verdict, and the engine's flag is reported."""
    require_runtime(runtime)

    verdict = harness.evaluate(cgroups_check("memory-over-limit-killed"), runtime)

    note = next(n for n in verdict.notes if n.startswith("OOM kills counted by the kernel"))
    assert verdict.outcome == "pass"
    assert f"OOMKilled flag: {flag}" in note
    assert ("DISAGREE" in note) == (flag == "false")


def test_fork_refused_exec_counted(harness: Harness) -> None:
    """Forks past the pids limit are refused, while exec can pass the count."""
    require_runtime("docker")

    fork = harness.evaluate(cgroups_check("pids-fork-loop-bounded"), "docker")
    exec_ = harness.evaluate(cgroups_check("pids-exec-limit-kept"), "docker")

    assert fork.outcome == "pass"
    assert exec_.outcome == "pass"
    assert any("after 8 processes were added through exec" in note for note in exec_.notes)


def test_runsc_small_pids_error(harness: Harness) -> None:
    """A gVisor sandbox that cannot start under a pids limit is an error."""
    require_runtime("runsc")

    verdict = harness.evaluate(cgroups_check("pids-fork-loop-bounded"), "runsc")

    assert verdict.outcome == "error"
    assert "did not start on runsc" in verdict.message


def test_runsc_guest_host_counts(harness: Harness) -> None:
    require_runtime("runsc")
    adapter = get("runsc")
    argv = ["sh", "-c", "i=0; while [ $i -lt 10 ]; do sleep 20 & i=$((i+1)); done"]

    execution, exit_code, _ = harness.run_held(adapter, Request(pids_limit=500), argv)

    view = execution.host_view
    assert exit_code == 0
    assert int(str(view["inside.processes"])) >= 11
    assert int(str(view["cg.pids.current"])) > int(str(view["inside.processes"]))


def test_oom_leaves_no_file_where_started(tmp_path: Path) -> None:
    """podman's conmon writes a file 'oom' into its working directory when a container is
    OOM-killed: the run's own directory takes it, not the directory isobench started in."""
    require_runtime("podman")
    out = tmp_path / "run"
    started_in = tmp_path / "cwd"
    started_in.mkdir()

    result = subprocess.run(
        [
            *(sys.executable, "-m", "isobench", "run", "--runtime", "podman"),
            *("--suite", "cgroups", "-k", "memory-over-limit-killed", "--out", str(out)),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=started_in,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert list(started_in.iterdir()) == []
