"""The container process's namespaces, sysctls, OOM score, rlimits and id mappings.

The checks follow config.md and config-linux.md of the OCI runtime
specification 1.0.2. A namespace with a ``path`` is joined, and one without is
new. ``linux.sysctl`` is applied in the container's namespaces only.
``process.oomScoreAdj`` and ``process.rlimits`` are the process's, and
``uidMappings`` and ``gidMappings`` are the maps of its user namespace.

Each container's program prints what it observes inside, between delimiter
lines, to its stdout (the bundle's output file), then holds until its stdin
closes. The host side is read through the PID that 'state' reports. The
namespaces that a check joins are made by the check itself, each with a mark
(an address on the loopback interface, a hostname, a SysV shared memory
segment), and each is in the journal before it is made.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from isobench import commands
from isobench.lifecycle import (
    POLL_INTERVAL_S,
    WAIT_S,
    Lifecycle,
    LifecycleError,
    read_config,
    read_output,
    tail,
    write_config,
)
from isobench.model import Request

#: The suite this module belongs to, for the records.
SUITE = "lifecycle"

#: The start of a line that opens a section of the program's output. The fact's name
#: follows it.
FACT_PREFIX = "@@isobench-fact "
#: The last line the program prints before it waits for the end of its input.
FACTS_DONE = "@@isobench-facts-done"

#: The marks of the namespaces that the checks make and join.
NETNS_ADDRESS = "127.77.0.1"
UTS_HOSTNAME = "isobench-joined-uts"
#: The size in bytes of the SysV shared memory segment made in the joined IPC namespace.
SHM_SIZE = 54321

#: Namespaced sysctls with values that differ from a new namespace's defaults
#: (1024, 8192 and 4096 on Linux 6.x).
NET_SYSCTLS = {"net.ipv4.ip_unprivileged_port_start": "2000"}
IPC_SYSCTLS = {"kernel.msgmax": "12345", "kernel.shmmni": "2345"}

#: Positive, because lowering oom_score_adj needs CAP_SYS_RESOURCE, which a host may lack.
OOM_SCORE_ADJ = 271

#: Below usual hard limits, because raising a hard limit needs CAP_SYS_RESOURCE, which a
#: host may lack. Each type with its option of the shell's ulimit, its soft and hard limit.
RLIMITS = {
    "RLIMIT_NOFILE": ("n", 321, 654),
    "RLIMIT_NPROC": ("u", 1111, 2222),
    "RLIMIT_CPU": ("t", 3000, 3600),
}

#: Two uid ranges with a gap, so that a runtime that writes only the first, or one
#: range of its own, shows. The gid range starts elsewhere than the uid ranges.
UID_MAPPINGS = [
    {"containerID": 0, "hostID": 200000, "size": 1000},
    {"containerID": 1000, "hostID": 261000, "size": 64536},
]
GID_MAPPINGS = [{"containerID": 0, "hostID": 300000, "size": 65536}]
#: The file that the container's root creates in the rootfs, to be read on the host.
OWNED_FILE = "isobench-owned"

#: Declared deviations: check name, then runtime, then the requirement and what the
#: runtime does instead. Each becomes a strict xfail on that runtime.
DEVIATIONS: dict[str, dict[str, str]] = {
    "test_join_network_namespace": {
        "runsc": "config-linux.md 1.0.2 requires that the runtime place the container process "
        "in the namespace associated with the path; runsc (release 20221219, with "
        "--network=none) creates the container without an error, but its sandbox is in a new "
        "network namespace and inside there is only runsc's own loopback (127.0.0.1/8, ::1)",
    },
    "test_join_uts_namespace": {
        "runsc": "config-linux.md 1.0.2 requires that the runtime place the container process "
        "in the namespace associated with the path; runsc (release 20221219) creates the "
        "container without an error, but its sandbox is in a new UTS namespace and the "
        "hostname inside is '?', not the joined namespace's",
    },
    "test_join_ipc_namespace": {
        "runsc": "config-linux.md 1.0.2 requires that the runtime place the container process "
        "in the namespace associated with the path; runsc (release 20221219) creates the "
        "container without an error, but its sandbox is in a new IPC namespace and inside "
        "there is no /proc/sysvipc/shm that could show the joined namespace's segment",
    },
    "test_sysctl_network_applied": {
        "runsc": "config-linux.md 1.0.2: linux.sysctl allows kernel parameters to be modified "
        "at runtime for the container; runsc (release 20221219) creates the container without "
        "an error, but its kernel has no net.ipv4.ip_unprivileged_port_start "
        "(/proc/sys/net/ipv4/ip_unprivileged_port_start is missing inside)",
    },
    "test_sysctl_ipc_applied": {
        "runsc": "config-linux.md 1.0.2: linux.sysctl allows kernel parameters to be modified "
        "at runtime for the container; runsc (release 20221219) creates the container without "
        "an error, but kernel.msgmax inside stays 8192 instead of 12345",
    },
    "test_oom_score_adj_applied": {
        "isobox": "config.md 1.0.2: if oomScoreAdj is set, the runtime MUST set oom_score_adj "
        "to the given value; isobox creates the container without an error, and the "
        "process's oom_score_adj stays 0 instead of 271",
    },
    "test_idmap_maps_applied": {
        "runsc": "config-linux.md 1.0.2: uidMappings and gidMappings describe the user "
        "namespace mappings from the host to the container; runsc (release 20221219) creates "
        "the container without an error but does not apply them: its sandbox's uid_map on "
        "the host is '65534 65534 1' and the uid_map inside is '0 0 4294967295'",
    },
    "test_idmap_host_ids": {
        "runsc": "config-linux.md 1.0.2: uidMappings and gidMappings describe the user "
        "namespace mappings from the host to the container; runsc (release 20221219) creates "
        "the container without an error, but its sandbox runs as host uid 65534, not as the "
        "mapped uid 200000 of the container's root",
    },
}

#: Checks a runtime cannot express because it rejects the property with a message.
CANNOT: dict[str, dict[str, str]] = {
    "test_join_network_namespace": {
        "isobox": "isobox rejects a namespace path: 'joining an existing namespace (a "
        "namespace path) is not implemented'",
    },
    "test_join_uts_namespace": {
        "isobox": "isobox rejects a namespace path: 'joining an existing namespace (a "
        "namespace path) is not implemented'",
    },
    "test_join_ipc_namespace": {
        "isobox": "isobox rejects a namespace path: 'joining an existing namespace (a "
        "namespace path) is not implemented'",
    },
    "test_sysctl_network_applied": {
        "isobox": "isobox rejects linux.sysctl: 'config.json sets linux.sysctl, but isobox does "
        "not set sysctls'",
    },
    "test_sysctl_ipc_applied": {
        "isobox": "isobox rejects linux.sysctl: 'config.json sets linux.sysctl, but isobox does "
        "not set sysctls'",
    },
}


# -- the container's program and its output ------------------------------------------


def facts_program(facts: dict[str, str]) -> list[str]:
    """Return a program that prints the output of each shell command under its fact
    name, then reads its stdin until the end of input."""
    # Each delimiter starts on a line of its own, because some files end without a
    # newline (runsc's /proc/sys/kernel/msgmax), and parse_facts drops empty lines.
    sections = [
        f"printf '\\n%s\\n' '{FACT_PREFIX}{name}'; {command} 2>&1"
        for name, command in facts.items()
    ]
    done = f"printf '\\n%s\\n' '{FACTS_DONE}'"
    script = "; ".join([*sections, done, "while read -r line; do :; done"])
    return ["/bin/sh", "-c", script]


def parse_facts(output: str) -> dict[str, list[str]] | None:
    """Return the program's output lines by fact name, or None before it printed them all.

    Lines outside the sections, such as the runtime's own messages, are ignored.
    """
    facts: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in output.splitlines():
        if line == FACTS_DONE:
            return facts
        if line.startswith(FACT_PREFIX):
            current = facts.setdefault(line.removeprefix(FACT_PREFIX), [])
        elif current is not None and line:
            current.append(line)
    return None


def wait_facts(bundle: Path) -> dict[str, list[str]]:
    """Poll the bundle's output file until the program printed its facts, or raise
    LifecycleError after WAIT_S."""
    deadline = time.monotonic() + WAIT_S
    while True:
        facts = parse_facts(read_output(bundle))
        if facts is not None:
            return facts
        if time.monotonic() > deadline:
            raise LifecycleError(
                f"the container's program printed no facts within {WAIT_S:g} s "
                f"(output: {tail(read_output(bundle))!r})"
            )
        time.sleep(POLL_INTERVAL_S)


def run_container(
    lifecycle: Lifecycle, name: str, bundle: Path
) -> tuple[int, dict[str, list[str]]]:
    """Create and start the container, wait for its facts, and return its host PID
    (the 'state' pid) with the facts."""
    lifecycle.create_required(name, bundle)
    lifecycle.require("start", name)
    facts = wait_facts(bundle)

    pid = lifecycle.state(name).get("pid")
    if not isinstance(pid, int) or pid <= 0:
        raise LifecycleError(f"'state {name}' reports no PID of a running container: {pid!r}")
    return pid, facts


def edit_bundle(bundle: Path, edit: Callable[[dict[str, Any]], None]) -> None:
    config = read_config(bundle)
    edit(config)
    write_config(bundle, config)


# -- namespaces that the checks join -------------------------------------------------


def namespace_id(kind: str, path: Path) -> str:
    """Return the namespace of a namespace file as /proc/PID/ns/KIND names it."""
    return f"{kind}:[{path.stat().st_ino}]"


def process_namespace(pid: int, kind: str) -> str:
    try:
        return os.readlink(f"/proc/{pid}/ns/{kind}")
    except OSError as exc:
        raise LifecycleError(f"failed to read /proc/{pid}/ns/{kind}: {exc.strerror}") from None


def make_network_namespace(lifecycle: Lifecycle) -> Path:
    """Make a named network namespace with NETNS_ADDRESS on its loopback interface."""
    name = lifecycle.harness.ctx.container_name("netns")
    lifecycle.entries.append(
        lifecycle.harness.journal.record(
            "netns",
            name,
            ["ip", "netns", "delete", name],
            runtime=lifecycle.runtime.name,
            absent=("No such file",),
        )
    )
    commands.run(["ip", "netns", "add", name], timeout=30)
    commands.run(
        ["ip", "-n", name, "address", "add", f"{NETNS_ADDRESS}/32", "dev", "lo"], timeout=30
    )
    return Path("/run/netns") / name


def make_bound_namespace(lifecycle: Lifecycle, bundle: Path, kind: str, *argv: str) -> Path:
    """Make a namespace of ``kind`` (uts or ipc) that unshare binds to a file in the
    bundle, and run ``argv`` in it to set its mark."""
    path = bundle / f"isobench-{kind}.ns"
    lifecycle.entries.append(
        lifecycle.harness.journal.record(
            "mount",
            str(path),
            ["umount", str(path)],
            runtime=lifecycle.runtime.name,
            absent=("not mounted", "No such file"),
        )
    )
    path.touch()
    commands.run(["unshare", f"--{kind}={path}", *argv], timeout=30)
    return path


def make_uts_namespace(lifecycle: Lifecycle, bundle: Path) -> Path:
    return make_bound_namespace(lifecycle, bundle, "uts", "hostname", UTS_HOSTNAME)


def make_ipc_namespace(lifecycle: Lifecycle, bundle: Path) -> Path:
    return make_bound_namespace(lifecycle, bundle, "ipc", "ipcmk", "--shmem", str(SHM_SIZE))


def join(config: dict[str, Any], oci_type: str, path: Path) -> None:
    """Give the namespace entry of ``oci_type`` the ``path`` to join."""
    for namespace in config["linux"]["namespaces"]:
        if namespace["type"] == oci_type:
            namespace["path"] = str(path)
            return
    config["linux"]["namespaces"].append({"type": oci_type, "path": str(path)})


def shm_sizes(lines: list[str]) -> list[int]:
    """Return the segment sizes of /proc/sysvipc/shm (its fourth column)."""
    sizes = []
    for line in lines[1:]:
        fields = line.split()
        if len(fields) > 3 and fields[3].isdigit():
            sizes.append(int(fields[3]))
    return sizes


def assert_joined(pid: int, kind: str, path: Path, inside: object) -> None:
    """Require the process to be in the namespace of ``path``. The message shows
    ``inside``, the mark as the container observed it."""
    expected = namespace_id(kind, path)
    observed = process_namespace(pid, kind)
    assert observed == expected, (
        f"/proc/{pid}/ns/{kind} of the container: expected the namespace of {path}, "
        f"{expected}, observed {observed} (the mark inside: {inside})"
    )


def test_join_network_namespace(lifecycle: Lifecycle) -> None:
    """A network namespace given by path is the container's, with its loopback address."""
    netns = make_network_namespace(lifecycle)
    program = facts_program({"addresses": "ip -o address show dev lo"})
    name, bundle = lifecycle.bundle(lambda config: join(config, "network", netns), program=program)

    pid, facts = run_container(lifecycle, name, bundle)
    addresses = " ".join(facts.get("addresses", []))
    assert_joined(pid, "net", netns, addresses)
    assert f"inet {NETNS_ADDRESS}/32" in addresses, (
        f"addresses on lo inside: expected {NETNS_ADDRESS}/32 from {netns}, observed {addresses!r}"
    )


def test_join_uts_namespace(lifecycle: Lifecycle) -> None:
    """A UTS namespace given by path is the container's, with its hostname."""
    name, bundle = lifecycle.bundle(program=facts_program({"hostname": "hostname"}))
    uts = make_uts_namespace(lifecycle, bundle)

    def edit(config: dict[str, Any]) -> None:
        # A hostname in config.json would replace the joined namespace's own.
        config.pop("hostname", None)
        join(config, "uts", uts)

    edit_bundle(bundle, edit)
    pid, facts = run_container(lifecycle, name, bundle)
    hostname = facts.get("hostname")
    assert_joined(pid, "uts", uts, hostname)
    assert hostname == [UTS_HOSTNAME], (
        f"hostname inside: expected {UTS_HOSTNAME!r} of {uts}, observed {hostname}"
    )


def test_join_ipc_namespace(lifecycle: Lifecycle) -> None:
    """An IPC namespace given by path is the container's, with its shared memory segment."""
    name, bundle = lifecycle.bundle(program=facts_program({"shm": "cat /proc/sysvipc/shm"}))
    ipc = make_ipc_namespace(lifecycle, bundle)

    edit_bundle(bundle, lambda config: join(config, "ipc", ipc))
    pid, facts = run_container(lifecycle, name, bundle)
    sizes = shm_sizes(facts.get("shm", []))
    assert_joined(pid, "ipc", ipc, facts.get("shm"))
    assert sizes == [SHM_SIZE], (
        f"SysV shared memory segments inside: expected one of {SHM_SIZE} bytes from {ipc}, "
        f"observed sizes {sizes} ({facts.get('shm')})"
    )


def test_join_without_path_new(lifecycle: Lifecycle) -> None:
    """Network, UTS and IPC namespaces listed without a path are new: neither the host's
    nor the existing namespaces that other containers could join."""
    name, bundle = lifecycle.bundle(program=facts_program({}))
    existing = {
        "net": make_network_namespace(lifecycle),
        "uts": make_uts_namespace(lifecycle, bundle),
        "ipc": make_ipc_namespace(lifecycle, bundle),
    }
    listed = {entry["type"] for entry in read_config(bundle)["linux"]["namespaces"]}
    if not {"network", "uts", "ipc"} <= listed:
        raise LifecycleError(f"the bundle lists only the namespaces {sorted(listed)}")

    pid, _ = run_container(lifecycle, name, bundle)
    for kind, path in existing.items():
        host = process_namespace(os.getpid(), kind)
        observed = process_namespace(pid, kind)
        assert observed != host, (
            f"/proc/{pid}/ns/{kind} of the container: expected a new namespace, observed "
            f"the host's {host}"
        )
        assert observed != namespace_id(kind, path), (
            f"/proc/{pid}/ns/{kind} of the container: expected a new namespace, observed "
            f"the existing {observed} of {path}"
        )


# -- sysctl ----------------------------------------------------------------------------


def sysctl_file(key: str) -> str:
    return "/proc/sys/" + key.replace(".", "/")


def host_sysctls(keys: list[str]) -> dict[str, str]:
    return {key: Path(sysctl_file(key)).read_text().strip() for key in keys}


def assert_sysctls_applied(lifecycle: Lifecycle, sysctls: dict[str, str]) -> None:
    """Run a container with ``sysctls`` and require each value inside and the host's
    values unchanged."""
    before = host_sysctls(list(sysctls))
    program = facts_program({key: f"cat {sysctl_file(key)}" for key in sysctls})
    name, bundle = lifecycle.bundle(
        lambda config: config["linux"].update(sysctl=dict(sysctls)), program=program
    )

    _, facts = run_container(lifecycle, name, bundle)
    after = host_sysctls(list(sysctls))
    for key, value in sysctls.items():
        inside = facts.get(key)
        assert inside == [value], f"{key} inside: expected {value!r}, observed {inside}"
    for key in sysctls:
        assert after[key] == before[key], (
            f"{key} on the host: expected {before[key]!r} as before the container, "
            f"observed {after[key]!r}"
        )


def test_sysctl_network_applied(lifecycle: Lifecycle) -> None:
    """A net.* sysctl is set in the container's network namespace, not on the host."""
    assert_sysctls_applied(lifecycle, NET_SYSCTLS)


def test_sysctl_ipc_applied(lifecycle: Lifecycle) -> None:
    """kernel.msgmax and kernel.shmmni are set in the container's IPC namespace, not on
    the host."""
    assert_sysctls_applied(lifecycle, IPC_SYSCTLS)


# -- oomScoreAdj, rlimits ---------------------------------------------------------------


def test_oom_score_adj_applied(lifecycle: Lifecycle) -> None:
    """process.oomScoreAdj is the oom_score_adj of the container's process on the host."""
    program = facts_program({"oom_score_adj": "cat /proc/$$/oom_score_adj"})
    name, bundle = lifecycle.bundle(
        lambda config: config["process"].update(oomScoreAdj=OOM_SCORE_ADJ), program=program
    )

    pid, facts = run_container(lifecycle, name, bundle)
    observed = Path(f"/proc/{pid}/oom_score_adj").read_text().strip()
    assert observed == str(OOM_SCORE_ADJ), (
        f"/proc/{pid}/oom_score_adj on the host: expected {OOM_SCORE_ADJ}, observed {observed} "
        f"(inside: {facts.get('oom_score_adj')})"
    )


def set_rlimits(config: dict[str, Any]) -> None:
    config["process"]["rlimits"] = [
        {"type": kind, "soft": soft, "hard": hard} for kind, (_, soft, hard) in RLIMITS.items()
    ]


def test_rlimits_applied(lifecycle: Lifecycle) -> None:
    """Each entry of process.rlimits is the soft and hard limit of the container's process.

    The process reads its limits with the shell's ulimit, because under runsc the
    PID that 'state' reports is the sandbox, and runsc's /proc has no limits file.
    """
    program = facts_program(
        {kind: f"ulimit -S -{flag}; ulimit -H -{flag}" for kind, (flag, _, _) in RLIMITS.items()}
    )
    name, bundle = lifecycle.bundle(set_rlimits, program=program)

    _, facts = run_container(lifecycle, name, bundle)
    for kind, (flag, soft, hard) in RLIMITS.items():
        observed = facts.get(kind)
        assert observed == [str(soft), str(hard)], (
            f"{kind} ('ulimit -S -{flag}' and 'ulimit -H -{flag}' inside): expected soft "
            f"{soft} and hard {hard}, observed {observed}"
        )


# -- user namespace mappings ------------------------------------------------------------


def map_ids(config: dict[str, Any]) -> None:
    config["linux"]["uidMappings"] = [dict(mapping) for mapping in UID_MAPPINGS]
    config["linux"]["gidMappings"] = [dict(mapping) for mapping in GID_MAPPINGS]


def mapped_bundle(lifecycle: Lifecycle, facts: dict[str, str]) -> tuple[str, Path]:
    """Lay out a bundle with a user namespace and the mappings of this module.

    The rootfs is the bundle's own copy, so the check gives it to the host ids
    that the container's root maps to. The runtime need not (and SHOULD NOT)
    change its ownership, and a runtime that maps root elsewhere cannot write to it.
    """
    request = Request(userns="private")
    name, bundle = lifecycle.bundle(map_ids, request=request, program=facts_program(facts))
    root_uid = UID_MAPPINGS[0]["hostID"]
    root_gid = GID_MAPPINGS[0]["hostID"]
    commands.run(["chown", "-R", f"{root_uid}:{root_gid}", str(bundle / "rootfs")], timeout=60)
    return name, bundle


def map_lines(mappings: list[dict[str, int]]) -> list[list[str]]:
    return [[str(m["containerID"]), str(m["hostID"]), str(m["size"])] for m in mappings]


def test_idmap_maps_applied(lifecycle: Lifecycle) -> None:
    """uid_map and gid_map of the container's process are uidMappings and gidMappings."""
    name, bundle = mapped_bundle(lifecycle, {"uid_map": "cat /proc/$$/uid_map"})

    pid, facts = run_container(lifecycle, name, bundle)
    for file, mappings in (("uid_map", UID_MAPPINGS), ("gid_map", GID_MAPPINGS)):
        text = Path(f"/proc/{pid}/{file}").read_text()
        observed = [line.split() for line in text.splitlines()]
        assert observed == map_lines(mappings), (
            f"/proc/{pid}/{file} on the host: expected {map_lines(mappings)}, observed "
            f"{observed} (uid_map inside: {facts.get('uid_map')})"
        )


def status_ids(pid: int, field: str) -> list[str]:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return line.split()[1:]
    raise LifecycleError(f"/proc/{pid}/status has no {field} line")


def test_idmap_host_ids(lifecycle: Lifecycle) -> None:
    """The container's root is the mapped host uid and gid, for its process and for a
    file it creates."""
    create = f"echo owned > /{OWNED_FILE} && echo created"
    name, bundle = mapped_bundle(lifecycle, {"id": "id -u; id -g", "create": create})
    root_uid = UID_MAPPINGS[0]["hostID"]
    root_gid = GID_MAPPINGS[0]["hostID"]

    pid, facts = run_container(lifecycle, name, bundle)
    uids = status_ids(pid, "Uid")
    gids = status_ids(pid, "Gid")
    assert uids == [str(root_uid)] * 4, (
        f"Uid of /proc/{pid}/status on the host: expected {root_uid} four times, observed "
        f"{uids} (id inside: {facts.get('id')})"
    )
    assert gids == [str(root_gid)] * 4, (
        f"Gid of /proc/{pid}/status on the host: expected {root_gid} four times, observed {gids}"
    )
    owned = bundle / "rootfs" / OWNED_FILE
    assert owned.exists(), (
        f"/{OWNED_FILE}, created by the container's root: expected a file, observed none "
        f"(inside: {facts.get('create')})"
    )
    info = owned.stat()
    assert (info.st_uid, info.st_gid) == (root_uid, root_gid), (
        f"owner of /{OWNED_FILE} on the host: expected {root_uid}:{root_gid}, observed "
        f"{info.st_uid}:{info.st_gid}"
    )
