"""The host adapter: no isolation at all, the negative control of every check.

It accepts every request and applies none of it, so each isolation check
must fail here. It runs the probe image's own busybox from the rootfs
directory, so the tools are the same as inside a container.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Sequence

from isobench.errors import HarnessError
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
        if ctx.image is None:
            raise HarnessError("no probe image was built before launching a process")
        rootfs = ctx.image.rootfs
        resolved = []
        for arg in argv:
            inside = rootfs / arg.lstrip("/")
            if arg.startswith(("/bin/", "/isobench/")) and inside.exists():
                resolved.append(str(inside))
            else:
                resolved.append(arg)

        environment = dict(os.environ)
        environment["PATH"] = f"{rootfs / 'bin'}:{environment.get('PATH', '')}"
        environment.update(dict(request.env))
        environment.update(env)
        if resolved and "/" not in resolved[0] and (rootfs / "bin" / resolved[0]).exists():
            resolved[0] = str(rootfs / "bin" / resolved[0])

        process = popen(resolved, env=environment)
        return Launched(name=f"pid-{process.pid}", process=process, argv=resolved)

    def host_pid(self, ctx: Context, launched: Launched) -> int | None:
        return launched.process.pid
