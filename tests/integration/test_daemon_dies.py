"""A docker daemon that dies in the middle of a run: errors for docker, verdicts for the rest.

The test starts a dockerd of its own (its own socket, data root, exec
root and bridge, and no iptables rules), points isobench at it with
DOCKER_HOST and kills it with SIGKILL once docker's first result is written.
The daemon the host runs is not touched.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from isobench.results import read_run
from tests.conftest import REPO, require_root, require_runtime
from tests.integration.test_cli import isobench

pytestmark = pytest.mark.integration

START_TIMEOUT_S = 60
START_ATTEMPTS = 3


class PrivateDaemon:
    """A dockerd started by the test, with every path under one directory."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.socket = base / "docker.sock"
        self.host = f"unix://{self.socket}"
        self.process: subprocess.Popen[bytes] | None = None
        self.log = base / "dockerd.log"
        # Interface names have at most 15 characters.
        self.bridge = f"isob{os.getpid() % 100000}"

    def make_bridge(self) -> None:
        """Create the daemon's bridge, with an address on a private /24 of this host."""
        subprocess.run(["ip", "link", "add", self.bridge, "type", "bridge"], check=True, timeout=30)
        subprocess.run(
            ["ip", "addr", "add", "10.231.77.1/24", "dev", self.bridge], check=True, timeout=30
        )
        subprocess.run(["ip", "link", "set", self.bridge, "up"], check=True, timeout=30)

    def remove_bridge(self) -> None:
        subprocess.run(["ip", "link", "del", self.bridge], capture_output=True, timeout=30)

    def start(self) -> None:
        dockerd = shutil.which("dockerd")
        assert dockerd is not None, "dockerd not found; run 'make setup'"
        argv = [
            dockerd,
            *("--host", self.host),
            *("--data-root", str(self.base / "data")),
            *("--exec-root", str(self.base / "exec")),
            *("--pidfile", str(self.base / "dockerd.pid")),
            # A bridge of its own: with --bridge none, dockerd deletes the host's docker0.
            *("--bridge", self.bridge, "--iptables=false", "--ip-masq=false"),
        ]
        # After a SIGKILL, the first start can time out while the old containerd still
        # uses its socket, so a start that ends early is tried again.
        for _ in range(START_ATTEMPTS):
            with self.log.open("ab") as log:
                self.process = subprocess.Popen(argv, stdout=log, stderr=log)
            deadline = time.monotonic() + START_TIMEOUT_S
            while time.monotonic() < deadline and self.process.poll() is None:
                answer = subprocess.run(
                    ["docker", "--host", self.host, "version"], capture_output=True, timeout=30
                )
                if answer.returncode == 0:
                    return
                time.sleep(0.5)
            self.stop()
        pytest.fail(f"the test's dockerd did not start; see {self.log}:\n{self.log.read_text()}")

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(30)

    def end_leftovers(self) -> None:
        """End the processes this daemon started that outlived it (containerd and its
        shims), by PID, and unmount what it mounted under the test's directory."""
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                cmdline = (entry / "cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue
            if str(self.base) in cmdline and int(entry.name) != os.getpid():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(entry.name), signal.SIGKILL)
        mounts = [
            line.split()[4]
            for line in Path("/proc/self/mountinfo").read_text().splitlines()
            if line.split()[4].startswith(f"{self.base}/")
        ]
        for mount_point in sorted(mounts, reverse=True):
            subprocess.run(["umount", "-l", mount_point], capture_output=True, timeout=30)

    def containers(self) -> list[str]:
        listed = subprocess.run(
            ["docker", "--host", self.host, "ps", "-aq"], capture_output=True, text=True, timeout=60
        )
        return listed.stdout.split()


@pytest.fixture
def daemon() -> Iterator[PrivateDaemon]:
    require_root()
    require_runtime("docker")
    require_runtime("runc")
    # A short path: a unix socket path must fit in 108 bytes.
    base = Path("/run/isobench-test-dockerd") / str(os.getpid())
    base.mkdir(parents=True, exist_ok=True)
    made = PrivateDaemon(base)
    made.make_bridge()
    made.start()
    try:
        yield made
    finally:
        # Started again if the test killed it, so that it removes its containers,
        # stops its containerd and unmounts its layers before the directory goes.
        if made.process is None or made.process.poll() is not None:
            made.start()
        for container in made.containers():
            subprocess.run(
                ["docker", "--host", made.host, "rm", "--force", container],
                capture_output=True,
                timeout=60,
            )
        made.stop()
        made.end_leftovers()
        made.remove_bridge()
        shutil.rmtree(base, ignore_errors=True)


def test_daemon_killed_mid_run(tmp_path: Path, daemon: PrivateDaemon) -> None:
    out = tmp_path / "run"
    env = dict(os.environ, DOCKER_HOST=daemon.host)
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "isobench", "run", "--suite", "namespaces"),
            *("--runtime", "docker", "--runtime", "runc", "--out", str(out)),
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    results = out / "results.jsonl"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if results.exists() and '"runtime": "docker"' in results.read_text():
            break
        if process.poll() is not None:
            pytest.fail(f"the run ended before docker's first result:\n{process.stderr}")
        time.sleep(0.05)
    else:
        process.kill()
        pytest.fail("docker wrote no result within 300 s")

    daemon.kill()
    stdout, stderr = process.communicate(timeout=600)

    meta, records = read_run(out)
    docker = [r for r in records if r["runtime"] == "docker"]
    runc = [r for r in records if r["runtime"] == "runc"]
    errors = [r for r in docker if r["outcome"] == "error"]
    assert process.returncode == 3, stdout + stderr
    assert meta["status"] == "complete"
    assert len(runc) == len(docker) == 20
    assert {r["outcome"] for r in runc} <= {"pass", "skip", "xfail"}
    assert errors, [r["outcome"] for r in docker]
    assert all(r["commands"] for r in errors)
    assert any(daemon.host.removeprefix("unix://") in r["message"] for r in errors)
    assert "ERROR namespaces/" in stdout


def test_clean_after_daemon_returns(tmp_path: Path, daemon: PrivateDaemon) -> None:
    """Containers that a dead daemon kept are removed by 'isobench clean' once it is back."""
    out = tmp_path / "run"
    env = {"DOCKER_HOST": daemon.host}
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "isobench", "run", "--suite", "process"),
            *("--runtime", "docker", "--out", str(out)),
        ],
        cwd=REPO,
        env=dict(os.environ, **env),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not daemon.containers():
        time.sleep(0.05)
    # The run and its daemon die together, as on a runner that loses its host.
    process.send_signal(signal.SIGKILL)
    daemon.kill()
    process.wait(30)

    daemon.start()
    left = daemon.containers()
    cleaned = isobench("clean", env=env)

    assert left, "no container of the run was left to clean"
    assert cleaned.returncode == 0, cleaned.stdout + cleaned.stderr
    assert daemon.containers() == []
