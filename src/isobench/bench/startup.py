"""Startup latency: each phase of a container's life, the whole run, and the native floor.

The phases are timed with the runtime's own CLI, one command a phase:

- engines: ``create``, then ``start --attach`` until the first output line
  (start to output) and until it returns (exit), then ``rm`` (remove);
- OCI runtimes: ``create`` on a bundle laid out beforehand, ``start`` until
  the first output line arrives on the pipe the container inherited, the
  pipe's end (exit), then ``delete`` (remove).

The whole run is ``run --rm`` for an engine and ``run`` on a ready bundle for
an OCI runtime: laying out the bundle is the harness's work, not the
runtime's, so it is not timed. The floor beside them is ``/bin/true`` and an
``unshare`` of the same namespaces, run natively.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence

from isobench import commands
from isobench.errors import CommandFailed, HarnessError
from isobench.model import Request
from isobench.runtimes.base import Adapter, Context
from isobench.runtimes.engine import EngineAdapter
from isobench.runtimes.oci import OciAdapter

PHASES = ("create", "start_to_output", "exit", "remove")
READY = "isobench-ready"
#: The command every timed container runs: one line of output, then exit.
COMMAND = ("/bin/echo", READY)
#: The namespaces of a default request, as unshare(1) options.
UNSHARE = ("--pid", "--fork", "--mount", "--net", "--uts", "--ipc")
TIMEOUT_S = 120.0


def supports_phases(adapter: Adapter) -> bool:
    return isinstance(adapter, EngineAdapter | OciAdapter)


def measure_phases(adapter: Adapter, ctx: Context, request: Request) -> dict[str, float]:
    """Start one container through its phases and return the seconds each one took."""
    if isinstance(adapter, EngineAdapter):
        return _engine_phases(adapter, ctx, request)
    if isinstance(adapter, OciAdapter):
        return _oci_phases(adapter, ctx, request)
    raise HarnessError(f"{adapter.name} has no create and start phases to time")


def measure_run(adapter: Adapter, ctx: Context, request: Request) -> float:
    """Return the seconds of one whole run that removes the container at its end."""
    if isinstance(adapter, EngineAdapter):
        name, entry, command = adapter.container_command(ctx, request, ["run", "--rm"], COMMAND)
        try:
            return time_command(command)
        finally:
            ctx.journal.remove(entry)
    if isinstance(adapter, OciAdapter):
        name, bundle, entries = adapter.prepare_bundle(ctx, request, COMMAND, {})
        try:
            return time_command(adapter.run_argv(ctx, name, bundle))
        finally:
            for entry in reversed(entries):
                ctx.journal.remove(entry)
    raise HarnessError(f"{adapter.name} has no run command to time")


def time_command(command: Sequence[str]) -> float:
    """Run a command that starts a container printing the ready line; return its seconds."""
    began = time.perf_counter()
    result = commands.run(command, timeout=TIMEOUT_S)
    took = time.perf_counter() - began
    _expect_ready(result.stdout, command)
    return took


def native_true() -> float:
    """Return the seconds to fork and exec /bin/true on the host."""
    began = time.perf_counter()
    subprocess.run(["/bin/true"], check=True)
    return time.perf_counter() - began


def native_unshare() -> float:
    """Return the seconds of an unshare(1) of a container's namespaces running /bin/true."""
    unshare = shutil.which("unshare")
    if unshare is None:
        raise HarnessError("unshare not found; install util-linux or run 'make setup'")
    command = [unshare, *UNSHARE, "/bin/true"]
    began = time.perf_counter()
    commands.run(command, timeout=TIMEOUT_S)
    return time.perf_counter() - began


def _expect_ready(stdout: str, command: Sequence[str]) -> None:
    if READY not in stdout:
        raise CommandFailed(list(command), 0, stdout, f"the container did not print {READY}")


def _engine_phases(adapter: EngineAdapter, ctx: Context, request: Request) -> dict[str, float]:
    name, entry, create = adapter.container_command(ctx, request, ["create"], COMMAND)
    times: dict[str, float] = {}
    try:
        began = time.perf_counter()
        commands.run(create, timeout=TIMEOUT_S)
        times["create"] = time.perf_counter() - began

        start = [adapter.binary, "start", "--attach", name]
        began = time.perf_counter()
        process = subprocess.Popen(start, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        first = process.stdout.readline() if process.stdout else ""
        printed = time.perf_counter()
        _, stderr = process.communicate(timeout=TIMEOUT_S)
        ended = time.perf_counter()
        if process.returncode != 0 or READY not in first:
            raise CommandFailed(start, process.returncode, first, stderr)
        times["start_to_output"] = printed - began
        times["exit"] = ended - printed

        began = time.perf_counter()
        commands.run([adapter.binary, "rm", name], timeout=TIMEOUT_S)
        times["remove"] = time.perf_counter() - began
        ctx.journal.released(entry)
    finally:
        if "remove" not in times:
            ctx.journal.remove(entry)
    return times


def _oci_phases(adapter: OciAdapter, ctx: Context, request: Request) -> dict[str, float]:
    name, bundle, entries = adapter.prepare_bundle(ctx, request, COMMAND, {})
    runtime = adapter.global_argv(ctx)
    times: dict[str, float] = {}
    try:
        # The container inherits the stdout of 'create': a pipe that this process reads.
        create = [*runtime, "create", "--bundle", str(bundle), name]
        # The container inherits stderr too, so it goes to a file: a pipe would stay
        # open until the container exits.
        with tempfile.TemporaryFile() as errors:
            began = time.perf_counter()
            process = subprocess.Popen(
                create, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=errors
            )
            # 'create' returns once the container waits for 'start'.
            process.wait(TIMEOUT_S)
            times["create"] = time.perf_counter() - began
            errors.seek(0)
            stderr = errors.read().decode(errors="replace")
        output = process.stdout
        assert output is not None
        if process.returncode != 0:
            output.close()
            raise CommandFailed(create, process.returncode, "", stderr)

        began = time.perf_counter()
        commands.run([*runtime, "start", name], timeout=TIMEOUT_S)
        first = output.readline().decode(errors="replace")
        printed = time.perf_counter()
        output.read()
        ended = time.perf_counter()
        output.close()
        if READY not in first:
            raise CommandFailed(create, 0, first, f"the container did not print {READY}")
        times["start_to_output"] = printed - began
        times["exit"] = ended - printed

        began = time.perf_counter()
        commands.run([*runtime, "delete", name], timeout=TIMEOUT_S)
        times["remove"] = time.perf_counter() - began
    finally:
        for entry in reversed(entries):
            ctx.journal.remove(entry)
    return times
