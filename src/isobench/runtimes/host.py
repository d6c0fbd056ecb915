"""The host adapter: no isolation at all, the negative control of every check.

It accepts every request and applies none of it, so each isolation check
must fail here. It runs the probe image's own busybox from the rootfs
directory, so the tools are the same as inside a container.
"""

from __future__ import annotations

import contextlib
import os
import platform
import shlex
import signal
import subprocess
from collections.abc import Sequence

from isobench import commands
from isobench.errors import HarnessError
from isobench.journal import Entry
from isobench.model import Request
from isobench.runtimes.base import Adapter, Availability, Context, Launched, popen


class HostAdapter(Adapter):
    """Runs the command as a plain child process of the harness."""

    name = "host"
    family = "host"

    def availability(self) -> Availability:
        return Availability(
            True, version=platform.release(), details={"note": "no isolation: the negative control"}
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
        workdir.mkdir(parents=True)
        process = popen(resolved, env=environment, cwd=workdir)
        return Launched(name=name, process=process, argv=resolved, entries=[entry])

    def network_unsupported(self, peer_traffic: bool = True) -> str | None:
        return None

    def create_network(self, ctx: Context, peer_traffic: bool = True) -> tuple[str, list[Entry]]:
        """Make nothing: the host's processes share the host's network, which is what the
        negative control of a network check shows."""
        return ctx.network_name(self.name), []

    def host_pid(self, ctx: Context, launched: Launched) -> int | None:
        return launched.process.pid

    def exec_detached(self, ctx: Context, launched: Launched, argv: Sequence[str]) -> None:
        # A host process "in the container" is any process: start it beside the first one.
        if ctx.image is None:
            raise HarnessError("no probe image was built before starting a process")
        binary = ctx.image.rootfs / "bin" / argv[0]
        resolved = [str(binary) if binary.exists() else argv[0], *argv[1:]]
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
        for group in [launched.process.pid, *launched.groups]:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(group, signal.SIGKILL)
        launched.groups.clear()

    def finish(self, ctx: Context, launched: Launched) -> None:
        self.reap(ctx, launched)
        super().finish(ctx, launched)
