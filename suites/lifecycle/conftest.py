"""Fixtures of the lifecycle suite: the containers of one check on one row."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from isobench.checks import Harness
from isobench.lifecycle import Lifecycle
from isobench.runtimes import get
from isobench.runtimes.oci import OciAdapter


def declare_deviation(request: pytest.FixtureRequest, runtime: str) -> None:
    """Apply the module's declarations about ``runtime`` to the check.

    ``CANNOT`` names the checks a runtime cannot express (it refuses the property,
    as the specification allows): a skip with the reason. ``DEVIATIONS`` names the
    checks a runtime fails: a strict xfail. Only a failed assertion is the
    deviation: a runtime that could not run stays an error.
    """
    cannot = getattr(request.module, "CANNOT", {}).get(request.node.originalname, {})
    if runtime in cannot:
        pytest.skip(f"{runtime} cannot express this check's request: {cannot[runtime]}")
    deviations = getattr(request.module, "DEVIATIONS", {})
    reason = deviations.get(request.node.originalname, {}).get(runtime)
    if reason is not None:
        request.applymarker(pytest.mark.xfail(reason=reason, strict=True, raises=AssertionError))


@pytest.fixture
def lifecycle(
    isobench_harness: Harness, isobench_runtime: str, request: pytest.FixtureRequest
) -> Iterator[Lifecycle]:
    """Return the containers of one check on an OCI runtime, and remove them afterwards."""
    adapter = get(isobench_runtime)
    if not isinstance(adapter, OciAdapter):
        pytest.skip(
            f"this check drives an OCI runtime CLI; {isobench_runtime} is a {adapter.family} row"
        )
    info = adapter.availability()
    if not info.available:
        pytest.fail(f"runtime {isobench_runtime} is not available: {info.reason}", pytrace=False)
    declare_deviation(request, isobench_runtime)

    isobench_harness.start()
    isobench_harness.prepare(adapter)
    containers = Lifecycle(isobench_harness, adapter)
    try:
        yield containers
    finally:
        containers.finish()
