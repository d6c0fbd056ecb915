"""The declarations that Python suites (suites/test_*.py and suites/NAME/) make per row.

A module of a Python suite may declare, per check and runtime row:

- ``CANNOT``: the row cannot express the check's request, with the reason. The
  check is a skip with that reason.
- ``DEVIATIONS``: the row is known to fail the check, with the requirement and
  what the row does instead. The check is a strict xfail: a pass is reported
  as ``xpass``, and only a failed assertion counts as the deviation, so a row
  that could not run stays an error.
"""

from __future__ import annotations

import pytest


def apply_declarations(request: pytest.FixtureRequest, runtime: str) -> None:
    """Skip or mark the running check as its module's CANNOT and DEVIATIONS declare."""
    check = request.node.originalname
    cannot = getattr(request.module, "CANNOT", {}).get(check, {})
    if runtime in cannot:
        pytest.skip(f"{runtime} cannot express this check's request: {cannot[runtime]}")
    reason = getattr(request.module, "DEVIATIONS", {}).get(check, {}).get(runtime)
    if reason is not None:
        request.applymarker(pytest.mark.xfail(reason=reason, strict=True, raises=AssertionError))
