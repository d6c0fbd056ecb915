"""systemd-nspawn as a runtime row, on a copy of the probe rootfs.

This is an adapter in Python, not an argv template of a runtimes file,
because its limits need a cgroup made before the start. Without systemd as
PID 1, nspawn (``--keep-unit --register=no``) sets no limits and stays in the
cgroups of the process that started it. So isobench makes a cgroup of its own per
container in every mounted hierarchy, writes the requested limits there,
and starts nspawn through a launcher that moves itself into those cgroups
and then replaces itself with nspawn::

    python -m isobench.runtimes.nspawn enter CGROUP_DIR... -- systemd-nspawn ...

Without ``--as-pid2`` the command is PID 1 of the container, as with the
engines' default. A request with ``init: true`` gets ``--as-pid2``: a stub
init of nspawn's is then PID 1, and the command PID 2. nspawn's default
network is the host's.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from isobench import commands
from isobench.errors import HarnessError, IsobenchError
from isobench.model import CAPABILITIES, Request, capability_name
from isobench.probe import cgroups, host
from isobench.runtimes import sandbox
from isobench.runtimes.base import (
    Adapter,
    Availability,
    Context,
    Launched,
    journal_cgroups,
    popen,
    unmanaged_network_reason,
)

NSPAWN = "systemd-nspawn"
INSTALL_HINT = "Install it with 'apt-get install systemd-container'."

#: The flags of every container: no machined and no unit (there is no systemd to ask),
#: stdio passed through, and no status lines of nspawn's own.
BASE_FLAGS = ("--quiet", "--register=no", "--keep-unit", "--pipe")

#: The state directory of nspawn 252's running containers.
NSPAWN_STATE = Path("/run/systemd/nspawn")

#: Directories of the root that nspawn needs and does not make in a read-only root.
NSPAWN_DIRECTORIES = ("usr", "run", "var")

#: Exit status and stderr prefix of the launcher when it fails before nspawn runs.
LAUNCHER_FAILURE = 125
LAUNCHER_PREFIX = "isobench nspawn launcher: "

#: Messages that nspawn 252 prints when it fails before or while starting the command.
#: It exits with status 1 then, as a command may too, so a match also needs one of these.
_NSPAWN_FAILURE = re.compile(
    r"^(Failed to |Child died too early|execv\(|systemd-nspawn: |Need to be root|"
    r"Invalid |Timeout |Directory .* doesn't look like)"
)

_UNSHARED = {
    "pid": "PID",
    "ipc": "IPC",
    "uts": "UTS",
}


def _path_argument(path: str) -> str:
    """Escape a path for --bind and --tmpfs, which split their value at colons."""
    return path.replace("\\", "\\\\").replace(":", "\\:")


def build_flags(request: Request, env: dict[str, str]) -> list[str]:
    """Return nspawn's options for ``request`` (without -D, --machine and the command)."""
    flags: list[str] = []
    if request.network == "none":
        flags.append("--private-network")
    if request.hostname is not None:
        flags.append(f"--hostname={request.hostname}")
    if request.init:
        flags.append("--as-pid2")
    if request.workdir is not None:
        flags.append(f"--chdir={request.workdir}")
    if request.read_only:
        flags.append("--read-only")
    if request.userns == "private":
        flags.append(f"--private-users={sandbox.USERNS_HOST_ID}:{sandbox.USERNS_SIZE}")
    for key, value in [*request.env, *env.items()]:
        flags.append(f"--setenv={key}={value}")

    # nspawn removes what --drop-capability names even where --capability names it too;
    # the engines let an add win, so an added capability is not dropped.
    adds = {capability_name(c) for c in request.cap_add}
    drops = {capability_name(c) for c in request.cap_drop}
    if "CAP_ALL" in adds:
        flags.append("--capability=all")
    elif "CAP_ALL" in drops:
        flags += [f"--capability={c}" for c in sorted(adds)]
        if adds:
            flags += [f"--drop-capability={c}" for c in CAPABILITIES if c not in adds]
        else:
            flags.append("--drop-capability=all")
    else:
        flags += [f"--capability={c}" for c in sorted(adds)]
        flags += [f"--drop-capability={c}" for c in sorted(drops - adds)]
    if request.no_new_privs is not None:
        flags.append(f"--no-new-privileges={'yes' if request.no_new_privs else 'no'}")

    for mount in request.mounts:
        option = "--bind-ro" if mount.read_only else "--bind"
        flags.append(f"{option}={_path_argument(mount.source)}:{_path_argument(mount.target)}")
    for tmpfs in request.tmpfs:
        flags.append(f"--tmpfs={_path_argument(tmpfs.target)}:nosuid,nodev,size={int(tmpfs.size)}")
    for path in request.devices:
        flags.append(f"--bind={_path_argument(path)}")
    for limit in request.ulimits:
        flags.append(f"--rlimit=RLIMIT_{limit.name.upper()}={limit.soft}:{limit.hard}")
    return flags


def nspawn_environment(request: Request) -> dict[str, str] | None:
    """Return the environment of the nspawn process, or None to inherit isobench's."""
    if request.seccomp == "unconfined":
        # systemd's tools skip every seccomp filter with SYSTEMD_SECCOMP=0 (docs/ENVIRONMENT.md).
        return {**os.environ, "SYSTEMD_SECCOMP": "0"}
    return None


class NspawnAdapter(Adapter):
    """Runs each container with systemd-nspawn in the foreground, in cgroups of isobench's."""

    name = "systemd-nspawn"
    family = "sandbox"

    def __init__(self) -> None:
        self._availability: Availability | None = None

    # -- discovery -------------------------------------------------------

    def availability(self) -> Availability:
        if self._availability is None:
            self._availability = self._check_availability()
        return self._availability

    def _check_availability(self) -> Availability:
        binary = shutil.which(NSPAWN)
        if binary is None:
            return Availability(
                False, reason=f"'{NSPAWN}' not found", hint=INSTALL_HINT, installed=False
            )
        try:
            lines = commands.run([binary, "--version"], timeout=30).stdout.strip().splitlines()
        except IsobenchError as exc:
            return Availability(False, reason=str(exc), hint=INSTALL_HINT)
        version = lines[0] if lines else "unknown"
        problem = _smoke_test(binary)
        if problem is not None:
            return Availability(
                False,
                version=version,
                reason=f"systemd-nspawn is installed but cannot start a container here: {problem}",
                hint="Run isobench as root on a host with namespaces and cgroups enabled.",
            )
        return Availability(True, version=version, details={"binary": binary})

    def unsupported(self, request: Request) -> str | None:
        network = unmanaged_network_reason("systemd-nspawn", request)
        if network is not None:
            return network
        if request.user is not None:
            return (
                "systemd-nspawn 252 looks --user up by running getent inside the container, "
                "which the probe image lacks, and takes no numeric uid:gid"
            )
        for field, namespace in _UNSHARED.items():
            if getattr(request, field) == "host":
                return (
                    f"systemd-nspawn always makes its own {namespace} namespace and has no "
                    "option to share the host's"
                )
        if request.cgroupns == "host":
            return (
                "systemd-nspawn makes a cgroup namespace of its own wherever the kernel has "
                "them, and has no option for the host's"
            )
        if request.privileged:
            return (
                "systemd-nspawn has no way to lift its read-only /proc and /sys paths, so it "
                "cannot run a privileged container (--capability=all gives the capabilities "
                "only)"
            )
        if request.masked_paths == "unconfined":
            return "systemd-nspawn has no option to lift its read-only /proc and /sys paths"
        for path in request.devices:
            if not Path(path).exists():
                return f"the device {path} does not exist on the host"
        return sandbox.limits_problem(request, sandbox.controller_versions())

    # -- containers ------------------------------------------------------

    def launch(
        self, ctx: Context, request: Request, argv: Sequence[str], env: dict[str, str]
    ) -> Launched:
        name = ctx.container_name(self.name)
        rootfs, bundle_entry = sandbox.copy_rootfs(ctx, request, self.name, name)
        entries = [bundle_entry]
        # nspawn refuses a root without /usr ("doesn't look like it has an OS tree") and
        # mounts tmpfs on /run and /var's directories, which it cannot make in a read-only
        # root: the copy gets them empty where the image lacks them.
        for directory in NSPAWN_DIRECTORIES:
            (rootfs / directory).mkdir(exist_ok=True)
        sandbox.make_targets(rootfs, request)
        device = None
        if request.device_write_bps is not None or request.device_read_bps is not None:
            device = self.storage_device(ctx)
        settings = sandbox.cgroup_settings(request, sandbox.controller_versions(), device)

        # While it runs, nspawn keeps a mount propagation directory and a lock named by the
        # root directory's device and inode. A killed nspawn leaves both behind.
        propagate = NSPAWN_STATE / "propagate" / name
        entries.append(
            ctx.journal.record(
                "directory", str(propagate), ["rm", "-rf", str(propagate)], runtime=self.name
            )
        )
        status = rootfs.stat()
        lock = NSPAWN_STATE / "locks" / f"inode-{status.st_dev}:{status.st_ino}"
        entries.append(
            ctx.journal.record("file", str(lock), ["rm", "-f", str(lock)], runtime=self.name)
        )
        journaled = journal_cgroups(ctx, self.name, f"/{name}")
        entries += [entry for _, entry in journaled]
        directories = [directory for directory, _ in journaled]
        # Removed before the cgroups: it ends what is left in them after a crash.
        kill = [sys.executable, "-m", "isobench.runtimes.nspawn", "kill", *map(str, directories)]
        entries.append(ctx.journal.record("container", name, kill, runtime=self.name))
        make_cgroups(name, settings)

        command = [sys.executable, "-m", "isobench.runtimes.nspawn", "enter"]
        command += [*map(str, directories), "--", NSPAWN, *BASE_FLAGS]
        command += [*build_flags(request, env), "-D", str(rootfs), f"--machine={name}"]
        command += ["--", *argv]
        process = popen(command, env=nspawn_environment(request))
        written = [f"# {s.file} = {s.value} written in /{name}" for s in settings]
        return Launched(
            name=name,
            process=process,
            argv=command,
            entries=entries,
            commands=written,
            state={"init": "1" if request.init else ""},
        )

    def _first_pid(self, launched: Launched) -> int | None:
        """Return the host PID of the container's PID 1: the child of nspawn in another
        PID namespace."""
        nspawn = launched.process.pid
        try:
            own = os.readlink(f"/proc/{nspawn}/ns/pid")
        except OSError:
            return None
        for child in sandbox.children(nspawn):
            try:
                if os.readlink(f"/proc/{child}/ns/pid") != own:
                    return child
            except OSError:
                continue
        return None

    def host_pid(self, ctx: Context, launched: Launched) -> int | None:
        """Return the command's process: PID 1, or with --as-pid2 the child of nspawn's stub."""
        first = self._first_pid(launched)
        if first is None or not launched.state.get("init"):
            return first
        found = sandbox.children(first)
        return found[0] if found else first

    def stop(self, ctx: Context, launched: Launched, grace_s: float) -> None:
        # SIGTERM to nspawn itself would make it send its --kill-signal (SIGKILL by
        # default) to PID 1, so the signals go to PID 1 directly, as an engine's stop does.
        first = self._first_pid(launched)
        if first is None:
            raise HarnessError(f"the container {launched.name} has no PID 1 under nspawn")
        sandbox.signal_then_kill(launched, first, grace_s)

    def runtime_failure(self, exit_code: int, stderr: str) -> str | None:
        lines = stderr.splitlines()
        if exit_code == LAUNCHER_FAILURE:
            for line in lines:
                if line.startswith(LAUNCHER_PREFIX):
                    return line.removeprefix(LAUNCHER_PREFIX)
        if exit_code != 1:
            return None
        # NOTE: a command that exits 1 after printing such a line is taken for nspawn's
        # failure too, because nspawn's messages and the command's share one stderr.
        found = [line for line in lines if _NSPAWN_FAILURE.match(line)]
        if not found:
            return None
        return f"systemd-nspawn failed to run the container: {'; '.join(found[:3])}"

    def storage_device(self, ctx: Context) -> tuple[str, int, int]:
        try:
            return host.block_device(ctx.bundle_root)
        except OSError as exc:
            where = f"the rootfs copies of systemd-nspawn are in {ctx.bundle_root}"
            raise HarnessError(f"{where}: {exc}") from None


def make_cgroups(name: str, settings: Sequence[sandbox.CgroupSetting]) -> None:
    """Make the cgroup ``/name`` in every mounted hierarchy and write the limits there."""
    mountinfo = Path("/proc/self/mountinfo").read_text()
    found = cgroups.hierarchies(mountinfo)
    for hierarchy in found:
        directory = hierarchy.mount_point / name
        directory.mkdir()
        if hierarchy.version == 1 and "cpuset" in hierarchy.controllers:
            # A new v1 cpuset is empty, and a cgroup without CPUs or memory nodes takes no task.
            for file in ("cpuset.cpus", "cpuset.mems"):
                value = (hierarchy.mount_point / file).read_text().strip()
                (directory / file).write_text(value)
    for setting in settings:
        for hierarchy in found:
            has_controller = (
                setting.controller in hierarchy.controllers
                if setting.version == 1
                else hierarchy.version == 2
            )
            if hierarchy.version != setting.version or not has_controller:
                continue
            directory = hierarchy.mount_point / name
            if setting.version == 2:
                _enable_controller(hierarchy.mount_point, setting.controller)
            try:
                (directory / setting.file).write_text(setting.value)
            except OSError as exc:
                raise HarnessError(
                    f"writing {setting.value!r} to {directory / setting.file} failed: "
                    f"{exc.strerror}"
                ) from None
            break


def _enable_controller(root: Path, controller: str) -> None:
    """Enable a v2 controller for the children of the root cgroup, where it is not yet."""
    control = root / "cgroup.subtree_control"
    if controller not in control.read_text().split():
        control.write_text(f"+{controller}")


def _smoke_test(binary: str) -> str | None:
    """Run /usr/bin/true in a container whose root contains only the host's /usr, read-only.

    Returns nspawn's message when that fails, or None.
    """
    with tempfile.TemporaryDirectory(prefix="isobench-nspawn-") as temporary:
        rootfs = Path(temporary)
        (rootfs / "usr").mkdir()
        for link in ("bin", "lib", "lib64", "sbin"):
            (rootfs / link).symlink_to(f"usr/{link}")
        command = [binary, *BASE_FLAGS, "-D", str(rootfs), "--bind-ro=/usr", "--private-network"]
        command += [f"--machine=isobench-availability-{os.getpid()}", "--", "/usr/bin/true"]
        try:
            result = commands.run(command, timeout=30, check=False)
        except IsobenchError as exc:
            return str(exc)
    if result.returncode == 0:
        return None
    found = [line for line in result.stderr.splitlines() if _NSPAWN_FAILURE.match(line)]
    return "; ".join(found[:3]) or result.stderr.strip() or f"exit status {result.returncode}"


# -- the launcher ------------------------------------------------------------


def _enter(arguments: list[str]) -> int:
    """Move this process into each cgroup directory before ``--``, then exec the rest."""
    if "--" not in arguments or arguments.index("--") == len(arguments) - 1:
        print(f"{LAUNCHER_PREFIX}usage: enter CGROUP_DIR... -- COMMAND...", file=sys.stderr)
        return LAUNCHER_FAILURE
    split = arguments.index("--")
    directories, command = arguments[:split], arguments[split + 1 :]
    for directory in directories:
        try:
            Path(directory, "cgroup.procs").write_text(f"{os.getpid()}\n")
        except OSError as exc:
            print(
                f"{LAUNCHER_PREFIX}joining the cgroup {directory} failed: {exc.strerror}",
                file=sys.stderr,
            )
            return LAUNCHER_FAILURE
    try:
        os.execvp(command[0], command)
    except OSError as exc:
        print(f"{LAUNCHER_PREFIX}starting {command[0]} failed: {exc.strerror}", file=sys.stderr)
    return LAUNCHER_FAILURE


def _kill(directories: list[str]) -> int:
    """Send SIGKILL to every process in the cgroup directories and the cgroups under them."""
    for directory in directories:
        for procs in sorted(Path(directory).rglob("cgroup.procs")):
            try:
                pids = procs.read_text().split()
            except OSError:
                continue
            for pid in pids:
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except ProcessLookupError:
                    continue
    return 0


def main(arguments: list[str] | None = None) -> int:
    args = sys.argv[1:] if arguments is None else arguments
    if args[:1] == ["enter"]:
        return _enter(args[1:])
    if args[:1] == ["kill"]:
        return _kill(args[1:])
    print(
        f"{LAUNCHER_PREFIX}usage: enter CGROUP_DIR... -- COMMAND... | kill CGROUP_DIR...",
        file=sys.stderr,
    )
    return LAUNCHER_FAILURE


if __name__ == "__main__":
    sys.exit(main())
