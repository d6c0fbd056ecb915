"""Network latency and throughput: sockperf and iperf3 between a server and a client.

A round runs one client against a server that stays up for every round of a
path. The client first runs ``sockperf ping-pong`` over TCP, which sends one
message, waits for its echo and sends the next. It prints percentiles of the
round-trip times in microseconds. Then it runs ``iperf3 --client``, one TCP
stream in one direction, which prints JSON with the bits per second that the
server received. A round gives three samples: the p50 and p99 round trip of
that sockperf run, and the iperf3 throughput.

The paths (``PATHS``) differ in where the server and the client run:

- ``loopback``: both on the host, on 127.0.0.1. It is the native floor.
- ``peer``: two containers of the row on the engine's default network.
- ``published``: a container whose ports are published on the host's
  127.0.0.1, and a client on the host.
- ``host``: a container on the host's network, and a server on the host's
  127.0.0.1.

Both ends of every path are pinned to one CPU (``pinned_cpu``) with
taskset. On the 2-CPU reference VM, a ping-pong between two idle CPUs took
66 us at p50 against 5.5 us on one CPU, because each wake-up of an idle
virtual CPU is slow. Unpinned, the scheduler's placement then decided the
figure. Helpers of the runtime, such as docker-proxy, are not pinned.

Both programs are copied into the benchmark image with their libraries
(``isobench.images``). A process on the host runs the image's copy through the
host adapter, so the same binaries run natively and inside.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass

from isobench.errors import HarnessError
from isobench.model import Publish, Request
from isobench.runtimes.base import Adapter, Context, execute

#: Every path of the benchmark, the native one first.
PATHS = ("loopback", "peer", "published", "host")
#: The path whose figures are the native floor, measured with both ends on the host.
NATIVE_PATH = "loopback"
#: The metrics of a round and their units: round-trip percentiles and bulk throughput.
METRICS = {"latency_p50": "us", "latency_p99": "us", "throughput": "Gbit/s"}

#: The address that servers on the host bind, and that host clients connect to.
LOOPBACK = "127.0.0.1"
#: The address that servers in a container bind: every address of its own network namespace.
ANY_ADDRESS = "0.0.0.0"

#: Seconds of each sockperf run. sockperf 3.7 leaves the first 400 ms out as its own
#: warm-up, so about 0.55 s of round trips are counted, and it sleeps 2 s before the run.
LATENCY_SECONDS = 1
#: Bytes of each sockperf message, echoed back by the server.
MESSAGE_BYTES = 64
#: Seconds of each iperf3 run. iperf3 3.12 takes whole seconds only.
THROUGHPUT_SECONDS = 1
#: Seconds a client run may take, its container's start and removal included.
CLIENT_TIMEOUT_S = 60.0

# sockperf colours some lines with ANSI escapes, even when its output is a pipe.
_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")
_PERCENTILE = re.compile(r"percentile\s+(\d+(?:\.\d+)?)\s*=\s*(\d+(?:\.\d+)?)")
_OBSERVATIONS = re.compile(r"Total\s+(\d+)\s+observations")


@dataclass(frozen=True)
class Ports:
    """The TCP ports of a server: sockperf's and iperf3's."""

    latency: int
    throughput: int

    def published(self) -> tuple[Publish, ...]:
        """Return both ports published on the host's 127.0.0.1 as the same port numbers."""
        return tuple(
            Publish(host_ip=LOOPBACK, host_port=port, container_port=port)
            for port in (self.latency, self.throughput)
        )


@dataclass(frozen=True)
class Latency:
    """Round-trip times of one sockperf ping-pong run, in microseconds."""

    p50_us: float
    p99_us: float
    observations: int


@dataclass(frozen=True)
class Route:
    """The two ends of a path: the adapter and request of each, the server's address
    and the client's target."""

    path: str
    server: Adapter
    server_request: Request
    #: The address the server binds.
    bind: str
    client: Adapter
    client_request: Request
    #: The address the client connects to. None means the address of the server's
    #: container, known once it runs.
    target: str | None


def plan(path: str, row: Adapter, host: Adapter, ports: Ports) -> Route:
    """Return the route of ``path`` for the runtime ``row``; ``host`` is the host adapter.

    Raises ValueError for the native path and for a name outside ``PATHS``.
    """
    image = Request(image="bench")
    default = Request(image="bench", network="default")
    if path == "peer":
        return Route(path, row, default, ANY_ADDRESS, row, default, None)
    if path == "published":
        published = Request(image="bench", network="default", publish=ports.published())
        return Route(path, row, published, ANY_ADDRESS, host, image, LOOPBACK)
    if path == "host":
        on_host = Request(image="bench", network="host")
        return Route(path, host, image, LOOPBACK, row, on_host, LOOPBACK)
    raise ValueError(
        f"no container route for the network path {path!r}; expected peer, published or host"
    )


def native_route(host: Adapter) -> Route:
    """Return the route of the native path: server and client on the host's loopback."""
    image = Request(image="bench")
    return Route(NATIVE_PATH, host, image, LOOPBACK, host, image, LOOPBACK)


def pinned_cpu() -> int:
    """Return the CPU that both ends of every path run on: the highest-numbered CPU that
    the harness may use."""
    return max(os.sched_getaffinity(0))


def server_argv(bind: str, ports: Ports, ready: str, cpu: int) -> list[str]:
    """Return the command that runs a sockperf and an iperf3 server on ``bind``, pinned to
    ``cpu``, prints ``ready``, and stops both when its stdin closes."""
    pin = f"taskset -c {int(cpu)}"
    script = (
        f"{pin} sockperf server --tcp -i {bind} -p {ports.latency} >/dev/null & a=$!; "
        f"{pin} iperf3 --server --bind {bind} --port {ports.throughput} >/dev/null & b=$!; "
        f"echo {ready}; read -r _; kill $a $b 2>/dev/null; exit 0"
    )
    return ["/bin/sh", "-c", script]


def client_argv(target: str, ports: Ports, cpu: int) -> list[str]:
    """Return the command that measures latency, then throughput, against ``target``,
    pinned to ``cpu``.

    sockperf's report goes to stderr and iperf3's JSON to stdout, so that each
    parser reads the output of one program.
    """
    pin = f"taskset -c {int(cpu)}"
    sockperf = (
        f"{pin} sockperf ping-pong --tcp -i {target} -p {ports.latency} "
        f"-t {LATENCY_SECONDS} -m {MESSAGE_BYTES} --full-rtt"
    )
    iperf3 = (
        f"{pin} iperf3 --client {target} --port {ports.throughput} "
        f"--time {THROUGHPUT_SECONDS} --json"
    )
    return ["/bin/sh", "-c", f"{sockperf} >&2 || exit $?; exec {iperf3}"]


def parse_sockperf(text: str) -> Latency:
    """Parse the report of ``sockperf ping-pong --full-rtt`` into its p50 and p99.

    Raises HarnessError when the report has no percentiles (sockperf prints an
    error and exits 0 when it cannot connect) or gives one-way latency instead
    of round trips.
    """
    clean = _ANSI_ESCAPE.sub("", text)
    percentiles = {float(level): float(value) for level, value in _PERCENTILE.findall(clean)}
    if 50.0 not in percentiles or 99.0 not in percentiles:
        raise HarnessError(
            "sockperf printed no p50 and p99 round trip: " + _tail(clean, "no output")
        )
    if "Round trip" not in clean:
        raise HarnessError(
            "sockperf reported one-way latency, not round trips; run it with --full-rtt"
        )
    observed = _OBSERVATIONS.search(clean)
    return Latency(
        p50_us=percentiles[50.0],
        p99_us=percentiles[99.0],
        observations=int(observed.group(1)) if observed else 0,
    )


def parse_iperf3(text: str) -> float:
    """Parse the JSON of ``iperf3 --client --json`` into the received rate in Gbit/s.

    Raises HarnessError for output that is not JSON, for an ``error`` that
    iperf3 reports (it exits 0 when it cannot connect), and for a missing rate.
    """
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise HarnessError(
            f"iperf3 printed no JSON ({exc.msg}): {_tail(text, 'no output')}"
        ) from None
    if not isinstance(document, dict):
        raise HarnessError("iperf3 printed JSON that is not an object")
    if document.get("error"):
        raise HarnessError(f"iperf3 failed: {document['error']}")
    try:
        bits = float(document["end"]["sum_received"]["bits_per_second"])
    except (KeyError, TypeError, ValueError):
        raise HarnessError(
            "iperf3's JSON has no end.sum_received.bits_per_second: the test did not finish"
        ) from None
    return bits / 1e9


def measure(
    client: Adapter, ctx: Context, request: Request, target: str, ports: Ports, cpu: int
) -> dict[str, float]:
    """Run one client to its end and return each metric of ``METRICS``.

    Raises HarnessError when the client exits with a status other than 0 or a
    program's output has no figure.
    """
    execution = execute(
        client, ctx, request, client_argv(target, ports, cpu), timeout=CLIENT_TIMEOUT_S
    )
    result = execution.result
    if result.exit_code != 0:
        raise HarnessError(
            f"the network client on {client.name} failed with exit status {result.exit_code}: "
            + _tail(result.stderr, "no stderr")
        )
    latency = parse_sockperf(result.stderr)
    return {
        "latency_p50": latency.p50_us,
        "latency_p99": latency.p99_us,
        "throughput": parse_iperf3(result.stdout),
    }


def _tail(text: str, empty: str) -> str:
    kept = text.strip()[-1000:]
    return kept or f"({empty})"
