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

from isobench import hosts
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
    host: hosts.Host | None = None,
) -> Completed:
    """Run ``argv`` to completion on ``host`` (the run's host by default) and return
    what it printed.

    Raises CommandTimeout when it runs past ``timeout`` seconds (the process
    is killed), and CommandFailed on a non-zero exit when ``check`` is set.
    With ``output_to_files``, output goes through temporary files instead of
    pipes, for commands that leave a child holding their stdout (``runc exec
    --detach``): with pipes, reading would wait for that child to end.
    """
    args = [str(a) for a in argv]
    target = host or hosts.current()
    if not target.is_local:
        return _run_remote(target, args, timeout, check, input_text, env, hint, output_to_files)
    if output_to_files:
        return _run_with_files(args, timeout=timeout, check=check, env=env, hint=hint)
    full_env = None
    if env is not None:
        full_env = dict(os.environ)
        full_env.update(env)
    return _run_local(args, args, timeout, check, input_text, full_env, hint)


def _run_local(
    args: list[str],
    display: list[str],
    timeout: float,
    check: bool,
    input_text: str | None,
    full_env: dict[str, str] | None,
    hint: str,
) -> Completed:
    """Run ``args`` here; errors and the result name ``display``."""
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
        raise CommandTimeout(display, timeout, stderr) from None
    except FileNotFoundError:
        log.debug("not found: %s", shlex.join(args))
        raise CommandFailed(display, 127, "", f"{args[0]}: command not found", hint) from None
    duration = time.monotonic() - started

    log.debug("exit %d in %.3fs: %s", proc.returncode, duration, shlex.join(args))
    result = Completed(display, proc.returncode, proc.stdout, proc.stderr, duration)
    if check and proc.returncode != 0:
        raise CommandFailed(display, proc.returncode, proc.stdout, proc.stderr, hint)
    return result


# Runs "$@" with its output going to temporary files, prints them and exits with its
# status: a process that "$@" leaves running writes to an unlinked file, not to a pipe.
_OUTPUT_THROUGH_FILES = (
    'out=$(mktemp) && err=$(mktemp) || exit 125; "$@" </dev/null >"$out" 2>"$err"; rc=$?; '
    'cat "$out"; cat "$err" >&2; rm -f "$out" "$err"; exit "$rc"'
)

#: Seconds that a command on another host gets beyond its own time limit, for the connection.
REMOTE_GRACE_S = 15.0


def _run_remote(
    host: hosts.Host,
    args: list[str],
    timeout: float,
    check: bool,
    input_text: str | None,
    env: Mapping[str, str] | None,
    hint: str,
    output_to_files: bool,
) -> Completed:
    """Run ``args`` on another host within ``timeout`` seconds. The host's timeout(1)
    ends the command there, where ending the local client would not; results and
    errors name the command with the host in front."""
    display = [f"{host.label}:", *args]
    limited = ["timeout", "--kill-after=5", f"{timeout:g}", *args]
    if output_to_files:
        # The files must be on that host: a process the command leaves holding its
        # output would otherwise hold the ssh session's pipes.
        limited = ["sh", "-c", _OUTPUT_THROUGH_FILES, "sh", *limited]
    local = host.command(limited, env=env)
    result = _run_local(local, display, timeout + REMOTE_GRACE_S, False, input_text, None, hint)
    if result.returncode in (124, 137) and result.duration_s >= timeout:
        raise CommandTimeout(display, timeout, result.stderr)
    if result.returncode == 255 and not result.stdout:
        hint = f"{host.spec} could not be reached through ssh. {hint}".strip()
    if check and result.returncode != 0:
        raise CommandFailed(display, result.returncode, result.stdout, result.stderr, hint)
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
