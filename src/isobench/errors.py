"""The exception tree of isobench.

    IsobenchError
    ├── UsageError            bad input from the user: exit status 2
    │   ├── InputFileError    a malformed input file (file, line, field)
    │   │   ├── SuiteError
    │   │   └── RuntimesFileError
    │   └── UnknownRuntimeError
    ├── RuntimeUnavailable    a runtime's binary or daemon is missing
    └── HarnessError          the harness or a runtime could not run a check
        ├── CommandFailed     a command exited non-zero (argv, exit code, stderr)
        └── CommandTimeout    a command did not finish in time

A broken guarantee is never an exception from this tree: it is a check
outcome of ``fail``. Everything here means "no verdict could be reached".
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence

#: Exit statuses of the isobench command: no failure, a broken guarantee or a
#: regression, a usage error, a check or session that could not run, an interrupt.
EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_ERROR, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


class IsobenchError(Exception):
    """Base of every error that isobench raises on purpose."""


class UsageError(IsobenchError):
    """Invalid input from the user: an option, a file or a name."""


class InputFileError(UsageError):
    """An input file that cannot be loaded, with the place of the fault."""

    def __init__(self, path: str, line: int | None, field: str | None, problem: str) -> None:
        self.path = path
        self.line = line
        self.field = field
        self.problem = problem
        where = f"{path}:{line}" if line is not None else path
        what = f"field '{field}': {problem}" if field else problem
        super().__init__(f"{where}: {what}")


class SuiteError(InputFileError):
    """A suite file that cannot be loaded, with the place of the fault."""


class RuntimesFileError(InputFileError):
    """A runtimes file that cannot be loaded, with the place of the fault."""


class UnknownRuntimeError(UsageError):
    """A runtime name that no adapter is registered for."""

    def __init__(self, name: str, known: Sequence[str]) -> None:
        self.name = name
        self.known = list(known)
        super().__init__(
            f"unknown runtime '{name}'; known runtimes: {', '.join(sorted(known))}, and "
            "docker+NAME or podman+NAME for another OCI runtime of the engine. "
            "Run 'isobench runtimes' to see which are available here."
        )


class RuntimeUnavailable(IsobenchError):
    """A runtime that cannot be used on this host, with the reason and the fix."""

    def __init__(self, runtime: str, reason: str, hint: str = "") -> None:
        self.runtime = runtime
        self.reason = reason
        self.hint = hint
        text = f"runtime '{runtime}' is not available: {reason}"
        if hint:
            text += f". {hint}"
        super().__init__(text)


class HarnessError(IsobenchError):
    """The harness or a runtime could not run a check; the outcome is ``error``."""


def _tail(text: str, lines: int = 20) -> str:
    kept = text.strip().splitlines()[-lines:]
    return "\n".join(kept)


class CommandFailed(HarnessError):
    """A command exited with a non-zero status where success was required."""

    def __init__(
        self, argv: Sequence[str], returncode: int, stdout: str, stderr: str, hint: str = ""
    ) -> None:
        self.argv = list(argv)
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        self.hint = hint
        text = f"command failed with exit status {returncode}: {shlex.join(self.argv)}"
        if stderr.strip():
            text += f"\nstderr:\n{_tail(stderr)}"
        if hint:
            text += f"\n{hint}"
        super().__init__(text)


class CommandTimeout(HarnessError):
    """A command that did not finish within its time limit and was killed."""

    def __init__(self, argv: Sequence[str], timeout_s: float, stderr: str = "") -> None:
        self.argv = list(argv)
        self.timeout_s = timeout_s
        self.stderr = stderr
        text = f"command timed out after {timeout_s:g} s: {shlex.join(self.argv)}"
        if stderr.strip():
            text += f"\nstderr:\n{_tail(stderr)}"
        super().__init__(text)
