"""Drive an engine row (docker, podman, or the run's containerd through ctr) for the
lifecycle suite's engine checks: containers, pods, networks and host mounts, each
journaled before it is made and removed after the check.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from isobench import commands
from isobench.checks import Harness
from isobench.errors import CommandFailed
from isobench.journal import Entry
from isobench.lifecycle import POLL_INTERVAL_S, LifecycleError
from isobench.model import Request
from isobench.runtimes.base import journal_cgroups
from isobench.runtimes.containerd import NAMESPACE as CONTAINERD_NAMESPACE
from isobench.runtimes.containerd import (
    ContainerdAdapter,
    parse_task_pid,
    parse_task_status,
    removal_argv,
)
from isobench.runtimes.engine import EngineAdapter

#: Seconds a container of an engine check runs at most: its removal ends it sooner, and
#: the bound ends it when the removal did not happen.
ENGINE_LIFETIME_S = 300
#: The program of a container that only has to exist while the check observes it.
HOLD_PROGRAM = ("sleep", str(ENGINE_LIFETIME_S))
#: The engine client's commands get this many seconds.
ENGINE_TIMEOUT_S = 60.0
#: Polls of an engine's state give up after this many seconds.
ENGINE_WAIT_S = 30.0
_NO_NETWORK = ("No such network", "network not found", "unable to find network")
_NO_POD = ("no pod with name or ID", "no such pod")
_NOT_MOUNTED = ("not mounted", "no mount point specified", "No such file")


class Engine:
    """The containers, pods, networks and host mounts of one check on an engine row.

    Every resource is written to the run's journal before the client makes it, and
    ``finish`` removes them newest first, also after an error.
    """

    #: Seconds that ``wait_status`` polls at most.
    wait_s = ENGINE_WAIT_S

    def __init__(self, harness: Harness, adapter: EngineAdapter) -> None:
        self.harness = harness
        self.adapter = adapter
        self.runtime = adapter.name
        self.engine = adapter.profile.engine
        self.binary = adapter.binary
        self.entries: list[Entry] = []
        self.containers: list[str] = []
        self.pods: list[str] = []

    # -- commands ---------------------------------------------------------

    @property
    def endpoint(self) -> list[str]:
        """The client option that names the engine this run uses, when the environment
        chose one (DOCKER_HOST, CONTAINER_HOST)."""
        variable = "DOCKER_HOST" if self.engine == "docker" else "CONTAINER_HOST"
        address = os.environ.get(variable)
        if not address:
            return []
        return ["--host" if self.engine == "docker" else "--url", address]

    @property
    def global_options(self) -> list[str]:
        """The endpoint, and podman's runtime flag for runsc.

        runsc cannot start a sandbox in the host's root network namespace without
        network=none. podman 4.3 keeps no runtime flag in the container's
        configuration, so every command that calls the runtime (start, kill, rm)
        needs it too.
        """
        options = self.endpoint
        if self.engine == "podman" and self.adapter.oci_runtime == "runsc":
            options += ["--runtime-flag", "network=none"]
        return options

    def argv(self, *arguments: str) -> list[str]:
        return [self.binary, *self.global_options, *arguments]

    def run(self, *arguments: str, timeout: float = ENGINE_TIMEOUT_S) -> commands.Completed:
        """Run one client command and return its result, also for a non-zero exit status."""
        return commands.run(self.argv(*arguments), timeout=timeout, check=False)

    def require(self, *arguments: str, timeout: float = ENGINE_TIMEOUT_S) -> commands.Completed:
        """Run one client command that must succeed for the check to go on."""
        result = self.run(*arguments, timeout=timeout)
        if result.returncode != 0:
            raise CommandFailed(result.argv, result.returncode, result.stdout, result.stderr)
        return result

    # -- containers -------------------------------------------------------

    def unsupported(self, request: Request) -> str | None:
        return self.adapter.unsupported(request)

    def container_argv(
        self, verb: Sequence[str], options: Sequence[str], program: Sequence[str]
    ) -> tuple[str, list[str]]:
        """Journal a new container and return its name and the command that makes it,
        with ``options`` before the image."""
        # The adapter's default request has no network (--network none), unless the
        # options choose the network themselves (a pod member shares the pod's).
        choose = any(option in ("--network", "--pod") for option in options)
        request = Request(network="default") if choose else Request()
        name, entry, command = self.adapter.container_command(
            self.harness.ctx, request, verb, program
        )
        self.entries.append(entry)
        self.containers.append(name)
        image_at = len(command) - len(program) - 1
        command = [*command[:image_at], *options, *command[image_at:]]
        # container_command names no endpoint; the engine the run uses is named here.
        return name, [command[0], *self.global_options, *command[1:]]

    def create(self, options: Sequence[str] = (), program: Sequence[str] = HOLD_PROGRAM) -> str:
        """Create a container (not started) and return its name."""
        name, command = self.container_argv(["create"], options, program)
        completed = commands.run(command, timeout=ENGINE_TIMEOUT_S, check=False)
        if completed.returncode != 0:
            raise CommandFailed(command, completed.returncode, completed.stdout, completed.stderr)
        return name

    def detached(self, options: Sequence[str] = (), program: Sequence[str] = HOLD_PROGRAM) -> str:
        """Start a container in the background and return its name."""
        name, command = self.container_argv(["run", "--detach"], options, program)
        # Through files: a monitor process of the engine may keep a pipe open.
        completed = commands.run(
            command, timeout=ENGINE_TIMEOUT_S, check=False, output_to_files=True
        )
        if completed.returncode != 0:
            raise CommandFailed(command, completed.returncode, completed.stdout, completed.stderr)
        return name

    def attached(self, options: Sequence[str], program: Sequence[str]) -> commands.Completed:
        """Run a container to its end and return the client's result."""
        _, command = self.container_argv(["run"], options, program)
        return commands.run(command, timeout=ENGINE_TIMEOUT_S, check=False)

    def exec(self, name: str, *program: str) -> commands.Completed:
        """Run ``program`` in a running container and return its result."""
        return self.run("exec", name, *program)

    def exec_required(self, name: str, *program: str) -> str:
        """Run ``program`` in a running container, which must succeed, and return its stdout."""
        return self.require("exec", name, *program).stdout

    def inspect(self, name: str) -> dict[str, Any]:
        """Return the engine's description of a container, or raise LifecycleError."""
        result = self.require("inspect", "--type", "container", name)
        try:
            parsed = json.loads(result.stdout)
        except json.JSONDecodeError as exc:
            raise LifecycleError(
                f"'{result.command}' printed no JSON ({exc}): {result.stdout[:500]!r}"
            ) from None
        if not isinstance(parsed, list) or not parsed or not isinstance(parsed[0], dict):
            raise LifecycleError(f"'{result.command}' printed no container: {result.stdout!r}")
        described: dict[str, Any] = parsed[0]
        return described

    def state(self, name: str) -> dict[str, Any]:
        state = self.inspect(name).get("State")
        if not isinstance(state, dict):
            raise LifecycleError(f"'inspect {name}' has no State object: {state!r}")
        return state

    def wait_status(self, name: str, expected: str) -> str:
        """Poll the State.Status of 'inspect' until it is ``expected`` or ENGINE_WAIT_S
        pass, then return it."""
        deadline = time.monotonic() + ENGINE_WAIT_S
        status = str(self.state(name).get("Status"))
        while status != expected and time.monotonic() < deadline:
            time.sleep(POLL_INTERVAL_S)
            status = str(self.state(name).get("Status"))
        return status

    def host_pid(self, name: str) -> int:
        """Return the host PID of a running container, or raise LifecycleError."""
        pid = self.state(name).get("Pid")
        if not isinstance(pid, int) or pid <= 0:
            raise LifecycleError(f"'inspect {name}' reports no host PID: {pid!r}")
        return pid

    def start(self, name: str) -> None:
        self.require("start", name)

    def kill(self, name: str) -> None:
        """Send SIGKILL to a running container; it must succeed."""
        self.require("kill", name)

    def remove(self, name: str) -> None:
        """Remove a stopped container without --force; it must succeed."""
        self.require("rm", name)

    def lookup(self, name: str) -> commands.Completed:
        """Return the result of the engine's description of a container, also a failure."""
        return self.run("inspect", "--type", "container", name)

    def container_id(self, name: str) -> str:
        return str(self.inspect(name).get("Id"))

    def host_mount_unreached(self, path: Path) -> str | None:
        """Return why a file on a mount made on the host cannot reach the engine's
        containers, or None. docker and podman make their mounts in the host's mount
        namespace."""
        return None

    # -- options ----------------------------------------------------------

    def no_network(self) -> list[str]:
        """Return the options of a container with a network namespace holding a loopback only."""
        return ["--network", "none"]

    def share(self, kind: str, first: str) -> list[str]:
        """Return the options that join the ``kind`` namespace (network, pid, ipc) of the
        container ``first``."""
        return [f"--{kind}", f"container:{first}"]

    def shareable_ipc(self) -> list[str]:
        """Return the options that let other containers join a container's IPC namespace."""
        return ["--ipc", "shareable"]

    def bind(self, source: Path, target: str, propagation: str) -> list[str]:
        """Return the options of a bind mount with a propagation mode (rslave, rshared,
        rprivate)."""
        value = f"type=bind,source={source},target={target},bind-propagation={propagation}"
        return ["--mount", value]

    # -- networks, pods and host mounts ----------------------------------------

    def network(self, *options: str) -> str:
        """Create a network of the check and return its name."""
        name = self.harness.ctx.container_name(f"{self.runtime}-net")
        self.entries.append(
            self.harness.journal.record(
                "network",
                name,
                self.argv("network", "rm", name),
                runtime=self.runtime,
                absent=_NO_NETWORK,
            )
        )
        self.require(
            "network", "create", "--label", f"isobench.run={self.harness.run_id}", *options, name
        )
        return name

    def pod(self, *options: str) -> str:
        """Create a podman pod of the check, whose infra container runs on the row's OCI
        runtime, and return its name."""
        name = self.harness.ctx.container_name(f"{self.runtime}-pod")
        self.entries.append(
            self.harness.journal.record(
                "pod",
                name,
                self.argv("pod", "rm", "--force", name),
                runtime=self.runtime,
                absent=_NO_POD,
            )
        )
        self.pods.append(name)
        # podman's global --runtime chooses the infra container's runtime; without it the
        # infra container gets podman's default runtime, not the row's.
        runtime = ["--runtime", self.adapter.oci_runtime or "runc"]
        label = f"isobench.run={self.harness.run_id}"
        command = [*runtime, "pod", "create", "--name", name, "--label", label, *options]
        self.require(*command)
        return name

    def directory(self, purpose: str) -> Path:
        """Make a journaled directory of the run for the check's host files and mounts."""
        # The run's counter of container names gives each directory a new number.
        number = self.harness.ctx.container_name(self.runtime).rsplit("-", 1)[-1]
        path = self.harness.ctx.bundle_root / f"engine-{purpose}-{number}"
        # With --one-file-system, rm does not descend into a mount left under it.
        remove = ["rm", "-rf", "--one-file-system", str(path)]
        self.entries.append(
            self.harness.journal.record("directory", str(path), remove, runtime=self.runtime)
        )
        path.mkdir(parents=True)
        return path

    def mount(self, target: Path, *arguments: str) -> None:
        """Run ``mount ARGUMENTS TARGET`` on the host, journaled with its unmount first."""
        self.entries.append(
            self.harness.journal.record(
                "mount",
                str(target),
                ["umount", str(target)],
                runtime=self.runtime,
                absent=_NOT_MOUNTED,
            )
        )
        commands.run(["mount", *arguments, str(target)], timeout=ENGINE_TIMEOUT_S)

    def make_shared(self, target: Path) -> None:
        """Make a mount of the check shared (``mount --make-rshared``). Its
        unmount is already in the journal."""
        commands.run(["mount", "--make-rshared", str(target)], timeout=ENGINE_TIMEOUT_S)

    # -- clean-up ---------------------------------------------------------

    def kill_argv(self, name: str) -> list[str]:
        return ["kill", name]

    def finish(self) -> None:
        """Kill the containers and pods, then remove everything, newest first.

        podman's 'rm --force' waits the stop timeout (10 s) for a running container,
        so SIGKILL comes first. An entry that cannot be removed now stays in the
        journal, which the harness empties at the end of the run.
        """
        for name in self.containers:
            self.run(*self.kill_argv(name))
        for name in self.pods:
            self.run("pod", "kill", name)
        for entry in reversed(self.entries):
            self.harness.journal.remove(entry)


#: Names of the namespace files in /proc/PID/ns for the kinds that ``share`` takes.
_NAMESPACE_FILES = {"network": "net", "pid": "pid", "ipc": "ipc"}


class CtrEngine(Engine):
    """The containers and host mounts of one check on the containerd row, driven with ctr
    against the run's own containerd.

    ctr has no inspect, networks or pods. A container's state is the task's status in
    'ctr task ls' (RUNNING, STOPPED), and a namespace is joined by its path in /proc.
    """

    def __init__(self, harness: Harness, adapter: ContainerdAdapter) -> None:
        self.harness = harness
        self.ctr_adapter = adapter
        self.runtime = adapter.name
        self.engine = "containerd"
        self.entries = []
        self.containers = []
        self.pods = []
        self.daemon = adapter._daemon(harness.ctx)
        self.binary = adapter.ctr
        self.exec_count = 0

    @property
    def global_options(self) -> list[str]:
        return ["--address", str(self.daemon.socket), "--namespace", CONTAINERD_NAMESPACE]

    def unsupported(self, request: Request) -> str | None:
        return self.ctr_adapter.unsupported(request)

    def container_argv(
        self, verb: Sequence[str], options: Sequence[str], program: Sequence[str]
    ) -> tuple[str, list[str]]:
        """Journal a new container with its cgroup and return its name and the ctr command
        that makes it, as ContainerdAdapter.launch does."""
        ctx = self.harness.ctx
        image = ctx.image_for(Request())
        name = ctx.container_name(self.runtime)
        cgroup_path = f"/{name}"
        self.entries += [entry for _, entry in journal_cgroups(ctx, self.runtime, cgroup_path)]
        remove = removal_argv("remove", self.daemon.state, "--name", name)
        self.entries.append(ctx.journal.record("container", name, remove, runtime=self.runtime))
        self.containers.append(name)
        command = [
            *self.argv(*verb),
            *("--cgroup", cgroup_path, "--label", f"isobench.run={ctx.run_id}"),
            *options,
            image.reference,
            name,
            *program,
        ]
        return name, command

    def create(self, options: Sequence[str] = (), program: Sequence[str] = HOLD_PROGRAM) -> str:
        raise LifecycleError("ctr 1.6 has no command that creates a task without starting it")

    def detached(self, options: Sequence[str] = (), program: Sequence[str] = HOLD_PROGRAM) -> str:
        name, command = self.container_argv(["run", "--detach", "--null-io"], options, program)
        completed = commands.run(
            command, timeout=ENGINE_TIMEOUT_S, check=False, output_to_files=True
        )
        if completed.returncode != 0:
            raise CommandFailed(command, completed.returncode, completed.stdout, completed.stderr)
        return name

    def attached(self, options: Sequence[str], program: Sequence[str]) -> commands.Completed:
        _, command = self.container_argv(
            ["run", "--fifo-dir", str(self.daemon.fifo_dir)], options, program
        )
        return commands.run(command, timeout=ENGINE_TIMEOUT_S, check=False)

    def exec(self, name: str, *program: str) -> commands.Completed:
        self.exec_count += 1
        return self.run(
            "task",
            "exec",
            *("--fifo-dir", str(self.daemon.fifo_dir)),
            *("--exec-id", f"exec-{self.exec_count}"),
            name,
            *program,
        )

    def exec_required(self, name: str, *program: str) -> str:
        result = self.exec(name, *program)
        if result.returncode != 0:
            raise CommandFailed(result.argv, result.returncode, result.stdout, result.stderr)
        return result.stdout

    def task_status(self, name: str) -> tuple[str | None, int | None]:
        """Return the task's status (RUNNING, STOPPED, ...) and PID from 'ctr task ls'."""
        listing = self.require("task", "ls").stdout
        return parse_task_status(listing, name), parse_task_pid(listing, name)

    def wait_status(self, name: str, expected: str) -> str:
        """Poll 'ctr task ls' until the task's status is ``expected`` (exited is STOPPED)."""
        wanted = {"exited": "STOPPED", "running": "RUNNING"}.get(expected, expected)
        deadline = time.monotonic() + ENGINE_WAIT_S
        status, _ = self.task_status(name)
        while status != wanted and time.monotonic() < deadline:
            time.sleep(POLL_INTERVAL_S)
            status, _ = self.task_status(name)
        return "exited" if status == "STOPPED" else str(status)

    def host_pid(self, name: str) -> int:
        _, pid = self.task_status(name)
        if pid is None:
            raise LifecycleError(f"'ctr task ls' lists no PID for {name}")
        return pid

    def start(self, name: str) -> None:
        raise LifecycleError("ctr 1.6 has no command that starts a created task")

    def kill(self, name: str) -> None:
        self.require("task", "kill", "--signal", "SIGKILL", name)

    def remove(self, name: str) -> None:
        """Delete the stopped task, then the container; both must succeed."""
        self.require("task", "delete", name)
        self.require("containers", "delete", name)

    def lookup(self, name: str) -> commands.Completed:
        return self.run("containers", "info", name)

    def container_id(self, name: str) -> str:
        return name

    def no_network(self) -> list[str]:
        # Without --net-host or --cni, ctr's container gets a network namespace with a
        # loopback only.
        return []

    def share(self, kind: str, first: str) -> list[str]:
        pid = self.host_pid(first)
        return ["--with-ns", f"{kind}:/proc/{pid}/ns/{_NAMESPACE_FILES[kind]}"]

    def shareable_ipc(self) -> list[str]:
        return []

    def bind(self, source: Path, target: str, propagation: str) -> list[str]:
        return ["--mount", f"type=bind,src={source},dst={target},options=rbind:rw:{propagation}"]

    def network(self, *options: str) -> str:
        raise LifecycleError("ctr has no networks of its own")

    def pod(self, *options: str) -> str:
        raise LifecycleError("ctr has no pods")

    def kill_argv(self, name: str) -> list[str]:
        return ["task", "kill", "--signal", "SIGKILL", name]

    def host_mount_unreached(self, path: Path) -> str | None:
        """The run's containerd runs in a mount namespace of its own, a slave of the
        host's: a mount made on the host reaches it only below a shared mount that
        existed when the daemon started."""
        if Path(f"/proc/{self.daemon.pid}/root{path}").exists():
            return None
        return (
            f"a mount made on the host did not reach the mount namespace of the run's "
            f"containerd (PID {self.daemon.pid}), which was made before the mount and "
            f"receives only what a shared mount of the host propagates, so no container "
            f"of it can see {path}"
        )
