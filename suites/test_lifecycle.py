"""Lifecycle conformance of OCI runtime CLIs: create, start, state, kill and delete.

Each check drives the runtime's own commands on a bundle that
``OciAdapter.prepare_bundle`` lays out, so the bundle, the container and its
cgroups are in the run's journal and are removed after an error too. The
requirements are those of the OCI runtime specification 1.0.2 (runtime.md and
config.md), the version that the bundles declare in ``ociVersion``.

The container's program appends a value from its environment to a marker
file in the rootfs, so the check observes whether it ran, how often and with
which configuration. It then reads its stdin, which is a pipe held by the
check, and exits at the end of the input: closing the pipe ends the
container, and so does the exit of the test process. Every wait is bounded.

Where a runtime deviates from the specification, ``DEVIATIONS`` declares it
with the requirement and the behaviour observed, as a strict xfail on that
runtime.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from isobench import commands
from isobench.checks import Harness
from isobench.errors import CommandFailed, CommandTimeout, HarnessError
from isobench.journal import Entry
from isobench.model import Request
from isobench.probe import cgroups
from isobench.runtimes import get
from isobench.runtimes.oci import OciAdapter

#: The runtime's commands (create, start, state, kill, delete) get this many seconds.
COMMAND_TIMEOUT_S = 60.0
#: Polls for a state or a marker file give up after this many seconds.
WAIT_S = 15.0
POLL_INTERVAL_S = 0.1

VALUE_ENV = "ISOBENCH_LIFECYCLE_VALUE"
ORIGINAL_VALUE = "original"
EDITED_VALUE = "edited"
#: Files in the container's rootfs: one line per run of the program, and one line per
#: SIGUSR1 it received.
RAN_MARKER = "isobench-ran"
SIGNAL_MARKER = "isobench-usr1"
#: Written by the program that config.json names only after it was edited.
EDITED_MARKER = "isobench-edited"
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
EDITED_PROGRAM = ["/bin/sh", "-c", f"echo edited >> /{EDITED_MARKER}"]

ANNOTATIONS = {
    "org.isobench.lifecycle.check": "state-fields",
    "org.isobench.lifecycle.text": "two words = one value",
}
UNKNOWN_CAPABILITY = "CAP_ISOBENCH_UNKNOWN"
UNKNOWN_NAMESPACE = "isobench-unknown"

#: Declared deviations: check name, then runtime, then the requirement and what the
#: runtime does instead. Each becomes a strict xfail on that runtime.
DEVIATIONS: dict[str, dict[str, str]] = {
    "test_config_unknown_capability_fails": {
        "runc": "config.md 1.0.2 requires that a capability which cannot be mapped to a kernel "
        "interface causes an error; runc 1.1.5 logs a warning ('ignoring unknown or unavailable "
        "capabilities') and creates the container",
        "crun": "config.md 1.0.2 requires that a capability which cannot be mapped to a kernel "
        "interface causes an error; crun 1.8.1 creates the container without a message",
        "runsc": "runtime.md requires that an operation that generates an error leaves the "
        "host as if it had never been attempted; runsc (release 20221219) fails the create "
        "but leaves the container's cgroup directories",
    },
    "test_create_duplicate_id_fails": {
        "runsc": "runtime.md requires that an operation that generates an error leaves the "
        "host as if it had never been attempted; runsc (release 20221219) fails a create with "
        "an id in use, but removes the first container's state, so that 'state' and "
        "'delete' no longer find it while its sandbox and gofer processes run on",
    },
    "test_config_unknown_namespace_fails": {
        "runsc": "runtime.md requires create to generate an error when it cannot apply a "
        "property of config.json; runsc (release 20221219) creates the container with an "
        "unknown namespace type",
    },
    "test_state_reports_fields": {
        "isobox": "runtime.md's state contains the annotations associated with the container; "
        "isobox's state omits the annotations of config.json",
    },
}


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

    def bundle(self, edit: Callable[[dict[str, Any]], None] | None = None) -> tuple[str, Path]:
        """Lay out a journaled bundle that runs PROGRAM, with ``edit`` applied to config.json."""
        name, bundle, entries = self.runtime.prepare_bundle(
            self.harness.ctx, Request(), PROGRAM, {VALUE_ENV: ORIGINAL_VALUE}
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


@pytest.fixture
def lifecycle(
    isobench_harness: Harness, isobench_runtime: str, request: pytest.FixtureRequest
) -> Iterator[Lifecycle]:
    """Return the containers of one check on an OCI runtime, and remove them afterwards."""
    adapter = get(isobench_runtime)
    if not isinstance(adapter, OciAdapter):
        pytest.skip(
            f"lifecycle checks drive an OCI runtime CLI; {isobench_runtime} is a "
            f"{adapter.family} row"
        )
    info = adapter.availability()
    if not info.available:
        pytest.fail(f"runtime {isobench_runtime} is not available: {info.reason}", pytrace=False)
    reason = DEVIATIONS.get(request.node.originalname, {}).get(isobench_runtime)
    if reason is not None:
        # Only a failed assertion is the deviation: a runtime that could not run stays an error.
        request.applymarker(pytest.mark.xfail(reason=reason, strict=True, raises=AssertionError))

    isobench_harness.start()
    isobench_harness.prepare(adapter)
    containers = Lifecycle(isobench_harness, adapter)
    try:
        yield containers
    finally:
        containers.finish()


# -- create, start, state ----------------------------------------------------------


def test_create_holds_program(lifecycle: Lifecycle) -> None:
    """After create the container is created, its process exists, and its program has not run."""
    name, bundle = lifecycle.bundle()
    lifecycle.create_required(name, bundle)

    state = lifecycle.state(name)
    status = state.get("status")
    pid = state.get("pid")
    assert status == "created", f"status after create: expected 'created', observed {status!r}"
    assert isinstance(pid, int), f"pid after create: expected an integer, observed {pid!r}"
    assert pid > 0, f"pid after create: expected a PID > 0, observed {pid}"
    assert pid_exists(pid), f"pid after create: expected a process, but /proc/{pid} is absent"
    ran = marker_lines(bundle, RAN_MARKER)
    assert ran is None, (
        f"/{RAN_MARKER} after create: expected absent (the program must wait for start), "
        f"observed lines {ran}"
    )


def test_start_runs_program(lifecycle: Lifecycle) -> None:
    """After start the container is running and its program has run once."""
    name, bundle = lifecycle.bundle()
    lifecycle.create_required(name, bundle)
    lifecycle.require("start", name)

    wait_marker(bundle, RAN_MARKER)
    status = lifecycle.status(name)
    ran = marker_lines(bundle, RAN_MARKER)
    assert status == "running", f"status after start: expected 'running', observed {status!r}"
    assert ran == [ORIGINAL_VALUE], (
        f"/{RAN_MARKER} after start: expected [{ORIGINAL_VALUE!r}], observed {ran} "
        f"(output: {tail(read_output(bundle))!r})"
    )


def test_state_stopped_after_exit(lifecycle: Lifecycle) -> None:
    """Once the container's program exits, its status is stopped."""
    name, bundle = lifecycle.started()

    lifecycle.release(name, bundle)
    status = lifecycle.wait_status(name, "stopped")
    assert status == "stopped", (
        f"status {WAIT_S:g} s after the program's input closed: expected 'stopped', "
        f"observed {status!r}"
    )


def test_state_reports_fields(lifecycle: Lifecycle) -> None:
    """The state has ociVersion, id, status, pid, the absolute bundle and the annotations."""
    name, bundle = lifecycle.bundle(lambda config: config.update(annotations=dict(ANNOTATIONS)))
    lifecycle.create_required(name, bundle)
    created = lifecycle.state(name)
    lifecycle.require("start", name)
    wait_marker(bundle, RAN_MARKER)
    running = lifecycle.state(name)

    for phase, state in (("created", created), ("running", running)):
        version = state.get("ociVersion")
        assert isinstance(version, str), (
            f"ociVersion while {phase}: expected a string, observed {version!r}"
        )
        assert version, f"ociVersion while {phase}: expected a version, observed ''"
        assert state.get("id") == name, (
            f"id while {phase}: expected {name!r}, observed {state.get('id')!r}"
        )
        assert state.get("status") == phase, (
            f"status: expected {phase!r}, observed {state.get('status')!r}"
        )
        pid = state.get("pid")
        assert isinstance(pid, int), f"pid while {phase}: expected an integer, observed {pid!r}"
        assert pid > 0, f"pid while {phase}: expected a PID > 0, observed {pid}"
        reported = state.get("bundle")
        assert isinstance(reported, str), (
            f"bundle while {phase}: expected a path, observed {reported!r}"
        )
        assert os.path.isabs(reported), (
            f"bundle while {phase}: expected an absolute path, observed {reported!r}"
        )
        assert os.path.realpath(reported) == os.path.realpath(bundle), (
            f"bundle while {phase}: expected {str(bundle)!r}, observed {reported!r}"
        )
        annotations = state.get("annotations")
        assert annotations == ANNOTATIONS, (
            f"annotations while {phase}: expected {ANNOTATIONS}, observed {annotations!r}"
        )


def test_start_twice_fails(lifecycle: Lifecycle) -> None:
    """A second start fails and leaves the running container as it was."""
    name, bundle = lifecycle.started()
    before = lifecycle.state(name)

    second = lifecycle.run("start", name)
    after = lifecycle.state(name)
    ran = marker_lines(bundle, RAN_MARKER)
    assert second.returncode != 0, (
        f"second start: expected an error, observed exit status 0 (stderr: {tail(second.stderr)!r})"
    )
    assert after.get("status") == before.get("status"), (
        f"status after a second start: expected {before.get('status')!r} as before, "
        f"observed {after.get('status')!r}"
    )
    assert after.get("pid") == before.get("pid"), (
        f"pid after a second start: expected {before.get('pid')!r} as before, "
        f"observed {after.get('pid')!r}"
    )
    assert ran == [ORIGINAL_VALUE], (
        f"/{RAN_MARKER} after a second start: expected one run [{ORIGINAL_VALUE!r}], observed {ran}"
    )


def test_start_stopped_fails(lifecycle: Lifecycle) -> None:
    """Start of a stopped container fails, leaves it stopped and does not run the program."""
    name, bundle = lifecycle.started()
    lifecycle.stop_required(name, bundle)

    again = lifecycle.run("start", name)
    after = lifecycle.status(name)
    ran = marker_lines(bundle, RAN_MARKER)
    assert again.returncode != 0, (
        f"start of a stopped container: expected an error, observed exit status 0 "
        f"(stderr: {tail(again.stderr)!r})"
    )
    assert after == "stopped", (
        f"status after start of a stopped container: expected 'stopped', observed {after!r}"
    )
    assert ran == [ORIGINAL_VALUE], (
        f"/{RAN_MARKER} after start of a stopped container: expected one run "
        f"[{ORIGINAL_VALUE!r}], observed {ran}"
    )


def test_create_duplicate_id_fails(lifecycle: Lifecycle) -> None:
    """Create with an id in use fails and leaves the first container as it was."""
    name, bundle = lifecycle.bundle()
    lifecycle.create_required(name, bundle)
    before = lifecycle.state(name)
    _, other_bundle = lifecycle.bundle()

    duplicate = lifecycle.create(name, other_bundle)
    listed = lifecycle.run("state", name)
    assert duplicate.returncode != 0, (
        f"create with the id {name!r} in use: expected an error, observed exit status 0"
    )
    assert listed.returncode == 0, (
        f"state of the first container after the second create: expected it, observed exit "
        f"status {listed.returncode} ({tail(listed.stderr)!r})"
    )
    after = lifecycle.state(name)
    for field in ("status", "pid", "bundle"):
        assert after.get(field) == before.get(field), (
            f"{field} of the first container after the second create: expected "
            f"{before.get(field)!r} as before, observed {after.get(field)!r}"
        )


def test_create_writes_pid_file(lifecycle: Lifecycle) -> None:
    """Create with --pid-file writes the container's PID, the one that state reports."""
    name, bundle = lifecycle.bundle()
    pid_file = bundle / "isobench.pid"
    lifecycle.create_required(name, bundle, "--pid-file", str(pid_file))

    pid = lifecycle.state(name).get("pid")
    assert pid_file.exists(), f"--pid-file {pid_file}: expected a file, observed none"
    written = pid_file.read_text().strip()
    assert written == str(pid), (
        f"--pid-file content: expected the state's pid {pid!r}, observed {written!r}"
    )


# -- kill ----------------------------------------------------------------------------


def test_kill_delivers_signal(lifecycle: Lifecycle) -> None:
    """Kill delivers the requested signal to the container's process."""
    name, bundle = lifecycle.started()

    lifecycle.require("kill", name, "USR1")
    wait_marker(bundle, SIGNAL_MARKER)
    received = marker_lines(bundle, SIGNAL_MARKER)
    status = lifecycle.status(name)
    assert received == ["usr1"], (
        f"/{SIGNAL_MARKER} after 'kill {name} USR1': expected ['usr1'] from the program's "
        f"trap, observed {received}"
    )
    assert status == "running", (
        f"status after a trapped SIGUSR1: expected 'running', observed {status!r}"
    )


def test_kill_stopped_fails(lifecycle: Lifecycle) -> None:
    """Kill of a stopped container fails and leaves it stopped."""
    name, bundle = lifecycle.started()
    lifecycle.stop_required(name, bundle)

    kill = lifecycle.run("kill", name, "TERM")
    after = lifecycle.status(name)
    assert kill.returncode != 0, (
        f"kill of a stopped container: expected an error, observed exit status 0 "
        f"(stderr: {tail(kill.stderr)!r})"
    )
    assert after == "stopped", (
        f"status after kill of a stopped container: expected 'stopped', observed {after!r}"
    )


# -- delete --------------------------------------------------------------------------


def test_delete_running_fails(lifecycle: Lifecycle) -> None:
    """Delete without --force fails on a running container, which keeps running."""
    name, _ = lifecycle.started()
    before = lifecycle.state(name)

    delete = lifecycle.run("delete", name)
    listed = lifecycle.run("state", name)
    assert delete.returncode != 0, (
        f"delete of a running container: expected an error, observed exit status 0 "
        f"(stderr: {tail(delete.stderr)!r})"
    )
    assert listed.returncode == 0, (
        f"state after the refused delete: expected the container, observed exit status "
        f"{listed.returncode} ({tail(listed.stderr)!r})"
    )
    after = lifecycle.state(name)
    assert after.get("status") == "running", (
        f"status after the refused delete: expected 'running', observed {after.get('status')!r}"
    )
    pid = before.get("pid")
    assert isinstance(pid, int), f"pid while running: expected an integer, observed {pid!r}"
    assert pid_exists(pid), f"process {pid} after the refused delete: expected alive, observed gone"


def test_delete_removes_container(lifecycle: Lifecycle) -> None:
    """After delete, state fails, and the state entry and the cgroup directories are gone."""
    name, bundle = lifecycle.started()
    present = lifecycle.state_entries(name)
    if not present:
        root = lifecycle.runtime.state_root(lifecycle.harness.ctx)
        raise LifecycleError(f"{root} has no entry for {name}, so its removal cannot be seen")
    lifecycle.stop_required(name, bundle)

    lifecycle.require("delete", name)
    state = lifecycle.run("state", name)
    left = lifecycle.state_entries(name)
    directories = cgroup_directories(bundle)
    assert state.returncode != 0, (
        f"state after delete: expected an error, observed exit status 0: {state.stdout[:300]!r}"
    )
    assert not left, f"state directory after delete: expected no entry for {name}, observed {left}"
    assert not directories, (
        f"cgroup directories after delete: expected none, observed {directories}"
    )


# -- config.json -----------------------------------------------------------------------


def add_unknown_capability(config: dict[str, Any]) -> None:
    for capability_set in config["process"]["capabilities"].values():
        capability_set.append(UNKNOWN_CAPABILITY)


def add_unknown_namespace(config: dict[str, Any]) -> None:
    config["linux"]["namespaces"].append({"type": UNKNOWN_NAMESPACE})


def assert_create_rejected(lifecycle: Lifecycle, edit: Callable[[dict[str, Any]], None]) -> None:
    """Create a bundle with ``edit`` applied; require an error and nothing left behind."""
    name, bundle = lifecycle.bundle(edit)

    created = lifecycle.create(name, bundle)
    state = lifecycle.run("state", name)
    left = lifecycle.state_entries(name)
    directories = cgroup_directories(bundle)
    mounts = mounts_of(bundle)
    assert created.returncode != 0, (
        f"create: expected an error, observed exit status 0 (stderr: {tail(created.stderr)!r})"
    )
    assert state.returncode != 0, (
        f"state after the failed create: expected an error, observed {state.stdout[:300]!r}"
    )
    assert not left, f"state directory after the failed create: expected no entry, observed {left}"
    assert not directories, (
        f"cgroup directories after the failed create: expected none, observed {directories}"
    )
    assert not mounts, (
        f"mounts in the bundle after the failed create: expected none, observed {mounts}"
    )


def test_config_unknown_capability_fails(lifecycle: Lifecycle) -> None:
    """An unknown capability name makes create fail and leave nothing behind."""
    assert_create_rejected(lifecycle, add_unknown_capability)


def test_config_unknown_namespace_fails(lifecycle: Lifecycle) -> None:
    """An unknown namespace type makes create fail and leave nothing behind."""
    assert_create_rejected(lifecycle, add_unknown_namespace)


def test_config_edit_after_create_ignored(lifecycle: Lifecycle) -> None:
    """Editing config.json after create changes nothing: start runs the original program."""
    name, bundle = lifecycle.bundle()
    lifecycle.create_required(name, bundle)

    config = read_config(bundle)
    config["process"]["args"] = EDITED_PROGRAM
    config["process"]["env"] = [
        f"{VALUE_ENV}={EDITED_VALUE}" if entry.startswith(f"{VALUE_ENV}=") else entry
        for entry in config["process"]["env"]
    ]
    write_config(bundle, config)
    lifecycle.require("start", name)
    wait_marker(bundle, RAN_MARKER, EDITED_MARKER)

    ran = marker_lines(bundle, RAN_MARKER)
    edited = marker_lines(bundle, EDITED_MARKER)
    assert edited is None, (
        f"/{EDITED_MARKER}: expected absent (the edited process.args must not run), "
        f"observed {edited}"
    )
    assert ran == [ORIGINAL_VALUE], (
        f"/{RAN_MARKER}: expected the original program with {VALUE_ENV}={ORIGINAL_VALUE}, "
        f"observed {ran}"
    )
