"""An ssh:// host for unit tests whose commands run on this machine without ssh."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from isobench import hosts


class Loopback(hosts.Host):
    """An ssh:// host whose commands run here, with the connection left out: the command
    it would send is what runs, and ``sent`` keeps each one."""

    def __init__(self) -> None:
        super().__init__("ssh://root@node1")
        self.sent: list[list[str]] = []

    def command(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | Path | None = None,
    ) -> list[str]:
        args = [str(a) for a in argv]
        if env:
            args = ["env", *(f"{k}={v}" for k, v in env.items()), *args]
        self.sent.append(args)
        return args
