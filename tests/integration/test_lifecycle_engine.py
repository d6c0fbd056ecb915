"""The engine checks of the lifecycle suite on the engine rows, and their negative
controls on a faulty engine client.

Each check of suites/lifecycle/test_engine.py must pass, fail as its module
declares (a strict xfail) or skip with a reason on docker, podman, docker+runsc,
podman+runsc and containerd. It must fail when tests/data/fake-engine/fake-engine
breaks the behaviour it checks. Every run must leave nothing on the host,
networks and pods included.
"""

from __future__ import annotations

import ast
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO, require_root, require_runtime
from tests.integration.lifecycle_support import (
    SUITE,
    assert_nothing_left,
    expected_outcomes,
    outcomes,
    run_lifecycle,
)

pytestmark = pytest.mark.integration

MODULE = SUITE / "test_engine.py"
FAKE = REPO / "tests" / "data" / "fake-engine" / "fake-engine"
CLIENTS = {"docker": "/usr/bin/docker", "podman": "/usr/bin/podman"}
ROWS = ["docker", "podman", "docker+runsc", "podman+runsc", "containerd"]
#: Only the engine checks: the OCI checks of the suite skip on these rows.
KEYWORD = "test_engine"

#: Check, fault of the fake engine client, and the row that runs it.
CONTROLS = [
    ("test_engine_state_create_start_exit", "inspect-created-as-running", "docker"),
    ("test_engine_state_create_start_exit", "inspect-exit-code-zero", "docker"),
    ("test_engine_remove_clears_state", "rm-ignored", "docker"),
    ("test_engine_sysctl_namespaced", "drop-sysctl", "docker"),
    ("test_engine_oom_score_adj", "drop-oom-score-adj", "docker"),
    ("test_engine_bind_propagation", "propagation-private", "docker"),
    ("test_engine_bind_propagation", "propagation-slave", "docker"),
    ("test_engine_bind_propagation_rshared", "propagation-private", "docker"),
    ("test_engine_share_network", "unshare-network", "docker"),
    ("test_engine_share_pid", "unshare-pid", "docker"),
    ("test_engine_share_ipc", "unshare-ipc", "docker"),
    ("test_engine_pod_shares_namespaces", "drop-pod", "podman"),
]


def engine_checks() -> list[str]:
    return [
        node.name
        for node in ast.parse(MODULE.read_text()).body
        if isinstance(node, ast.FunctionDef) and node.name.startswith(KEYWORD)
    ]


def exact_keyword(check: str) -> str:
    """Return a -k expression that selects ``check`` and not the checks whose names
    contain its name."""
    longer = [other for other in engine_checks() if other != check and check in other]
    return " and ".join([check, *(f"not {other}" for other in longer)])


def labelled(run_id: str) -> dict[str, list[str]]:
    """Return the networks and pods of the engines that carry the run's label."""
    label = f"label=isobench.run={run_id}"
    listings = {
        "docker networks": ["docker", "network", "ls", "--filter", label, "--format", "{{.Name}}"],
        "podman networks": ["podman", "network", "ls", "--filter", label, "--format", "{{.Name}}"],
        "podman pods": ["podman", "pod", "ls", "--filter", label, "--format", "{{.Name}}"],
    }
    found = {}
    for kind, argv in listings.items():
        binary = CLIENTS[argv[0]]
        if not Path(binary).exists():
            continue
        listed = subprocess.run(
            [binary, *argv[1:]], capture_output=True, text=True, timeout=60, check=True
        )
        found[kind] = listed.stdout.split()
    return {kind: names for kind, names in found.items() if names}


def assert_engine_nothing_left(meta: dict[str, Any]) -> None:
    assert_nothing_left(meta)
    left = labelled(str(meta["run_id"]))
    assert not left, f"run {meta['run_id']} left {left}"


@pytest.mark.parametrize("row", ROWS)
def test_engine_checks_on_row(tmp_path: Path, row: str) -> None:
    """Every engine check passes, xfails as declared or skips with a reason."""
    require_root()
    require_runtime(row)
    deviations = {
        check for check, outcome in expected_outcomes(MODULE, row).items() if outcome == "xfail"
    }

    meta, records = run_lifecycle(tmp_path / "run", row, {}, keyword=KEYWORD)

    assert sorted(outcomes(records)) == sorted(engine_checks())
    for record in records:
        check, outcome = record["check"], record["outcome"]
        expected = {"xfail"} if check in deviations else {"pass", "skip"}
        assert outcome in expected, (
            f"{check} on {row}: expected {sorted(expected)}, observed {outcome}: "
            f"{str(record['message'])[:1000]}"
        )
        if outcome == "skip":
            assert str(record["message"]).strip(), f"{check} on {row}: a skip without a reason"
    if row == "docker":
        skipped = [check for check, outcome in outcomes(records).items() if outcome == "skip"]
        assert skipped == ["test_engine_pod_shares_namespaces"], (
            f"skips on docker: expected only the podman pod check, observed {skipped}"
        )
    assert_engine_nothing_left(meta)


def fake_environment(row: str, fault: str) -> dict[str, str]:
    engine = row.split("+", 1)[0]
    variable = {"docker": "ISOBENCH_DOCKER", "podman": "ISOBENCH_PODMAN"}[engine]
    return {
        variable: str(FAKE),
        "ISOBENCH_FAKE_TARGET": CLIENTS[engine],
        "ISOBENCH_FAKE_FAULT": fault,
    }


@pytest.mark.parametrize("row", ["docker", "podman"])
def test_fake_engine_without_fault_passes(tmp_path: Path, row: str) -> None:
    """The fake client with no fault passes every check that the row runs."""
    require_root()
    require_runtime(row)

    meta, records = run_lifecycle(tmp_path / "run", row, fake_environment(row, ""), KEYWORD)

    observed = outcomes(records)
    assert all(outcome in ("pass", "skip") for outcome in observed.values()), observed
    assert_engine_nothing_left(meta)


@pytest.mark.parametrize(
    ("check", "fault", "row"), CONTROLS, ids=[f"{check}+{fault}" for check, fault, _ in CONTROLS]
)
def test_engine_fault_fails_check(tmp_path: Path, check: str, fault: str, row: str) -> None:
    require_root()
    require_runtime(row)

    environment = fake_environment(row, fault)
    meta, records = run_lifecycle(tmp_path / "run", row, environment, exact_keyword(check))

    assert [record["check"] for record in records] == [check]
    record = records[0]
    assert record["outcome"] == "fail", (
        f"{check} on {row} with the fault {fault}: expected fail, observed "
        f"{record['outcome']}: {str(record['message'])[:1000]}"
    )
    assert_engine_nothing_left(meta)
