"""The lifecycle suite on runc, and its negative controls on a faulty runtime.

Each check must pass on runc (or fail as the suite declares, as a strict xfail)
and must fail when tests/data/fake-oci/fake-runc breaks the behaviour it
checks. Every run must leave nothing on the host.
"""

from __future__ import annotations

import ast
import importlib
import sys
from pathlib import Path
from typing import Any

import pytest

from isobench.remnants import remnants
from isobench.results import read_run
from tests.conftest import REPO, SUITES, require_root, require_runtime
from tests.integration.test_cli import isobench

pytestmark = pytest.mark.integration

SUITE = SUITES / "lifecycle"
FAKE = REPO / "tests" / "data" / "fake-oci" / "fake-runc"
ISOBOX = Path(sys.executable).parent / "isobox"

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


def suite_checks() -> list[str]:
    """Return the names of the suite's test functions, read without importing it."""
    return [
        node.name
        for module in suite_modules()
        for node in ast.parse(module.read_text()).body
        if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")
    ]


def declared_deviations(runtime: str) -> set[str]:
    """Return the checks whose module's DEVIATIONS table names ``runtime``."""
    found: set[str] = set()
    for module in suite_modules():
        for node in ast.parse(module.read_text()).body:
            if isinstance(node, ast.AnnAssign) and getattr(node.target, "id", "") == "DEVIATIONS":
                assert node.value is not None
                table: dict[str, dict[str, str]] = ast.literal_eval(node.value)
                found |= {check for check, runtimes in table.items() if runtime in runtimes}
    return found


def run_lifecycle(
    out: Path, runtime: str, env: dict[str, str], keyword: str | None = None
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Run the lifecycle suite through the CLI and return the run's metadata and records."""
    arguments = ["run", "--runtime", runtime, "--suite", "lifecycle", "--out", str(out)]
    if keyword is not None:
        arguments += ["-k", keyword]
    finished = isobench(*arguments, env=env, timeout=600)
    meta, records = read_run(out)
    assert records, f"the run wrote no records:\n{finished.stdout}\n{finished.stderr}"
    return meta, records


def assert_nothing_left(meta: dict[str, Any]) -> None:
    found = {kind: items for kind, items in remnants(str(meta["run_id"])).items() if items}
    assert not found, f"run {meta['run_id']} left {found}"


def outcomes(records: list[dict[str, Any]]) -> dict[str, str]:
    return {str(record["check"]): str(record["outcome"]) for record in records}


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

    assert set(suite_checks()) == controlled


def engine_checks() -> set[str]:
    """Return the checks of the engine module, which drive an engine client, not runc."""
    module = SUITE / "test_engine.py"
    return {
        node.name
        for node in ast.parse(module.read_text()).body
        if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")
    }


def test_checks_pass_on_runc(runc_run: dict[str, str]) -> None:
    """Every check passes on runc, but those with a declared deviation, which xfail, and
    the engine checks, which skip."""
    deviations = declared_deviations("runc")
    engines = engine_checks()
    expected = {
        check: "skip" if check in engines else "xfail" if check in deviations else "pass"
        for check in suite_checks()
    }

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
