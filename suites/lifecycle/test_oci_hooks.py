"""The hooks of config.json: when each kind runs, what it receives, and what a
failing hook does to the lifecycle.

The requirements are those of the OCI runtime specification 1.0.2: config.md
"POSIX-platform Hooks" and the lifecycle of runtime.md. Every hook is a
``/bin/sh -c`` program that appends one line, made of its kind (an argument)
and a tag (from its environment), to a log, and copies its stdin to a file.

Two logs keep every write on one side of the container's boundary. The hooks
that run in the runtime namespace append to HOST_LOG in the bundle directory.
So does createContainer, because it runs before ``pivot_root``, where the
host's paths still resolve. The check adds a line to HOST_LOG when it calls a
runtime command and when the command returns. startContainer runs in the
container after ``pivot_root``, so it appends to CONTAINER_LOG in the rootfs,
where the container's program appends its own line before it reads its stdin.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from isobench.lifecycle import (
    POLL_INTERVAL_S,
    WAIT_S,
    Lifecycle,
    cgroup_directories,
    mounts_of,
    read_config,
    read_output,
    tail,
    write_config,
)
from isobench.probe import cgroups

#: The suite this module belongs to, for the records.
SUITE = "lifecycle"

#: In the bundle directory, on the host.
HOST_LOG = "isobench-hooks.log"
#: In the rootfs: /isobench-hooks.log in the container.
CONTAINER_LOG = "isobench-hooks.log"
STATE_FILE = "isobench-hook-{kind}.json"
#: A file in the rootfs that an in-container hook requires before it writes anything, so
#: that it never writes to the host's root directory.
ROOT_SENTINEL = "isobench-hook-root"
#: Written by the poststop hook: the container's cgroup directories that still exist.
CGROUPS_LEFT_FILE = "isobench-poststop-cgroups"

TAG_ENV = "ISOBENCH_HOOK_TAG"
TAG = "from-env"
HOOK_PATH = "/bin/sh"
HOOK_ENV_PATH = "PATH=/usr/sbin:/usr/bin:/sbin:/bin"
#: The poststart hook waits up to this many seconds for the program's line, so that a
#: runtime that calls it after the program was executed gives one order in the logs.
POSTSTART_WAIT_S = 5
#: A hook with a timeout of TIMEOUT_S sleeps this long.
SLOW_HOOK_S = 10
TIMEOUT_S = 1

PROGRAM_LINE = "program"
BEFORE_PROGRAM = " before the program"
PROGRAM = (
    "/bin/sh",
    "-c",
    f"echo {PROGRAM_LINE} >> /{CONTAINER_LOG}; while read -r line; do :; done",
)

#: Hook kinds in the order that config.md lists them and runtime.md calls them.
KINDS = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop")
CREATE_KINDS = ("prestart", "createRuntime", "createContainer")
#: The kinds that run in the container, after pivot_root, and log there.
IN_CONTAINER = ("startContainer",)

# The scripts' positional parameters: $1 is the hook's kind, $2 its log, $3 the file
# that receives its stdin, and $4... what the kind needs besides.
RECORD = f'cat > "$3"; echo "$1 ${TAG_ENV}$note" >> "$2"'
# The poststart hook first waits for the program's line in $4, the container's log, and
# notes in its own line when it did not come.
WAIT_FOR_PROGRAM = (
    f'i=0; while [ $i -lt {POSTSTART_WAIT_S * 10} ] && ! grep -sqx {PROGRAM_LINE} "$4"; '
    "do sleep 0.1; i=$((i+1)); done; "
    f'grep -sqx {PROGRAM_LINE} "$4" || note="{BEFORE_PROGRAM}"; '
)
# The poststop hook writes to $4 which of the cgroup directories $5... still exist. A
# directory counts only on a cgroup file system: where crun runs, the unified hierarchy
# is unmounted, and crun makes a plain directory on the tmpfs beneath it.
LIST_CGROUPS = (
    'out=$4; shift 4; for d in "$@"; do '
    'case $(stat -f -c %T "$d" 2>/dev/null) in cgroup*) echo "$d";; esac; done > "$out"'
)

#: Declared deviations: check name, then runtime, then the requirement and what the
#: runtime does instead. Each becomes a strict xfail on that runtime.
DEVIATIONS: dict[str, dict[str, str]] = {
    "test_hook_create_order": {
        "runsc": "config.md 1.0.2 requires the createContainer hooks to be called during "
        "create, after the createRuntime hooks; runsc (release 20221219) does not run them, "
        "and create exits 0 without a message",
    },
    "test_hook_start_order": {
        "runc": "config.md 1.0.2 requires the poststart hooks to be called after the "
        "user-specified process is executed but before start returns; runc 1.1.5 calls them "
        "during create, before the program runs, and none during start",
        "runsc": "config.md 1.0.2 requires the startContainer hooks to be called during start, "
        "before the user-specified process is executed; runsc (release 20221219) does not "
        "run them, and start exits 0 without a message",
    },
    "test_hook_state_on_stdin": {
        "runc": "runtime.md 1.0.2 defines the state's pid as the ID of the container process "
        "as seen by the host; runc 1.1.5 passes pid 1, the PID inside the container's PID "
        "namespace, to the createContainer and startContainer hooks",
        "crun": "runtime.md 1.0.2 defines the state's bundle as the absolute path to the "
        "bundle, its status as creating, created, running or stopped, and its pid as the "
        "host's PID while created; crun 1.8.1 passes the startContainer hook the bundle '/', "
        "the status 'starting' and pid 0, and the createContainer hook pid 0",
    },
    "test_hook_create_failure_aborts": {
        "crun": "runtime.md 1.0.2: when a createRuntime hook fails, the runtime MUST generate "
        "an error, stop the container and continue the lifecycle at step 12, whose step 13 "
        "invokes the poststop hooks; crun 1.8.1 fails the create and removes the container, "
        "but runs no poststop hook",
    },
    "test_hook_start_failure_aborts": {
        "runsc": "runtime.md 1.0.2: when a startContainer hook fails, the runtime MUST stop the "
        "container and continue the lifecycle at step 12; runsc (release 20221219) does not "
        "run startContainer hooks, so the program runs",
        "crun": "runtime.md 1.0.2: when a startContainer hook fails, the runtime MUST stop the "
        "container and continue the lifecycle at step 12, which skips the poststart hooks; "
        "crun 1.8.1 runs the poststart hooks after the failed startContainer hook, although "
        "the program never runs, and start exits 0",
    },
    "test_hook_poststart_failure_warns": {
        "runc": "runtime.md 1.0.2: when a poststart hook fails, the runtime MUST log a warning "
        "and the lifecycle continues as if the hook had succeeded; runc 1.1.5 runs the "
        "poststart hooks during create and fails the create ('error running hook #0: "
        "error running hook: exit status 7')",
    },
}
ISOBOX_IGNORES_HOOKS = (
    "runtime.md 1.0.2 requires the runtime to invoke each kind of hook at its step of the "
    "lifecycle, and config.md requires an error for a value the runtime does not support; "
    "isobox accepts a config.json with hooks and runs none of them, without an error"
)
# isobox runs no hook, so every check deviates there. The table above stays a literal,
# which tests/integration reads without importing this module.
for _check in (
    "test_hook_create_order",
    "test_hook_start_order",
    "test_hook_poststop_after_delete",
    "test_hook_state_on_stdin",
    "test_hook_create_failure_aborts",
    "test_hook_start_failure_aborts",
    "test_hook_poststart_failure_warns",
    "test_hook_poststop_failure_warns",
    "test_hook_timeout_aborts_create",
):
    DEVIATIONS.setdefault(_check, {})["isobox"] = ISOBOX_IGNORES_HOOKS

CANNOT: dict[str, dict[str, str]] = {}


# -- hooks in config.json --------------------------------------------------------------


def host_log(bundle: Path) -> Path:
    return bundle / HOST_LOG


def container_log(bundle: Path) -> Path:
    return bundle / "rootfs" / CONTAINER_LOG


def state_file(bundle: Path, kind: str) -> Path:
    """Return the host's path of the file to which the hook of ``kind`` copies its stdin."""
    directory = bundle / "rootfs" if kind in IN_CONTAINER else bundle
    return directory / STATE_FILE.format(kind=kind)


def hook(
    bundle: Path, kind: str, *, status: int = 0, sleep: int = 0, timeout: int | None = None
) -> dict[str, Any]:
    """Build a hook of ``kind`` that logs its line and stdin, sleeps ``sleep`` seconds,
    then exits with ``status``."""
    script = RECORD
    if kind in IN_CONTAINER:
        log = f"/{CONTAINER_LOG}"
        stdin_copy = f"/{STATE_FILE.format(kind=kind)}"
        script = f"[ -e /{ROOT_SENTINEL} ] || exit 9; {RECORD}"
    else:
        log = str(host_log(bundle))
        stdin_copy = str(state_file(bundle, kind))
    extra: list[str] = []
    if kind == "poststart":
        script = WAIT_FOR_PROGRAM + RECORD
        extra = [str(container_log(bundle))]
    if kind == "poststop":
        script = f"{RECORD}; {LIST_CGROUPS}"
        path = read_config(bundle)["linux"]["cgroupsPath"]
        extra = [str(bundle / CGROUPS_LEFT_FILE)]
        extra += [str(directory) for directory in cgroups.directories_for(path)]
    if sleep:
        script += f"; exec sleep {sleep}"
    if status:
        script += f"; exit {status}"

    # sh gives the argument after the script to $0, so "hook" comes before the kind.
    entry: dict[str, Any] = {
        "path": HOOK_PATH,
        "args": ["sh", "-c", script, "hook", kind, log, stdin_copy, *extra],
        "env": [HOOK_ENV_PATH, f"{TAG_ENV}={TAG}"],
    }
    if timeout is not None:
        entry["timeout"] = timeout
    return entry


def hooked_bundle(
    lifecycle: Lifecycle, kinds: tuple[str, ...] = KINDS, **special: dict[str, Any]
) -> tuple[str, Path]:
    """Lay out a bundle whose config.json has one hook of each of ``kinds``.

    ``special`` maps a kind to the keyword arguments of ``hook`` for it (a failing
    status, a timeout).
    """
    name, bundle = lifecycle.bundle(program=PROGRAM, env={})
    (bundle / "rootfs" / ROOT_SENTINEL).touch()
    config = read_config(bundle)
    config["hooks"] = {kind: [hook(bundle, kind, **special.get(kind, {}))] for kind in kinds}
    write_config(bundle, config)
    return name, bundle


# -- observing -------------------------------------------------------------------------


def mark(bundle: Path, event: str) -> None:
    """Append a line for a runtime command to the host's log, between the hooks' lines."""
    with host_log(bundle).open("a") as log:
        log.write(f"-- {event}\n")


def lines(path: Path) -> list[str]:
    try:
        return path.read_text().splitlines()
    except FileNotFoundError:
        return []


def hook_line(kind: str) -> str:
    return f"{kind} {TAG}"


def between(log: list[str], after: str | None, before: str) -> list[str]:
    """Return the lines of ``log`` after the mark ``after`` (or the start) and before
    the mark ``before``."""
    start = log.index(f"-- {after}") + 1 if after is not None else 0
    end = log.index(f"-- {before}")
    return log[start:end]


def wait_program(bundle: Path) -> None:
    deadline = time.monotonic() + POSTSTART_WAIT_S * 2
    while time.monotonic() < deadline and PROGRAM_LINE not in lines(container_log(bundle)):
        time.sleep(0.1)


def create_marked(lifecycle: Lifecycle, name: str, bundle: Path) -> None:
    mark(bundle, "create called")
    lifecycle.create_required(name, bundle)
    mark(bundle, "create returned")


def start_marked(lifecycle: Lifecycle, name: str, bundle: Path) -> None:
    mark(bundle, "start called")
    lifecycle.require("start", name)
    mark(bundle, "start returned")


def delete_marked(lifecycle: Lifecycle, name: str, bundle: Path) -> None:
    lifecycle.stop_required(name, bundle)
    mark(bundle, "delete called")
    lifecycle.require("delete", name)
    mark(bundle, "delete returned")


def hook_lines(log: list[str], kinds: tuple[str, ...] = KINDS) -> list[str]:
    """Return the lines of the hooks of ``kinds`` in ``log``, without the marks and the
    program's line."""
    return [line for line in log if line.split(" ")[0] in kinds]


# -- checks ----------------------------------------------------------------------------


def test_hook_create_order(lifecycle: Lifecycle) -> None:
    """prestart, createRuntime and createContainer run once each, in that order, with
    their args and env, before create returns and before the program runs."""
    name, bundle = hooked_bundle(lifecycle)

    create_marked(lifecycle, name, bundle)
    log = lines(host_log(bundle))
    during = hook_lines(between(log, "create called", "create returned"), CREATE_KINDS)
    program = lines(container_log(bundle))

    # config.md 1.0.2 calls prestart after start is called, but runtime.md's lifecycle
    # calls it during create, before createRuntime. Either moment passes.
    prestart_in_create = hook_line("prestart") in during
    kinds = CREATE_KINDS if prestart_in_create else CREATE_KINDS[1:]
    expected = [hook_line(kind) for kind in kinds]
    assert during == expected, (
        f"hook lines during create: expected {expected}, observed {during} (log: {log}, "
        f"output: {tail(read_output(bundle))!r})"
    )
    assert program == [], (
        f"/{CONTAINER_LOG} after create: expected no line (neither startContainer nor the "
        f"program may run before start), observed {program}"
    )
    if not prestart_in_create:
        start_marked(lifecycle, name, bundle)
        log = lines(host_log(bundle))
        in_start = hook_lines(between(log, "start called", "start returned"), ("prestart",))
        assert in_start == [hook_line("prestart")], (
            f"prestart: expected during create before createRuntime, or during start, "
            f"observed neither (log: {log})"
        )


def test_hook_start_order(lifecycle: Lifecycle) -> None:
    """startContainer runs once during start, before the program. poststart runs once,
    after the program was executed and before start returns."""
    name, bundle = hooked_bundle(lifecycle)
    create_marked(lifecycle, name, bundle)
    before_start = lines(container_log(bundle))

    start_marked(lifecycle, name, bundle)
    wait_program(bundle)
    inside = lines(container_log(bundle))
    log = lines(host_log(bundle))
    during = hook_lines(between(log, "start called", "start returned"), ("prestart", "poststart"))

    assert before_start == [], (
        f"/{CONTAINER_LOG} before start: expected no line, observed {before_start}"
    )
    expected_inside = [hook_line("startContainer"), PROGRAM_LINE]
    assert inside == expected_inside, (
        f"/{CONTAINER_LOG} after start: expected {expected_inside} (startContainer, then the "
        f"program), observed {inside} (output: {tail(read_output(bundle))!r})"
    )
    # A prestart hook during start (see test_hook_create_order) comes before poststart.
    expected = [hook_line("poststart")]
    if hook_line("prestart") in during:
        expected.insert(0, hook_line("prestart"))
    assert during == expected, (
        f"prestart and poststart lines during start: expected {expected}, observed {during} "
        f"(log: {log})"
    )


def test_hook_poststop_after_delete(lifecycle: Lifecycle) -> None:
    """poststop runs once, during delete and after the container's cgroups are gone.
    No hook runs twice over the whole lifecycle."""
    name, bundle = hooked_bundle(lifecycle)
    create_marked(lifecycle, name, bundle)
    start_marked(lifecycle, name, bundle)
    wait_program(bundle)

    delete_marked(lifecycle, name, bundle)
    log = lines(host_log(bundle))
    before = hook_lines(between(log, None, "delete called"), ("poststop",))
    during = hook_lines(between(log, "delete called", "delete returned"))
    left = lines(bundle / CGROUPS_LEFT_FILE)
    ran = [line.split(" ")[0] for line in hook_lines(log + lines(container_log(bundle)))]
    repeated = sorted({kind for kind in ran if ran.count(kind) > 1})

    assert before == [], f"poststop lines before delete: expected none, observed {before}"
    expected = [hook_line("poststop")]
    assert during == expected, f"hook lines during delete: expected {expected}, observed {during}"
    assert left == [], (
        f"cgroup directories of the container while poststop ran: expected none (it runs "
        f"after the container is deleted), observed {left}"
    )
    assert not repeated, (
        f"hooks over create, start and delete: expected each kind at most once, observed "
        f"{repeated} more than once in {ran}"
    )


STATUSES = ("creating", "created", "running", "stopped")


def received_state(bundle: Path, kind: str) -> dict[str, Any]:
    """Return the state that the hook of ``kind`` copied from its stdin."""
    path = state_file(bundle, kind)
    text = path.read_text() if path.exists() else None
    assert text, f"stdin of the {kind} hook: expected the state, observed {text!r}"
    try:
        state = json.loads(text)
    except json.JSONDecodeError as exc:
        raise AssertionError(
            f"stdin of the {kind} hook: expected the state as JSON, observed {text[:300]!r} ({exc})"
        ) from None
    assert isinstance(state, dict), (
        f"stdin of the {kind} hook: expected a JSON object, observed {text[:300]!r}"
    )
    return state


def test_hook_state_on_stdin(lifecycle: Lifecycle) -> None:
    """Each hook receives the container's state on stdin: its id, bundle and status,
    and, while the status is created or running, the container's PID on the host."""
    name, bundle = hooked_bundle(lifecycle)
    create_marked(lifecycle, name, bundle)
    pid = lifecycle.state(name).get("pid")
    start_marked(lifecycle, name, bundle)
    wait_program(bundle)
    delete_marked(lifecycle, name, bundle)

    # A kind that did not run at all fails the checks of its moment, not this one.
    logged = hook_lines(lines(host_log(bundle)) + lines(container_log(bundle)))
    ran = [kind for kind in KINDS if any(line.split(" ")[0] == kind for line in logged)]
    assert ran, "hooks that ran: expected some, observed none"
    states = {kind: received_state(bundle, kind) for kind in ran}
    for kind, state in states.items():
        assert state.get("id") == name, (
            f"id in the {kind} hook's state: expected {name!r}, observed {state.get('id')!r}"
        )
        reported = state.get("bundle")
        assert isinstance(reported, str), (
            f"bundle in the {kind} hook's state: expected {str(bundle)!r}, observed {reported!r}"
        )
        assert os.path.realpath(reported) == os.path.realpath(bundle), (
            f"bundle in the {kind} hook's state: expected {str(bundle)!r}, observed {reported!r}"
        )
        assert state.get("status") in STATUSES, (
            f"status in the {kind} hook's state: expected one of {STATUSES}, "
            f"observed {state.get('status')!r}"
        )
    # The PID last, so that a runtime that reports it as seen inside the container's PID
    # namespace has had every other field checked.
    for kind, state in states.items():
        if state.get("status") in ("created", "running"):
            assert state.get("pid") == pid, (
                f"pid in the {kind} hook's state (status {state.get('status')!r}): expected "
                f"the PID on the host, {pid!r} as 'state' reports, observed {state.get('pid')!r}"
            )


def assert_gone(lifecycle: Lifecycle, name: str, bundle: Path, after: str) -> None:
    """Require that the container, its state entry, cgroups and mounts are gone."""
    state = lifecycle.run("state", name)
    left = lifecycle.state_entries(name)
    directories = cgroup_directories(bundle)
    mounts = mounts_of(bundle)
    assert state.returncode != 0, (
        f"state {after}: expected an error (no container), observed {state.stdout[:300]!r}"
    )
    assert not left, f"state directory {after}: expected no entry, observed {left}"
    assert not directories, f"cgroup directories {after}: expected none, observed {directories}"
    assert not mounts, f"mounts in the bundle {after}: expected none, observed {mounts}"


def test_hook_create_failure_aborts(lifecycle: Lifecycle) -> None:
    """A failing createRuntime hook makes create fail; createContainer does not run,
    the container is destroyed, poststop runs, and the program never runs."""
    name, bundle = hooked_bundle(lifecycle, createRuntime={"status": 7})

    mark(bundle, "create called")
    created = lifecycle.create(name, bundle)
    mark(bundle, "create returned")
    log = lines(host_log(bundle))
    # prestart may also run during start (see test_hook_create_order), so it is left out.
    after = ("createRuntime", "createContainer", "poststop")
    during = hook_lines(between(log, "create called", "create returned"), after)
    inside = lines(container_log(bundle))

    assert created.returncode != 0, (
        "create with a createRuntime hook that exits 7: expected an error, observed exit status 0"
    )
    assert inside == [], (
        f"/{CONTAINER_LOG} after the failed create: expected no line, observed {inside}"
    )
    assert_gone(lifecycle, name, bundle, "after the failed create")
    expected = [hook_line("createRuntime"), hook_line("poststop")]
    assert during == expected, (
        f"hook lines during the failed create: expected {expected} (createContainer skipped, "
        f"then poststop), observed {during}"
    )


def test_hook_start_failure_aborts(lifecycle: Lifecycle) -> None:
    """A failing startContainer hook stops the container: the program and poststart
    do not run."""
    name, bundle = hooked_bundle(lifecycle, startContainer={"status": 7})
    create_marked(lifecycle, name, bundle)

    mark(bundle, "start called")
    started = lifecycle.run("start", name)
    mark(bundle, "start returned")
    settled = wait_settled(lifecycle, name, bundle)
    inside = lines(container_log(bundle))
    log = lines(host_log(bundle))
    poststart = hook_lines(between(log, "start called", "start returned"), ("poststart",))

    # Not checked here: runtime.md 1.0.2 also requires start to generate an error, the container to
    # be destroyed and the poststop hooks to run. runc 1.1.5 and crun 1.8.1 run the hook
    # after start returned 0 and leave a stopped container, runsc and isobox do not run
    # it, so no row here could show a negative control failing such a check. Add it when
    # one row does all of it.
    expected_inside = [hook_line("startContainer")]
    assert inside == expected_inside, (
        f"/{CONTAINER_LOG} after start with a startContainer hook that exits 7: expected "
        f"{expected_inside} (no program), observed {inside} (start's exit status "
        f"{started.returncode})"
    )
    assert settled in ("stopped", "absent"), (
        f"container after start with a failing startContainer hook: expected stopped or "
        f"destroyed, observed {settled!r} (start's exit status {started.returncode})"
    )
    assert poststart == [], (
        f"poststart lines during the failed start: expected none, observed {poststart}"
    )


def wait_settled(lifecycle: Lifecycle, name: str, bundle: Path) -> str:
    """Poll until the program has run, or the container has stopped or is gone, for at
    most WAIT_S. Return the last status, or 'absent'.

    A runtime may run the startContainer hook after start returned, so that what the
    hook's failure does to the container shows only later.
    """
    deadline = time.monotonic() + WAIT_S
    while True:
        result = lifecycle.run("state", name)
        status = "absent"
        if result.returncode == 0:
            status = str(json.loads(result.stdout).get("status"))
        settled = status in ("stopped", "absent") or PROGRAM_LINE in lines(container_log(bundle))
        if settled or time.monotonic() > deadline:
            return status
        time.sleep(POLL_INTERVAL_S)


def test_hook_poststart_failure_warns(lifecycle: Lifecycle) -> None:
    """A failing poststart hook is a warning: create and start succeed, and the
    container runs."""
    name, bundle = hooked_bundle(lifecycle, ("poststart",), poststart={"status": 7})

    created = lifecycle.create(name, bundle)
    assert created.returncode == 0, (
        f"create with a poststart hook that exits 7: expected exit status 0, observed "
        f"{created.returncode} ({tail(created.stderr)!r})"
    )
    started = lifecycle.run("start", name)
    wait_program(bundle)
    status = lifecycle.status(name)
    inside = lines(container_log(bundle))
    ran = hook_lines(lines(host_log(bundle)))

    assert ran == [hook_line("poststart")], (
        f"hook lines: expected the failing poststart hook's, observed {ran}"
    )
    assert started.returncode == 0, (
        f"start with a poststart hook that exits 7: expected exit status 0 (a warning), "
        f"observed {started.returncode} ({tail(started.stderr)!r})"
    )
    assert status == "running", (
        f"status after start with a failing poststart hook: expected 'running', observed {status!r}"
    )
    assert inside == [PROGRAM_LINE], (
        f"/{CONTAINER_LOG}: expected the program's line, observed {inside}"
    )


def test_hook_poststop_failure_warns(lifecycle: Lifecycle) -> None:
    """A failing poststop hook is a warning: delete succeeds and the container is gone."""
    name, bundle = hooked_bundle(lifecycle, ("poststop",), poststop={"status": 7})
    create_marked(lifecycle, name, bundle)
    start_marked(lifecycle, name, bundle)
    wait_program(bundle)
    lifecycle.stop_required(name, bundle)

    deleted = lifecycle.run("delete", name)
    ran = hook_lines(lines(host_log(bundle)))

    assert ran == [hook_line("poststop")], (
        f"hook lines: expected the failing poststop hook's, observed {ran}"
    )
    assert deleted.returncode == 0, (
        f"delete with a poststop hook that exits 7: expected exit status 0 (a warning), "
        f"observed {deleted.returncode} ({tail(deleted.stderr)!r})"
    )
    assert_gone(lifecycle, name, bundle, "after delete")


def test_hook_timeout_aborts_create(lifecycle: Lifecycle) -> None:
    """A createRuntime hook that outlives its timeout makes create fail once the timeout
    has passed, and the container is destroyed."""
    slow = {"sleep": SLOW_HOOK_S, "timeout": TIMEOUT_S}
    name, bundle = hooked_bundle(lifecycle, ("createRuntime",), createRuntime=slow)

    created = lifecycle.create(name, bundle)
    inside = lines(container_log(bundle))

    assert created.returncode != 0, (
        f"create with a createRuntime hook that sleeps {SLOW_HOOK_S} s and has a timeout of "
        f"{TIMEOUT_S} s: expected an error, observed exit status 0 after "
        f"{created.duration_s:.1f} s"
    )
    # The time until create fails is what the timeout sets, not a speed: a runtime that
    # ignored the timeout returns after the hook's whole sleep.
    assert created.duration_s < SLOW_HOOK_S - 2, (
        f"time until create failed: expected about the {TIMEOUT_S} s timeout, observed "
        f"{created.duration_s:.1f} s"
    )
    assert inside == [], (
        f"/{CONTAINER_LOG} after the failed create: expected none, observed {inside}"
    )
    assert_gone(lifecycle, name, bundle, "after the timed-out create")
