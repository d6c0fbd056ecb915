"""CPU overhead: a fixed compute loop in a container against the same loop run natively.

The loop is timed inside, from /proc/uptime, so the container's start is not
part of it. Native and container runs alternate in each round.
"""

from __future__ import annotations

from collections.abc import Callable

from pytest_benchmark.fixture import BenchmarkFixture

from isobench import runtimes
from isobench.bench import workloads
from isobench.bench.samples import NATIVE, Recorder, run_rounds
from isobench.checks import Harness
from isobench.runtimes.base import Adapter

MAX_ROUNDS = 5


def test_cpu_against_native(
    benchmark: BenchmarkFixture,
    isobench_harness: Harness,
    runtime_adapter: Adapter,
    recorder: Callable[..., Recorder],
    isobench_rounds: tuple[int, int],
) -> None:
    """Time the compute loop natively and in a container, one after the other, each round."""
    ctx = isobench_harness.ctx
    native = runtimes.get("host")
    rounds, warmup = isobench_rounds
    rounds, warmup = min(rounds, MAX_ROUNDS), min(warmup, 1)
    samples = recorder("cpu", runtime_adapter.name, warmup)

    def one_round() -> None:
        samples.next_round()
        samples.write("workload", "s", workloads.run_cpu(native, ctx), runtime=NATIVE)
        samples.write("workload", "s", workloads.run_cpu(runtime_adapter, ctx))

    run_rounds(benchmark, one_round, rounds, warmup)
