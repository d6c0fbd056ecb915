"""Fixtures of the network suite: the containers and networks of one check on one row."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from isobench.checks import Harness
from isobench.peers import Net
from isobench.pysuite import apply_declarations
from isobench.runtimes import get


@pytest.fixture
def net(
    isobench_harness: Harness, isobench_runtime: str, request: pytest.FixtureRequest
) -> Iterator[Net]:
    """Return the row of one network check, and remove the check's networks afterwards."""
    adapter = get(isobench_runtime)
    info = adapter.availability()
    if not info.available:
        pytest.fail(f"runtime {isobench_runtime} is not available: {info.reason}", pytrace=False)
    apply_declarations(request, isobench_runtime)
    isobench_harness.start()
    isobench_harness.prepare(adapter)
    row = Net(isobench_harness, adapter)
    try:
        yield row
    finally:
        row.finish()
