"""The hook checks of the lifecycle suite (suites/lifecycle/test_oci_hooks.py) on the
OCI rows, and their negative controls on a faulty runtime.

On each OCI row every hook check must pass, or xfail as the module declares in
DEVIATIONS. Each check must fail when tests/data/fake-oci/fake-runc rewrites
the hooks of config.json to break the property it checks, on a row where the
check passes. Every run must leave nothing on the host.
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

MODULE = SUITE / "test_oci_hooks.py"
ROWS = ["runc", "runsc", "crun", "isobox"]

#: Check, fault of the fake runtime, and the row that runs it: one where the check
#: passes, because a declared deviation turns the failure into an xfail.
CONTROLS = [
    ("test_hook_create_order", "hooks-drop-create-container", "runc"),
    ("test_hook_start_order", "hooks-poststart-in-create", "crun"),
    ("test_hook_poststop_after_delete", "hooks-poststop-in-poststart", "runc"),
    ("test_hook_state_on_stdin", "hooks-stdin-null", "runsc"),
    ("test_hook_create_failure_aborts", "hooks-ignore-early-failure", "runc"),
    ("test_hook_start_failure_aborts", "hooks-ignore-early-failure", "runc"),
    ("test_hook_poststart_failure_warns", "hooks-poststart-in-create", "crun"),
    ("test_hook_poststop_failure_warns", "hooks-poststop-failure-fatal", "runc"),
    ("test_hook_timeout_aborts_create", "hooks-drop-timeout", "runc"),
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
