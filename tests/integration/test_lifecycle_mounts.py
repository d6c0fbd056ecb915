"""The lifecycle suite's mount and cgroupsPath checks on the OCI rows, and their
negative controls on a faulty runtime.

Each check of suites/lifecycle/test_oci_mounts.py must pass on every OCI row, or
xfail or skip as that module declares, and must fail when
tests/data/fake-oci/fake-runc breaks the behaviour it checks. Every run must leave
nothing on the host.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

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

MODULE = SUITE / "test_oci_mounts.py"
#: Selects the module's checks, and only those, in 'isobench run -k'.
KEYWORD = "test_oci_mounts"
ROWS = ("runc", "runsc", "crun", "isobox")

#: Check, fault of the fake runtime, and the row that runs it. The rootfsPropagation
#: checks run on crun, because runc gives the root mount the same propagation whatever
#: the value (a declared deviation).
CONTROLS = [
    ("test_propagation_rootfs_private", "rewrite-rootfs-propagation", "crun"),
    ("test_propagation_rootfs_slave", "rewrite-rootfs-propagation", "crun"),
    ("test_propagation_rootfs_shared", "rewrite-rootfs-propagation", "crun"),
    ("test_propagation_rootfs_unbindable", "rewrite-rootfs-propagation", "crun"),
    ("test_propagation_bind_private", "rewrite-bind-propagation", "runc"),
    ("test_propagation_bind_slave", "rewrite-bind-propagation", "runc"),
    ("test_propagation_bind_shared", "rewrite-bind-propagation", "runc"),
    ("test_mount_options_applied", "drop-mount-option", "runc"),
    ("test_cgroups_path_absolute", "move-cgroups-path", "runc"),
    ("test_cgroups_path_relative", "move-cgroups-path", "runc"),
]

#: Controls that cannot show a failure, with the reason: a strict xfail.
UNFAILING = {
    "test_propagation_rootfs_slave": "no OCI row on this host passes the check (runc, crun "
    "and runsc deviate, isobox rejects rootfsPropagation), so a fault can only turn its "
    "declared xfail into another xfail",
}


def suite_module() -> ModuleType:
    """Import the suite module for its DEVIATIONS and CANNOT tables."""
    spec = importlib.util.spec_from_file_location("lifecycle_oci_mounts", MODULE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # The module's dataclasses look their module up in sys.modules while it runs.
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[spec.name]
    return module


def expected_outcomes(runtime: str) -> dict[str, str]:
    """Return each check's expected outcome on ``runtime``: skip, xfail or pass."""
    module = suite_module()
    checks = [name for name in dir(module) if name.startswith("test_")]
    expected = {}
    for check in checks:
        if runtime in module.CANNOT.get(check, {}):
            expected[check] = "skip"
        elif runtime in module.DEVIATIONS.get(check, {}):
            expected[check] = "xfail"
        else:
            expected[check] = "pass"
    return expected


def fake_env(row: str, fault: str) -> dict[str, str]:
    """Return the environment that puts the fake runtime with ``fault`` in front of ``row``."""
    env = {"ISOBENCH_FAKE_FAULT": fault}
    if row == "isobox":
        env.update(ISOBENCH_ISOBOX=str(FAKE), ISOBENCH_FAKE_TARGET=str(ISOBOX))
    elif row == "crun":
        env.update(ISOBENCH_CRUN=str(FAKE), ISOBENCH_FAKE_TARGET="crun")
    else:
        env["ISOBENCH_RUNC"] = str(FAKE)
    return env


def test_controls_name_every_check() -> None:
    controlled = {check for check, _, _ in CONTROLS}

    assert controlled == set(expected_outcomes("runc"))


@pytest.mark.parametrize("row", ROWS)
def test_checks_on_row(tmp_path: Path, row: str) -> None:
    """Every check passes on the row, or xfails or skips as the module declares."""
    require_root()
    require_runtime(row)

    meta, records = run_lifecycle(tmp_path / "run", row, {}, keyword=KEYWORD)

    observed = outcomes(records)
    messages = {
        str(record["check"]): str(record.get("message", ""))[:500]
        for record in records
        if record["outcome"] not in ("pass", "xfail", "skip")
    }
    assert observed == expected_outcomes(row), f"unexpected outcomes on {row}: {messages}"
    assert_nothing_left(meta)


def control_params() -> list[object]:
    params: list[object] = []
    for check, fault, row in CONTROLS:
        marks = []
        if check in UNFAILING:
            marks.append(pytest.mark.xfail(reason=UNFAILING[check], strict=True))
        params.append(pytest.param(check, fault, row, marks=marks, id=f"{check}+{fault}+{row}"))
    return params


@pytest.mark.parametrize(("check", "fault", "row"), control_params())
def test_fault_fails_mount_check(tmp_path: Path, check: str, fault: str, row: str) -> None:
    require_root()
    require_runtime(row)

    meta, records = run_lifecycle(tmp_path / "run", row, fake_env(row, fault), keyword=check)

    assert [record["check"] for record in records] == [check]
    record = records[0]
    assert_nothing_left(meta)
    assert record["outcome"] == "fail", (
        f"{check} on {row} with the fault {fault}: expected fail, observed "
        f"{record['outcome']}: {str(record['message'])[:1000]}"
    )
