"""LXC as a runtime row: ``lxc-execute`` on a copy of the probe rootfs.

This is an adapter in Python, not an argv template of a runtimes file,
because LXC takes a container's settings from a config file. Each container
gets a directory under ``ctx.bundle_root`` with a copy of the rootfs and a
generated config. ``lxc-execute -n NAME -P DIR -f CONFIG -- ARGV`` runs the
command in the foreground with pipes.

lxc-execute starts ``lxc-init`` as PID 1 and the command as its child (PID
2). lxc-init forwards SIGTERM to the command and sends SIGKILL to every
process in the container one second later (LXC 5.0), whatever grace period
the caller wanted.

The security baseline is the one Debian's ``/usr/share/lxc/config/common.conf``
gives every container made from a template: five capabilities dropped, a
device allowlist and the ``common.seccomp`` profile. Mounts are what an
engine user expects: /proc (with /proc/sys read-only), /sys read-only and the
cgroup hierarchies read-only.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

from isobench import commands
from isobench.errors import HarnessError, IsobenchError
from isobench.model import Request
from isobench.probe import host
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
from isobench.runtimes.oci import host_bounding_set

LXC_EXECUTE = "lxc-execute"
INSTALL_HINT = "Install it with 'apt-get install lxc'."

#: The capabilities that Debian's common.conf (lxc 5.0) drops.
DEFAULT_CAP_DROP = (
    "CAP_MAC_ADMIN",
    "CAP_MAC_OVERRIDE",
    "CAP_SYS_TIME",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
)

#: The device cgroup rules of Debian's common.conf (lxc 5.0): mknod of any node, and
#: read, write and mknod of null, zero, full, tty, console, ptmx, random,
#: urandom, the pty slaves and fuse.
DEFAULT_DEVICE_RULES = (
    "c *:* m",
    "b *:* m",
    "c 1:3 rwm",
    "c 1:5 rwm",
    "c 1:7 rwm",
    "c 5:0 rwm",
    "c 5:1 rwm",
    "c 5:2 rwm",
    "c 1:8 rwm",
    "c 1:9 rwm",
    "c 136:* rwm",
    "c 10:229 rwm",
)

SECCOMP_PROFILE = Path("/usr/share/lxc/config/common.seccomp")

#: The bridge that LXC's default network (a veth pair) attaches to, made by lxc-net.
BRIDGE = "lxcbr0"

#: lxc-execute prints its own errors as "lxc-execute: NAME: FILE: FUNCTION: LINE MESSAGE";
#: the last one of a failed start comes from main() in lxc_execute.c.
_MAIN_FAILURE = re.compile(r"^lxc-execute: .*lxc_execute\.c: main: \d+ (?P<message>.*)$")
_ERROR_LINE = re.compile(r"^lxc-execute: [^:]+: \S+: \S+: \d+ (?P<message>.*)$")

_DEFAULT = Request()


def _config_value(value: str, what: str) -> str:
    # A config line ends at a newline, and LXC strips blanks around a value.
    if "\n" in value or value != value.strip():
        raise HarnessError(
            f"the {what} {value!r} cannot be written to an LXC config file: it has a newline "
            "or leading or trailing blanks"
        )
    return value


def _fstab_field(path: str) -> str:
    """Escape a path for a field of an lxc.mount.entry line, which has the fstab format."""
    return (
        path.replace("\\", "\\134")
        .replace(" ", "\\040")
        .replace("\t", "\\011")
        .replace("\n", "\\012")
    )


def _cap_name(name: str) -> str:
    return name.removeprefix("CAP_").lower()


def _device_rule(path: str) -> str:
    info = os.stat(path)
    kind = "b" if (info.st_mode & 0o170000) == 0o060000 else "c"
    return f"{kind} {os.major(info.st_rdev)}:{os.minor(info.st_rdev)} rwm"


def build_config(
    request: Request,
    rootfs: Path,
    env: dict[str, str],
    *,
    versions: dict[str, int],
    device: tuple[str, int, int] | None = None,
    host_caps: Sequence[str] = (),
    seccomp_profile: Path | None = SECCOMP_PROFILE,
    bridge: str | None = None,
) -> list[str]:
    """Return the lines of the LXC config file for ``request``.

    ``versions`` maps each cgroup controller to the version that contains it on
    the host (:func:`isobench.runtimes.sandbox.controller_versions`), so each
    limit is written as ``lxc.cgroup.*`` (v1) or ``lxc.cgroup2.*`` (v2).
    """
    lines = [f"lxc.rootfs.path = dir:{_config_value(str(rootfs), 'rootfs path')}"]
    if request.read_only:
        lines.append("lxc.rootfs.options = ro")
    if request.uts == "private":
        lines.append(f"lxc.uts.name = {_config_value(request.hostname or 'isobench', 'hostname')}")
    # The console would be a pty of LXC's; the command's stdio are the pipes of lxc-execute.
    lines.append("lxc.console.path = none")

    confined = not request.privileged and request.masked_paths == "default"
    if confined:
        lines.append("lxc.mount.auto = proc:mixed sys:ro cgroup:ro:force")
    elif request.privileged:
        lines.append("lxc.mount.auto = proc:rw sys:rw cgroup:rw:force")
    else:
        lines.append("lxc.mount.auto = proc:rw sys:rw cgroup:ro:force")

    # lxc.namespace.keep lists the namespaces a container inherits from lxc-execute. Once
    # it is set, LXC makes every namespace it does not list, a user namespace too, so
    # "user" is listed unless a private one is requested.
    keep = []
    if request.userns == "host":
        keep.append("user")
    if request.network == "host":
        keep.append("net")
    for field, namespace in (("pid", "pid"), ("ipc", "ipc"), ("uts", "uts")):
        if getattr(request, field) == "host":
            keep.append(namespace)
    if request.cgroupns == "host":
        keep.append("cgroup")
    lines.append(f"lxc.namespace.keep = {' '.join(keep)}" if keep else "")
    if request.network == "none":
        lines.append("lxc.net.0.type = empty")
    elif request.network == "default":
        if bridge is None:
            raise HarnessError(f"LXC's default network needs the {BRIDGE} bridge")
        lines += ["lxc.net.0.type = veth", f"lxc.net.0.link = {bridge}", "lxc.net.0.flags = up"]

    if request.userns == "private":
        # NOTE: never run on the reference host, whose /etc/subuid grants root no range,
        # so unsupported() skips these requests there.
        span = f"0 {sandbox.USERNS_HOST_ID} {sandbox.USERNS_SIZE}"
        lines += [f"lxc.idmap = u {span}", f"lxc.idmap = g {span}"]

    ids = sandbox.user_ids(request, rootfs)
    if ids is not None:
        lines += [f"lxc.init.uid = {ids[0]}", f"lxc.init.gid = {ids[1]}"]
    if request.workdir is not None:
        lines.append(f"lxc.init.cwd = {_config_value(request.workdir, 'working directory')}")
    for key, value in [*request.env, *env.items()]:
        lines.append(f"lxc.environment = {_config_value(f'{key}={value}', 'variable')}")

    # A privileged container keeps every capability unless the request drops some.
    if not request.privileged or request.cap_drop:
        baseline = [c for c in host_caps if c not in DEFAULT_CAP_DROP]
        caps = sandbox.capability_set(request, baseline, host_caps)
        lines.append(f"lxc.cap.keep = {' '.join(_cap_name(c) for c in caps) or 'none'}")
    if request.seccomp == "default" and not request.privileged and seccomp_profile is not None:
        lines.append(f"lxc.seccomp.profile = {seccomp_profile}")
    if request.no_new_privs is not None:
        lines.append(f"lxc.no_new_privs = {int(request.no_new_privs)}")

    devices_key = "lxc.cgroup2.devices" if versions.get("devices") != 1 else "lxc.cgroup.devices"
    if request.privileged:
        lines.append(f"{devices_key}.allow = a")
    else:
        lines.append(f"{devices_key}.deny = a")
        lines += [f"{devices_key}.allow = {rule}" for rule in DEFAULT_DEVICE_RULES]
        lines += [f"{devices_key}.allow = {_device_rule(path)}" for path in request.devices]
    for path in request.devices:
        node = _fstab_field(path)
        lines.append(f"lxc.mount.entry = {node} {node.lstrip('/')} none bind,create=file 0 0")

    for mount in request.mounts:
        options = "bind,ro" if mount.read_only else "bind"
        create = "create=dir" if Path(mount.source).is_dir() else "create=file"
        source, target = _fstab_field(mount.source), _fstab_field(mount.target).lstrip("/")
        lines.append(f"lxc.mount.entry = {source} {target} none {options},{create} 0 0")
    for tmpfs in request.tmpfs:
        target = _fstab_field(tmpfs.target).lstrip("/")
        options = f"nosuid,nodev,size={int(tmpfs.size)},create=dir"
        lines.append(f"lxc.mount.entry = tmpfs {target} tmpfs {options} 0 0")
    for limit in request.ulimits:
        lines.append(f"lxc.prlimit.{limit.name} = {limit.soft}:{limit.hard}")

    for setting in sandbox.cgroup_settings(request, versions, device):
        prefix = "lxc.cgroup" if setting.version == 1 else "lxc.cgroup2"
        lines.append(f"{prefix}.{setting.file} = {setting.value}")
    return [line for line in lines if line]


class LxcAdapter(Adapter):
    """Runs each container with lxc-execute in the foreground."""

    name = "lxc"
    family = "sandbox"

    def __init__(self) -> None:
        self._availability: Availability | None = None

    # -- discovery -------------------------------------------------------

    def availability(self) -> Availability:
        if self._availability is None:
            self._availability = self._check_availability()
        return self._availability

    def _check_availability(self) -> Availability:
        binary = shutil.which(LXC_EXECUTE)
        if binary is None:
            return Availability(
                False, reason=f"'{LXC_EXECUTE}' not found", hint=INSTALL_HINT, installed=False
            )
        try:
            version = commands.run([binary, "--version"], timeout=30).stdout.strip()
        except IsobenchError as exc:
            return Availability(False, reason=str(exc), hint=INSTALL_HINT)
        problem = _smoke_test(binary)
        if problem is not None:
            return Availability(
                False,
                version=version,
                reason=f"lxc-execute is installed but cannot start a container here: {problem}",
                hint="Run isobench as root on a host with namespaces and cgroups enabled "
                "('lxc-checkconfig' lists what the kernel lacks).",
            )
        return Availability(True, version=version, details={"binary": binary})

    def unsupported(self, request: Request) -> str | None:
        network = unmanaged_network_reason("LXC (lxc-execute)", request)
        if network is not None:
            return network
        if request.init is False:
            return "lxc-execute always runs lxc-init as PID 1, with the command as its child"
        if request.cap_add and request.user is not None and request.user.split(":")[0] != "0":
            return (
                "LXC 5.0 has no setting for ambient capabilities, so a command that "
                "lxc-init starts as a non-root user (lxc.init.uid) has none of the added "
                "capabilities in its effective set"
            )
        if request.network == "default" and not Path(f"/sys/class/net/{BRIDGE}").is_dir():
            return (
                f"LXC's default network is a veth pair on the {BRIDGE} bridge, which the "
                "lxc-net service makes, and this host has no such bridge"
            )
        if request.userns == "private":
            problem = sandbox.subid_problem()
            if problem is not None:
                return problem
        for key, value in request.env:
            if "\n" in key + value or value != value.strip():
                return (
                    f"the variable {key} cannot be written to an LXC config file: its value "
                    "has a newline or leading or trailing blanks"
                )
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
        directory = rootfs.parent
        entries = [bundle_entry]
        sandbox.make_targets(rootfs, request)
        device = None
        if request.device_write_bps is not None or request.device_read_bps is not None:
            device = self.storage_device(ctx)
        bridge = BRIDGE if Path(f"/sys/class/net/{BRIDGE}").is_dir() else None
        lines = build_config(
            request,
            rootfs,
            env,
            versions=sandbox.controller_versions(),
            device=device,
            host_caps=host_bounding_set(),
            bridge=bridge,
        )
        config = directory / "config"
        config.write_text("\n".join(lines) + "\n")

        # LXC makes lxc.monitor.NAME for lxc-execute and lxc.payload.NAME for the container
        # in every hierarchy, and removes them when the container ends.
        for prefix in ("lxc.monitor", "lxc.payload"):
            entries += [e for _, e in journal_cgroups(ctx, self.name, f"/{prefix}.{name}")]
        stop = ["lxc-stop", "-P", str(directory), "-n", name, "--kill"]
        entries.append(
            ctx.journal.record(
                "container",
                name,
                stop,
                runtime=self.name,
                absent=("is not running", "doesn't exist"),
            )
        )
        command = [LXC_EXECUTE, "-n", name, "-P", str(directory), "-f", str(config), "--"]
        command += list(argv)
        process = popen(command)
        return Launched(
            name=name,
            process=process,
            argv=command,
            entries=entries,
            commands=[f"# LXC config written to {config}"],
            state={"directory": str(directory)},
        )

    def _init_pid(self, launched: Launched) -> int | None:
        if "init_pid" in launched.state:
            return int(launched.state["init_pid"])
        command = ["lxc-info", "-P", launched.state["directory"], "-n", launched.name, "-p", "-H"]
        launched.commands.append(shlex.join(command))
        result = commands.run(command, timeout=30, check=False)
        try:
            pid = int(result.stdout.strip())
        except ValueError:
            return None
        launched.state["init_pid"] = str(pid)
        return pid

    def host_pid(self, ctx: Context, launched: Launched) -> int | None:
        """Return the command's process, the child of lxc-init; lxc-init's own when it has
        no child (the command has exited)."""
        init = self._init_pid(launched)
        if init is None:
            return None
        found = sandbox.children(init)
        return found[0] if found else init

    def _attach(self, launched: Launched, argv: Sequence[str]) -> list[str]:
        directory = launched.state["directory"]
        return ["lxc-attach", "-P", directory, "-n", launched.name, "--", *argv]

    def exec_output(self, ctx: Context, launched: Launched, argv: Sequence[str]) -> str:
        command = self._attach(launched, argv)
        launched.commands.append(shlex.join(command))
        return commands.run(command, timeout=60).stdout

    def exec_detached(self, ctx: Context, launched: Launched, argv: Sequence[str]) -> None:
        command = self._attach(launched, argv)
        launched.commands.append(shlex.join(command))
        child = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        launched.groups.append(child.pid)

    def stop(self, ctx: Context, launched: Launched, grace_s: float) -> None:
        # NOTE: lxc-init ends the container with SIGKILL one second after SIGTERM, so a
        # grace period longer than that is not kept.
        init = self._init_pid(launched)
        if init is None:
            raise HarnessError(f"lxc-info shows no PID for the container {launched.name}")
        sandbox.signal_then_kill(launched, init, grace_s)

    def runtime_failure(self, exit_code: int, stderr: str) -> str | None:
        if exit_code == 0:
            return None
        lines = stderr.splitlines()
        if not any(_MAIN_FAILURE.match(line) for line in lines):
            return None
        errors = [m.group("message") for line in lines if (m := _ERROR_LINE.match(line))]
        return f"lxc-execute failed to run the container: {'; '.join(errors[:3])}"

    def finish(self, ctx: Context, launched: Launched) -> None:
        for group in launched.groups:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(group, signal.SIGKILL)
        super().finish(ctx, launched)

    def storage_device(self, ctx: Context) -> tuple[str, int, int]:
        try:
            return host.block_device(ctx.bundle_root)
        except OSError as exc:
            raise HarnessError(
                f"the rootfs copies of lxc are in {ctx.bundle_root}: {exc}"
            ) from None


def _smoke_test(binary: str) -> str | None:
    """Run /usr/bin/true in a container whose root contains only the host's /usr, read-only.

    Returns lxc-execute's message when that fails, or None.
    """
    with tempfile.TemporaryDirectory(prefix="isobench-lxc-") as temporary:
        directory = Path(temporary)
        rootfs = directory / "rootfs"
        (rootfs / "usr").mkdir(parents=True)
        for link in ("bin", "lib", "lib64", "sbin"):
            (rootfs / link).symlink_to(f"usr/{link}")
        config = directory / "config"
        config.write_text(
            f"lxc.rootfs.path = dir:{rootfs}\n"
            "lxc.mount.entry = /usr usr none bind,ro 0 0\n"
            "lxc.net.0.type = empty\n"
            "lxc.namespace.keep = user\n"
            "lxc.console.path = none\n"
        )
        name = f"isobench-availability-{os.getpid()}"
        command = [binary, "-n", name, "-P", str(directory), "-f", str(config), "--", "/bin/true"]
        try:
            result = commands.run(command, timeout=30, check=False)
        except IsobenchError as exc:
            return str(exc)
    if result.returncode == 0:
        return None
    lines = [
        m.group("message") for line in result.stderr.splitlines() if (m := _ERROR_LINE.match(line))
    ]
    return "; ".join(lines[:3]) or result.stderr.strip() or f"exit status {result.returncode}"
