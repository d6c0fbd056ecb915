"""Known adapter bugs, reproduced on the host so that process-contract checks can fail.

A correct runtime, the host adapter included, passes the checks of how a
process is run (argv, exit codes, stdin). To prove that each of those checks
can fail, the harness's own tests run it through one of these faulty host
adapters, each of which wraps the command in the way a real adapter bug
would. They are never runtime rows of a run.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from isobench.model import Request
from isobench.runtimes.base import Context, Launched
from isobench.runtimes.host import HostAdapter

Wrap = Callable[[Sequence[str]], list[str]]


def _joined(argv: Sequence[str]) -> list[str]:
    # The arguments are pasted into one shell command line without quoting.
    return ["/bin/sh", "-c", " ".join(argv)]


def _flattened(argv: Sequence[str]) -> list[str]:
    # Every failure is reported as 1, whatever status the command exited with.
    return ["/bin/sh", "-c", '"$@" || exit 1', "sh", *argv]


def _no_stdin(argv: Sequence[str]) -> list[str]:
    # The command's stdin is never connected.
    return ["/bin/sh", "-c", 'exec "$@" < /dev/null', "sh", *argv]


#: Fault name: (what the bug does, how it rewrites the argv).
FAULTS: dict[str, tuple[str, Wrap]] = {
    "argv-joined": ("joins argv into one unquoted shell command line", _joined),
    "exit-flattened": ("reports every non-zero exit status as 1", _flattened),
    "stdin-dropped": ("never connects the command's stdin", _no_stdin),
}


class FaultyHost(HostAdapter):
    """The host adapter with one known bug."""

    family = "host"

    def __init__(self, fault: str) -> None:
        self.fault = fault
        self.name = f"host+{fault}"
        self._wrap = FAULTS[fault][1]

    def launch(
        self, ctx: Context, request: Request, argv: Sequence[str], env: dict[str, str]
    ) -> Launched:
        return super().launch(ctx, request, self._wrap(argv), env)
