"""Drive an OCI runtime CLI through create, start, state, kill and delete, for the
lifecycle suite (suites/lifecycle/).

Each container is laid out by ``OciAdapter.prepare_bundle``, so the bundle, the
container and its cgroups are in the run's journal and are removed after an error
too. The requirements are those of the OCI runtime specification 1.0.2
(runtime.md and config.md), the version that the bundles declare in
``ociVersion``.

The container's program appends a value from its environment to a marker file
in the rootfs, so that a check observes whether it ran, how often and with
which configuration. It then reads its stdin, which is a pipe held by the
check, and exits at the end of the input: closing the pipe ends the container,
and so does the exit of the test process. Every wait is bounded.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from isobench import commands
from isobench.checks import Harness
from isobench.errors import CommandFailed, CommandTimeout, HarnessError
from isobench.journal import Entry
from isobench.model import Request
from isobench.probe import cgroups
from isobench.runtimes.oci import OciAdapter

#: The runtime's commands (create, start, state, kill, delete) get this many seconds.
COMMAND_TIMEOUT_S = 60.0
#: Polls for a state or a marker file give up after this many seconds.
WAIT_S = 15.0
POLL_INTERVAL_S = 0.1

VALUE_ENV = "ISOBENCH_LIFECYCLE_VALUE"
ORIGINAL_VALUE = "original"
#: Files in the container's rootfs: one line per run of the program, and one line per
#: SIGUSR1 it received.
RAN_MARKER = "isobench-ran"
SIGNAL_MARKER = "isobench-usr1"
#: The file in the bundle directory that receives the stderr of 'create' and the
#: container's stdout and stderr, which it inherits from 'create'.
OUTPUT_FILE = "isobench-output.log"

# The trap comes first, so that a SIGUSR1 sent once the marker exists finds it. A read
# interrupted by the trapped signal fails like one at the end of input, so the trap
# sets a flag that distinguishes the two.
PROGRAM = (
    "/bin/sh",
    "-c",
    f"trap 'echo usr1 >> /{SIGNAL_MARKER}; got=1' USR1; "
    f'echo "${VALUE_ENV}" >> /{RAN_MARKER}; '
    'while :; do got=; read -r line && continue; [ -n "$got" ] || break; done',
)


class LifecycleError(HarnessError):
    """A runtime command that had to succeed for the check to observe anything failed."""


class Lifecycle:
    """The containers of one check on one OCI runtime, driven through its CLI."""

    def __init__(self, harness: Harness, runtime: OciAdapter) -> None:
        self.harness = harness
        self.runtime = runtime
        self.entries: list[Entry] = []
        self.bundles: list[Path] = []
        #: Write ends of the containers' stdin pipes. Closing one ends its container.
        self.holds: dict[str, int] = {}

    # -- bundles and commands ---------------------------------------------

    def bundle(
        self,
        edit: Callable[[dict[str, Any]], None] | None = None,
        *,
        request: Request | None = None,
        program: Sequence[str] = PROGRAM,
        env: dict[str, str] | None = None,
    ) -> tuple[str, Path]:
        """Lay out a journaled bundle that runs ``program`` (PROGRAM by default) for
        ``request``, with ``edit`` applied to its config.json."""
        name, bundle, entries = self.runtime.prepare_bundle(
            self.harness.ctx,
            request or Request(),
            tuple(program),
            {VALUE_ENV: ORIGINAL_VALUE} if env is None else env,
        )
        self.entries.extend(entries)
        self.bundles.append(bundle)
        if edit is not None:
            config = read_config(bundle)
            edit(config)
            write_config(bundle, config)
        return name, bundle

    def argv(self, *arguments: str) -> list[str]:
        return [*self.runtime.global_argv(self.harness.ctx), *arguments]

    def run(self, *arguments: str) -> commands.Completed:
        """Run one runtime command and return its result, also for a non-zero exit status."""
        return commands.run(self.argv(*arguments), timeout=COMMAND_TIMEOUT_S, check=False)

    def require(self, *arguments: str) -> commands.Completed:
        """Run one runtime command that must succeed for the check to go on."""
        result = self.run(*arguments)
        if result.returncode != 0:
            raise CommandFailed(result.argv, result.returncode, result.stdout, result.stderr)
        return result

    def create(self, name: str, bundle: Path, *options: str) -> commands.Completed:
        """Run 'create' with a pipe as stdin whose write end the check keeps.

        commands.run gives a command /dev/null or a string as stdin, but the
        container inherits the stdin of 'create' and must keep it open. Its stdout
        and stderr go to OUTPUT_FILE in the bundle: a pipe would keep the read open
        until the container exits.
        """
        argv = self.argv("create", "--bundle", str(bundle), *options, name)
        read_end, write_end = os.pipe()
        self.holds[f"{name}@{bundle}"] = write_end
        output = bundle / OUTPUT_FILE
        started = time.monotonic()
        try:
            with output.open("ab") as sink:
                completed = subprocess.run(
                    argv,
                    stdin=read_end,
                    stdout=sink,
                    stderr=sink,
                    timeout=COMMAND_TIMEOUT_S,
                    check=False,
                )
        except subprocess.TimeoutExpired:
            raise CommandTimeout(argv, COMMAND_TIMEOUT_S, read_output(bundle)) from None
        except FileNotFoundError:
            raise CommandFailed(argv, 127, "", f"{argv[0]}: command not found") from None
        finally:
            os.close(read_end)
        duration = time.monotonic() - started
        return commands.Completed(argv, completed.returncode, "", read_output(bundle), duration)

    def started(self) -> tuple[str, Path]:
        """Create and start a container, and return once its program has run."""
        name, bundle = self.bundle()
        self.create_required(name, bundle)
        self.require("start", name)
        wait_marker(bundle, RAN_MARKER)
        return name, bundle

    def stop_required(self, name: str, bundle: Path) -> None:
        """Close the program's input and return once the container is stopped."""
        self.release(name, bundle)
        status = self.wait_status(name, "stopped")
        if status != "stopped":
            raise LifecycleError(f"the container did not stop within {WAIT_S:g} s: {status!r}")

    def create_required(self, name: str, bundle: Path, *options: str) -> None:
        result = self.create(name, bundle, *options)
        if result.returncode != 0:
            raise CommandFailed(result.argv, result.returncode, "", result.stderr)

    def release(self, name: str, bundle: Path) -> None:
        """Close the container's stdin, so that its program reaches the end of input and exits."""
        write_end = self.holds.pop(f"{name}@{bundle}", None)
        if write_end is not None:
            os.close(write_end)

    # -- observing --------------------------------------------------------

    def state(self, name: str) -> dict[str, Any]:
        """Return the parsed output of 'state', or raise LifecycleError when it fails."""
        result = self.require("state", name)
        try:
            parsed = json.loads(result.stdout)
        except json.JSONDecodeError as exc:
            raise LifecycleError(
                f"'{result.command}' printed no JSON ({exc}): {result.stdout[:500]!r}"
            ) from None
        if not isinstance(parsed, dict):
            raise LifecycleError(f"'{result.command}' printed no JSON object: {result.stdout!r}")
        return parsed

    def status(self, name: str) -> str:
        return str(self.state(name).get("status"))

    def wait_status(self, name: str, expected: str) -> str:
        """Poll 'state' until the status is ``expected`` or WAIT_S pass, then return it."""
        deadline = time.monotonic() + WAIT_S
        status = self.status(name)
        while status != expected and time.monotonic() < deadline:
            time.sleep(POLL_INTERVAL_S)
            status = self.status(name)
        return status

    def state_entries(self, name: str) -> list[str]:
        """Return the entries of the runtime's state directory that carry the container's id."""
        root = self.runtime.state_root(self.harness.ctx)
        if not root.is_dir():
            return []
        return sorted(entry.name for entry in root.iterdir() if name in entry.name)

    def finish(self) -> None:
        """End the containers and remove what their bundles made, newest first.

        A runtime may lose a container's state while its processes run on (runsc,
        after a create with an id in use), so that 'delete --force' no longer finds
        them. The processes left in the bundles' own cgroups are then killed by PID
        before the cgroups are removed.
        """
        for write_end in self.holds.values():
            os.close(write_end)
        self.holds.clear()
        # An entry that cannot be removed now stays in the journal, which the harness
        # empties at the end of the run.
        containers = [entry for entry in self.entries if entry.kind == "container"]
        for entry in reversed(containers):
            self.harness.journal.remove(entry)
        for bundle in self.bundles:
            kill_cgroup_processes(bundle)
        for entry in reversed(self.entries):
            if entry.kind != "container":
                self.harness.journal.remove(entry)


def read_config(bundle: Path) -> dict[str, Any]:
    config: dict[str, Any] = json.loads((bundle / "config.json").read_text())
    return config


def write_config(bundle: Path, config: dict[str, Any]) -> None:
    (bundle / "config.json").write_text(json.dumps(config, indent=2))


def read_output(bundle: Path) -> str:
    try:
        return (bundle / OUTPUT_FILE).read_text(errors="replace")
    except FileNotFoundError:
        return ""


def marker_lines(bundle: Path, marker: str) -> list[str] | None:
    """Return the lines of a marker file in the rootfs, or None when it does not exist."""
    try:
        return (bundle / "rootfs" / marker).read_text().splitlines()
    except FileNotFoundError:
        return None


def wait_marker(bundle: Path, *markers: str) -> None:
    """Poll until one of the marker files has a complete line, or WAIT_S pass.

    The shell's ``>>`` creates the file before it writes the line, so the file's
    existence alone is not enough.
    """
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        for marker in markers:
            with contextlib.suppress(FileNotFoundError):
                if (bundle / "rootfs" / marker).read_text().endswith("\n"):
                    return
        time.sleep(POLL_INTERVAL_S)


def cgroup_directories(bundle: Path) -> list[str]:
    """Return the directories of the bundle's linux.cgroupsPath that exist, in any hierarchy."""
    path = read_config(bundle)["linux"]["cgroupsPath"]
    return [str(directory) for directory in cgroups.directories_for(path) if directory.exists()]


def kill_cgroup_processes(bundle: Path) -> None:
    """Send SIGKILL to every process in the bundle's cgroups, and wait up to WAIT_S for
    the cgroups to empty."""
    try:
        path = read_config(bundle)["linux"]["cgroupsPath"]
    except (OSError, ValueError, KeyError):
        return
    if not str(path).strip("/"):
        # The root cgroup contains the host's processes, not the container's.
        return
    procs = [directory / "cgroup.procs" for directory in cgroups.directories_for(path)]
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        pids: set[int] = set()
        for listing in procs:
            with contextlib.suppress(OSError):
                pids.update(int(pid) for pid in listing.read_text().split())
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(POLL_INTERVAL_S)


def mounts_of(bundle: Path) -> list[str]:
    """Return the mount points on the host that lie in the bundle."""
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        mount_point = line.split()[4]
        if mount_point.startswith(str(bundle)):
            found.append(mount_point)
    return found


def pid_exists(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()


def tail(text: str) -> str:
    return text.strip()[-500:]
