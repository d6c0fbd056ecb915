"""Docker Swarm as a runtime row: each request becomes a one-replica service.

``prepare`` makes the docker engine a single-node swarm for the run
(``docker swarm init``, advertising and listening on 127.0.0.1 only) unless
the node is a swarm member already. At the end of the run, the journal runs
``docker swarm leave --force`` and removes the ``docker_gwbridge`` network
that the swarm made. On a node that was a member already, only the run's
own services are removed.

Each container is a service made by ``docker service create`` with
``--restart-condition none``. The CLI has no option that opens a service's
stdin, which the probe's hold needs (it waits until it reads a line), so the
service is made with no replica, then its spec gets ``OpenStdin`` through the
engine API and one replica. A relay process (``python -m
isobench.runtimes.swarm relay``) stands in for the container's client: it
copies the container's log (``docker logs --follow``) to its stdout and
stderr, sends an empty line to the task's container through
``docker attach`` once its own stdin is closed, and exits with the
container's exit status. A swarm service's stdin is never closed (there is
no StdinOnce for services), so a command that reads stdin to its end would
never end: the relay rejects text for the command's stdin instead.

A service cannot join docker's ``none`` network, so a request for network
``none`` puts the service on an internal overlay network that the row makes
once per run (``docker network create --driver overlay --internal``): the
task has a loopback and one interface on that network, with a route to the
network's subnet and no default route.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import logging
import os
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any, ClassVar

from isobench import commands
from isobench.errors import CommandFailed, HarnessError
from isobench.model import Request
from isobench.runtimes.base import Adapter, Availability, Context, Launched, popen
from isobench.runtimes.compose import (
    SERVICE,
    compose_file,
    project_name,
    record_not_applied,
    service_definition,
)
from isobench.runtimes.engine import DOCKER, EngineAdapter

log = logging.getLogger(__name__)

#: The relay's exit status when the swarm, not the container's command, failed.
SWARM_FAILURE_STATUS = 125
#: The prefix of the relay's own error lines on stderr.
SWARM_ERROR_PREFIX = "swarm: "
#: The relay's message when it is given text for the container's stdin.
STDIN_REJECTED = (
    "input text for the command was rejected: a service's stdin is never closed (a "
    "service has no StdinOnce), so the end of the text could not reach the command"
)
#: Seconds the relay waits for the service's task to get a container.
TASK_TIMEOUT_S = 60.0
#: Seconds the relay waits, after the container stopped, for the end of its log.
LOG_END_TIMEOUT_S = 30.0
#: The bridge network that swarm makes on a node that joins a swarm, and keeps after it leaves.
GATEWAY_BRIDGE = "docker_gwbridge"
_ABSENT_SERVICE = ("not found", "No such service", "not a swarm manager")
#: Seconds that the removal of a service waits for swarm to remove its task's container.
REMOVAL_WAIT_S = 30.0
_ABSENT_NETWORK = ("No such network", "not found")

#: Request fields that ``docker service create`` of docker 20.10 has no option for.
CANNOT: dict[str, str] = {
    "pid": "a swarm service has no option for the host's PID namespace",
    "ipc": "a swarm service has no option for the host's IPC namespace",
    "uts": "a swarm service has no option for the host's UTS namespace",
    "cgroupns": "a swarm service has no option for the cgroup namespace",
    "userns": "docker maps user namespaces for the whole daemon (userns-remap), not per service",
    "seccomp": "a swarm service has no option for the seccomp profile",
    "no_new_privs": "a swarm service has no option for no_new_privs",
    "privileged": "a swarm service cannot be privileged",
    "masked_paths": "a swarm service has no option to unmask /proc and /sys paths",
    "devices": "a swarm service has no option to add device nodes",
    "memory_swap": "a swarm service has no option for a memory plus swap limit",
    "cpuset_cpus": "a swarm service has no option for a cpuset",
    "cpu_shares": "a swarm service has no option for CPU shares",
    "device_write_bps": "a swarm service has no option for block I/O throttling",
    "device_read_bps": "a swarm service has no option for block I/O throttling",
}
#: The replacement that the swarm and stack rows run for network 'none'. The capability
#: matrix shows it as the reason that the network field is expressed only partly.
NETWORK_NONE = (
    "a swarm service cannot join docker's 'none' network (docker 20.10: 'network none "
    "not found'), so the service is attached to an internal overlay network of the run "
    "instead: the task has a loopback and one interface on that network, with a route to "
    "the network's subnet and no default route"
)

_DEFAULT_REQUEST = Request()


def swarm_unsupported(request: Request) -> str | None:
    """Return why a docker 20.10 swarm service cannot express ``request``, or None."""
    for field, reason in CANNOT.items():
        if getattr(request, field) != getattr(_DEFAULT_REQUEST, field):
            if field == "no_new_privs" and request.no_new_privs is False:
                continue
            return reason
    if request.network_name is not None:
        return (
            "a swarm service attaches only to swarm-scope networks, and the checks' networks "
            "are docker bridge networks of the node"
        )
    if request.publish:
        return (
            "a swarm service publishes a port on every address of the node (ingress or "
            "mode=host), not on one loopback address"
        )
    for key, _value in request.env:
        if "=" in key:
            return f"the environment variable name {key!r} contains '=', which docker splits at"
    for mount in request.mounts:
        if "," in mount.source or "," in mount.target:
            return (
                f"'docker service create --mount' splits at commas, so it cannot bind "
                f"{mount.source!r}"
            )
    return None


def service_options(
    request: Request, env: dict[str, str], none_network: str | None = None
) -> list[str]:
    """Translate a request into ``docker service create`` options.

    ``none_network`` is the internal network that replaces network ``none``, so a
    request for network ``none`` needs it.
    """
    if request.network == "none" and none_network is None:
        raise HarnessError("a request for network 'none' needs the run's internal network")
    options: list[str] = []
    if request.hostname is not None:
        options += ["--hostname", request.hostname]
    for key, value in [*request.env, *env.items()]:
        options += ["--env", f"{key}={value}"]
    if request.user is not None:
        options += ["--user", request.user]
    if request.workdir is not None:
        options += ["--workdir", request.workdir]

    if request.network == "host":
        options += ["--network", "host"]
    elif request.network == "none" and none_network is not None:
        options += ["--network", none_network]
    for entry in request.add_hosts:
        options += ["--host", f"{entry.name}:{entry.address}"]
    for server in request.dns:
        options += ["--dns", server]
    for domain in request.dns_search:
        options += ["--dns-search", domain]

    for cap in request.cap_add:
        options += ["--cap-add", cap]
    for cap in request.cap_drop:
        options += ["--cap-drop", cap]
    if request.read_only:
        options += ["--read-only"]
    for mount in request.mounts:
        spec = f"type=bind,source={mount.source},target={mount.target}"
        options += ["--mount", spec + (",readonly" if mount.read_only else "")]
    for tmpfs in request.tmpfs:
        options += ["--mount", f"type=tmpfs,target={tmpfs.target},tmpfs-size={int(tmpfs.size)}"]
    for limit in request.ulimits:
        options += ["--ulimit", f"{limit.name}={limit.soft}:{limit.hard}"]
    if request.init:
        options += ["--init"]

    if request.memory is not None:
        options += ["--limit-memory", str(int(request.memory))]
    if request.pids_limit is not None:
        options += ["--limit-pids", str(request.pids_limit)]
    if request.cpus is not None:
        options += ["--limit-cpu", f"{request.cpus:g}"]
    return options


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=60)
        self.path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(60)
        self.sock.connect(self.path)


def engine_socket() -> str:
    """Return the unix socket of the engine that DOCKER_HOST names (or the default one)."""
    address = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    if not address.startswith("unix://"):
        raise HarnessError(
            f"the swarm row reaches the engine API over a unix socket only; DOCKER_HOST "
            f"is {address}"
        )
    return address.removeprefix("unix://")


def open_stdin(service: dict[str, Any]) -> dict[str, Any]:
    """Return the spec of an inspected service with stdin opened and one replica."""
    spec: dict[str, Any] = json.loads(json.dumps(service["Spec"]))
    spec["TaskTemplate"]["ContainerSpec"]["OpenStdin"] = True
    spec["Mode"] = {"Replicated": {"Replicas": 1}}
    return spec


class SwarmAdapter(Adapter):
    """A one-replica swarm service per request, on a single-node swarm of the run."""

    name = "swarm"
    family = "orchestration"
    #: Samples of the capability matrix that the row runs in another form, with how.
    matrix_partly: ClassVar[dict[str, str]] = {"network=none (default)": NETWORK_NONE}

    def __init__(self) -> None:
        self.engine = EngineAdapter(DOCKER)
        self.engine.name = self.name
        self._availability: Availability | None = None
        self._requests: dict[str, Request] = {}
        #: Request fields this row accepted and did not apply in the run, as inspect shows.
        self._dropped: dict[str, str] = {}
        self._lock = threading.Lock()
        self._joined: set[str] = set()
        #: The internal network of each run that replaces network 'none'.
        self._none_networks: dict[str, str] = {}

    def dropped(self) -> dict[str, str]:
        return dict(self._dropped)

    def _docker(self) -> list[str]:
        address = os.environ.get("DOCKER_HOST")
        return [self.engine.binary, *(["--host", address] if address else [])]

    def availability(self) -> Availability:
        if self._availability is None:
            engine = self.engine.availability()
            if not engine.available:
                self._availability = engine
            else:
                state = self._node_state()
                self._availability = Availability(
                    True,
                    version=engine.version,
                    details={**engine.details, "swarm_state_before_run": state},
                )
        return self._availability

    def _node_state(self) -> str:
        result = commands.run(
            [*self._docker(), "info", "--format", "{{.Swarm.LocalNodeState}}"],
            timeout=30,
            check=False,
        )
        return result.stdout.strip()

    def unsupported(self, request: Request) -> str | None:
        return swarm_unsupported(request)

    def runtime_failure(self, exit_code: int, stderr: str) -> str | None:
        if exit_code != SWARM_FAILURE_STATUS:
            return None
        for line in stderr.splitlines():
            if line.startswith(SWARM_ERROR_PREFIX):
                return line.removeprefix(SWARM_ERROR_PREFIX).strip()
        return None

    def storage_device(self, ctx: Context) -> tuple[str, int, int]:
        return self.engine.storage_device(ctx)

    # -- the swarm -------------------------------------------------------

    def prepare(self, ctx: Context) -> None:
        self.engine.prepare(ctx)
        with self._lock:
            if ctx.run_id in self._joined:
                return
            state = self._node_state()
            if state == "active":
                # NOTE: a swarm that another isobench run made is taken for one that was
                # there before, and that run leaves it at its end, under this run's services.
                log.info("the docker node is a swarm member already: only services are removed")
            elif state == "inactive":
                self._init_swarm(ctx)
            else:
                raise HarnessError(
                    f"the docker node's swarm state is '{state}'; isobench needs 'inactive' "
                    "(it makes a swarm for the run) or 'active'"
                )
            self._joined.add(ctx.run_id)

    def _init_swarm(self, ctx: Context) -> None:
        docker = self._docker()
        networks = commands.run(
            [*docker, "network", "ls", "--format", "{{.Name}}"], timeout=30
        ).stdout.split()
        if GATEWAY_BRIDGE not in networks:
            ctx.journal.record(
                "network",
                GATEWAY_BRIDGE,
                [*docker, "network", "rm", GATEWAY_BRIDGE],
                runtime=self.name,
                absent=_ABSENT_NETWORK,
            )
        ctx.journal.record(
            "swarm",
            "single-node swarm",
            [*docker, "swarm", "leave", "--force"],
            runtime=self.name,
            absent=("not part of a swarm",),
        )
        port = free_port()
        init = [
            *docker,
            *("swarm", "init", "--advertise-addr", "127.0.0.1"),
            *("--listen-addr", f"127.0.0.1:{port}", "--data-path-addr", "127.0.0.1"),
        ]
        commands.run(init, timeout=60)
        log.info("made a single-node swarm listening on 127.0.0.1:%d for run %s", port, ctx.run_id)

    def none_network(self, ctx: Context) -> str:
        """Return the run's internal overlay network for network 'none', made on first use.

        ``--internal`` keeps the task off docker_gwbridge, so it has no default route.
        The network is journaled before it exists, and it is removed after the run's
        services, because they were journaled later.
        """
        with self._lock:
            name = self._none_networks.get(ctx.run_id)
            if name is not None:
                return name
            name = f"isobench-{ctx.run_id}-{self.name}-none"
            docker = self._docker()
            ctx.journal.record(
                "network",
                name,
                [*docker, "network", "rm", name],
                runtime=self.name,
                absent=_ABSENT_NETWORK,
            )
            create = [
                *docker,
                *("network", "create", "--driver", "overlay", "--internal", "--attachable"),
                *("--label", f"isobench.run={ctx.run_id}", name),
            ]
            commands.run(create, timeout=60)
            log.info("made the internal overlay network %s for network 'none'", name)
            self._none_networks[ctx.run_id] = name
            return name

    # -- containers ------------------------------------------------------

    def launch(
        self, ctx: Context, request: Request, argv: Sequence[str], env: dict[str, str]
    ) -> Launched:
        image = ctx.image_for(request)
        self.engine._ensure_image(image)
        name = ctx.container_name(self.name)
        docker = self._docker()
        none_network = self.none_network(ctx) if request.network == "none" else None
        entry = ctx.journal.record("service", name, removal_argv(docker, name), runtime=self.name)
        create = [
            *docker,
            *("service", "create", "--detach", "--quiet", "--replicas", "0"),
            *("--name", name, "--restart-condition", "none", "--no-resolve-image"),
            *("--label", f"isobench.run={ctx.run_id}"),
            *("--container-label", f"isobench.run={ctx.run_id}"),
            *service_options(request, env, none_network),
            image.reference,
            *argv,
        ]
        launched_commands = [shlex.join(create)]
        try:
            commands.run(create, timeout=60)
            self._open_stdin(name)
        except (CommandFailed, HarnessError):
            ctx.journal.remove(entry)
            raise
        launched_commands.append(
            f"# POST /services/{name}/update: ContainerSpec.OpenStdin=true, Replicas=1"
        )
        relay = [
            sys.executable,
            *("-m", "isobench.runtimes.swarm", "relay", "--service", name),
            *("--docker", shlex.join(docker)),
        ]
        process = popen(relay)
        self._requests[name] = request
        return Launched(
            name=name, process=process, argv=relay, entries=[entry], commands=launched_commands
        )

    def _open_stdin(self, name: str) -> None:
        inspect = commands.run([*self._docker(), "service", "inspect", name], timeout=30)
        service = json.loads(inspect.stdout)[0]
        body = json.dumps(open_stdin(service))
        connection = _UnixConnection(engine_socket())
        try:
            path = f"/services/{service['ID']}/update?version={service['Version']['Index']}"
            connection.request("POST", path, body, {"Content-Type": "application/json"})
            response = connection.getresponse()
            answer = response.read().decode(errors="replace")
        except OSError as exc:
            raise HarnessError(
                f"updating the service {name} through the engine API failed: {exc}"
            ) from None
        finally:
            connection.close()
        if response.status != 200:
            raise HarnessError(
                f"updating the service {name} through the engine API failed with HTTP "
                f"{response.status}: {answer.strip()}"
            )

    def container(self, launched: Launched) -> str:
        """Return the ID of the container of the service's task, once it has one."""
        if "container" not in launched.state:
            found = _task_container(shlex.split(launched.argv[-1]), launched.name)
            if not found:
                raise HarnessError(f"the service {launched.name} has no container")
            launched.state["container"] = found
        return launched.state["container"]

    def _as_container(self, launched: Launched) -> Launched:
        return Launched(
            name=self.container(launched),
            process=launched.process,
            argv=launched.argv,
            commands=launched.commands,
        )

    def host_pid(self, ctx: Context, launched: Launched) -> int | None:
        self._compare(launched)
        return self.engine.host_pid(ctx, self._as_container(launched))

    def _compare(self, launched: Launched) -> None:
        request = self._requests.get(launched.name)
        if request is None:
            return
        if request.network == "none" and not launched.state.get("compared"):
            # The internal network replaces 'none' on purpose, so it is not a field that
            # the layer dropped.
            launched.commands.append(f"# network 'none': {NETWORK_NONE}")
            request = request.model_copy(update={"network": "default"})
        record_not_applied(
            self.engine, request, launched, self.container(launched), self.name, self._dropped
        )

    def exec_detached(self, ctx: Context, launched: Launched, argv: Sequence[str]) -> None:
        self.engine.exec_detached(ctx, self._as_container(launched), argv)

    def exec_output(self, ctx: Context, launched: Launched, argv: Sequence[str]) -> str:
        return self.engine.exec_output(ctx, self._as_container(launched), argv)

    def stop(self, ctx: Context, launched: Launched, grace_s: float) -> None:
        self.engine.stop(ctx, self._as_container(launched), grace_s)

    def exit_state(self, ctx: Context, launched: Launched) -> dict[str, str]:
        self._compare(launched)
        return self.engine.exit_state(ctx, self._as_container(launched))

    def finish(self, ctx: Context, launched: Launched) -> None:
        self._requests.pop(launched.name, None)
        super().finish(ctx, launched)


# -- a stack deployed from a Compose file -------------------------------------------

#: Request fields that ``docker stack deploy`` of docker 20.10 rejects or announces that it
#: ignores, with its message.
STACK_CANNOT: dict[str, str] = {
    "pid": "docker stack deploy ignores 'pid' (\"Ignoring unsupported options: pid\")",
    "ipc": "docker stack deploy ignores 'ipc' (\"Ignoring unsupported options: ipc\")",
    "uts": "docker stack deploy rejects 'uts' (\"Additional property uts is not allowed\")",
    "cgroupns": "docker stack deploy rejects 'cgroup' (\"Additional property cgroup is not "
    'allowed")',
    "userns": "docker maps user namespaces for the whole daemon (userns-remap), and docker "
    "stack deploy ignores 'userns_mode'",
    "seccomp": "docker stack deploy ignores 'security_opt' (\"Ignoring unsupported options: "
    'security_opt")',
    "no_new_privs": "docker stack deploy ignores 'security_opt' (\"Ignoring unsupported "
    'options: security_opt")',
    "privileged": "docker stack deploy ignores 'privileged' (\"Ignoring unsupported options: "
    'privileged")',
    "masked_paths": "a stack service has no option to unmask /proc and /sys paths",
    "devices": "docker stack deploy ignores 'devices' (\"Ignoring unsupported options: devices\")",
    "memory_swap": "docker stack deploy rejects 'memswap_limit' (\"Set resource limits using "
    'deploy.resources"), and deploy.resources has no swap limit',
    "pids_limit": "docker stack deploy rejects 'pids_limit' (\"Additional property pids_limit "
    'is not allowed")',
    "cpuset_cpus": "docker stack deploy rejects 'cpuset' (\"Set resource limits using "
    'deploy.resources"), and deploy.resources has no cpuset',
    "cpu_shares": "docker stack deploy rejects 'cpu_shares' (\"Set resource limits using "
    'deploy.resources"), and deploy.resources has no shares',
    "device_write_bps": "docker stack deploy rejects 'blkio_config' (\"Additional property "
    'blkio_config is not allowed")',
    "device_read_bps": "docker stack deploy rejects 'blkio_config' (\"Additional property "
    'blkio_config is not allowed")',
}
STACK_NETWORK = (
    "docker stack deploy ignores 'network_mode' (\"Ignoring unsupported options: "
    "network_mode\") and attaches the service to the stack's overlay network, so it "
    "cannot join the host's network"
)
#: The line with which ``docker stack deploy`` names the options it drops.
IGNORING = "Ignoring unsupported options: "


def stack_unsupported(request: Request) -> str | None:
    """Return why ``docker stack deploy`` of docker 20.10 cannot express ``request``."""
    for field, reason in STACK_CANNOT.items():
        if getattr(request, field) != getattr(_DEFAULT_REQUEST, field):
            if field == "no_new_privs" and request.no_new_privs is False:
                continue
            return reason
    if request.network == "host":
        # NOTE: a stack can join the host's network as an external network named host;
        # isobench does not write that yet.
        return STACK_NETWORK
    if request.network_name is not None:
        return (
            "a stack service attaches only to swarm-scope networks, and the checks' networks "
            "are docker bridge networks of the node"
        )
    if request.publish:
        return (
            'docker stack deploy ignores the host address of a published port ("ignoring '
            "IP-address ... service will listen on '0.0.0.0'\")"
        )
    for key, _value in request.env:
        if "=" in key:
            return f"the environment variable name {key!r} contains '=', which docker splits at"
    return None


def stack_service(
    service: dict[str, Any], run_id: str, none_network: str | None = None
) -> dict[str, Any]:
    """Turn a Compose service of the compose row into one that a stack deploys: stdin
    open, one replica that is not restarted, and the run's label on the service.

    ``none_network`` names the internal network that replaces ``network_mode: none``,
    which a stack ignores. The Compose file declares it as external.
    """
    stacked = {key: value for key, value in service.items() if key != "network_mode"}
    if service.get("network_mode") == "none":
        if none_network is None:
            raise HarnessError(
                "a service with network_mode 'none' needs the run's internal network"
            )
        stacked["networks"] = [none_network]
    stacked["stdin_open"] = True
    deploy = dict(stacked.get("deploy") or {})
    deploy["replicas"] = 1
    deploy["restart_policy"] = {"condition": "none"}
    deploy["labels"] = {"isobench.run": run_id}
    stacked["deploy"] = deploy
    return stacked


class StackAdapter(SwarmAdapter):
    """The compose row's Compose file, deployed as a stack on the run's swarm."""

    name = "stack"

    def unsupported(self, request: Request) -> str | None:
        return stack_unsupported(request)

    def launch(
        self, ctx: Context, request: Request, argv: Sequence[str], env: dict[str, str]
    ) -> Launched:
        image = ctx.image_for(request)
        self.engine._ensure_image(image)
        name = ctx.container_name(self.name)
        none_network = self.none_network(ctx) if request.network == "none" else None
        stack = project_name(name)
        service_name = f"{stack}_{SERVICE}"
        directory = self.engine.client_directory(ctx) / stack
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / "compose.yaml"
        service = service_definition(request, image.reference, argv, env, run_id=ctx.run_id)
        path.write_text(
            compose_file(stack_service(service, ctx.run_id, none_network)), encoding="utf-8"
        )

        docker = self._docker()
        # Removed in the reverse order: the stack, then its service's container (which
        # swarm removes after 'stack rm' returns), then the stack's network.
        entries = [
            ctx.journal.record(
                "network",
                f"{stack}_default",
                [*docker, "network", "rm", f"{stack}_default"],
                runtime=self.name,
                absent=_ABSENT_NETWORK,
            ),
            ctx.journal.record(
                "service", service_name, removal_argv(docker, service_name), runtime=self.name
            ),
            ctx.journal.record(
                "stack",
                stack,
                [*docker, "stack", "rm", stack],
                runtime=self.name,
                absent=("Nothing found in stack", "not a swarm manager"),
            ),
        ]
        deploy = [
            *docker,
            *("stack", "deploy", "--resolve-image", "never", "--compose-file", str(path), stack),
        ]
        launched_commands = [
            f"# the Compose file {path}:\n{path.read_text(encoding='utf-8')}",
            shlex.join(deploy),
        ]
        result = commands.run(deploy, timeout=120)
        for line in result.stderr.splitlines() + result.stdout.splitlines():
            if line.startswith(IGNORING):
                log.warning("docker stack deploy of %s: %s", stack, line)
                launched_commands.append(f"# not applied by stack: {line.strip()}")
        relay_argv = [
            sys.executable,
            *("-m", "isobench.runtimes.swarm", "relay", "--service", service_name),
            *("--docker", shlex.join(docker)),
        ]
        process = popen(relay_argv)
        self._requests[service_name] = request
        return Launched(
            name=service_name,
            process=process,
            argv=relay_argv,
            entries=entries,
            commands=launched_commands,
        )


# -- the relay: the container's client for the harness ---------------------------


def _task_container(docker: Sequence[str], service: str) -> str:
    listed = subprocess.run(
        [
            *docker,
            *("ps", "--all", "--quiet", "--no-trunc"),
            *("--filter", f"label=com.docker.swarm.service.name={service}"),
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    ids = listed.stdout.split()
    return ids[0] if ids else ""


def _task_error(docker: Sequence[str], service: str) -> str:
    """Return the error of the service's task when it ended without a container run."""
    listed = subprocess.run(
        [
            *docker,
            *("service", "ps", "--no-trunc", "--format", "{{.CurrentState}}\t{{.Error}}"),
            service,
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    for line in listed.stdout.splitlines():
        state, _, error = line.partition("\t")
        if error.strip() and state.split(" ", 1)[0] in ("Rejected", "Failed"):
            return f"{state.split(' ', 1)[0].lower()}: {error.strip()}"
    return ""


class _Copy(threading.Thread):
    """Copy lines from a pipe to an output stream."""

    def __init__(self, source: Any, target: Any) -> None:
        super().__init__(daemon=True)
        self.source = source
        self.target = target

    def run(self) -> None:
        for line in iter(self.source.readline, b""):
            self.target.write(line)
            self.target.flush()


def relay(docker: Sequence[str], service: str) -> int:
    """Stand in for the client of the service's container; return its exit status."""
    children: list[subprocess.Popen[bytes]] = []

    def end_children(*_: object) -> None:
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                child.kill()
        sys.exit(143)

    signal.signal(signal.SIGTERM, end_children)

    deadline = time.monotonic() + TASK_TIMEOUT_S
    container = ""
    while not container:
        container = _task_container(docker, service)
        if container:
            break
        error = _task_error(docker, service)
        if error or time.monotonic() > deadline:
            reason = error or f"no container within {TASK_TIMEOUT_S:g} s"
            print(f"{SWARM_ERROR_PREFIX}the task of service {service} {reason}", file=sys.stderr)
            return SWARM_FAILURE_STATUS
        time.sleep(0.1)

    # The container's own log, not 'docker service logs': the engine ends a followed log
    # once the container has stopped and all of its output was sent, while the swarm's
    # log broker forwards it asynchronously and gives no such end.
    follow = subprocess.Popen(
        [*docker, "logs", "--follow", container], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    children.append(follow)
    out = _Copy(follow.stdout, sys.stdout.buffer)
    err = _Copy(follow.stderr, sys.stderr.buffer)
    out.start()
    err.start()

    waiting = subprocess.Popen(
        [*docker, "wait", container], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    children.append(waiting)
    rejected = threading.Event()

    def send_stdin() -> None:
        # Read the file descriptor, not sys.stdin: a daemon thread blocked in the buffered
        # reader holds its lock, and the interpreter then aborts at exit (status 134)
        # when it flushes stdin, which would replace the container's exit status.
        chunks = []
        while chunk := os.read(0, 65536):
            chunks.append(chunk)
        if chunks:
            # A command given text usually reads it to its end, which never comes here.
            rejected.set()
            waiting.kill()
            return
        attach = subprocess.Popen(
            [*docker, "attach", "--sig-proxy=false", container],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        children.append(attach)
        assert attach.stdin is not None
        with contextlib.suppress(OSError):
            # An empty line releases the probe's hold, which waits for one.
            attach.stdin.write(b"\n")
            attach.stdin.close()

    threading.Thread(target=send_stdin, daemon=True).start()

    waited_out, waited_err = waiting.communicate()
    try:
        status = int(waited_out.decode().strip())
    except ValueError:
        status = SWARM_FAILURE_STATUS
        if not rejected.is_set():
            problem = waited_err.decode(errors="replace").strip()
            print(f"{SWARM_ERROR_PREFIX}docker wait failed: {problem}", file=sys.stderr)

    if rejected.is_set():
        follow.kill()
    try:
        follow.wait(LOG_END_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        print(
            f"{SWARM_ERROR_PREFIX}the log of container {container} did not end within "
            f"{LOG_END_TIMEOUT_S:g} s after it stopped, so its output may be incomplete",
            file=sys.stderr,
        )
        status = SWARM_FAILURE_STATUS
        follow.kill()
    out.join(5)
    err.join(5)
    for child in children:
        with contextlib.suppress(ProcessLookupError):
            child.kill()
    if rejected.is_set():
        print(f"{SWARM_ERROR_PREFIX}{STDIN_REJECTED}", file=sys.stderr)
        return SWARM_FAILURE_STATUS
    return status


# -- removal, also after a harness that was killed -----------------------------------


def removal_argv(docker: Sequence[str], service: str) -> list[str]:
    """Return the command of :func:`main` that removes a service and its container."""
    return [
        sys.executable,
        *("-m", "isobench.runtimes.swarm", "remove", "--service", service),
        *("--docker", shlex.join(docker)),
    ]


def remove_service(docker: Sequence[str], service: str) -> list[str]:
    """Remove a service and wait until its task's container is gone; return what failed.

    ``docker service rm`` returns before swarm has removed the container, and a node
    that left the swarm keeps it, so a container still there after REMOVAL_WAIT_S
    seconds is removed with ``docker rm --force``.
    """
    problems = []
    removed = subprocess.run(
        [*docker, "service", "rm", service], capture_output=True, text=True, timeout=60
    )
    if removed.returncode != 0 and not any(m in removed.stderr for m in _ABSENT_SERVICE):
        problems.append(f"docker service rm {service}: {removed.stderr.strip()}")
    deadline = time.monotonic() + REMOVAL_WAIT_S
    while _task_container(docker, service) and time.monotonic() < deadline:
        time.sleep(0.2)
    left = _task_container(docker, service)
    if left:
        forced = subprocess.run(
            [*docker, "rm", "--force", left], capture_output=True, text=True, timeout=60
        )
        if forced.returncode != 0:
            problems.append(f"docker rm --force {left}: {forced.stderr.strip()}")
    return problems


def main(argv: Sequence[str] | None = None) -> int:
    """Relay a service's output and stdin (``relay``), or remove a service (``remove``)."""
    parser = argparse.ArgumentParser(prog="python -m isobench.runtimes.swarm")
    verbs = parser.add_subparsers(dest="verb", required=True)
    for verb, text in (
        ("relay", "stand in for the client of a service's container"),
        ("remove", "remove a service and wait until its container is gone"),
    ):
        command = verbs.add_parser(verb, help=text)
        command.add_argument("--service", required=True, help="the service's name")
        command.add_argument("--docker", required=True, help="the docker client command")
    args = parser.parse_args(argv)
    docker = shlex.split(args.docker)
    if args.verb == "relay":
        return relay(docker, args.service)
    problems = remove_service(docker, args.service)
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
