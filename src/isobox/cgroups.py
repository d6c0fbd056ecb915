"""A container's cgroup: made in every mounted hierarchy, limited, joined and removed.

On cgroup v1 each controller has a hierarchy of its own (memory, pids, cpu,
cpuset, blkio, devices, ...), so the cgroup is one directory in each. On v2
it is one directory in the unified hierarchy. A hybrid host has both: the
limits go to the v1 controllers, and the unified hierarchy only tracks the
processes.
"""

from __future__ import annotations

import errno
import os
import time

# Importing typing costs every isobox command 2 ms; mypy treats this name as typing's.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

#: Device rules that every container gets, as runc grants them: the standard
#: character devices, ptys, and mknod (not use) of any device.
DEFAULT_DEVICE_RULES = (
    "c 1:3 rwm",  # /dev/null
    "c 1:5 rwm",  # /dev/zero
    "c 1:7 rwm",  # /dev/full
    "c 1:8 rwm",  # /dev/random
    "c 1:9 rwm",  # /dev/urandom
    "c 5:0 rwm",  # /dev/tty
    "c 5:2 rwm",  # /dev/ptmx
    "c 136:* rwm",  # /dev/pts/*
    "c *:* m",
    "b *:* m",
)


#: Super options of a v1 cgroup mount that name no controller.
_NOT_CONTROLLERS = {"rw", "ro", "xattr", "noprefix", "clone_children", "cpuset_v2_mode"}


def read(path: str) -> str:
    with open(path) as handle:
        return handle.read()


def write(path: str, text: str) -> None:
    with open(path, "w") as handle:
        handle.write(text)


def hierarchies(mountinfo: str | None = None) -> dict[str, str]:
    """Return each mounted cgroup hierarchy by its controllers: "memory", "cpu,cpuacct", or ""
    for the v2 hierarchy."""
    text = mountinfo if mountinfo is not None else read("/proc/self/mountinfo")
    found: dict[str, str] = {}
    for line in text.splitlines():
        fields = line.split()
        if "-" not in fields:
            continue
        separator = fields.index("-")
        fstype, options = fields[separator + 1], fields[separator + 3]
        mount_point = fields[4]
        if fstype == "cgroup2":
            found.setdefault("", mount_point)
        elif fstype == "cgroup":
            names = [
                option
                for option in options.split(",")
                if option not in _NOT_CONTROLLERS
                and ("=" not in option or option.startswith("name="))
            ]
            found.setdefault(",".join(names), mount_point)
    return found


class Cgroup:
    """One container's cgroup at ``path`` (from each hierarchy's root)."""

    def __init__(self, path: str, mountinfo: str | None = None) -> None:
        self.path = "/" + path.strip("/")
        self.hierarchies = hierarchies(mountinfo)
        self.unified = set(self.hierarchies) == {""}

    def directories(self) -> list[str]:
        return [os.path.join(root, self.path.lstrip("/")) for root in self.hierarchies.values()]

    def _directory(self, controller: str) -> str | None:
        for controllers, root in self.hierarchies.items():
            if controller in controllers.split(","):
                return os.path.join(root, self.path.lstrip("/"))
        return None

    def create(self) -> None:
        for directory in self.directories():
            os.makedirs(directory, exist_ok=True)
        cpuset = self._directory("cpuset")
        if cpuset is not None:
            # A new v1 cpuset has no CPUs and no memory nodes until they are copied in,
            # from the top down, into every level that the path created.
            root = next(r for c, r in self.hierarchies.items() if "cpuset" in c.split(","))
            level = root
            for part in self.path.strip("/").split("/"):
                parent, level = level, os.path.join(level, part)
                for name in ("cpuset.cpus", "cpuset.mems"):
                    own = os.path.join(level, name)
                    if os.path.exists(own) and not read(own).strip():
                        write(own, read(os.path.join(parent, name)))

    def apply(self, resources: dict[str, Any]) -> None:
        """Write the limits of an OCI ``linux.resources`` object."""
        if self.unified:
            self._apply_v2(resources)
        else:
            self._apply_v1(resources)

    def _write(self, controller: str, name: str, value: str) -> None:
        directory = self._directory(controller)
        if directory is None:
            raise OSError(errno.ENOENT, f"no cgroup hierarchy has the {controller} controller")
        write(os.path.join(directory, name), value)

    def _apply_v1(self, resources: dict[str, Any]) -> None:
        memory = resources.get("memory") or {}
        if "limit" in memory:
            self._write("memory", "memory.limit_in_bytes", str(memory["limit"]))
        if "swap" in memory:
            self._write("memory", "memory.memsw.limit_in_bytes", str(memory["swap"]))
        pids = resources.get("pids") or {}
        if "limit" in pids:
            self._write("pids", "pids.max", str(pids["limit"]))
        cpu = resources.get("cpu") or {}
        if "period" in cpu:
            self._write("cpu", "cpu.cfs_period_us", str(cpu["period"]))
        if "quota" in cpu:
            self._write("cpu", "cpu.cfs_quota_us", str(cpu["quota"]))
        if "shares" in cpu:
            self._write("cpu", "cpu.shares", str(cpu["shares"]))
        if "cpus" in cpu:
            self._write("cpuset", "cpuset.cpus", str(cpu["cpus"]))
        block_io = resources.get("blockIO") or {}
        for key, name in (
            ("throttleWriteBpsDevice", "blkio.throttle.write_bps_device"),
            ("throttleReadBpsDevice", "blkio.throttle.read_bps_device"),
        ):
            for limit in block_io.get(key) or []:
                self._write("blkio", name, f"{limit['major']}:{limit['minor']} {limit['rate']}")
        if "devices" in resources and self._directory("devices") is not None:
            self._apply_devices(resources["devices"])

    def _apply_devices(self, rules: list[dict[str, Any]]) -> None:
        allows = list(DEFAULT_DEVICE_RULES)
        deny_all = False
        for rule in rules:
            kind = rule.get("type", "a")
            major, minor = rule.get("major", "*"), rule.get("minor", "*")
            access = rule.get("access", "rwm")
            text = "a" if kind == "a" and major == "*" else f"{kind} {major}:{minor} {access}"
            if rule.get("allow"):
                allows.append(text)
            elif text == "a":
                deny_all = True
            else:
                self._write("devices", "devices.deny", text)
        if deny_all:
            self._write("devices", "devices.deny", "a")
            for text in allows:
                self._write("devices", "devices.allow", text)

    def _apply_v2(self, resources: dict[str, Any]) -> None:
        directory = self.directories()[0]
        parent = os.path.dirname(directory)
        wanted = {"memory", "pids", "cpu", "cpuset", "io"}
        available = set(read(os.path.join(parent, "cgroup.controllers")).split())
        enabled = " ".join(f"+{c}" for c in sorted(wanted & available))
        if enabled:
            write(os.path.join(parent, "cgroup.subtree_control"), enabled)
        memory = resources.get("memory") or {}
        if "limit" in memory:
            write(os.path.join(directory, "memory.max"), str(memory["limit"]))
        if "swap" in memory and "limit" in memory:
            # v2 limits swap alone, while the OCI value is memory plus swap.
            write(os.path.join(directory, "memory.swap.max"), str(memory["swap"] - memory["limit"]))
        pids = resources.get("pids") or {}
        if "limit" in pids:
            write(os.path.join(directory, "pids.max"), str(pids["limit"]))
        cpu = resources.get("cpu") or {}
        if "quota" in cpu:
            write(os.path.join(directory, "cpu.max"), f"{cpu['quota']} {cpu.get('period', 100000)}")
        if "shares" in cpu:
            # The conversion runc and crun use from v1 shares (2-262144) to v2 weight (1-10000).
            weight = 1 + ((cpu["shares"] - 2) * 9999) // 262142
            write(os.path.join(directory, "cpu.weight"), str(weight))
        if "cpus" in cpu:
            write(os.path.join(directory, "cpuset.cpus"), str(cpu["cpus"]))
        block_io = resources.get("blockIO") or {}
        for key, name in (("throttleWriteBpsDevice", "wbps"), ("throttleReadBpsDevice", "rbps")):
            for limit in block_io.get(key) or []:
                write(
                    os.path.join(directory, "io.max"),
                    f"{limit['major']}:{limit['minor']} {name}={limit['rate']}",
                )

    def join(self, pid: int) -> None:
        """Move the process ``pid`` into the cgroup, in every hierarchy."""
        for directory in self.directories():
            write(os.path.join(directory, "cgroup.procs"), str(pid))

    def remove(self, timeout_s: float = 5.0) -> list[str]:
        """Remove the cgroup's directories, deepest first; return those still there."""
        left = []
        for directory in self.directories():
            deadline = time.monotonic() + timeout_s
            while os.path.exists(directory):
                try:
                    os.rmdir(directory)
                except FileNotFoundError:
                    break
                except OSError as exc:
                    # EBUSY while the last processes of the container are still exiting.
                    if exc.errno != errno.EBUSY or time.monotonic() > deadline:
                        left.append(directory)
                        break
                    time.sleep(0.01)
        return left

    def pids(self) -> list[int]:
        for directory in self.directories():
            procs = os.path.join(directory, "cgroup.procs")
            if os.path.exists(procs):
                return [int(p) for p in read(procs).split()]
        return []
