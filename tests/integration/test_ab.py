"""'isobench ab' on real runc: a slower build is caught, and a session leaves nothing behind."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from isobench.remnants import count, remnants
from isobench.results import read_run
from tests.conftest import REPO, require_root, require_runtime
from tests.integration.test_cli import isobench

pytestmark = pytest.mark.integration


def _wrapper(tmp_path: Path, name: str, before: str) -> Path:
    """Write a runc wrapper that runs ``before`` and then executes the installed runc."""
    runc = subprocess.run(["sh", "-c", "command -v runc"], capture_output=True, text=True)
    path = tmp_path / name
    path.write_text(f'#!/bin/sh\n{before}\nexec {runc.stdout.strip()} "$@"\n')
    path.chmod(0o755)
    return path


def test_slower_build_regressed(tmp_path: Path) -> None:
    require_root()
    require_runtime("runc")
    slow = _wrapper(tmp_path, "runc-slow", "sleep 0.02")
    out = tmp_path / "ab"

    result = isobench("ab", "runc", f"runc={slow}", "--samples", "10", "--out", str(out))

    document = json.loads((out / "ab.json").read_text())
    shift = document["metrics"]["run_rm"]
    assert result.returncode == 1, result.stdout + result.stderr
    assert shift["verdict"] == "regressed"
    assert shift["shift"] > 0.015
    assert shift["n_base"] == shift["n_new"] == 10
    assert document["sides"]["B"]["binary"] == str(slow)
    assert "B (runc=" in result.stderr
    assert "regressed" in (out / "summary.md").read_text()


def test_same_build_not_regressed(tmp_path: Path) -> None:
    require_root()
    require_runtime("runc")
    out = tmp_path / "ab"

    # A minimum effect of 50 % keeps 10 noisy pairs of one binary from a false alarm.
    result = isobench(
        "ab", "runc", "runc", "--samples", "10", "--min-effect", "50%", "--out", str(out)
    )

    document = json.loads((out / "ab.json").read_text())
    assert result.returncode == 0, result.stdout + result.stderr
    assert document["metrics"]["run_rm"]["verdict"] in ("unchanged", "inconclusive")
    assert document["status"] == "complete"


def test_phases_each_judged(tmp_path: Path) -> None:
    require_root()
    require_runtime("runc")
    out = tmp_path / "ab"

    result = isobench(
        "ab", "runc", "runc", "--samples", "6", "--phases", "--min-effect", "50%", "--out", str(out)
    )

    document = json.loads((out / "ab.json").read_text())
    assert result.returncode == 0, result.stdout + result.stderr
    assert set(document["metrics"]) == {"create", "start_to_output", "exit", "remove", "total"}
    lines = (out / "samples.jsonl").read_text().splitlines()
    sides = {json.loads(line)["params"]["side"] for line in lines}
    assert sides == {"A", "B"}


def test_interrupt_keeps_samples(tmp_path: Path) -> None:
    require_root()
    require_runtime("runc")
    out = tmp_path / "ab"
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "isobench", "ab", "runc", "runc"),
            *("--duration", "5m", "--out", str(out)),
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    samples = out / "samples.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if samples.exists() and samples.read_text().count("\n") >= 20:
            break
        time.sleep(0.05)
    else:
        process.kill()
        pytest.fail("the session wrote no samples within 120 s")

    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=60)

    meta, _ = read_run(out)
    document = json.loads((out / "ab.json").read_text())
    assert process.returncode == 130, stdout + stderr
    assert meta["status"] == "interrupted"
    assert document["status"] == "interrupted"
    assert document["pairs"] >= 8
    assert count(remnants(meta["run_id"])) == 0, remnants(meta["run_id"])
    assert not Path(f"/var/lib/isobench/journal/{meta['run_id']}.jsonl").exists()


@pytest.mark.parametrize(
    ("sides", "message"),
    [
        (("runc", "nosuch"), "unknown runtime 'nosuch'"),
        (("runc", "docker=/usr/bin/true"), "only an OCI runtime row"),
        (("runc", "runc=/nonexistent/runc"), "is not an executable file"),
        (("runc", "runc="), "names no binary"),
        (("host", "runc"), "has no container start to time"),
    ],
)
def test_bad_side_usage_error(sides: tuple[str, str], message: str) -> None:
    result = isobench("ab", *sides, "--samples", "6")
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_duration_usage_error() -> None:
    result = isobench("ab", "runc", "runc", "--duration", "soon")
    assert result.returncode == 2
    assert "invalid duration 'soon'" in result.stderr
