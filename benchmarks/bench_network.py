"""Network latency and throughput of each path, beside the native loopback.

A server (sockperf and iperf3) stays up for every round of a path, and each
round runs one client to its end (see isobench.bench.network). The native
floor has both ends on the host's loopback and is measured once per session.
The container paths are two containers on the default network, the host to
a port published on 127.0.0.1, and a container on the host's network to a
server on the host's loopback. Network rounds are capped at 5 and warm-ups at
1, since a round takes about 5 s: sockperf 3.7 sleeps 2 s before it measures.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from isobench import images, peers, runtimes
from isobench.bench import network
from isobench.bench.samples import NATIVE, Recorder, run_rounds
from isobench.checks import Harness
from isobench.errors import HarnessError, UsageError
from isobench.model import Request
from isobench.runtimes.base import Adapter

# NOTE: peers.serving keeps a server up for at most peers.SERVE_TIMEOUT_S (90 s), so
# the rounds of one path must end within it: 6 rounds of about 5 s took 30 s with docker.
MAX_ROUNDS = 5
MAX_WARMUP = 1
#: The paths that a container row measures.
CONTAINER_PATHS = tuple(path for path in network.PATHS if path != network.NATIVE_PATH)


def _bench_image(harness: Harness) -> None:
    """Build the benchmark image once, and fail when it lacks sockperf or iperf3."""
    ctx = harness.ctx
    if "bench" not in ctx.images:
        ctx.images["bench"] = images.build_bench_image()
    rootfs = ctx.images["bench"].rootfs
    # The image's PATH is /bin, where usr/bin and sbin lead too.
    missing = [tool for tool in images.NETWORK_TOOLS if not (rootfs / "bin" / tool).exists()]
    if missing:
        raise UsageError(
            f"{' and '.join(missing)} not found on the host, so the benchmark image lacks "
            f"{'them' if len(missing) > 1 else 'it'}; install them with 'apt-get install "
            "sockperf iperf3' or run 'make setup'"
        )


def _ports() -> network.Ports:
    return network.Ports(latency=peers.free_port(), throughput=peers.free_port())


@contextlib.contextmanager
def _serving(
    harness: Harness, route: network.Route, ports: network.Ports, cpu: int
) -> Iterator[str]:
    """Hold the route's server while the block runs; yield the address clients connect to."""
    argv = network.server_argv(route.bind, ports, peers.READY, cpu)
    with peers.serving(
        harness, route.server, route.server_request, ports.latency, ports.throughput, argv=argv
    ) as server:
        if route.target is not None:
            yield route.target
            return
        if not server.addresses:
            raise HarnessError(
                f"the server container on {route.server.name} has no IPv4 address other "
                "than loopback, so a peer cannot reach it"
            )
        target = server.addresses[0]
        peers.check_target(target, server.addresses)
        yield target


def _require_own_network(harness: Harness, adapter: Adapter) -> None:
    """Skip when a container of the row on the default network is in the host's network
    namespace, where a server binding every address would listen on the host's addresses.

    An idle container is held while its namespace is read on the host side,
    before any server starts.
    """
    idle = ["/bin/sh", "-c", f"echo {peers.READY}; read -r _"]
    with peers.serving(harness, adapter, Request(network="default"), argv=idle) as held:
        inside = os.readlink(f"/proc/{held.host_pid}/ns/net")
    if inside == os.readlink("/proc/self/ns/net"):
        pytest.skip(
            f"a container of {adapter.name} on its default network is in the host's "
            f"network namespace ({inside}), so a server there would listen on the host's "
            "addresses"
        )


def _round_runner(
    harness: Harness,
    route: network.Route,
    target: str,
    ports: network.Ports,
    cpu: int,
    samples: Recorder,
) -> Callable[[], None]:
    def one_round() -> None:
        samples.next_round()
        figures = network.measure(
            route.client, harness.ctx, route.client_request, target, ports, cpu
        )
        for metric, value in figures.items():
            samples.write(metric, network.METRICS[metric], value, path=route.path)

    return one_round


@pytest.mark.parametrize("path", CONTAINER_PATHS)
def test_network_path(
    benchmark: BenchmarkFixture,
    isobench_harness: Harness,
    runtime_adapter: Adapter,
    recorder: Callable[..., Recorder],
    isobench_rounds: tuple[int, int],
    path: str,
) -> None:
    """Measure round-trip latency and bulk throughput of one path of the row's containers."""
    if runtime_adapter.family == "host":
        pytest.skip("the host row runs no container: its figures are the native loopback")
    ports = _ports()
    route = network.plan(path, runtime_adapter, runtimes.get("host"), ports)
    sides = ((route.server, route.server_request), (route.client, route.client_request))
    for request in [request for adapter, request in sides if adapter is runtime_adapter]:
        reason = runtime_adapter.unsupported(request)
        if reason is not None:
            pytest.skip(f"{runtime_adapter.name} cannot express the {path} path: {reason}")
    if route.server_request.network == "default":
        _require_own_network(isobench_harness, runtime_adapter)
    _bench_image(isobench_harness)
    rounds, warmup = isobench_rounds
    rounds, warmup = min(rounds, MAX_ROUNDS), min(warmup, MAX_WARMUP)
    samples = recorder("network", runtime_adapter.name, warmup)

    cpu = network.pinned_cpu()
    with _serving(isobench_harness, route, ports, cpu) as target:
        one_round = _round_runner(isobench_harness, route, target, ports, cpu, samples)
        run_rounds(benchmark, one_round, rounds, warmup)


def test_network_native(
    benchmark: BenchmarkFixture,
    isobench_harness: Harness,
    recorder: Callable[..., Recorder],
    isobench_rounds: tuple[int, int],
) -> None:
    """Measure the same latency and throughput with server and client on the host's loopback."""
    isobench_harness.start()
    _bench_image(isobench_harness)
    ports = _ports()
    route = network.native_route(runtimes.get("host"))
    rounds, warmup = isobench_rounds
    rounds, warmup = min(rounds, MAX_ROUNDS), min(warmup, MAX_WARMUP)
    samples = recorder("network", NATIVE, warmup)

    cpu = network.pinned_cpu()
    with _serving(isobench_harness, route, ports, cpu) as target:
        one_round = _round_runner(isobench_harness, route, target, ports, cpu, samples)
        run_rounds(benchmark, one_round, rounds, warmup)
