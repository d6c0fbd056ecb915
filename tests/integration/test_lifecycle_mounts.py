"""The lifecycle suite's mount and cgroupsPath checks on the OCI rows, and their
negative controls on a faulty runtime.

Each check of suites/lifecycle/test_oci_mounts.py must pass on every OCI row, or
xfail or skip as that module declares, and must fail when
tests/data/fake-oci/fake-runc breaks the behaviour it checks. Every run must leave
nothing on the host.
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

MODULE = SUITE / "test_oci_mounts.py"
ROWS = ["runc", "runsc", "crun", "isobox"]

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


def control_params() -> list[object]:
    params: list[object] = []
    for check, fault, row in CONTROLS:
        marks = []
        if check in UNFAILING:
            marks.append(pytest.mark.xfail(reason=UNFAILING[check], strict=True))
        params.append(pytest.param(check, fault, row, marks=marks, id=f"{check}+{fault}+{row}"))
    return params


def test_every_check_has_control() -> None:
    controlled = {check for check, _, _ in CONTROLS}

    assert controlled == set(checks_of(MODULE))


@pytest.mark.parametrize("row", ROWS)
def test_checks_on_row(tmp_path: Path, row: str) -> None:
    """Every check passes on the row, or xfails or skips as the module declares."""
    assert_module_on_row(tmp_path, MODULE, row)


@pytest.mark.parametrize(("check", "fault", "row"), control_params())
def test_fault_fails_check(tmp_path: Path, check: str, fault: str, row: str) -> None:
    assert_fault_fails(tmp_path, check, fault, row)
