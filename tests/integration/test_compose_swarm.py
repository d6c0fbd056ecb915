"""The compose, swarm and stack rows on a real docker engine: verdicts, and nothing left behind.

The engine is the one DOCKER_HOST names, or the host's. Each test keeps its
journal in a state directory of its own, so 'isobench clean' touches only
what the test's runs left.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO, require_root, require_runtime
from tests.integration.test_cli import isobench

pytestmark = pytest.mark.integration

ROWS = ("compose", "swarm", "stack")
ACCEPTED = ("pass", "xfail")
#: Words of the messages with which a layer refuses a request itself.
REFUSALS = ("compose itself failed", "swarm: ", "Error response from daemon")


def docker(*args: str) -> list[str]:
    result = subprocess.run(
        ["/usr/bin/docker", *args], capture_output=True, text=True, timeout=60, check=False
    )
    return result.stdout.split()


def swarm_state() -> str:
    return "".join(docker("info", "--format", "{{.Swarm.LocalNodeState}}"))


def left_by(run_id: str, swarm_before: str) -> dict[str, list[str]]:
    """Return what the run left on the engine: containers, services, networks, membership."""
    label = f"label=isobench.run={run_id}"
    found = {
        "containers": docker("ps", "--all", "--filter", label, "--format", "{{.Names}}"),
        "networks": [
            name
            for name in docker("network", "ls", "--format", "{{.Name}}")
            if run_id.lower() in name.lower()
        ],
        "services": [],
        "swarm": [],
    }
    if swarm_state() == "active":
        found["services"] = docker("service", "ls", "--filter", label, "--format", "{{.Name}}")
    if swarm_state() != swarm_before:
        found["swarm"] = [f"the node's swarm state is {swarm_state()}, was {swarm_before}"]
    return found


def test_namespaces_and_cgroups(tmp_path: Path) -> None:
    require_root()
    for row in ROWS:
        require_runtime(row)
    swarm_before = swarm_state()
    out = tmp_path / "run"
    env = {"ISOBENCH_STATE_DIR": str(tmp_path / "state")}

    run = isobench(
        *("run", "--runtime", "compose", "--runtime", "swarm", "--runtime", "stack"),
        *("--suite", "namespaces", "--suite", "cgroups", "--out", str(out)),
        env=env,
        timeout=1200,
    )

    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert {record["runtime"] for record in records} == set(ROWS), run.stdout + run.stderr
    broken = []
    for record in records:
        outcome, message = record["outcome"], record.get("message") or ""
        if outcome in ACCEPTED:
            continue
        if outcome == "skip" and message:
            continue
        if outcome == "error" and any(word in message for word in REFUSALS):
            continue
        broken.append(f"{record['runtime']} {record['check']}: {outcome}: {message[:300]}")
    assert broken == []
    run_id = json.loads((out / "run.json").read_text())["run_id"]
    assert left_by(run_id, swarm_before) == {
        "containers": [],
        "networks": [],
        "services": [],
        "swarm": [],
    }


def _service_of_run(state: Path, timeout: float) -> str | None:
    """Return the run id once a service of the run exists, or None."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for journal in (state / "journal").glob("*.jsonl"):
            run_id = journal.stem
            if swarm_state() == "active" and docker(
                "service", "ls", "--filter", f"label=isobench.run={run_id}", "--quiet"
            ):
                return run_id
        time.sleep(0.2)
    return None


def _relays_of(run_id: str) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if run_id in cmdline and "isobench.runtimes.swarm" in cmdline:
            found.append(f"{entry.name} {cmdline.strip()}")
    return found


def test_killed_run_cleaned(tmp_path: Path) -> None:
    """A run killed with SIGKILL while a service runs is removed by 'isobench clean'."""
    require_root()
    for row in ROWS:
        require_runtime(row)
    swarm_before = swarm_state()
    state = tmp_path / "state"
    env = dict(os.environ, ISOBENCH_STATE_DIR=str(state))
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "isobench", "run", "--runtime", "swarm", "--runtime"),
            # Every cgroups check requests network none, which swarm and stack skip.
            *("stack", "--runtime", "compose", "--suite", "namespaces"),
            *("--out", str(tmp_path / "run")),
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        run_id = _service_of_run(state, timeout=120)
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait(30)
    assert run_id is not None, "no service of the run was seen within 120 s"

    cleaned = isobench("clean", env={"ISOBENCH_STATE_DIR": str(state)}, timeout=300)

    assert cleaned.returncode == 0, cleaned.stdout + cleaned.stderr
    assert left_by(run_id, swarm_before) == {
        "containers": [],
        "networks": [],
        "services": [],
        "swarm": [],
    }
    deadline = time.monotonic() + 30
    while _relays_of(run_id) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert _relays_of(run_id) == []
