"""The compose, swarm and stack rows on a real docker engine: verdicts, and nothing left behind.

The engine is the one DOCKER_HOST names, or the host's. Each test keeps its
journal in a state directory of its own, so 'isobench clean' touches only
what the test's runs left. A swarm that a test's run made and did not leave
is left after the test, also when the test failed, so that the node is in
its earlier state for what runs next.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from isobench.runtimes import capabilities
from tests.conftest import REPO, require_root, require_runtime
from tests.integration.test_cli import isobench

pytestmark = pytest.mark.integration

ROWS = ("compose", "swarm", "stack")
ACCEPTED = ("pass", "xfail")
#: Words of the messages with which a layer refuses a request itself.
REFUSALS = ("compose itself failed", "swarm: ", "Error response from daemon")
#: What a swarm adds to the node beside the run's own objects: the bridge to the
#: outside, the routing mesh, and their iptables chains.
GATEWAY_BRIDGE = "docker_gwbridge"
INGRESS = "ingress"
SWARM_IPTABLES = ("docker_gwbridge", "DOCKER-INGRESS")


def docker(*args: str) -> list[str]:
    result = subprocess.run(
        ["/usr/bin/docker", *args], capture_output=True, text=True, timeout=60, check=False
    )
    return result.stdout.split()


def swarm_state() -> str:
    return "".join(docker("info", "--format", "{{.Swarm.LocalNodeState}}"))


def swarm_traces() -> list[str]:
    """Return the swarm's networks on the node and the iptables rules that name them."""
    networks = [
        name
        for name in docker("network", "ls", "--format", "{{.Name}}")
        if name in (GATEWAY_BRIDGE, INGRESS)
    ]
    saved = subprocess.run(
        ["iptables-save"], capture_output=True, text=True, timeout=60, check=False
    ).stdout
    rules = [line for line in saved.splitlines() if any(w in line for w in SWARM_IPTABLES)]
    return networks + rules


@pytest.fixture
def node_before() -> Iterator[tuple[str, list[str]]]:
    """Return the node's swarm state and swarm traces before the test. Afterwards, leave
    a swarm that the test made and remove the gateway bridge it added, even when the
    test failed."""
    state, traces = swarm_state(), swarm_traces()
    yield state, traces
    if state == "inactive" and swarm_state() != "inactive":
        subprocess.run(
            ["/usr/bin/docker", "swarm", "leave", "--force"],
            capture_output=True,
            timeout=120,
            check=False,
        )
    if GATEWAY_BRIDGE not in traces and GATEWAY_BRIDGE in docker("network", "ls"):
        subprocess.run(
            ["/usr/bin/docker", "network", "rm", GATEWAY_BRIDGE],
            capture_output=True,
            timeout=60,
            check=False,
        )


def left_by(run_id: str, before: tuple[str, list[str]]) -> dict[str, list[str]]:
    """Return what the run left on the engine: containers, services, stacks, networks,
    swarm membership and the swarm's networks and iptables rules, and relay processes."""
    swarm_before, traces_before = before
    label = f"label=isobench.run={run_id}"
    found = {
        "containers": docker("ps", "--all", "--filter", label, "--format", "{{.Names}}"),
        "networks": [
            name
            for name in docker("network", "ls", "--format", "{{.Name}}")
            if run_id.lower() in name.lower()
        ],
        "services": [],
        "stacks": [],
        "swarm": [],
        "relays": _relays_of(run_id),
    }
    if swarm_state() == "active":
        found["services"] = docker("service", "ls", "--filter", label, "--format", "{{.Name}}")
        found["stacks"] = [
            name
            for name in docker("stack", "ls", "--format", "{{.Name}}")
            if run_id.lower() in name
        ]
    if swarm_state() != swarm_before:
        found["swarm"] = [f"the node's swarm state is {swarm_state()}, was {swarm_before}"]
    else:
        found["swarm"] = [trace for trace in swarm_traces() if trace not in traces_before]
    return found


NOTHING_LEFT: dict[str, list[str]] = {
    "containers": [],
    "networks": [],
    "services": [],
    "stacks": [],
    "swarm": [],
    "relays": [],
}


def test_namespaces_and_cgroups(tmp_path: Path, node_before: tuple[str, list[str]]) -> None:
    require_root()
    for row in ROWS:
        require_runtime(row)
    out = tmp_path / "run"
    env = {"ISOBENCH_STATE_DIR": str(tmp_path / "state")}

    run = isobench(
        *("run", "--runtime", "compose", "--runtime", "swarm", "--runtime", "stack"),
        *("--suite", "namespaces", "--suite", "cgroups", "--out", str(out)),
        env=env,
        timeout=2400,
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
    assert left_by(run_id, node_before) == NOTHING_LEFT


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
        if run_id.lower() in cmdline.lower() and "isobench.runtimes.swarm" in cmdline:
            found.append(f"{entry.name} {cmdline.strip()}")
    return found


def test_killed_run_cleaned(tmp_path: Path, node_before: tuple[str, list[str]]) -> None:
    """A run killed with SIGKILL while a service runs is removed by 'isobench clean'."""
    require_root()
    for row in ROWS:
        require_runtime(row)
    state = tmp_path / "state"
    env = dict(os.environ, ISOBENCH_STATE_DIR=str(state))
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "isobench", "run", "--runtime", "swarm", "--runtime"),
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
    deadline = time.monotonic() + 30
    while _relays_of(run_id) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert left_by(run_id, node_before) == NOTHING_LEFT


#: A suite of one check whose request a stack accepts and does not apply: a tmpfs.
TMPFS_SUITE = """\
suite: layers
description: A tmpfs request through the orchestration layers.
checks:
  - id: tmpfs-mounted
    title: The requested tmpfs is a mount in the container
    request: {network: default, tmpfs: [{target: /scratch, size: 8MiB}]}
    fact: mount.point
    expect: {contains: /scratch}
    controls:
      - runtime: host
"""


def test_dropped_setting_shown(tmp_path: Path, node_before: tuple[str, list[str]]) -> None:
    """A tmpfs that a stack accepts and does not apply fails the check, and the run's
    capability matrix marks the field 'dropped' for the stack and 'yes' for compose."""
    require_root()
    for row in ("compose", "stack"):
        require_runtime(row)
    suites = tmp_path / "suites"
    suites.mkdir()
    (suites / "layers.yaml").write_text(TMPFS_SUITE)
    out = tmp_path / "run"

    isobench(
        *("run", "--suites-dir", str(suites), "--suite", "layers"),
        *("--runtime", "stack", "--runtime", "compose", "--out", str(out)),
        env={"ISOBENCH_STATE_DIR": str(tmp_path / "state")},
        timeout=900,
    )

    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    meta = json.loads((out / "run.json").read_text())
    outcomes = {record["runtime"]: record["outcome"] for record in records}
    assert outcomes == {"stack": "fail", "compose": "pass"}
    assert capabilities.cell(meta["runtimes"]["stack"]["requests"]["tmpfs"]) == "dropped"
    assert capabilities.cell(meta["runtimes"]["compose"]["requests"]["tmpfs"]) == "yes"
    assert "| `tmpfs` | dropped | yes |" in (out / "summary.md").read_text()
    assert left_by(meta["run_id"], node_before) == NOTHING_LEFT
