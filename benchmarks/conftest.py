"""Fixtures of the benchmark modules: the runtime under test, prepared, and a sample recorder."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from isobench.bench.samples import Recorder, SampleWriter
from isobench.checks import Harness
from isobench.runtimes import get
from isobench.runtimes.base import Adapter


@pytest.fixture
def runtime_adapter(isobench_harness: Harness, isobench_runtime: str) -> Adapter:
    """Return the adapter under test, prepared; an unavailable runtime is an error."""
    adapter = get(isobench_runtime)
    info = adapter.availability()
    if not info.available:
        pytest.fail(f"runtime {isobench_runtime} is not available: {info.reason}", pytrace=False)
    isobench_harness.start()
    isobench_harness.prepare(adapter)
    return adapter


@pytest.fixture
def recorder(
    isobench_samples: SampleWriter, isobench_rounds: tuple[int, int]
) -> Callable[[str, str], Recorder]:
    """Return a factory of recorders: recorder(benchmark, runtime)."""
    _, warmup = isobench_rounds

    def make(benchmark: str, runtime: str, warmup_rounds: int = warmup) -> Recorder:
        return Recorder(isobench_samples, benchmark, runtime, warmup_rounds)

    return make
