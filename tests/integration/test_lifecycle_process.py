"""The process checks of the lifecycle suite (suites/lifecycle/test_oci_process.py) on
the OCI rows, and their negative controls on a faulty runtime.

On each OCI row every check must pass, xfail as the module declares in
DEVIATIONS, or skip as it declares in CANNOT. Each check must fail when
tests/data/fake-oci/fake-runc breaks the property it checks. Every run must
leave nothing on the host, the namespaces that the checks make included.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.lifecycle_support import (
    SUITE,
    assert_fault_fails,
    assert_module_on_row,
    checks_of,
)

pytestmark = pytest.mark.integration

MODULE = SUITE / "test_oci_process.py"
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


def test_every_check_has_control() -> None:
    controlled = {check for check, _, _ in CONTROLS}

    assert controlled == set(checks_of(MODULE))


@pytest.mark.parametrize("row", ROWS)
def test_checks_on_row(tmp_path: Path, row: str) -> None:
    """Every check passes on the row, or xfails or skips as the module declares."""
    assert_module_on_row(tmp_path, MODULE, row)


@pytest.mark.parametrize(
    ("check", "fault", "row"), CONTROLS, ids=[f"{c}+{f}+{r}" for c, f, r in CONTROLS]
)
def test_fault_fails_check(tmp_path: Path, check: str, fault: str, row: str) -> None:
    assert_fault_fails(tmp_path, check, fault, row)
