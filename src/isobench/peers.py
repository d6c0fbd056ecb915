"""Containers that serve while a check acts on them: the network suite's two-party checks.

A serving container runs a TCP listener that answers every connection with
PONG, prints READY, and holds until the check releases it. Meanwhile the check
connects to it, from another container or from the host's loopback, and
judges whether the connection was answered. Both containers are started and
removed through their adapter, so they are journaled like any other.

Every connection goes to a loopback address or to an address of a container
that the check started; :func:`connect` refuses any other address.
"""

from __future__ import annotations

import contextlib
import ipaddress
import itertools
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from isobench.checks import Harness
from isobench.errors import CommandFailed, HarnessError
from isobench.journal import Entry
from isobench.model import Request
from isobench.runtimes.base import Adapter, Execution, Launched, execute

#: The line a serving container prints once its listener runs.
READY = "isobench-serving"
#: What the listener answers to each connection.
PONG = "isobench-pong"
#: Seconds a connection attempt waits, inside a container and on the host.
CONNECT_TIMEOUT_S = 2
#: Seconds a serving container is held at most, and a client container may run.
SERVE_TIMEOUT_S = 90.0


def listener_argv(*ports: int) -> list[str]:
    """Return a container command that answers PONG on each TCP port, prints READY, and
    ends its listeners when its stdin closes."""
    listeners = "".join(
        f'nc -ll -p {int(port)} -e echo {PONG} & pids="$pids $!"; ' for port in ports
    )
    return ["/bin/sh", "-c", f"{listeners}echo {READY}; read -r _; kill $pids 2>/dev/null; exit 0"]


def client_argv(address: str, port: int) -> list[str]:
    """Return a container command that connects once and prints what it was answered."""
    return ["nc", "-w", str(CONNECT_TIMEOUT_S), address, str(int(port))]


def local_addresses(pid: int | str = "self", proc: Path = Path("/proc")) -> list[str]:
    """Return the IPv4 addresses, other than loopback ones, of the network namespace of
    process ``pid``, read from its /proc/PID/net/fib_trie."""
    try:
        lines = (proc / str(pid) / "net" / "fib_trie").read_text().splitlines()
    except OSError as exc:
        raise HarnessError(f"cannot read the addresses of process {pid}: {exc}") from None
    found: set[str] = set()
    for before, line in itertools.pairwise(lines):
        address = before.strip().removeprefix("|-- ")
        if (
            before.strip().startswith("|-- ")
            and "/32 host LOCAL" in line
            and not ipaddress.ip_address(address).is_loopback
        ):
            found.add(address)
    return sorted(found, key=ipaddress.ip_address)


def listening_ports(pid: int | str, proc: Path = Path("/proc")) -> set[int]:
    """Return the TCP ports with a listening socket in the network namespace of ``pid``."""
    ports: set[int] = set()
    for table in ("tcp", "tcp6"):
        try:
            lines = (proc / str(pid) / "net" / table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            # "sl local_address rem_address st ...": 0A is TCP_LISTEN.
            if len(fields) > 3 and fields[3] == "0A":
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def wait_listening(pid: int, ports: tuple[int, ...], timeout_s: float = 10.0) -> None:
    """Return once every port of ``ports`` listens in the namespace of ``pid``: the
    container prints READY once its listeners are started, not once they are bound."""
    deadline = time.monotonic() + timeout_s
    missing = set(ports) - listening_ports(pid)
    while missing and time.monotonic() < deadline:
        time.sleep(0.05)
        missing = set(ports) - listening_ports(pid)
    if missing:
        raise HarnessError(
            f"the serving container's listeners on {sorted(missing)} did not listen within "
            f"{timeout_s:g} s (process {pid})"
        )


@dataclass
class Serving:
    """A serving container: its launch, its host PID and its addresses."""

    launched: Launched
    host_pid: int
    addresses: list[str]
    #: What the serving container's run gave, once it was released.
    execution: Execution | None = None


@dataclass
class _Box:
    serving: Serving | None = None
    execution: Execution | None = None
    error: BaseException | None = None
    started: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)


@contextlib.contextmanager
def serving(
    harness: Harness,
    adapter: Adapter,
    request: Request,
    *ports: int,
    argv: list[str] | None = None,
) -> Iterator[Serving]:
    """Start a container that answers on ``ports`` and hold it while the block runs.

    ``argv`` replaces the PONG listeners with another server, which must print
    READY once started and end when its stdin closes; the block starts once
    every port of ``ports`` listens. The container runs in a thread through
    :func:`execute`, which removes it when the block ends, also after an error.
    """
    box = _Box()

    def during(launched: Launched, pid: int) -> dict[str, str | list[str]]:
        wait_listening(pid, ports)
        box.serving = Serving(launched, pid, local_addresses(pid))
        box.started.set()
        box.release.wait(SERVE_TIMEOUT_S)
        return {}

    def run() -> None:
        try:
            box.execution = execute(
                adapter,
                harness.ctx,
                request,
                argv or listener_argv(*ports),
                hold_marker=READY,
                read_host=during,
                timeout=SERVE_TIMEOUT_S,
            )
        except BaseException as exc:  # handed to the check's thread below
            box.error = exc
        finally:
            box.started.set()

    thread = threading.Thread(target=run, name=f"serving-{adapter.name}", daemon=True)
    thread.start()
    box.started.wait(SERVE_TIMEOUT_S + 30)
    if box.serving is None:
        thread.join(30)
        if box.error is not None:
            raise box.error
        raise HarnessError(
            f"the serving container on {adapter.name} did not start, or {adapter.name} "
            "does not tell its host PID"
        )
    try:
        yield box.serving
    finally:
        box.release.set()
        thread.join(SERVE_TIMEOUT_S + 30)
    if box.error is not None:
        raise box.error
    box.serving.execution = box.execution


def reached_from_container(
    harness: Harness, adapter: Adapter, request: Request, address: str, port: int
) -> tuple[bool, Execution]:
    """Connect from a new container to ``address:port``; return whether PONG came back."""
    execution = execute(
        adapter,
        harness.ctx,
        request,
        client_argv(address, port),
        timeout=SERVE_TIMEOUT_S,
        stdin="",
    )
    return PONG in execution.result.stdout, execution


def connect(address: str, port: int, allowed: list[str] | tuple[str, ...] = ()) -> str:
    """Connect from the host to ``address:port`` and return what was answered ('' when
    the connection was refused or timed out).

    ``address`` must be a loopback address or one of ``allowed`` (the addresses of
    containers the check started): no check aims traffic elsewhere.
    """
    check_target(address, allowed)
    try:
        with socket.create_connection((address, port), timeout=CONNECT_TIMEOUT_S) as conn:
            conn.settimeout(CONNECT_TIMEOUT_S)
            received = b""
            with contextlib.suppress(TimeoutError):
                while chunk := conn.recv(256):
                    received += chunk
            return received.decode(errors="replace")
    except OSError:
        return ""


def check_target(address: str, allowed: list[str] | tuple[str, ...] = ()) -> None:
    """Raise HarnessError unless ``address`` is a loopback address or one of ``allowed``
    (the addresses of containers the caller started), the rule of :func:`connect`, for
    callers whose client runs elsewhere, such as in a container."""
    if not ipaddress.ip_address(address).is_loopback and address not in allowed:
        raise HarnessError(
            f"rejected the traffic target {address}: it is neither a loopback address nor "
            "one of the run's own containers"
        )


def free_port(address: str = "127.0.0.1") -> int:
    """Return a TCP port that nothing listens on at ``address`` now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((address, 0))
        port: int = probe.getsockname()[1]
        return port


#: Seconds a container that prints a file or connects once may run.
RUN_TIMEOUT_S = 60.0


class Net:
    """One check's row, and the networks it made, removed after the check."""

    def __init__(self, harness: Harness, adapter: Adapter) -> None:
        self.harness = harness
        self.adapter = adapter
        self.runtime = adapter.name
        self.entries: list[Entry] = []

    def require(self, request: Request) -> Request:
        """Skip the check when the row cannot express ``request``; return the request."""
        reason = self.adapter.unsupported(request)
        if reason is not None:
            pytest.skip(f"{self.runtime} cannot express this check's request: {reason}")
        return request

    def network(self, peer_traffic: bool = True) -> str:
        """Make a network of the check's, or skip when the row has none to make."""
        reason = self.adapter.network_unsupported(peer_traffic)
        if reason is not None:
            pytest.skip(f"{self.runtime} cannot make this check's network: {reason}")
        name, entries = self.adapter.create_network(self.harness.ctx, peer_traffic)
        self.entries.extend(entries)
        return name

    def run(self, request: Request, argv: list[str]) -> Execution:
        """Run a container to its end; an exit status other than 0 is an error here."""
        execution = execute(
            self.adapter, self.harness.ctx, self.require(request), argv, timeout=RUN_TIMEOUT_S
        )
        result = execution.result
        if result.exit_code != 0:
            raise CommandFailed(
                result.commands[-1:] or argv, result.exit_code or -1, result.stdout, result.stderr
            )
        return execution

    def output(self, request: Request, argv: list[str]) -> str:
        return self.run(request, argv).result.stdout

    def attempt(self, request: Request, argv: list[str]) -> Execution:
        """Run a container to its end, whatever its exit status."""
        return execute(
            self.adapter, self.harness.ctx, self.require(request), argv, timeout=RUN_TIMEOUT_S
        )

    def finish(self) -> None:
        for entry in reversed(self.entries):
            self.harness.journal.remove(entry)
