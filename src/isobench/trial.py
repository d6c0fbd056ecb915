"""A trial start on each runtime: one container that runs ``true``.

A runtime whose binary prints its ``--version`` may still refuse this host
(crun on a hybrid cgroup host, a daemon that cannot start). Only a start
shows it, with the runtime's own message. Everything the trials make
is journaled, as in a run, and removed afterwards.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from isobench import images
from isobench.errors import CommandFailed, IsobenchError
from isobench.journal import Journal
from isobench.model import Request
from isobench.results import new_run_id
from isobench.runtimes.base import Adapter, Context, execute

log = logging.getLogger(__name__)

#: Seconds that one trial container may take, the runtime's own set-up included.
TRIAL_TIMEOUT_S = 120.0
#: Characters of a runtime's stderr kept in a trial's message.
MESSAGE_CHARS = 600


def trial_starts(adapters: Sequence[Adapter]) -> dict[str, str]:
    """Start a container running ``true`` on each adapter.

    Returns, per adapter name, "" when the container ran and exited 0, or
    the reason it did not, with the runtime's own message.
    """
    run_id = f"trial-{new_run_id()}"
    journal = Journal(run_id)
    ctx = Context(run_id, journal)
    results: dict[str, str] = {}
    try:
        ctx.image = images.build_probe_image()
        root = ctx.bundle_root
        journal.record("directory", str(root), ["rmdir", str(root)], absent=("No such file",))
        root.mkdir(mode=0o755, parents=True, exist_ok=True)
        for adapter in adapters:
            results[adapter.name] = _trial(adapter, ctx)
    finally:
        left = journal.remove_all()
        journal.close()
        if left:
            names = ", ".join(f"{entry.kind} {entry.name}" for entry in left)
            log.warning("could not remove: %s; run 'isobench clean'", names)
    return results


def _trial(adapter: Adapter, ctx: Context) -> str:
    request = Request()
    reason = adapter.unsupported(request)
    if reason is not None:
        return f"it cannot express a container with default settings: {reason}"
    try:
        adapter.prepare(ctx)
        execution = execute(adapter, ctx, request, ["true"], timeout=TRIAL_TIMEOUT_S)
    except CommandFailed as exc:
        return _message(exc.hint or "", exc.stderr)
    except IsobenchError as exc:
        return str(exc)[:MESSAGE_CHARS]
    result = execution.result
    if result.exit_code == 0:
        return ""
    return _message(f"a container running 'true' exited {result.exit_code}", result.stderr)


def _message(what: str, stderr: str) -> str:
    tail = stderr.strip()[-MESSAGE_CHARS:]
    if not tail:
        return what or "it failed without a message"
    return f"{what}: {tail}" if what else tail
