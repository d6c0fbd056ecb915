"""The isobench command as a user runs it: results, exit status, bad input, interrupts."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from isobench.results import read_run
from tests.conftest import REPO, SUITES, require_root, require_runtime

pytestmark = pytest.mark.integration

BAD_SUITE = """\
suite: broken
checks:
  - id: good
    title: A check that is fine
    fact: ns.pid
    expect: {not_equals: {host: ns.pid}}
    controls: [{runtime: host}]
  - id: bad
    title: A check with a misspelt field
    fact: ns.pid
    expekt: {equals: "1"}
    controls: [{runtime: host}]
"""

VACUOUS_SUITE = """\
suite: vacuous
checks:
  - id: stderr-empty-list
    title: An expectation that asserts nothing
    run: [sh, -c, "echo x >&2"]
    expect:
      stderr: []
    controls: [{runtime: host}]
"""


def isobench(
    *args: str, env: dict[str, str] | None = None, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "isobench", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
        env=full_env,
    )


def containers_with_label(run_id: str) -> list[str]:
    found = []
    for engine in ("/usr/bin/docker", "/usr/bin/podman"):
        if not Path(engine).exists():
            continue
        listed = subprocess.run(
            [
                engine,
                "ps",
                "-a",
                "--filter",
                f"label=isobench.run={run_id}",
                "--format",
                "{{.Names}}",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        found += listed.stdout.split()
    return found


def test_host_passes_nothing(tmp_path: Path) -> None:
    require_root()
    out = tmp_path / "run"

    result = isobench("run", "--runtime", "host", "--suite", "namespaces", "--out", str(out))

    meta, records = read_run(out)
    assert result.returncode == 0, result.stderr
    assert meta["status"] == "complete"
    assert records, "no outcomes were written"
    assert {r["outcome"] for r in records} == {"fail"}
    for name in ("results.jsonl", "run.json", "summary.md", "index.html"):
        assert (out / name).exists(), name


def test_record_fields(tmp_path: Path) -> None:
    require_runtime("runc")
    out = tmp_path / "run"

    result = isobench(
        "run", "--runtime", "runc", "--suite", "namespaces", "-k", "pid", "--out", str(out)
    )

    meta, records = read_run(out)
    assert result.returncode == 0, result.stdout + result.stderr
    assert meta["runtimes"]["runc"]["available"] is True
    assert meta["runtimes"]["runc"]["version"]
    assert meta["environment"]["cgroup_mode"] in ("v1", "hybrid", "v2")
    record = records[0]
    for field in (
        "suite",
        "check",
        "runtime",
        "outcome",
        "message",
        "duration_s",
        "file",
        "line",
        "commands",
        "expected",
        "observed",
    ):
        assert field in record, field
    assert record["file"].endswith("namespaces.yaml")
    assert record["line"] > 1
    assert any("runc" in command for command in record["commands"])


def test_unknown_runtime_usage_error() -> None:
    result = isobench("run", "--runtime", "dockr")

    assert result.returncode == 2
    assert "unknown runtime 'dockr'" in result.stderr
    assert "isobench runtimes" in result.stderr


def test_unknown_suite_usage_error() -> None:
    result = isobench("run", "--runtime", "host", "--suite", "nosuch")

    assert result.returncode == 2
    assert "nosuch" in result.stderr


def test_misspelt_field_rejected(tmp_path: Path) -> None:
    """A check with an invalid field stops the run instead of vanishing from it."""
    suites = tmp_path / "suites"
    suites.mkdir()
    (suites / "broken.yaml").write_text(BAD_SUITE)

    result = isobench(
        "run", "--runtime", "host", "--suites-dir", str(suites), "--out", str(tmp_path / "run")
    )

    assert result.returncode == 2
    assert f"{suites / 'broken.yaml'}:11" in result.stderr
    assert "expekt" in result.stderr
    assert not (tmp_path / "run").exists()


def test_plugin_misspelt_field_error(tmp_path: Path) -> None:
    suites = tmp_path / "suites"
    suites.mkdir()
    (suites / "broken.yaml").write_text(BAD_SUITE)

    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            str(suites),
            "--runtime",
            "host",
            "--isobench-out",
            str(tmp_path / "run"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )

    assert result.returncode != 0
    assert "broken.yaml:11" in result.stdout
    assert "passed" not in result.stdout.splitlines()[-1]


def test_empty_expectation_rejected(tmp_path: Path) -> None:
    """An empty stderr expectation would pass without looking, so it is rejected."""
    suites = tmp_path / "suites"
    suites.mkdir()
    (suites / "vacuous.yaml").write_text(VACUOUS_SUITE)

    result = isobench(
        "run", "--runtime", "host", "--suites-dir", str(suites), "--out", str(tmp_path / "run")
    )

    assert result.returncode == 2
    assert f"{suites / 'vacuous.yaml'}:7" in result.stderr
    assert "asserts nothing" in result.stderr


def test_dead_daemon_is_error(tmp_path: Path) -> None:
    require_root()
    out = tmp_path / "run"

    result = isobench(
        "run",
        "--runtime",
        "docker",
        "--suite",
        "namespaces",
        "-k",
        "pid-ns",
        "--out",
        str(out),
        env={"DOCKER_HOST": f"unix://{tmp_path}/no.sock"},
    )

    _, records = read_run(out)
    assert result.returncode == 3, result.stdout + result.stderr
    assert records
    assert {r["outcome"] for r in records} == {"error"}
    assert "docker" in records[0]["message"]
    assert "DOCKER_HOST" in records[0]["message"]


def test_missing_binary_is_error(tmp_path: Path) -> None:
    require_root()
    out = tmp_path / "run"

    result = isobench(
        "run",
        "--runtime",
        "runc",
        "--suite",
        "namespaces",
        "-k",
        "pid-ns",
        "--out",
        str(out),
        env={"ISOBENCH_RUNC": "/nonexistent/runc"},
    )

    _, records = read_run(out)
    assert result.returncode == 3
    assert {r["outcome"] for r in records} == {"error"}
    assert "/nonexistent/runc" in records[0]["message"]


def test_interrupt_leaves_nothing(tmp_path: Path) -> None:
    # The cgroups suite runs for a minute, so the interrupt lands while checks still run.
    require_runtime("docker")
    require_runtime("podman")
    out = tmp_path / "run"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "isobench",
            "run",
            "--runtime",
            "docker",
            "--runtime",
            "podman",
            "--runtime",
            "runc",
            "--suite",
            "cgroups",
            "--out",
            str(out),
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    results = out / "results.jsonl"
    while time.monotonic() < deadline:
        if results.exists() and results.read_text().count("\n") >= 3:
            break
        time.sleep(0.05)
    else:
        process.kill()
        pytest.fail("the run wrote no results within 120 s")

    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=120)

    meta, records = read_run(out)
    run_id = meta["run_id"]
    assert process.returncode == 130, stdout + stderr
    assert meta["status"] == "interrupted"
    assert len(records) >= 3
    assert containers_with_label(run_id) == []
    assert not list(Path("/tmp").glob(f"isobench-marker-{run_id}*"))
    assert not Path(f"/var/lib/isobench/journal/{run_id}.jsonl").exists()
    assert f"isobench-marker-{run_id}" not in Path("/proc/self/mountinfo").read_text()


def test_report_renders_again(tmp_path: Path) -> None:
    require_root()
    out = tmp_path / "run"
    isobench("run", "--runtime", "host", "--suite", "namespaces", "-k", "pid", "--out", str(out))
    (out / "summary.md").unlink()

    result = isobench("report", str(out))

    assert result.returncode == 0, result.stderr
    assert (out / "summary.md").exists()


def test_report_not_run_dir(tmp_path: Path) -> None:
    result = isobench("report", str(tmp_path))

    assert result.returncode == 2
    assert "not a run directory" in result.stderr


def test_runtimes_json_lists_docker_client() -> None:
    result = isobench("runtimes", "--json")

    rows = json.loads(result.stdout)
    names = [row["runtime"] for row in rows]
    assert result.returncode == 0
    assert {"docker", "podman", "runc", "runsc", "host"} <= set(names)
    docker = next(row for row in rows if row["runtime"] == "docker")
    if docker["available"]:
        assert docker["details"]["client"]


def test_plugin_runs_alone(tmp_path: Path) -> None:
    require_runtime("runc")

    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            str(SUITES / "namespaces.yaml"),
            "--runtime",
            "runc",
            "-k",
            "uts",
            "--isobench-out",
            str(tmp_path / "run"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )

    assert result.returncode == 0, result.stdout[-3000:]
    assert (tmp_path / "run" / "results.jsonl").read_text().count("\n") >= 3


def test_suites_dir_any_name(tmp_path: Path) -> None:
    require_root()
    suites = tmp_path / "mine"
    suites.mkdir()
    (suites / "tiny.yaml").write_text(
        "suite: tiny\nchecks:\n  - id: pid-one\n    title: T\n    fact: self.pid\n"
        "    expect: {equals: '1'}\n    controls: [{runtime: host}]\n"
    )
    out = tmp_path / "run"

    result = isobench("run", "--runtime", "host", "--suites-dir", str(suites), "--out", str(out))

    _, records = read_run(out)
    assert result.returncode == 0, result.stdout + result.stderr
    assert [r["check"] for r in records] == ["pid-one"]


def test_out_reused_usage_error(tmp_path: Path) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "results.jsonl").write_text('{"outcome": "pass"}\n')

    result = isobench("run", "--runtime", "host", "--out", str(out))

    assert result.returncode == 2
    assert "already contains a run" in result.stderr


def test_out_file_usage_error(tmp_path: Path) -> None:
    target = tmp_path / "file"
    target.write_text("x")

    result = isobench("run", "--runtime", "host", "--out", str(target))

    assert result.returncode == 2
    assert "not a directory" in result.stderr


def test_keyword_no_match_usage_error(tmp_path: Path) -> None:
    require_root()

    result = isobench("run", "--runtime", "host", "-k", "nomatchzzz", "--out", str(tmp_path / "r"))

    assert result.returncode == 2
    assert "nomatchzzz" in result.stderr


def test_suite_not_utf8_usage_error(tmp_path: Path) -> None:
    suites = tmp_path / "suites"
    suites.mkdir()
    (suites / "bad.yaml").write_bytes(b"suite: bad\n# \xff\xfe\n")

    result = isobench("run", "--runtime", "host", "--suites-dir", str(suites))

    assert result.returncode == 2
    assert "bad.yaml:2" in result.stderr
    assert "UTF-8" in result.stderr


def test_repeated_interrupts_leave_nothing(tmp_path: Path) -> None:
    require_runtime("docker")
    out = tmp_path / "run"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "isobench",
            "run",
            "--runtime",
            "docker",
            "--runtime",
            "runc",
            "--suite",
            "cgroups",
            "--out",
            str(out),
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    results = out / "results.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if results.exists() and results.read_text().count("\n") >= 2:
            break
        time.sleep(0.05)

    for _ in range(3):
        process.send_signal(signal.SIGINT)
        time.sleep(0.3)
    stdout, stderr = process.communicate(timeout=120)

    meta, _ = read_run(out)
    run_id = meta["run_id"]
    assert process.returncode == 130, stdout + stderr
    assert meta["status"] == "interrupted"
    assert containers_with_label(run_id) == []
    assert not list(Path("/tmp").glob(f"isobench-marker-{run_id}*"))
    assert not Path(f"/var/lib/isobench/journal/{run_id}.jsonl").exists()


def test_corpus_usage_errors(tmp_path: Path) -> None:
    """Every broken suite of the corpus stops the run with exit status 2, its file and line,
    and no traceback."""
    corpus = REPO / "tests" / "data" / "malformed"
    for broken in sorted(corpus.glob("*.yaml")):
        suites = tmp_path / broken.stem / "suites"
        suites.mkdir(parents=True)
        (suites / broken.name).write_bytes(broken.read_bytes())

        result = isobench(
            *("run", "--runtime", "host", "--suites-dir", str(suites)),
            *("--out", str(tmp_path / broken.stem / "run")),
        )

        assert result.returncode == 2, f"{broken.name}: {result.stderr}"
        assert f"{broken.name}:" in result.stderr
        assert "Traceback" not in result.stderr + result.stdout
