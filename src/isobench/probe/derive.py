"""Facts derived from the raw ones, so that suites can match them directly."""

from __future__ import annotations

from isobench.model import CAPABILITIES, READONLY_PATHS
from isobench.probe.host import NAMESPACES

FactValues = dict[str, str | list[str]]

#: The labels of /proc/<pid>/limits, and the ulimit names the facts use.
LIMIT_NAMES = {
    "Max cpu time": "cpu",
    "Max file size": "fsize",
    "Max data size": "data",
    "Max stack size": "stack",
    "Max core file size": "core",
    "Max resident set": "rss",
    "Max processes": "nproc",
    "Max open files": "nofile",
    "Max locked memory": "memlock",
    "Max address space": "as",
    "Max file locks": "locks",
    "Max pending signals": "sigpending",
    "Max msgqueue size": "msgqueue",
    "Max nice priority": "nice",
    "Max realtime priority": "rtprio",
    "Max realtime timeout": "rttime",
}
#: Limits that a runtime or engine is expected to set rather than pass on from its parent.
INHERITANCE_LIMITS = ("nofile",)

#: Facts the probe prints, with a short description for the docs.
PROBE_FACTS: dict[str, str] = {
    "probe.version": "version of the probe's output format",
    "self.pid": "PID of the probe's shell as seen inside (1 when it is the first process)",
    "id.uid": "uid of the process",
    "id.gid": "gid of the process",
    "hostname": "hostname inside",
    "pid1.cmdline": "command line of PID 1 inside",
    "proc": "every visible process as 'PID cmdline'",
    "mount.point": "mount points of /proc/self/mountinfo",
    "mountinfo": "lines of /proc/self/mountinfo",
    "net.if": "network interfaces as 'name MAC'",
    "net.route": "IPv4 routes as 'interface destination'",
    "cgroup": "lines of /proc/self/cgroup",
    "cgroup.memory.path": "the memory controller's path in /proc/self/cgroup (cgroup v1)",
    "cgroup.memory.path_exists": "whether /sys/fs/cgroup/memory<path> exists inside (yes/no)",
    "cgroup.unified.path": "the path of the unified hierarchy in /proc/self/cgroup",
    "uid_map": "lines of /proc/self/uid_map",
    "gid_map": "lines of /proc/self/gid_map",
    "sysvipc.readable": "whether /proc/sysvipc/shm is readable (yes/no)",
    "sysvipc.shm.key": "keys of the visible SysV shared memory segments, in decimal",
    "path.exists": "which of the paths the harness asked about exist inside",
    "cwd": "working directory of the probe",
    "limits": "lines of /proc/self/limits",
    "lsm.current": "the AppArmor or SELinux label of the process, where the host has one",
    "dev.char": "character device nodes under /dev, one level deep",
    "dev.block": "block device nodes under /dev, one level deep",
    "masked.present": "paths of the masked list that exist inside",
    "masked.visible": "paths of the masked list that still show content inside",
    **{
        f"status.{name}": f"the {name} line of /proc/self/status"
        for name in (
            "Uid",
            "Gid",
            "CapInh",
            "CapPrm",
            "CapEff",
            "CapBnd",
            "CapAmb",
            "NoNewPrivs",
            "Seccomp",
            "Cpus_allowed_list",
        )
    },
    **{
        f"ns.{name}": f"the {name} namespace, read on the host side where the runtime shows "
        "the container's host PID"
        for name in NAMESPACES
    },
}

DERIVED_FACTS: dict[str, str] = {
    **{
        f"caps.{short}": f"capability names of the {long} set"
        for short, long in (
            ("eff", "effective"),
            ("prm", "permitted"),
            ("bnd", "bounding"),
            ("inh", "inheritable"),
            ("amb", "ambient"),
        )
    },
    "readonly.writable": "paths of the read-only list that lie on a mount without 'ro'",
    "dev.nodes": "every device node under /dev, one level deep",
    **{
        f"rlimit.{name}": f"the {name} limit as 'soft hard' (from /proc/self/limits)"
        for name in LIMIT_NAMES.values()
    },
    "rlimit.inherited": "limits (nofile) whose soft and hard values equal those of the "
    "process that started the container, read on the host side",
    "readonly.present": "paths of the read-only list that exist inside",
    "masked.unmasked": "paths of the masked list that exist inside and have nothing mounted "
    "over them (the runtimes mask a file with /dev/null and a directory with a read-only tmpfs)",
    "proc.cmdlines": "command lines of every visible process",
    "net.if.names": "names of the network interfaces",
    "net.if.external": "network interfaces other than the loopback, as 'name MAC'",
    "uid_map.identity": "whether the uid map is the host's identity map (yes/no)",
    "cgroup.own_path": "the container's own cgroup path as it sees it (memory controller "
    "on cgroup v1, the unified hierarchy on v2)",
    "cgroupns.state": "'private' or 'shared with host', from the cgroup namespace inodes",
    "hostside.uid": "uid of the container's first process as the host sees it",
    "hostside.gid": "gid of the container's first process as the host sees it",
    "hostside.cgroup": "/proc/<host PID>/cgroup of the container's first process",
    "hostside.parent": "command line of the host process that is the parent of the "
    "container's first process (a shim, conmon, the runtime)",
    "hostside.parent.limits": "/proc/<parent PID>/limits of that parent",
    "hostside.zombies": "children of the container's first process that have exited "
    "and were not reaped (state Z)",
}

#: Facts of a run check's first process, read on the host side, for ``expect.process``.
PROCESS_FACTS: dict[str, str] = {
    name: DERIVED_FACTS[name]
    for name in (
        "hostside.uid",
        "hostside.gid",
        "hostside.parent",
        "hostside.zombies",
    )
}

#: Facts of the host itself, for ``{host: NAME}`` references.
HOST_FACTS: dict[str, str] = {
    **{f"ns.{name}": f"the host's {name} namespace" for name in NAMESPACES},
    "hostname": "the host's hostname",
    "net.if": "the host's network interfaces as 'name MAC'",
    "net.if.external": "the host's network interfaces other than the loopback",
    "cgroup.version": "1 on a cgroup v1 or hybrid host, 2 on a unified host",
    "marker.process": "command line of a process the harness runs on the host",
    "marker.file": "path of a file the harness creates on the host",
    "marker.mount": "mount point of a tmpfs the harness mounts on the host",
    "marker.shm_key": "key of a SysV shared memory segment the harness makes on the host",
    "listener.port": "TCP port of a listener the harness opens on the host's 127.0.0.1",
    "marker.bind_dir": "a host directory whose subdirectory 'sub' is a writable tmpfs mount",
    "lsm.mac": "the mandatory access control module the host enforces: apparmor, selinux, "
    "or empty for neither",
    "start_at": "a time (epoch seconds) 3 s after a run check starts, the same for both "
    "containers of a check with 'alongside'",
}


def parse_limits(lines: list[str]) -> dict[str, str]:
    """Return ``rlimit.<name>`` facts ("soft hard") from lines of /proc/<pid>/limits."""
    found = {}
    for line in lines:
        for label, name in LIMIT_NAMES.items():
            if line.startswith(label + " "):
                values = line[len(label) :].split()
                if len(values) >= 2:
                    found[f"rlimit.{name}"] = f"{values[0]} {values[1]}"
    return found


def decode_caps(mask: str) -> list[str]:
    """Return the capability names set in a hexadecimal Cap* mask."""
    bits = int(mask, 16)
    names = [name for number, name in enumerate(CAPABILITIES) if bits >> number & 1]
    unknown = bits >> len(CAPABILITIES)
    if unknown:
        names.append(f"unknown bits {unknown << len(CAPABILITIES):#x}")
    return names


def _covering_mount(path: str, mountinfo: list[str]) -> list[str] | None:
    """Return the mountinfo fields of the last-mounted mount that covers ``path``."""
    best: list[str] | None = None
    best_length = -1
    for line in mountinfo:
        fields = line.split()
        if len(fields) < 6:
            continue
        point = fields[4]
        inside = path == point or path.startswith(point.rstrip("/") + "/")
        # Later lines are mounted on top, so an equal length replaces the earlier one.
        if inside and len(point) >= best_length:
            best, best_length = fields, len(point)
    return best


def _as_list(value: str | list[str] | None) -> list[str]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def derive(values: FactValues) -> FactValues:
    """Return the derived facts of a probe's (or the host's) raw facts."""
    derived: FactValues = {}

    processes = _as_list(values.get("proc"))
    if processes:
        derived["proc.cmdlines"] = [item.partition(" ")[2] for item in processes]

    interfaces = _as_list(values.get("net.if"))
    derived["net.if.names"] = [item.split(" ", 1)[0] for item in interfaces]
    derived["net.if.external"] = [item for item in interfaces if item.split(" ", 1)[0] != "lo"]

    if _as_list(values.get("uid_map")):
        lines = [" ".join(line.split()) for line in _as_list(values["uid_map"])]
        derived["uid_map.identity"] = "yes" if lines == ["0 0 4294967295"] else "no"

    for short, status in (
        ("eff", "CapEff"),
        ("prm", "CapPrm"),
        ("bnd", "CapBnd"),
        ("inh", "CapInh"),
        ("amb", "CapAmb"),
    ):
        mask = values.get(f"status.{status}")
        if isinstance(mask, str) and mask:
            derived[f"caps.{short}"] = decode_caps(mask)

    derived.update(parse_limits(_as_list(values.get("limits"))))
    if "dev.char" in values or "dev.block" in values:
        nodes = _as_list(values.get("dev.char")) + _as_list(values.get("dev.block"))
        derived["dev.nodes"] = sorted(nodes)

    mountinfo = _as_list(values.get("mountinfo"))
    if mountinfo:
        present = [p for p in READONLY_PATHS if p in _as_list(values.get("path.exists"))]
        derived["readonly.present"] = present
        writable = []
        for path in present:
            fields = _covering_mount(path, mountinfo)
            if fields is not None and "ro" not in fields[5].split(","):
                writable.append(path)
        derived["readonly.writable"] = writable
        unmasked = []
        for path in _as_list(values.get("masked.present")):
            fields = _covering_mount(path, mountinfo)
            if fields is None or fields[4] != path:
                unmasked.append(path)
        derived["masked.unmasked"] = unmasked

    memory_path = values.get("cgroup.memory.path")
    unified_path = values.get("cgroup.unified.path")
    if isinstance(memory_path, str):
        derived["cgroup.own_path"] = memory_path
    elif isinstance(unified_path, str):
        derived["cgroup.own_path"] = unified_path
    elif "cgroup" in values and not _as_list(values["cgroup"]):
        # /proc/self/cgroup was read and is empty (gVisor): no path to show.
        derived["cgroup.own_path"] = ""
    return derived


def relative_facts(container: FactValues, host: FactValues) -> FactValues:
    """Return facts that compare a container with the host."""
    derived: FactValues = {}
    parent = parse_limits(_as_list(container.get("hostside.parent.limits")))
    if parent:
        derived["rlimit.inherited"] = [
            name
            for name in INHERITANCE_LIMITS
            if f"rlimit.{name}" in container
            and container[f"rlimit.{name}"] == parent.get(f"rlimit.{name}")
        ]
    if "ns.cgroup" in container and "ns.cgroup" in host:
        same = container["ns.cgroup"] == host["ns.cgroup"]
        derived["cgroupns.state"] = "shared with host" if same else "private"
    return derived
