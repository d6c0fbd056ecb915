"""Facts derived from the raw ones, so that suites can match them directly."""

from __future__ import annotations

from isobench.model import CAPABILITIES, READONLY_PATHS
from isobench.probe.host import NAMESPACES

FactValues = dict[str, str | list[str]]

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
    "readonly.present": "paths of the read-only list that exist inside",
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
    "start_at": "a time (epoch seconds) 3 s after a run check starts, the same for both "
    "containers of a check with 'alongside'",
}


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
    if "ns.cgroup" in container and "ns.cgroup" in host:
        same = container["ns.cgroup"] == host["ns.cgroup"]
        derived["cgroupns.state"] = "shared with host" if same else "private"
    return derived
