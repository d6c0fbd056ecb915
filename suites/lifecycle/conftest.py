"""Fixtures of the lifecycle suite: the containers of one check on one row."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from isobench.checks import Harness
from isobench.engine_lifecycle import CtrEngine, Engine
from isobench.lifecycle import Lifecycle
from isobench.pysuite import apply_declarations
from isobench.runtimes import get
from isobench.runtimes.containerd import ContainerdAdapter
from isobench.runtimes.engine import EngineAdapter
from isobench.runtimes.oci import OciAdapter


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
    apply_declarations(request, isobench_runtime)

    isobench_harness.start()
    isobench_harness.prepare(adapter)
    containers = Lifecycle(isobench_harness, adapter)
    try:
        yield containers
    finally:
        containers.finish()


@pytest.fixture
def engine(
    isobench_harness: Harness, isobench_runtime: str, request: pytest.FixtureRequest
) -> Iterator[Engine]:
    """Return the containers of one check on an engine row (docker, podman, containerd),
    and remove them afterwards."""
    adapter = get(isobench_runtime)
    if not isinstance(adapter, EngineAdapter | ContainerdAdapter):
        pytest.skip(
            f"this check drives an engine client (docker, podman, ctr); {isobench_runtime} "
            f"is a row of the {adapter.family} family"
        )
    info = adapter.availability()
    if not info.available:
        pytest.fail(f"runtime {isobench_runtime} is not available: {info.reason}", pytrace=False)
    apply_declarations(request, isobench_runtime)

    isobench_harness.start()
    isobench_harness.prepare(adapter)
    containers = (
        Engine(isobench_harness, adapter)
        if isinstance(adapter, EngineAdapter)
        else CtrEngine(isobench_harness, adapter)
    )
    try:
        yield containers
    finally:
        containers.finish()
