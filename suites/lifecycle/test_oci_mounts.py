"""Mount propagation, mount options and cgroupsPath of config.json.

The requirements are those of config.md and config-linux.md 1.0.2:
``linux.rootfsPropagation`` ("sets the rootfs's mount propagation. Its value is
either slave, private, shared or unbindable"), the propagation and the other
options of a mount (config.md lists the options of mount(8)), and
``linux.cgroupsPath``.

Propagation is read on the host, from /proc/PID/mountinfo of the container's
process (the optional fields shared:N, master:N and unbindable), and observed as
behaviour: a mount made on the host after start is looked up in the container
through the runtime's 'exec', and a mount made in the container's mount namespace
(through nsenter, with the container's own busybox) is looked up on the host. A source
of propagation on the host must itself be a shared mount, so each check mounts
one in its bundle directory. Every such mount, and every mount that may
propagate back to the host, is in the run's journal before it is made.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from isobench import commands
from isobench.lifecycle import (
    RAN_MARKER,
    VALUE_ENV,
    Lifecycle,
    LifecycleError,
    marker_lines,
    read_config,
    read_output,
    tail,
    wait_marker,
    write_config,
)
from isobench.probe import cgroups
from isobench.runtimes.base import journal_cgroups

#: The suite this module belongs to, for the records.
SUITE = "lifecycle"

log = logging.getLogger(__name__)

#: Host mount commands (mount, umount, nsenter) get this many seconds.
MOUNT_TIMEOUT_S = 30.0

#: Paths in the container, and the file that a host mount carries.
SHARE_DESTINATION = "/isobench-share"
HOST_SUBMOUNT = "isobench-host-sub"
INSIDE_SUBMOUNT = "isobench-inside-sub"
BIND_TARGET = "isobench-bind"
HOST_FILE = "isobench-host-file"
OPTIONS_BIND = "/isobench-options-bind"
OPTIONS_TMPFS = "/isobench-options-tmpfs"
REQUIRED_OPTIONS = ("ro", "nosuid", "nodev", "noexec")

#: Written by the mount options program: the container's own mountinfo, and one line
#: per mount, "PATH written" or "PATH refused", for a write into that mount.
MOUNTINFO_MARKER = "isobench-mountinfo"
WRITE_MARKER = "isobench-write"
OPTIONS_PROGRAM = (
    "/bin/sh",
    "-c",
    f"cat /proc/self/mountinfo > /{MOUNTINFO_MARKER}; "
    f"for path in {OPTIONS_BIND} {OPTIONS_TMPFS}; do "
    'if echo x > "$path/isobench-probe" 2>/dev/null; then echo "$path written"; '
    f'else echo "$path refused"; fi >> /{WRITE_MARKER}; done; '
    f'echo "${VALUE_ENV}" >> /{RAN_MARKER}; '
    "while read -r line; do :; done",
)

#: Declared deviations: check name, then runtime, then the requirement and what the
#: runtime does instead. Each becomes a strict xfail on that runtime.
DEVIATIONS: dict[str, dict[str, str]] = {
    "test_propagation_rootfs_slave": {
        "runc": "config-linux.md 1.0.2: rootfsPropagation 'sets the rootfs's mount "
        "propagation', so with slave the root mount receives mounts from the shared host "
        "mount of the rootfs; runc 1.1.5 applies the value to the mount namespace's / before "
        "it binds the rootfs, and makes the rootfs's shared mount private first, so the root "
        "mount has no master:N and a mount made on the host in the rootfs after start stays out",
        "crun": "config-linux.md 1.0.2: rootfsPropagation 'sets the rootfs's mount "
        "propagation', so with slave the root mount receives mounts from the shared host "
        "mount of the rootfs; crun 1.8.1 leaves the root mount private (no master:N), and a "
        "mount made on the host in the rootfs after start stays out",
        "runsc": "config-linux.md 1.0.2: rootfsPropagation 'sets the rootfs's mount "
        "propagation', so with slave the root mount receives mounts from the shared host "
        "mount of the rootfs; with runsc (release 20221219) the process that 'state' names is "
        "the sandbox, whose root mount is a private tmpfs (no master:N)",
    },
    "test_propagation_rootfs_shared": {
        "runc": "config-linux.md 1.0.2: rootfsPropagation 'sets the rootfs's mount "
        "propagation'; with shared, runc 1.1.5 leaves the root mount private (no shared:N), "
        "because it applies the value to the mount namespace's / before it binds the rootfs",
    },
    "test_propagation_rootfs_unbindable": {
        "runc": "config-linux.md 1.0.2: rootfsPropagation 'sets the rootfs's mount "
        "propagation'; with unbindable, runc 1.1.5 leaves the root mount private (no "
        "'unbindable' field), because it applies the value to the mount namespace's / "
        "before it binds the rootfs",
    },
    "test_propagation_bind_private": {
        "isobox": "config.md 1.0.2 takes a mount's options from mount(8), where rprivate makes "
        "the mount private; isobox leaves the bind mount a slave of its shared host source "
        "(master:N)",
        "runsc": "config.md 1.0.2 takes a mount's options from mount(8), where rprivate makes "
        "the mount private; with runsc (release 20221219) the process that 'state' names is "
        "the sandbox, whose mountinfo on the host has only its tmpfs root and no mount at "
        "/isobench-share",
    },
    "test_propagation_bind_slave": {
        "crun": "config.md 1.0.2 takes a mount's options from mount(8), where rslave makes the "
        "mount a slave of its shared source; crun 1.8.1 makes the bind mount private (no "
        "master:N)",
        "runsc": "config.md 1.0.2 takes a mount's options from mount(8), where rslave makes the "
        "mount a slave of its shared source; with runsc (release 20221219) the process that "
        "'state' names is the sandbox, whose mountinfo on the host has only its tmpfs root and "
        "no mount at /isobench-share",
    },
    "test_propagation_bind_shared": {
        "crun": "config.md 1.0.2 takes a mount's options from mount(8), where a bind of a "
        "shared mount with rshared is a peer of its source; crun 1.8.1 gives the bind mount a "
        "new peer group (shared:N with N not the host source's), so mounts do not propagate "
        "between it and the host",
    },
    "test_mount_options_applied": {
        "runsc": "config.md 1.0.2 takes a mount's options from mount(8); runsc (release "
        "20221219) shows the bind mount with ro and noexec but without nosuid and nodev in "
        "the container's /proc/self/mountinfo",
    },
}

ISOBOX_NO_ROOTFS_PROPAGATION = (
    "isobox rejects the config: 'config.json sets linux.rootfsPropagation, which isobox does "
    "not implement'"
)
RUNSC_PRIVATE_OR_SLAVE = (
    "runsc (release 20221219) rejects the config: 'root mount propagation option must "
    "specify private or slave'"
)

#: Checks a runtime cannot express: check name, then runtime, then its message (a skip).
CANNOT: dict[str, dict[str, str]] = {
    "test_propagation_rootfs_private": {"isobox": ISOBOX_NO_ROOTFS_PROPAGATION},
    "test_propagation_rootfs_slave": {"isobox": ISOBOX_NO_ROOTFS_PROPAGATION},
    "test_propagation_rootfs_shared": {
        "isobox": ISOBOX_NO_ROOTFS_PROPAGATION,
        "runsc": RUNSC_PRIVATE_OR_SLAVE,
    },
    "test_propagation_rootfs_unbindable": {
        "isobox": ISOBOX_NO_ROOTFS_PROPAGATION,
        "runsc": RUNSC_PRIVATE_OR_SLAVE,
    },
    "test_propagation_bind_shared": {
        "isobox": ISOBOX_NO_ROOTFS_PROPAGATION,
        "runsc": RUNSC_PRIVATE_OR_SLAVE,
    },
}


# -- mountinfo ------------------------------------------------------------------------


@dataclass(frozen=True)
class MountLine:
    """One line of a mountinfo file."""

    mount_point: str
    options: tuple[str, ...]
    optional: tuple[str, ...]
    fstype: str

    def tagged(self, tag: str) -> str | None:
        """Return the peer group of an optional field such as 'shared:12', or None."""
        for field in self.optional:
            name, _, group = field.partition(":")
            if name == tag:
                return group
        return None

    def describe(self) -> str:
        fields = " ".join(self.optional) or "no optional fields (private)"
        return f"{self.mount_point} ({self.fstype}, {','.join(self.options)}; {fields})"


def parse_mountinfo(text: str) -> list[MountLine]:
    found = []
    for line in text.splitlines():
        before, separator, after = line.partition(" - ")
        fields = before.split()
        if not separator or len(fields) < 6:
            continue
        found.append(
            MountLine(
                mount_point=fields[4].replace("\\040", " "),
                options=tuple(fields[5].split(",")),
                optional=tuple(fields[6:]),
                fstype=after.split()[0] if after.split() else "",
            )
        )
    return found


def mount_at(lines: list[MountLine], path: str) -> MountLine | None:
    """Return the topmost mount at ``path``: the last line that names it."""
    found = None
    for line in lines:
        if line.mount_point == path:
            found = line
    return found


def process_mounts(pid: int) -> list[MountLine]:
    """Return the mounts of a process's mount namespace, read on the host."""
    try:
        return parse_mountinfo(Path(f"/proc/{pid}/mountinfo").read_text())
    except OSError as exc:
        raise LifecycleError(f"cannot read /proc/{pid}/mountinfo: {exc.strerror}") from None


def host_mounts() -> list[MountLine]:
    return parse_mountinfo(Path("/proc/self/mountinfo").read_text())


def describe_all(lines: list[MountLine]) -> str:
    return "; ".join(line.describe() for line in lines[:40])


# -- mounts on the host ---------------------------------------------------------------


def journal_mount(lifecycle: Lifecycle, path: Path) -> None:
    """Record a mount at ``path`` in the run's journal before it is made, so that the
    fixture's clean-up (or 'isobench clean') unmounts it, with everything under it."""
    entry = lifecycle.harness.journal.record(
        "mount",
        str(path),
        ["umount", "--lazy", str(path)],
        runtime=lifecycle.runtime.name,
        absent=("not mounted", "no mount point", "No such file"),
    )
    lifecycle.entries.append(entry)


def host_mount(lifecycle: Lifecycle, target: Path, *arguments: str) -> None:
    """Journal, then make, a mount on the host at ``target``."""
    journal_mount(lifecycle, target)
    commands.run(["mount", *arguments, str(target)], timeout=MOUNT_TIMEOUT_S)


def shared_tmpfs(lifecycle: Lifecycle, target: Path) -> str:
    """Mount a shared tmpfs at ``target`` on the host and return its peer group."""
    target.mkdir(parents=True, exist_ok=True)
    host_mount(lifecycle, target, "-t", "tmpfs", "-o", "size=1m,mode=755", "isobench")
    commands.run(["mount", "--make-shared", str(target)], timeout=MOUNT_TIMEOUT_S)
    return host_peer_group(target)


def shared_self_bind(lifecycle: Lifecycle, target: Path) -> str:
    """Bind ``target`` onto itself on the host, make it shared and return its peer group."""
    host_mount(lifecycle, target, "--bind", str(target))
    commands.run(["mount", "--make-shared", str(target)], timeout=MOUNT_TIMEOUT_S)
    return host_peer_group(target)


def host_peer_group(target: Path) -> str:
    line = mount_at(host_mounts(), str(target))
    group = line.tagged("shared") if line is not None else None
    if group is None:
        raise LifecycleError(f"{target} is not a shared mount on the host after --make-shared")
    return group


def mount_on_host_after_start(lifecycle: Lifecycle, directory: Path) -> None:
    """Mount a tmpfs at ``directory`` on the host and write HOST_FILE into it."""
    host_mount(lifecycle, directory, "-t", "tmpfs", "-o", "size=1m", "isobench-host")
    (directory / HOST_FILE).write_text("host\n")


def nsenter_mount(pid: int, *arguments: str) -> commands.Completed:
    """Run the container's own mount(8) in the mount namespace of ``pid``, as host root."""
    argv = ["nsenter", "--target", str(pid), "--mount", "--", "/bin/mount", *arguments]
    return commands.run(argv, timeout=MOUNT_TIMEOUT_S, check=False)


def require_nsenter_mount(pid: int, *arguments: str) -> None:
    """Run nsenter_mount, and raise LifecycleError when the mount fails."""
    result = nsenter_mount(pid, *arguments)
    if result.returncode != 0:
        raise LifecycleError(
            f"'{result.command}' failed with exit status {result.returncode}: "
            f"{tail(result.stderr)!r}"
        )


# -- containers -----------------------------------------------------------------------


def edit_config(bundle: Path, edit: Callable[[dict[str, Any]], None]) -> None:
    config = read_config(bundle)
    edit(config)
    write_config(bundle, config)


def start_pid(lifecycle: Lifecycle, name: str, bundle: Path) -> int:
    """Create and start the container, wait for its program, and return its host PID."""
    lifecycle.create_required(name, bundle)
    lifecycle.require("start", name)
    wait_marker(bundle, RAN_MARKER)
    if marker_lines(bundle, RAN_MARKER) is None:
        raise LifecycleError(
            f"the program of {name} did not run after start: {tail(read_output(bundle))!r}"
        )
    pid = lifecycle.state(name).get("pid")
    if not isinstance(pid, int) or pid <= 0:
        raise LifecycleError(f"the state of {name} has no PID: {pid!r}")
    return pid


def seen_inside(lifecycle: Lifecycle, name: str, path: str) -> bool:
    """Return whether ``path`` exists in the container, tested by a process that the
    runtime's 'exec' starts there (for runsc, /proc/PID/root is the sandbox's, not the
    container's)."""
    test = f'if [ -e "{path}" ]; then echo present; else echo absent; fi'
    result = lifecycle.require("exec", name, "/bin/sh", "-c", test)
    answer = result.stdout.strip()
    if answer not in ("present", "absent"):
        raise LifecycleError(f"'{result.command}' printed {answer!r}, not present or absent")
    return answer == "present"


@dataclass
class Propagation:
    """What a check observed of one mount of a container."""

    pid: int
    #: The host's peer group of the mount's source, and the mount in the container.
    host_group: str
    line: MountLine | None
    #: Whether a mount made on the host after start is visible in the container.
    host_mount_inside: bool
    #: All the container's mounts, for the messages.
    mounts: list[MountLine]

    def describe(self) -> str:
        if self.line is None:
            return f"no such mount in /proc/{self.pid}/mountinfo: {describe_all(self.mounts)}"
        return f"{self.line.describe()}, host peer group {self.host_group}"


def rootfs_propagation(lifecycle: Lifecycle, value: str) -> tuple[Path, Propagation]:
    """Start a container with ``linux.rootfsPropagation`` set to ``value``, whose rootfs
    is a shared mount on the host, and observe its root mount.

    NOTE: runc 1.1.5 gives the root mount the propagation of the rootfs's host mount,
    made private when it is shared, whatever the value. Its pass of the private check
    depends on this shared setup, and its control runs on crun.
    """
    name, bundle = lifecycle.bundle(lambda config: config["linux"].update(rootfsPropagation=value))
    rootfs = bundle / "rootfs"
    for directory in (HOST_SUBMOUNT, INSIDE_SUBMOUNT, BIND_TARGET):
        (rootfs / directory).mkdir()
    host_group = shared_self_bind(lifecycle, rootfs)

    pid = start_pid(lifecycle, name, bundle)
    mounts = process_mounts(pid)
    mount_on_host_after_start(lifecycle, rootfs / HOST_SUBMOUNT)
    visible = seen_inside(lifecycle, name, f"/{HOST_SUBMOUNT}/{HOST_FILE}")
    return bundle, Propagation(pid, host_group, mount_at(mounts, "/"), visible, mounts)


def bind_propagation(
    lifecycle: Lifecycle, option: str, rootfs_value: str | None = None
) -> tuple[Path, Propagation]:
    """Start a container with a bind mount of a shared host tmpfs at SHARE_DESTINATION,
    with the propagation ``option``, and observe that mount."""
    name, bundle = lifecycle.bundle()
    share = bundle / "share"
    host_group = shared_tmpfs(lifecycle, share)
    for directory in (HOST_SUBMOUNT, INSIDE_SUBMOUNT):
        (share / directory).mkdir()
    bind = {"destination": SHARE_DESTINATION, "type": "bind", "source": str(share)}

    def add_bind(config: dict[str, Any]) -> None:
        config["mounts"].append({**bind, "options": ["rbind", option]})
        if rootfs_value is not None:
            config["linux"]["rootfsPropagation"] = rootfs_value

    edit_config(bundle, add_bind)
    pid = start_pid(lifecycle, name, bundle)
    mounts = process_mounts(pid)
    mount_on_host_after_start(lifecycle, share / HOST_SUBMOUNT)
    visible = seen_inside(lifecycle, name, f"{SHARE_DESTINATION}/{HOST_SUBMOUNT}/{HOST_FILE}")
    line = mount_at(mounts, SHARE_DESTINATION)
    return bundle, Propagation(pid, host_group, line, visible, mounts)


def assert_mount_found(seen: Propagation, subject: str) -> MountLine:
    assert seen.line is not None, f"{subject}: expected a mount, observed {seen.describe()}"
    return seen.line


# -- rootfsPropagation ----------------------------------------------------------------


def test_propagation_rootfs_private(lifecycle: Lifecycle) -> None:
    """rootfsPropagation private: the root mount has no peer and no master, and a mount
    made on the host in the rootfs after start stays out of the container."""
    _, seen = rootfs_propagation(lifecycle, "private")

    root = assert_mount_found(seen, "root mount for rootfsPropagation private")
    assert root.tagged("shared") is None, (
        f"root mount for rootfsPropagation private: expected no shared:N, observed "
        f"{seen.describe()}"
    )
    assert root.tagged("master") is None, (
        f"root mount for rootfsPropagation private: expected no master:N, observed "
        f"{seen.describe()}"
    )
    assert not seen.host_mount_inside, (
        f"host mount at rootfs/{HOST_SUBMOUNT} after start: expected invisible in the "
        f"container (private), observed /{HOST_SUBMOUNT}/{HOST_FILE} in it; {seen.describe()}"
    )


def test_propagation_rootfs_slave(lifecycle: Lifecycle) -> None:
    """rootfsPropagation slave: the root mount is a slave of the host's rootfs mount, and a
    mount made on the host in the rootfs after start appears in the container."""
    _, seen = rootfs_propagation(lifecycle, "slave")

    root = assert_mount_found(seen, "root mount for rootfsPropagation slave")
    assert root.tagged("master") == seen.host_group, (
        f"root mount for rootfsPropagation slave: expected master:{seen.host_group}, observed "
        f"{seen.describe()}"
    )
    assert root.tagged("shared") is None, (
        f"root mount for rootfsPropagation slave: expected no shared:N, observed {seen.describe()}"
    )
    assert seen.host_mount_inside, (
        f"host mount at rootfs/{HOST_SUBMOUNT} after start: expected visible in the container "
        f"(slave), observed no /{HOST_SUBMOUNT}/{HOST_FILE}; {seen.describe()}"
    )


def test_propagation_rootfs_shared(lifecycle: Lifecycle) -> None:
    """rootfsPropagation shared: the root mount is shared, so a bind of it made in the
    container is its peer and receives a mount made in the container afterwards."""
    bundle, seen = rootfs_propagation(lifecycle, "shared")

    root = assert_mount_found(seen, "root mount for rootfsPropagation shared")
    assert root.tagged("shared") is not None, (
        f"root mount for rootfsPropagation shared: expected shared:N, observed {seen.describe()}"
    )

    # The root may be a peer of the rootfs mount on the host, so that both mounts made
    # in the container reach the host: journal them first.
    rootfs = bundle / "rootfs"
    journal_mount(lifecycle, rootfs / BIND_TARGET)
    journal_mount(lifecycle, rootfs / INSIDE_SUBMOUNT)
    require_nsenter_mount(seen.pid, "--bind", "/", f"/{BIND_TARGET}")
    require_nsenter_mount(
        seen.pid, "-t", "tmpfs", "-o", "size=1m", "isobench", f"/{INSIDE_SUBMOUNT}"
    )
    copy = f"/{BIND_TARGET}/{INSIDE_SUBMOUNT}"
    received = mount_at(process_mounts(seen.pid), copy)
    assert received is not None, (
        f"mount at /{INSIDE_SUBMOUNT} made in the container after 'mount --bind / "
        f"/{BIND_TARGET}': expected its copy at {copy} (the bind is a peer of the shared "
        f"root), observed none; {seen.describe()}"
    )


def test_propagation_rootfs_unbindable(lifecycle: Lifecycle) -> None:
    """rootfsPropagation unbindable: the root mount is unbindable, and a bind of it fails."""
    _, seen = rootfs_propagation(lifecycle, "unbindable")

    root = assert_mount_found(seen, "root mount for rootfsPropagation unbindable")
    assert "unbindable" in root.optional, (
        f"root mount for rootfsPropagation unbindable: expected the field 'unbindable', "
        f"observed {seen.describe()}"
    )
    bind = nsenter_mount(seen.pid, "--bind", "/", f"/{BIND_TARGET}")
    assert bind.returncode != 0, (
        f"'mount --bind / /{BIND_TARGET}' in the container: expected an error (the root is "
        f"unbindable), observed exit status 0"
    )


# -- propagation of a bind mount ------------------------------------------------------


def test_propagation_bind_private(lifecycle: Lifecycle) -> None:
    """A bind mount with rprivate of a shared host mount is private: a mount made on the
    host under its source after start stays out of the container."""
    _, seen = bind_propagation(lifecycle, "rprivate")

    line = assert_mount_found(seen, f"bind mount at {SHARE_DESTINATION} with rprivate")
    assert not line.optional, (
        f"bind mount at {SHARE_DESTINATION} with rprivate: expected no optional fields, "
        f"observed {seen.describe()}"
    )
    assert not seen.host_mount_inside, (
        f"host mount under the bind source after start: expected invisible in the container "
        f"(rprivate), observed {SHARE_DESTINATION}/{HOST_SUBMOUNT}/{HOST_FILE}"
    )


def test_propagation_bind_slave(lifecycle: Lifecycle) -> None:
    """A bind mount with rslave of a shared host mount is its slave: a mount made on the
    host under its source after start appears in the container."""
    _, seen = bind_propagation(lifecycle, "rslave")

    line = assert_mount_found(seen, f"bind mount at {SHARE_DESTINATION} with rslave")
    assert line.tagged("master") == seen.host_group, (
        f"bind mount at {SHARE_DESTINATION} with rslave: expected master:{seen.host_group}, "
        f"observed {seen.describe()}"
    )
    assert line.tagged("shared") is None, (
        f"bind mount at {SHARE_DESTINATION} with rslave: expected no shared:N, observed "
        f"{seen.describe()}"
    )
    assert seen.host_mount_inside, (
        f"host mount under the bind source after start: expected visible in the container "
        f"(rslave), observed no {SHARE_DESTINATION}/{HOST_SUBMOUNT}/{HOST_FILE}"
    )


def test_propagation_bind_shared(lifecycle: Lifecycle) -> None:
    """A bind mount with rshared, in a container whose rootfsPropagation is shared, is a
    peer of its host source: mounts made on either side after start appear on the other."""
    bundle, seen = bind_propagation(lifecycle, "rshared", rootfs_value="shared")

    line = assert_mount_found(seen, f"bind mount at {SHARE_DESTINATION} with rshared")
    assert line.tagged("shared") == seen.host_group, (
        f"bind mount at {SHARE_DESTINATION} with rshared: expected shared:{seen.host_group}, "
        f"the host source's peer group, observed {seen.describe()}"
    )
    assert seen.host_mount_inside, (
        f"host mount under the bind source after start: expected visible in the container "
        f"(rshared), observed no {SHARE_DESTINATION}/{HOST_SUBMOUNT}/{HOST_FILE}"
    )

    # A mount that propagates from the container reaches the host: journal it first.
    on_host = bundle / "share" / INSIDE_SUBMOUNT
    journal_mount(lifecycle, on_host)
    inside = f"{SHARE_DESTINATION}/{INSIDE_SUBMOUNT}"
    require_nsenter_mount(seen.pid, "-t", "tmpfs", "-o", "size=1m", "isobench-inside", inside)
    host_line = mount_at(host_mounts(), str(on_host))
    assert host_line is not None, (
        f"mount made in the container at {inside}: expected on the host at {on_host}, observed none"
    )


# -- mount options --------------------------------------------------------------------


def test_mount_options_applied(lifecycle: Lifecycle) -> None:
    """A bind mount and a tmpfs mount with ro, nosuid, nodev and noexec have those options in
    the container's own /proc/self/mountinfo, and a write into either is refused."""
    name, bundle = lifecycle.bundle(program=OPTIONS_PROGRAM)
    source = bundle / "options-source"
    source.mkdir()
    bind = {"destination": OPTIONS_BIND, "type": "bind", "source": str(source)}
    tmpfs = {"destination": OPTIONS_TMPFS, "type": "tmpfs", "source": "tmpfs"}

    def add_mounts(config: dict[str, Any]) -> None:
        config["mounts"].append({**bind, "options": ["rbind", *REQUIRED_OPTIONS]})
        config["mounts"].append({**tmpfs, "options": [*REQUIRED_OPTIONS, "size=1m"]})

    edit_config(bundle, add_mounts)
    start_pid(lifecycle, name, bundle)

    inside = parse_mountinfo((bundle / "rootfs" / MOUNTINFO_MARKER).read_text())
    writes = marker_lines(bundle, WRITE_MARKER) or []
    for destination in (OPTIONS_BIND, OPTIONS_TMPFS):
        line = mount_at(inside, destination)
        assert line is not None, (
            f"mount at {destination}: expected in the container's /proc/self/mountinfo, "
            f"observed {describe_all(inside)}"
        )
        missing = [option for option in REQUIRED_OPTIONS if option not in line.options]
        assert not missing, (
            f"options of {destination}: expected {', '.join(REQUIRED_OPTIONS)}, observed "
            f"{','.join(line.options)} (missing {', '.join(missing)})"
        )
        assert f"{destination} refused" in writes, (
            f"write into {destination} (ro): expected refused, observed {writes}"
        )
    written = source / "isobench-probe"
    assert not written.exists(), (
        f"bind source {source} after the write in the container: expected no file, observed "
        f"{written.name}"
    )


# -- cgroupsPath ----------------------------------------------------------------------


def memberships(pid: int) -> dict[str, str]:
    """Return the cgroup of a process in each v1 hierarchy, by controller list, read on
    the host from /proc/PID/cgroup. The unified hierarchy's line (ID 0) is left out,
    because a runtime on a hybrid host may leave it (crun's commands run without it)."""
    try:
        text = Path(f"/proc/{pid}/cgroup").read_text()
    except OSError as exc:
        raise LifecycleError(f"cannot read /proc/{pid}/cgroup: {exc.strerror}") from None
    found = {}
    for line in text.splitlines():
        number, controllers, path = line.split(":", 2)
        if number != "0":
            found[controllers] = path
    if not found:
        raise LifecycleError(f"/proc/{pid}/cgroup names no v1 hierarchy: {text!r}")
    return found


def v1_directories(paths: dict[str, str]) -> list[Path]:
    """Return the host directory of each v1 membership, by the hierarchy's controllers."""
    found = []
    mountinfo = Path("/proc/self/mountinfo").read_text()
    for hierarchy in cgroups.hierarchies(mountinfo):
        if hierarchy.version != 1:
            continue
        for controllers, path in paths.items():
            if set(controllers.split(",")) == hierarchy.controllers:
                found.append(hierarchy.mount_point / path.lstrip("/"))
    return found


def journal_cgroup_path(lifecycle: Lifecycle, path: str) -> None:
    """Record the cgroup ``path`` (from each hierarchy's root) in the journal, before a
    runtime makes it. The removal deletes it with everything under it."""
    journaled = journal_cgroups(lifecycle.harness.ctx, lifecycle.runtime.name, path)
    lifecycle.entries.extend(entry for _, entry in journaled)
    # crun, run without the unified hierarchy, makes its directories beneath that mount.
    hidden = lifecycle.runtime.journal_hidden_cgroup(lifecycle.harness.ctx, path)
    if hidden is not None:
        lifecycle.entries.append(hidden)


def own_cgroup_paths() -> set[str]:
    """Return the cgroups of this process, in which the runtimes it starts run too."""
    text = Path("/proc/self/cgroup").read_text()
    return {line.split(":", 2)[2] for line in text.splitlines() if line.count(":") >= 2}


def delete_and_observe(lifecycle: Lifecycle, name: str, bundle: Path) -> list[str]:
    """Stop and delete the container, and return the cgroup directories that delete left."""
    directories = v1_directories(memberships(lifecycle.state(name)["pid"]))
    lifecycle.stop_required(name, bundle)
    lifecycle.require("delete", name)
    return [str(directory) for directory in directories if directory.exists()]


def test_cgroups_path_absolute(lifecycle: Lifecycle) -> None:
    """An absolute cgroupsPath puts the process in exactly that cgroup of every v1
    hierarchy, from the hierarchy's root, and delete removes the directories."""
    name, bundle = lifecycle.bundle()
    top = f"/{name}-absolute"
    path = f"{top}/inner"
    journal_cgroup_path(lifecycle, top)
    edit_config(bundle, lambda config: config["linux"].update(cgroupsPath=path))

    pid = start_pid(lifecycle, name, bundle)
    placed = memberships(pid)
    directories = v1_directories(placed)
    wrong = {controllers: seen for controllers, seen in placed.items() if seen != path}
    assert not wrong, (
        f"cgroups of the container's process for cgroupsPath {path}: expected {path} in "
        f"every v1 hierarchy, observed {wrong}"
    )
    absent = [str(directory) for directory in directories if not directory.is_dir()]
    assert directories, f"cgroup directories for {placed}: expected some, observed none"
    assert not absent, f"cgroup directories for {path}: expected to exist, observed absent {absent}"

    left = delete_and_observe(lifecycle, name, bundle)
    assert not left, f"cgroup directories after delete: expected none, observed {left}"


def test_cgroups_path_relative(lifecycle: Lifecycle) -> None:
    """A relative cgroupsPath is placed under a runtime-determined location, and two
    containers with the same value, one after the other, get the same place. Delete
    removes the directories.

    config-linux.md 1.0.2 lets the runtime choose where a relative path starts, and
    requires that it attach to the same place given the same value. The log and the
    message of a failure show where the runtime placed it.
    """
    first_name, first_bundle = lifecycle.bundle()
    relative = f"{first_name}-relative"
    journal_cgroup_path(lifecycle, f"/{relative}")
    for parent in sorted(own_cgroup_paths()):
        journal_cgroup_path(lifecycle, f"{parent.rstrip('/')}/{relative}")
    second_name, second_bundle = lifecycle.bundle()

    placements = []
    for name, bundle in ((first_name, first_bundle), (second_name, second_bundle)):
        edit_config(bundle, lambda config: config["linux"].update(cgroupsPath=relative))
        pid = start_pid(lifecycle, name, bundle)
        placed = memberships(pid)
        log.info("%s placed the relative cgroupsPath %s at %s", name, relative, placed)
        wrong = {c: seen for c, seen in placed.items() if not seen.endswith(f"/{relative}")}
        assert not wrong, (
            f"cgroups of the container's process for cgroupsPath {relative}: expected a path "
            f"ending in /{relative} in every v1 hierarchy, observed {wrong}"
        )
        absent = [str(d) for d in v1_directories(placed) if not d.is_dir()]
        assert not absent, f"cgroup directories for {placed}: expected to exist, observed {absent}"
        left = delete_and_observe(lifecycle, name, bundle)
        assert not left, f"cgroup directories after delete: expected none, observed {left}"
        placements.append(placed)

    assert placements[0] == placements[1], (
        f"cgroups for the same cgroupsPath {relative} in two containers: expected the same "
        f"place, observed {placements[0]} and then {placements[1]}"
    )
