"""Shared parts of the lxc and systemd-nspawn rows: the rootfs copy, cgroup limits, id checks.

Both rows run a tool that takes a root directory, so each container gets a
copy of the probe image's root under ``ctx.bundle_root``, as the OCI rows do.
Their limits are the same cgroup files, written by LXC from its config file
or by isobench itself for nspawn.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from isobench import commands
from isobench.errors import HarnessError
from isobench.journal import Entry
from isobench.model import CAPABILITIES, Request, capability_name
from isobench.probe import cgroups
from isobench.runtimes.base import Context, Launched

#: The host id range that a private user namespace maps container ids 0-65535 to,
#: the same as the OCI rows use.
USERNS_HOST_ID = 100000
USERNS_SIZE = 65536

CPU_PERIOD_US = 100000


@dataclass(frozen=True)
class CgroupSetting:
    """One cgroup file to write: the hierarchy version, the file name and its value."""

    version: int
    file: str
    value: str

    @property
    def controller(self) -> str:
        return self.file.split(".", 1)[0]


def controller_versions(mountinfo: str | None = None, root: Path | None = None) -> dict[str, int]:
    """Map each controller the host mounts to the cgroup version that contains it.

    A controller in a v1 hierarchy counts as v1 even where the v2 hierarchy
    lists it too, because a controller is active in one of them only.
    """
    if mountinfo is None:
        mountinfo = Path("/proc/self/mountinfo").read_text()
    versions: dict[str, int] = {}
    for hierarchy in cgroups.hierarchies(mountinfo):
        if hierarchy.version == 1:
            for name in hierarchy.controllers:
                versions[name] = 1
    for hierarchy in cgroups.hierarchies(mountinfo):
        if hierarchy.version != 2:
            continue
        directory = root if root is not None else hierarchy.mount_point
        try:
            listed = (directory / "cgroup.controllers").read_text().split()
        except OSError:
            listed = []
        for name in listed:
            versions.setdefault(name, 2)
    return versions


def cgroup_settings(
    request: Request,
    versions: dict[str, int],
    device: tuple[str, int, int] | None = None,
) -> list[CgroupSetting]:
    """Translate the request's limits into cgroup files, v1 or v2 per controller.

    Raises HarnessError when the host mounts no hierarchy with a controller
    that a limit needs; :func:`limits_problem` returns the same reason first.
    """
    settings: list[CgroupSetting] = []

    def put(controller: str, v1: tuple[str, str] | None, v2: tuple[str, str] | None) -> None:
        version = versions.get(controller)
        if version == 1 and v1 is not None:
            settings.append(CgroupSetting(1, *v1))
        elif version == 2 and v2 is not None:
            settings.append(CgroupSetting(2, *v2))
        else:
            raise HarnessError(
                f"the host mounts no cgroup hierarchy with the {controller} controller"
            )

    if request.memory is not None:
        put(
            "memory",
            ("memory.limit_in_bytes", str(int(request.memory))),
            ("memory.max", str(int(request.memory))),
        )
    if request.memory_swap is not None:
        swap_only = None
        if request.memory is not None:
            swap_only = (
                "memory.swap.max",
                str(max(0, int(request.memory_swap) - int(request.memory))),
            )
        put("memory", ("memory.memsw.limit_in_bytes", str(int(request.memory_swap))), swap_only)
    if request.pids_limit is not None:
        put("pids", ("pids.max", str(request.pids_limit)), ("pids.max", str(request.pids_limit)))
    if request.cpus is not None:
        quota = round(request.cpus * CPU_PERIOD_US)
        if versions.get("cpu") == 1:
            put("cpu", ("cpu.cfs_period_us", str(CPU_PERIOD_US)), None)
        put("cpu", ("cpu.cfs_quota_us", str(quota)), ("cpu.max", f"{quota} {CPU_PERIOD_US}"))
    if request.cpu_shares is not None:
        # The conversion runc and crun use: shares 2..262144 onto weight 1..10000.
        weight = 1 + ((request.cpu_shares - 2) * 9999) // 262142
        put("cpu", ("cpu.shares", str(request.cpu_shares)), ("cpu.weight", str(weight)))
    if request.cpuset_cpus is not None:
        put("cpuset", ("cpuset.cpus", request.cpuset_cpus), ("cpuset.cpus", request.cpuset_cpus))
    if device is not None:
        _, major, minor = device
        rates = (
            ("write", request.device_write_bps, "wbps"),
            ("read", request.device_read_bps, "rbps"),
        )
        if versions.get("blkio") == 1:
            for direction, rate, _ in rates:
                if rate is not None:
                    file = f"blkio.throttle.{direction}_bps_device"
                    settings.append(CgroupSetting(1, file, f"{major}:{minor} {int(rate)}"))
        else:
            keys = [f"{key}={int(rate)}" for _, rate, key in rates if rate is not None]
            if keys:
                put("io", None, ("io.max", f"{major}:{minor} {' '.join(keys)}"))
    return settings


def limits_problem(
    request: Request, versions: dict[str, int], swap_file: Path | None = None
) -> str | None:
    """Return why the host's cgroups cannot hold the request's limits, or None."""
    requested = {
        "memory": request.memory is not None or request.memory_swap is not None,
        "pids": request.pids_limit is not None,
        "cpu": request.cpus is not None or request.cpu_shares is not None,
        "cpuset": request.cpuset_cpus is not None,
    }
    bandwidth = request.device_write_bps is not None or request.device_read_bps is not None
    for controller, needed in requested.items():
        if needed and controller not in versions:
            return f"the host mounts no cgroup hierarchy with the {controller} controller"
    if bandwidth and "blkio" not in versions and "io" not in versions:
        return "the host mounts no cgroup hierarchy with the blkio or io controller"
    if request.memory_swap is not None:
        if versions.get("memory") == 2 and request.memory is None:
            return (
                "on cgroup v2 a memory_swap limit needs a memory limit too, because "
                "memory.swap.max limits swap alone"
            )
        if versions.get("memory") == 1:
            memsw = swap_file or Path("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes")
            if not memsw.exists():
                return (
                    "the memory cgroup has no memory.memsw.limit_in_bytes: swap accounting is "
                    "off (boot with swapaccount=1)"
                )
    return None


def capability_set(
    request: Request, baseline: Sequence[str], host_caps: Sequence[str]
) -> list[str]:
    """Return the capabilities a container gets: ``baseline`` with the request's drops
    and adds applied as the engines apply them (drops first, so an add wins)."""
    caps = set(host_caps) if request.privileged else set(baseline)
    drops = {capability_name(c) for c in request.cap_drop}
    if "CAP_ALL" in drops:
        caps.clear()
    caps -= drops
    adds = {capability_name(c) for c in request.cap_add}
    if "CAP_ALL" in adds:
        adds = set(host_caps)
    caps |= adds
    return [name for name in CAPABILITIES if name in caps]


def passwd_gid(rootfs: Path, uid: int) -> int:
    """Return the group of ``uid`` in the image's /etc/passwd, or 0 when it is not listed
    (as the engines do for a user without a group)."""
    try:
        text = (rootfs / "etc" / "passwd").read_text()
    except OSError:
        return 0
    for line in text.splitlines():
        fields = line.split(":")
        if len(fields) > 3 and fields[2] == str(uid) and fields[3].isdigit():
            return int(fields[3])
    return 0


def user_ids(request: Request, rootfs: Path) -> tuple[int, int] | None:
    """Return the (uid, gid) the request names, or None for the image's default."""
    if request.user is None:
        return None
    user, _, group = request.user.partition(":")
    uid = int(user)
    return uid, int(group) if group else passwd_gid(rootfs, uid)


def copy_rootfs(ctx: Context, request: Request, runtime: str, name: str) -> tuple[Path, Entry]:
    """Copy the request's image into a new directory of the run.

    Returns the rootfs and the journal entry that removes the directory. The
    entry is written before the directory is made.
    """
    directory = ctx.bundle_root / name
    entry = ctx.journal.record(
        "bundle", str(directory), ["rm", "-rf", str(directory)], runtime=runtime
    )
    directory.mkdir(parents=True)
    rootfs = directory / "rootfs"
    shutil.copytree(ctx.image_for(request).rootfs, rootfs, symlinks=True)
    if request.userns == "private":
        owner = f"{USERNS_HOST_ID}:{USERNS_HOST_ID}"
        commands.run(["chown", "-R", owner, str(rootfs)], timeout=60)
    return rootfs, entry


def make_targets(rootfs: Path, request: Request) -> None:
    """Create the mount points of bind mounts and tmpfs mounts in the rootfs copy.

    A read-only root leaves the tools no way to create them inside. A target
    whose path inside the copy passes through a symlink, or that names ``..``,
    is left to the tool, so nothing is made outside the copy.
    """
    targets: list[tuple[str, bool]] = [(m.target, Path(m.source).is_dir()) for m in request.mounts]
    targets += [(t.target, True) for t in request.tmpfs]
    targets += [(path, False) for path in request.devices]
    for target, is_dir in targets:
        parts = Path(target).relative_to("/").parts
        if ".." in parts or not parts:
            continue
        path = rootfs
        safe = True
        for part in parts:
            path = path / part
            if path.is_symlink():
                safe = False
                break
        if not safe:
            continue
        if is_dir:
            path.mkdir(parents=True, exist_ok=True)
        elif not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()


def subid_problem(etc: Path = Path("/etc")) -> str | None:
    """Return why /etc/subuid or /etc/subgid do not grant root the user namespace range."""
    for name in ("subuid", "subgid"):
        try:
            lines = (etc / name).read_text().splitlines()
        except OSError:
            lines = []
        granted = False
        for line in lines:
            fields = line.strip().split(":")
            if len(fields) != 3 or fields[0] not in ("root", "0"):
                continue
            if not (fields[1].isdigit() and fields[2].isdigit()):
                continue
            start, count = int(fields[1]), int(fields[2])
            if start <= USERNS_HOST_ID and start + count >= USERNS_HOST_ID + USERNS_SIZE:
                granted = True
        if not granted:
            return (
                f"LXC maps ids with newuidmap and newgidmap, and {etc / name} does not grant "
                f"root the range {USERNS_HOST_ID}-{USERNS_HOST_ID + USERNS_SIZE - 1} "
                f"(add the line root:{USERNS_HOST_ID}:{USERNS_SIZE})"
            )
    return None


def children(pid: int, proc: Path = Path("/proc")) -> list[int]:
    """Return the child processes of a host process, forked by any of its threads."""
    found: list[int] = []
    try:
        tasks = list((proc / str(pid) / "task").iterdir())
    except OSError:
        return found
    for task in tasks:
        try:
            found += [int(word) for word in (task / "children").read_text().split()]
        except (OSError, ValueError):
            continue
    return found


def signal_then_kill(launched: Launched, pid: int, grace_s: float) -> None:
    """Send SIGTERM to ``pid``, then SIGKILL when the client has not exited after ``grace_s``."""
    launched.commands.append(f"kill -TERM {pid}")
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        launched.process.wait(grace_s)
    except subprocess.TimeoutExpired:
        launched.commands.append(f"kill -KILL {pid}")
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return
