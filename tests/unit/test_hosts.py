"""The host connection: command lines for ssh://, calls of host-side readers, routing."""

from __future__ import annotations

import os
import shlex
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from isobench import commands, hosts, journal, runtimes
from isobench.errors import CommandFailed, CommandTimeout, HarnessError, UsageError
from isobench.probe import host as host_probe
from isobench.runtimes.base import LocalOnly, ProbeImage, rootfs_on_host
from isobench.spec.loader import remote_ready
from tests.unit.loopback import Loopback


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
    assert "User=admin" in line
    assert "Port=2222" in line
    assert str(config) in line
    assert "ControlPath=" in line
    assert "ControlMaster=auto" in line
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
    lxc = runtimes.get("lxc")
    assert isinstance(lxc, LocalOnly)
    info = lxc.availability()
    assert not info.available
    assert "not node1" in info.reason
    docker = runtimes.get("docker")
    assert not isinstance(docker, LocalOnly)


def test_journal_records_the_host_and_cleans_there(tmp_path: Path, loopback: Loopback) -> None:
    record = journal.Journal("run-x", directory=tmp_path)
    target = tmp_path / "made"
    target.mkdir()
    record.record("directory", str(target), ["rmdir", str(target)])
    hosts.use(hosts.LOCAL)
    # The run died (its process is gone): its journal names the host of its resources.
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


def test_pkill_pattern_skips_itself() -> None:
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


def _run_in_group(tmp_path: Path, script: str) -> tuple[subprocess.CompletedProcess[str], Path]:
    pid_file = tmp_path / ".pid"
    argv = hosts.LOCAL.python_argv(
        host_probe, "run_in_group", str(pid_file), str(tmp_path), ["sh", "-c", script]
    )
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    return done, pid_file


@pytest.mark.parametrize(("script", "status"), [("exit 7", 7), ("kill -TERM $$", 143)])
def test_host_row_wrapper_reports_status_as_a_shell(
    tmp_path: Path, script: str, status: int
) -> None:
    """On another host the host row's command runs under run_in_group, which keeps an end
    by a signal visible: ssh alone reports it as 255."""
    done, pid_file = _run_in_group(tmp_path, script)
    assert done.returncode == status, done.stderr
    assert pid_file.read_text().isdigit()


def test_wrapper_sets_group_and_path(tmp_path: Path) -> None:
    (tmp_path / "hello").write_text("#!/bin/sh\necho from-rootfs\n")
    (tmp_path / "hello").chmod(0o755)
    done, pid_file = _run_in_group(tmp_path, 'hello; echo "$$ $(ps -o pgid= -p $$)"')
    assert done.returncode == 0, done.stderr
    first, second = done.stdout.splitlines()
    assert first == "from-rootfs"
    pid, group = second.split()
    # The command leads a process group of its own, so ending the group ends what it left.
    assert pid == group == pid_file.read_text()


def test_suites_that_can_check_another_host(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("suite: a\nchecks: []\n")
    (tmp_path / "test_ready.py").write_text("REMOTE_READY = True\n")
    (tmp_path / "test_typed.py").write_text("REMOTE_READY: bool = True\n")
    (tmp_path / "test_plain.py").write_text("SUITE = 'plain'\n")
    (tmp_path / "test_false.py").write_text("REMOTE_READY = False\n")
    both = tmp_path / "both"
    both.mkdir()
    (both / "test_one.py").write_text("REMOTE_READY = True\n")
    (both / "test_two.py").write_text("x = 1\n")
    assert remote_ready(tmp_path / "a.yaml")
    assert remote_ready(tmp_path / "test_ready.py")
    assert remote_ready(tmp_path / "test_typed.py")
    assert not remote_ready(tmp_path / "test_plain.py")
    assert not remote_ready(tmp_path / "test_false.py")
    assert not remote_ready(both)
    # The project's own: the YAML and property suites can, lifecycle and network cannot.
    suites = Path(__file__).resolve().parents[2] / "suites"
    assert remote_ready(suites / "test_cgroup_properties.py")
    assert not remote_ready(suites / "lifecycle")
    assert not remote_ready(suites / "network")


def test_rootfs_is_copied_once_to_the_host(tmp_path: Path, loopback: Loopback) -> None:
    root = tmp_path / "cache" / "probe-abc"
    (root / "rootfs" / "bin").mkdir(parents=True)
    (root / "rootfs" / "bin" / "tool").write_text("x")
    image = ProbeImage(root / "rootfs", "abc")
    assert rootfs_on_host(image) == root / "rootfs"
    assert (root / "complete").read_text() == "abc\n"
    assert (root / "rootfs" / "bin" / "tool").read_text() == "x"
    sent = len(loopback.sent)
    rootfs_on_host(image)
    # The second time only looks.
    assert len(loopback.sent) == sent + 1
