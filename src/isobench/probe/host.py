"""Facts read on the host side: a container's process seen from /proc/<pid>.

Where a runtime exposes the host PID of the container's process, these are
the authority: an in-container view can be virtualized (gVisor serves its
own /proc).
"""

from __future__ import annotations

import hashlib
import os
import platform
import resource
import shutil
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


def program(name: str) -> str | None:
    """Return the path of the program ``name`` (on PATH, or a path that exists), or None."""
    found = shutil.which(name)
    if found is None and "/" in name and os.path.exists(name):
        return name
    return found


def hard_limits(pid_max_file: Path = Path("/proc/sys/kernel/pid_max")) -> dict[str, int]:
    """Return this process's hard limits of open files and of processes (-1 for no limit),
    and the kernel's pid_max (32768 when unreadable)."""
    found = {}
    for name, which in (("nofile", resource.RLIMIT_NOFILE), ("nproc", resource.RLIMIT_NPROC)):
        hard = resource.getrlimit(which)[1]
        found[name] = -1 if hard == resource.RLIM_INFINITY else hard
    try:
        found["pid_max"] = int(pid_max_file.read_text())
    except (OSError, ValueError):
        found["pid_max"] = 32768
    return found


def cgroup_mode(root: Path = Path("/sys/fs/cgroup")) -> str:
    """Return 'v2', 'hybrid' (v1 with a unified hierarchy mounted) or 'v1'."""
    if (root / "cgroup.controllers").exists():
        return "v2"
    if (root / "unified" / "cgroup.controllers").exists():
        return "hybrid"
    return "v1"


def machine_id(path: Path = Path("/etc/machine-id")) -> str | None:
    """Return a hash of the host's machine id: it differs between machines but hides the id.

    Returns None when the file is missing or empty (some containers and minimal images).
    """
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    if not text:
        return None
    return hashlib.sha256(b"isobench:" + text.encode()).hexdigest()[:16]


def system() -> dict[str, object]:
    """Return what the run directory records of the host: name, kernel, cgroup mode, CPUs
    and load."""
    load = os.getloadavg()
    return {
        "hostname": socket.gethostname(),
        "machine_id": machine_id(),
        "kernel": platform.release(),
        "os": platform.platform(),
        "cgroup_mode": cgroup_mode(),
        "cpu_count": os.cpu_count(),
        "load_avg": [round(x, 2) for x in load],
        "python": platform.python_version(),
    }


def make_shm(key: int) -> str:
    """Make a SysV shared memory segment of 4096 bytes with ``key``; return "" or the error."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.shmget(key, 4096, 0o1000 | 0o2000 | 0o600) < 0:  # IPC_CREAT | IPC_EXCL
        return os.strerror(ctypes.get_errno())
    return ""


def serve_loopback(port_file: str, seconds: int) -> None:
    """Accept and close connections on 127.0.0.1 for ``seconds``; the port goes to
    ``port_file`` once it listens. For the host marker of another host."""
    import time

    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    server.settimeout(1.0)
    Path(port_file).write_text(str(server.getsockname()[1]))
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            connection, _ = server.accept()
        except TimeoutError:
            continue
        connection.close()


def run_in_group(pid_file: str, bin_dir: str, argv: list[str]) -> None:
    """Run ``argv`` as a child in a process group of its own, with ``bin_dir`` first on
    PATH; write its PID to ``pid_file`` and exit with its status, 128+N for a signal N
    as a shell reports it.

    For the host row on another host: there, a command that a signal ends would
    show only as ssh's own status 255.
    """
    import sys

    child = os.fork()
    if child == 0:
        os.setpgid(0, 0)
        os.environ["PATH"] = f"{bin_dir}:{os.environ.get('PATH', '')}"
        try:
            os.execvp(argv[0], argv)
        except OSError as exc:
            print(f"{argv[0]}: {exc.strerror}", file=sys.stderr)
            os._exit(127)
    Path(pid_file).write_text(str(child))
    _, status = os.waitpid(child, 0)
    if os.WIFSIGNALED(status):
        sys.exit(128 + os.WTERMSIG(status))
    sys.exit(os.WEXITSTATUS(status))


def find_program(names: list[str]) -> str | None:
    """Return the path of the first of ``names`` that :func:`program` finds, or None."""
    for name in names:
        found = program(name)
        if found:
            return found
    return None


def bounding_set_mask(status_file: Path = Path("/proc/self/status")) -> int | None:
    """Return this process's capability bounding set (the CapBnd line) as a bit mask, bit
    N for capability N, or None when the file has no such line."""
    for line in status_file.read_text().splitlines():
        if line.startswith("CapBnd:"):
            return int(line.split()[1], 16)
    return None


def device_node(path: str) -> dict[str, object]:
    """Describe the file ``path`` for an OCI device entry: its ``type`` ('c' for a
    character device, 'b' for a block device, '' for any other file), ``major``,
    ``minor`` and ``mode`` (the permission bits). A file that cannot be read gives
    ``{"error": strerror}`` instead."""
    import stat

    try:
        info = os.stat(path)
    except OSError as exc:
        return {"error": exc.strerror or str(exc)}
    kind = ""
    if stat.S_ISCHR(info.st_mode):
        kind = "c"
    elif stat.S_ISBLK(info.st_mode):
        kind = "b"
    return {
        "type": kind,
        "major": os.major(info.st_rdev),
        "minor": os.minor(info.st_rdev),
        "mode": stat.S_IMODE(info.st_mode),
    }
