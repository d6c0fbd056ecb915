"""The hook checks of the lifecycle suite (suites/lifecycle/test_oci_hooks.py) on the
OCI rows, and their negative controls on a faulty runtime.

On each OCI row every hook check must pass, or xfail as the module declares in
DEVIATIONS. Each check must fail when tests/data/fake-oci/fake-runc rewrites
the hooks of config.json to break the property it checks, on a row where the
check passes. Every run must leave nothing on the host.
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path
from types import ModuleType

import pytest

from isobench.runtimes import get
from isobench.runtimes.oci import OciAdapter
from tests.conftest import require_root, require_runtime
from tests.integration.test_lifecycle import (
    FAKE,
    SUITE,
    assert_nothing_left,
    outcomes,
    run_lifecycle,
)

pytestmark = pytest.mark.integration

MODULE = SUITE / "test_oci_hooks.py"
#: Selects the checks of MODULE only, because pytest's -k also matches module names.
KEYWORD = MODULE.stem
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


def hooks_module() -> ModuleType:
    """Import MODULE, whose DEVIATIONS table gets its isobox entries from a loop."""
    spec = importlib.util.spec_from_file_location("lifecycle_oci_hooks", MODULE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def expected_outcomes(row: str) -> dict[str, str]:
    module = hooks_module()
    checks = [name for name in vars(module) if name.startswith("test_hook_")]
    expected = {}
    for check in checks:
        if row in module.CANNOT.get(check, {}):
            expected[check] = "skip"
        elif row in module.DEVIATIONS.get(check, {}):
            expected[check] = "xfail"
        else:
            expected[check] = "pass"
    return expected


def fake_env(row: str, fault: str) -> dict[str, str]:
    """Return the environment that puts the fake runtime, with ``fault``, in front of
    the row's own binary."""
    adapter = get(row)
    assert isinstance(adapter, OciAdapter), f"{row} is a {adapter.family} row, not an OCI one"
    target = shutil.which(adapter.binary)
    assert target is not None, f"the binary of {row}, {adapter.binary!r}, is not on PATH"
    return {
        adapter.profile.binary_env: str(FAKE),
        "ISOBENCH_FAKE_TARGET": target,
        "ISOBENCH_FAKE_FAULT": fault,
    }


def test_every_hook_check_has_control() -> None:
    controlled = {check for check, _, _ in CONTROLS}

    assert set(expected_outcomes("runc")) == controlled


@pytest.mark.parametrize("row", ROWS)
def test_hook_checks_on_row(tmp_path: Path, row: str) -> None:
    """Every hook check passes on the row, or xfails as the module declares."""
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
def test_hook_fault_fails_check(tmp_path: Path, check: str, fault: str, row: str) -> None:
    require_root()
    require_runtime(row)

    meta, records = run_lifecycle(tmp_path / "run", row, fake_env(row, fault), keyword=check)

    assert [record["check"] for record in records] == [check]
    record = records[0]
    assert record["outcome"] == "fail", (
        f"{check} on {row} with the fault {fault}: expected fail, observed "
        f"{record['outcome']}: {str(record['message'])[:1000]}"
    )
    assert_nothing_left(meta)
