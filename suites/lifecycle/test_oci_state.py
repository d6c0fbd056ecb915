"""The OCI state machine: create, start, state, kill and delete, and config.json.

The checks drive the runtime's own commands through ``isobench.lifecycle``.
Where a runtime deviates from the specification, ``DEVIATIONS`` declares it with
the requirement and the behaviour observed, as a strict xfail on that runtime.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from isobench.lifecycle import (
    ORIGINAL_VALUE,
    RAN_MARKER,
    SIGNAL_MARKER,
    VALUE_ENV,
    WAIT_S,
    Lifecycle,
    LifecycleError,
    cgroup_directories,
    marker_lines,
    mounts_of,
    pid_exists,
    read_config,
    read_output,
    tail,
    wait_marker,
    write_config,
)

#: The suite this module belongs to, for the records.
SUITE = "lifecycle"

EDITED_VALUE = "edited"
#: Written by the program that config.json names only after it was edited.
EDITED_MARKER = "isobench-edited"
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
