"""One host-wide lock, so that benchmarks never run beside another isobench run.

Suite runs share the lock; a benchmark run takes it alone. The lock is an
flock(2) on a file, so the kernel releases it when its process dies and a
killed run never leaves it behind.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from isobench.errors import UsageError

#: The lock this process holds, if any: a second flock from the same process would
#: conflict with the first, so the plugin reuses the CLI's.
_held_lock: RunLock | None = None


def held() -> RunLock | None:
    return _held_lock


def lock_path() -> Path:
    return Path(os.environ.get("ISOBENCH_LOCK", "/run/isobench/run.lock"))


def holders(path: Path, locks: Path = Path("/proc/locks")) -> list[str]:
    """Return "PID (command line)" for each process that holds a flock on ``path``.

    /proc/locks names a lock's file by its device, in hexadecimal major:minor,
    and its inode. Both must match the lock file's.
    """
    try:
        status = path.stat()
        lines = locks.read_text().splitlines()
    except OSError:
        return []
    wanted = (os.major(status.st_dev), os.minor(status.st_dev), status.st_ino)
    found = []
    for line in lines:
        fields = line.split()
        # "1: FLOCK  ADVISORY  READ  1234 00:19:5678 0 EOF"; a waiter has "->" after the colon.
        if "->" in fields or len(fields) < 6 or fields[1] != "FLOCK":
            continue
        try:
            major, minor, inode = fields[5].split(":")
            key = (int(major, 16), int(minor, 16), int(inode))
            pid = int(fields[4])
        except ValueError:
            continue
        if key == wanted and pid != os.getpid():
            found.append(f"{pid} ({_command_line(pid)})")
    return sorted(set(found))


def _command_line(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return "ended"
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()[:200] or "unknown"


class RunLock:
    """The host-wide run lock, held until :meth:`release` or the end of the process."""

    def __init__(self, exclusive: bool) -> None:
        self.exclusive = exclusive
        self._fd: int | None = None

    def acquire(self) -> None:
        path = lock_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        mode = fcntl.LOCK_EX if self.exclusive else fcntl.LOCK_SH
        try:
            fcntl.flock(fd, mode | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            running = holders(path)
            held_by = f"; held by PID {', '.join(running)}" if running else ""
            if self.exclusive:
                raise UsageError(
                    "another isobench run is active on this host, and benchmarks run alone "
                    f"so that nothing else disturbs their timing (lock: {path}{held_by}); "
                    "wait for it to end and retry"
                ) from None
            raise UsageError(
                "an isobench benchmark run is active on this host; wait for it to end "
                f"before starting suites, so that its timings stay clean (lock: {path}"
                f"{held_by})"
            ) from None
        self._fd = fd
        global _held_lock
        _held_lock = self

    def release(self) -> None:
        global _held_lock
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if _held_lock is self:
            _held_lock = None
