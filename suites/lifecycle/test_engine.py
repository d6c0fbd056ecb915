"""The engine-level lifecycle: state through inspect, sysctl, oom_score_adj, bind
propagation and shared namespaces, on the docker, podman and containerd rows.

These are the engines' counterparts of the OCI lifecycle (test_oci_state.py). The
requirements are those of the docker run and podman run references and podman pod
create (docker 20.10, podman 4.3), and of the OCI runtime specification 1.0.2
beneath them. The checks drive the row's engine client through the ``engine``
fixture, which journals each container, pod, network and host mount before it is
made and removes them afterwards. On the containerd row the client is ctr 1.6,
which expresses only part of the checks: the others skip with the reason.
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from isobench.engine_lifecycle import Engine
from isobench.errors import CommandFailed
from isobench.lifecycle import LifecycleError, pid_exists
from isobench.model import Request
from isobench.probe import cgroups

#: The suite this module belongs to, for the records.
SUITE = "lifecycle"

EXIT_STATUS = 7
#: A file whose creation (through exec) lets WAIT_THEN_EXIT go on to its exit.
GO_FILE = "/isobench-go"
#: Waits up to 60 s for GO_FILE, then exits with EXIT_STATUS. The second between is for
#: the exec that made the file: an engine kills the exec processes of a container whose
#: first process ends, and the exec then fails with 137.
WAIT_THEN_EXIT = (
    "/bin/sh",
    "-c",
    f"i=0; while [ ! -e {GO_FILE} ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i + 1)); done; "
    f"sleep 1; exit {EXIT_STATUS}",
)
#: An IPC-namespaced sysctl that docker and podman accept with --sysctl, and the value
#: requested (the host's value is another).
SYSCTL = "kernel.shmmax"
SYSCTL_VALUE = "123456789"
OOM_SCORE_ADJ = 432
PROPAGATION_TARGET = "/isobench-propagation"
#: The file written into the tmpfs that the host mounts under the bind source.
PROPAGATION_MARKER = "late/isobench-marker"
#: Propagation mode of the bind mount, and whether a mount made on the host under its
#: source after the start must be visible inside.
PROPAGATION = {"rslave": True, "rshared": True, "rprivate": False}
LISTEN_PORT = 7431
LISTEN_REPLY = "isobench-listener"
MQUEUE_NAME = "isobench-queue"
#: Bound of a connection to a listener, in seconds.
CONNECT_TIMEOUT_S = 5
#: The program of the engine fixture's containers unless a check names another.
HOLD = ("sleep", "300")

#: Declared deviations: check name, then runtime, then the requirement and what the
#: runtime does instead. Each becomes a strict xfail on that runtime.
DEVIATIONS: dict[str, dict[str, str]] = {
    "test_engine_sysctl_namespaced": {
        "docker+runsc": (
            "docker run and podman run set a namespaced kernel parameter with --sysctl "
            "(config.md: linux.sysctl); docker+runsc starts the container, but gVisor (runsc "
            "release 20221219) ignores the parameter: /proc/sys/kernel/shmmax inside stays at "
            "gVisor's default 18446744073692774399"
        ),
        "podman+runsc": (
            "docker run and podman run set a namespaced kernel parameter with --sysctl "
            "(config.md: linux.sysctl); podman+runsc starts the container, but gVisor (runsc "
            "release 20221219) ignores the parameter: /proc/sys/kernel/shmmax inside stays at "
            "gVisor's default 18446744073692774399"
        ),
    },
    "test_engine_oom_score_adj": {
        "docker+runsc": (
            "--oom-score-adj sets the container process's oom_score_adj (config.md: "
            "process.oomScoreAdj); on docker+runsc the sandbox process on the host has it, but "
            "gVisor's own /proc/1/oom_score_adj inside reports 0"
        ),
        "podman+runsc": (
            "--oom-score-adj sets the container process's oom_score_adj (config.md: "
            "process.oomScoreAdj); on podman+runsc the sandbox process on the host has it, but "
            "gVisor's own /proc/1/oom_score_adj inside reports 0"
        ),
    },
    "test_engine_share_network": {
        "docker+runsc": (
            "--network container:X joins the first container's network stack; on docker+runsc each "
            "container is a gVisor sandbox with a network stack of its own (runsc --network=none "
            "here), so the second does not reach the first's listener on 127.0.0.1"
        ),
        "podman+runsc": (
            "--network container:X joins the first container's network stack; on podman+runsc each "
            "container is a gVisor sandbox with a network stack of its own (runsc --network=none "
            "here), so the second does not reach the first's listener on 127.0.0.1"
        ),
    },
    "test_engine_share_pid": {
        "docker+runsc": (
            "--pid container:X joins the first container's PID namespace; on docker+runsc each "
            "container is a gVisor sandbox with a kernel of its own, so the second sees only its "
            "own processes"
        ),
        "podman+runsc": (
            "--pid container:X joins the first container's PID namespace; on podman+runsc each "
            "container is a gVisor sandbox with a kernel of its own, so the second sees only its "
            "own processes"
        ),
    },
}

#: The message of runsc (release 20221219) for an rshared bind, with which docker and
#: podman make the root mount shared.
_RUNSC_RSHARED = (
    "runsc rejects the container: 'root mount propagation option must specify private "
    'or slave: "shared"\''
)
#: gVisor (runsc release 20221219) mounts no mqueue file system on /dev/mqueue.
_RUNSC_MQUEUE = (
    "gVisor (runsc release 20221219) has no /dev/mqueue, so the first container cannot "
    "make the POSIX message queue that the check looks for"
)

#: Checks that a runtime cannot express: check name, then runtime, then the reason.
CANNOT: dict[str, dict[str, str]] = {
    "test_engine_state_create_start_exit": {
        "containerd": "ctr 1.6 has no command that creates a task without starting it "
        "('ctr task start' does both), so the created state cannot be observed",
    },
    "test_engine_sysctl_namespaced": {"containerd": "ctr 1.6 'run' has no --sysctl option"},
    "test_engine_oom_score_adj": {"containerd": "ctr 1.6 'run' has no --oom-score-adj option"},
    "test_engine_bind_propagation_rshared": {
        "docker+runsc": _RUNSC_RSHARED,
        "podman+runsc": _RUNSC_RSHARED,
    },
    "test_engine_share_ipc": {"docker+runsc": _RUNSC_MQUEUE, "podman+runsc": _RUNSC_MQUEUE},
    "test_engine_pod_shares_namespaces": {"podman+runsc": _RUNSC_MQUEUE},
}


def listener_program() -> list[str]:
    """Return a program that replies LISTEN_REPLY to every connection to LISTEN_PORT,
    for 300 s at most."""
    script = f"exec timeout 300 nc -ll -p {LISTEN_PORT} -e echo {LISTEN_REPLY}"
    return ["/bin/sh", "-c", script]


def wait_for(probe: Any, timeout: float = 15.0) -> Any:
    """Call ``probe`` until it returns a true value or ``timeout`` seconds pass; return
    its last value."""
    deadline = time.monotonic() + timeout
    value = probe()
    while not value and time.monotonic() < deadline:
        time.sleep(0.2)
        value = probe()
    return value


def container_cgroups(pid: int, container_id: str) -> list[str]:
    """Return the cgroup directories of ``pid`` on the host whose path names the container."""
    dirs = cgroups.locate(
        Path(f"/proc/{pid}/cgroup").read_text(), Path("/proc/self/mountinfo").read_text()
    )
    found = {str(directory) for directory in dirs.v1.values()}
    if dirs.unified is not None:
        found.add(str(dirs.unified))
    return sorted(directory for directory in found if container_id in directory)


# -- state through inspect ---------------------------------------------------------------


def test_engine_state_create_start_exit(engine: Engine) -> None:
    """inspect reports created after create, running with a host PID after start, then
    exited with the program's exit status."""
    name = engine.create(program=WAIT_THEN_EXIT)
    created = engine.state(name)
    engine.start(name)
    running = engine.state(name)
    pid = running.get("Pid")
    alive = isinstance(pid, int) and pid > 0 and pid_exists(pid)
    engine.exec_required(name, "touch", GO_FILE)
    status = engine.wait_status(name, "exited")
    exited = engine.state(name)

    assert created.get("Status") == "created", (
        f"State.Status after create: expected 'created', observed {created.get('Status')!r}"
    )
    assert created.get("Running") is False, (
        f"State.Running after create: expected false, observed {created.get('Running')!r}"
    )
    assert running.get("Status") == "running", (
        f"State.Status after start: expected 'running', observed {running.get('Status')!r}"
    )
    assert isinstance(pid, int), f"State.Pid after start: expected an integer, observed {pid!r}"
    assert pid > 0, f"State.Pid after start: expected a PID > 0, observed {pid}"
    assert alive, f"State.Pid {pid} after start: expected a process on the host, observed none"
    assert status == "exited", (
        f"State.Status {engine.wait_s:g} s after the program was let go: expected 'exited', "
        f"observed {status!r}"
    )
    assert exited.get("ExitCode") == EXIT_STATUS, (
        f"State.ExitCode after the exit: expected {EXIT_STATUS}, observed "
        f"{exited.get('ExitCode')!r}"
    )
    assert exited.get("Running") is False, (
        f"State.Running after the exit: expected false, observed {exited.get('Running')!r}"
    )


def test_engine_remove_clears_state(engine: Engine) -> None:
    """After rm of a stopped container, inspect fails and its cgroup directories are gone."""
    name = engine.detached()
    container_id = engine.container_id(name)
    directories = container_cgroups(engine.host_pid(name), container_id)
    if not directories:
        raise LifecycleError(
            f"no cgroup directory of {name} names its id {container_id}, so its removal "
            "cannot be seen"
        )
    engine.kill(name)
    status = engine.wait_status(name, "exited")
    if status != "exited":
        raise LifecycleError(f"{name} did not exit after SIGKILL: State.Status {status!r}")

    engine.remove(name)
    inspect = engine.lookup(name)
    left = [directory for directory in directories if Path(directory).exists()]
    assert inspect.returncode != 0, (
        f"inspect after rm: expected an error, observed exit status 0: {inspect.stdout[:300]!r}"
    )
    assert not left, f"cgroup directories after rm: expected none, observed {left}"


# -- sysctl and oom_score_adj ----------------------------------------------------------


def test_engine_sysctl_namespaced(engine: Engine) -> None:
    """--sysctl on an IPC-namespaced key sets the value inside and leaves the host's alone."""
    path = Path("/proc/sys") / SYSCTL.replace(".", "/")
    before = path.read_text().strip()
    requested = SYSCTL_VALUE if before != SYSCTL_VALUE else str(int(SYSCTL_VALUE) + 1)

    read = f"cat {path} || echo absent"
    result = engine.attached(["--sysctl", f"{SYSCTL}={requested}"], ["/bin/sh", "-c", read])
    after = path.read_text().strip()
    if result.returncode != 0:
        raise CommandFailed(result.argv, result.returncode, result.stdout, result.stderr)
    inside = result.stdout.strip()
    assert inside == requested, (
        f"{path} inside with --sysctl {SYSCTL}={requested}: expected {requested!r}, "
        f"observed {inside!r}"
    )
    assert after == before, f"{path} on the host: expected {before!r} as before, observed {after!r}"


def test_engine_oom_score_adj(engine: Engine) -> None:
    """--oom-score-adj is the oom_score_adj of the container's process, on the host and inside."""
    name = engine.detached(["--oom-score-adj", str(OOM_SCORE_ADJ)])
    pid = engine.host_pid(name)

    on_host = Path(f"/proc/{pid}/oom_score_adj").read_text().strip()
    inside = engine.exec_required(name, "cat", "/proc/1/oom_score_adj").strip()
    assert on_host == str(OOM_SCORE_ADJ), (
        f"/proc/{pid}/oom_score_adj on the host: expected '{OOM_SCORE_ADJ}', observed {on_host!r}"
    )
    assert inside == str(OOM_SCORE_ADJ), (
        f"/proc/1/oom_score_adj inside: expected '{OOM_SCORE_ADJ}', observed {inside!r}"
    )


# -- mount propagation -----------------------------------------------------------------


def propagation_seen(engine: Engine, modes: Sequence[str]) -> dict[str, bool]:
    """Start a container per bind-propagation mode on one source, mount a tmpfs on the
    host under the source, and return whether each container can read the file in it."""
    base = engine.directory("propagation")
    source = base / "source"
    source.mkdir()
    # The engines accept rslave and rshared only on a source whose mount is shared or a
    # slave, and this host's / may be private: the source becomes a shared mount of its own.
    engine.mount(source, "--bind", str(source))
    engine.make_shared(source)
    containers = {}
    for mode in modes:
        containers[mode] = engine.detached(engine.bind(source, PROPAGATION_TARGET, mode))

    late = source / "late"
    late.mkdir()
    engine.mount(late, "-t", "tmpfs", "-o", "size=64k", "tmpfs")
    (source / PROPAGATION_MARKER).write_text("mounted on the host\n")
    unreached = engine.host_mount_unreached(source / PROPAGATION_MARKER)
    if unreached is not None:
        pytest.skip(unreached)

    seen = {}
    for mode, name in containers.items():
        read = engine.exec(name, "cat", f"{PROPAGATION_TARGET}/{PROPAGATION_MARKER}")
        seen[mode] = read.returncode == 0
    return seen


def describe_seen(visible: bool) -> str:
    return "seen" if visible else "not seen"


def test_engine_bind_propagation(engine: Engine) -> None:
    """A mount made on the host under a bind source after start is seen inside with
    bind-propagation=rslave, and not with rprivate."""
    seen = propagation_seen(engine, ["rslave", "rprivate"])

    for mode in ("rslave", "rprivate"):
        assert seen[mode] == PROPAGATION[mode], (
            f"{PROPAGATION_TARGET}/{PROPAGATION_MARKER} with bind-propagation={mode}: expected "
            f"{describe_seen(PROPAGATION[mode])}, observed {describe_seen(seen[mode])}"
        )


def test_engine_bind_propagation_rshared(engine: Engine) -> None:
    """A mount made on the host under a bind source after start is seen inside with
    bind-propagation=rshared."""
    seen = propagation_seen(engine, ["rshared"])

    assert seen["rshared"], (
        f"{PROPAGATION_TARGET}/{PROPAGATION_MARKER} with bind-propagation=rshared: expected "
        f"seen, observed not seen"
    )


# -- shared namespaces -----------------------------------------------------------------


def addresses(engine: Engine, name: str) -> list[str]:
    """Return the interfaces and addresses that ``ip -o addr`` lists in a container."""
    output = engine.exec_required(name, "ip", "-o", "addr")
    found = []
    for line in output.splitlines():
        fields = line.split()
        if len(fields) >= 4:
            found.append(f"{fields[1]} {fields[3]}")
    return sorted(found)


def connect(engine: Engine, name: str) -> str:
    """Connect from a container to 127.0.0.1:LISTEN_PORT and return what it reads."""
    result = engine.exec(name, "nc", "-w", str(CONNECT_TIMEOUT_S), "127.0.0.1", str(LISTEN_PORT))
    return result.stdout.strip()


def listening(engine: Engine, name: str) -> bool:
    output = engine.exec_required(name, "netstat", "-ltn")
    return f":{LISTEN_PORT} " in output


def test_engine_share_network(engine: Engine) -> None:
    """--network container:X gives the second container the first's interfaces,
    addresses and loopback listener."""
    if engine.unsupported(Request(network="default")) is None:
        first_network = ["--network", engine.network("--internal")]
    else:
        first_network = engine.no_network()
    first = engine.detached(first_network, listener_program())
    if not wait_for(lambda: listening(engine, first)):
        raise LifecycleError(f"{first} did not listen on port {LISTEN_PORT}")
    second = engine.detached(engine.share("network", first))

    first_addresses = addresses(engine, first)
    second_addresses = addresses(engine, second)
    reply = connect(engine, second)
    assert second_addresses == first_addresses, (
        f"interfaces and addresses of the second container: expected the first's "
        f"{first_addresses}, observed {second_addresses}"
    )
    assert reply == LISTEN_REPLY, (
        f"connection from the second container to 127.0.0.1:{LISTEN_PORT}: expected the "
        f"first's listener to answer {LISTEN_REPLY!r}, observed {reply!r}"
    )


def process_arguments(engine: Engine, name: str) -> list[str]:
    """Return the command line of every process listed in a container's /proc."""
    script = 'for f in /proc/[0-9]*/cmdline; do tr "\\0" " " < "$f"; echo; done'
    output = engine.exec_required(name, "sh", "-c", script)
    return [line.strip() for line in output.splitlines() if line.strip()]


def test_engine_share_pid(engine: Engine) -> None:
    """--pid container:X shows the second container the first's processes and none of
    the host's."""
    first_program = ["sleep", "301"]
    first = engine.detached(engine.no_network(), first_program)
    second = engine.detached([*engine.no_network(), *engine.share("pid", first)])

    seen = process_arguments(engine, second)
    # The first's and the second's programs, and the shell and tr that read /proc.
    own = (shlex.join(first_program), shlex.join(HOLD), "sh -c ", "tr ")
    foreign = [line for line in seen if line != own[0] and not line.startswith(own[1:])]
    assert shlex.join(first_program) in seen, (
        f"processes seen in the second container: expected the first's "
        f"{shlex.join(first_program)!r}, observed {seen}"
    )
    assert not foreign, (
        f"processes seen in the second container: expected only the two containers', "
        f"observed also {foreign}"
    )


def test_engine_share_ipc(engine: Engine) -> None:
    """--ipc container:X shows the second container a POSIX message queue that the first made."""
    make = f"touch /dev/mqueue/{MQUEUE_NAME} && exec sleep 300"
    first_options = [*engine.no_network(), *engine.shareable_ipc()]
    first = engine.detached(first_options, ["/bin/sh", "-c", make])
    queues = wait_for(lambda: engine.exec(first, "ls", "/dev/mqueue").stdout.split())
    if MQUEUE_NAME not in queues:
        raise LifecycleError(f"{first} did not make /dev/mqueue/{MQUEUE_NAME}: {queues}")
    second = engine.detached([*engine.no_network(), *engine.share("ipc", first)])

    seen = engine.exec_required(second, "ls", "/dev/mqueue").split()
    assert MQUEUE_NAME in seen, (
        f"/dev/mqueue in the second container: expected the first's {MQUEUE_NAME!r}, "
        f"observed {seen}"
    )


# -- podman pods -----------------------------------------------------------------------


def namespace_view(engine: Engine, name: str) -> dict[str, Any]:
    """Return what a container sees of its UTS, IPC and network namespaces."""
    return {
        "hostname": engine.exec_required(name, "hostname").strip(),
        "mqueue": sorted(engine.exec_required(name, "ls", "/dev/mqueue").split()),
        "reply": connect(engine, name),
    }


def test_engine_pod_shares_namespaces(engine: Engine) -> None:
    """Containers of one podman pod share the network, IPC and UTS namespaces, and a
    container outside the pod shares none of them."""
    if engine.engine != "podman":
        pytest.skip(f"{engine.engine} has no pods; podman pod create is podman's")
    pod = engine.pod("--network", "none")
    script = (
        f"touch /dev/mqueue/{MQUEUE_NAME}; "
        f"exec timeout 300 nc -ll -p {LISTEN_PORT} -e echo {LISTEN_REPLY}"
    )
    first = engine.detached(["--pod", pod], ["/bin/sh", "-c", script])
    if not wait_for(lambda: listening(engine, first)):
        raise LifecycleError(f"{first} did not listen on port {LISTEN_PORT}")
    queues = engine.exec_required(first, "ls", "/dev/mqueue").split()
    if MQUEUE_NAME not in queues:
        raise LifecycleError(f"{first} did not make /dev/mqueue/{MQUEUE_NAME}: {queues}")
    hostname = engine.exec_required(first, "hostname").strip()
    member = engine.detached(["--pod", pod])
    outsider = engine.detached(engine.no_network())

    inside = namespace_view(engine, member)
    outside = namespace_view(engine, outsider)
    assert inside == {"hostname": hostname, "mqueue": [MQUEUE_NAME], "reply": LISTEN_REPLY}, (
        f"a second container of the pod: expected the first's hostname {hostname!r}, message "
        f"queue {MQUEUE_NAME!r} and listener reply {LISTEN_REPLY!r}, observed {inside}"
    )
    assert outside["hostname"] != hostname, (
        f"hostname of a container outside the pod: expected another than {hostname!r}, "
        f"observed {outside['hostname']!r}"
    )
    assert outside["mqueue"] == [], (
        f"/dev/mqueue of a container outside the pod: expected empty, observed {outside['mqueue']}"
    )
    assert outside["reply"] == "", (
        f"connection from outside the pod to 127.0.0.1:{LISTEN_PORT}: expected no answer, "
        f"observed {outside['reply']!r}"
    )
