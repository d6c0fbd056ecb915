"""Runs beyond one process and one machine: hosts reached over ssh://, and workers.

The hosts are network namespaces of this machine with an sshd each, in a UTS
namespace of its own (tests/integration/sshhosts.py). They share this
machine's files, processes and docker engine, so a check there observes what
it would observe here. The host's name differs, and it shows that a fact was
read on the host.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from isobench import hosts, journal, runtimes
from isobench.checks import Harness
from isobench.remnants import remnants
from isobench.results import read_run
from isobench.spec.loader import load_suite
from tests.conftest import SUITES, require_root, require_runtime
from tests.integration.sshhosts import SshHost, ssh_hosts
from tests.integration.test_cli import isobench as run_isobench

pytestmark = pytest.mark.integration


def isobench(*args: str) -> subprocess.CompletedProcess[str]:
    return run_isobench(*args, timeout=900)


@pytest.fixture(scope="module")
def nodes() -> Iterator[list[SshHost]]:
    require_root()
    require_runtime("docker")
    with ssh_hosts(2) as made:
        yield made


def outcomes(records: list[dict[str, object]], **match: str) -> set[tuple[object, ...]]:
    return {
        (r["runtime"], r["check"], r["outcome"])
        for r in records
        if all(r.get(k) == v for k, v in match.items())
    }


def own_ssh_connections() -> list[str]:
    listed = subprocess.run(["pgrep", "-a", "-f", "isobench-ssh-"], capture_output=True, text=True)
    return listed.stdout.splitlines()


def test_suite_on_two_hosts_joined_in_one_report(nodes: list[SshHost], tmp_path: Path) -> None:
    out = tmp_path / "fleet"
    specs = ",".join(node.spec for node in nodes)
    done = isobench(
        "run", "--hosts", specs, "--runtime", "docker", "--runtime", "bwrap",
        "--suite", "namespaces", "--out", str(out),
    )  # fmt: skip
    # bwrap starts its sandbox on this machine, so it cannot check another one: errors.
    assert done.returncode == 3, done.stdout + done.stderr
    meta, records = read_run(out)
    assert meta["status"] == "merged"
    labels = [hosts.label_of(node.spec) for node in nodes]
    assert sorted(meta["hosts"]) == sorted(labels)
    for node, label in zip(nodes, labels, strict=True):
        # The environment was read on the host: its own name.
        assert meta["hosts"][label]["environment"]["hostname"] == node.name
        docker = [r for r in records if r["host"] == label and r["runtime"].startswith("docker")]
        assert len(docker) == 20
        assert {r["outcome"] for r in docker} <= {"pass", "skip", "xfail"}, [
            (r["check"], r["outcome"], r["message"]) for r in docker if r["outcome"] == "error"
        ]
        bwrap = [r for r in records if r["host"] == label and r["runtime"].startswith("bwrap")]
        assert {r["outcome"] for r in bwrap} == {"error"}
        assert all("checks that machine only" in r["message"] for r in bwrap)
    # One run directory per host, each naming its host.
    for directory in sorted((out / "hosts").iterdir()):
        if directory.is_dir():
            host_meta, _ = read_run(directory)
            assert host_meta["host"]["spec"] in [node.spec for node in nodes]
            run_id = host_meta["run_id"]
            left = {kind: names for kind, names in remnants(run_id).items() if names}
            assert not left, left
            assert not list(journal.state_dir().glob(f"journal/{run_id}*"))
    assert not own_ssh_connections()
    assert "## Environments" in (out / "summary.md").read_text()


def test_same_outcomes_as_a_run_here(nodes: list[SshHost], tmp_path: Path) -> None:
    """A host reached over ssh:// gives the verdicts that a run on it gives, also on the
    host row, where every isolation check must fail: there, its processes are started,
    read and ended on that host."""
    rows = ["--runtime", "docker", "--runtime", "host"]
    suites = ["--suite", "namespaces", "--suite", "process"]
    local_run = isobench("run", *rows, *suites, "--out", str(tmp_path / "here"))
    assert local_run.returncode == 0, local_run.stdout + local_run.stderr
    remote_run = isobench(
        "run", "--hosts", nodes[0].spec, *rows, *suites, "--out", str(tmp_path / "there")
    )
    assert remote_run.returncode == 0, remote_run.stdout + remote_run.stderr
    _, local_records = read_run(tmp_path / "here")
    _, remote_records = read_run(tmp_path / "there")
    assert outcomes(local_records) == outcomes(remote_records)
    controls = [r for r in remote_records if r["runtime"] == "host" and r["expected_to_fail"]]
    assert len(controls) > 20
    assert {r["outcome"] for r in controls} == {"fail"}


def test_unreachable_host_gives_errors_there_only(nodes: list[SshHost], tmp_path: Path) -> None:
    # A port of the node's address on which nothing listens: refused at once, and no
    # packet leaves this machine.
    address = nodes[0].address
    closed = nodes[0].spec.replace(f"@{address}", f"@{address}:2", 1)
    out = tmp_path / "fleet"
    done = isobench(
        "run", "--hosts", f"{nodes[1].spec},{closed}", "--runtime", "docker",
        "--suite", "namespaces", "--out", str(out),
    )  # fmt: skip
    assert done.returncode == 3, done.stdout + done.stderr
    meta, records = read_run(out)
    good = hosts.label_of(nodes[1].spec)
    bad = hosts.label_of(closed)
    reached = [r for r in records if r["host"] == good]
    assert len(reached) == 20 and all(r["outcome"] != "error" for r in reached)
    unreached = [r for r in records if r["host"] == bad]
    assert len(unreached) == 20
    assert all(r["outcome"] == "error" for r in unreached)
    assert all("could not be reached" in r["message"] for r in unreached), unreached[0]["message"]
    assert "error" in meta["hosts"][bad]["environment"]


def test_negative_control_fails_on_a_host(nodes: list[SshHost]) -> None:
    """A check read on another host can fail: the PID namespace check with pid: host, and
    the host's facts are that host's (its name)."""
    suite = load_suite(SUITES / "namespaces.yaml")
    check = next(c for c in suite.checks if c.id == "pid-ns-private")
    host = hosts.Host(nodes[0].spec)
    before = hosts.use(host)
    # Adapters of their own: those of this session's harness stay as they were.
    with runtimes.fresh():
        harness = Harness(f"hosttest{os.getpid()}")
        try:
            passed = harness.evaluate(check, "docker")
            failed = harness.evaluate(check, "docker", control={"pid": "host"})
            assert harness.host_facts["hostname"] == nodes[0].name
        finally:
            left = harness.close()
            host.close()
            hosts.use(before)
    assert passed.outcome == "pass", passed.message
    assert failed.outcome == "fail", (failed.outcome, failed.message)
    assert not left


def test_workers_give_the_outcomes_of_a_serial_run(tmp_path: Path) -> None:
    require_root()
    require_runtime("docker")
    require_runtime("runc")
    runs = {}
    for name, extra in (("serial", []), ("workers", ["-n", "2"])):
        done = isobench(
            "run", "--runtime", "docker", "--runtime", "runc", "--suite", "namespaces",
            "--out", str(tmp_path / name), *extra,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        meta, records = read_run(tmp_path / name)
        runs[name] = (meta, records)
        assert not {k: v for k, v in remnants(meta["run_id"]).items() if v}
    assert outcomes(runs["serial"][1]) == outcomes(runs["workers"][1])
    assert len(runs["workers"][1]) == len(runs["serial"][1]) == 40
    # The controller counts every worker's outcomes in run.json.
    assert runs["workers"][0]["counts"] == runs["serial"][0]["counts"]
    assert json.dumps(runs["workers"][0]["suites"]) == json.dumps(runs["serial"][0]["suites"])


def test_benchmarks_refuse_workers_and_hosts() -> None:
    workers = isobench("run", "--bench", "-n", "2")
    assert workers.returncode == 2
    assert "never run in parallel" in workers.stderr
    remote = isobench("run", "--bench", "--hosts", "ssh://root@node1")
    assert remote.returncode == 2
    assert "machine that runs isobench only" in remote.stderr


def test_runc_over_ssh_matches_local_run(nodes: list[SshHost], tmp_path: Path) -> None:
    """runc lays out its bundles and reads its facts on the host reached over ssh://: the
    verdicts are those of a run here, and the host keeps nothing of the run."""
    require_runtime("runc")
    rows = ["--runtime", "runc", "--suite", "namespaces"]
    here = isobench("run", *rows, "--out", str(tmp_path / "here"))
    assert here.returncode == 0, here.stdout + here.stderr
    there = isobench("run", "--hosts", nodes[0].spec, *rows, "--out", str(tmp_path / "there"))
    assert there.returncode == 0, there.stdout + there.stderr

    _, local_records = read_run(tmp_path / "here")
    _, remote_records = read_run(tmp_path / "there")
    assert len(remote_records) == 20
    assert outcomes(local_records) == outcomes(remote_records)
    label = hosts.label_of(nodes[0].spec)
    written = [r["commands"][0] for r in remote_records if r["outcome"] == "pass"]
    assert written
    assert all(line.endswith(f" on {label}") for line in written), written[:1]

    (directory,) = [path for path in (tmp_path / "there" / "hosts").iterdir() if path.is_dir()]
    host_meta, _ = read_run(directory)
    run_id = host_meta["run_id"]
    left = {kind: names for kind, names in remnants(run_id).items() if names}
    assert not left, left
    bundles = Path(os.environ.get("ISOBENCH_BUNDLE_DIR", "/var/lib/isobench/bundles"))
    assert not list(bundles.glob(f"{run_id}*"))
