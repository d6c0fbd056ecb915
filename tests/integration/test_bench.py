"""Benchmark runs on a real runtime: the files they write, the lock, and what they leave."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from isobench import runlock
from isobench.results import read_run
from tests.conftest import REPO, require_runtime
from tests.integration.test_cli import containers_with_label, isobench

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def bench_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require_runtime("runc")
    out = tmp_path_factory.mktemp("bench") / "run"
    result = isobench(
        *("run", "--bench", "--runtime", "runc", "--rounds", "3", "--warmup", "1"),
        *("-k", "startup or cpu or io or idle_density and runc-1]", "--out", str(out)),
        timeout=1200,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return out


def samples(run_dir: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in (run_dir / "samples.jsonl").read_text().splitlines()]


def test_bench_startup_phases_sampled(bench_run: Path) -> None:
    metrics = {
        (s["runtime"], s["metric"]) for s in samples(bench_run) if s["benchmark"] == "startup"
    }

    for phase in ("create", "start_to_output", "exit", "remove", "run_rm"):
        assert ("runc", phase) in metrics
    assert ("native", "true") in metrics
    assert ("native", "unshare") in metrics


def test_bench_warmups_marked(bench_run: Path) -> None:
    run_rm = [s for s in samples(bench_run) if s["metric"] == "run_rm"]

    assert sum(1 for s in run_rm if s["warmup"]) == 1
    assert sum(1 for s in run_rm if not s["warmup"]) == 3


def test_bench_io_against_native(bench_run: Path) -> None:
    summary = json.loads((bench_run / "benchmarks.json").read_text())["summaries"]
    io = [s for s in summary if s["benchmark"] == "io" and s["runtime"] == "runc"]

    targets = {s["params"]["target"] for s in io}
    assert targets == {"rootfs", "bind", "tmpfs"}
    assert all(s["ratio_to_native"] is not None and s["ratio_to_native"] > 0 for s in io)


def test_bench_memory_counted(bench_run: Path) -> None:
    memory = [s for s in samples(bench_run) if s["benchmark"] == "memory"]

    assert {s["metric"] for s in memory} == {"pss_per_container", "pss_total"}
    assert all(float(str(s["value"])) > 0 for s in memory)


def test_bench_files_written(bench_run: Path) -> None:
    exported = json.loads((bench_run / "pytest-benchmark.json").read_text())

    assert exported["benchmarks"]
    assert "machine_info" in exported
    assert "## Benchmarks" in (bench_run / "summary.md").read_text()
    assert "Startup" in (bench_run / "index.html").read_text()
    assert (bench_run / "benchmarks.csv").exists()


def test_bench_leaves_nothing(bench_run: Path) -> None:
    meta, _ = read_run(bench_run)
    run_id = meta["run_id"]

    assert meta["status"] == "complete"
    assert containers_with_label(run_id) == []
    assert not Path(f"/var/lib/isobench/journal/{run_id}.jsonl").exists()
    assert not Path(f"/var/lib/isobench/bundles/{run_id}").exists()
    assert not list(Path("/sys/fs/cgroup").glob(f"*/*{run_id}*"))


def test_bench_refused_beside_run(tmp_path: Path) -> None:
    """A benchmark run does not start while another run holds the lock."""
    suite_run = runlock.RunLock(exclusive=False)
    suite_run.acquire()
    try:
        result = isobench("run", "--bench", "--runtime", "runc", "--out", str(tmp_path / "run"))
    finally:
        suite_run.release()

    assert result.returncode == 2
    assert "benchmarks run alone" in result.stderr
    assert not (tmp_path / "run").exists()


def test_bench_interrupt_leaves_nothing(tmp_path: Path) -> None:
    """Ctrl-C during a benchmark keeps the samples taken and removes what the run made."""
    require_runtime("runc")
    out = tmp_path / "run"
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "isobench", "run", "--bench", "--runtime", "runc"),
            *("--rounds", "200", "-k", "startup_phases", "--out", str(out)),
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    written = out / "samples.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if written.exists() and written.read_text().count("\n") >= 20:
            break
        time.sleep(0.05)
    else:
        process.kill()
        pytest.fail("the benchmark wrote no samples within 120 s")

    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=120)

    meta, _ = read_run(out)
    run_id = meta["run_id"]
    assert process.returncode == 130, stdout + stderr
    assert meta["status"] == "interrupted"
    assert written.read_text().count("\n") >= 20
    assert not Path(f"/var/lib/isobench/journal/{run_id}.jsonl").exists()
    assert not Path(f"/var/lib/isobench/bundles/{run_id}").exists()
    assert not list(Path("/tmp").glob(f"isobench-marker-{run_id}*"))
