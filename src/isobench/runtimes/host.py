"""The host adapter: no isolation at all, the negative control of every check.

It accepts every request and applies none of it, so each isolation check
must fail here. It runs the probe image's own busybox from the rootfs
directory, so the tools are the same as inside a container.

On another host, the rootfs is copied there first. The processes are
started, found and ended there. Each one runs in a process group of its own
and writes its PID into a file of its working directory.
"""

from __future__ import annotations

import contextlib
import os
import platform
import shlex
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from isobench import commands, hosts
from isobench.errors import HarnessError
from isobench.journal import Entry
from isobench.model import Request
from isobench.probe import host as host_probe
from isobench.runtimes.base import (
    Adapter,
    Availability,
    Context,
    Launched,
    popen,
    rootfs_on_host,
)


class HostAdapter(Adapter):
    """Runs the command as a plain child process of the harness."""

    name = "host"
    family = "host"
    remote_ready = True

    def availability(self) -> Availability:
        host = hosts.current()
        kernel = platform.release() if host.is_local else host.call(host_probe, "system")["kernel"]
        return Availability(
            True, version=str(kernel), details={"note": "no isolation: the negative control"}
        )

    def launch(
        self, ctx: Context, request: Request, argv: Sequence[str], env: dict[str, str]
    ) -> Launched:
        rootfs = ctx.image_for(request).rootfs
        resolved = []
        for position, arg in enumerate(argv):
            inside = rootfs / arg.lstrip("/")
            image_path = arg.startswith(("/bin/", "/isobench/")) or (
                position == 0 and arg.startswith("/")
            )
            if image_path and inside.exists():
                resolved.append(str(inside))
            else:
                resolved.append(arg)

        # The request's environment is not applied either: only the harness's own.
        environment = dict(os.environ)
        environment["PATH"] = f"{rootfs / 'bin'}:{environment.get('PATH', '')}"
        environment.update(env)
        if resolved and "/" not in resolved[0] and (rootfs / "bin" / resolved[0]).exists():
            resolved[0] = str(rootfs / "bin" / resolved[0])

        # Files a command writes in its working directory (as into a container's
        # root) land in a directory of the run's, removed with the "container".
        name = ctx.container_name(self.name)
        workdir = ctx.bundle_root / name
        entry = ctx.journal.record("directory", str(workdir), ["rm", "-rf", str(workdir)])
        if not hosts.current().is_local:
            return self._launch_elsewhere(ctx, request, name, workdir, resolved, env, entry)
        workdir.mkdir(parents=True)
        process = popen(resolved, env=environment, cwd=workdir)
        return Launched(name=name, process=process, argv=resolved, entries=[entry])

    def _launch_elsewhere(
        self,
        ctx: Context,
        request: Request,
        name: str,
        workdir: Path,
        resolved: list[str],
        env: dict[str, str],
        entry: Entry,
    ) -> Launched:
        """Start the command on the run's host in a process group of its own, whose PID
        goes to ``workdir/.pid``."""
        rootfs = rootfs_on_host(ctx.image_for(request))
        commands.run(["mkdir", "-p", str(workdir)], timeout=30)
        # Recorded after the directory, so removed before it: the processes the command
        # left, also after the harness died.
        ends = (
            'for pid in $(cat "$1/.pid" "$1/.exec-pids" 2>/dev/null); '
            'do kill -KILL -- "-$pid"; done'
        )
        group = ctx.journal.record(
            "process",
            f"{name} (host {hosts.current().label})",
            ["sh", "-c", f"{ends} 2>/dev/null; true", "sh", str(workdir)],
        )
        pid_file = str(workdir / ".pid")
        host = hosts.current()
        wrapped = host.python_argv(
            host_probe, "run_in_group", pid_file, str(rootfs / "bin"), resolved
        )
        process = popen(wrapped, env=env, cwd=workdir)
        launched = Launched(name=name, process=process, argv=resolved, entries=[entry, group])
        launched.state["workdir"] = str(workdir)
        return launched

    @staticmethod
    def _remote_pids(launched: Launched, deadline_s: float = 10.0) -> list[int]:
        """Return the PIDs of the sessions started for ``launched`` on the run's host: the
        first process's, then those of processes started beside it."""
        workdir = launched.state["workdir"]
        end = time.monotonic() + deadline_s
        while True:
            listed = commands.run(
                ["sh", "-c", 'cat "$1/.pid" "$1/.exec-pids" 2>/dev/null', "sh", workdir],
                timeout=30,
                check=False,
            )
            pids = [int(word) for word in listed.stdout.split() if word.isdigit()]
            if pids or time.monotonic() > end:
                return pids
            time.sleep(0.05)

    def network_unsupported(self, peer_traffic: bool = True) -> str | None:
        return None

    def create_network(self, ctx: Context, peer_traffic: bool = True) -> tuple[str, list[Entry]]:
        """Make nothing: the host's processes share the host's network, which is what the
        negative control of a network check shows."""
        return ctx.network_name(self.name), []

    def host_pid(self, ctx: Context, launched: Launched) -> int | None:
        if "workdir" in launched.state:
            pids = self._remote_pids(launched)
            return pids[0] if pids else None
        return launched.process.pid

    def exec_detached(self, ctx: Context, launched: Launched, argv: Sequence[str]) -> None:
        # A host process "in the container" is any process: start it beside the first one.
        if ctx.image is None:
            raise HarnessError("no probe image was built before starting a process")
        binary = ctx.image.rootfs / "bin" / argv[0]
        resolved = [str(binary) if binary.exists() else argv[0], *argv[1:]]
        if "workdir" in launched.state:
            # setsid -f returns once the session is started; it notes its PID first.
            start = 'echo $$ >> "$0/.exec-pids" && exec "$@"'
            detach = 'setsid -f sh -c "$@" </dev/null >/dev/null 2>&1'
            argv_there = ["sh", "-c", detach, "sh", start, launched.state["workdir"], *resolved]
            commands.run(argv_there, timeout=30)
            launched.commands.append(shlex.join(resolved))
            return
        child = subprocess.Popen(
            resolved,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        launched.groups.append(child.pid)
        launched.commands.append(shlex.join(resolved))

    def stop(self, ctx: Context, launched: Launched, grace_s: float) -> None:
        if "workdir" in launched.state:
            pids = self._remote_pids(launched)[:1]
            if not pids:
                raise HarnessError(f"the first process of {launched.name} wrote no PID")
            group = pids[0]
            launched.commands.append(f"kill -TERM -{group}; sleep {grace_s:g}; kill -KILL -{group}")
            commands.run(["kill", "-TERM", "--", f"-{group}"], timeout=30, check=False)
            try:
                launched.process.wait(grace_s)
            except subprocess.TimeoutExpired:
                commands.run(["kill", "-KILL", "--", f"-{group}"], timeout=30, check=False)
            return
        group = launched.process.pid
        launched.commands.append(f"kill -TERM -{group}; sleep {grace_s:g}; kill -KILL -{group}")
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(group, signal.SIGTERM)
        try:
            launched.process.wait(grace_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(group, signal.SIGKILL)

    def exec_output(self, ctx: Context, launched: Launched, argv: Sequence[str]) -> str:
        if ctx.image is None:
            raise HarnessError("no probe image was built before starting a process")
        binary = ctx.image.rootfs / "bin" / argv[0]
        resolved = [str(binary) if binary.exists() else argv[0], *argv[1:]]
        launched.commands.append(shlex.join(resolved))
        return commands.run(resolved, timeout=60).stdout

    def reap(self, ctx: Context, launched: Launched) -> None:
        """End every process the command left, as a container's end would."""
        if "workdir" in launched.state:
            groups = [f"-{pid}" for pid in self._remote_pids(launched, deadline_s=0)]
            if groups:
                commands.run(["kill", "-KILL", "--", *groups], timeout=30, check=False)
            return
        for group in [launched.process.pid, *launched.groups]:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(group, signal.SIGKILL)
        launched.groups.clear()

    def finish(self, ctx: Context, launched: Launched) -> None:
        self.reap(ctx, launched)
        super().finish(ctx, launched)
