"""'isobench compare' on recorded run directories.

tests/unit/data/runs/ holds runs recorded on the reference host:

- suites-base and suites-new: the namespaces suite on every runtime, a
  minute apart, before and after runsc's cgroup and PID deviations were
  declared (6 checks went from fail to xfail);
- bench-base, bench-same and bench-slow: the startup benchmark on runc,
  the last one with runc behind a wrapper that sleeps 10 ms first.

Variants (a vanished check, another machine) are copies edited in the test.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from isobench.cli import main
from isobench.compare.runs import compare_runs, format_markdown, format_text, to_dict
from isobench.errors import UsageError

DATA = Path(__file__).parent / "data" / "runs"


def _copy(name: str, tmp_path: Path) -> Path:
    target = tmp_path / name
    shutil.copytree(DATA / name, target)
    return target


def _edit_run(run_dir: Path, **environment: object) -> None:
    path = run_dir / "run.json"
    meta = json.loads(path.read_text())
    meta["environment"].update(environment)
    path.write_text(json.dumps(meta))


def _drop_records(run_dir: Path, runtime: str) -> int:
    path = run_dir / "results.jsonl"
    lines = path.read_text().splitlines()
    kept = [line for line in lines if json.loads(line)["runtime"] != runtime]
    path.write_text("\n".join(kept) + "\n")
    return len(lines) - len(kept)


def _set_outcome(run_dir: Path, check: str, runtime: str, outcome: str) -> None:
    path = run_dir / "results.jsonl"
    records = [json.loads(line) for line in path.read_text().splitlines()]
    for record in records:
        if record["check"] == check and record["runtime"] == runtime:
            record["outcome"] = outcome
            record["message"] = f"set to {outcome} by the test"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


def test_recorded_suites_newly_passing() -> None:
    comparison = compare_runs(DATA / "suites-base", DATA / "suites-new")
    kinds = {change.kind for change in comparison.changes}
    assert kinds == {"newly passing"}
    assert len(comparison.changes) == 6
    assert comparison.same_checks == 114
    assert comparison.gate_failures == []
    assert comparison.weak == []


def test_newly_passing_names_check_and_place() -> None:
    comparison = compare_runs(DATA / "suites-base", DATA / "suites-new")
    first = next(c for c in comparison.changes if c.check == "pid-ns-private")
    assert first.runtime in ("runsc", "docker+runsc")
    assert (first.base, first.new) == ("fail", "xfail")
    assert first.file.endswith("suites/namespaces.yaml")
    assert first.line == 10


def test_vanished_checks_fail_gate(tmp_path: Path) -> None:
    new = _copy("suites-new", tmp_path)
    dropped = _drop_records(new, "podman")
    comparison = compare_runs(DATA / "suites-base", new)
    vanished = [c for c in comparison.changes if c.kind == "vanished"]
    assert len(vanished) == dropped
    assert all(c.runtime == "podman" and c.new is None for c in vanished)
    assert len(comparison.gate_failures) == dropped
    assert "vanished: namespaces/" in comparison.gate_failures[0]


def test_vanished_check_exits_one(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    new = _copy("suites-new", tmp_path)
    _drop_records(new, "runc")
    status = main(["compare", str(DATA / "suites-base"), str(new)])
    output = capsys.readouterr()
    assert status == 1
    assert "VANISHED: namespaces/pid-ns-private on runc" in output.out
    assert "isobench: vanished:" in output.err


def test_new_failure_fails_gate(tmp_path: Path) -> None:
    new = _copy("suites-new", tmp_path)
    _set_outcome(new, "uts-ns-private", "docker", "fail")
    comparison = compare_runs(DATA / "suites-base", new)
    failing = [c for c in comparison.changes if c.kind == "newly failing"]
    assert [(c.check, c.runtime, c.base, c.new) for c in failing] == [
        ("uts-ns-private", "docker", "pass", "fail")
    ]
    assert failing[0].message == "set to fail by the test"


def test_new_error_fails_gate(tmp_path: Path) -> None:
    new = _copy("suites-new", tmp_path)
    _set_outcome(new, "uts-ns-private", "podman", "error")
    comparison = compare_runs(DATA / "suites-base", new)
    kinds = [c.kind for c in comparison.changes if c.runtime == "podman"]
    assert kinds == ["newly erroring"]
    assert any(line.startswith("newly erroring:") for line in comparison.gate_failures)


def test_control_that_passes_is_newly_failing(tmp_path: Path) -> None:
    # On the host row, a fail is the expected outcome; a pass means the check went blind.
    new = _copy("suites-new", tmp_path)
    _set_outcome(new, "uts-ns-private", "host", "pass")
    comparison = compare_runs(DATA / "suites-base", new)
    host = [c for c in comparison.changes if c.runtime == "host"]
    assert [(c.kind, c.base, c.new) for c in host] == [("newly failing", "fail", "pass")]


def test_skip_to_pass_is_changed(tmp_path: Path) -> None:
    base = _copy("suites-base", tmp_path)
    _set_outcome(base, "uts-ns-private", "docker", "skip")
    comparison = compare_runs(base, DATA / "suites-new")
    docker = [c for c in comparison.changes if c.runtime == "docker"]
    assert [(c.kind, c.base, c.new) for c in docker] == [("changed", "skip", "pass")]
    assert not any("uts-ns-private" in line for line in comparison.gate_failures)


def test_other_machine_marked_weak(tmp_path: Path) -> None:
    new = _copy("suites-new", tmp_path)
    _edit_run(new, hostname="ci-runner-7", machine_id="0123456789abcdef", kernel="6.1.0-18")
    comparison = compare_runs(DATA / "suites-base", new)
    assert any("different machines" in reason for reason in comparison.weak)
    assert any(reason.startswith("kernel differs") for reason in comparison.weak)
    keys = [key for key, _, _ in comparison.environment]
    assert keys[:3] == ["machine_id", "hostname", "kernel"]
    text = format_text(comparison)
    assert text.index("Environment") < text.index("WEAK BASELINE") < text.index("Checks")


def test_hours_apart_marked_weak(tmp_path: Path) -> None:
    new = _copy("suites-new", tmp_path)
    meta = json.loads((new / "run.json").read_text())
    meta["started"] = "2026-12-05T03:07:25+00:00"
    (new / "run.json").write_text(json.dumps(meta))
    comparison = compare_runs(DATA / "suites-base", new)
    assert any("6.0 hours apart" in reason for reason in comparison.weak)


def test_runtime_version_difference_listed(tmp_path: Path) -> None:
    new = _copy("suites-new", tmp_path)
    meta = json.loads((new / "run.json").read_text())
    meta["runtimes"]["runc"]["version"] = "1.2.0"
    (new / "run.json").write_text(json.dumps(meta))
    comparison = compare_runs(DATA / "suites-base", new)
    assert ("runtime runc version", "1.1.5+ds1", "1.2.0") in comparison.environment


def test_not_a_run_directory(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="is not a run directory"):
        compare_runs(tmp_path, DATA / "suites-new")


def test_json_and_markdown_written(tmp_path: Path) -> None:
    new = _copy("suites-new", tmp_path)
    _drop_records(new, "runc")
    target_json, target_md = tmp_path / "c.json", tmp_path / "c.md"
    status = main(
        [
            "compare",
            str(DATA / "suites-base"),
            str(new),
            "--json",
            str(target_json),
            "--markdown",
            str(target_md),
            "--no-gate",
        ]
    )
    document = json.loads(target_json.read_text())
    assert status == 0
    assert document["gate_failures"]
    assert {c["kind"] for c in document["changes"]} == {"vanished", "newly passing"}
    assert "| vanished | namespaces/pid-ns-private on runc |" in target_md.read_text()


def test_step_summary_appended(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    summary = tmp_path / "summary.md"
    summary.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    main(["compare", str(DATA / "suites-base"), str(DATA / "suites-new")])
    text = summary.read_text()
    assert text.startswith("earlier step\n")
    assert "## isobench compare" in text


def test_markdown_lists_weak_baseline(tmp_path: Path) -> None:
    new = _copy("suites-new", tmp_path)
    _edit_run(new, hostname="elsewhere")
    markdown = format_markdown(compare_runs(DATA / "suites-base", new))
    assert "**Weak baseline:** the runs are from different machines" in markdown
    document = to_dict(compare_runs(DATA / "suites-base", new))
    assert document["weak_baseline"]


# Benchmarks: runc, and runc behind a wrapper that sleeps 10 ms first.


def test_recorded_slower_runc_regressed() -> None:
    comparison = compare_runs(DATA / "bench-base", DATA / "bench-slow")
    verdicts = {m.metric: m.shift.verdict for m in comparison.metrics}
    run_rm = next(m for m in comparison.metrics if m.metric == "run_rm")
    assert verdicts["run_rm"] == "regressed"
    assert verdicts["create"] == "regressed"
    assert run_rm.shift.ci_low is not None and run_rm.shift.ci_low > 0.010
    assert ("runtime runc binary", "/usr/sbin/runc", "/var/tmp/proof/wrappers/runc-sleep10") in (
        comparison.environment
    )
    assert any(
        line.startswith("regressed: startup/run_rm on runc") for line in comparison.gate_failures
    )


def test_recorded_same_runc_not_regressed() -> None:
    comparison = compare_runs(DATA / "bench-base", DATA / "bench-same")
    verdicts = {m.shift.verdict for m in comparison.metrics}
    assert len(comparison.metrics) == 5
    assert "regressed" not in verdicts
    assert "improved" not in verdicts
    assert comparison.gate_failures == []


def test_holm_adjusts_p_values() -> None:
    adjusted = compare_runs(DATA / "bench-base", DATA / "bench-same")
    alone = compare_runs(DATA / "bench-base", DATA / "bench-same", holm=False)
    for with_holm, without in zip(adjusted.metrics, alone.metrics, strict=True):
        assert with_holm.p_adjusted is not None and without.p_adjusted is not None
        assert with_holm.p_adjusted >= without.p_adjusted


def test_vanished_metric_fails_gate(tmp_path: Path) -> None:
    new = _copy("bench-same", tmp_path)
    samples = new / "samples.jsonl"
    kept = [line for line in samples.read_text().splitlines() if '"metric": "remove"' not in line]
    samples.write_text("\n".join(kept) + "\n")
    comparison = compare_runs(DATA / "bench-base", new)
    assert comparison.vanished_metrics == ["startup/remove on runc (network=none)"]
    assert "vanished benchmark metric: startup/remove on runc (network=none)" in (
        comparison.gate_failures
    )


def test_missing_samples_noted(tmp_path: Path) -> None:
    new = _copy("bench-same", tmp_path)
    (new / "samples.jsonl").unlink()
    comparison = compare_runs(DATA / "bench-base", new)
    assert comparison.metrics == []
    assert any("has no samples.jsonl" in note for note in comparison.notes)


def test_min_effect_option(capsys: pytest.CaptureFixture[str]) -> None:
    status = main(
        ["compare", str(DATA / "bench-base"), str(DATA / "bench-slow"), "--min-effect", "50ms"]
    )
    out = capsys.readouterr().out
    assert status == 0
    assert "REGRESSED" not in out
