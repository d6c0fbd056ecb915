"""Create, start, signal, join and delete a container from an OCI bundle.

A container is three processes, started by ``create``:

1. isobox itself makes the cgroup, writes the limits, and forks
2. the *parent*, which unshares the namespaces (isobox writes the user
   namespace's id maps meanwhile) and forks
3. the *init*, which is PID 1 of the new PID namespace. It mounts the
   container's file systems, pivots into the root, sets the hostname,
   limits, user, capabilities and no_new_privs, and blocks on the state
   directory's FIFO (opened by isobox, inherited) until ``start`` writes a
   byte. Then it executes the process. isobox moves the init into the cgroup meanwhile.

The parent waits for the init and ends with its exit status (128 + N after
signal N), so ``run`` (create, start, then wait for the parent) returns the
container's status. Errors of the init before the exec reach isobox
through a pipe that closes on exec.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import resource
import signal
import stat
import struct
import sys
import time

from isobox import kernel
from isobox.cgroups import Cgroup, hierarchies, read, write

# Importing typing costs every isobox command 2 ms; mypy treats this name as typing's.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

FIFO = "exec.fifo"
STATE = "state.json"
#: The OCI config.json keys of ``linux`` that isobox applies.
LINUX_KEYS = {
    "namespaces",
    "maskedPaths",
    "readonlyPaths",
    "resources",
    "devices",
    "uidMappings",
    "gidMappings",
    "cgroupsPath",
}
#: Keys that isobox rejects, because it cannot honour them and running without them would
#: weaken the container silently.
REJECTED = {
    "seccomp": "isobox does not load seccomp filters",
    "apparmorProfile": "isobox does not apply AppArmor profiles",
    "selinuxLabel": "isobox does not apply SELinux labels",
    "mountLabel": "isobox does not apply SELinux labels",
    "sysctl": "isobox does not set sysctls",
    "intelRdt": "isobox does not use Intel RDT",
}
#: Device nodes in every container's /dev: name, type, major, minor.
DEFAULT_DEVICES = (
    ("null", "c", 1, 3),
    ("zero", "c", 1, 5),
    ("full", "c", 1, 7),
    ("random", "c", 1, 8),
    ("urandom", "c", 1, 9),
    ("tty", "c", 5, 0),
)
CAPABILITY_NUMBERS = {
    "CAP_CHOWN": 0,
    "CAP_DAC_OVERRIDE": 1,
    "CAP_DAC_READ_SEARCH": 2,
    "CAP_FOWNER": 3,
    "CAP_FSETID": 4,
    "CAP_KILL": 5,
    "CAP_SETGID": 6,
    "CAP_SETUID": 7,
    "CAP_SETPCAP": 8,
    "CAP_LINUX_IMMUTABLE": 9,
    "CAP_NET_BIND_SERVICE": 10,
    "CAP_NET_BROADCAST": 11,
    "CAP_NET_ADMIN": 12,
    "CAP_NET_RAW": 13,
    "CAP_IPC_LOCK": 14,
    "CAP_IPC_OWNER": 15,
    "CAP_SYS_MODULE": 16,
    "CAP_SYS_RAWIO": 17,
    "CAP_SYS_CHROOT": 18,
    "CAP_SYS_PTRACE": 19,
    "CAP_SYS_PACCT": 20,
    "CAP_SYS_ADMIN": 21,
    "CAP_SYS_BOOT": 22,
    "CAP_SYS_NICE": 23,
    "CAP_SYS_RESOURCE": 24,
    "CAP_SYS_TIME": 25,
    "CAP_SYS_TTY_CONFIG": 26,
    "CAP_MKNOD": 27,
    "CAP_LEASE": 28,
    "CAP_AUDIT_WRITE": 29,
    "CAP_AUDIT_CONTROL": 30,
    "CAP_SETFCAP": 31,
    "CAP_MAC_OVERRIDE": 32,
    "CAP_MAC_ADMIN": 33,
    "CAP_SYSLOG": 34,
    "CAP_WAKE_ALARM": 35,
    "CAP_BLOCK_SUSPEND": 36,
    "CAP_AUDIT_READ": 37,
    "CAP_PERFMON": 38,
    "CAP_BPF": 39,
    "CAP_CHECKPOINT_RESTORE": 40,
}
#: The resource numbers of setrlimit(2) on Linux, by their OCI names.
RLIMITS = {
    f"RLIMIT_{name}": number
    for number, name in enumerate(
        (
            "CPU",
            "FSIZE",
            "DATA",
            "STACK",
            "CORE",
            "RSS",
            "NPROC",
            "NOFILE",
            "MEMLOCK",
            "AS",
            "LOCKS",
            "SIGPENDING",
            "MSGQUEUE",
            "NICE",
            "RTPRIO",
            "RTTIME",
        )
    )
}
#: mount(2) flags by their option names; the "no" forms clear the flag.
MOUNT_FLAGS = {
    "ro": (True, kernel.MS_RDONLY),
    "rw": (False, kernel.MS_RDONLY),
    "nosuid": (True, kernel.MS_NOSUID),
    "suid": (False, kernel.MS_NOSUID),
    "nodev": (True, kernel.MS_NODEV),
    "dev": (False, kernel.MS_NODEV),
    "noexec": (True, kernel.MS_NOEXEC),
    "exec": (False, kernel.MS_NOEXEC),
    "sync": (True, kernel.MS_SYNCHRONOUS),
    "async": (False, kernel.MS_SYNCHRONOUS),
    "dirsync": (True, kernel.MS_DIRSYNC),
    "noatime": (True, kernel.MS_NOATIME),
    "nodiratime": (True, kernel.MS_NODIRATIME),
    "relatime": (True, kernel.MS_RELATIME),
    "strictatime": (True, kernel.MS_STRICTATIME),
    "bind": (True, kernel.MS_BIND),
    "rbind": (True, kernel.MS_BIND | kernel.MS_REC),
}
# statvfs flags that a bind remount must keep, or the kernel rejects it in a user namespace.
_LOCKED_FLAGS = (
    (os.ST_NOSUID, kernel.MS_NOSUID),
    (os.ST_NODEV, kernel.MS_NODEV),
    (os.ST_NOEXEC, kernel.MS_NOEXEC),
)


class ContainerError(Exception):
    """A container that cannot be made, found or changed; the message is for the user."""


# -- state ---------------------------------------------------------------


def state_dir(root: str, name: str) -> str:
    if not name or "/" in name or name in (".", ".."):
        raise ContainerError(f"invalid container id {name!r}")
    return os.path.join(root, name)


def read_state(root: str, name: str) -> dict[str, Any]:
    path = os.path.join(state_dir(root, name), STATE)
    try:
        state: dict[str, Any] = json.loads(read(path))
    except FileNotFoundError:
        raise ContainerError(f"container {name} does not exist") from None
    state["status"] = _status(state)
    return state


def _write_state(directory: str, state: dict[str, Any]) -> None:
    temporary = os.path.join(directory, STATE + ".tmp")
    write(temporary, json.dumps(state))
    os.replace(temporary, os.path.join(directory, STATE))


def _status(state: dict[str, Any]) -> str:
    pid = state.get("pid") or 0
    if not pid or not _alive(pid, state.get("init_start")):
        return "stopped"
    fifo = os.path.join(state["state_dir"], FIFO)
    return "created" if os.path.exists(fifo) else "running"


def _alive(pid: int, start_time: str | None) -> bool:
    """Tell whether ``pid`` still runs and is the same process (its start time matches)."""
    try:
        text = read(f"/proc/{pid}/stat")
    except OSError:
        return False
    fields = text.rsplit(")", 1)[1].split()
    if fields[0] == "Z":
        return False
    return start_time is None or fields[19] == start_time


def _start_time(pid: int) -> str | None:
    try:
        return read(f"/proc/{pid}/stat").rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def public_state(state: dict[str, Any]) -> dict[str, Any]:
    """Return the state as the OCI runtime spec defines it."""
    return {
        "ociVersion": state["ociVersion"],
        "id": state["id"],
        "status": state["status"],
        "pid": state["pid"] if state["status"] != "stopped" else 0,
        "bundle": state["bundle"],
        "created": state.get("created"),
    }


def list_states(root: str) -> list[dict[str, Any]]:
    if not os.path.isdir(root):
        return []
    found = []
    for entry in sorted(os.listdir(root)):
        with contextlib.suppress(ContainerError, OSError, json.JSONDecodeError, KeyError):
            found.append(public_state(read_state(root, entry)))
    return found


# -- config --------------------------------------------------------------


def load_config(bundle: str) -> dict[str, Any]:
    try:
        config: dict[str, Any] = json.loads(read(os.path.join(bundle, "config.json")))
    except FileNotFoundError:
        raise ContainerError(
            f"{bundle}/config.json not found; pass the bundle with --bundle"
        ) from None
    except json.JSONDecodeError as exc:
        raise ContainerError(f"{bundle}/config.json: invalid JSON: {exc}") from None
    linux = config.get("linux") or {}
    for key, reason in REJECTED.items():
        for section in ("linux", "process"):
            if (config.get(section) or {}).get(key):
                raise ContainerError(f"config.json sets {section}.{key}, but {reason}")
    _check_resources(linux.get("resources") or {})
    unknown = set(linux) - LINUX_KEYS - set(REJECTED)
    if unknown:
        raise ContainerError(
            f"config.json sets linux.{sorted(unknown)[0]}, which isobox does not implement"
        )
    if config.get("process", {}).get("terminal"):
        raise ContainerError(
            "config.json asks for a terminal, which isobox does not implement; "
            "set process.terminal to false"
        )
    for namespace in linux.get("namespaces") or []:
        if namespace.get("path"):
            raise ContainerError(
                "joining an existing namespace (a namespace path) is not implemented"
            )
        if namespace.get("type") not in kernel.NAMESPACES:
            raise ContainerError(f"unknown namespace type {namespace.get('type')!r}")
    return config


#: The keys of ``linux.resources`` that isobox applies, by section.
RESOURCE_KEYS = {
    "devices": None,
    "memory": {"limit", "swap"},
    "pids": {"limit"},
    "cpu": {"quota", "period", "shares", "cpus"},
    "blockIO": {"throttleWriteBpsDevice", "throttleReadBpsDevice"},
}


def _check_resources(resources: dict[str, Any]) -> None:
    for section, value in resources.items():
        if section not in RESOURCE_KEYS:
            raise ContainerError(
                f"config.json sets linux.resources.{section}, which isobox does not apply"
            )
        allowed = RESOURCE_KEYS[section]
        if allowed is None or not isinstance(value, dict):
            continue
        for key in value:
            if key not in allowed:
                raise ContainerError(
                    f"config.json sets linux.resources.{section}.{key}, which isobox does not apply"
                )


def _namespaces(config: dict[str, Any]) -> list[str]:
    return [n["type"] for n in (config.get("linux") or {}).get("namespaces") or []]


# -- create, start, run ----------------------------------------------------


def create(root: str, name: str, bundle: str, pid_file: str | None = None) -> dict[str, Any]:
    """Make the container and leave its init waiting for ``start``; return the state."""
    bundle = os.path.realpath(bundle)
    config = load_config(bundle)
    directory = state_dir(root, name)
    os.makedirs(root, mode=0o700, exist_ok=True)
    try:
        os.mkdir(directory, 0o700)
    except FileExistsError:
        raise ContainerError(f"container {name} already exists") from None
    cgroup = Cgroup((config.get("linux") or {}).get("cgroupsPath") or f"/isobox/{name}")
    try:
        return _create(directory, name, bundle, config, cgroup, pid_file)
    except BaseException:
        _destroy(directory, cgroup, None)
        raise


def _create(
    directory: str,
    name: str,
    bundle: str,
    config: dict[str, Any],
    cgroup: Cgroup,
    pid_file: str | None,
) -> dict[str, Any]:
    os.mkfifo(os.path.join(directory, FIFO), 0o600)
    cgroup.create()
    cgroup.apply((config.get("linux") or {}).get("resources") or {})

    # Opened here, as root: the init may run as another user in a user namespace,
    # which could not open a file in the state directory. O_RDWR never blocks on a
    # FIFO, and a read blocks until 'start' writes.
    fifo = os.open(os.path.join(directory, FIFO), os.O_RDWR | os.O_CLOEXEC)
    to_child_read, to_child_write = os.pipe()
    from_child_read, from_child_write = os.pipe()
    parent = os.fork()
    if parent == 0:
        os.close(to_child_write)
        os.close(from_child_read)
        _parent_process(config, bundle, fifo, to_child_read, from_child_write)
        os._exit(1)  # not reached: the parent process exits by itself
    os.close(fifo)
    os.close(to_child_read)
    os.close(from_child_write)
    with (
        os.fdopen(to_child_write, "wb", buffering=0) as to_child,
        os.fdopen(from_child_read, "rb", buffering=0) as from_child,
    ):
        # A cgroup namespace takes the cgroup of the process that unshares it as its
        # root, so then the parent must be in the cgroup first. Otherwise only the init
        # joins, while it sets up: the first move into a cgroup v1 hierarchy waits for
        # an RCU grace period (14 ms on the reference host), and this overlaps it.
        early = "cgroup" in _namespaces(config)
        if early:
            cgroup.join(parent)
        to_child.write(b"g")
        if "user" in _namespaces(config):
            _expect(from_child, b"u", parent)
            _write_id_maps(parent, config)
            to_child.write(b"m")
        message = _read_message(from_child)
        if not message.startswith(b"pid "):
            os.waitpid(parent, 0)
            raise ContainerError(message.decode(errors="replace") or "the container's init failed")
        init = int(message.split()[1])
        joined: OSError | None = None
        if not early:
            # The init forks nothing before it executes the process, which waits for
            # 'start', so all of the container's processes start in the cgroup.
            try:
                cgroup.join(init)
            except OSError as exc:
                joined = exc  # the init may have failed already: its message explains why
        # The init reports an error, or closes its end when it waits on the FIFO.
        if joined is not None:
            # The init blocks on the FIFO and would never end by itself.
            with contextlib.suppress(ProcessLookupError):
                os.kill(init, signal.SIGKILL)
        error = _read_message(from_child)
        if error or joined:
            os.waitpid(parent, 0)
            text = (
                error.decode(errors="replace") if error else f"joining the cgroup failed: {joined}"
            )
            raise ContainerError(text)
    state = {
        "ociVersion": config.get("ociVersion", "1.0.2"),
        "id": name,
        "pid": init,
        "init_start": _start_time(init),
        "parent": parent,
        "bundle": str(bundle),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "state_dir": str(directory),
        "cgroup": cgroup.path,
        "namespaces": _namespaces(config),
    }
    _write_state(directory, state)
    if pid_file is not None:
        write(pid_file, str(init))
    state["status"] = "created"
    return state


def _expect(pipe: Any, token: bytes, child: int) -> None:
    got = pipe.read(1)
    if got != token:
        os.waitpid(child, 0)
        rest = pipe.read()
        raise ContainerError((got + rest).decode(errors="replace") or "the container's parent died")


def _read_message(pipe: Any) -> bytes:
    """Read one length-prefixed message; an empty result means the writer closed its end."""
    header = pipe.read(4)
    if len(header) < 4:
        return b""
    (length,) = struct.unpack("!I", header)
    return bytes(pipe.read(length))


def _send(fd: int, message: str) -> None:
    data = message.encode()
    os.write(fd, struct.pack("!I", len(data)) + data)


def _write_id_maps(pid: int, config: dict[str, Any]) -> None:
    linux = config.get("linux") or {}
    for key, file in (("uidMappings", "uid_map"), ("gidMappings", "gid_map")):
        lines = "".join(
            f"{m['containerID']} {m['hostID']} {m['size']}\n" for m in linux.get(key) or []
        )
        if lines:
            write(f"/proc/{pid}/{file}", lines)


def start(root: str, name: str) -> None:
    """Let the init of a created container execute its process."""
    state = read_state(root, name)
    if state["status"] != "created":
        raise ContainerError(f"container {name} is {state['status']}, not created")
    fifo = os.path.join(state["state_dir"], FIFO)
    descriptor = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    try:
        os.write(descriptor, b"s")
    finally:
        os.close(descriptor)
    os.unlink(fifo)


def run(root: str, name: str, bundle: str) -> int:
    """Create and start the container, wait for it, delete it, and return its exit status."""
    state = create(root, name, bundle)
    # As runc does, the signals that reach 'run' go to the container's init, and 'run'
    # returns when the container exits.
    forwarded = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT)
    previous = {number: signal.getsignal(number) for number in forwarded}
    for number in forwarded:
        signal.signal(number, lambda signum, frame: _forward(state["pid"], signum))
    try:
        start(root, name)
        while True:
            try:
                _, status = os.waitpid(state["parent"], 0)
                break
            except InterruptedError:
                continue
        code = os.waitstatus_to_exitcode(status)
        return 128 - code if code < 0 else code
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        with contextlib.suppress(ContainerError):
            delete(root, name, force=True)


# -- the container's processes ------------------------------------------------


def _parent_process(
    config: dict[str, Any], bundle: str, fifo: int, from_isobox: int, to_isobox: int
) -> None:
    """Unshare the namespaces, fork the init, wait for it, and exit with its status."""
    try:
        if os.read(from_isobox, 1) != b"g":
            os._exit(1)
        namespaces = _namespaces(config)
        flags = 0
        for kind in namespaces:
            flags |= kernel.NAMESPACES[kind][0]
        kernel.unshare(flags)
        if "user" in namespaces:
            os.write(to_isobox, b"u")
            if os.read(from_isobox, 1) != b"m":
                os._exit(1)
            os.setresgid(0, 0, 0)
            os.setresuid(0, 0, 0)
        init = os.fork()
    except OSError as exc:
        _send(to_isobox, f"setting up the namespaces failed: {exc}")
        os._exit(1)
    if init == 0:
        os.close(from_isobox)
        try:
            _init_process(config, bundle, fifo, to_isobox)
        except BaseException as exc:  # everything the init meets goes back to isobox
            message = (
                str(exc) if isinstance(exc, ContainerError) else f"{type(exc).__name__}: {exc}"
            )
            with contextlib.suppress(OSError):
                _send(to_isobox, message)
            os._exit(1)
        os._exit(1)
    _send(to_isobox, f"pid {init}")
    os.close(to_isobox)
    os.close(from_isobox)
    os.close(fifo)
    # The parent forwards the signals it gets to the init, as a shell would.
    for number in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(number, lambda signum, frame: _forward(init, signum))
    while True:
        try:
            _, status = os.waitpid(init, 0)
            break
        except ChildProcessError:
            os._exit(1)
        except InterruptedError:
            continue
    code = os.waitstatus_to_exitcode(status)
    os._exit(128 - code if code < 0 else code)


def _forward(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)


def _init_process(config: dict[str, Any], bundle: str, fifo: int, to_isobox: int) -> None:
    """Run as PID 1 of the container: build its file systems and process, wait, execute."""
    os.set_inheritable(to_isobox, False)
    fcntl.fcntl(to_isobox, fcntl.F_SETFD, fcntl.FD_CLOEXEC)
    kernel.prctl(kernel.PR_SET_PDEATHSIG, signal.SIGKILL)
    namespaces = _namespaces(config)
    process = config.get("process") or {}
    linux = config.get("linux") or {}

    if "mount" in namespaces:
        rootfs = _rootfs(bundle, config)
        _set_up_mounts(config, rootfs, "user" in namespaces)
        _pivot(rootfs)
        for path in linux.get("maskedPaths") or []:
            _mask(path)
        for path in linux.get("readonlyPaths") or []:
            _read_only(path)
        if (config.get("root") or {}).get("readonly"):
            _remount_read_only("/")
    if "uts" in namespaces and config.get("hostname"):
        kernel.sethostname(config["hostname"])
    if "network" in namespaces:
        _loopback_up()
    for limit in process.get("rlimits") or []:
        number = RLIMITS.get(limit["type"])
        if number is None:
            raise ContainerError(f"unknown rlimit {limit['type']}")
        resource.setrlimit(number, (limit["soft"], limit["hard"]))
    environment = dict(item.split("=", 1) for item in process.get("env") or [] if "=" in item)
    cwd = process.get("cwd") or "/"
    try:
        os.chdir(cwd)
    except OSError as exc:
        raise ContainerError(
            f"the working directory {cwd} cannot be entered: {exc.strerror}"
        ) from None
    _become_user(process)
    args = process.get("args") or []
    if not args:
        raise ContainerError("config.json has no process.args")

    # Nothing more to report: isobox stops waiting when this end closes, at the exec.
    os.close(to_isobox)
    os.read(fifo, 1)
    os.close(fifo)
    try:
        os.execvpe(args[0], args, environment)
    except OSError as exc:
        print(f"isobox: exec {args[0]} failed: {exc.strerror}", file=sys.stderr, flush=True)
        os._exit(127)


def _rootfs(bundle: str, config: dict[str, Any]) -> str:
    return os.path.join(bundle, (config.get("root") or {}).get("path") or "rootfs")


def _mount_options(options: list[str]) -> tuple[int, list[str]]:
    flags = 0
    data = []
    for option in options:
        if option in MOUNT_FLAGS:
            set_it, flag = MOUNT_FLAGS[option]
            flags = flags | flag if set_it else flags & ~flag
        elif option in ("private", "rprivate", "slave", "rslave", "shared", "rshared"):
            continue
        else:
            data.append(option)
    return flags, data


def _set_up_mounts(config: dict[str, Any], rootfs: str, in_user_namespace: bool) -> None:
    # Nothing mounted from here on reaches the host's mount table.
    kernel.mount("", "/", "", kernel.MS_REC | kernel.MS_SLAVE)
    kernel.mount(rootfs, rootfs, "", kernel.MS_BIND | kernel.MS_REC)
    for entry in config.get("mounts") or []:
        _mount_entry(entry, rootfs)
    _make_devices(config, rootfs, in_user_namespace)


def _inside(rootfs: str, destination: str) -> str:
    """Return ``destination`` under ``rootfs``, with every symlink on the way resolved
    inside the root, so that a symlink in the image cannot point a mount at the host."""
    root = rootfs.rstrip("/")
    current = root
    for part in [p for p in destination.split("/") if p]:
        candidate = os.path.join(current, part)
        hops = 0
        while os.path.islink(candidate) and hops < 40:
            target = os.readlink(candidate)
            if target.startswith("/"):
                candidate = os.path.join(root, target.lstrip("/"))
            else:
                candidate = os.path.join(os.path.dirname(candidate), target)
            hops += 1
        current = os.path.normpath(candidate)
        if current != root and not current.startswith(root + "/"):
            current = root
    return current


def _mount_entry(entry: dict[str, Any], rootfs: str) -> None:
    destination = _inside(rootfs, entry["destination"])
    kind = entry.get("type") or "none"
    source = entry.get("source") or kind
    flags, data = _mount_options(list(entry.get("options") or []))
    bind = bool(flags & kernel.MS_BIND) or kind == "bind"
    if bind:
        if os.path.isdir(source):
            os.makedirs(destination, exist_ok=True)
        else:
            os.makedirs(os.path.dirname(destination), exist_ok=True)
            _touch(destination)
        kernel.mount(source, destination, "", kernel.MS_BIND | (flags & kernel.MS_REC))
        extra = flags & ~(kernel.MS_BIND | kernel.MS_REC)
        if extra:
            _remount(destination, extra)
        return
    os.makedirs(destination, exist_ok=True)
    if kind == "cgroup":
        _mount_cgroups(destination, flags)
        return
    kernel.mount(source, destination, kind, flags, ",".join(data))


def _remount(path: str, flags: int) -> None:
    """Remount a bind mount with ``flags``, keeping the flags that the kernel locks."""
    status = os.statvfs(path)
    for vfs_flag, mount_flag in _LOCKED_FLAGS:
        if status.f_flag & vfs_flag:
            flags |= mount_flag
    kernel.mount("", path, "", kernel.MS_BIND | kernel.MS_REMOUNT | flags)


def _mount_cgroups(destination: str, flags: int) -> None:
    """Mount the cgroup hierarchies under ``destination``: one per v1 controller, or cgroup2."""
    found = hierarchies()
    read_only = flags & kernel.MS_RDONLY
    base = kernel.MS_NOSUID | kernel.MS_NODEV | kernel.MS_NOEXEC
    if set(found) == {""}:
        kernel.mount("cgroup2", destination, "cgroup2", base | read_only)
        return
    kernel.mount("tmpfs", destination, "tmpfs", base, "mode=755")
    for controllers in found:
        if not controllers:
            continue
        target = os.path.join(destination, controllers.replace("name=", ""))
        os.makedirs(target, exist_ok=True)
        kernel.mount("cgroup", target, "cgroup", base | read_only, controllers)
    _remount(destination, kernel.MS_RDONLY if read_only else 0)


def _make_devices(config: dict[str, Any], rootfs: str, in_user_namespace: bool) -> None:
    dev = _inside(rootfs, "/dev")
    nodes = [
        (f"/dev/{name}", kind, major, minor, 0o666, 0, 0)
        for name, kind, major, minor in DEFAULT_DEVICES
    ]
    for device in (config.get("linux") or {}).get("devices") or []:
        nodes.append(
            (
                device["path"],
                device["type"],
                device["major"],
                device["minor"],
                device.get("fileMode", 0o666),
                device.get("uid", 0),
                device.get("gid", 0),
            )
        )
    for path, kind, major, minor, mode, uid, gid in nodes:
        target = _inside(rootfs, path)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if os.path.exists(target):
            continue
        if in_user_namespace:
            # mknod is not allowed in a user namespace: bind the host's node instead.
            _touch(target)
            kernel.mount(path, target, "", kernel.MS_BIND)
            continue
        kind_bits = stat.S_IFCHR if kind == "c" else stat.S_IFBLK
        os.mknod(target, kind_bits | mode, os.makedev(major, minor))
        os.chmod(target, mode)
        os.chown(target, uid, gid)
    for name, target_name in (
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
        ("ptmx", "pts/ptmx"),
    ):
        link = os.path.join(dev, name)
        if not os.path.lexists(link):
            os.symlink(target_name, link)


def _touch(path: str) -> None:
    os.close(os.open(path, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o644))


def _pivot(rootfs: str) -> None:
    # pivot_root(".", ".") stacks the old root under the new one; the lazy unmount
    # then drops it, so no directory for the old root is needed.
    os.chdir(rootfs)
    kernel.pivot_root(".", ".")
    kernel.mount("", ".", "", kernel.MS_REC | kernel.MS_SLAVE)
    kernel.umount(".", kernel.MNT_DETACH)
    os.chdir("/")


def _mask(path: str) -> None:
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(info.st_mode):
        kernel.mount("tmpfs", path, "tmpfs", kernel.MS_RDONLY)
    else:
        kernel.mount("/dev/null", path, "", kernel.MS_BIND)


def _read_only(path: str) -> None:
    if not os.path.exists(path):
        return
    kernel.mount(path, path, "", kernel.MS_BIND | kernel.MS_REC)
    _remount(path, kernel.MS_RDONLY | kernel.MS_REC)


def _remount_read_only(path: str) -> None:
    _remount(path, kernel.MS_RDONLY)


def _loopback_up() -> None:
    """Bring up the new network namespace's loopback interface, as runc does."""
    siocgifflags, siocsifflags, iff_up = 0x8913, 0x8914, 0x1
    descriptor = kernel.datagram_socket()
    try:
        request = struct.pack("16sH", b"lo", 0)
        flags = struct.unpack("16sH", fcntl.ioctl(descriptor, siocgifflags, request))[1]
        fcntl.ioctl(descriptor, siocsifflags, struct.pack("16sH", b"lo", flags | iff_up))
    finally:
        os.close(descriptor)


def _capability_mask(names: list[str]) -> int:
    mask = 0
    for name in names:
        number = CAPABILITY_NUMBERS.get(name)
        if number is None:
            raise ContainerError(f"unknown capability {name}")
        mask |= 1 << number
    return mask


def _become_user(process: dict[str, Any]) -> None:
    """Drop to the process's capabilities, user and groups, and set no_new_privs."""
    capabilities = process.get("capabilities") or {}
    bounding = _capability_mask(capabilities.get("bounding") or [])
    for number in range(kernel.last_capability() + 1):
        if not bounding >> number & 1:
            kernel.prctl(kernel.PR_CAPBSET_DROP, number)
    user = process.get("user") or {}
    uid, gid = int(user.get("uid", 0)), int(user.get("gid", 0))
    kernel.prctl(kernel.PR_SET_KEEPCAPS, 1)
    os.setgroups([int(g) for g in user.get("additionalGids") or []])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    kernel.prctl(kernel.PR_SET_KEEPCAPS, 0)
    kernel.capset(
        _capability_mask(capabilities.get("effective") or []),
        _capability_mask(capabilities.get("permitted") or []),
        _capability_mask(capabilities.get("inheritable") or []),
    )
    for name in capabilities.get("ambient") or []:
        try:
            kernel.prctl(
                kernel.PR_CAP_AMBIENT, kernel.PR_CAP_AMBIENT_RAISE, CAPABILITY_NUMBERS[name]
            )
        except OSError:
            raise ContainerError(
                f"process.capabilities.ambient lists {name}, which the kernel raises only "
                "when it is in the permitted and inheritable sets too"
            ) from None
    if process.get("noNewPrivileges"):
        kernel.prctl(kernel.PR_SET_NO_NEW_PRIVS, 1)


# -- kill, delete, exec ------------------------------------------------------


def parse_signal(text: str) -> int:
    name = text.upper()
    if name.isdigit():
        return int(name)
    if not name.startswith("SIG"):
        name = "SIG" + name
    try:
        return int(signal.Signals[name])
    except KeyError:
        raise ContainerError(f"unknown signal {text!r}") from None


def kill(root: str, name: str, signum: int, everything: bool = False) -> None:
    state = read_state(root, name)
    if state["status"] == "stopped":
        raise ContainerError(f"container {name} is not running")
    targets = Cgroup(state["cgroup"]).pids() if everything else [state["pid"]]
    for pid in targets or [state["pid"]]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)


def delete(root: str, name: str, force: bool = False) -> None:
    """Remove a stopped container (or any, with ``force``): its processes, cgroup and state."""
    directory = state_dir(root, name)
    if force and os.path.isdir(directory) and not os.path.exists(os.path.join(directory, STATE)):
        # A create that was killed before it wrote the state leaves only its directory.
        # NOTE: without the state, the bundle's cgroupsPath is unknown, so only the
        # default cgroup path is cleaned here.
        _destroy(directory, Cgroup(f"/isobox/{name}"), None)
        return
    state = read_state(root, name)
    if state["status"] != "stopped" and not force:
        raise ContainerError(f"container {name} is {state['status']}; stop it or pass --force")
    _destroy(state["state_dir"], Cgroup(state["cgroup"]), state)


def _destroy(directory: str, cgroup: Cgroup, state: dict[str, Any] | None) -> None:
    if state is not None and state.get("pid") and _alive(state["pid"], state.get("init_start")):
        with contextlib.suppress(ProcessLookupError):
            os.kill(state["pid"], signal.SIGKILL)
    # Everything else in the cgroup goes too: processes added by exec, or a
    # failed create's parent.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        pids = cgroup.pids()
        if not pids:
            break
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.01)
    if state is not None and state.get("parent"):
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(state["parent"], os.WNOHANG)
    cgroup.remove()
    for child in (FIFO, STATE, STATE + ".tmp"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(directory, child))
    with contextlib.suppress(FileNotFoundError, OSError):
        os.rmdir(directory)


def exec_process(root: str, name: str, args: list[str], detach: bool) -> int:
    """Run ``args`` in a running container, as its process runs: same namespaces, cgroup,
    user, capabilities, limits and environment. Return its exit status, or 0 with ``detach``."""
    state = read_state(root, name)
    if state["status"] != "running":
        raise ContainerError(f"container {name} is {state['status']}, not running")
    if not args:
        raise ContainerError("exec needs a command")
    config = load_config(state["bundle"])
    process = config.get("process") or {}
    pid = state["pid"]
    order = ["user", "ipc", "uts", "network", "pid", "cgroup", "mount"]
    descriptors = []
    for kind in order:
        if kind in state["namespaces"]:
            descriptors.append(os.open(f"/proc/{pid}/ns/{kernel.NAMESPACES[kind][1]}", os.O_RDONLY))
    read_end, write_end = os.pipe()
    go_read, go_write = os.pipe()
    child = os.fork()
    if child == 0:
        os.close(read_end)
        os.close(go_write)
        try:
            # Wait until isobox has moved this process into the container's cgroup.
            if os.read(go_read, 1) != b"g":
                os._exit(1)
            os.close(go_read)
            for descriptor in descriptors:
                kernel.setns(descriptor)
                os.close(descriptor)
            grandchild = os.fork()
        except BaseException as exc:
            os.write(write_end, f"joining the container failed: {exc}".encode())
            os._exit(1)
        if grandchild == 0:
            try:
                fcntl.fcntl(write_end, fcntl.F_SETFD, fcntl.FD_CLOEXEC)
                _exec_inside(process, args)
            except BaseException as exc:
                os.write(write_end, str(exc).encode())
                os._exit(127)
        os.close(write_end)
        if detach:
            os._exit(0)
        _, status = os.waitpid(grandchild, 0)
        code = os.waitstatus_to_exitcode(status)
        os._exit(128 - code if code < 0 else code)
    os.close(write_end)
    os.close(go_read)
    for descriptor in descriptors:
        os.close(descriptor)
    try:
        Cgroup(state["cgroup"]).join(child)
    finally:
        os.write(go_write, b"g")
        os.close(go_write)
    with os.fdopen(read_end, "rb") as errors:
        message = errors.read()
    _, status = os.waitpid(child, 0)
    if message:
        raise ContainerError(message.decode(errors="replace"))
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


def _exec_inside(process: dict[str, Any], args: list[str]) -> None:
    for limit in process.get("rlimits") or []:
        resource.setrlimit(RLIMITS[limit["type"]], (limit["soft"], limit["hard"]))
    environment = dict(item.split("=", 1) for item in process.get("env") or [] if "=" in item)
    os.chdir(process.get("cwd") or "/")
    _become_user(process)
    try:
        os.execvpe(args[0], args, environment)
    except OSError as exc:
        raise ContainerError(f"exec {args[0]} failed: {exc.strerror}") from None
