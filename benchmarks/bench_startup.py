"""Startup latency by phase and for the whole run, beside the native floor.

Every round starts one container with the runtime's own CLI and times each
command (see isobench.bench.startup). The native floor is /bin/true and an
unshare of the same namespaces, measured in the same session.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from isobench.bench import startup
from isobench.bench.samples import NATIVE, Recorder, run_rounds
from isobench.checks import Harness
from isobench.model import Request
from isobench.runtimes.base import Adapter

NETWORKS = ("none", "default")


def _request(adapter: Adapter, network: str) -> Request:
    request = Request(network=network)  # type: ignore[arg-type]
    reason = adapter.unsupported(request)
    if reason is not None:
        pytest.skip(reason)
    if not startup.supports_phases(adapter):
        pytest.skip(f"{adapter.name} has no create and start commands to time")
    return request


@pytest.mark.parametrize("network", NETWORKS)
def test_startup_phases(
    benchmark: BenchmarkFixture,
    isobench_harness: Harness,
    runtime_adapter: Adapter,
    recorder: Callable[..., Recorder],
    isobench_rounds: tuple[int, int],
    network: str,
) -> None:
    """Time create, start to first output, exit and remove of one container a round."""
    request = _request(runtime_adapter, network)
    samples = recorder("startup", runtime_adapter.name)
    rounds, warmup = isobench_rounds

    def one_start() -> None:
        samples.next_round()
        times = startup.measure_phases(runtime_adapter, isobench_harness.ctx, request)
        for phase, seconds in times.items():
            samples.write(phase, "s", seconds, network=network)

    run_rounds(benchmark, one_start, rounds, warmup)


@pytest.mark.parametrize("network", NETWORKS)
def test_startup_run_rm(
    benchmark: BenchmarkFixture,
    isobench_harness: Harness,
    runtime_adapter: Adapter,
    recorder: Callable[..., Recorder],
    isobench_rounds: tuple[int, int],
    network: str,
) -> None:
    """Time the whole run of a container that is removed at its end."""
    request = _request(runtime_adapter, network)
    samples = recorder("startup", runtime_adapter.name)
    rounds, warmup = isobench_rounds

    def one_run() -> None:
        samples.next_round()
        seconds = startup.measure_run(runtime_adapter, isobench_harness.ctx, request)
        samples.write("run_rm", "s", seconds, network=network)

    run_rounds(benchmark, one_run, rounds, warmup)


@pytest.mark.parametrize("metric", ["true", "unshare"])
def test_native_floor(
    benchmark: BenchmarkFixture,
    recorder: Callable[..., Recorder],
    isobench_rounds: tuple[int, int],
    metric: str,
) -> None:
    """Time /bin/true and an unshare of a container's namespaces on the host."""
    samples = recorder("startup", NATIVE)
    rounds, warmup = isobench_rounds
    measure = startup.native_true if metric == "true" else startup.native_unshare

    def one_floor() -> None:
        samples.next_round()
        samples.write(metric, "s", measure(), network="none")

    run_rounds(benchmark, one_floor, rounds, warmup)
