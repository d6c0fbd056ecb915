"""I/O overhead: fio jobs in a container against the same jobs run natively.

Each round runs the five fio jobs natively and then in a container, on one
target. The jobs are sequential read and write, 4k random read and write,
and 4k random writes with an fsync each. The target is the container's root
filesystem, a bind mount of a host directory, or a tmpfs (/dev/shm). The
native jobs run on the same disk as the bundles, or on the host's /dev/shm.
I/O rounds are capped at 3, since a round takes several seconds.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from isobench import images
from isobench.bench import fio, workloads
from isobench.bench.samples import NATIVE, Recorder, run_rounds
from isobench.checks import Harness
from isobench.runtimes.base import Adapter

MAX_ROUNDS = 3
JOB_SECONDS = 1.0


@pytest.mark.parametrize("target", list(workloads.IO_TARGETS))
def test_io_against_native(
    benchmark: BenchmarkFixture,
    isobench_harness: Harness,
    runtime_adapter: Adapter,
    recorder: Callable[..., Recorder],
    isobench_rounds: tuple[int, int],
    target: str,
) -> None:
    """Run the fio jobs natively and in a container, one after the other, each round."""
    ctx = isobench_harness.ctx
    if "bench" not in ctx.images:
        ctx.images["bench"] = images.build_bench_image()
    rounds, warmup = isobench_rounds
    rounds, warmup = min(rounds, MAX_ROUNDS), min(warmup, 1)
    samples = recorder("io", runtime_adapter.name, warmup)

    with workloads.workspace(ctx) as space:

        def one_round() -> None:
            samples.next_round()
            native = workloads.run_fio_native(space, target, JOB_SECONDS)
            inside = workloads.run_fio(runtime_adapter, ctx, space, target, JOB_SECONDS)
            for job, value in native.items():
                samples.write(job, fio.JOB_METRICS[job][1], value, runtime=NATIVE, target=target)
            for job, value in inside.items():
                samples.write(job, fio.JOB_METRICS[job][1], value, target=target)

        run_rounds(benchmark, one_round, rounds, warmup)
