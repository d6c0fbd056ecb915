"""bubblewrap: the command template of ``builtin.toml``, plus what a template cannot express.

bwrap has no commands besides the one that runs a sandbox, so it cannot name
the sandbox's PID or stop it. bwrap itself stays outside the new namespaces
and forks the sandboxed process once; with ``--as-pid-1`` that process is
PID 1 inside. Its host PID is therefore the one child of the bwrap process,
and a stop signals that child, as an engine signals a container's PID 1.
"""

from __future__ import annotations

import time

from isobench.runtimes import sandbox
from isobench.runtimes.base import Context, Launched
from isobench.runtimes.template import TemplateAdapter

#: How long to wait for bwrap to fork the sandboxed process, in seconds.
CHILD_WAIT_S = 5.0


class BwrapAdapter(TemplateAdapter):
    """The bwrap row: the template's run, with the host PID and stop found from bwrap's child."""

    def host_pid(self, ctx: Context, launched: Launched) -> int | None:
        deadline = time.monotonic() + CHILD_WAIT_S
        while launched.process.poll() is None:
            found = sandbox.children(launched.process.pid)
            if found:
                launched.commands.append(f"# host PID: the child of bwrap ({launched.process.pid})")
                return found[0]
            if time.monotonic() > deadline:
                return None
            time.sleep(0.01)
        return None

    def stop(self, ctx: Context, launched: Launched, grace_s: float) -> None:
        pid = self.host_pid(ctx, launched)
        if pid is not None:
            sandbox.signal_then_kill(launched, pid, grace_s)
