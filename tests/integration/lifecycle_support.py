"""What the integration tests of the lifecycle suite's modules share: expected outcomes
from a module's declarations, the fake runtime in front of a row, and the two kinds of
run (a module on a row, one check under a fault)."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from isobench.remnants import remnants
from isobench.results import read_run
from isobench.runtimes import get
from isobench.runtimes.oci import OciAdapter
from tests.conftest import REPO, SUITES, require_root, require_runtime
from tests.integration.test_cli import isobench

SUITE = SUITES / "lifecycle"
FAKE = REPO / "tests" / "data" / "fake-oci" / "fake-runc"


def load(module: Path) -> ModuleType:
    """Import a module of the suite, for its check functions and its DEVIATIONS and
    CANNOT tables (which a module may build with code)."""
    name = f"lifecycle_{module.stem}"
    spec = importlib.util.spec_from_file_location(name, module)
    assert spec is not None and spec.loader is not None
    loaded = importlib.util.module_from_spec(spec)
    # Dataclasses of the module look it up in sys.modules while it runs.
    sys.modules[name] = loaded
    try:
        spec.loader.exec_module(loaded)
    finally:
        del sys.modules[name]
    return loaded


def checks_of(module: Path) -> list[str]:
    return [name for name in vars(load(module)) if name.startswith("test_")]


def expected_outcomes(module: Path, row: str) -> dict[str, str]:
    """Return each check's outcome on ``row`` as the module declares it: skip for CANNOT,
    xfail for DEVIATIONS, pass otherwise."""
    loaded = load(module)
    expected = {}
    for check in checks_of(module):
        if row in getattr(loaded, "CANNOT", {}).get(check, {}):
            expected[check] = "skip"
        elif row in getattr(loaded, "DEVIATIONS", {}).get(check, {}):
            expected[check] = "xfail"
        else:
            expected[check] = "pass"
    return expected


def fake_env(row: str, fault: str) -> dict[str, str]:
    """Return the environment that puts the fake runtime, with ``fault``, in front of
    the OCI row's own binary."""
    adapter = get(row)
    assert isinstance(adapter, OciAdapter), f"{row} is a {adapter.family} row, not an OCI one"
    target = shutil.which(adapter.binary) or shutil.which(
        adapter.binary, path=str(Path(sys.executable).parent)
    )
    assert target is not None, f"the binary of {row}, {adapter.binary!r}, is not on PATH"
    return {
        adapter.profile.binary_env: str(FAKE),
        "ISOBENCH_FAKE_TARGET": target,
        "ISOBENCH_FAKE_FAULT": fault,
    }


def run_lifecycle(
    out: Path, runtime: str, env: dict[str, str], keyword: str | None = None
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Run the lifecycle suite through the CLI and return the run's metadata and records."""
    arguments = ["run", "--runtime", runtime, "--suite", "lifecycle", "--out", str(out)]
    if keyword is not None:
        arguments += ["-k", keyword]
    finished = isobench(*arguments, env=env, timeout=900)
    meta, records = read_run(out)
    assert records, f"the run wrote no records:\n{finished.stdout}\n{finished.stderr}"
    return meta, records


def assert_nothing_left(meta: dict[str, Any]) -> None:
    found = {kind: items for kind, items in remnants(str(meta["run_id"])).items() if items}
    assert not found, f"run {meta['run_id']} left {found}"


def outcomes(records: list[dict[str, Any]]) -> dict[str, str]:
    return {str(record["check"]): str(record["outcome"]) for record in records}


def assert_module_on_row(tmp_path: Path, module: Path, row: str) -> None:
    """Run the module's checks on ``row``: each passes, or skips or xfails as declared,
    and the run leaves nothing."""
    require_root()
    require_runtime(row)

    # -k matches module names too, so the module's stem selects its checks only.
    meta, records = run_lifecycle(tmp_path / "run", row, {}, keyword=module.stem)

    unexpected = {
        str(record["check"]): str(record.get("message", ""))[:500]
        for record in records
        if record["outcome"] not in ("pass", "xfail", "skip")
    }
    assert outcomes(records) == expected_outcomes(module, row), (
        f"unexpected outcomes on {row}: {unexpected}"
    )
    assert_nothing_left(meta)


def assert_fault_fails(tmp_path: Path, check: str, fault: str, row: str) -> None:
    """Run one check with the fake runtime and ``fault`` in front of ``row``: it fails,
    and the run leaves nothing."""
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
