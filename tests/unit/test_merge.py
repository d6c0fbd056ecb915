"""Tests of isobench.merge on run directories written into tmp_path."""

from __future__ import annotations

import csv
import json
import logging
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from isobench.bench.samples import SAMPLES_FILE
from isobench.bench.stats import BENCHMARKS_FILE
from isobench.cli import main
from isobench.errors import UsageError
from isobench.merge import merge_runs
from isobench.report import render
from isobench.report.render import POSTURE_FILE, load_report
from isobench.results import RESULTS_FILE, RUN_FILE, Record

NODE1_SPEC = "ssh://root@10.0.0.1"
NODE2_SPEC = "ssh://root@10.0.0.2"
RUNTIME_INFO = {"available": True, "family": "oci", "version": "1.1.12", "details": {}}


def write_run(
    path: Path,
    *,
    hostname: str,
    host: dict[str, str] | None = None,
    run_id: str = "20261205T121000Z-aaaaaa",
    started: str = "2026-12-05T12:10:00+00:00",
    status: str = "complete",
    kernel: str = "6.1.0-28-amd64",
    records: list[Record] | None = None,
) -> Path:
    """Write run.json and results.jsonl of a run on runc and docker into ``path``."""
    path.mkdir(parents=True)
    meta: dict[str, Any] = {
        "run_id": run_id,
        "status": status,
        "started": started,
        "ended": None if status == "running" else started.replace("12:10:00", "12:12:00"),
        "argv": ["isobench", "run"],
        "environment": {
            "hostname": hostname,
            "kernel": kernel,
            "os": "Linux-6.1.0-x86_64-with-glibc2.36",
            "cgroup_mode": "v2",
            "cpu_count": 4,
            "isobench_version": "0.1.0",
        },
        "suites": [{"name": "core", "path": "suites/core.yaml", "checks": 2}],
        "runtimes": {"runc": RUNTIME_INFO, "docker": {**RUNTIME_INFO, "family": "engine"}},
        "counts": {},
    }
    if host is not None:
        meta["host"] = host
    (path / RUN_FILE).write_text(json.dumps(meta), encoding="utf-8")
    if records is None:
        records = [
            Record("core", "pid-ns", "runc", "pass"),
            Record("core", "pid-ns", "docker", "fail", message="pid 1 is not the init"),
            Record("core", "net-ns", "runc", "pass"),
            Record("core", "net-ns", "docker", "skip", message="no network namespace"),
        ]
    lines = "".join(record.to_json() + "\n" for record in records)
    (path / RESULTS_FILE).write_text(lines, encoding="utf-8")
    return path


def two_hosts(tmp_path: Path) -> tuple[Path, Path]:
    node1 = write_run(
        tmp_path / "node1",
        hostname="node1",
        host={"spec": NODE1_SPEC, "label": "root@10.0.0.1"},
    )
    node2 = write_run(
        tmp_path / "node2",
        hostname="node2",
        host={"spec": NODE2_SPEC, "label": "root@10.0.0.2"},
        run_id="20261205T121500Z-bbbbbb",
        kernel="6.12.0-1-amd64",
        records=[
            Record("core", "pid-ns", "runc", "fail", message="pid 1 is not the init"),
            Record("core", "pid-ns", "docker", "pass"),
            Record("core", "net-ns", "runc", "error", message="timed out after 30 s"),
        ],
    )
    return node1, node2


def read_records(run_dir: Path) -> list[dict[str, Any]]:
    lines = (run_dir / RESULTS_FILE).read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


def read_meta(run_dir: Path) -> dict[str, Any]:
    meta: dict[str, Any] = json.loads((run_dir / RUN_FILE).read_text(encoding="utf-8"))
    return meta


# Records and labels


def test_merge_two_hosts_keeps_every_record(tmp_path: Path) -> None:
    node1, node2 = two_hosts(tmp_path)

    out = merge_runs([node1, node2], tmp_path / "merged")

    merged = read_records(out)
    expected = Counter(
        (record["check"], record["runtime"], record["outcome"], label)
        for path, label in ((node1, "root@10.0.0.1"), (node2, "root@10.0.0.2"))
        for record in read_records(path)
    )
    found = Counter(
        (record["check"], record["source_runtime"], record["outcome"], record["host"])
        for record in merged
    )
    assert len(merged) == 7
    assert found == expected


def test_merge_two_hosts_runtime_columns(tmp_path: Path) -> None:
    out = merge_runs(list(two_hosts(tmp_path)), tmp_path / "merged")

    runtimes = {record["runtime"] for record in read_records(out)}
    assert runtimes == {
        "runc @ root@10.0.0.1",
        "docker @ root@10.0.0.1",
        "runc @ root@10.0.0.2",
        "docker @ root@10.0.0.2",
    }


def test_merge_two_hosts_matrix_per_host(tmp_path: Path) -> None:
    out = merge_runs(list(two_hosts(tmp_path)), tmp_path / "merged")

    report = load_report(out)
    assert list(report.matrix.columns) == [
        "runc @ root@10.0.0.1",
        "docker @ root@10.0.0.1",
        "runc @ root@10.0.0.2",
        "docker @ root@10.0.0.2",
    ]
    assert report.matrix.loc["core/pid-ns", "runc @ root@10.0.0.1"] == "pass"
    assert report.matrix.loc["core/pid-ns", "runc @ root@10.0.0.2"] == "fail"
    assert report.totals.loc["runc @ root@10.0.0.2", "error"] == 1
    assert report.totals.loc["runc @ root@10.0.0.1", "error"] == 0


def test_merge_same_host_two_days(tmp_path: Path) -> None:
    first = write_run(tmp_path / "day1", hostname="node1", started="2026-12-05T12:10:00+00:00")
    second = write_run(
        tmp_path / "day2",
        hostname="node1",
        run_id="20261206T090000Z-cccccc",
        started="2026-12-06T09:00:00+00:00",
    )

    out = merge_runs([first, second], tmp_path / "merged")

    hosts = {record["host"] for record in read_records(out)}
    assert hosts == {"node1 (20261205T1210)", "node1 (20261206T0900)"}
    assert "runc @ node1 (20261206T0900)" in read_meta(out)["runtimes"]


def test_merge_same_host_same_minute_uses_run_id(tmp_path: Path) -> None:
    first = write_run(tmp_path / "a", hostname="node1", run_id="20261205T121000Z-aaaaaa")
    second = write_run(tmp_path / "b", hostname="node1", run_id="20261205T121000Z-bbbbbb")

    out = merge_runs([first, second], tmp_path / "merged")

    assert list(read_meta(out)["hosts"]) == [
        "node1 (20261205T121000Z-aaaaaa)",
        "node1 (20261205T121000Z-bbbbbb)",
    ]


def test_merge_old_run_labelled_by_hostname(tmp_path: Path) -> None:
    old = write_run(tmp_path / "old", hostname="build-7")
    _, node2 = two_hosts(tmp_path)

    out = merge_runs([old, node2], tmp_path / "merged")

    hosts = read_meta(out)["hosts"]
    assert hosts["build-7"]["spec"] == "local://"
    assert hosts["build-7"]["environment"]["hostname"] == "build-7"
    assert "runc @ build-7" in {record["runtime"] for record in read_records(out)}


def test_merge_local_host_labelled_by_hostname(tmp_path: Path) -> None:
    local = write_run(
        tmp_path / "local", hostname="laptop", host={"spec": "local://", "label": "local"}
    )
    _, node2 = two_hosts(tmp_path)

    out = merge_runs([local, node2], tmp_path / "merged")

    assert list(read_meta(out)["hosts"]) == ["laptop", "root@10.0.0.2"]


def test_merge_one_source_keeps_runtime_names(tmp_path: Path) -> None:
    node1, _ = two_hosts(tmp_path)

    out = merge_runs([node1], tmp_path / "merged")

    records = read_records(out)
    assert {record["runtime"] for record in records} == {"runc", "docker"}
    assert {record["host"] for record in records} == {"root@10.0.0.1"}
    assert {record["source_runtime"] for record in records} == {"runc", "docker"}


# run.json


def test_merged_run_json(tmp_path: Path) -> None:
    node1, node2 = two_hosts(tmp_path)

    out = merge_runs([node1, node2], tmp_path / "merged", argv=["isobench", "merge"])

    meta = read_meta(out)
    assert meta["status"] == "merged"
    assert meta["argv"] == ["isobench", "merge"]
    assert meta["started"] == "2026-12-05T12:10:00+00:00"
    assert meta["ended"] == "2026-12-05T12:12:00+00:00"
    assert meta["counts"] == {
        "pass": 3,
        "fail": 2,
        "error": 1,
        "skip": 1,
        "xfail": 0,
        "xpass": 0,
    }
    assert meta["suites"] == [{"name": "core", "path": "suites/core.yaml", "checks": 2}]
    assert meta["sources"][1] == {
        "path": str(node2.resolve()),
        "run_id": "20261205T121500Z-bbbbbb",
        "host": "root@10.0.0.2",
        "status": "complete",
        "started": "2026-12-05T12:10:00+00:00",
        "ended": "2026-12-05T12:12:00+00:00",
    }
    assert meta["hosts"]["root@10.0.0.2"]["spec"] == NODE2_SPEC
    assert meta["hosts"]["root@10.0.0.2"]["environment"]["kernel"] == "6.12.0-1-amd64"
    assert meta["runtimes"]["docker @ root@10.0.0.2"] == {
        **RUNTIME_INFO,
        "family": "engine",
        "host": "root@10.0.0.2",
        "source_runtime": "docker",
    }
    assert meta["notes"] == []


def test_merge_default_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    node1, node2 = two_hosts(tmp_path)
    monkeypatch.chdir(tmp_path)

    out = merge_runs([node1, node2])

    assert out.parent == tmp_path / "reports" / "merged"
    assert out.name == read_meta(out)["run_id"]


# Bad input


def test_merge_missing_run_json(tmp_path: Path) -> None:
    node1, _ = two_hosts(tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()

    with pytest.raises(UsageError) as error:
        merge_runs([node1, empty], tmp_path / "merged")

    assert str(empty) in str(error.value)
    assert "run.json is missing" in str(error.value)
    assert not (tmp_path / "merged").exists()


def test_merge_missing_directory(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"

    with pytest.raises(UsageError, match="run directory not found") as error:
        merge_runs([missing], tmp_path / "merged")

    assert str(missing) in str(error.value)


def test_merge_no_sources(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no run directories to merge"):
        merge_runs([], tmp_path / "merged")


def test_merge_out_contains_run(tmp_path: Path) -> None:
    node1, node2 = two_hosts(tmp_path)

    with pytest.raises(UsageError, match="already contains a run") as error:
        merge_runs([node1], node2)

    assert str(node2) in str(error.value)


def test_merge_same_directory_twice(tmp_path: Path) -> None:
    node1, _ = two_hosts(tmp_path)

    with pytest.raises(UsageError, match="given twice"):
        merge_runs([node1, tmp_path / "." / "node1"], tmp_path / "merged")


def test_merge_merged_run_rejected(tmp_path: Path) -> None:
    merged = merge_runs(list(two_hosts(tmp_path)), tmp_path / "merged")

    with pytest.raises(UsageError, match="is a merged run"):
        merge_runs([merged], tmp_path / "again")


def test_merge_running_source_warns(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    node1, _ = two_hosts(tmp_path)
    running = write_run(tmp_path / "running", hostname="node3", status="running")

    with caplog.at_level(logging.WARNING, logger="isobench.merge"):
        out = merge_runs([node1, running], tmp_path / "merged")

    assert "has status 'running'" in caplog.text
    assert len(read_records(out)) == 8
    assert "node3 (running)" in load_report(out).status_note


def test_merge_invalid_line_noted(tmp_path: Path) -> None:
    node1, node2 = two_hosts(tmp_path)
    with (node2 / RESULTS_FILE).open("a", encoding="utf-8") as handle:
        handle.write('{"suite": "core", "check": "cut off\n')

    out = merge_runs([node1, node2], tmp_path / "merged")

    assert len(read_records(out)) == 7
    assert read_meta(out)["notes"] == [
        f"{node2 / RESULTS_FILE}: lines left out because they are not JSON objects: 4."
    ]


def test_merge_unknown_files_noted(tmp_path: Path) -> None:
    node1, node2 = two_hosts(tmp_path)
    (node2 / "pytest-benchmark.json").write_text("{}", encoding="utf-8")

    out = merge_runs([node1, node2], tmp_path / "merged")

    notes = read_meta(out)["notes"]
    assert len(notes) == 1
    assert "pytest-benchmark.json" in notes[0]
    assert "left out of the merge" in notes[0]
    assert str(node2) in notes[0]


# Report


def test_merged_summary_environments(tmp_path: Path) -> None:
    out = merge_runs(list(two_hosts(tmp_path)), tmp_path / "merged")

    summary = render(out)["summary.md"].read_text(encoding="utf-8")

    section = summary.split("## Environments", 1)[1].split("\n## ", 1)[0]
    assert "| host | spec | host name | kernel |" in section
    assert "| `root@10.0.0.1` | `ssh://root@10.0.0.1` | node1 | 6.1.0-28-amd64 |" in section
    assert "| `root@10.0.0.2` | `ssh://root@10.0.0.2` | node2 | 6.12.0-1-amd64 |" in section
    assert "`20261205T121500Z-bbbbbb` | complete |" in section
    assert "Warning" not in summary
    assert "Duration" not in summary


def test_merged_html_environments(tmp_path: Path) -> None:
    out = merge_runs(list(two_hosts(tmp_path)), tmp_path / "merged")

    html = render(out)["index.html"].read_text(encoding="utf-8")

    section = html.split("<h2>Environments</h2>", 1)[1].split("<h2>", 1)[0]
    assert "<td><code>root@10.0.0.1</code></td><td><code>ssh://root@10.0.0.1</code></td>" in section
    assert "<td>node2</td><td>6.12.0-1-amd64</td>" in section
    assert "<th><code>docker @ root@10.0.0.2</code></th>" in html


def test_merged_notes_in_report(tmp_path: Path) -> None:
    node1, node2 = two_hosts(tmp_path)
    (node2 / "pytest-benchmark.json").write_text("{}", encoding="utf-8")
    out = merge_runs([node1, node2], tmp_path / "merged")

    written = render(out)

    assert "Notes of the merge:" in written["summary.md"].read_text(encoding="utf-8")
    assert "pytest-benchmark.json" in written["index.html"].read_text(encoding="utf-8")


def test_merged_results_csv_host_columns(tmp_path: Path) -> None:
    out = merge_runs(list(two_hosts(tmp_path)), tmp_path / "merged")

    with render(out)["results.csv"].open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))

    assert len(rows) == 7
    assert rows[0]["host"] == "root@10.0.0.1"
    assert rows[0]["source_runtime"] == "runc"
    assert rows[0]["runtime"] == "runc @ root@10.0.0.1"
    assert rows[-1]["host"] == "root@10.0.0.2"


def test_report_remote_run_header(tmp_path: Path) -> None:
    node1, _ = two_hosts(tmp_path)

    summary = render(node1)["summary.md"].read_text(encoding="utf-8")

    assert "- Host: root@10.0.0.1 (ssh://root@10.0.0.1)" in summary


def test_report_local_run_no_host_row(tmp_path: Path) -> None:
    local = write_run(
        tmp_path / "local", hostname="laptop", host={"spec": "local://", "label": "local"}
    )

    summary = render(local)["summary.md"].read_text(encoding="utf-8")

    assert "- Host:" not in summary
    assert "## Environments" not in summary


# posture.jsonl and samples.jsonl


def write_jsonl(path: Path, lines: list[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")


def test_merge_posture_per_host(tmp_path: Path) -> None:
    node1, node2 = two_hosts(tmp_path)
    write_jsonl(
        node1 / POSTURE_FILE,
        [{"runtime": "runc", "request": "defaults", "caps": {"eff": ["CAP_CHOWN"]}}],
    )
    (node2 / POSTURE_FILE).write_text(
        json.dumps({"runtime": "runc", "request": "defaults", "caps": {"eff": ["CAP_KILL"]}})
        + "\nnot json\n",
        encoding="utf-8",
    )

    out = merge_runs([node1, node2], tmp_path / "merged")

    lines = [json.loads(line) for line in (out / POSTURE_FILE).read_text().splitlines()]
    assert [line["runtime"] for line in lines] == ["runc @ root@10.0.0.1", "runc @ root@10.0.0.2"]
    assert [line["host"] for line in lines] == ["root@10.0.0.1", "root@10.0.0.2"]
    assert read_meta(out)["notes"] == [
        f"{node2 / POSTURE_FILE}: lines left out because they are not JSON objects with a "
        "runtime: 2."
    ]
    posture = load_report(out).posture
    assert posture is not None
    assert posture.defaults is not None
    assert posture.defaults.runtimes == ["runc @ root@10.0.0.1", "runc @ root@10.0.0.2"]
    assert ("CAP_CHOWN", ["E", "-"]) in posture.defaults.rows


def cpu_samples(native: float, runc: float) -> list[dict[str, Any]]:
    """Return two rounds of the cpu benchmark on native and runc."""
    return [
        {
            "benchmark": "cpu",
            "runtime": runtime,
            "metric": "loop",
            "unit": "s",
            "value": value,
            "round": number,
            "warmup": False,
            "params": {},
        }
        for runtime, value in (("native", native), ("runc", runc))
        for number in (0, 1)
    ]


def test_merge_samples_ratio_per_host(tmp_path: Path) -> None:
    node1, node2 = two_hosts(tmp_path)
    write_jsonl(node1 / SAMPLES_FILE, cpu_samples(native=1.0, runc=2.0))
    write_jsonl(node2 / SAMPLES_FILE, cpu_samples(native=10.0, runc=12.0))

    out = merge_runs([node1, node2], tmp_path / "merged")

    benchmarks = load_report(out).benchmarks
    assert benchmarks is not None
    summaries = benchmarks.summaries.set_index("runtime")
    assert summaries.loc["runc @ root@10.0.0.1", "ratio_to_native"] == pytest.approx(2.0)
    assert summaries.loc["runc @ root@10.0.0.2", "ratio_to_native"] == pytest.approx(1.2)
    assert summaries.loc["native @ root@10.0.0.2", "median"] == pytest.approx(10.0)
    document = json.loads((out / BENCHMARKS_FILE).read_text(encoding="utf-8"))
    ratios = {item["runtime"]: item["ratio_to_native"] for item in document["summaries"]}
    assert ratios["runc @ root@10.0.0.2"] == pytest.approx(1.2)


def test_merge_samples_keep_host_keys(tmp_path: Path) -> None:
    node1, node2 = two_hosts(tmp_path)
    write_jsonl(node2 / SAMPLES_FILE, cpu_samples(native=10.0, runc=12.0))

    out = merge_runs([node1, node2], tmp_path / "merged")

    lines = [json.loads(line) for line in (out / SAMPLES_FILE).read_text().splitlines()]
    assert len(lines) == 4
    assert {line["host"] for line in lines} == {"root@10.0.0.2"}
    assert [line["source_runtime"] for line in lines] == ["native", "native", "runc", "runc"]
    assert lines[0]["runtime"] == "native @ root@10.0.0.2"


def test_merge_invalid_samples_left_out(tmp_path: Path) -> None:
    node1, node2 = two_hosts(tmp_path)
    write_jsonl(node1 / SAMPLES_FILE, cpu_samples(native=1.0, runc=2.0))
    (node2 / SAMPLES_FILE).write_text('{"benchmark": "cpu"}\n', encoding="utf-8")

    out = merge_runs([node1, node2], tmp_path / "merged")

    assert len((out / SAMPLES_FILE).read_text().splitlines()) == 4
    notes = read_meta(out)["notes"]
    assert len(notes) == 1
    assert "The samples of root@10.0.0.2 are left out." in notes[0]


# CLI


def test_cli_merge_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["merge", "--help"])

    assert exit_info.value.code == 0
    assert "usage: isobench merge" in capsys.readouterr().out


def test_cli_merge_writes_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    node1, node2 = two_hosts(tmp_path)
    out = tmp_path / "merged"

    code = main(["merge", str(node1), str(node2), "--out", str(out)])

    assert code == 0
    assert (out / "summary.md").exists()
    assert f"merged run directory: {out}" in capsys.readouterr().out
    assert read_meta(out)["argv"] == [
        "isobench",
        "merge",
        str(node1),
        str(node2),
        "--out",
        str(out),
    ]


def test_cli_merge_not_run_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()

    code = main(["merge", str(empty), "--out", str(tmp_path / "merged")])

    assert code == 2
    assert f"isobench: error: {empty}: not a run directory" in capsys.readouterr().err


def test_cli_merge_no_sources(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["merge"])

    assert exit_info.value.code == 2
    assert "RUN_DIR" in capsys.readouterr().err
