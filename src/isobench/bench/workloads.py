"""Benchmark workloads: concurrent starts, fio jobs, a compute loop and idle-container memory.

Each function runs real containers through the adapters and returns plain
numbers; the benchmark modules in benchmarks/ turn them into samples.
Everything a workload starts or makes is journaled before it exists and
removed before the function returns, also on an error.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from isobench import commands
from isobench.bench import fio
from isobench.bench.startup import measure_run
from isobench.errors import HarnessError
from isobench.journal import Entry
from isobench.model import Mount, Request
from isobench.probe import cgroups
from isobench.runtimes.base import Adapter, Context, execute
from isobench.runtimes.engine import EngineAdapter
from isobench.runtimes.oci import OciAdapter

#: fio jobs: name, then the options that make it. Buffered I/O, since tmpfs has no O_DIRECT.
FIO_JOBS = {
    "seqread": ("--rw=read", "--bs=1m"),
    "seqwrite": ("--rw=write", "--bs=1m"),
    "randread": ("--rw=randread", "--bs=4k"),
    "randwrite": ("--rw=randwrite", "--bs=4k"),
    "fsync": ("--rw=randwrite", "--bs=4k", "--fsync=1"),
}
#: The path of each I/O target inside the container.
IO_TARGETS = {
    "rootfs": "/var/isobench-io",
    "bind": "/isobench-bind",
    "tmpfs": "/dev/shm/isobench-io",
}
FIO_SIZE = "32m"  # fits the 64 MiB /dev/shm of a container

#: A fixed compute workload, timed inside from /proc/uptime (10 ms steps).
CPU_LOOP = "awk 'BEGIN { for (i = 0; i < 3000000; i++) s += i % 7 }'"
CPU_SCRIPT = f'read a _ < /proc/uptime; {CPU_LOOP}; read b _ < /proc/uptime; echo "$a $b"'


def fio_argv(directory: str, seconds: float) -> list[str]:
    """Return the command that runs every fio job in ``directory``, one after the other."""
    argv = [
        "fio",
        "--output-format=json",
        f"--directory={directory}",
        f"--size={FIO_SIZE}",
        # One file for every job, so that it fits the tmpfs target (64 MiB in docker).
        "--filename=isobench-fio.dat",
        "--ioengine=psync",
        f"--runtime={seconds:g}",
        "--time_based",
        "--group_reporting=0",
    ]
    for name, options in FIO_JOBS.items():
        argv += [f"--name={name}", "--stonewall", *options]
    return argv


@dataclass
class Workspace:
    """Host directories of one benchmark run: the bind source and the native I/O target."""

    bind: Path
    native: Path


@contextlib.contextmanager
def workspace(ctx: Context) -> Iterator[Workspace]:
    """Make (and remove at the end) the host directories the I/O benchmark needs."""
    base = ctx.bundle_root / "bench"
    # The parent too, so that a run killed in between leaves nothing 'isobench clean' misses.
    entries: list[Entry] = [ctx.journal.record("directory", str(base), ["rm", "-rf", str(base)])]
    try:
        for name in ("bind", "native"):
            directory = base / name
            entries.append(
                ctx.journal.record("directory", str(directory), ["rm", "-rf", str(directory)])
            )
            directory.mkdir(parents=True, exist_ok=True)
        yield Workspace(base / "bind", base / "native")
    finally:
        for entry in reversed(entries):
            ctx.journal.remove(entry)
        with contextlib.suppress(OSError):
            base.rmdir()


def run_fio(
    adapter: Adapter, ctx: Context, space: Workspace, target: str, seconds: float
) -> dict[str, float]:
    """Run the fio jobs on one target in a container; return each job's figure (fio.metric_for)."""
    request = Request(image="bench")
    if target == "bind":
        bind = Mount(source=str(space.bind), target=IO_TARGETS["bind"])
        request = Request(image="bench", mounts=(bind,))
    directory = IO_TARGETS[target]
    script = f'mkdir -p {directory} && exec "$@"'
    argv = ["sh", "-c", script, "sh", *fio_argv(directory, seconds)]
    timeout = 60 + seconds * len(FIO_JOBS) * 4
    execution = execute(adapter, ctx, request, argv, timeout=timeout)
    return _fio_figures(
        execution.result.stdout, execution.result.stderr, execution.result.exit_code
    )


def run_fio_native(space: Workspace, target: str, seconds: float) -> dict[str, float]:
    """Run the same fio jobs on the host: on the disk of the bundles, or on the host's tmpfs."""
    if target == "tmpfs":
        directory = Path("/dev/shm") / f"isobench-io-{os.getpid()}"
    else:
        directory = space.native / target
    directory.mkdir(parents=True, exist_ok=True)
    try:
        result = subprocess.run(
            fio_argv(str(directory), seconds),
            capture_output=True,
            text=True,
            timeout=60 + seconds * len(FIO_JOBS) * 4,
        )
    finally:
        commands.run(["rm", "-rf", str(directory)], timeout=60, check=False)
    return _fio_figures(result.stdout, result.stderr, result.returncode)


def _fio_figures(stdout: str, stderr: str, exit_code: int | None) -> dict[str, float]:
    if exit_code != 0:
        raise HarnessError(f"fio failed with exit status {exit_code}:\n{stderr.strip()[-2000:]}")
    jobs = fio.parse_fio(stdout, expected=list(FIO_JOBS))
    return {job.name: fio.metric_for(job).value for job in jobs}


def run_cpu(adapter: Adapter, ctx: Context) -> float:
    """Return the seconds the compute loop took inside a container (or natively on host)."""
    execution = execute(adapter, ctx, Request(), ["sh", "-c", CPU_SCRIPT], timeout=300)
    result = execution.result
    words = result.stdout.split()
    if result.exit_code != 0 or len(words) != 2:
        raise HarnessError(
            f"the compute loop failed on {adapter.name} (exit status {result.exit_code}): "
            f"{result.stdout.strip()} {result.stderr.strip()[-1000:]}"
        )
    return float(words[1]) - float(words[0])


def run_concurrent(adapter: Adapter, ctx: Context, count: int) -> tuple[list[float], float]:
    """Start ``count`` whole runs at once; return each latency and the batch's wall time."""
    began = time.perf_counter()
    with ThreadPoolExecutor(max_workers=count) as pool:
        futures = [pool.submit(measure_run, adapter, ctx, Request()) for _ in range(count)]
        latencies = [future.result() for future in futures]
    return latencies, time.perf_counter() - began


# -- memory ---------------------------------------------------------------


def pss_kib(pid: int) -> int:
    """Return a process's proportional set size in KiB (0 if it is gone)."""
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return 0
    for line in text.splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1])
    return 0


def _parent(pid: int) -> int:
    text = Path(f"/proc/{pid}/stat").read_text()
    return int(text[text.rindex(")") + 2 :].split()[1])


def container_processes(pid: int) -> set[int]:
    """Return the processes that a running container costs the host: those in its cgroup and
    the runtime's helper that parents its first process (shim, conmon), if any."""
    found: set[int] = {pid}
    dirs = cgroups.locate(
        Path(f"/proc/{pid}/cgroup").read_text(), Path("/proc/self/mountinfo").read_text()
    )
    directory = dirs.directory("pids") or dirs.directory("memory") or dirs.unified
    if directory is not None:
        with contextlib.suppress(OSError):
            found.update(int(line) for line in (directory / "cgroup.procs").read_text().split())
    with contextlib.suppress(OSError, ValueError):
        parent = _parent(pid)
        if parent not in (0, 1, os.getpid()):
            found.add(parent)
    return found


@dataclass
class Idle:
    """An idle container started for the memory benchmark."""

    name: str
    pid: int
    entries: list[Entry]


def start_idle(adapter: Adapter, ctx: Context) -> Idle:
    """Start a container that sleeps, detached, and return its first process."""
    argv = ["sleep", "3600"]
    if isinstance(adapter, EngineAdapter):
        name, entry, command = adapter.container_command(ctx, Request(), ["run", "--detach"], argv)
        try:
            commands.run(command, timeout=120)
            inspect = [adapter.binary, "inspect", "--format", "{{.State.Pid}}", name]
            pid = int(commands.run(inspect, timeout=60).stdout.strip())
        except Exception:
            ctx.journal.remove(entry)
            raise
        return Idle(name, pid, [entry])
    if isinstance(adapter, OciAdapter):
        name, bundle, entries = adapter.prepare_bundle(ctx, Request(), argv, {})
        runtime = adapter.global_argv(ctx)
        try:
            command = [*runtime, "run", "--detach", "--bundle", str(bundle), name]
            commands.run(command, timeout=120, output_to_files=True)
            state = commands.run([*runtime, "state", name], timeout=60).stdout
            pid = int(json.loads(state)["pid"])
        except Exception:
            for entry in reversed(entries):
                ctx.journal.remove(entry)
            raise
        return Idle(name, pid, entries)
    raise HarnessError(f"{adapter.name} cannot start a detached container")


def stop_idle(ctx: Context, idle: Idle) -> None:
    for entry in reversed(idle.entries):
        ctx.journal.remove(entry)


def measure_density(adapter: Adapter, ctx: Context, count: int) -> tuple[float, float]:
    """Start ``count`` idle containers; return the PSS in KiB per container and in total."""
    started: list[Idle] = []
    try:
        for _ in range(count):
            started.append(start_idle(adapter, ctx))
        time.sleep(1)  # let shims and sandboxes settle
        processes: set[int] = set()
        for idle in started:
            processes |= container_processes(idle.pid)
        total = float(sum(pss_kib(pid) for pid in processes))
    finally:
        for idle in started:
            stop_idle(ctx, idle)
    return total / count, total
