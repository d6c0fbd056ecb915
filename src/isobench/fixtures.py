"""Markers that the harness places on the host, so that checks can look for them inside.

A process with a unique command line, a file, a tmpfs mount, a SysV shared
memory segment and a TCP listener on 127.0.0.1: a container in which any of
them is visible shares that part of the host. A directory with a tmpfs on
its subdirectory is the source of the read-only bind checks. Each is recorded in the journal
before it is made, so it is removed also after an interrupt.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import socket
import subprocess
import threading
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

from isobench import commands, hosts
from isobench.errors import HarnessError
from isobench.journal import Entry, Journal
from isobench.probe import host as host_probe
from isobench.runtimes.base import write_on_host

log = logging.getLogger(__name__)


class Listener(threading.Thread):
    """A TCP listener on 127.0.0.1 that accepts and closes every connection."""

    def __init__(self) -> None:
        super().__init__(daemon=True, name="isobench-listener")
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.5)
        self.port: int = self.sock.getsockname()[1]
        self.accepted = 0
        self._stopping = threading.Event()

    def run(self) -> None:
        while not self._stopping.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                break
            self.accepted += 1
            conn.close()

    def stop(self) -> None:
        self._stopping.set()
        self.sock.close()
        self.join(2)


class HostMarkers:
    """Creates the markers for one run and removes them."""

    def __init__(self, run_id: str, journal: Journal, base: Path = Path("/tmp")) -> None:
        self.run_id = run_id
        self.journal = journal
        self.base = base
        self.facts: dict[str, str | list[str]] = {}
        self._process: subprocess.Popen[bytes] | None = None
        self._process_entry: Entry | None = None
        self._listener: Listener | None = None

    def create(self) -> dict[str, str | list[str]]:
        """Make every marker and return the host facts that name them.

        On another host the same markers are made through commands, and the
        host's python3 runs the listener and makes the shared memory segment.
        """
        tag = f"isobench-marker-{self.run_id}"
        local = hosts.current().is_local

        # pkill matches the whole command line, which carries the run id, so a
        # stale journal can never end an unrelated process that reused the PID.
        self._process_entry = self.journal.record(
            "process",
            f"{tag} 3600",
            ["pkill", "--full", "--exact", f"{tag} 3600"],
            absent_status=(1,),  # pkill: no process matched
        )
        if local:
            sleep = shutil.which("sleep") or "/bin/sleep"
            self._process = subprocess.Popen(
                [tag, "3600"], executable=sleep, stdin=subprocess.DEVNULL, start_new_session=True
            )
        else:
            rename = "import os, sys; os.execvp('sleep', sys.argv[1:])"
            detach = 'setsid -f "$@" </dev/null >/dev/null 2>&1'
            start = ["sh", "-c", detach, "sh", "python3", "-c", rename, tag, "3600"]
            commands.run(start, timeout=30)
        self.facts["marker.process"] = f"{tag} 3600"

        marker_file = self.base / f"{tag}.file"
        self.journal.record("file", str(marker_file), ["rm", "-f", str(marker_file)])
        write_on_host(marker_file, "isobench marker\n")
        self.facts["marker.file"] = str(marker_file)

        mount_point = self.base / f"{tag}.mnt"
        self.journal.record(
            "directory", str(mount_point), ["rmdir", str(mount_point)], absent=("No such file",)
        )
        commands.run(["mkdir", "-p", str(mount_point)], timeout=30)
        self._mount_tmpfs(mount_point, "The mount marker needs root.")
        self.facts["marker.mount"] = str(mount_point)

        self.facts["marker.shm_key"] = self._make_shm()
        self.facts["marker.bind_dir"] = self._make_bind_tree(self.base / f"{tag}.bind")

        if local:
            self._listener = Listener()
            self._listener.start()
            self.facts["listener.port"] = str(self._listener.port)
        else:
            port_file = self.base / f"{tag}.port"
            self.journal.record("file", str(port_file), ["rm", "-f", str(port_file)])
            listener_tag = f"{tag}.listener"
            self.journal.record(
                "process", listener_tag, hosts.pkill_argv(listener_tag), absent_status=(1,)
            )
            hosts.current().spawn(
                host_probe, "serve_loopback", str(port_file), 3600, tag=listener_tag
            )
            self.facts["listener.port"] = self._read_port(port_file)
        return self.facts

    def _mount_tmpfs(self, mount_point: Path, hint: str) -> None:
        self.journal.record(
            "mount",
            str(mount_point),
            ["umount", str(mount_point)],
            absent=("not mounted", "no mount point"),
        )
        commands.run(
            ["mount", "-t", "tmpfs", "-o", "size=64k", "isobench", str(mount_point)],
            timeout=30,
            hint=hint,
        )

    @staticmethod
    def _read_port(port_file: Path) -> str:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            done = commands.run(["cat", str(port_file)], timeout=30, check=False)
            if done.returncode == 0 and done.stdout.strip().isdigit():
                return done.stdout.strip()
            time.sleep(0.2)
        raise HarnessError(f"the loopback listener on {hosts.current().label} did not start")

    def _shm_key(self) -> int:
        return zlib.crc32(self.run_id.encode()) & 0x7FFFFFFF or 1

    def _make_bind_tree(self, top: Path) -> str:
        """Make a directory with a writable tmpfs on its subdirectory 'sub', for bind checks."""
        self.journal.record("directory", str(top), ["rm", "-rf", "--one-file-system", str(top)])
        commands.run(["mkdir", "-p", str(top / "sub")], timeout=30)
        self._mount_tmpfs(top / "sub", "The bind marker needs root.")
        return str(top)

    def _make_shm(self) -> str:
        """Make a SysV shared memory segment with a key derived from the run id."""
        key = self._shm_key()
        self.journal.record(
            "shm",
            f"{key:#x}",
            ["ipcrm", "--shmem-key", f"{key:#x}"],
            absent=("invalid key", "Invalid argument", "not found"),
        )
        problem = hosts.current().call(host_probe, "make_shm", key)
        if problem:
            raise HarnessError(
                f"shmget(key={key:#x}) failed: {problem}; "
                "a segment with this key may be left from an earlier run: 'isobench clean'"
            )
        return str(key)

    @contextlib.contextmanager
    def hostname_guard(self) -> Iterator[list[str]]:
        """Restore the host's hostname if the code in the block changed it.

        The name before the block is journaled, so 'isobench clean' restores it
        after a kill. Only a change made during the block is undone, so a run does
        not undo another run's deliberate change. The list yielded receives the
        changed name, if any.
        """
        host = hosts.current()
        before = str(host.call(host_probe, "system")["hostname"])
        entry = self.journal.record("hostname", before, ["hostname", before])
        changed: list[str] = []
        try:
            yield changed
        finally:
            current = str(host.call(host_probe, "system")["hostname"])
            if current != before:
                log.warning(
                    "the host's hostname changed to %r during a check; restoring %r",
                    current,
                    before,
                )
                commands.run(["hostname", before], timeout=30)
                changed.append(current)
            self.journal.released(entry)

    def remove(self) -> None:
        """Stop the listener and the process; the journal removes the rest."""
        if self._listener is not None:
            self._listener.stop()
        if self._process is not None:
            if self._process.poll() is None:
                self._process.terminate()
                self._process.wait(5)
            if self._process_entry is not None:
                self.journal.released(self._process_entry)
