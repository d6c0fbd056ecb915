"""The throwaway ssh hosts of sshhosts.py: reachable over ssh://, separate, and removed."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import testinfra  # type: ignore[import-untyped]

from tests.conftest import strict_runtimes
from tests.integration import sshhosts
from tests.integration.sshhosts import SshHost, SshHostsError, leftovers, new_tag, ssh_hosts

pytestmark = pytest.mark.integration


def require_ssh_hosts() -> None:
    """Skip (or, in CI, fail) the calling test unless this machine can run the ssh hosts."""
    if os.geteuid() != 0:
        message = "needs root (network namespaces and sshd)"
    elif not sshhosts.SSHD.exists():
        message = f"{sshhosts.SSHD} not found: install the Debian package openssh-server"
    else:
        return
    if strict_runtimes():
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="module")
def hosts() -> Iterator[list[SshHost]]:
    require_ssh_hosts()
    with ssh_hosts(2) as created:
        yield created


def sshd_pids() -> set[int]:
    listed = subprocess.run(["pgrep", "-x", "sshd"], capture_output=True, text=True, timeout=30)
    return {int(pid) for pid in listed.stdout.split()}


def is_running(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def command_output(*argv: str) -> str:
    return subprocess.run(argv, capture_output=True, text=True, timeout=30, check=True).stdout


def test_hostname_over_testinfra(hosts: list[SshHost]) -> None:
    for host in hosts:
        result = testinfra.get_host(host.spec).run("hostname")

        assert result.rc == 0, result.stderr
        assert result.stdout.strip() == host.name


def test_commands_run_in_host_namespace(hosts: list[SshHost]) -> None:
    for host in hosts:
        remote = testinfra.get_host(host.spec)

        addresses = remote.check_output("ip -4 -o addr show")
        # Through netlink: the host keeps this machine's /sys, so that its cgroup
        # hierarchies are there, and /sys/class/net lists the root namespace's links.
        links = [
            line.split(":")[1].strip().split("@")[0]
            for line in remote.check_output("ip -o link show").splitlines()
        ]
        remote_netns = remote.check_output("stat -L -c %i /proc/self/ns/net")
        default_routes = remote.check_output("ip -4 route show default")

        assert f"inet {host.address}/30" in addresses
        assert default_routes == "", "a host must not route beyond its veth pair"
        assert sorted(links) == sorted(["lo", host.node_veth])
        assert remote.check_output("ls /sys/fs/cgroup") != ""
        assert int(remote_netns) == os.stat(f"/run/netns/{host.netns}").st_ino


def test_hosts_have_different_names(hosts: list[SshHost]) -> None:
    names = [testinfra.get_host(host.spec).check_output("hostname") for host in hosts]

    assert len(set(names)) == len(hosts), names
    assert len({host.address for host in hosts}) == len(hosts)


def test_plain_ssh_with_config(hosts: list[SshHost]) -> None:
    for host in hosts:
        argv = ["ssh", "-F", str(host.ssh_config), f"root@{host.address}", "hostname"]
        result = subprocess.run(argv, capture_output=True, text=True, timeout=30)

        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == host.name


def test_unknown_host_key_rejected(hosts: list[SshHost]) -> None:
    host = hosts[0]
    # A shared connection would skip the host key check, so this one opens a new
    # connection, with no known_hosts file.
    argv = ["ssh", "-F", str(host.ssh_config), "-o", "ControlPath=none"]
    argv += ["-o", "UserKnownHostsFile=/dev/null", f"root@{host.address}", "true"]

    result = subprocess.run(argv, capture_output=True, text=True, timeout=30)

    assert result.returncode == 255
    assert "Host key verification failed" in result.stderr


def test_sshd_outside_root_namespace(hosts: list[SshHost]) -> None:
    listening = command_output("ss", "-H", "-l", "-t", "-n", "-p")
    root_netns = os.readlink("/proc/self/ns/net")

    for host in hosts:
        assert Path(f"/proc/{host.sshd_pid}/exe").resolve() == sshhosts.SSHD
        assert os.readlink(f"/proc/{host.sshd_pid}/ns/net") != root_netns
        assert f"pid={host.sshd_pid}," not in listening
        assert host.address not in listening


def test_exit_leaves_nothing() -> None:
    require_ssh_hosts()
    tag = new_tag()
    sshds_before = sshd_pids()

    with ssh_hosts(2, tag=tag) as nodes:
        for host in nodes:
            # A command over testinfra leaves an ssh ControlMaster behind.
            testinfra.get_host(host.spec).check_output("true")
        sleeper = testinfra.get_host(nodes[0].spec).check_output(
            "nohup sleep 3001 >/dev/null 2>&1 & echo $!"
        )
        sleeper_pid = int(sleeper)
        workdir = nodes[0].ssh_config.parent
        assert list(workdir.glob("cm-*")), "no ssh control socket to check the cleanup with"
        assert is_running(sleeper_pid)

    assert leftovers(tag) == []
    assert tag not in command_output("ip", "netns", "list")
    assert tag not in command_output("ip", "link", "show")
    assert not workdir.exists()
    assert sshd_pids() <= sshds_before
    for host in nodes:
        assert not is_running(host.sshd_pid), host.sshd_pid
    assert not is_running(sleeper_pid)


def test_failed_set_up_removes_what_was_made(monkeypatch: pytest.MonkeyPatch) -> None:
    require_ssh_hosts()
    tag = new_tag()
    started: list[subprocess.Popen[bytes]] = []
    sockets_at_failure: list[Path] = []
    start_sshd = sshhosts._start_sshd

    def start_first_only(node: sshhosts._Node, workdir: Path) -> subprocess.Popen[bytes]:
        if started:
            sockets_at_failure.extend(workdir.glob("cm-*"))
            raise SshHostsError("injected failure at the second sshd")
        process = start_sshd(node, workdir)
        started.append(process)
        return process

    monkeypatch.setattr(sshhosts, "_start_sshd", start_first_only)

    with pytest.raises(SshHostsError, match="injected failure"), ssh_hosts(2, tag=tag):
        pytest.fail("the set-up did not fail")

    assert len(started) == 1
    assert sockets_at_failure, "the first host was not up when the set-up failed"
    assert not is_running(started[0].pid)
    assert leftovers(tag) == []


def test_sshd_exit_shows_its_log(monkeypatch: pytest.MonkeyPatch) -> None:
    require_ssh_hosts()
    tag = new_tag()
    sshd_config_text = sshhosts._sshd_config_text

    def with_unknown_option(node: sshhosts._Node, workdir: Path) -> str:
        return sshd_config_text(node, workdir) + "NoSuchOption yes\n"

    monkeypatch.setattr(sshhosts, "_sshd_config_text", with_unknown_option)

    with pytest.raises(SshHostsError) as raised, ssh_hosts(1, tag=tag):
        pytest.fail("sshd started with an unknown option")

    assert "sshd of isobench-node1 exited with status" in str(raised.value)
    assert "Bad configuration option: NoSuchOption" in str(raised.value)
    assert leftovers(tag) == []


def test_missing_sshd_names_package(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(sshhosts, "SSHD", tmp_path / "sshd")

    with pytest.raises(SshHostsError, match="openssh-server"), ssh_hosts(1):
        pytest.fail("the fixture started without sshd")


@pytest.mark.parametrize("tag", ["", "Upper", "has-dash", "elevenchars"])
def test_invalid_tag_rejected(tag: str) -> None:
    with pytest.raises(SshHostsError, match="invalid tag"), ssh_hosts(1, tag=tag):
        pytest.fail(f"the fixture accepted the tag {tag!r}")
