"""Startup under concurrency: 1, 2, 4 and 8 whole runs at once.

Each round starts a batch of containers together; every container's latency
and the batch's throughput (containers per second of wall time) are samples.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from isobench.bench import startup, workloads
from isobench.bench.samples import Recorder, run_rounds
from isobench.checks import Harness
from isobench.runtimes.base import Adapter


@pytest.mark.parametrize("concurrency", [1, 2, 4, 8])
def test_concurrent_starts(
    benchmark: BenchmarkFixture,
    isobench_harness: Harness,
    runtime_adapter: Adapter,
    recorder: Callable[..., Recorder],
    isobench_rounds: tuple[int, int],
    concurrency: int,
) -> None:
    """Start a batch of containers at once and time each one and the batch."""
    if not startup.supports_phases(runtime_adapter):
        pytest.skip(f"{runtime_adapter.name} has no run command to time")
    samples = recorder("concurrency", runtime_adapter.name)
    rounds, warmup = isobench_rounds

    def one_batch() -> None:
        samples.next_round()
        latencies, wall = workloads.run_concurrent(
            runtime_adapter, isobench_harness.ctx, concurrency
        )
        for seconds in latencies:
            samples.write("latency", "s", seconds, concurrency=concurrency)
        samples.write("throughput", "containers/s", concurrency / wall, concurrency=concurrency)

    run_rounds(benchmark, one_batch, rounds, warmup)
