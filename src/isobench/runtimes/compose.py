"""Docker Compose as a runtime row: the request becomes a Compose file, run by Compose.

For each container, isobench writes a Compose file with one service from the
request and starts it with ``run -T --name NAME SERVICE`` of the installed
Compose (the ``docker compose`` plugin, else Debian's ``docker-compose``
1.29). ``run`` creates the container from the service definition as ``up``
does, but it attaches stdin and sets StdinOnce, so the probe's hold (it waits
until its stdin is closed) works. ``up`` creates its containers with
StdinOnce false, and then a closed stdin never reaches the container.

Facts and behaviour are read from the docker engine underneath, as the
docker row reads them. The probe image is imported by the docker row's own
import, and the host PID, exec, stop and the exit state come from the
engine. After the container starts, its ``docker inspect`` is compared with
the request, and each field that Compose accepted and did not apply is
recorded beside the commands of the container (a line starting with
``# not applied``), so that a failing check shows it.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shlex
import shutil
from collections.abc import Sequence
from typing import Any

import yaml

from isobench import commands
from isobench.errors import HarnessError, IsobenchError
from isobench.journal import Entry
from isobench.model import Request, capability_name
from isobench.runtimes.base import Adapter, Availability, Context, Launched, popen
from isobench.runtimes.engine import DOCKER, EngineAdapter

log = logging.getLogger(__name__)

#: The one service of every Compose file that isobench writes.
SERVICE = "probe"
#: Compose's own exit status when it, not the container's command, failed (1.29 and 2.x).
COMPOSE_FAILURE_STATUS = 1
#: Prefixes of the lines with which Compose reports its own errors: 1.29, then 2.x.
COMPOSE_ERROR_PREFIXES = (
    "ERROR: ",
    "The Compose file",
    "Unsupported config option",
    "Error response from daemon",
    "Error: ",
)
_ABSENT_CONTAINER = ("No such container", "no such container")
_ABSENT_NETWORK = ("No such network", "not found")
_INSTALL_HINT = "Install it with 'apt-get install docker-compose' or run 'make setup'."

#: Request fields that Compose 1.29 has no key for, with the reason a check skips.
CANNOT: dict[str, str] = {
    "uts": "Compose 1.29 has no 'uts' key (it rejects it as an unsupported config option)",
    "cgroupns": "Compose 1.29 has no 'cgroup' key (it rejects it as an unsupported config option)",
    "userns": "Compose has only 'userns_mode: host'; docker maps user namespaces for the "
    "whole daemon (userns-remap), not per container",
    "masked_paths": "'security_opt: [systempaths=unconfined]' is a docker CLI option that "
    "Compose passes to the daemon, which rejects it (invalid --security-opt)",
}

_DEFAULT_REQUEST = Request()


def compose_unsupported(request: Request) -> str | None:
    """Return why Compose 1.29 cannot express ``request``, or None when it can."""
    if request.uts == "host":
        return CANNOT["uts"]
    if request.cgroupns is not None:
        return CANNOT["cgroupns"]
    if request.userns == "private":
        return CANNOT["userns"]
    if request.masked_paths == "unconfined" and not request.privileged:
        return CANNOT["masked_paths"]
    for key, _value in request.env:
        if "=" in key:
            return f"the environment variable name {key!r} contains '=', which docker splits at"
    return None


def escape(text: str) -> str:
    """Escape ``$`` so that Compose's variable interpolation leaves ``text`` as it is."""
    return text.replace("$", "$$")


def service_definition(
    request: Request,
    image: str,
    argv: Sequence[str],
    env: dict[str, str],
    *,
    run_id: str,
    device: str | None = None,
) -> dict[str, Any]:
    """Translate a request into the definition of one Compose service.

    Memory and CPU limits go under ``deploy.resources.limits``, the form that both
    Compose and ``docker stack deploy`` read. ``device`` is the block device of the
    engine's storage, which the I/O limits name.
    """
    service: dict[str, Any] = {
        "image": image,
        "command": [escape(arg) for arg in argv],
        "labels": {"isobench.run": run_id},
    }
    environment = {key: escape(value) for key, value in request.env}
    environment.update({key: escape(value) for key, value in env.items()})
    if environment:
        service["environment"] = environment
    if request.hostname is not None:
        service["hostname"] = escape(request.hostname)
    if request.user is not None:
        service["user"] = request.user
    if request.workdir is not None:
        service["working_dir"] = escape(request.workdir)
    if request.pid == "host":
        service["pid"] = "host"
    if request.ipc == "host":
        service["ipc"] = "host"
    _network(service, request)

    _security(service, request)
    _filesystems(service, request)
    _resources(service, request, device)
    if request.init:
        service["init"] = True
    return service


def _network(service: dict[str, Any], request: Request) -> None:
    mode = {"none": "none", "host": "host", "default": None}[request.network]
    if mode is not None:
        service["network_mode"] = mode
    elif request.network_name is not None:
        # A network that the check made; the Compose file names it as external.
        service["networks"] = [request.network_name]
    # Otherwise the project's default network, which Compose makes for the run.
    if request.publish:
        service["ports"] = [
            f"{port.host_ip}:{port.host_port}:{port.container_port}/{port.protocol}"
            for port in request.publish
        ]
    if request.add_hosts:
        service["extra_hosts"] = [f"{entry.name}:{entry.address}" for entry in request.add_hosts]
    if request.dns:
        service["dns"] = list(request.dns)
    if request.dns_search:
        service["dns_search"] = list(request.dns_search)


def _security(service: dict[str, Any], request: Request) -> None:
    if request.cap_add:
        service["cap_add"] = list(request.cap_add)
    if request.cap_drop:
        service["cap_drop"] = list(request.cap_drop)
    options = []
    if request.seccomp == "unconfined":
        options.append("seccomp=unconfined")
    if request.no_new_privs:
        options.append("no-new-privileges")
    if options:
        service["security_opt"] = options
    if request.privileged:
        service["privileged"] = True


def _filesystems(service: dict[str, Any], request: Request) -> None:
    if request.read_only:
        service["read_only"] = True
    volumes = []
    for mount in request.mounts:
        volumes.append(
            {
                "type": "bind",
                "source": escape(mount.source),
                "target": escape(mount.target),
                "read_only": mount.read_only,
            }
        )
    if volumes:
        service["volumes"] = volumes
    if request.tmpfs:
        service["tmpfs"] = [f"{escape(t.target)}:size={int(t.size)}" for t in request.tmpfs]
    if request.devices:
        service["devices"] = [escape(device) for device in request.devices]
    if request.ulimits:
        service["ulimits"] = {
            limit.name: {"soft": limit.soft, "hard": limit.hard} for limit in request.ulimits
        }


def _resources(service: dict[str, Any], request: Request, device: str | None) -> None:
    limits: dict[str, str] = {}
    if request.memory is not None:
        # Compose reads a byte count with a unit; "b" keeps it exact.
        limits["memory"] = f"{int(request.memory)}b"
    if request.cpus is not None:
        limits["cpus"] = f"{request.cpus:g}"
    if limits:
        service["deploy"] = {"resources": {"limits": limits}}
    if request.memory_swap is not None:
        service["memswap_limit"] = int(request.memory_swap)
    if request.pids_limit is not None:
        service["pids_limit"] = request.pids_limit
    if request.cpuset_cpus is not None:
        service["cpuset"] = request.cpuset_cpus
    if request.cpu_shares is not None:
        service["cpu_shares"] = request.cpu_shares
    blkio: dict[str, list[dict[str, Any]]] = {}
    for key, value in (
        ("device_write_bps", request.device_write_bps),
        ("device_read_bps", request.device_read_bps),
    ):
        if value is None:
            continue
        if device is None:
            raise HarnessError("the block device of the engine's storage is not known yet")
        blkio[key] = [{"path": device, "rate": int(value)}]
    if blkio:
        service["blkio_config"] = blkio


def compose_file(service: dict[str, Any]) -> str:
    """Return the text of a Compose file with ``service`` as its only service."""
    document: dict[str, Any] = {"version": "3.8", "services": {SERVICE: service}}
    external = service.get("networks") or []
    if external:
        document["networks"] = {name: {"external": True} for name in external}
    return yaml.safe_dump(document, sort_keys=False, allow_unicode=True)


def project_name(name: str) -> str:
    """Return the Compose project name for a container name: Compose 1.29 keeps only
    lower-case letters, digits, '-' and '_'."""
    return re.sub(r"[^-_a-z0-9]", "", name.lower())


# -- what the container got, against the request ------------------------------


def _caps(names: Sequence[str] | None) -> set[str]:
    return {capability_name(name) for name in names or ()}


def not_applied(request: Request, inspect: dict[str, Any], device: str | None = None) -> list[str]:
    """Compare a container's ``docker inspect`` with the request; return one line for each
    requested field that the container did not get, with the value it has instead.

    Only fields that the request sets away from its default are compared.
    """
    host = inspect.get("HostConfig") or {}
    config = inspect.get("Config") or {}
    found: list[str] = []

    def differ(field: str, requested: object, key: str, have: object) -> None:
        if requested != have:
            found.append(f"{field}: requested {requested!r}, {key} is {have!r}")

    if request.memory is not None:
        differ("memory", int(request.memory), "HostConfig.Memory", host.get("Memory"))
    if request.memory_swap is not None:
        requested = int(request.memory_swap)
        differ("memory_swap", requested, "HostConfig.MemorySwap", host.get("MemorySwap"))
    if request.pids_limit is not None:
        differ("pids_limit", request.pids_limit, "HostConfig.PidsLimit", host.get("PidsLimit"))
    if request.cpus is not None:
        nano = host.get("NanoCpus") or 0
        quota, period = host.get("CpuQuota") or 0, host.get("CpuPeriod") or 100000
        have = nano / 1e9 if nano else (quota / period if quota > 0 else 0.0)
        if abs(have - request.cpus) > 1e-6:
            found.append(
                f"cpus: requested {request.cpus:g}, HostConfig.NanoCpus is {nano} "
                f"(CpuQuota {quota})"
            )
    if request.cpuset_cpus is not None:
        differ("cpuset_cpus", request.cpuset_cpus, "HostConfig.CpusetCpus", host.get("CpusetCpus"))
    if request.cpu_shares is not None:
        differ("cpu_shares", request.cpu_shares, "HostConfig.CpuShares", host.get("CpuShares"))
    for field, key, value in (
        ("device_write_bps", "BlkioDeviceWriteBps", request.device_write_bps),
        ("device_read_bps", "BlkioDeviceReadBps", request.device_read_bps),
    ):
        if value is not None:
            rates = [entry.get("Rate") for entry in host.get(key) or []]
            if int(value) not in rates:
                found.append(f"{field}: requested {int(value)}, HostConfig.{key} is {rates!r}")
    for field, key in (("pid", "PidMode"), ("ipc", "IpcMode"), ("uts", "UTSMode")):
        if getattr(request, field) == "host":
            differ(field, "host", f"HostConfig.{key}", host.get(key))
    if request.network in ("none", "host"):
        differ("network", request.network, "HostConfig.NetworkMode", host.get("NetworkMode"))
    if request.network_name is not None:
        differ(
            "network_name", request.network_name, "HostConfig.NetworkMode", host.get("NetworkMode")
        )
    bindings = host.get("PortBindings") or {}
    for port in request.publish:
        bound = bindings.get(f"{port.container_port}/{port.protocol}") or []
        binding = {"HostIp": port.host_ip, "HostPort": str(port.host_port)}
        if binding not in bound:
            found.append(
                f"publish: {port.host_ip}:{port.host_port} to {port.container_port}/"
                f"{port.protocol} not in HostConfig.PortBindings"
            )
    extra_hosts = " ".join(host.get("ExtraHosts") or [])
    for entry in request.add_hosts:
        if entry.name not in extra_hosts or entry.address not in extra_hosts:
            found.append(f"add_hosts: {entry.name} {entry.address} not in HostConfig.ExtraHosts")
    for field, key in (("dns", "Dns"), ("dns_search", "DnsSearch")):
        requested_list = list(getattr(request, field))
        if requested_list and requested_list != list(host.get(key) or []):
            found.append(
                f"{field}: requested {requested_list!r}, HostConfig.{key} is {host.get(key)!r}"
            )
    if request.cgroupns is not None:
        differ("cgroupns", request.cgroupns, "HostConfig.CgroupnsMode", host.get("CgroupnsMode"))
    missing_add = _caps(request.cap_add) - _caps(host.get("CapAdd"))
    if missing_add:
        found.append(f"cap_add: {sorted(missing_add)} not in HostConfig.CapAdd")
    missing_drop = _caps(request.cap_drop) - _caps(host.get("CapDrop"))
    if missing_drop:
        found.append(f"cap_drop: {sorted(missing_drop)} not in HostConfig.CapDrop")
    security = host.get("SecurityOpt") or []
    if request.seccomp == "unconfined" and "seccomp=unconfined" not in security:
        found.append(f"seccomp: unconfined requested, HostConfig.SecurityOpt is {security!r}")
    if request.no_new_privs and not any(o.startswith("no-new-privileges") for o in security):
        found.append(f"no_new_privs: requested, HostConfig.SecurityOpt is {security!r}")
    if request.privileged:
        differ("privileged", True, "HostConfig.Privileged", host.get("Privileged"))
    if request.read_only:
        differ("read_only", True, "HostConfig.ReadonlyRootfs", host.get("ReadonlyRootfs"))
    if request.init:
        differ("init", True, "HostConfig.Init", host.get("Init"))
    found += _mounts_not_applied(request, inspect)
    devices = {entry.get("PathOnHost") for entry in host.get("Devices") or []}
    for path in request.devices:
        if path not in devices:
            found.append(f"devices: {path} not in HostConfig.Devices")
    ulimits = {(u.get("Name"), u.get("Soft"), u.get("Hard")) for u in host.get("Ulimits") or []}
    for limit in request.ulimits:
        if (limit.name, limit.soft, limit.hard) not in ulimits:
            found.append(
                f"ulimits: {limit.name}={limit.soft}:{limit.hard} not in HostConfig.Ulimits"
            )
    if request.hostname is not None:
        differ("hostname", request.hostname, "Config.Hostname", config.get("Hostname"))
    if request.user is not None:
        differ("user", request.user, "Config.User", config.get("User"))
    if request.workdir is not None:
        differ("workdir", request.workdir, "Config.WorkingDir", config.get("WorkingDir"))
    environment = set(config.get("Env") or [])
    for key, text in request.env:
        if f"{key}={text}" not in environment:
            found.append(f"env: {key} is not set to the requested value in Config.Env")
    return found


def _mounts_not_applied(request: Request, inspect: dict[str, Any]) -> list[str]:
    found = []
    mounts = inspect.get("Mounts") or []
    binds = {
        (m.get("Destination"), not m.get("RW", True)) for m in mounts if m.get("Type") == "bind"
    }
    for mount in request.mounts:
        if (mount.target, mount.read_only) not in binds:
            found.append(
                f"mounts: no {'read-only ' if mount.read_only else ''}bind mount on {mount.target}"
            )
    host = inspect.get("HostConfig") or {}
    tmpfs = set((host.get("Tmpfs") or {}).keys())
    tmpfs |= {m.get("Target") for m in host.get("Mounts") or [] if m.get("Type") == "tmpfs"}
    for entry in request.tmpfs:
        if entry.target not in tmpfs:
            found.append(f"tmpfs: no tmpfs on {entry.target} in HostConfig")
    return found


def record_not_applied(
    engine: EngineAdapter,
    request: Request,
    launched: Launched,
    container: str,
    layer: str,
    dropped: dict[str, str],
) -> None:
    """Inspect the container once and add a ``# not applied by LAYER`` line to the commands
    of ``launched`` for each requested field that it lacks; note the field in ``dropped``
    for the run's capability matrix."""
    if launched.state.get("compared"):
        return
    command = [engine.binary, "inspect", "--type", "container", container]
    result = commands.run(command, timeout=30, check=False)
    try:
        inspected = json.loads(result.stdout or "[]")
    except json.JSONDecodeError:
        return
    if not inspected:
        return
    launched.state["compared"] = "yes"
    launched.commands.append(shlex.join(command))
    for line in not_applied(request, inspected[0]):
        log.warning("%s accepted and did not apply %s", layer, line)
        launched.commands.append(f"# not applied by {layer}: {line}")
        dropped.setdefault(line.split(":", 1)[0], line)


# -- the adapter -----------------------------------------------------------------


def find_compose(docker: str) -> list[str] | None:
    """Return the Compose command: ISOBENCH_COMPOSE, the docker compose plugin, or
    docker-compose on PATH."""
    configured = os.environ.get("ISOBENCH_COMPOSE")
    if configured:
        return shlex.split(configured)
    plugin = commands.run([docker, "compose", "version"], timeout=30, check=False)
    if plugin.returncode == 0:
        return [docker, "compose"]
    found = shutil.which("docker-compose")
    return [found] if found else None


class ComposeAdapter(Adapter):
    """A Compose file with one service per request, run by the installed Compose."""

    name = "compose"
    family = "orchestration"

    def __init__(self) -> None:
        self.engine = EngineAdapter(DOCKER)
        # The engine's client directory and journal entries then carry this row's name.
        self.engine.name = self.name
        self._compose: list[str] | None = None
        self._availability: Availability | None = None
        self._requests: dict[str, Request] = {}
        #: Request fields this row accepted and did not apply in the run, as inspect shows.
        self._dropped: dict[str, str] = {}

    def dropped(self) -> dict[str, str]:
        return dict(self._dropped)

    @property
    def compose(self) -> list[str]:
        if self._compose is None:
            self._compose = find_compose(self.engine.binary) or ["docker-compose"]
        return self._compose

    def _endpoint(self) -> list[str]:
        address = os.environ.get("DOCKER_HOST")
        return ["--host", address] if address else []

    def _client(self) -> list[str]:
        """Return the Compose command with the engine that DOCKER_HOST names, because
        'isobench clean' may run without that environment. The plugin takes it as an
        option of docker, docker-compose 1.29 as its own."""
        compose = self.compose
        if compose[1:] == ["compose"]:
            return [compose[0], *self._endpoint(), "compose"]
        return [*compose, *self._endpoint()]

    def availability(self) -> Availability:
        if self._availability is None:
            self._availability = self._check_availability()
        return self._availability

    def _check_availability(self) -> Availability:
        engine = self.engine.availability()
        if not engine.available:
            return Availability(
                False, installed=engine.installed, reason=engine.reason, hint=engine.hint
            )
        compose = find_compose(self.engine.binary)
        if compose is None:
            return Availability(
                False,
                installed=False,
                reason="no Compose found (tried 'docker compose' and docker-compose; "
                "set ISOBENCH_COMPOSE)",
                hint=_INSTALL_HINT,
            )
        self._compose = compose
        try:
            result = commands.run([*compose, "version", "--short"], timeout=30)
        except IsobenchError as exc:
            return Availability(False, reason=str(exc), hint=_INSTALL_HINT)
        version = result.stdout.strip()
        details = {
            **engine.details,
            "compose": shlex.join(compose),
            "compose_version": version,
        }
        return Availability(True, version=f"{version} on docker {engine.version}", details=details)

    def unsupported(self, request: Request) -> str | None:
        return compose_unsupported(request)

    def runtime_failure(self, exit_code: int, stderr: str) -> str | None:
        if exit_code != COMPOSE_FAILURE_STATUS:
            return None
        for line in stderr.splitlines():
            if line.startswith(COMPOSE_ERROR_PREFIXES):
                return f"compose itself failed: {line.strip()}"
        return None

    def prepare(self, ctx: Context) -> None:
        self.engine.prepare(ctx)

    def network_unsupported(self, peer_traffic: bool = True) -> str | None:
        return self.engine.network_unsupported(peer_traffic)

    def create_network(self, ctx: Context, peer_traffic: bool = True) -> tuple[str, list[Entry]]:
        # A docker network, which the Compose file names as external.
        return self.engine.create_network(ctx, peer_traffic)

    def storage_device(self, ctx: Context) -> tuple[str, int, int]:
        return self.engine.storage_device(ctx)

    def launch(
        self, ctx: Context, request: Request, argv: Sequence[str], env: dict[str, str]
    ) -> Launched:
        image = ctx.image_for(request)
        self.engine._ensure_image(image)
        device = None
        if request.device_write_bps is not None or request.device_read_bps is not None:
            device = self.engine.storage_device(ctx)[0]
        name = ctx.container_name(self.name)
        project = project_name(name)
        directory = self.engine.client_directory(ctx) / project
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / "compose.yaml"
        service = service_definition(
            request, image.reference, argv, env, run_id=ctx.run_id, device=device
        )
        path.write_text(compose_file(service), encoding="utf-8")

        base = [*self._client(), "--project-name", project, "--file", str(path)]
        docker = [self.engine.binary, *self._endpoint()]
        # Journaled before they exist, removed in the reverse order: the project, then
        # whatever its removal left (the container, the project's default network).
        entries = [
            ctx.journal.record(
                "network",
                f"{project}_default",
                [*docker, "network", "rm", f"{project}_default"],
                runtime=self.name,
                absent=_ABSENT_NETWORK,
            ),
            ctx.journal.record(
                "container",
                name,
                [*docker, "rm", "--force", name],
                runtime=self.name,
                absent=_ABSENT_CONTAINER,
            ),
            ctx.journal.record(
                "project",
                project,
                [*base, "down", "--volumes", "--remove-orphans", "--timeout", "1"],
                runtime=self.name,
            ),
        ]
        # 'run' publishes the service's ports only with --service-ports.
        ports = ["--service-ports"] if request.publish else []
        command = [*base, "run", "-T", "--no-deps", *ports, "--name", name, SERVICE]
        process = popen(command, cwd=directory)
        launched = Launched(name=name, process=process, argv=command, entries=entries)
        launched.commands.append(f"# the Compose file {path}:\n{path.read_text(encoding='utf-8')}")
        self._requests[name] = request
        return launched

    def host_pid(self, ctx: Context, launched: Launched) -> int | None:
        self._compare(launched)
        return self.engine.host_pid(ctx, launched)

    def _compare(self, launched: Launched) -> None:
        request = self._requests.get(launched.name)
        if request is not None:
            record_not_applied(
                self.engine, request, launched, launched.name, self.name, self._dropped
            )

    def exec_detached(self, ctx: Context, launched: Launched, argv: Sequence[str]) -> None:
        self.engine.exec_detached(ctx, launched, argv)

    def exec_output(self, ctx: Context, launched: Launched, argv: Sequence[str]) -> str:
        return self.engine.exec_output(ctx, launched, argv)

    def stop(self, ctx: Context, launched: Launched, grace_s: float) -> None:
        self.engine.stop(ctx, launched, grace_s)

    def exit_state(self, ctx: Context, launched: Launched) -> dict[str, str]:
        self._compare(launched)
        return self.engine.exit_state(ctx, launched)

    def finish(self, ctx: Context, launched: Launched) -> None:
        self._requests.pop(launched.name, None)
        super().finish(ctx, launched)
