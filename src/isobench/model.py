"""Runtime-neutral data: the container request, the run result and the facts.

Every adapter translates a :class:`Request` into its own command line or
``config.json``; every check reads a :class:`RunResult` or :class:`Facts`.
Nothing here depends on a particular runtime.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, ByteSize, ConfigDict, Field, field_validator, model_validator

Sharing = Literal["private", "host"]
NetworkMode = Literal["none", "default", "host"]

#: Every capability of Linux 6.x, in bit order (capability(7)).
CAPABILITIES = (
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
)


def capability_name(name: str) -> str:
    """Return a capability as the kernel headers name it: CAP_ and upper case (net_admin
    becomes CAP_NET_ADMIN). ALL becomes CAP_ALL."""
    upper = name.upper()
    return upper if upper.startswith("CAP_") else f"CAP_{upper}"


#: Paths that the engines and the OCI runtime spec's example config mask.
MASKED_PATHS = (
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/sys/firmware",
    "/proc/scsi",
)

#: Paths that the engines and the OCI runtime spec's example config make read-only.
READONLY_PATHS = (
    "/proc/sys",
    "/proc/sysrq-trigger",
    "/proc/irq",
    "/proc/bus",
    "/proc/fs",
)


#: Resource limits a request may set, by their ulimit names (getrlimit(2)).
RLIMITS = {
    "core": "RLIMIT_CORE",
    "cpu": "RLIMIT_CPU",
    "data": "RLIMIT_DATA",
    "fsize": "RLIMIT_FSIZE",
    "locks": "RLIMIT_LOCKS",
    "memlock": "RLIMIT_MEMLOCK",
    "msgqueue": "RLIMIT_MSGQUEUE",
    "nice": "RLIMIT_NICE",
    "nofile": "RLIMIT_NOFILE",
    "nproc": "RLIMIT_NPROC",
    "rss": "RLIMIT_RSS",
    "rtprio": "RLIMIT_RTPRIO",
    "sigpending": "RLIMIT_SIGPENDING",
    "stack": "RLIMIT_STACK",
}


class Mount(BaseModel):
    """A host directory bound into the container."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    source: str = Field(
        description="Host path; may name a host fact such as {host.marker.bind_dir}."
    )
    target: str = Field(pattern=r"^/", description="Path inside the container.")
    read_only: bool = Field(default=False, description="Bind it read-only.")


class Tmpfs(BaseModel):
    """A tmpfs mounted in the container, with a size limit."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    target: str = Field(pattern=r"^/", description="Path inside the container.")
    size: ByteSize = Field(description="Size limit, in bytes or with a unit (8MiB).")


class Ulimit(BaseModel):
    """One resource limit: its name, soft and hard values."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: Literal[tuple(RLIMITS)] = Field(description="The limit, as ulimit names it: nofile.")  # type: ignore[valid-type]
    soft: int = Field(ge=0, description="The soft limit.")
    hard: int = Field(ge=0, description="The hard limit.")

    @model_validator(mode="after")
    def _soft_within_hard(self) -> Ulimit:
        if self.soft > self.hard:
            raise ValueError(f"the soft limit {self.soft} is above the hard limit {self.hard}")
        return self


#: IPv4 addresses in 127.0.0.0/8: a published port binds one of them, so that the
#: traffic of a check stays on this machine.
LOOPBACK_PATTERN = r"^127\.(25[0-5]|2[0-4]\d|1?\d?\d)(\.(25[0-5]|2[0-4]\d|1?\d?\d)){2}$"
IPV4_PATTERN = r"^(25[0-5]|2[0-4]\d|1?\d?\d)(\.(25[0-5]|2[0-4]\d|1?\d?\d)){3}$"
#: A host or domain name: dot-separated labels of letters, digits and inner hyphens.
NAME_PATTERN = (
    r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)


class Publish(BaseModel):
    """A container port published on a loopback address of the host."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    host_ip: str = Field(
        default="127.0.0.1",
        pattern=LOOPBACK_PATTERN,
        description="Host address to bind, in 127.0.0.0/8: isobench aims no traffic elsewhere.",
    )
    host_port: int = Field(ge=1, le=65535, description="Port on the host address.")
    container_port: int = Field(ge=1, le=65535, description="Port inside the container.")
    protocol: Literal["tcp", "udp"] = Field(default="tcp", description="tcp or udp.")


class HostEntry(BaseModel):
    """A line added to the container's /etc/hosts."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=NAME_PATTERN, max_length=253, description="Host name.")
    address: str = Field(pattern=IPV4_PATTERN, description="IPv4 address.")


class Request(BaseModel):
    """The container that a check requests of a runtime.

    ``None`` means "the runtime's default". Two checks with equal requests
    share one probe container, so the model is frozen and hashable.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    hostname: str | None = Field(default=None, description="Hostname inside the container.")
    env: tuple[tuple[str, str], ...] = Field(
        default=(), description="Extra environment variables, as name/value pairs."
    )
    user: str | None = Field(
        default=None, pattern=r"^\d+(:\d+)?$", description="User (uid or uid:gid) of the process."
    )
    pid: Sharing = Field(default="private", description="PID namespace: private or the host's.")
    network: NetworkMode = Field(
        default="none",
        description="Network: none (loopback only), the runtime's default network, or the host's.",
    )
    network_name: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$",
        description="A network that the check made (Adapter.create_network) to attach the "
        "container to, instead of the runtime's default network; needs network=default.",
    )
    publish: tuple[Publish, ...] = Field(
        default=(), description="Container ports published on the host; need network=default."
    )
    add_hosts: tuple[HostEntry, ...] = Field(
        default=(), description="Lines to add to the container's /etc/hosts."
    )
    dns: tuple[str, ...] = Field(
        default=(),
        description="Name servers (IPv4) for the container's /etc/resolv.conf. The checks "
        "read the file; nothing queries them.",
    )
    dns_search: tuple[str, ...] = Field(
        default=(), description="Search domains for the container's /etc/resolv.conf."
    )
    ipc: Sharing = Field(default="private", description="IPC namespace.")
    uts: Sharing = Field(default="private", description="UTS namespace (hostname).")
    cgroupns: Sharing | None = Field(
        default=None, description="Cgroup namespace; unset keeps the runtime's default."
    )
    userns: Sharing = Field(
        default="host",
        description="User namespace: the host's, or private with container root mapped "
        "to an unprivileged host uid range.",
    )
    cap_add: tuple[str, ...] = Field(default=(), description="Capabilities to add.")
    cap_drop: tuple[str, ...] = Field(default=(), description="Capabilities to drop.")
    seccomp: Literal["default", "unconfined"] = Field(
        default="default", description="The runtime's default seccomp profile, or none."
    )
    no_new_privs: bool | None = Field(
        default=None, description="Set no_new_privs on the process; unset keeps the default."
    )

    privileged: bool = Field(
        default=False,
        description="Every capability, every device, no seccomp filter and no masked or "
        "read-only paths.",
    )
    masked_paths: Literal["default", "unconfined"] = Field(
        default="default",
        description="Mask and make read-only the runtime's list of /proc and /sys paths, or not.",
    )
    read_only: bool = Field(default=False, description="Mount the root filesystem read-only.")
    mounts: tuple[Mount, ...] = Field(
        default=(), description="Host directories to bind into the container."
    )
    tmpfs: tuple[Tmpfs, ...] = Field(
        default=(), description="Size-limited tmpfs mounts in the container."
    )
    devices: tuple[str, ...] = Field(
        default=(), description="Host device nodes to add, by path (/dev/fuse)."
    )
    ulimits: tuple[Ulimit, ...] = Field(
        default=(), description="Resource limits (setrlimit) of the process."
    )
    init: bool | None = Field(
        default=None,
        description="Run an init process as PID 1 that forwards signals and reaps orphans; "
        "unset keeps the runtime's default.",
    )
    workdir: str | None = Field(
        default=None, pattern=r"^/", description="Working directory of the process."
    )
    image: Literal["probe", "static", "bench"] = Field(
        default="probe",
        description="The probe image (busybox and a shell), the static image (one static "
        "binary, /busybox, and no shell), or the benchmark image (the probe image with fio, "
        "sockperf and iperf3).",
    )

    memory: ByteSize | None = Field(
        default=None, description="Memory limit, in bytes or with a unit (64MiB, 32m)."
    )
    memory_swap: ByteSize | None = Field(
        default=None,
        description="Memory plus swap limit (as docker's --memory-swap); equal to memory "
        "means no swap.",
    )
    pids_limit: int | None = Field(default=None, ge=1, description="Maximum number of tasks.")
    cpus: float | None = Field(
        default=None, gt=0, description="CPU quota in CPUs per period (0.5 is half a CPU)."
    )
    cpuset_cpus: str | None = Field(
        default=None, pattern=r"^[0-9,-]+$", description="CPUs the container may run on (0-1, 0,2)."
    )
    cpu_shares: int | None = Field(
        default=None, ge=2, le=262144, description="Relative CPU weight as cgroup v1 shares."
    )
    device_write_bps: ByteSize | None = Field(
        default=None,
        description="Write bandwidth limit, in bytes per second, on the block device that "
        "holds the container's writable layer.",
    )
    device_read_bps: ByteSize | None = Field(
        default=None,
        description="Read bandwidth limit, in bytes per second, on that block device.",
    )

    @field_validator("dns")
    @classmethod
    def _ipv4_servers(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for address in value:
            if not re.match(IPV4_PATTERN, address):
                raise ValueError(f"{address!r} is not an IPv4 address")
        return value

    @field_validator("dns_search")
    @classmethod
    def _domains(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for domain in value:
            if len(domain) > 253 or not re.match(NAME_PATTERN, domain):
                raise ValueError(f"{domain!r} is not a domain name")
        return value

    @model_validator(mode="after")
    def _network_attachments(self) -> Request:
        needs = [name for name in ("network_name", "publish") if getattr(self, name)]
        if needs and self.network != "default":
            raise ValueError(
                f"{' and '.join(needs)} {'need' if len(needs) > 1 else 'needs'} "
                f"network=default, not network={self.network}"
            )
        return self

    @field_validator("memory", "memory_swap", "device_write_bps", "device_read_bps", mode="before")
    @classmethod
    def _docker_units(cls, value: object) -> object:
        """Accept docker's unit letters (32m, 1g) besides pydantic's (32MiB)."""
        if isinstance(value, str) and value[-1:].lower() in "kmg" and value[:-1].isdigit():
            factor = {"k": 1024, "m": 1024**2, "g": 1024**3}[value[-1].lower()]
            return int(value[:-1]) * factor
        return value

    def describe(self) -> str:
        """Return the fields that differ from the defaults, as ``key=value`` text."""
        changed = self.model_dump(exclude_defaults=True)
        if not changed:
            return "defaults"
        return ", ".join(f"{key}={value}" for key, value in sorted(changed.items()))


@dataclass
class RunResult:
    """The output of one container run, and the commands that produced it."""

    exit_code: int | None
    stdout: str
    stderr: str
    duration_s: float
    commands: list[str] = field(default_factory=list)
    host_pid: int | None = None
    timed_out: bool = False


@dataclass
class Facts:
    """Facts gathered about one container, keyed by dotted names such as ``ns.pid``.

    A fact is a string or a list of strings. ``sources`` tells for each
    fact whether it was read inside the container or on the host side.
    """

    values: dict[str, str | list[str]] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    run: RunResult | None = None

    def get(self, name: str) -> str | list[str] | None:
        return self.values.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self.values

    def __iter__(self) -> Iterator[str]:
        return iter(self.values)

    def update(self, values: Mapping[str, str | list[str]], source: str) -> None:
        for name, value in values.items():
            self.values[name] = value
            self.sources[name] = source
