"""The adapter interface that every runtime family implements.

An adapter turns a :class:`~isobench.model.Request` into a started container
process and removes it again. Everything around that (holding the probe
while the host side is read, time limits, the journal, collecting output)
lives once, in :func:`execute`.
"""

from __future__ import annotations

import abc
import codecs
import contextlib
import logging
import os
import shlex
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from isobench import commands, hosts
from isobench.errors import CommandFailed, CommandTimeout, HarnessError, IsobenchError
from isobench.journal import Entry, Journal
from isobench.model import Request, RunResult
from isobench.probe import cgroups

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProbeImage:
    """An image of the harness: a rootfs directory on the host, its content tag and kind."""

    rootfs: Path
    tag: str
    #: "probe" (busybox, a shell and the probe) or "static" (one binary, no shell).
    kind: str = "probe"

    @property
    def reference(self) -> str:
        return f"localhost/isobench-{self.kind}:{self.tag}"

    @property
    def has_shell(self) -> bool:
        return (self.rootfs / "bin" / "sh").exists()


@dataclass
class Availability:
    """Whether a runtime can be used here, its version, and what to do if not."""

    available: bool
    version: str = ""
    reason: str = ""
    hint: str = ""
    details: dict[str, str] = field(default_factory=dict)
    #: False when the runtime's program is not there. An unavailable runtime that is
    #: installed cannot run on this host, and ``reason`` has its message.
    installed: bool = True

    @property
    def state(self) -> str:
        """'available', 'not installed' or 'cannot run here'."""
        if self.available:
            return "available"
        return "cannot run here" if self.installed else "not installed"


@dataclass
class Context:
    """The run's state that adapters share: its id, the journal and the probe image."""

    run_id: str
    journal: Journal
    image: ProbeImage | None = None
    #: Further images by kind ("static"), built when a request first names them.
    images: dict[str, ProbeImage] = field(default_factory=dict)
    _counter: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def bundle_root(self) -> Path:
        """Directory of this run's OCI bundles; every parent is traversable by any uid,
        which a container root mapped to an unprivileged host uid needs."""
        base = Path(os.environ.get("ISOBENCH_BUNDLE_DIR", "/var/lib/isobench/bundles"))
        return base / self.run_id

    def image_for(self, request: Request) -> ProbeImage:
        """Return the image that ``request`` names; it must have been built."""
        image = self.image if request.image == "probe" else self.images.get(request.image)
        if image is None:
            raise HarnessError(f"the {request.image} image was not built before its first use")
        return image

    def network_name(self, runtime: str) -> str:
        """Return a new network name that carries the run id."""
        return self.container_name(runtime).replace(f"-{self.run_id}-", f"-{self.run_id}-net-", 1)

    def container_name(self, runtime: str) -> str:
        """Return a new container name that carries the run id, so leftovers can be traced."""
        with self._lock:
            self._counter += 1
            number = self._counter
        safe = "".join(c if c.isalnum() else "-" for c in runtime)
        return f"isobench-{self.run_id}-{safe}-{number}"


def rootfs_on_host(image: ProbeImage) -> Path:
    """Return the path of the image's rootfs on the run's host, copying it there first
    when that host is another machine and lacks it.

    The copy goes to the same path, beside a file ``complete`` that is written
    last, as in the image cache here. The copy is a cache too, kept for the
    next run.
    """
    host = hosts.current()
    if host.is_local:
        return image.rootfs
    root = image.rootfs.parent
    done = root / "complete"
    if commands.run(["test", "-e", str(done)], timeout=30, check=False).returncode == 0:
        return image.rootfs
    partial = root.with_name(root.name + f".partial-{os.getpid()}")
    unpack = (
        'rm -rf "$1" && mkdir -p "$1/rootfs" && tar -x --numeric-owner -C "$1/rootfs" '
        '&& rm -rf "$2" && mv "$1" "$2" && echo "$3" > "$2/complete"'
    )
    argv = ["sh", "-c", unpack, "sh", str(partial), str(root), image.tag]
    log.info("copying the %s rootfs to %s", image.kind, host.label)
    tar = subprocess.Popen(
        ["tar", "-C", str(image.rootfs), "--numeric-owner", "-c", "."], stdout=subprocess.PIPE
    )
    try:
        copied = subprocess.run(
            host.command(argv), stdin=tar.stdout, capture_output=True, text=True, timeout=600
        )
    finally:
        if tar.stdout is not None:
            tar.stdout.close()
        tar.wait()
    if copied.returncode != 0 or tar.returncode != 0:
        raise CommandFailed(
            [f"{host.label}:", *argv],
            copied.returncode or tar.returncode,
            copied.stdout,
            copied.stderr,
            hint=f"The {image.kind} rootfs could not be copied to {host.label}.",
        )
    return image.rootfs


def write_on_host(path: Path, text: str) -> None:
    """Write ``text`` to the file ``path`` on the run's host."""
    if hosts.current().is_local:
        path.write_text(text)
        return
    commands.run(["sh", "-c", 'cat > "$1"', "sh", str(path)], input_text=text, timeout=60)


def journal_cgroups(ctx: Context, runtime: str, path: str) -> list[tuple[Path, Entry]]:
    """Journal the cgroup ``path`` (from the root) in every mounted hierarchy, before a
    runtime makes it, and return each directory with its entry.

    The removal deletes the directory with every directory under it, deepest
    first, because some runtimes make sub-cgroups of their own there. The
    hierarchies are those mounted on the run's host.
    """
    found = []
    for name in hosts.current().call(cgroups, "directory_names", path):
        directory = Path(name)
        remove = ["find", str(directory), "-depth", "-type", "d", "-delete"]
        entry = ctx.journal.record(
            "cgroup", str(directory), remove, runtime=runtime, absent=("No such file",)
        )
        found.append((directory, entry))
    return found


def unmanaged_network_reason(row: str, request: Request) -> str | None:
    """Return why a row that manages no networks or name files cannot express the request's
    network settings of the engines (network_name, publish, add_hosts, dns, dns_search)."""
    if request.network_name is not None or request.publish:
        return (
            f"{row} makes no networks of its own, so it has none to attach a container to "
            "and no ports to publish"
        )
    fields = [name for name in ("add_hosts", "dns", "dns_search") if getattr(request, name)]
    if fields:
        return (
            f"{row} does not write the container's /etc/hosts or /etc/resolv.conf "
            f"({', '.join(fields)}): the files of the image stay"
        )
    return None


@dataclass
class Launched:
    """A container process started by an adapter, and what removes it."""

    name: str
    process: subprocess.Popen[str]
    argv: list[str]
    entries: list[Entry] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)
    state: dict[str, str] = field(default_factory=dict)
    #: Process groups started beside the first process (the host adapter's exec).
    groups: list[int] = field(default_factory=list)


class Adapter(abc.ABC):
    """One runtime row of the matrix: how to start, inspect and remove a container."""

    #: The row name, as users pass it to ``--runtime``.
    name: str
    #: The family module, for reports ("engine", "oci", "host").
    family: str
    #: Whether every command and file of the row goes through the run's host, so that
    #: it can check another machine (``isobench run --hosts``).
    remote_ready: bool = False

    @abc.abstractmethod
    def availability(self) -> Availability:
        """Tell whether the runtime can run here, and its version."""

    def unsupported(self, request: Request) -> str | None:
        """Return why the runtime cannot express ``request``, or None when it can."""
        return None

    def storage_device(self, ctx: Context) -> tuple[str, int, int]:
        """Return the block device (path, major, minor) of the container's writable layer.

        Raises HarnessError when it is not on a block device.
        """
        raise HarnessError(f"{self.name} does not say where its containers' files are")

    def dropped(self) -> dict[str, str]:
        """Return the request fields that this row accepted and did not apply in this run,
        each with what was seen instead. Only rows that can look (the orchestration
        layers, through the engine's inspect) fill it."""
        return {}

    def network_unsupported(self, peer_traffic: bool = True) -> str | None:
        """Return why this row cannot make a network for a check, or None when it can.

        ``peer_traffic=False`` asks for a network whose containers cannot reach
        each other.
        """
        return f"{self.name} makes no networks of its own for containers to attach to"

    def create_network(self, ctx: Context, peer_traffic: bool = True) -> tuple[str, list[Entry]]:
        """Make a network for containers of this run (``Request.network_name``).

        Returns its name and the journal entries that remove it; the caller removes
        them once its containers are gone.
        """
        raise HarnessError(self.network_unsupported(peer_traffic) or f"{self.name}: no networks")

    def prepare(self, ctx: Context) -> None:  # noqa: B027 - optional hook, empty by default
        """Make the probe image usable by this runtime (import it, for an engine)."""

    @abc.abstractmethod
    def launch(
        self, ctx: Context, request: Request, argv: Sequence[str], env: dict[str, str]
    ) -> Launched:
        """Start a container running ``argv`` with stdin, stdout and stderr as pipes."""

    def host_pid(self, ctx: Context, launched: Launched) -> int | None:
        """Return the host PID of the container's first process, when the runtime shows it."""
        return None

    def wait_started(self, ctx: Context, launched: Launched, deadline: float) -> None:  # noqa: B027
        """Return once the container's command runs, before its stdin is written and closed.

        For a client that loses the end of its input when stdin closes before the
        container has started (ctr). ``deadline`` is a ``time.monotonic()`` value.
        """

    def exec_detached(self, ctx: Context, launched: Launched, argv: Sequence[str]) -> None:
        """Start another process in the running container and return once it runs."""
        raise HarnessError(f"{self.name} cannot start a process in a running container")

    def exec_output(self, ctx: Context, launched: Launched, argv: Sequence[str]) -> str:
        """Run another process in the running container to its end and return its stdout."""
        raise HarnessError(f"{self.name} cannot start a process in a running container")

    def stop(self, ctx: Context, launched: Launched, grace_s: float) -> None:
        """Stop the container as the engines' stop does: SIGTERM to its first process, then
        SIGKILL after ``grace_s`` seconds. Returns once the kill is sent, or it exited."""
        raise HarnessError(f"{self.name} cannot stop a running container")

    def can_exec(self) -> bool:
        """Tell whether :meth:`exec_detached` is implemented."""
        return type(self).exec_detached is not Adapter.exec_detached

    def exit_state(self, ctx: Context, launched: Launched) -> dict[str, str]:
        """Return what the runtime reports about the exited container (such as its OOM flag)."""
        return {}

    def runtime_failure(self, exit_code: int, stderr: str) -> str | None:
        """Return why the runtime itself failed, when the exit status and stderr show it.

        Then the container's command did not run to its end, so its exit status
        is not a verdict. None means the status is the command's.
        """
        return None

    def reap(self, ctx: Context, launched: Launched) -> None:  # noqa: B027 - optional hook
        """End what the container's first process left running once it exited."""

    def finish(self, ctx: Context, launched: Launched) -> None:
        """Remove what ``launch`` created, in reverse order."""
        for entry in reversed(launched.entries):
            ctx.journal.remove(entry)


class LocalOnly(Adapter):
    """A row that cannot check another host: every check of it there is an error with
    the reason."""

    def __init__(self, adapter: Adapter, host: str) -> None:
        self.name = adapter.name
        self.family = adapter.family
        self.host = host

    def availability(self) -> Availability:
        return Availability(
            False,
            reason=f"{self.name} reads and writes files of the machine that runs isobench, so "
            f"it checks that machine only, not {hosts.label_of(self.host)}",
            hint="Run isobench on that host to check this row there.",
        )

    def launch(
        self, ctx: Context, request: Request, argv: Sequence[str], env: dict[str, str]
    ) -> Launched:
        raise HarnessError(self.availability().reason)


@dataclass
class Execution:
    """A finished run, plus what was read while the container was alive and after it ended."""

    result: RunResult
    host_pid: int | None = None
    host_view: dict[str, str | list[str]] = field(default_factory=dict)
    exit_state: dict[str, str] = field(default_factory=dict)
    #: Monotonic times at which marker lines (``isobench-…``) arrived on stdout.
    marker_times: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


HostReader = Callable[[Launched, int], dict[str, str | list[str]]]


#: Characters of stdout and of stderr kept per container. The rest is read and dropped,
#: so a container that floods its output cannot fill the harness's memory.
MAX_KEPT_CHARS = 4 * 1024 * 1024
# Marker lines are short: a longer line is not looked at.
_MAX_LINE = 4096


class _Reader(threading.Thread):
    """Drain a pipe, keeping its first MAX_KEPT_CHARS characters and flagging when a marker
    line arrives. It reads whatever the pipe has, so a flood without newlines is drained
    in bounded pieces too."""

    def __init__(self, pipe: object, marker: str | None = None) -> None:
        super().__init__(daemon=True)
        self.pipe = pipe
        self.marker = marker
        self.parts: list[str] = []
        self.kept = 0
        self.dropped = 0
        self.marked = threading.Event()
        self.times: dict[str, float] = {}

    def run(self) -> None:
        raw = getattr(self.pipe, "buffer", self.pipe)
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        pending = ""
        long_line = False
        while True:
            chunk = raw.read1(65536)  # type: ignore[attr-defined]
            text = decoder.decode(chunk, final=not chunk)
            self._keep(text)
            pending += text
            *complete, pending = pending.split("\n")
            for line in complete:
                if not long_line:
                    self._look(line)
                long_line = False
            if len(pending) > _MAX_LINE:
                pending, long_line = "", True
            if not chunk:
                break
        if pending and not long_line:
            self._look(pending)
        self.marked.set()

    def _keep(self, text: str) -> None:
        room = max(0, MAX_KEPT_CHARS - self.kept)
        self.parts.append(text[:room])
        self.kept += min(room, len(text))
        self.dropped += max(0, len(text) - room)

    def _look(self, line: str) -> None:
        if line.startswith("isobench-"):
            self.times.setdefault(line.split(" ", 1)[0], time.monotonic())
        if self.marker is not None and line.split(" ", 1)[0] == self.marker:
            self.marked.set()

    @property
    def text(self) -> str:
        return "".join(self.parts)

    def cut_note(self, name: str) -> list[str]:
        if not self.dropped:
            return []
        return [
            f"{name} was cut after {MAX_KEPT_CHARS} characters: {self.dropped} more were "
            "read and dropped"
        ]


def execute(
    adapter: Adapter,
    ctx: Context,
    request: Request,
    argv: Sequence[str],
    *,
    env: dict[str, str] | None = None,
    hold_marker: str | None = None,
    read_host: HostReader | None = None,
    timeout: float = 60.0,
    stdin: str | None = None,
) -> Execution:
    """Run one container to its end and return what it printed.

    With ``hold_marker``, the process is expected to print a line starting
    with that word and then wait for its stdin to close. While it waits,
    ``read_host(launched, pid)`` reads the container from the host side.
    Without it, ``stdin`` is written to the command and then closed. An exit
    by signal N of a plain child process is reported as 128+N, as shells and
    the engines report it. The container is removed in every case.
    """
    launched = adapter.launch(ctx, request, argv, env or {})
    started = time.monotonic()
    deadline = started + timeout
    out = _Reader(launched.process.stdout, hold_marker)
    err = _Reader(launched.process.stderr)
    out.start()
    err.start()
    host_pid = None
    host_view: dict[str, str | list[str]] = {}
    try:
        if hold_marker is not None:
            if not out.marked.wait(max(0.0, deadline - time.monotonic())):
                raise CommandTimeout(launched.argv, timeout, err.text)
            if launched.process.poll() is None:
                host_pid = adapter.host_pid(ctx, launched)
                if host_pid is not None and read_host is not None:
                    host_view = read_host(launched, host_pid)

        if stdin is not None and launched.process.stdin is not None:
            adapter.wait_started(ctx, launched, deadline)
            with contextlib.suppress(OSError):
                launched.process.stdin.write(stdin)
        _close_stdin(launched.process)
        try:
            exit_code = launched.process.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            raise CommandTimeout(launched.argv, timeout, err.text) from None
        if exit_code < 0:
            exit_code = 128 - exit_code
        adapter.reap(ctx, launched)
        out.join(5)
        err.join(5)
        duration = time.monotonic() - started
        failure = adapter.runtime_failure(exit_code, err.text)
        if failure is not None:
            # The runtime failed, not the command in the container: no verdict.
            raise CommandFailed(launched.argv, exit_code, out.text, err.text, hint=failure)
        exit_state = adapter.exit_state(ctx, launched)

        result = RunResult(
            exit_code=exit_code,
            stdout=out.text,
            stderr=err.text,
            duration_s=duration,
            commands=[*launched.commands, shlex.join(launched.argv)],
            host_pid=host_pid,
        )
        notes = out.cut_note("stdout") + err.cut_note("stderr")
        return Execution(result, host_pid, host_view, exit_state, dict(out.times), notes)
    finally:
        _stop(launched.process)
        try:
            adapter.finish(ctx, launched)
        except IsobenchError as exc:
            log.warning("cleanup of %s on %s failed: %s", launched.name, adapter.name, exc)


def _close_stdin(process: subprocess.Popen[str]) -> None:
    if process.stdin is not None and not process.stdin.closed:
        with contextlib.suppress(OSError):
            process.stdin.close()


def _stop(process: subprocess.Popen[str]) -> None:
    """End the client process if it still runs (the container itself is removed by finish)."""
    _close_stdin(process)
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)


def popen(
    argv: Sequence[str], env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.Popen[str]:
    """Start a client process with three pipes on the run's host; a missing binary is a
    HarnessError.

    On another host, ``env`` is what the command gets added to that host's
    environment, and ``cwd`` is a directory there.
    """
    host = hosts.current()
    if not host.is_local:
        local = host.command(argv, env=env, cwd=cwd)
        log.debug("start on %s: %s", host.label, shlex.join(argv))
        env = cwd = None
    else:
        local = list(argv)
        log.debug("start: %s", shlex.join(argv))
    try:
        return subprocess.Popen(
            local,
            cwd=cwd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            start_new_session=True,
        )
    except FileNotFoundError:
        raise HarnessError(f"{local[0]}: command not found; run 'isobench doctor'") from None
