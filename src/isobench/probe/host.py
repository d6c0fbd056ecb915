"""Facts read on the host side: a container's process seen from /proc/<pid>.

Where a runtime exposes the host PID of the container's process, these are
the authority: an in-container view can be virtualized (gVisor serves its
own /proc).
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

from isobench.probe import cgroups

NAMESPACES = ("pid", "pid_for_children", "mnt", "net", "uts", "ipc", "user", "cgroup", "time")


def namespaces(pid: int | str, proc: Path = Path("/proc")) -> dict[str, str]:
    """Read ``/proc/<pid>/ns/*`` as ``ns.<type>`` facts; unreadable ones are left out."""
    found = {}
    for name in NAMESPACES:
        try:
            found[f"ns.{name}"] = os.readlink(proc / str(pid) / "ns" / name)
        except OSError:
            continue
    return found


def process_facts(pid: int, proc: Path = Path("/proc")) -> dict[str, str | list[str]]:
    """Read a running container process from the host side."""
    facts: dict[str, str | list[str]] = {}
    facts.update(namespaces(pid, proc))
    try:
        status = (proc / str(pid) / "status").read_text()
    except OSError:
        return facts
    for line in status.splitlines():
        name, _, value = line.partition(":")
        if name in ("Uid", "Gid"):
            facts[f"hostside.{name.lower()}"] = value.split()[0]
    try:
        cgroup = (proc / str(pid) / "cgroup").read_text().splitlines()
    except OSError:
        cgroup = []
    facts["hostside.cgroup"] = cgroup
    facts.update(cgroups.process_cgroup_facts(pid, proc))
    facts.update(_family(pid, proc))
    return facts


def _stat_fields(pid: int | str, proc: Path) -> list[str]:
    """Return the fields of /proc/<pid>/stat after the command name: state, ppid, ..."""
    text = (proc / str(pid) / "stat").read_text()
    return text[text.rindex(")") + 2 :].split()


def _family(pid: int, proc: Path) -> dict[str, str | list[str]]:
    """Read the parent of a container's first process and its unreaped children."""
    facts: dict[str, str | list[str]] = {}
    try:
        parent = _stat_fields(pid, proc)[1]
        facts["hostside.parent"] = (
            (proc / parent / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
        )
        facts["hostside.parent.limits"] = (proc / parent / "limits").read_text().splitlines()[1:]
    except (OSError, IndexError, ValueError):
        pass
    zombies = 0
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = _stat_fields(entry.name, proc)
        except (OSError, ValueError):
            continue
        if len(fields) > 1 and fields[1] == str(pid) and fields[0] == "Z":
            zombies += 1
    facts["hostside.zombies"] = str(zombies)
    return facts


def interfaces(sys_class_net: Path = Path("/sys/class/net")) -> list[str]:
    """List the host's network interfaces as ``name mac``, like the probe does."""
    found = []
    for entry in sorted(sys_class_net.iterdir()):
        try:
            address = (entry / "address").read_text().strip()
        except OSError:
            address = ""
        found.append(f"{entry.name} {address}")
    return found


def host_facts() -> dict[str, str | list[str]]:
    """Read the host's own reference facts: the namespaces of PID 1, hostname, interfaces."""
    facts: dict[str, str | list[str]] = {}
    own = namespaces("1") or namespaces("self")
    facts.update(own)
    facts["hostname"] = socket.gethostname()
    facts["net.if"] = interfaces()
    facts["lsm.mac"] = mac_module()
    return facts


def mac_module(sys: Path = Path("/sys")) -> str:
    """Return the mandatory access control module the host enforces, or ""."""
    try:
        if (sys / "module/apparmor/parameters/enabled").read_text().strip() == "Y":
            return "apparmor"
    except OSError:
        pass
    if (sys / "fs/selinux/enforce").exists():
        return "selinux"
    return ""


def block_device(path: Path, sys_dev_block: Path = Path("/sys/dev/block")) -> tuple[str, int, int]:
    """Return the whole disk that contains ``path``, as (/dev path, major, minor).

    Raises OSError when ``path`` is not on a block device (tmpfs, overlay of
    tmpfs), because bandwidth limits then have nothing to throttle.
    """
    st_dev = os.stat(path).st_dev
    major, minor = os.major(st_dev), os.minor(st_dev)
    entry = sys_dev_block / f"{major}:{minor}"
    if not entry.exists():
        raise OSError(f"{path} is not on a block device ({major}:{minor})")
    if (entry / "partition").exists():
        # Throttling applies to a whole disk: use the partition's parent.
        entry = entry.resolve().parent
        major, minor = (int(x) for x in (entry / "dev").read_text().split(":"))
    name = ""
    for line in (entry / "uevent").read_text().splitlines():
        if line.startswith("DEVNAME="):
            name = line.split("=", 1)[1]
    return f"/dev/{name}", major, minor
