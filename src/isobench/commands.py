"""Running external commands, with the evidence kept for errors and reports."""

from __future__ import annotations

import logging
import os
import shlex
import subprocess
import tempfile
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
    output_to_files: bool = False,
) -> Completed:
    """Run ``argv`` to completion and return what it printed.

    Raises CommandTimeout when it runs past ``timeout`` seconds (the process
    is killed), and CommandFailed on a non-zero exit when ``check`` is set.
    With ``output_to_files``, output goes through temporary files instead of
    pipes, for commands that leave a child holding their stdout (``runc exec
    --detach``): with pipes, reading would wait for that child to end.
    """
    if output_to_files:
        return _run_with_files(argv, timeout=timeout, check=check, env=env, hint=hint)
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


def _run_with_files(
    argv: Sequence[str], *, timeout: float, check: bool, env: Mapping[str, str] | None, hint: str
) -> Completed:
    args = [str(a) for a in argv]
    full_env = None if env is None else {**os.environ, **env}
    started = time.monotonic()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        try:
            proc = subprocess.run(
                args,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                timeout=timeout,
                env=full_env,
            )
        except subprocess.TimeoutExpired:
            raise CommandTimeout(args, timeout) from None
        except FileNotFoundError:
            raise CommandFailed(args, 127, "", f"{args[0]}: command not found", hint) from None
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode(errors="replace")
        stderr = err.read().decode(errors="replace")
    duration = time.monotonic() - started
    log.debug("exit %d in %.3fs: %s", proc.returncode, duration, shlex.join(args))
    if check and proc.returncode != 0:
        raise CommandFailed(args, proc.returncode, stdout, stderr, hint)
    return Completed(args, proc.returncode, stdout, stderr, duration)
