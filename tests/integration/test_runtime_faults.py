"""Runtimes that misbehave: a binary that hangs, an engine client that prints garbage.

The faulty runtime's checks are errors with the command and its output, and
the other runtimes of the run go on.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from isobench.remnants import count, remnants
from isobench.results import read_run
from tests.conftest import require_runtime
from tests.integration.test_cli import isobench

pytestmark = pytest.mark.integration


def wrapper(tmp_path: Path, name: str, body: str) -> Path:
    script = tmp_path / name
    script.write_text("#!/bin/sh\n" + body)
    script.chmod(0o755)
    return script


def test_hanging_runtime_times_out(tmp_path: Path) -> None:
    """A runc that hangs in 'run' gives runc errors naming the time limit; docker goes on."""
    require_runtime("runc")
    require_runtime("docker")
    runc = shutil.which("runc")
    hanging = wrapper(
        tmp_path,
        "runc",
        f'for arg; do [ "$arg" = run ] && exec sleep 3600; done\nexec {runc} "$@"\n',
    )
    out = tmp_path / "run"

    result = isobench(
        *("run", "--runtime", "runc", "--runtime", "docker", "--suite", "namespaces"),
        *("-k", "pid", "--out", str(out)),
        env={"ISOBENCH_RUNC": str(hanging), "ISOBENCH_PROBE_TIMEOUT": "5"},
    )

    meta, records = read_run(out)
    by_runtime = {r["runtime"]: r for r in records}
    assert result.returncode == 3, result.stdout + result.stderr
    assert by_runtime["runc"]["outcome"] == "error"
    assert "5" in by_runtime["runc"]["message"]
    assert {r["outcome"] for r in records if r["runtime"] == "docker"} <= {"pass", "xfail", "skip"}
    assert count(remnants(str(meta["run_id"]))) == 0


def test_garbage_engine_unavailable(tmp_path: Path) -> None:
    """A docker client that prints garbage is not available, and the report gives the reason."""
    garbage = wrapper(tmp_path, "docker", 'echo "%%% not docker %%%"\n')
    out = tmp_path / "run"

    result = isobench(
        *("run", "--runtime", "docker", "--suite", "namespaces", "-k", "pid-ns"),
        *("--out", str(out)),
        env={"ISOBENCH_DOCKER": str(garbage)},
    )

    _, records = read_run(out)
    meta = json.loads((out / "run.json").read_text())
    assert result.returncode == 3, result.stdout + result.stderr
    assert {r["outcome"] for r in records} == {"error"}
    assert "printed no JSON object" in records[0]["message"]
    assert "not docker" in meta["runtimes"]["docker"]["reason"]
