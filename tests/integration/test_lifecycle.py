"""The lifecycle suite as a whole on runc, and the state module's negative controls.

Each check must pass on runc, or xfail as its module declares, or skip when it
drives an engine. Each check of the suite must have a negative control in this
module or in a sibling test_lifecycle_*.py, and the controls here must make their
checks fail through tests/data/fake-oci/fake-runc. Every run must leave nothing
on the host.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from tests.conftest import require_root, require_runtime
from tests.integration.lifecycle_support import (
    FAKE,
    SUITE,
    assert_fault_fails,
    assert_nothing_left,
    checks_of,
    expected_outcomes,
    outcomes,
    run_lifecycle,
)

pytestmark = pytest.mark.integration

#: Check, fault of the fake runtime, and the row that runs it. The capability check
#: runs on the isobox row with the fake in front of isobox, because runc itself
#: accepts an unknown capability (a declared deviation).
CONTROLS = [
    ("test_create_holds_program", "start-on-create", "runc"),
    ("test_start_runs_program", "start-ignored", "runc"),
    ("test_state_stopped_after_exit", "state-always-running", "runc"),
    ("test_state_reports_fields", "drop-annotations", "runc"),
    ("test_start_twice_fails", "start-twice-ok", "runc"),
    ("test_start_stopped_fails", "start-twice-ok", "runc"),
    ("test_create_duplicate_id_fails", "reuse-id-ok", "runc"),
    ("test_create_writes_pid_file", "no-pid-file", "runc"),
    ("test_kill_delivers_signal", "kill-ignored", "runc"),
    ("test_kill_stopped_fails", "kill-stopped-ok", "runc"),
    ("test_delete_running_fails", "delete-running-ok", "runc"),
    ("test_delete_removes_container", "keep-state-after-delete", "runc"),
    ("test_delete_removes_container", "keep-cgroups-after-delete", "runc"),
    ("test_delete_removes_container", "keep-state-dir-after-delete", "runc"),
    ("test_config_unknown_capability_fails", "accept-unknown-cap", "isobox"),
    ("test_config_unknown_namespace_fails", "accept-unknown-namespace", "runc"),
    ("test_config_unknown_namespace_fails", "failed-create-leaves-cgroups", "runc"),
    ("test_config_edit_after_create_ignored", "reread-config-on-start", "runc"),
]


def suite_modules() -> list[Path]:
    return sorted(SUITE.glob("test_*.py"))


@pytest.fixture(scope="module")
def runc_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    require_root()
    require_runtime("runc")
    out = tmp_path_factory.mktemp("lifecycle") / "runc"
    meta, records = run_lifecycle(out, "runc", {})
    assert_nothing_left(meta)
    return outcomes(records)


def all_controls() -> list[tuple[str, str, str]]:
    """Return the CONTROLS of this module and of its siblings test_lifecycle_*.py."""
    found = list(CONTROLS)
    for path in sorted(Path(__file__).parent.glob("test_lifecycle_*.py")):
        module = importlib.import_module(f"tests.integration.{path.stem}")
        found += module.CONTROLS
    return found


def test_every_check_has_control() -> None:
    controlled = {check for check, _, _ in all_controls()}
    checks = {check for module in suite_modules() for check in checks_of(module)}

    assert checks == controlled


def test_checks_pass_on_runc(runc_run: dict[str, str]) -> None:
    """Every check passes on runc, or xfails or skips as its module declares; the engine
    checks skip, since runc is no engine."""
    expected: dict[str, str] = {}
    for module in suite_modules():
        declared = expected_outcomes(module, "runc")
        if module.stem == "test_engine":
            declared = dict.fromkeys(declared, "skip")
        expected.update(declared)

    assert runc_run == expected


def test_fake_without_fault_passes(tmp_path: Path, runc_run: dict[str, str]) -> None:
    """The fake runtime with no fault gives the outcomes of runc itself."""
    meta, records = run_lifecycle(tmp_path / "run", "runc", {"ISOBENCH_RUNC": str(FAKE)})

    assert outcomes(records) == runc_run
    assert_nothing_left(meta)


@pytest.mark.parametrize(
    ("check", "fault", "row"), CONTROLS, ids=[f"{check}+{fault}" for check, fault, _ in CONTROLS]
)
def test_fault_fails_check(tmp_path: Path, check: str, fault: str, row: str) -> None:
    assert_fault_fails(tmp_path, check, fault, row)
