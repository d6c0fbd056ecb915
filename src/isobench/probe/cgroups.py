"""Find a process's cgroups on the host and read their limit and counter files.

Works on cgroup v1, v2 and hybrid hosts. The cgroup paths come from
``/proc/<pid>/cgroup`` read on the host, joined to the mount points found in
the host's ``/proc/self/mountinfo``; an in-container ``/proc/self/cgroup``
is not used, because with the host's cgroup namespace it names paths that
do not exist inside.

Every value is returned under one name whatever the version, so suites
can say ``cg.memory.limit`` instead of ``memory.limit_in_bytes`` or
``memory.max``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

#: v1 shows "no limit" as LONG_MAX rounded down to a page (about 2**63), so any
#: value from 2**62 up is read as no limit.
V1_UNLIMITED = 2**62

CGROUP_FACTS: dict[str, str] = {
    "cg.layout": "v1, v2 or hybrid: how the host mounts its cgroup hierarchies",
    "cg.memory.limit": "memory limit in bytes, or 'max'",
    "cg.memory.memsw_limit": "memory plus swap limit in bytes, or 'max'",
    "cg.memory.oom_kills": "processes the kernel's OOM killer ended in this cgroup",
    "cg.memory.peak": "maximum memory usage in bytes (v1 max_usage_in_bytes, v2 memory.peak)",
    "cg.pids.max": "task limit, or 'max'",
    "cg.pids.current": "tasks in the cgroup now",
    "cg.cpu.quota": "CPU quota in CPUs (quota divided by period), or 'max'",
    "cg.cpu.usage_ns": "CPU time used by the cgroup, in nanoseconds",
    "cg.cpu.weight": "relative CPU weight (v1 cpu.shares, v2 cpu.weight)",
    "cg.cpu.used_cpus": "CPUs that ran at least 5% of the cgroup's CPU time, such as '1' or "
    "'0 1' (cgroup v1 only: v2 has no per-CPU usage)",
    "cg.cpuset.cpus": "CPUs the cgroup may run on",
    "cg.paths": "the cgroup directories read, as 'controller directory'",
}


#: The facts a run check can read from the cgroup: those above, plus the CPU rate and share.
RUN_CGROUP_FACTS: dict[str, str] = {
    **CGROUP_FACTS,
    "cg.cpu.rate": "CPUs used while the command ran: CPU time over the command's wall time",
    "cg.cpu.share": "with 'alongside': this container's part of the CPU time both containers used",
}


@dataclass
class Hierarchy:
    """One mounted cgroup hierarchy."""

    version: int
    mount_point: Path
    root: str
    controllers: set[str] = field(default_factory=set)


def hierarchies(mountinfo: str) -> list[Hierarchy]:
    """Parse mountinfo text into the cgroup hierarchies it mounts."""
    found = []
    for line in mountinfo.splitlines():
        before, sep, after = line.partition(" - ")
        if not sep:
            continue
        fields = before.split()
        fs_fields = after.split()
        if len(fields) < 5 or len(fs_fields) < 3:
            continue
        fstype, options = fs_fields[0], fs_fields[2].split(",")
        root, point = fields[3], Path(fields[4].replace("\\040", " "))
        if fstype == "cgroup2":
            found.append(Hierarchy(2, point, root))
        elif fstype == "cgroup":
            known = {o for o in options if o not in ("rw", "ro") and "=" not in o}
            known |= {o for o in options if o.startswith("name=")}
            found.append(Hierarchy(1, point, root, known))
    return found


def layout(found: list[Hierarchy]) -> str:
    versions = {h.version for h in found}
    if versions == {2}:
        return "v2"
    if versions == {1, 2}:
        return "hybrid"
    return "v1"


@dataclass
class CgroupDirs:
    """The directories of one process's cgroups, by controller ('' for the unified one)."""

    layout: str
    v1: dict[str, Path] = field(default_factory=dict)
    unified: Path | None = None

    def directory(self, controller: str) -> Path | None:
        """Return where a controller's files are: the v1 hierarchy if it has it, else v2."""
        if controller in self.v1:
            return self.v1[controller]
        if self.unified is not None and _enabled_in(self.unified, controller):
            return self.unified
        return None


def _enabled_in(directory: Path, controller: str) -> bool:
    # cgroup.controllers lists the controllers available in a v2 cgroup; files
    # such as memory.pressure exist whether or not the controller is.
    try:
        return controller in (directory / "cgroup.controllers").read_text().split()
    except OSError:
        return False


def _join(hierarchy: Hierarchy, path: str) -> Path:
    relative = path
    root = hierarchy.root.rstrip("/")
    if root and (relative == root or relative.startswith(root + "/")):
        relative = relative[len(root) :]
    return hierarchy.mount_point / relative.lstrip("/")


def locate(proc_cgroup: str, mountinfo: str) -> CgroupDirs:
    """Join a process's ``/proc/<pid>/cgroup`` lines to the host's mounts."""
    found = hierarchies(mountinfo)
    dirs = CgroupDirs(layout(found))
    for line in proc_cgroup.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        if controllers == "":
            for hierarchy in found:
                if hierarchy.version == 2:
                    dirs.unified = _join(hierarchy, path)
                    break
            continue
        names = set(controllers.split(","))
        for hierarchy in found:
            if hierarchy.version == 1 and names & hierarchy.controllers:
                for name in names:
                    dirs.v1[name] = _join(hierarchy, path)
                break
    return dirs


def directories_for(path: str, mountinfo: str | None = None) -> list[Path]:
    """Return where a cgroup at ``path`` (from the root) lives in every mounted hierarchy."""
    if mountinfo is None:
        mountinfo = Path("/proc/self/mountinfo").read_text()
    found = []
    for hierarchy in hierarchies(mountinfo):
        directory = _join(hierarchy, path)
        if directory not in found:
            found.append(directory)
    return found


def _read(path: Path | None) -> str | None:
    if path is None:
        return None
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _keyed(text: str | None, key: str) -> str | None:
    """Return the value of ``key`` in a flat-keyed file such as memory.events."""
    for line in (text or "").splitlines():
        name, _, value = line.partition(" ")
        if name == key:
            return value.strip()
    return None


#: The part of a cgroup's CPU time a CPU must have run to count as used.
USED_CPU_SHARE = 0.05


def _used_cpus(percpu: str | None) -> str | None:
    """Name the CPUs that ran a notable part of the time in cpuacct.usage_percpu."""
    if percpu is None:
        return None
    usage = [int(value) for value in percpu.split()]
    total = sum(usage)
    if total == 0:
        return ""
    return " ".join(str(cpu) for cpu, ns in enumerate(usage) if ns >= USED_CPU_SHARE * total)


def _v1_limit(text: str | None) -> str | None:
    if text is None:
        return None
    try:
        return "max" if int(text) >= V1_UNLIMITED else text
    except ValueError:
        return text


def read(dirs: CgroupDirs) -> dict[str, str | list[str]]:
    """Read the limits and counters of a process's cgroups under version-neutral names."""
    facts: dict[str, str | list[str]] = {"cg.layout": dirs.layout}
    paths = [f"{name} {path}" for name, path in sorted(dirs.v1.items())]
    if dirs.unified is not None:
        paths.append(f"unified {dirs.unified}")
    facts["cg.paths"] = paths

    def put(name: str, value: str | None) -> None:
        if value is not None:
            facts[name] = value

    memory = dirs.directory("memory")
    if memory is not None and memory == dirs.v1.get("memory"):
        put("cg.memory.limit", _v1_limit(_read(memory / "memory.limit_in_bytes")))
        put("cg.memory.memsw_limit", _v1_limit(_read(memory / "memory.memsw.limit_in_bytes")))
        put("cg.memory.oom_kills", _keyed(_read(memory / "memory.oom_control"), "oom_kill"))
        put("cg.memory.peak", _read(memory / "memory.max_usage_in_bytes"))
    elif memory is not None:
        limit = _read(memory / "memory.max")
        swap = _read(memory / "memory.swap.max")
        limit = limit or "max"
        put("cg.memory.limit", limit)
        if limit is not None and swap is not None:
            total = "max" if "max" in (limit, swap) else str(int(limit) + int(swap))
            put("cg.memory.memsw_limit", total)
        put("cg.memory.oom_kills", _keyed(_read(memory / "memory.events"), "oom_kill"))
        put("cg.memory.peak", _read(memory / "memory.peak"))

    # A root cgroup has no limit files: its limits are "max" by definition.
    pids = dirs.directory("pids")
    if pids is not None and pids.is_dir():
        put("cg.pids.max", _read(pids / "pids.max") or "max")
        current = _read(pids / "pids.current")
        if current is None:
            # The root cgroup has no pids.current: count its tasks instead.
            tasks = _read(pids / "tasks") or _read(pids / "cgroup.threads")
            current = None if tasks is None else str(len(tasks.split()))
        put("cg.pids.current", current)

    cpu = dirs.directory("cpu")
    if cpu is not None and cpu == dirs.v1.get("cpu"):
        quota, period = _read(cpu / "cpu.cfs_quota_us"), _read(cpu / "cpu.cfs_period_us")
        if quota is not None and period is not None:
            put("cg.cpu.quota", "max" if int(quota) < 0 else f"{int(quota) / int(period):g}")
        put("cg.cpu.weight", _read(cpu / "cpu.shares"))
        accounting = dirs.v1.get("cpuacct") or cpu
        put("cg.cpu.usage_ns", _read(accounting / "cpuacct.usage"))
        put("cg.cpu.used_cpus", _used_cpus(_read(accounting / "cpuacct.usage_percpu")))
    elif cpu is not None:
        limit = _read(cpu / "cpu.max")
        quota, _, period = (limit or "max").partition(" ")
        put("cg.cpu.quota", "max" if quota == "max" else f"{int(quota) / int(period):g}")
        put("cg.cpu.weight", _read(cpu / "cpu.weight"))
        usage = _keyed(_read(cpu / "cpu.stat"), "usage_usec")
        put("cg.cpu.usage_ns", None if usage is None else str(int(usage) * 1000))

    cpuset = dirs.directory("cpuset")
    if cpuset is not None:
        put(
            "cg.cpuset.cpus",
            _read(cpuset / "cpuset.cpus.effective") or _read(cpuset / "cpuset.cpus"),
        )
    return facts


def process_cgroup_facts(pid: int | str, proc: Path = Path("/proc")) -> dict[str, str | list[str]]:
    """Read the cgroup facts of a host process."""
    try:
        own = (proc / str(pid) / "cgroup").read_text()
        mountinfo = (proc / "self" / "mountinfo").read_text()
    except OSError:
        return {}
    return read(locate(own, mountinfo))


def directory_names(path: str) -> list[str]:
    """Return :func:`directories_for` of this host's mounts as strings: the JSON result of
    a call on the run's host."""
    return [str(directory) for directory in directories_for(path)]


def hybrid_unified(mountinfo: str | None = None) -> dict[str, object] | None:
    """Return the unified hierarchy of a hybrid host when its cgroup.controllers lists a
    controller, as ``{"mount_point": path, "controllers": [names]}``.

    Returns None on a v1-only or v2 host, or when the hierarchy lists none.
    ``mountinfo`` defaults to this process's /proc/self/mountinfo.
    """
    if mountinfo is None:
        mountinfo = Path("/proc/self/mountinfo").read_text()
    found = hierarchies(mountinfo)
    if layout(found) != "hybrid":
        return None
    for hierarchy in found:
        if hierarchy.version != 2:
            continue
        try:
            listed = (hierarchy.mount_point / "cgroup.controllers").read_text().split()
        except OSError:
            continue
        if listed:
            return {"mount_point": str(hierarchy.mount_point), "controllers": listed}
    return None
