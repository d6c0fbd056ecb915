"""A shim that runs a container with an OCI runtime's ``create`` and ``start``, and waits for it.

Usage: ``python -m isobench.runtimes.shim RUNTIME [GLOBAL OPTIONS] -- NAME BUNDLE``

An OCI runtime CLI that has no ``run`` command still creates a container
whose first process outlives the ``create`` command, so no process is left to
wait for it and read its exit status. This shim makes itself a child
subreaper (prctl PR_SET_CHILD_SUBREAPER), so that the container's first
process, or the runtime's process that waits for it, becomes its child when
``create`` exits. It then calls ``start``, waits, and exits with the
container's status (128 + N after signal N), as ``run`` would. The
container inherits the shim's standard streams. SIGTERM, SIGINT and SIGHUP
that reach the shim go to the container through the runtime's ``kill``.
Containerd's shims play the same part for containerd.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import subprocess
import sys
from collections.abc import Sequence

PR_SET_CHILD_SUBREAPER = 36
#: The exit status of the shim when it, or the runtime's create, state or start,
#: failed; its message on stderr starts with ``MESSAGE_PREFIX``.
FAILURE_STATUS = 125
MESSAGE_PREFIX = "isobench shim: "


def _become_subreaper() -> None:
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        number = ctypes.get_errno()
        raise OSError(number, f"prctl(PR_SET_CHILD_SUBREAPER): {os.strerror(number)}")


def _fail(message: str) -> int:
    print(f"{MESSAGE_PREFIX}{message}", file=sys.stderr, flush=True)
    return FAILURE_STATUS


def main(argv: Sequence[str]) -> int:
    arguments = list(argv)
    if "--" not in arguments or len(arguments) - arguments.index("--") != 3:
        return _fail("usage: RUNTIME [GLOBAL OPTIONS] -- NAME BUNDLE")
    runtime = arguments[: arguments.index("--")]
    name, bundle = arguments[-2:]
    try:
        _become_subreaper()
    except OSError as exc:
        return _fail(str(exc))

    # The container inherits the standard streams of 'create', which are the shim's.
    created = subprocess.run([*runtime, "create", "--bundle", bundle, name])
    if created.returncode != 0:
        return _fail(f"'{' '.join(runtime)} create' exited with status {created.returncode}")
    state = subprocess.run(
        [*runtime, "state", name], stdin=subprocess.DEVNULL, capture_output=True, text=True
    )
    try:
        pid = int(json.loads(state.stdout)["pid"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError):
        return _fail(f"'{' '.join(runtime)} state {name}' gave no pid: {state.stderr.strip()}")

    def forward(signum: int, frame: object) -> None:
        subprocess.run([*runtime, "kill", name, str(signum)], capture_output=True)

    for number in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(number, forward)
    started = subprocess.run([*runtime, "start", name], stdin=subprocess.DEVNULL)
    if started.returncode != 0:
        return _fail(f"'{' '.join(runtime)} start {name}' exited with status {started.returncode}")

    # As a subreaper the shim inherits what 'create' left: the container's first
    # process (runc), or a process of the runtime that waits for it and exits with
    # its status (isobox). It reaps every child: the container's own status wins,
    # else the status of the last child to end.
    last: int | None = None
    while True:
        try:
            child, status = os.waitpid(-1, 0)
        except InterruptedError:
            continue
        except ChildProcessError:
            if last is None:
                return _fail(f"the container's process {pid} was not a child of the shim")
            return last
        code = os.waitstatus_to_exitcode(status)
        last = 128 - code if code < 0 else code
        if child == pid:
            return last


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
