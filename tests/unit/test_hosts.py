"""The host connection: command lines for ssh://, calls of host-side readers, routing."""

from __future__ import annotations

import os
import shlex
import socket
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from isobench import commands, hosts, journal, runtimes
from isobench.errors import CommandFailed, CommandTimeout, HarnessError, UsageError
from isobench.probe import host as host_probe
from isobench.runtimes.base import LocalOnly


class Loopback(hosts.Host):
    """An ssh:// host whose commands run here, with the connection left out: the command
    it would send is what runs."""

    def __init__(self) -> None:
        super().__init__("ssh://root@node1")
        self.sent: list[list[str]] = []

    def command(
        self,
        argv: Sequence[str],
        *,
        env: Any = None,
        cwd: str | Path | None = None,
    ) -> list[str]:
        args = [str(a) for a in argv]
        if env:
            args = ["env", *(f"{k}={v}" for k, v in env.items()), *args]
        self.sent.append(args)
        return args


@pytest.fixture
def loopback() -> Iterator[Loopback]:
    host = Loopback()
    before = hosts.use(host)
    runtimes.reset()
    try:
        yield host
    finally:
        hosts.use(before)
        runtimes.reset()


def test_labels_and_connections() -> None:
    assert hosts.label_of("local://") == "local"
    assert hosts.label_of("ssh://root@node1:2222?ssh_config=/x") == "node1:2222"
    assert hosts.Host("ssh://root@10.0.0.2").label == "10.0.0.2"
    assert hosts.Host("local://").is_local


@pytest.mark.parametrize("spec", ["node1", "root@node1"])
def test_spec_without_connection_is_refused(spec: str) -> None:
    with pytest.raises(UsageError, match="ssh://root@node1 or local://"):
        hosts.Host(spec)


@pytest.mark.parametrize("spec", ["paramiko://root@node1", "ansible://node1"])
def test_backends_that_cannot_stream_are_refused(spec: str) -> None:
    with pytest.raises(UsageError, match="use ssh://"):
        hosts.Host(spec)


def test_ssh_command_line_comes_from_testinfra(tmp_path: Path) -> None:
    config = tmp_path / "ssh_config"
    host = hosts.Host(f"ssh://admin@node1:2222?ssh_config={config}")
    try:
        argv = host.command(["docker", "run", "a b"], env={"X": "1 2"}, cwd="/var/tmp")
    finally:
        host.close()
    assert argv[0] == "ssh"
    line = shlex.join(argv)
    assert "User=admin" in line and "Port=2222" in line and str(config) in line
    assert "ControlPath=" in line and "ControlMaster=auto" in line
    assert argv[-2] == "node1"
    assert shlex.split(argv[-1]) == [
        "cd",
        "/var/tmp",
        "&&",
        "exec",
        "env",
        "X=1 2",
        "docker",
        "run",
        "a b",
    ]


def test_sudo_wraps_the_remote_command() -> None:
    host = hosts.Host("ssh://admin@node1?sudo=true")
    try:
        argv = host.command(["id", "-u"])
    finally:
        host.close()
    assert argv[-1].startswith("sudo /bin/sh -c ")


def test_call_sends_the_module_and_its_imports(loopback: Loopback) -> None:
    """The readers run by the host's python3 from the source sent along: here, this
    machine's python3 in place of the far one."""
    facts = loopback.call(host_probe, "system")
    assert facts["hostname"] == socket.gethostname()
    assert facts["cpu_count"] == os.cpu_count()
    sent = loopback.sent[-1]
    assert sent[:2] == ["python3", "-c"]
    # process_facts needs isobench.probe.cgroups, which goes with it.
    own = loopback.call(host_probe, "process_facts", os.getpid())
    assert own["ns.pid"] == os.readlink("/proc/self/ns/pid")
    assert any(name.startswith("cg.") for name in own)


def test_call_failure_names_the_host(loopback: Loopback) -> None:
    with pytest.raises(HarnessError, match=r"node1: reading isobench\.probe\.host\.block_device"):
        loopback.call(host_probe, "block_device", "/proc")


def test_commands_go_to_the_run_host(loopback: Loopback) -> None:
    done = commands.run(["sh", "-c", 'echo "$GREETING"'], env={"GREETING": "hello there"})
    assert done.stdout == "hello there\n"
    # The command shown is the one asked for, with the host in front.
    assert done.argv == ["node1:", "sh", "-c", 'echo "$GREETING"']
    assert loopback.sent[-1][:4] == ["env", "GREETING=hello there", "timeout", "--kill-after=5"]
    with pytest.raises(CommandFailed) as failed:
        commands.run(["sh", "-c", "exit 3"])
    assert failed.value.returncode == 3
    # The explicit host wins: a local command stays here.
    commands.run(["true"], host=hosts.LOCAL)
    assert loopback.sent[-1][-2:] == ["sh", "-c", "exit 3"][-2:]


def test_remote_time_limit_is_enforced_on_the_host(loopback: Loopback) -> None:
    with pytest.raises(CommandTimeout):
        commands.run(["sleep", "30"], timeout=0.5)


def test_rows_that_use_local_files_refuse_other_hosts(loopback: Loopback) -> None:
    runc = runtimes.get("runc")
    assert isinstance(runc, LocalOnly)
    info = runc.availability()
    assert not info.available
    assert "ssh://root@node1" in info.reason
    docker = runtimes.get("docker")
    assert not isinstance(docker, LocalOnly)


def test_journal_records_the_host_and_cleans_there(tmp_path: Path, loopback: Loopback) -> None:
    record = journal.Journal("run-x", directory=tmp_path)
    target = tmp_path / "made"
    target.mkdir()
    record.record("directory", str(target), ["rmdir", str(target)])
    hosts.use(hosts.LOCAL)
    # The run died (its process is gone): its journal says where its resources are.
    ended = subprocess.Popen(["true"])
    ended.wait()
    text = record.path.read_text().replace(f'"pid": {os.getpid()}', f'"pid": {ended.pid}')
    record.path.write_text(text)
    stale = journal.stale_entries(tmp_path)
    (entries,) = stale.values()
    assert entries[0].host == "ssh://root@node1"
    assert record.path.read_text().count('"host": "ssh://root@node1"') == 1


def test_process_marker_gets_its_name_on_the_host(tmp_path: Path) -> None:
    """The command that starts the process marker on another host renames sleep's argv[0]
    so that pkill --full --exact finds it."""
    tag = f"isobench-marker-test-{os.getpid()}"
    rename = "import os, sys; os.execvp('sleep', sys.argv[1:])"
    process = subprocess.Popen([sys.executable, "-c", rename, tag, "30"])
    try:
        found = subprocess.run(
            ["pgrep", "--full", "--exact", f"{tag} 30"], capture_output=True, text=True
        )
        for _ in range(50):
            if found.returncode == 0:
                break
            found = subprocess.run(
                ["pgrep", "--full", "--exact", f"{tag} 30"], capture_output=True, text=True
            )
        assert found.stdout.split() == [str(process.pid)]
    finally:
        process.kill()
        process.wait()


def test_pkill_pattern_does_not_match_its_own_command_line() -> None:
    tag = "isobench-marker-20261205T1200Z-ab12.listener"
    argv = hosts.pkill_argv(tag)
    pattern = argv[-1]
    assert tag not in shlex.join(argv)
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", tag])
    try:
        for _ in range(50):
            found = subprocess.run(["pgrep", "--full", pattern], capture_output=True, text=True)
            if found.stdout.split():
                break
        assert found.stdout.split() == [str(holder.pid)]
    finally:
        holder.kill()
        holder.wait()
