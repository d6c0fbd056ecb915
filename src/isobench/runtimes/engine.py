"""Engine CLIs (docker, podman): the same verbs, per-CLI differences as data."""

from __future__ import annotations

import json
import logging
import math
import os
import shlex
import subprocess
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from isobench import commands, hosts
from isobench.errors import CommandFailed, HarnessError, IsobenchError
from isobench.journal import Entry
from isobench.model import Request
from isobench.probe import host as host_probe
from isobench.runtimes.base import Adapter, Availability, Context, Launched, ProbeImage, popen

log = logging.getLogger(__name__)

_ABSENT = ("No such container", "no such container", "no container with name or ID")
#: The exit status of 'docker run' and 'podman run' when the engine, not the command, failed.
ENGINE_FAILURE_STATUS = 125
#: Messages of a network removal that mean the network is gone already.
_NO_NETWORK = ("No such network", "network not found", "unable to find network")
#: Prefixes of the engines' own error messages: docker's client, its daemon, and podman.
ENGINE_ERROR_PREFIXES = ("docker: ", "Error response from daemon", "Error: ")


@dataclass(frozen=True)
class EngineProfile:
    """The differences between engine CLIs, as data."""

    engine: str
    #: Client binaries to try in order when none is configured.
    binaries: tuple[str, ...]
    #: Environment variable that names the client binary.
    binary_env: str
    #: Flags added to every ``run``, such as podman's choice of OCI runtime.
    run_flags: tuple[str, ...] = ()
    #: Request fields this engine cannot set per container, with the reason.
    cannot: dict[str, str] = field(default_factory=dict)
    #: Go template of ``info`` that prints where the engine stores container layers.
    storage_template: str = ""
    #: Pass ulimits that fit the caller's hard limits (podman's defaults may exceed them).
    fit_ulimits: bool = False
    #: ``--security-opt`` value that turns off masked and read-only paths.
    unmask_option: str = "systempaths=unconfined"
    start_hint: str = ""
    install_hint: str = ""


DOCKER = EngineProfile(
    engine="docker",
    # The Debian client matches the Debian engine's API version. A newer client
    # on PATH also works, because it lowers its API version, so it is the fallback.
    binaries=("/usr/bin/docker", "docker"),
    binary_env="ISOBENCH_DOCKER",
    storage_template="{{.DockerRootDir}}",
    cannot={
        "userns": "docker maps user namespaces for the whole daemon (userns-remap), "
        "not per container",
    },
    start_hint="Start the engine with 'make setup' (or 'dockerd &') and retry.",
    install_hint="Install it with 'apt-get install docker.io' or run 'make setup'.",
)

PODMAN = EngineProfile(
    engine="podman",
    binaries=("/usr/bin/podman", "podman"),
    binary_env="ISOBENCH_PODMAN",
    storage_template="{{.Store.GraphRoot}}",
    # Podman 4.3 requests nofile=1048576, which a host without CAP_SYS_RESOURCE
    # in its bounding set cannot grant ("error setting rlimits").
    fit_ulimits=True,
    unmask_option="unmask=ALL",
    install_hint="Install it with 'apt-get install podman catatonit' or run 'make setup'.",
)


def _fitted_ulimits(requested: set[str]) -> list[str]:
    """Return ``--ulimit`` options for nofile and nproc within the hard limits that the
    engine's client gets on the run's host, for the names the request does not set itself."""
    limits = hosts.current().call(host_probe, "hard_limits")
    options = []
    nofile_hard = limits["nofile"]
    if nofile_hard != -1 and "nofile" not in requested:
        options += ["--ulimit", f"nofile={min(1024, nofile_hard)}:{nofile_hard}"]
    # Podman 4.3 lowers its own nproc limit to kernel.pid_max when it starts, so
    # a container may not ask for more than that.
    nproc_hard, pid_max = limits["nproc"], limits["pid_max"]
    nproc = pid_max if nproc_hard == -1 else min(nproc_hard, pid_max)
    if "nproc" not in requested:
        options += ["--ulimit", f"nproc={nproc}:{nproc}"]
    return options


def _program(name: str) -> str | None:
    """Return the path of a program on the run's host, or None."""
    found = hosts.current().call(host_probe, "program", name)
    return str(found) if found else None


def _find_binary(profile: EngineProfile) -> str | None:
    configured = os.environ.get(profile.binary_env)
    if configured:
        return _program(configured)
    for candidate in profile.binaries:
        found = _program(candidate)
        if found:
            return found
    return None


class EngineAdapter(Adapter):
    """A container engine driven through its CLI, optionally with another OCI runtime."""

    family = "engine"
    remote_ready = True

    def __init__(self, profile: EngineProfile, oci_runtime: str | None = None) -> None:
        self.profile = profile
        self.oci_runtime = oci_runtime
        self.name = (
            profile.engine if oci_runtime in (None, "runc") else (f"{profile.engine}+{oci_runtime}")
        )
        self._binary: str | None = None
        self._availability: Availability | None = None
        self._device: str | None = None
        self._imported: set[str] = set()
        self._client_directories: set[Path] = set()
        self._lock = threading.Lock()

    # -- discovery -------------------------------------------------------

    @property
    def binary(self) -> str:
        if self._binary is None:
            self._binary = _find_binary(self.profile) or self.profile.binaries[-1]
        return self._binary

    def _runtime_flags(self, request: Request) -> list[str]:
        flags = list(self.profile.run_flags)
        if self.profile.fit_ulimits:
            flags += _fitted_ulimits({limit.name for limit in request.ulimits})
        if self.oci_runtime is not None:
            flags += ["--runtime", self.oci_runtime]
        if self.oci_runtime == "runsc" and self.profile.engine == "podman":
            # runsc cannot set up a network in the host's root network namespace.
            flags += ["--runtime-flag", "network=none"]
        return flags

    def availability(self) -> Availability:
        if self._availability is None:
            self._availability = self._check_availability()
        return self._availability

    def _check_availability(self) -> Availability:
        binary = _find_binary(self.profile)
        if binary is None:
            return Availability(
                False,
                installed=False,
                reason=f"no '{self.profile.engine}' client found "
                f"(tried {', '.join(self.profile.binaries)}; set {self.profile.binary_env})",
                hint=self.profile.install_hint,
            )
        self._binary = binary
        try:
            info = commands.run([binary, "version", "--format", "{{json .}}"], timeout=30)
        except IsobenchError as exc:
            hint = self.profile.start_hint or self.profile.install_hint
            if self.profile.engine == "docker" and os.environ.get("DOCKER_HOST"):
                hint = (
                    f"DOCKER_HOST is set to {os.environ['DOCKER_HOST']}: check that an engine "
                    "listens there, or unset it to use the local one."
                )
            return Availability(False, reason=f"'{binary} version' failed: {exc}", hint=hint)
        try:
            data = json.loads(info.stdout)
        except json.JSONDecodeError:
            data = None
        if not isinstance(data, dict):
            return Availability(
                False,
                reason=f"'{binary} version --format {{{{json .}}}}' printed no JSON object: "
                f"{info.stdout.strip()[:200]!r}",
                hint=f"Check that {binary} is the {self.profile.engine} client "
                f"(or set {self.profile.binary_env} to it).",
            )
        client = data.get("Client", {}) or {}
        server = data.get("Server", {}) or {}
        version = str(server.get("Version") or client.get("Version") or "unknown")
        details = {
            "client": binary,
            "client_version": str(client.get("Version", "")),
            "client_api": str(client.get("ApiVersion") or client.get("APIVersion") or ""),
            "server_version": version,
        }
        if self.oci_runtime is not None:
            problem = self._oci_runtime_problem(binary)
            if problem:
                return Availability(
                    False,
                    installed=_program(self.oci_runtime) is not None,
                    version=version,
                    reason=problem,
                    hint=(
                        "Run 'make setup' to register it."
                        if self.profile.engine == "docker"
                        else f"Install {self.oci_runtime}, or name its path: podman+/path/to/it."
                    ),
                    details=details,
                )
            details["oci_runtime"] = self.oci_runtime
            oci_version = self._oci_runtime_version(binary)
            if oci_version:
                details["oci_runtime_version"] = oci_version
                version = f"{version} with {oci_version}"
        return Availability(True, version=version, details=details)

    def _oci_runtime_version(self, binary: str) -> str:
        """Return the first line of the OCI runtime's ``--version``, or '' when unknown.

        docker names the path it registered in ``info``; podman takes a name on PATH
        or a path.
        """
        assert self.oci_runtime is not None
        path: str | None = self.oci_runtime
        if self.profile.engine == "docker":
            result = commands.run(
                [binary, "info", "--format", "{{json .Runtimes}}"], timeout=30, check=False
            )
            try:
                registered = json.loads(result.stdout or "{}").get(self.oci_runtime, {})
                path = str(registered.get("path") or self.oci_runtime)
            except (json.JSONDecodeError, AttributeError):
                path = self.oci_runtime
        path = _program(path) if path else None
        if path is None:
            return ""
        result = commands.run([path, "--version"], timeout=30, check=False)
        lines = result.stdout.strip().splitlines()
        return lines[0].strip() if result.returncode == 0 and lines else ""

    def _oci_runtime_problem(self, binary: str) -> str:
        assert self.oci_runtime is not None
        if self.profile.engine == "docker":
            result = commands.run(
                [binary, "info", "--format", "{{json .Runtimes}}"], timeout=30, check=False
            )
            if self.oci_runtime not in result.stdout:
                return f"docker has no runtime '{self.oci_runtime}' registered in daemon.json"
            return ""
        if _program(self.oci_runtime) is None:
            return f"'{self.oci_runtime}' is not installed"
        return ""

    def _endpoint(self) -> list[str]:
        """Return the client option that names the engine this run uses, when the
        environment chose it: 'isobench clean' may run without that environment."""
        variable = {"docker": "DOCKER_HOST", "podman": "CONTAINER_HOST"}[self.profile.engine]
        address = os.environ.get(variable)
        if not address:
            return []
        return ["--host" if self.profile.engine == "docker" else "--url", address]

    def runtime_failure(self, exit_code: int, stderr: str) -> str | None:
        # docker and podman exit 125 when the error is with the engine itself (a
        # daemon that does not respond, an invalid option) and print the error on
        # stderr. A command in the container may exit 125 too, so the message decides.
        if exit_code != ENGINE_FAILURE_STATUS:
            return None
        for line in stderr.splitlines():
            if line.startswith(ENGINE_ERROR_PREFIXES):
                return f"{self.profile.engine} itself failed: {line.strip()}"
        return None

    # -- requests --------------------------------------------------------

    def unsupported(self, request: Request) -> str | None:
        if request.userns == "private" and "userns" in self.profile.cannot:
            return self.profile.cannot["userns"]
        if self.oci_runtime == "runsc" and request.userns == "private":
            return f"{self.name}: runsc does not apply the user namespace mappings it is given"
        if self.oci_runtime == "runsc" and request.network != "none":
            return (
                f"{self.name} runs runsc with --network=none (it cannot build a network in "
                "the host's root network namespace), so it has only a loopback"
            )
        return None

    def run_options(self, request: Request) -> list[str]:
        """Translate a request into ``run`` options of this engine."""
        options: list[str] = []
        if request.hostname is not None:
            options += ["--hostname", request.hostname]
        for key, value in request.env:
            options += ["--env", f"{key}={value}"]
        if request.user is not None:
            options += ["--user", request.user]
        if request.pid == "host":
            options += ["--pid", "host"]
        if request.ipc == "host":
            options += ["--ipc", "host"]
        if request.uts == "host":
            options += ["--uts", "host"]
        network = {"none": "none", "host": "host", "default": None}[request.network]
        if request.network_name is not None:
            network = request.network_name
        if network is not None:
            options += ["--network", network]
        for port in request.publish:
            options += [
                "--publish",
                f"{port.host_ip}:{port.host_port}:{port.container_port}/{port.protocol}",
            ]
        for entry in request.add_hosts:
            options += ["--add-host", f"{entry.name}:{entry.address}"]
        for server in request.dns:
            options += ["--dns", server]
        for domain in request.dns_search:
            options += ["--dns-search", domain]
        if request.cgroupns is not None:
            options += ["--cgroupns", request.cgroupns]
        if request.userns == "private":
            options += ["--uidmap", "0:100000:65536", "--gidmap", "0:100000:65536"]
        for cap in request.cap_drop:
            options += ["--cap-drop", cap]
        for cap in request.cap_add:
            options += ["--cap-add", cap]
        if request.seccomp == "unconfined":
            options += ["--security-opt", "seccomp=unconfined"]
        if request.no_new_privs:
            options += ["--security-opt", "no-new-privileges"]
        if request.privileged:
            options += ["--privileged"]
        if request.masked_paths == "unconfined":
            options += ["--security-opt", self.profile.unmask_option]
        if request.read_only:
            options += ["--read-only"]
        for mount in request.mounts:
            suffix = ":ro" if mount.read_only else ""
            options += ["--volume", f"{mount.source}:{mount.target}{suffix}"]
        for tmpfs in request.tmpfs:
            options += ["--tmpfs", f"{tmpfs.target}:size={int(tmpfs.size)}"]
        for device in request.devices:
            options += ["--device", device]
        for limit in request.ulimits:
            options += ["--ulimit", f"{limit.name}={limit.soft}:{limit.hard}"]
        if request.init:
            options += ["--init"]
        if request.workdir is not None:
            options += ["--workdir", request.workdir]
        if request.memory is not None:
            options += ["--memory", str(int(request.memory))]
        if request.memory_swap is not None:
            options += ["--memory-swap", str(int(request.memory_swap))]
        if request.pids_limit is not None:
            options += ["--pids-limit", str(request.pids_limit)]
        if request.cpus is not None:
            options += ["--cpus", f"{request.cpus:g}"]
        if request.cpuset_cpus is not None:
            options += ["--cpuset-cpus", request.cpuset_cpus]
        if request.cpu_shares is not None:
            options += ["--cpu-shares", str(request.cpu_shares)]
        if request.device_write_bps is not None or request.device_read_bps is not None:
            if self._device is None:
                raise HarnessError("the block device of the engine's storage is not known yet")
            device = self._device
            if request.device_write_bps is not None:
                options += ["--device-write-bps", f"{device}:{int(request.device_write_bps)}"]
            if request.device_read_bps is not None:
                options += ["--device-read-bps", f"{device}:{int(request.device_read_bps)}"]
        return options

    # -- lifecycle -------------------------------------------------------

    def prepare(self, ctx: Context) -> None:
        if ctx.image is None:
            raise HarnessError("no probe image was built before preparing the runtimes")
        self._ensure_image(ctx.image)

    def _ensure_image(self, image: ProbeImage) -> None:
        """Import an image of the harness into the engine unless it is there already."""
        if image.reference in self._imported:
            return
        present = commands.run(
            [self.binary, "image", "inspect", image.reference], timeout=60, check=False
        )
        if present.returncode == 0:
            self._imported.add(image.reference)
            return

        tar = subprocess.Popen(
            ["tar", "-C", str(image.rootfs), "--numeric-owner", "-c", "."],
            stdout=subprocess.PIPE,
        )
        # The rootfs is on this machine; the engine may be on the run's host.
        importing = [self.binary, "import", "--change", "ENV PATH=/bin", "-", image.reference]
        try:
            result = subprocess.run(
                hosts.current().command(importing),
                stdin=tar.stdout,
                capture_output=True,
                text=True,
                timeout=300,
            )
        finally:
            if tar.stdout is not None:
                tar.stdout.close()
            tar.wait()
        if result.returncode != 0:
            raise CommandFailed(
                [self.binary, "import", "-", image.reference],
                result.returncode,
                result.stdout,
                result.stderr,
            )
        self._imported.add(image.reference)
        log.info("imported the image %s into %s", image.reference, self.profile.engine)

    def launch(
        self, ctx: Context, request: Request, argv: Sequence[str], env: dict[str, str]
    ) -> Launched:
        name, entry, run_argv = self.container_command(
            ctx, request, ["run", "--interactive"], argv, env
        )
        process = popen(run_argv, cwd=self.client_directory(ctx))
        return Launched(name=name, process=process, argv=run_argv, entries=[entry])

    def client_directory(self, ctx: Context) -> Path:
        """Return a directory of the run for the client to work in, made on first use.

        podman's conmon writes a file named 'oom' into its working directory when a
        container is OOM-killed; without this, that file lands where isobench was started.
        """
        directory = ctx.bundle_root / f"client-{self.name.replace('+', '-')}"
        with self._lock:
            if directory not in self._client_directories:
                ctx.journal.record(
                    "directory", str(directory), ["rm", "-rf", str(directory)], runtime=self.name
                )
                commands.run(["mkdir", "-p", str(directory)], timeout=30)
                self._client_directories.add(directory)
        return directory

    def container_command(
        self,
        ctx: Context,
        request: Request,
        verb: Sequence[str],
        argv: Sequence[str],
        env: dict[str, str] | None = None,
    ) -> tuple[str, Entry, list[str]]:
        """Journal a new container and return its name, its journal entry and the command
        ``BINARY VERB --name NAME ... IMAGE ARGV`` that makes it (run, create)."""
        image = ctx.image_for(request)
        self._ensure_image(image)
        if request.device_write_bps is not None or request.device_read_bps is not None:
            self.storage_device(ctx)
        name = ctx.container_name(self.name)
        entry = ctx.journal.record(
            "container",
            name,
            [self.binary, *self._endpoint(), "rm", "--force", name],
            runtime=self.name,
            absent=_ABSENT,
        )
        command = [
            self.binary,
            *verb,
            "--name",
            name,
            "--label",
            f"isobench.run={ctx.run_id}",
            *self._runtime_flags(request),
            *self.run_options(request),
        ]
        for key, value in (env or {}).items():
            command += ["--env", f"{key}={value}"]
        command += [image.reference, *argv]
        return name, entry, command

    # -- networks of a check -----------------------------------------------

    def network_unsupported(self, peer_traffic: bool = True) -> str | None:
        if self.oci_runtime == "runsc":
            return (
                f"{self.name} runs runsc with --network=none (it cannot build a network in "
                "the host's root network namespace), so its containers attach to no network"
            )
        if not peer_traffic and self.profile.engine == "podman":
            return (
                "podman 4.3 has no network option that stops traffic between the containers "
                "of one network (docker's enable_icc=false); its isolate option only "
                "separates networks from each other"
            )
        return None

    def create_network(self, ctx: Context, peer_traffic: bool = True) -> tuple[str, list[Entry]]:
        reason = self.network_unsupported(peer_traffic)
        if reason is not None:
            raise HarnessError(reason)
        name = ctx.network_name(self.name)
        entry = ctx.journal.record(
            "network",
            name,
            [self.binary, *self._endpoint(), "network", "rm", name],
            runtime=self.name,
            absent=_NO_NETWORK,
        )
        command = [
            self.binary,
            *self._endpoint(),
            "network",
            "create",
            "--label",
            f"isobench.run={ctx.run_id}",
        ]
        if not peer_traffic:
            command += ["--opt", "com.docker.network.bridge.enable_icc=false"]
        commands.run([*command, name], timeout=60)
        return name, [entry]

    def host_pid(self, ctx: Context, launched: Launched) -> int | None:
        inspect = [self.binary, "inspect", "--format", "{{.State.Pid}}", launched.name]
        result = commands.run(inspect, timeout=30, check=False)
        launched.commands.append(" ".join(inspect))
        try:
            pid = int(result.stdout.strip())
        except ValueError:
            return None
        return pid or None

    def exec_detached(self, ctx: Context, launched: Launched, argv: Sequence[str]) -> None:
        command = [self.binary, "exec", "--detach", launched.name, *argv]
        launched.commands.append(shlex.join(command))
        commands.run(command, timeout=60)

    def exec_output(self, ctx: Context, launched: Launched, argv: Sequence[str]) -> str:
        command = [self.binary, "exec", launched.name, *argv]
        launched.commands.append(shlex.join(command))
        return commands.run(command, timeout=60).stdout

    def stop(self, ctx: Context, launched: Launched, grace_s: float) -> None:
        # The engines take whole seconds; round up so the grace period is not shortened.
        seconds = str(math.ceil(grace_s))
        command = [self.binary, "stop", "--time", seconds, launched.name]
        launched.commands.append(shlex.join(command))
        commands.run(command, timeout=grace_s + 60)

    def exit_state(self, ctx: Context, launched: Launched) -> dict[str, str]:
        inspect = [self.binary, "inspect", "--format", "{{json .State}}", launched.name]
        result = commands.run(inspect, timeout=30, check=False)
        try:
            state = json.loads(result.stdout)
        except json.JSONDecodeError:
            return {}
        found = {}
        for key in ("OOMKilled", "ExitCode", "Error"):
            if key in state:
                found[f"engine.{key}"] = json.dumps(state[key]).strip('"')
        return found

    def storage_device(self, ctx: Context) -> tuple[str, int, int]:
        if not self.profile.storage_template:
            return super().storage_device(ctx)
        info = commands.run(
            [self.binary, "info", "--format", self.profile.storage_template], timeout=60
        )
        root = Path(info.stdout.strip())
        try:
            path, major, minor = hosts.current().call(host_probe, "block_device", str(root))
            device = (str(path), int(major), int(minor))
        except (OSError, HarnessError) as exc:
            raise HarnessError(f"{self.name} stores containers in {root}: {exc}") from None
        self._device = device[0]
        return device
