"""Memory footprint: what a runtime keeps on the host per idle container, at 1, 10 and 50.

Each measurement starts that many containers running sleep, sums the PSS of
the processes in their cgroups and of the runtime's helper that parents each
one (a shim, conmon), divides by the count, and removes them all.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from isobench.bench import startup, workloads
from isobench.bench.samples import Recorder, run_rounds
from isobench.checks import Harness
from isobench.runtimes.base import Adapter


@pytest.mark.parametrize("containers", [1, 10, 50])
def test_idle_density(
    benchmark: BenchmarkFixture,
    isobench_harness: Harness,
    runtime_adapter: Adapter,
    recorder: Callable[..., Recorder],
    containers: int,
) -> None:
    """Measure the PSS that idle containers cost, per container and in total."""
    if not startup.supports_phases(runtime_adapter):
        pytest.skip(f"{runtime_adapter.name} cannot start a detached container")
    samples = recorder("memory", runtime_adapter.name, 0)

    def one_measure() -> None:
        samples.next_round()
        per_container, total = workloads.measure_density(
            runtime_adapter, isobench_harness.ctx, containers
        )
        samples.write("pss_per_container", "KiB", per_container, containers=containers)
        samples.write("pss_total", "KiB", total, containers=containers)

    run_rounds(benchmark, one_measure, 1, 0)
