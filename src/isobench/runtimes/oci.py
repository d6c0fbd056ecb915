"""OCI runtime CLIs (runc, runsc, crun, ...) on a bundle the adapter lays out."""

from __future__ import annotations

import inspect
import json
import logging
import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from isobench import commands, hosts
from isobench.errors import HarnessError, IsobenchError
from isobench.journal import Entry
from isobench.model import (
    CAPABILITIES,
    MASKED_PATHS,
    READONLY_PATHS,
    RLIMITS,
    Request,
    capability_name,
)
from isobench.probe import cgroups
from isobench.probe import host as host_probe
from isobench.runtimes import shim
from isobench.runtimes.base import (
    Adapter,
    Availability,
    Context,
    Launched,
    ProbeImage,
    journal_cgroups,
    popen,
    rootfs_on_host,
    unmanaged_network_reason,
    write_on_host,
)

log = logging.getLogger(__name__)

_ABSENT = ("does not exist", "not exist", "not found")

# The capabilities that docker and podman grant by default. config.json gets
# the same set, so that the OCI rows start from the same posture.
DEFAULT_CAPABILITIES = (
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
)

_DEFAULT_REQUEST = Request()

USERNS_HOST_ID = 100000
USERNS_SIZE = 65536

#: The text that a record shows in place of the shim's source on a command line.
_SHIM_SOURCE_SHOWN = "<source of isobench.runtimes.shim>"


@dataclass(frozen=True)
class OciProfile:
    """The differences between OCI runtime CLIs, as data."""

    runtime: str
    binary_env: str
    global_flags: tuple[str, ...] = ()
    #: Request fields the runtime cannot express, with the reason.
    cannot: dict[str, str] = field(default_factory=dict)
    install_hint: str = ""
    #: Installed with isobench: the binary beside the Python interpreter comes first.
    bundled: bool = False
    #: "run" starts a container with the runtime's 'run'; "create-start" with 'create'
    #: and 'start' under isobench's shim, which waits for it (isobench.runtimes.shim).
    lifecycle: str = "run"
    #: The runtime has an 'exec' command.
    exec: bool = True
    #: The runtime refuses a hybrid host whose unified hierarchy has a controller, so on
    #: such a host each of its commands runs where that hierarchy is not mounted.
    hides_unified: bool = False


RUNC = OciProfile(
    runtime="runc",
    binary_env="ISOBENCH_RUNC",
    cannot={
        "network=default": "runc has no network of its own (a CNI plugin would add one); "
        "a new network namespace holds only a loopback",
    },
    install_hint="Install it with 'apt-get install runc' or run 'make setup'.",
)

ISOBOX = OciProfile(
    runtime="isobox",
    binary_env="ISOBENCH_ISOBOX",
    cannot={
        "network=default": "isobox has no network of its own; a new network namespace holds "
        "only a loopback",
    },
    install_hint="It is installed with isobench: run 'make setup'.",
    bundled=True,
)

CRUN = OciProfile(
    runtime="crun",
    binary_env="ISOBENCH_CRUN",
    cannot={
        "network=default": "crun has no network of its own; a new network namespace holds "
        "only a loopback",
    },
    install_hint="Install it with 'apt-get install crun' or run 'make setup'.",
    # crun 1.8 stops with "cgroups in hybrid mode not supported, drop all controllers
    # from cgroupv2" when /sys/fs/cgroup/unified lists a controller.
    hides_unified=True,
)

RUNSC = OciProfile(
    runtime="runsc",
    binary_env="ISOBENCH_RUNSC",
    # runsc cannot build a network in the host's root network namespace.
    global_flags=("--network=none",),
    cannot={
        "network=default": "runsc runs with --network=none here, so it has only a loopback",
        "network=host": "runsc runs with --network=none here, so it has only a loopback",
        "userns=private": "runsc does not apply the user namespace mappings of config.json",
    },
    install_hint="Install it with 'apt-get install runsc' or run 'make setup'.",
)


def hybrid_unified_with_controllers(mountinfo: str | None = None) -> Path | None:
    """Return the mount point of the unified hierarchy on a hybrid host when it lists a
    controller; None on a v1-only or v2 host, or when it lists none.

    Without ``mountinfo``, the mounts are those of the run's host.
    """
    if mountinfo is None:
        found = hosts.current().call(cgroups, "hybrid_unified")
    else:
        found = cgroups.hybrid_unified(mountinfo)
    return None if found is None else Path(str(found["mount_point"]))


CPU_PERIOD_US = 100000


def _resources(request: Request, device: tuple[str, int, int] | None = None) -> dict[str, Any]:
    """Translate the request's limits into ``linux.resources``."""
    resources: dict[str, Any] = {"devices": [{"allow": False, "access": "rwm"}]}
    memory: dict[str, int] = {}
    if request.memory is not None:
        memory["limit"] = int(request.memory)
    if request.memory_swap is not None:
        # As with docker's --memory-swap, this is memory plus swap.
        memory["swap"] = int(request.memory_swap)
    if memory:
        resources["memory"] = memory
    if request.pids_limit is not None:
        resources["pids"] = {"limit": request.pids_limit}
    cpu: dict[str, Any] = {}
    if request.cpus is not None:
        cpu["quota"] = round(request.cpus * CPU_PERIOD_US)
        cpu["period"] = CPU_PERIOD_US
    if request.cpuset_cpus is not None:
        cpu["cpus"] = request.cpuset_cpus
    if request.cpu_shares is not None:
        cpu["shares"] = request.cpu_shares
    if cpu:
        resources["cpu"] = cpu
    if device is not None:
        _, major, minor = device
        block_io: dict[str, Any] = {}
        if request.device_write_bps is not None:
            limit = {"major": major, "minor": minor, "rate": int(request.device_write_bps)}
            block_io["throttleWriteBpsDevice"] = [limit]
        if request.device_read_bps is not None:
            limit = {"major": major, "minor": minor, "rate": int(request.device_read_bps)}
            block_io["throttleReadBpsDevice"] = [limit]
        if block_io:
            resources["blockIO"] = block_io
    return resources


def _passwd_gid(passwd: str, uid: int) -> int:
    for line in passwd.splitlines():
        fields = line.split(":")
        if len(fields) > 3 and fields[2] == str(uid) and fields[3].isdigit():
            return int(fields[3])
    return 0


def host_bounding_set() -> list[str]:
    """Return the capabilities of the bounding set of a process started on the run's host
    (this process, when that host is this machine): what privileged may grant."""
    mask = hosts.current().call(host_probe, "bounding_set_mask")
    if mask is None:
        return list(CAPABILITIES)
    return [name for number, name in enumerate(CAPABILITIES) if mask >> number & 1]


def device_entry(path: str) -> dict[str, Any]:
    """Describe a device node of the run's host for ``linux.devices``.

    Raises HarnessError when the node is missing or is not a device node.
    """
    host = hosts.current()
    where = "" if host.is_local else f" on {host.label}"
    node = host.call(host_probe, "device_node", path)
    if "error" in node:
        raise HarnessError(f"the device {path}{where} cannot be added: {node['error']}")
    if not node["type"]:
        raise HarnessError(f"{path}{where} is not a device node, so it cannot be added as a device")
    return {
        "path": path,
        "type": node["type"],
        "major": node["major"],
        "minor": node["minor"],
        "fileMode": node["mode"],
        "uid": 0,
        "gid": 0,
    }


def build_config(
    request: Request,
    argv: Sequence[str],
    env: dict[str, str],
    rootfs: str = "rootfs",
    passwd: str = "",
    device: tuple[str, int, int] | None = None,
    host_caps: Sequence[str] = CAPABILITIES,
) -> dict[str, Any]:
    """Write the OCI ``config.json`` for ``request``, mirroring ``runc spec``'s defaults.

    ``host_caps`` is what a privileged request gets: the engines grant every
    capability, which fails where the host's bounding set lacks some.
    """
    caps = set(host_caps) if request.privileged else set(DEFAULT_CAPABILITIES)
    drops = {capability_name(c) for c in request.cap_drop}
    if "CAP_ALL" in drops:
        caps.clear()
    caps -= drops
    adds = {capability_name(c) for c in request.cap_add}
    if "CAP_ALL" in adds:
        adds = set(CAPABILITIES)
    caps |= adds
    cap_list = sorted(caps)

    uid, gid = 0, 0
    if request.user is not None:
        user, _, group = request.user.partition(":")
        uid = int(user)
        # Like the engines: without a group, the user's group in the image's
        # /etc/passwd, or 0 when the image does not list the user.
        gid = int(group) if group else _passwd_gid(passwd, uid)

    environment = ["PATH=/bin", "TERM=xterm"]
    environment += [f"{k}={v}" for k, v in request.env]
    environment += [f"{k}={v}" for k, v in env.items()]

    namespaces: list[dict[str, str]] = [{"type": "mount"}]
    if request.pid == "private":
        namespaces.append({"type": "pid"})
    if request.network != "host":
        namespaces.append({"type": "network"})
    if request.ipc == "private":
        namespaces.append({"type": "ipc"})
    if request.uts == "private":
        namespaces.append({"type": "uts"})
    # runc spec's default has no cgroup namespace, so unset means the host's.
    if request.cgroupns == "private":
        namespaces.append({"type": "cgroup"})
    if request.userns == "private":
        namespaces.append({"type": "user"})

    confined = request.masked_paths == "default" and not request.privileged
    resources = _resources(request, device)
    linux: dict[str, Any] = {
        "namespaces": namespaces,
        "maskedPaths": list(MASKED_PATHS) if confined else [],
        "readonlyPaths": list(READONLY_PATHS) if confined else [],
        "resources": resources,
    }
    devices = [device_entry(path) for path in request.devices]
    if devices:
        linux["devices"] = devices
    if request.privileged:
        resources["devices"] = [{"allow": True, "access": "rwm"}]
    for entry in devices:
        rule = {"allow": True, "access": "rwm", "type": entry["type"]}
        resources["devices"].append({**rule, "major": entry["major"], "minor": entry["minor"]})
    if request.userns == "private":
        mapping = [{"containerID": 0, "hostID": USERNS_HOST_ID, "size": USERNS_SIZE}]
        linux["uidMappings"] = mapping
        linux["gidMappings"] = mapping

    mounts: list[dict[str, Any]] = [
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {
            "destination": "/dev",
            "type": "tmpfs",
            "source": "tmpfs",
            "options": ["nosuid", "strictatime", "mode=755", "size=65536k"],
        },
        {
            "destination": "/dev/pts",
            "type": "devpts",
            "source": "devpts",
            "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"],
        },
        {
            "destination": "/dev/shm",
            "type": "tmpfs",
            "source": "shm",
            "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        },
        {
            "destination": "/dev/mqueue",
            "type": "mqueue",
            "source": "mqueue",
            "options": ["nosuid", "noexec", "nodev"],
        },
        {
            "destination": "/sys",
            "type": "sysfs",
            "source": "sysfs",
            "options": ["nosuid", "noexec", "nodev", "ro"],
        },
    ]
    if request.userns == "private":
        # A user namespace may not mount a fresh sysfs or mqueue; bind them instead.
        mounts = [m for m in mounts if m["destination"] not in ("/sys", "/dev/mqueue")]
        mounts.append(
            {
                "destination": "/sys",
                "type": "none",
                "source": "/sys",
                "options": ["rbind", "nosuid", "noexec", "nodev", "ro"],
            }
        )
    else:
        mounts.append(
            {
                "destination": "/sys/fs/cgroup",
                "type": "cgroup",
                "source": "cgroup",
                "options": ["nosuid", "noexec", "nodev", "relatime", "ro"],
            }
        )

    for mount in request.mounts:
        options = ["rbind", "ro"] if mount.read_only else ["rbind"]
        bind = {"destination": mount.target, "type": "bind", "source": mount.source}
        mounts.append({**bind, "options": options})
    for tmpfs in request.tmpfs:
        options = ["nosuid", "nodev", f"size={int(tmpfs.size)}"]
        mounts.append(
            {"destination": tmpfs.target, "type": "tmpfs", "source": "tmpfs", "options": options}
        )
    if request.privileged:
        for entry in mounts:
            if entry["destination"] in ("/sys", "/sys/fs/cgroup"):
                entry["options"] = [o for o in entry.get("options", []) if o != "ro"]

    rlimits = {"nofile": {"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}}
    for limit in request.ulimits:
        rlimits[limit.name] = {"type": RLIMITS[limit.name], "hard": limit.hard, "soft": limit.soft}

    config: dict[str, Any] = {
        "ociVersion": "1.0.2",
        "process": {
            "terminal": False,
            "user": {"uid": uid, "gid": gid},
            "args": list(argv),
            "env": environment,
            "cwd": request.workdir or "/",
            "capabilities": {
                "bounding": cap_list,
                "effective": cap_list,
                "permitted": cap_list,
            },
            "rlimits": list(rlimits.values()),
            # runc spec's default is true; a request may turn it off.
            "noNewPrivileges": request.no_new_privs is not False,
        },
        "root": {"path": rootfs, "readonly": request.read_only},
        "hostname": request.hostname or "isobench",
        "mounts": mounts,
        "linux": linux,
    }
    if request.uts == "host":
        del config["hostname"]
    return config


class OciAdapter(Adapter):
    """An OCI runtime CLI that runs a bundle in the foreground."""

    family = "oci"
    remote_ready = True

    def __init__(self, profile: OciProfile, binary: str | None = None) -> None:
        self.profile = profile
        self.name = profile.runtime
        self._binary = binary
        self._availability: Availability | None = None
        #: The result of ``cgroups.hybrid_unified`` on each host, by host spec.
        self._unified: dict[str, dict[str, Any] | None] = {}
        #: The runtime's program on each other host (None: not found there), by host spec.
        self._programs: dict[str, str | None] = {}
        #: The capability bounding set on each other host, by host spec.
        self._bounding: dict[str, list[str]] = {}

    @property
    def binary(self) -> str:
        """The runtime's program on the run's host: a path, or a name looked up on PATH."""
        configured = self._configured_binary()
        host = hosts.current()
        if not host.is_local:
            return self._program_on(host) or configured or self.profile.runtime
        if configured:
            return configured
        if self.profile.bundled:
            beside = Path(sys.executable).parent / self.profile.runtime
            if beside.exists():
                return str(beside)
        return self.profile.runtime

    def _configured_binary(self) -> str | None:
        """Return the program that the row or its environment variable names, if any."""
        if self._binary:
            return self._binary
        return os.environ.get(self.profile.binary_env) if self.profile.binary_env else None

    def _candidates(self) -> list[str]:
        """Return the programs to look for on another host, in order."""
        configured = self._configured_binary()
        if configured:
            return [configured]
        if self.profile.bundled:
            # A host set up like this one (the same checkout or virtual environment) has
            # it beside the interpreter at the same path. Else it is looked up on PATH.
            return [str(Path(sys.executable).parent / self.profile.runtime), self.profile.runtime]
        return [self.profile.runtime]

    def _program_on(self, host: hosts.Host) -> str | None:
        """Return the path of the runtime's program on ``host``, looked up there once."""
        if host.spec not in self._programs:
            found = host.call(host_probe, "find_program", self._candidates())
            self._programs[host.spec] = str(found) if found else None
        return self._programs[host.spec]

    def state_root(self, ctx: Context) -> Path:
        return Path("/run/isobench") / self.name

    def global_argv(self, ctx: Context) -> list[str]:
        """Return the runtime binary with its global options (state root, flags)."""
        runtime = [self.binary, "--root", str(self.state_root(ctx)), *self.profile.global_flags]
        unified = self.unified_to_hide()
        if unified is None:
            return runtime
        # A mount namespace of its own for each command, in which the unified hierarchy
        # is unmounted. The v1 hierarchies stay, so the container's cgroups are the same
        # directories that the host side reads. The arguments reach sh as "$@", as data.
        return [
            *("unshare", "--mount", "--propagation", "private", "--"),
            *("sh", "-c", 'umount "$0" && exec "$@"', str(unified)),
            *runtime,
        ]

    def journal_hidden_cgroup(self, ctx: Context, cgroup_path: str) -> Entry | None:
        """Journal what the runtime makes of ``cgroup_path`` below the unified hierarchy
        it does not see, when its commands run with that hierarchy unmounted.

        There, crun takes the tmpfs beneath for a cgroup file system and makes plain
        directories in it, which the mounted hierarchy hides from the host. The
        removal unmounts the hierarchy in a mount namespace of its own to reach them.
        """
        unified = self.unified_to_hide()
        relative = cgroup_path.strip("/")
        if unified is None or not relative:
            return None
        return ctx.journal.record(
            "directory",
            f"{unified}/{relative} (under the mount)",
            [
                *("unshare", "--mount", "--propagation", "private", "--"),
                *("sh", "-c", 'umount "$0" && rm -rf "$0/$1"', str(unified), relative),
            ],
            runtime=self.name,
        )

    def unified_to_hide(self) -> Path | None:
        """Return the unified hierarchy to unmount for this runtime's commands, or None
        when the profile or the run's host needs no such step."""
        if not self.profile.hides_unified:
            return None
        found = self._hybrid_unified()
        return None if found is None else Path(str(found["mount_point"]))

    def _hybrid_unified(self) -> dict[str, Any] | None:
        """Return ``cgroups.hybrid_unified`` of the run's host, read there once."""
        host = hosts.current()
        if host.spec not in self._unified:
            self._unified[host.spec] = host.call(cgroups, "hybrid_unified")
        return self._unified[host.spec]

    def availability(self) -> Availability:
        if self._availability is None:
            self._availability = self._check_availability()
        return self._availability

    def _check_availability(self) -> Availability:
        host = hosts.current()
        path = shutil.which(self.binary) if host.is_local else self._program_on(host)
        if path is None:
            return self._not_found(host)
        try:
            result = commands.run([path, "--version"], timeout=30)
        except IsobenchError as exc:
            return Availability(False, reason=str(exc), hint=self.profile.install_hint)
        first = result.stdout.strip().splitlines()[0] if result.stdout.strip() else ""
        version = first.split("version", 1)[-1].strip() if "version" in first else first
        details = {"binary": path}
        unified = self.unified_to_hide()
        if unified is not None:
            found = self._hybrid_unified() or {}
            listed = [str(name) for name in found.get("controllers", [])]
            details["how"] = (
                f"each {self.name} command runs in a private mount namespace without {unified}, "
                f"because that hierarchy lists {', '.join(listed)} and {self.name} refuses such "
                "a hybrid host"
            )
        return Availability(True, version=version, details=details)

    def _not_found(self, host: hosts.Host) -> Availability:
        """Return the availability of a row whose program is not on ``host``."""
        source = (
            f" (set by {self.profile.binary_env})"
            if self.profile.binary_env and os.environ.get(self.profile.binary_env)
            else ""
        )
        if host.is_local:
            reason = f"'{self.binary}'{source} not found"
            hint = self.profile.install_hint
            where = ""
        else:
            tried = " or ".join(f"'{name}'" for name in self._candidates())
            reason = f"{tried}{source} not found on {host.label}"
            hint = f"On {host.label}: {self.profile.install_hint}"
            where = " on that host"
        if self.profile.binary_env:
            hint += f" Or set {self.profile.binary_env} to its path{where}."
        return Availability(False, installed=False, reason=reason, hint=hint)

    def unsupported(self, request: Request) -> str | None:
        if request.init:
            return (
                f"{self.name} has no init process of its own; the engines add one "
                "(docker-init, catatonit) in front of the command"
            )
        network = unmanaged_network_reason(self.name, request)
        if network is not None:
            return network
        for key, reason in self.profile.cannot.items():
            field_name, equals, value = key.partition("=")
            current = getattr(request, field_name)
            # "field=value" matches that value; a bare "field" matches any value but the default.
            if equals and str(current) == value:
                return reason
            if not equals and current != getattr(_DEFAULT_REQUEST, field_name):
                return reason
        return None

    def prepare(self, ctx: Context) -> None:
        """Copy the probe image's rootfs to another host before the first container, so
        that a copy that fails is tried once for the row, not once per check."""
        if ctx.image is not None and not hosts.current().is_local:
            rootfs_on_host(ctx.image)

    def launch(
        self, ctx: Context, request: Request, argv: Sequence[str], env: dict[str, str]
    ) -> Launched:
        name, bundle, entries = self.prepare_bundle(ctx, request, argv, env)
        run_argv = self.run_argv(ctx, name, bundle)
        process = popen(run_argv)
        host = hosts.current()
        recorded_argv, where = run_argv, ""
        if not host.is_local:
            # The record shows a placeholder in place of the whole source of the shim.
            source = inspect.getsource(shim)
            recorded_argv = [_SHIM_SOURCE_SHOWN if arg == source else arg for arg in run_argv]
            where = f" on {host.label}"
        return Launched(
            name=name,
            process=process,
            argv=recorded_argv,
            entries=entries,
            commands=[f"# config.json written to {bundle}{where}"],
        )

    def run_argv(self, ctx: Context, name: str, bundle: Path) -> list[str]:
        """Return the command that runs the container in the foreground and exits with
        the container's status."""
        if self.profile.lifecycle == "create-start":
            waiter = [sys.executable, "-m", "isobench.runtimes.shim"]
            if not hosts.current().is_local:
                # isobench need not be installed there: the shim uses the standard
                # library only, so the host's python3 runs its source.
                waiter = ["python3", "-c", inspect.getsource(shim)]
            return [*waiter, *self.global_argv(ctx), "--", name, str(bundle)]
        return [*self.global_argv(ctx), "run", "--bundle", str(bundle), name]

    def runtime_failure(self, exit_code: int, stderr: str) -> str | None:
        if self.profile.lifecycle != "create-start" or exit_code != shim.FAILURE_STATUS:
            return None
        for line in stderr.splitlines():
            if line.startswith(shim.MESSAGE_PREFIX):
                return line.removeprefix(shim.MESSAGE_PREFIX)
        return None

    def can_exec(self) -> bool:
        return self.profile.exec

    def prepare_bundle(
        self, ctx: Context, request: Request, argv: Sequence[str], env: dict[str, str]
    ) -> tuple[str, Path, list[Entry]]:
        """Lay out a bundle for a new container.

        Returns its name, its directory and the journal entries that remove the
        bundle, its cgroups and the container.
        """
        image = ctx.image_for(request)
        name = ctx.container_name(self.name)
        bundle = ctx.bundle_root / name
        entries = [
            ctx.journal.record("bundle", str(bundle), ["rm", "-rf", str(bundle)], runtime=self.name)
        ]
        self._lay_out_rootfs(image, bundle, self.state_root(ctx))
        passwd_file = image.rootfs / "etc" / "passwd"
        passwd = passwd_file.read_text() if passwd_file.exists() else ""
        device = None
        if request.device_write_bps is not None or request.device_read_bps is not None:
            device = self.storage_device(ctx)
        config = build_config(
            request, argv, env, passwd=passwd, device=device, host_caps=self._bounding_set()
        )
        # A cgroup path of our own, so that what the runtime leaves (runsc does,
        # when a sandbox fails to start) can be found and removed.
        cgroup_path = f"/{name}"
        config["linux"]["cgroupsPath"] = cgroup_path
        write_on_host(bundle / "config.json", json.dumps(config, indent=2))
        entries += [entry for _, entry in journal_cgroups(ctx, self.name, cgroup_path)]
        hidden = self.journal_hidden_cgroup(ctx, cgroup_path)
        if hidden is not None:
            entries.append(hidden)
        if request.userns == "private":
            commands.run(
                ["chown", "-R", f"{USERNS_HOST_ID}:{USERNS_HOST_ID}", str(bundle / "rootfs")],
                timeout=60,
            )

        root = self.state_root(ctx)
        if hosts.current().is_local:
            root.mkdir(parents=True, exist_ok=True)
        # What the runtime keeps of the container in its state root once 'delete' has
        # run, or after it lost the container: runsc leaves NAME_sandbox:NAME.lock.
        entries.append(
            ctx.journal.record(
                "state",
                str(root / name),
                [
                    "find",
                    str(root),
                    "-maxdepth",
                    "1",
                    "(",
                    "-name",
                    name,
                    "-o",
                    "-name",
                    f"{name}_*",
                    ")",
                    "-exec",
                    "rm",
                    "-rf",
                    "{}",
                    "+",
                ],
                runtime=self.name,
            )
        )
        entries.append(
            ctx.journal.record(
                "container",
                name,
                [*self.global_argv(ctx), "delete", "--force", name],
                runtime=self.name,
                absent=_ABSENT,
            )
        )
        return name, bundle, entries

    @staticmethod
    def _lay_out_rootfs(image: ProbeImage, bundle: Path, state_root: Path) -> None:
        """Make the bundle directory on the run's host, with a copy of the image's rootfs
        as its ``rootfs``. The directory must not exist yet.

        On another host, the runtime's state root is made in the same command, which
        saves a round trip over the connection per container.
        """
        if hosts.current().is_local:
            bundle.mkdir(parents=True)
            shutil.copytree(image.rootfs, bundle / "rootfs", symlinks=True)
            return
        source = rootfs_on_host(image)
        copy = 'mkdir -p "$1" "$2" && mkdir "$3" && cp -a "$4" "$3/rootfs"'
        commands.run(
            ["sh", "-c", copy, "sh", str(bundle.parent), str(state_root), str(bundle), str(source)],
            timeout=120,
            hint=f"The bundle {bundle} could not be laid out.",
        )

    def _bounding_set(self) -> list[str]:
        """Return :func:`host_bounding_set`, read once per other host, because each read
        there starts the host's python3 over the connection."""
        host = hosts.current()
        if host.is_local:
            return host_bounding_set()
        if host.spec not in self._bounding:
            self._bounding[host.spec] = host_bounding_set()
        return self._bounding[host.spec]

    def host_pid(self, ctx: Context, launched: Launched) -> int | None:
        state = [*self.global_argv(ctx), "state", launched.name]
        result = commands.run(state, timeout=30, check=False)
        launched.commands.append(shlex.join(state))
        try:
            pid = int(json.loads(result.stdout).get("pid", 0))
        except (json.JSONDecodeError, ValueError, AttributeError):
            return None
        return pid or None

    def _require_exec(self) -> None:
        if not self.profile.exec:
            raise HarnessError(
                f"{self.name} has no exec command, so it cannot start a process in a "
                "running container"
            )

    def exec_detached(self, ctx: Context, launched: Launched, argv: Sequence[str]) -> None:
        self._require_exec()
        command = [*self.global_argv(ctx), "exec", "--detach", launched.name, *argv]
        launched.commands.append(shlex.join(command))
        # The process started keeps the runtime's stdout and stderr open: through files,
        # on whichever host the command runs.
        commands.run(command, timeout=60, output_to_files=True)

    def exec_output(self, ctx: Context, launched: Launched, argv: Sequence[str]) -> str:
        self._require_exec()
        command = [*self.global_argv(ctx), "exec", launched.name, *argv]
        launched.commands.append(shlex.join(command))
        return commands.run(command, timeout=60).stdout

    def stop(self, ctx: Context, launched: Launched, grace_s: float) -> None:
        kill = [*self.global_argv(ctx), "kill", launched.name]
        launched.commands.append(shlex.join([*kill, "TERM"]))
        commands.run([*kill, "TERM"], timeout=60, check=False)
        try:
            launched.process.wait(grace_s)
        except subprocess.TimeoutExpired:
            launched.commands.append(shlex.join([*kill, "KILL"]))
            commands.run([*kill, "KILL"], timeout=60, check=False)

    def storage_device(self, ctx: Context) -> tuple[str, int, int]:
        try:
            path, major, minor = hosts.current().call(
                host_probe, "block_device", str(ctx.bundle_root)
            )
            return str(path), int(major), int(minor)
        except (OSError, HarnessError) as exc:
            where = f"the bundles of {self.name} are in {ctx.bundle_root}"
            raise HarnessError(f"{where}: {exc}") from None
