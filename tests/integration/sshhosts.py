"""Throwaway ssh hosts on this machine, for the tests of isobench's ssh:// hosts.

Each host is a network namespace that the root namespace reaches through a veth
pair on a private /30 of its own. Its sshd runs in that namespace and in a UTS
namespace with the host's own hostname, so ``ssh HOST hostname`` prints the
host's name. The keys, configs and logs are in one temporary directory. No sshd
listens in the root network namespace, and the hosts' addresses are routed only
through the veth pairs, so no traffic leaves this machine.

Everything made carries the tag: the namespaces are ``isobench-TAG-nodeN``, the
root ends of the veth pairs ``TAG-rN``, the ends in the namespaces ``TAG-nN``
and the temporary directory ``isobench-TAG-*``. :func:`leftovers` lists what
remains of a tag. Needs root and openssh-server.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import json
import logging
import os
import re
import secrets
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.parse
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

SSHD = Path("/usr/sbin/sshd")
#: sshd's privilege separation directory in Debian's build; sshd does not start without it.
PRIVSEP_DIR = Path("/run/sshd")
#: Serializes the choice of subnets between fixtures that start at the same time. The
#: kernel releases the flock when its process ends, so the file stays in place.
LOCK_PATH = Path("/run/isobench/sshhosts.lock")
NETNS_DIR = Path("/run/netns")
#: Host N gets the first free 10.213.X.0/30 with X in this range: the root end of
#: its veth pair is 10.213.X.1 and the host is 10.213.X.2.
SUBNET_OCTETS = range(1, 255)
SSH_PORT = 22
#: Tags fit the interface names: "TAG-rNNN" must stay within the kernel's 15 characters.
TAG_PATTERN = re.compile(r"[a-z][a-z0-9]{0,9}")
READY_TIMEOUT = 20.0  # seconds for each sshd to accept a login
POLL_INTERVAL = 0.05  # seconds between two login attempts
STOP_TIMEOUT = 5.0  # seconds from SIGTERM to SIGKILL
COMMAND_TIMEOUT = 30.0  # seconds for ip, ssh-keygen and the ssh control commands
#: A Unix socket path has at most 107 bytes, and ssh binds a new control socket at
#: its ControlPath plus a dot and 16 random characters, then links it into place
#: (muxserver_listen in OpenSSH's mux.c).
MAX_SOCKET_PATH = 107 - 17
#: The control socket of each ssh connection, as ssh expands it: user, host and port.
CONTROL_SOCKET = "cm-%r@%h:%p"


class SshHostsError(RuntimeError):
    """A failure to set up or remove the throwaway ssh hosts."""


@dataclass(frozen=True)
class SshHost:
    """One throwaway ssh host: an sshd in a network and a UTS namespace of its own."""

    #: The hostname inside the host, such as isobench-node1.
    name: str
    #: The host's IPv4 address, where its sshd listens on port 22.
    address: str
    #: A testinfra host spec for root on this host, with the fixture's ssh_config.
    spec: str
    #: The name of the host's network namespace, as ``ip netns list`` shows it.
    netns: str
    #: The client configuration for every host of the fixture, for ``ssh -F``.
    ssh_config: Path
    #: The address of the veth end in the root namespace.
    root_address: str
    #: The veth end in the root namespace.
    root_veth: str
    #: The veth end in the host's namespace.
    node_veth: str
    #: The PID of the host's sshd.
    sshd_pid: int


@dataclass(frozen=True)
class _Node:
    """The network of one host, before its sshd runs."""

    index: int
    name: str
    netns: str
    root_veth: str
    node_veth: str
    root_address: ipaddress.IPv4Interface
    address: ipaddress.IPv4Interface


@dataclass
class _Resources:
    """The resources a fixture has made so far, so that cleanup removes exactly those."""

    tag: str
    workdir: Path | None = None
    namespaces: list[str] = field(default_factory=list)
    #: An open file descriptor of each namespace. It keeps the namespace's inode
    #: from being reused until cleanup has checked that no process is left in it.
    netns_fds: dict[str, int] = field(default_factory=dict)
    root_veths: list[str] = field(default_factory=list)
    #: The sshd of each namespace.
    sshds: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)


def new_tag() -> str:
    """Return a random tag, such as sshh3fa9c2, for one use of :func:`ssh_hosts`."""
    return f"sshh{secrets.token_hex(3)}"


@contextlib.contextmanager
def ssh_hosts(count: int = 2, tag: str | None = None) -> Iterator[list[SshHost]]:
    """Start ``count`` ssh hosts in namespaces of their own and yield them.

    ``tag`` goes into the name of everything made, and defaults to one from
    :func:`new_tag`. On exit, also when the set-up fails half-way, cleanup
    ends the ssh ControlMaster processes on the fixture's control sockets, the
    sshds and every process left in the namespaces. Then it deletes the veth
    pairs and the namespaces and removes the temporary directory. Raises
    SshHostsError when a tool is missing, a step fails, or something of the tag
    remains after cleanup.
    """
    tag = new_tag() if tag is None else tag
    _validate_arguments(count, tag)
    _check_requirements()

    resources = _Resources(tag)
    try:
        yield _set_up(count, resources)
    finally:
        _remove(resources)


def leftovers(tag: str) -> list[str]:
    """List what the fixture with ``tag`` left on this machine.

    That is its network namespaces, its network interfaces in the root
    namespace, the processes whose command line names its namespaces or its
    directory, and its temporary directories. An sshd session has no tag in
    its command line, so the fixture's own cleanup also looks for processes
    by namespace.
    """
    prefix = f"isobench-{tag}-"
    found = [f"network namespace {name}" for name in _netns_names() if name.startswith(prefix)]
    found += [f"network interface {name}" for name in _link_names() if name.startswith(f"{tag}-")]
    for pid, command_line in _processes():
        if prefix in command_line:
            found.append(f"process {pid} ({command_line})")
    found += [
        f"directory {path}" for path in sorted(Path(tempfile.gettempdir()).glob(f"{prefix}*"))
    ]
    return found


def _validate_arguments(count: int, tag: str) -> None:
    if not TAG_PATTERN.fullmatch(tag):
        raise SshHostsError(
            f"invalid tag {tag!r}: use 1 to 10 lowercase letters and digits, starting with a "
            "letter, so that the veth names fit the kernel's 15 characters"
        )
    if not 1 <= count <= len(SUBNET_OCTETS):
        raise SshHostsError(f"invalid count {count}: use 1 to {len(SUBNET_OCTETS)} hosts")


def _check_requirements() -> None:
    if not SSHD.exists():
        raise SshHostsError(
            f"{SSHD} not found: install the Debian package openssh-server "
            "(scripts/setup-host.sh installs it)"
        )
    for tool, package in (
        ("ssh", "openssh-client"),
        ("ssh-keygen", "openssh-client"),
        ("ip", "iproute2"),
        ("unshare", "util-linux"),
        ("nsenter", "util-linux"),
    ):
        if shutil.which(tool) is None:
            raise SshHostsError(f"{tool} not found: install the Debian package {package}")
    if os.geteuid() != 0:
        raise SshHostsError(
            "ssh hosts need root to make network namespaces and run sshd: run the tests as root"
        )


def _set_up(count: int, resources: _Resources) -> list[SshHost]:
    workdir = Path(tempfile.mkdtemp(prefix=f"isobench-{resources.tag}-"))
    resources.workdir = workdir
    PRIVSEP_DIR.mkdir(mode=0o755, exist_ok=True)

    client_key = workdir / "client_ed25519"
    client_public = _generate_key(client_key, f"isobench-{resources.tag}-client")
    (workdir / "authorized_keys").write_text(client_public + "\n")

    nodes = _make_networks(count, resources)

    known_hosts = []
    for node in nodes:
        host_public = _generate_key(workdir / f"node{node.index}_host_ed25519", node.netns)
        known_hosts.append(f"{node.address.ip} {host_public}\n")
        sshd_config = _sshd_config_text(node, workdir)
        (workdir / f"node{node.index}_sshd_config").write_text(sshd_config)
    (workdir / "known_hosts").write_text("".join(known_hosts))
    ssh_config = workdir / "ssh_config"
    ssh_config.write_text(_ssh_config_text(nodes, workdir, client_key))

    hosts = []
    for node in nodes:
        sshd = _start_sshd(node, workdir)
        resources.sshds[node.netns] = sshd
        log.info(
            "started sshd %d for %s at %s in %s", sshd.pid, node.name, node.address.ip, node.netns
        )
        _wait_until_ready(node, sshd, ssh_config, workdir)
        hosts.append(
            SshHost(
                name=node.name,
                address=str(node.address.ip),
                spec=_host_spec(node, ssh_config),
                netns=node.netns,
                ssh_config=ssh_config,
                root_address=str(node.root_address.ip),
                root_veth=node.root_veth,
                node_veth=node.node_veth,
                sshd_pid=sshd.pid,
            )
        )
    return hosts


def _host_spec(node: _Node, ssh_config: Path) -> str:
    query = urllib.parse.quote(str(ssh_config), safe="/")
    return f"ssh://root@{node.address.ip}?ssh_config={query}"


def _generate_key(path: Path, comment: str) -> str:
    """Write a new ed25519 key pair without passphrase at ``path`` and return the public key."""
    _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)])
    return Path(f"{path}.pub").read_text().strip()


def _make_networks(count: int, resources: _Resources) -> list[_Node]:
    """Make a namespace and a veth pair with addresses for each host.

    The flock keeps a fixture that starts meanwhile from choosing the same
    subnets, until the new addresses show in ``ip addr``.
    """
    LOCK_PATH.parent.mkdir(parents=True, exist_ok=True)
    with LOCK_PATH.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        subnets = _free_subnets(count, _used_networks())
        nodes = []
        for index, subnet in enumerate(subnets, start=1):
            root_address, address = (
                ipaddress.IPv4Interface(f"{ip}/{subnet.prefixlen}") for ip in subnet.hosts()
            )
            node = _Node(
                index=index,
                name=f"isobench-node{index}",
                netns=f"isobench-{resources.tag}-node{index}",
                root_veth=f"{resources.tag}-r{index}",
                node_veth=f"{resources.tag}-n{index}",
                root_address=root_address,
                address=address,
            )
            _make_network(node, resources)
            nodes.append(node)
    return nodes


def _make_network(node: _Node, resources: _Resources) -> None:
    _run(["ip", "netns", "add", node.netns])
    resources.namespaces.append(node.netns)
    resources.netns_fds[node.netns] = os.open(NETNS_DIR / node.netns, os.O_RDONLY | os.O_CLOEXEC)

    peer = ["peer", "name", node.node_veth, "netns", node.netns]
    _run(["ip", "link", "add", node.root_veth, "type", "veth", *peer])
    resources.root_veths.append(node.root_veth)
    _run(["ip", "addr", "add", str(node.root_address), "dev", node.root_veth])
    _run(["ip", "link", "set", node.root_veth, "up"])

    in_netns = ["ip", "-n", node.netns]
    _run([*in_netns, "addr", "add", str(node.address), "dev", node.node_veth])
    _run([*in_netns, "link", "set", node.node_veth, "up"])
    _run([*in_netns, "link", "set", "lo", "up"])


def _used_networks() -> list[ipaddress.IPv4Network]:
    """Return the IPv4 networks of every route and address in the root namespace.

    The default route is left out, because it overlaps every network.
    """
    used = []
    routes = _run_json(["ip", "-j", "-4", "route", "show", "table", "all"])
    for route in routes:
        destination = route.get("dst")
        if destination and destination != "default":
            used.append(ipaddress.IPv4Network(destination, strict=False))
    for link in _run_json(["ip", "-j", "-4", "addr", "show"]):
        for info in link.get("addr_info", []):
            interface = ipaddress.IPv4Interface(f"{info['local']}/{info['prefixlen']}")
            used.append(interface.network)
    return used


def _free_subnets(count: int, used: Sequence[ipaddress.IPv4Network]) -> list[ipaddress.IPv4Network]:
    free = []
    for octet in SUBNET_OCTETS:
        candidate = ipaddress.IPv4Network(f"10.213.{octet}.0/30")
        if not any(candidate.overlaps(network) for network in used):
            free.append(candidate)
        if len(free) == count:
            return free
    first, last = SUBNET_OCTETS[0], SUBNET_OCTETS[-1]
    raise SshHostsError(
        f"only {len(free)} of the {count} subnets needed are free: routes or addresses on "
        f"this machine overlap the other /30 subnets from 10.213.{first}.0 to "
        f"10.213.{last}.0 (see ip -4 route show table all)"
    )


def _sshd_config_text(node: _Node, workdir: Path) -> str:
    # StrictModes would reject the authorized_keys file because its path goes
    # through /tmp, which is world-writable. The directory itself is 0700 root.
    return f"""\
# sshd of the throwaway ssh host {node.name} in network namespace {node.netns}.
ListenAddress {node.address.ip}:{SSH_PORT}
HostKey {workdir}/node{node.index}_host_ed25519
PidFile {workdir}/node{node.index}_sshd.pid
AuthorizedKeysFile {workdir}/authorized_keys
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PrintMotd no
Subsystem sftp internal-sftp
"""


def _ssh_config_text(nodes: Sequence[_Node], workdir: Path, client_key: Path) -> str:
    control_path = f"{workdir}/{CONTROL_SOCKET}"
    if len(control_path) > MAX_SOCKET_PATH:
        # Without a ControlPath every command opens a new connection, which is
        # slower. With a socket path that is too long, ssh exits with status 255.
        log.warning("temporary directory %s is too long for ssh control sockets", workdir)
        control_path = "none"
    blocks = [f"# Client settings for the throwaway ssh hosts in {workdir}.\n"]
    for node in nodes:
        blocks.append(f"""
Host {node.address.ip} {node.name}
    HostName {node.address.ip}
    Port {SSH_PORT}
    User root
    IdentityFile {client_key}
    IdentitiesOnly yes
    UserKnownHostsFile {workdir}/known_hosts
    GlobalKnownHostsFile /dev/null
    StrictHostKeyChecking yes
    UpdateHostKeys no
    BatchMode yes
    ConnectTimeout 5
    ControlPath {control_path}
    ControlMaster auto
    ControlPersist 60
""")
    return "".join(blocks)


def _start_sshd(node: _Node, workdir: Path) -> subprocess.Popen[bytes]:
    """Start the sshd of ``node`` in its network namespace and in a new UTS namespace.

    ``nsenter``, ``unshare`` and ``sh`` each exec the next program, so the
    returned process is the sshd itself. nsenter joins the network namespace
    only: ``ip netns exec`` would also mount a sysfs of the namespace over
    /sys, which hides the cgroup hierarchies under /sys/fs/cgroup from the
    host's commands.
    """
    script = 'hostname "$1" && exec "$2" -D -e -f "$3"'
    namespace = f"--net=/run/netns/{node.netns}"
    argv = ["nsenter", namespace, "unshare", "--uts", "sh", "-c", script, "sh"]
    argv += [node.name, str(SSHD), str(workdir / f"node{node.index}_sshd_config")]
    with _sshd_log(workdir, node).open("wb") as log_file:
        return subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _sshd_log(workdir: Path, node: _Node) -> Path:
    return workdir / f"node{node.index}_sshd.log"


def _wait_until_ready(
    node: _Node, sshd: subprocess.Popen[bytes], ssh_config: Path, workdir: Path
) -> None:
    """Retry ``ssh root@ADDRESS true`` until it succeeds.

    Raises SshHostsError with the sshd log when sshd exits or READY_TIMEOUT passes.
    """
    argv = ["ssh", "-F", str(ssh_config), f"root@{node.address.ip}", "true"]
    deadline = time.monotonic() + READY_TIMEOUT
    while True:
        status = sshd.poll()
        if status is not None:
            raise SshHostsError(
                f"sshd of {node.name} exited with status {status} before it accepted a "
                f"login.\n{_log_excerpt(_sshd_log(workdir, node))}"
            )
        try:
            login = _run(argv, check=False, timeout=READY_TIMEOUT)
        except subprocess.TimeoutExpired:
            error = f"ssh ran past {READY_TIMEOUT:g} s"
        else:
            if login.returncode == 0:
                return
            error = login.stderr.strip()
        if time.monotonic() >= deadline:
            raise SshHostsError(
                f"sshd of {node.name} at {node.address.ip} did not accept a login within "
                f"{READY_TIMEOUT:g} s.\nLast ssh error: {error}\n"
                f"{_log_excerpt(_sshd_log(workdir, node))}"
            )
        time.sleep(POLL_INTERVAL)


def _log_excerpt(path: Path) -> str:
    try:
        text = path.read_text(errors="replace").strip()
    except OSError as error:
        return f"Its log {path} could not be read: {error}"
    return f"Its log {path}:\n{text[-4000:] or '(empty)'}"


def _remove(resources: _Resources) -> None:
    """Remove everything in ``resources``, continuing past failed steps, and raise if any failed.

    ssh ControlMaster processes end first, so that the sshd sessions that serve
    them end too. A namespace stays alive while any process is in it, even
    after ``ip netns delete``, so every process in it ends before it is
    deleted. The sessions end before their sshd, which reaps them. A session
    that outlived its sshd would stay a zombie until init reaps it.
    """
    problems: list[str] = []

    def attempt(step: str, action: Callable[..., object], *args: Any) -> None:
        try:
            action(*args)
        except (SshHostsError, OSError, subprocess.SubprocessError) as error:
            log.error("cleanup of ssh hosts %s: %s failed: %s", resources.tag, step, error)
            problems.append(f"{step}: {error}")

    workdir = resources.workdir
    if workdir is not None:
        attempt("ending ssh ControlMaster processes", _end_control_masters, workdir)
    for netns in resources.namespaces:
        sshd = resources.sshds.get(netns)
        if sshd is not None:
            attempt(f"ending the sshd sessions in {netns}", _end_processes_in, netns, sshd.pid)
            attempt(f"stopping sshd {sshd.pid}", _stop_child, sshd)
        attempt(f"ending the processes in {netns}", _end_processes_in, netns)
    for veth in resources.root_veths:
        attempt(f"deleting veth {veth}", _delete_link, veth)
    for netns in resources.namespaces:
        attempt(f"deleting namespace {netns}", _delete_netns, netns)
    if workdir is not None:
        attempt(f"removing {workdir}", shutil.rmtree, workdir)

    try:
        remaining = leftovers(resources.tag)
        # sshd sessions and the commands they ran have no tag in their command line.
        for netns, fd in resources.netns_fds.items():
            inode = os.fstat(fd).st_ino
            remaining += [f"process {pid} in {netns}" for pid in _pids_in_netns(inode)]
    finally:
        for fd in resources.netns_fds.values():
            os.close(fd)
        resources.netns_fds.clear()
    if problems or remaining:
        raise SshHostsError(
            f"cleanup of ssh hosts {resources.tag} failed. Failed steps: {problems or 'none'}. "
            f"Remaining: {remaining or 'nothing'}"
        )


def _end_control_masters(workdir: Path) -> None:
    """End the ssh ControlMaster process on each control socket in ``workdir``."""
    for socket_path in sorted(workdir.glob(CONTROL_SOCKET.split("%", 1)[0] + "*")):
        if not socket_path.is_socket():
            continue
        # With -O check, ssh sends the request through the socket and opens no network
        # connection, so the destination argument is never contacted.
        argv = ["ssh", "-F", "/dev/null", "-o", f"ControlPath={socket_path}", "-O", "check"]
        check = _run([*argv, "127.0.0.1"], check=False)
        found = re.search(r"pid=(\d+)", check.stderr)
        if found is None:
            # No master accepts connections on the socket, so none is running.
            continue
        _end_process(int(found.group(1)), expected_name="ssh")


def _stop_child(process: subprocess.Popen[bytes]) -> None:
    """Send SIGTERM to a child process, then SIGKILL after STOP_TIMEOUT, and reap it."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        log.warning(
            "process %d ignored SIGTERM for %g s; sending SIGKILL", process.pid, STOP_TIMEOUT
        )
        process.kill()
        process.wait(timeout=STOP_TIMEOUT)


def _end_processes_in(netns: str, spare: int | None = None) -> None:
    """End every process in the network namespace ``netns`` but ``spare``.

    Those are the sshd sessions and what they started. A process can start
    another while this runs, so it repeats until no other process is left.
    """
    for _ in range(3):
        listed = _run(["ip", "netns", "pids", netns]).stdout.split()
        pids = [int(pid) for pid in listed if int(pid) != spare]
        if not pids:
            return
        for pid in pids:
            _end_process(pid)
    raise SshHostsError(f"processes are still running in {netns}: {pids}")


def _end_process(pid: int, expected_name: str | None = None) -> None:
    """Send SIGTERM to ``pid``, then SIGKILL after STOP_TIMEOUT, and wait until it ends.

    With ``expected_name``, a process of another name is left alone, because
    the PID was reused after the expected process ended.
    """
    if expected_name is not None and _process_name(pid) != expected_name:
        return
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + STOP_TIMEOUT
        while time.monotonic() < deadline:
            if not _is_running(pid):
                return
            time.sleep(POLL_INTERVAL)
    raise SshHostsError(f"process {pid} did not end within {STOP_TIMEOUT:g} s of SIGKILL")


def _process_name(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return None


def _is_running(pid: int) -> bool:
    """Return whether ``pid`` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    # The state follows the command name, which is in brackets and may contain spaces.
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _delete_link(name: str) -> None:
    if (Path("/sys/class/net") / name).exists():
        _run(["ip", "link", "delete", name])


def _delete_netns(name: str) -> None:
    if (NETNS_DIR / name).exists():
        _run(["ip", "netns", "delete", name])


def _netns_names() -> list[str]:
    try:
        return sorted(path.name for path in NETNS_DIR.iterdir())
    except FileNotFoundError:
        return []


def _link_names() -> list[str]:
    return sorted(link["ifname"] for link in _run_json(["ip", "-j", "link", "show"]))


def _pids_in_netns(inode: int) -> list[int]:
    """Return the processes in the network namespace with ``inode``, named or not."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            netns = os.readlink(entry / "ns" / "net")
        except OSError:
            continue
        if netns == f"net:[{inode}]":
            pids.append(int(entry.name))
    return pids


def _processes() -> Iterator[tuple[int, str]]:
    """Yield the PID and command line of every process but this one."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            raw = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        yield int(entry.name), raw.replace(b"\0", b" ").decode(errors="replace").strip()


def _run(
    argv: Sequence[str], *, check: bool = True, timeout: float = COMMAND_TIMEOUT
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
    )
    if check and result.returncode != 0:
        raise SshHostsError(
            f"{shlex.join(argv)} failed with exit status {result.returncode}: "
            f"{result.stderr.strip()}"
        )
    return result


def _run_json(argv: Sequence[str]) -> list[dict[str, Any]]:
    output = _run(argv).stdout.strip()
    return json.loads(output) if output else []
