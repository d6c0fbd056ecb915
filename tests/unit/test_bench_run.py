"""The parts of a benchmark run that need no container: lock, samples, fio command, ldd."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
from pathlib import Path

import pytest

from isobench import images, runlock
from isobench.bench.samples import SAMPLES_FILE, Recorder, SampleWriter, run_rounds
from isobench.bench.workloads import FIO_JOBS, fio_argv
from isobench.cli import _bench_paths
from isobench.errors import UsageError


@pytest.fixture
def lock_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "run.lock"
    monkeypatch.setenv("ISOBENCH_LOCK", str(path))
    return path


def test_lock_shared_runs_together(lock_file: Path) -> None:
    first = runlock.RunLock(exclusive=False)
    first.acquire()
    try:
        # Another open file description, as another process would have.
        second = runlock.RunLock(exclusive=False)
        second.acquire()
        second.release()
    finally:
        first.release()


def test_lock_bench_refused_during_suite(lock_file: Path) -> None:
    suite = runlock.RunLock(exclusive=False)
    suite.acquire()
    try:
        with pytest.raises(UsageError, match="benchmarks run alone"):
            runlock.RunLock(exclusive=True).acquire()
    finally:
        suite.release()


def test_lock_suite_refused_during_bench(lock_file: Path) -> None:
    bench = runlock.RunLock(exclusive=True)
    bench.acquire()
    try:
        with pytest.raises(UsageError, match="benchmark run is active"):
            runlock.RunLock(exclusive=False).acquire()
    finally:
        bench.release()


def test_lock_refusal_names_holder(lock_file: Path) -> None:
    """The refusal names the process that holds the lock, read from /proc/locks."""
    lock_file.touch()
    holder = subprocess.Popen(
        ["flock", "--shared", str(lock_file), "sh", "-c", "echo held; exec sleep 60"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline() == "held\n"
        with pytest.raises(UsageError) as info:
            runlock.RunLock(exclusive=True).acquire()
    finally:
        holder.kill()
        holder.wait()

    assert f"held by PID {holder.pid} (flock --shared {lock_file}" in str(info.value)


def test_lock_holders_parse_proc_locks(tmp_path: Path) -> None:
    path = tmp_path / "run.lock"
    path.touch()
    status = path.stat()
    device = f"{os.major(status.st_dev):02x}:{os.minor(status.st_dev):02x}:{status.st_ino}"
    locks = tmp_path / "locks"
    locks.write_text(
        f"1: FLOCK  ADVISORY  READ  4194301 {device} 0 EOF\n"
        f"1: -> FLOCK  ADVISORY  WRITE 4194302 {device} 0 EOF\n"
        "2: FLOCK  ADVISORY  WRITE 4194303 00:01:1 0 EOF\n"
        "3: POSIX  ADVISORY  WRITE 4194304 00:01:1 0 EOF\n"
    )

    assert runlock.holders(path, locks) == ["4194301 (ended)"]


def test_lock_held_by_process(lock_file: Path) -> None:
    lock = runlock.RunLock(exclusive=True)
    lock.acquire()
    assert runlock.held() is lock
    lock.release()
    assert runlock.held() is None


def test_recorder_marks_warmups(tmp_path: Path) -> None:
    recorder = Recorder(SampleWriter(tmp_path), "startup", "runc", warmup=2)
    for value in range(4):
        recorder.next_round()
        recorder.write("create", "s", float(value), network="none")

    lines = [json.loads(line) for line in (tmp_path / SAMPLES_FILE).read_text().splitlines()]

    assert [line["round"] for line in lines] == [-2, -1, 0, 1]
    assert [line["warmup"] for line in lines] == [True, True, False, False]
    assert lines[0]["params"] == {"network": "none"}


def test_recorder_runtime_override(tmp_path: Path) -> None:
    recorder = Recorder(SampleWriter(tmp_path), "cpu", "docker", warmup=0)
    recorder.next_round()
    recorder.write("workload", "s", 1.5, runtime="native")

    line = json.loads((tmp_path / SAMPLES_FILE).read_text())

    assert line["runtime"] == "native"
    assert line["benchmark"] == "cpu"


def test_fio_argv_every_job() -> None:
    argv = fio_argv("/data", 1.0)

    names = [arg.removeprefix("--name=") for arg in argv if arg.startswith("--name=")]
    assert names == list(FIO_JOBS)
    assert "--directory=/data" in argv
    assert "--output-format=json" in argv
    assert argv.count("--stonewall") == len(FIO_JOBS)


def test_parse_ldd_paths() -> None:
    output = (
        "\tlinux-vdso.so.1 (0x00007ffd)\n"
        "\tlibz.so.1 => /lib/x86_64-linux-gnu/libz.so.1 (0x00007f)\n"
        "\tlibgone.so.2 => not found\n"
        "\t/lib64/ld-linux-x86-64.so.2 (0x00007f)\n"
    )

    assert images.parse_ldd(output) == [
        Path("/lib/x86_64-linux-gnu/libz.so.1"),
        Path("/lib64/ld-linux-x86-64.so.2"),
    ]


def bench_args(tmp_path: Path, **changes: object) -> argparse.Namespace:
    values: dict[str, object] = {"suite": [], "pytest_arg": [], "bench_dir": tmp_path}
    values.update(changes)
    return argparse.Namespace(**values)


def test_bench_with_suite_rejected(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="separate 'isobench run'"):
        _bench_paths(bench_args(tmp_path, suite=["namespaces"]))


@pytest.mark.parametrize("arg", ["-n", "-n4", "--numprocesses=2"])
def test_bench_parallel_rejected(tmp_path: Path, arg: str) -> None:
    with pytest.raises(UsageError, match="never run in parallel"):
        _bench_paths(bench_args(tmp_path, pytest_arg=[arg]))


def test_bench_dir_empty_rejected(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no benchmark modules"):
        _bench_paths(bench_args(tmp_path))


def test_bench_modules_found(tmp_path: Path) -> None:
    (tmp_path / "bench_startup.py").write_text("")
    (tmp_path / "helpers.py").write_text("")

    assert _bench_paths(bench_args(tmp_path)) == [tmp_path / "bench_startup.py"]


class FakeBenchmark:
    """Calls the target as pytest-benchmark's pedantic mode does: warm-ups, then rounds."""

    def __init__(self) -> None:
        self.extra_info: dict[str, object] = {}
        self.calls = 0

    def pedantic(self, target, rounds: int, warmup_rounds: int, iterations: int) -> None:  # type: ignore[no-untyped-def]
        for _ in range(warmup_rounds + rounds):
            self.calls += 1
            target()


def test_run_rounds_stops_work_on_error() -> None:
    benchmark = FakeBenchmark()
    done: list[int] = []

    def target() -> None:
        done.append(1)
        if len(done) == 2:
            raise UsageError("the runtime failed")

    with pytest.raises(UsageError, match="the runtime failed"):
        run_rounds(benchmark, target, rounds=5, warmup=1)

    assert len(done) == 2
    assert benchmark.calls == 6
    assert benchmark.extra_info["error"] == "the runtime failed"


def test_run_rounds_interrupt_raised_after() -> None:
    benchmark = FakeBenchmark()

    def target() -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_rounds(benchmark, target, rounds=3, warmup=0)

    assert benchmark.calls == 3


def test_run_rounds_all_rounds() -> None:
    benchmark = FakeBenchmark()
    done: list[int] = []

    run_rounds(benchmark, lambda: done.append(1), rounds=3, warmup=2)

    assert len(done) == 5
    assert "error" not in benchmark.extra_info
