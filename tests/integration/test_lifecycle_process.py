"""The process checks of the lifecycle suite (suites/lifecycle/test_oci_process.py) on
the OCI rows, and their negative controls on a faulty runtime.

On each OCI row every check must pass, xfail as the module declares in
DEVIATIONS, or skip as it declares in CANNOT. Each check must fail when
tests/data/fake-oci/fake-runc breaks the property it checks. Every run must
leave nothing on the host, the namespaces that the checks make included.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import require_root, require_runtime
from tests.integration.test_lifecycle import (
    FAKE,
    ISOBOX,
    SUITE,
    assert_nothing_left,
    outcomes,
    run_lifecycle,
)

pytestmark = pytest.mark.integration

MODULE = SUITE / "test_oci_process.py"
#: Selects the checks of MODULE only: pytest's -k matches the module name too.
KEYWORD = MODULE.stem
ROWS = ["runc", "runsc", "crun", "isobox"]

#: Check, fault of the fake runtime, and the row that runs it.
CONTROLS = [
    ("test_join_network_namespace", "drop-namespace-path", "runc"),
    ("test_join_uts_namespace", "drop-namespace-path", "runc"),
    ("test_join_ipc_namespace", "drop-namespace-path", "runc"),
    ("test_join_without_path_new", "share-pathless-namespaces", "runc"),
    ("test_sysctl_network_applied", "drop-sysctl", "runc"),
    ("test_sysctl_ipc_applied", "drop-sysctl", "runc"),
    ("test_oom_score_adj_applied", "drop-oom-score-adj", "runc"),
    ("test_rlimits_applied", "change-rlimit", "runc"),
    ("test_idmap_maps_applied", "change-mapping", "runc"),
    ("test_idmap_host_ids", "change-mapping", "runc"),
    ("test_rlimits_applied", "change-rlimit", "isobox"),
    ("test_idmap_host_ids", "change-mapping", "isobox"),
]


def module_checks() -> list[str]:
    return [
        node.name
        for node in ast.parse(MODULE.read_text()).body
        if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")
    ]


def module_table(name: str) -> dict[str, dict[str, str]]:
    """Return the module's DEVIATIONS or CANNOT table, read without importing it."""
    for node in ast.parse(MODULE.read_text()).body:
        if isinstance(node, ast.AnnAssign) and getattr(node.target, "id", "") == name:
            assert node.value is not None
            table: dict[str, dict[str, str]] = ast.literal_eval(node.value)
            return table
    return {}


def expected_outcomes(row: str) -> dict[str, str]:
    deviations = module_table("DEVIATIONS")
    cannot = module_table("CANNOT")
    expected = {}
    for check in module_checks():
        if row in cannot.get(check, {}):
            expected[check] = "skip"
        elif row in deviations.get(check, {}):
            expected[check] = "xfail"
        else:
            expected[check] = "pass"
    return expected


def test_every_check_has_control() -> None:
    controlled = {check for check, _, _ in CONTROLS}

    assert set(module_checks()) == controlled


@pytest.mark.parametrize("row", ROWS)
def test_checks_on_row(tmp_path: Path, row: str) -> None:
    """Every check passes on the row, or xfails or skips as the module declares."""
    require_root()
    require_runtime(row)

    meta, records = run_lifecycle(tmp_path / "run", row, {}, keyword=KEYWORD)

    assert outcomes(records) == expected_outcomes(row)
    assert_nothing_left(meta)


@pytest.mark.parametrize(
    ("check", "fault", "row"),
    CONTROLS,
    ids=[f"{check}+{fault}+{row}" for check, fault, row in CONTROLS],
)
def test_fault_fails_check(tmp_path: Path, check: str, fault: str, row: str) -> None:
    require_root()
    require_runtime(row)
    env = {"ISOBENCH_FAKE_FAULT": fault}
    if row == "isobox":
        env.update(ISOBENCH_ISOBOX=str(FAKE), ISOBENCH_FAKE_TARGET=str(ISOBOX))
    else:
        env["ISOBENCH_RUNC"] = str(FAKE)

    meta, records = run_lifecycle(tmp_path / "run", row, env, keyword=check)

    assert [record["check"] for record in records] == [check]
    record = records[0]
    assert record["outcome"] == "fail", (
        f"{check} on {row} with the fault {fault}: expected fail, observed "
        f"{record['outcome']}: {str(record['message'])[:1000]}"
    )
    assert_nothing_left(meta)
