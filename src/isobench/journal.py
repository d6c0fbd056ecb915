"""The journal of everything a run creates on the host, and its removal.

Each container, bundle, mount or host process that a run makes is written
to the journal before it is created, with the command that removes it, and
marked released after it is removed. Removal runs in reverse order at the
end of the run, also after an error or an interrupt; a journal left by a
process that died (kill -9) still names what to remove.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shlex
import signal
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from isobench import commands, hosts
from isobench.errors import CommandFailed, IsobenchError

log = logging.getLogger(__name__)

DEFAULT_STATE_DIR = Path("/var/lib/isobench")


def state_dir() -> Path:
    return Path(os.environ.get("ISOBENCH_STATE_DIR", str(DEFAULT_STATE_DIR)))


@dataclass
class Entry:
    """One resource on the host: what it is and the argv that removes it."""

    key: str
    kind: str
    name: str
    remove: list[str]
    runtime: str = ""
    absent: tuple[str, ...] = ()
    """Substrings of the removal's stderr that mean the resource is already gone."""
    absent_status: tuple[int, ...] = ()
    """Exit statuses of the removal that mean the resource is already gone."""
    host: str = hosts.LOCAL_SPEC
    """The machine the resource is on, as a testinfra host spec."""


class Journal:
    """An append-only JSON Lines record of resources, kept in the state directory."""

    def __init__(self, run_id: str, run_dir: Path | None = None, directory: Path | None = None):
        self.run_id = run_id
        base = directory if directory is not None else state_dir() / "journal"
        base.mkdir(parents=True, exist_ok=True)
        self.path = base / f"{run_id}.jsonl"
        #: Every resource of the journal is on the machine that the run checks.
        self.host = hosts.current().spec
        self._lock = threading.Lock()
        self._live: dict[str, Entry] = {}
        self._order: list[str] = []
        self._write(
            {
                "op": "open",
                "pid": os.getpid(),
                "run_dir": str(run_dir or ""),
                "host": self.host,
                "time": time.time(),
            }
        )

    def _write(self, record: dict[str, object]) -> None:
        with self._lock, self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    def record(
        self,
        kind: str,
        name: str,
        remove: Sequence[str],
        runtime: str = "",
        absent: Sequence[str] = (),
        absent_status: Sequence[int] = (),
    ) -> Entry:
        """Write a resource to the journal before it is created; return its entry."""
        key = f"{kind}:{runtime}:{name}"
        entry = Entry(
            key,
            kind,
            name,
            [str(a) for a in remove],
            runtime,
            tuple(absent),
            tuple(absent_status),
            self.host,
        )
        self._write(
            {
                "op": "create",
                "key": key,
                "kind": kind,
                "name": name,
                "runtime": runtime,
                "remove": entry.remove,
                "absent": list(entry.absent),
                "absent_status": list(entry.absent_status),
            }
        )
        with self._lock:
            if key not in self._live:
                self._order.append(key)
            self._live[key] = entry
        return entry

    def released(self, entry: Entry) -> None:
        """Mark a resource as removed."""
        self._write({"op": "release", "key": entry.key})
        with self._lock:
            self._live.pop(entry.key, None)

    def remove(self, entry: Entry, timeout: float = 60.0) -> bool:
        """Run the entry's removal command; return whether the resource is gone."""
        try:
            remove_entry(entry, timeout)
        except IsobenchError as exc:
            log.warning("could not remove %s %s: %s", entry.kind, entry.name, exc)
            return False
        self.released(entry)
        return True

    def live(self) -> list[Entry]:
        with self._lock:
            return [self._live[key] for key in self._order if key in self._live]

    def remove_all(self) -> list[Entry]:
        """Remove every resource still recorded, newest first; return those that remain."""
        remaining = []
        for entry in reversed(self.live()):
            if not self.remove(entry):
                remaining.append(entry)
        return remaining

    def close(self) -> None:
        """Delete the journal file when nothing it records is left on the host."""
        if self.live():
            log.warning(
                "journal %s keeps %d resources that could not be removed; "
                "run 'isobench clean' to retry",
                self.path,
                len(self.live()),
            )
            return
        self._write({"op": "close", "time": time.time()})
        self.path.unlink(missing_ok=True)


def remove_entry(entry: Entry, timeout: float = 60.0) -> None:
    """Run an entry's removal command; a resource that is already gone counts as removed."""
    result = commands.run(entry.remove, timeout=timeout, check=False, host=_host(entry.host))
    if result.returncode == 0 or result.returncode in entry.absent_status:
        return
    if any(marker in result.stderr for marker in entry.absent):
        return
    raise CommandFailed(result.argv, result.returncode, result.stdout, result.stderr)


_hosts: dict[str, hosts.Host] = {}


def _host(spec: str) -> hosts.Host:
    """Return the host of a resource: the run's own, or one reached for 'isobench clean'."""
    if spec == hosts.current().spec:
        return hosts.current()
    if spec not in _hosts:
        _hosts[spec] = hosts.Host(spec)
    return _hosts[spec]


def close_hosts() -> None:
    """End the connections that removing the resources of other hosts opened."""
    for host in _hosts.values():
        host.close()
    _hosts.clear()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _mark_killed(run_dir: str) -> None:
    """Set the status of a dead run's run.json to 'killed' if it is still 'running'."""
    if not run_dir:
        return
    path = Path(run_dir) / "run.json"
    try:
        meta = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return
    if meta.get("status") in ("running", "cleaning"):
        meta["status"] = "killed"
        path.write_text(json.dumps(meta, indent=2) + "\n")


def _owner(path: Path) -> tuple[int | None, str]:
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if record.get("op") == "open":
            return record.get("pid"), str(record.get("run_dir", ""))
    return None, ""


def stale_entries(directory: Path | None = None) -> dict[Path, list[Entry]]:
    """Read the journals of runs whose process is gone; return what they left."""
    base = directory if directory is not None else state_dir() / "journal"
    found: dict[Path, list[Entry]] = {}
    if not base.is_dir():
        return found
    for path in sorted(base.glob("*.jsonl")):
        owner = None
        host = hosts.LOCAL_SPEC
        live: dict[str, Entry] = {}
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut short by the kill
            if record.get("op") == "open":
                owner = record.get("pid")
                host = str(record.get("host") or hosts.LOCAL_SPEC)
            elif record.get("op") == "create":
                live[record["key"]] = Entry(
                    record["key"],
                    record["kind"],
                    record["name"],
                    record["remove"],
                    record.get("runtime", ""),
                    tuple(record.get("absent", ())),
                    tuple(record.get("absent_status", ())),
                    host,
                )
            elif record.get("op") == "release":
                live.pop(record["key"], None)
        if isinstance(owner, int) and _pid_alive(owner):
            continue
        found[path] = list(live.values())
    return found


#: How long 'isobench clean' waits for the killed clients of a dead run to exit, in seconds.
CLIENT_EXIT_WAIT_S = 10.0


def container_prefix(run_id: str) -> str:
    """Return the prefix of every container name of a run (see Context.container_name)."""
    return f"isobench-{run_id}-"


#: The runtime clients that a run starts and waits for, by program name. The shims and
#: monitors of the engines (containerd-shim, conmon) and runsc's sandbox processes name
#: the container too, but they are the container's keepers: its removal ends them.
CLIENTS = (b"runc", b"crun", b"runsc", b"isobox", b"docker", b"podman", b"ctr")


def orphaned_clients(run_id: str, proc: Path = Path("/proc")) -> list[int]:
    """Return the PIDs of runtime clients whose arguments name a container of the run.

    When a run is killed, the clients it started in sessions of their own
    ('runc run', 'docker run', 'ctr run') live on, and one that is still
    creating its container would create it after the removal ran.
    """
    prefix = container_prefix(run_id).encode()
    found = []
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv[0].rsplit(b"/", 1)[-1] not in CLIENTS:
            continue
        if any(argument.startswith(prefix) for argument in argv):
            found.append(int(entry.name))
    return found


def _kill_clients(run_id: str) -> list[str]:
    """SIGKILL the orphaned clients of a dead run and wait until they are gone; return
    one line per client."""
    found = orphaned_clients(run_id)
    for pid in found:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    living = found
    deadline = time.monotonic() + CLIENT_EXIT_WAIT_S
    while living and time.monotonic() < deadline:
        time.sleep(0.05)
        living = [pid for pid in living if _pid_alive(pid) and not _is_zombie(pid)]
    return [
        f"could not end client process {pid}" if pid in living else f"ended client process {pid}"
        for pid in found
    ]


def _is_zombie(pid: int) -> bool:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return False
    return fields[0] == "Z"


def clean_stale(directory: Path | None = None, dry_run: bool = False) -> list[str]:
    """Remove what dead runs left behind; return one line per resource handled.

    The runtime clients that a dead run left running are ended first, so that
    none of them creates a container after its removal ran.
    """
    lines = []
    for path, entries in stale_entries(directory).items():
        if not dry_run:
            lines += _kill_clients(path.stem)
        left = []
        for entry in reversed(entries):
            where = "" if entry.host == hosts.LOCAL_SPEC else f" on {entry.host}"
            if dry_run:
                lines.append(
                    f"would remove {entry.kind} {entry.name}{where}: {shlex.join(entry.remove)}"
                )
                continue
            try:
                remove_entry(entry)
                lines.append(f"removed {entry.kind} {entry.name}{where}")
            except IsobenchError as exc:
                left.append(entry)
                lines.append(f"could not remove {entry.kind} {entry.name}: {exc}")
        if not dry_run:
            _mark_killed(_owner(path)[1])
        if not dry_run and not left:
            path.unlink(missing_ok=True)
    close_hosts()
    return lines
