"""The machine a run checks: this one, or another reached through a testinfra backend.

Every command of a run goes through :func:`current`: ``commands.run`` and the
adapters' client processes turn their argv into the local argv that runs it
there. For ``local://`` that is the argv itself. For ``ssh://`` it is the
``ssh`` command line that testinfra's ssh backend builds (user, port,
identity, ssh_config, sudo), with a connection shared by every command of
the run. The facts that are read on the host side (``/proc/<pid>``, cgroup
files, the host's own namespaces) are read by the same functions on that
host: their modules use the standard library only, and are sent to the
host's ``python3`` with the call.
"""

from __future__ import annotations

import base64
import contextlib
import inspect
import json
import logging
import shlex
import subprocess
import tempfile
import urllib.parse
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from isobench.errors import HarnessError, UsageError

log = logging.getLogger(__name__)

LOCAL_SPEC = "local://"

#: The backends whose commands run as a local client process, so that a container's
#: stdin and stdout can be streamed through them while it runs.
STREAMING_BACKENDS = ("local", "ssh")

# Run on the host by its python3: it makes the modules sent along importable
# under their own names, calls one function and prints its result as JSON.
_BOOTSTRAP = """\
import base64, json, sys, types
payload = json.loads(base64.b64decode(sys.argv[1]))
for name, source in payload["modules"]:
    parts = name.split(".")
    for end in range(1, len(parts)):
        package = ".".join(parts[:end])
        if package not in sys.modules:
            made = types.ModuleType(package)
            made.__path__ = []
            sys.modules[package] = made
    module = types.ModuleType(name)
    sys.modules[name] = module
    exec(compile(source, name, "exec"), module.__dict__)
    setattr(sys.modules[".".join(parts[:-1])], parts[-1], module)
module, function, args = payload["call"]
print(json.dumps(getattr(sys.modules[module], function)(*args)))
"""


def connection_of(spec: str) -> str:
    """Return the testinfra connection type that ``spec`` names ("local", "ssh", ...)."""
    if "://" not in spec:
        raise UsageError(
            f"host {spec!r} names no connection: write it as a testinfra host spec, "
            "such as ssh://root@node1 or local://"
        )
    return spec.split("://", 1)[0]


def label_of(spec: str) -> str:
    """Return the short name of a host for reports: 'local', or user@address[:port]."""
    if connection_of(spec) == "local":
        return "local"
    return urllib.parse.urlparse(spec).netloc.rsplit("@", 1)[-1] or spec


class Host:
    """One machine that a run checks, and how its commands get there."""

    def __init__(self, spec: str = LOCAL_SPEC) -> None:
        self.connection = connection_of(spec)
        if self.connection not in STREAMING_BACKENDS:
            raise UsageError(
                f"host {spec!r}: isobench streams a container's input and output while it "
                f"runs, and testinfra's {self.connection}:// backend runs a command only to "
                "its end; use ssh:// (it reads the same ssh_config and keys) or local://"
            )
        self.spec = spec
        self.label = label_of(spec)
        self._backend: Any = None
        self._control_dir: Path | None = None

    @property
    def is_local(self) -> bool:
        return self.connection == "local"

    def __repr__(self) -> str:
        return f"Host({self.spec!r})"

    def _ssh_backend(self) -> Any:
        if self._backend is None:
            import testinfra  # type: ignore[import-untyped]

            # One ssh connection carries every command of the run; its socket lives
            # in a directory of this process and closes with close().
            self._control_dir = Path(tempfile.mkdtemp(prefix="isobench-ssh-"))
            # The directory is this Host's alone, so one fixed name is enough (testinfra
            # would take a '%' of ssh's own tokens for one of its placeholders).
            host = testinfra.get_host(
                self.spec, controlpath=str(self._control_dir / "control"), controlpersist=600
            )
            self._backend = host.backend
        return self._backend

    def command(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | Path | None = None,
    ) -> list[str]:
        """Return the local argv that runs ``argv`` on this host, with ``env`` added to
        its environment and ``cwd`` as its working directory."""
        args = [str(a) for a in argv]
        if self.is_local:
            return args
        remote = shlex.join(args)
        if env:
            remote = shlex.join(["env", *(f"{k}={v}" for k, v in env.items())]) + " " + remote
        if cwd is not None:
            remote = f"cd {shlex.quote(str(cwd))} && exec {remote}"
        backend = self._ssh_backend()
        # testinfra builds the ssh command line and wraps it for sudo. The line is split
        # back into an argv here, so that no shell runs between this process and ssh.
        template, values = backend._build_ssh_command(backend.get_command(remote))
        return shlex.split(backend.quote(" ".join(template), *values))

    def call(self, module: ModuleType, function: str, *args: Any) -> Any:
        """Call ``module.function(*args)`` on this host and return its result.

        The module, and the isobench modules it imports, use the standard library
        only; the arguments and the result are plain JSON values.
        """
        if self.is_local:
            return getattr(module, function)(*args)
        argv = self.command(_python_call(module, function, args))
        try:
            done = subprocess.run(
                argv, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL
            )
        except subprocess.TimeoutExpired:
            what = f"{module.__name__}.{function}"
            raise HarnessError(f"{self.label}: {what} ran past 60 s") from None
        if done.returncode != 0:
            raise HarnessError(
                f"{self.label}: reading {module.__name__}.{function} on the host failed "
                f"(exit status {done.returncode}): {done.stderr.strip()[-600:]}"
                + ("; isobench needs python3 on the host" if done.returncode == 127 else "")
            )
        return json.loads(done.stdout)

    def spawn(self, module: ModuleType, function: str, *args: Any, tag: str) -> None:
        """Start ``module.function(*args)`` on this host in a session of its own, detached
        from the connection. ``tag`` goes last on its command line, for
        :func:`pkill_argv`."""
        argv = [*_python_call(module, function, args), tag]
        detached = ["sh", "-c", 'setsid -f "$@" </dev/null >/dev/null 2>&1', "sh", *argv]
        done = subprocess.run(
            self.command(detached),
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )
        if done.returncode != 0:
            raise HarnessError(
                f"{self.label}: starting {module.__name__}.{function} failed "
                f"(exit status {done.returncode}): {done.stderr.strip()[-600:]}"
            )

    def python_argv(self, module: ModuleType, function: str, *args: Any) -> list[str]:
        """Return the argv that calls ``module.function(*args)`` with the host's python3,
        for a caller that starts it itself (a function that runs a command)."""
        return _python_call(module, function, args)

    def reachable(self) -> str | None:
        """Return why this host cannot be reached, or None when a command runs there."""
        if self.is_local:
            return None
        try:
            done = subprocess.run(
                self.command(["true"]),
                capture_output=True,
                text=True,
                timeout=60,
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired:
            return f"{self.spec}: no answer within 60 s"
        except FileNotFoundError as exc:
            return f"{self.spec}: {exc.filename} is not installed on this machine"
        if done.returncode != 0:
            return f"{self.spec} could not be reached: {done.stderr.strip()[-400:]}"
        return None

    def close(self) -> None:
        """End the shared ssh connection and remove its socket's directory."""
        if self._control_dir is None:
            return
        for socket_path in self._control_dir.iterdir():
            with contextlib.suppress(OSError, subprocess.TimeoutExpired):
                subprocess.run(
                    ["ssh", "-o", f"ControlPath={socket_path}", "-O", "exit", "isobench-host"],
                    capture_output=True,
                    timeout=10,
                    stdin=subprocess.DEVNULL,
                )
        with contextlib.suppress(OSError):
            for leftover in self._control_dir.iterdir():
                leftover.unlink()
            self._control_dir.rmdir()
        self._control_dir = None
        self._backend = None


def pkill_argv(tag: str) -> list[str]:
    """Return the pkill command that ends the processes whose command line carries ``tag``.

    Its pattern is written so that it does not match itself: the shell and the
    timeout(1) that run pkill on another host carry the pattern in their own
    command lines, and would be ended too.
    """
    rest = "".join(f"\\{c}" if c in _REGEX_SPECIAL else c for c in tag[1:])
    return ["pkill", "--full", f"[{tag[0]}]{rest}"]


#: The characters that a POSIX extended regular expression gives a meaning.
_REGEX_SPECIAL = frozenset(".[]()*+?{}|^$\\")


def _python_call(module: ModuleType, function: str, args: Sequence[Any]) -> list[str]:
    """Return the argv that calls ``module.function(*args)`` with the host's python3 and
    prints the result as JSON."""
    modules = [(m.__name__, inspect.getsource(m)) for m in _with_imports(module)]
    payload = {"modules": modules, "call": [module.__name__, function, list(args)]}
    encoded = base64.b64encode(json.dumps(payload).encode()).decode()
    return ["python3", "-c", _BOOTSTRAP, encoded]


def _with_imports(module: ModuleType) -> list[ModuleType]:
    """Return the isobench modules that ``module`` imports, then ``module``, in an order
    in which each comes after what it imports."""
    ordered: list[ModuleType] = []

    def visit(current: ModuleType) -> None:
        if current in ordered:
            return
        for value in vars(current).values():
            if isinstance(value, ModuleType) and value.__name__.startswith("isobench."):
                visit(value)
        ordered.append(current)

    visit(module)
    return ordered


LOCAL = Host(LOCAL_SPEC)
_current = LOCAL


def current() -> Host:
    """Return the host that this process's run checks."""
    return _current


def use(host: Host) -> Host:
    """Make ``host`` the one that this process's commands and host-side reads go to,
    and return the one before."""
    global _current
    before, _current = _current, host
    log.debug("commands go to %s", host.spec)
    return before
