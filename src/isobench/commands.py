"""Running external commands, with the evidence kept for errors and reports."""

from __future__ import annotations

import logging
import os
import shlex
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from isobench.errors import CommandFailed, CommandTimeout

log = logging.getLogger(__name__)


@dataclass
class Completed:
    """A finished command: its argv, exit status, output and duration."""

    argv: list[str]
    returncode: int
    stdout: str
    stderr: str
    duration_s: float

    @property
    def command(self) -> str:
        return shlex.join(self.argv)


def run(
    argv: Sequence[str],
    *,
    timeout: float = 60.0,
    check: bool = True,
    input_text: str | None = None,
    env: Mapping[str, str] | None = None,
    hint: str = "",
) -> Completed:
    """Run ``argv`` to completion and return what it printed.

    Raises CommandTimeout when it runs past ``timeout`` seconds (the process
    is killed), and CommandFailed on a non-zero exit when ``check`` is set.
    """
    args = [str(a) for a in argv]
    full_env = None
    if env is not None:
        full_env = dict(os.environ)
        full_env.update(env)

    started = time.monotonic()
    try:
        proc = subprocess.run(
            args,
            input=input_text,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=full_env,
            stdin=None if input_text is not None else subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as exc:
        stderr = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else ""
        log.debug("timed out after %.1fs: %s", timeout, shlex.join(args))
        raise CommandTimeout(args, timeout, stderr) from None
    except FileNotFoundError:
        log.debug("not found: %s", shlex.join(args))
        raise CommandFailed(args, 127, "", f"{args[0]}: command not found", hint) from None
    duration = time.monotonic() - started

    log.debug("exit %d in %.3fs: %s", proc.returncode, duration, shlex.join(args))
    result = Completed(args, proc.returncode, proc.stdout, proc.stderr, duration)
    if check and proc.returncode != 0:
        raise CommandFailed(args, proc.returncode, proc.stdout, proc.stderr, hint)
    return result
