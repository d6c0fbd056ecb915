"""Tests of isobench.bench.stats on fake sample records, without containers."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy.stats import bootstrap  # type: ignore[import-untyped]

from isobench.bench import stats
from isobench.bench.stats import (
    BENCHMARKS_FILE,
    SAMPLES_FILE,
    Sample,
    parse_sample,
    read_samples,
    summarize,
    summarize_samples,
    write_summary,
)
from isobench.errors import HarnessError
from isobench.results import RUN_FILE

ENVIRONMENT = {"hostname": "bench-host", "kernel": "6.1.0-28-amd64", "cpu_count": 4}


def sample(
    value: float,
    runtime: str = "docker",
    benchmark: str = "startup",
    metric: str = "create",
    unit: str = "s",
    warmup: bool = False,
    round: int = 0,
    **params: Any,
) -> dict[str, Any]:
    """Return one line of samples.jsonl as a dict. Startup samples default to network none."""
    if benchmark == "startup" and not params:
        params = {"network": "none"}
    return {
        "benchmark": benchmark,
        "runtime": runtime,
        "metric": metric,
        "unit": unit,
        "value": value,
        "round": round,
        "warmup": warmup,
        "params": params,
    }


def write_samples(run_dir: Path, lines: list[dict[str, Any] | str], meta: bool = True) -> Path:
    """Write samples.jsonl (dicts as JSON, strings as they are) and, with ``meta``, run.json."""
    run_dir.mkdir(parents=True, exist_ok=True)
    text = "".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines)
    (run_dir / SAMPLES_FILE).write_text(text, encoding="utf-8")
    if meta:
        run = {"run_id": "20250101T000000Z-abc123", "environment": ENVIRONMENT}
        (run_dir / RUN_FILE).write_text(json.dumps(run), encoding="utf-8")
    return run_dir


# summarize


def test_summarize_descriptive_statistics() -> None:
    summary = summarize([5.0, 1.0, 4.0, 2.0, 3.0])

    assert summary.n == 5
    assert summary.median == 3.0
    assert summary.mean == 3.0
    assert summary.min == 1.0
    assert summary.max == 5.0
    assert summary.stdev == pytest.approx(math.sqrt(2.5))
    assert summary.p95 == pytest.approx(4.8)
    assert summary.p99 == pytest.approx(4.96)


def test_summarize_ci_brackets_median() -> None:
    values = [0.101, 0.098, 0.120, 0.105, 0.099, 0.250, 0.102, 0.097, 0.110, 0.100]

    summary = summarize(values)

    assert summary.median_ci_low is not None
    assert summary.median_ci_high is not None
    assert summary.min <= summary.median_ci_low <= summary.median
    assert summary.median <= summary.median_ci_high <= summary.max


def test_summarize_ci_matches_seeded_scipy_bootstrap() -> None:
    values = [0.31, 0.29, 0.35, 0.30, 0.42, 0.28, 0.33]

    summary = summarize(values)
    expected = bootstrap(
        (np.array(values),),
        np.median,
        confidence_level=0.95,
        method="percentile",
        rng=np.random.default_rng(stats.BOOTSTRAP_SEED),
    ).confidence_interval

    assert summary.median_ci_low == pytest.approx(expected.low)
    assert summary.median_ci_high == pytest.approx(expected.high)


def test_summarize_ci_deterministic() -> None:
    values = [3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0, 6.0]

    assert summarize(values) == summarize(values)


def test_summarize_three_values_ci() -> None:
    summary = summarize([0.1, 0.2, 0.3])

    # A resample of three has median 0.1 with probability 7/27, above 2.5 %.
    assert summary.median_ci_low == pytest.approx(0.1)
    assert summary.median_ci_high == pytest.approx(0.3)


def test_summarize_equal_values_ci() -> None:
    summary = summarize([512.0] * 5)

    assert summary.median_ci_low == 512.0
    assert summary.median_ci_high == 512.0
    assert summary.stdev == 0.0


def test_summarize_two_values_no_ci() -> None:
    summary = summarize([1.0, 3.0])

    assert summary.median == 2.0
    assert summary.stdev == pytest.approx(math.sqrt(2.0))
    assert summary.median_ci_low is None
    assert summary.median_ci_high is None


def test_summarize_one_value() -> None:
    summary = summarize([7.5])

    assert summary.n == 1
    assert summary.median == 7.5
    assert summary.p99 == 7.5
    assert summary.stdev is None
    assert summary.median_ci_low is None


def test_summarize_empty_raises() -> None:
    with pytest.raises(ValueError, match="empty"):
        summarize([])


def test_summarize_nan_raises() -> None:
    with pytest.raises(ValueError, match="not finite"):
        summarize([1.0, math.nan])


def test_summary_to_dict_keys() -> None:
    assert list(summarize([1.0, 2.0, 3.0]).to_dict()) == list(stats.STAT_FIELDS)


# parse_sample


def test_parse_sample_fields() -> None:
    parsed = parse_sample(sample(0.25, round=3, network="default"))

    assert parsed == Sample(
        benchmark="startup",
        runtime="docker",
        metric="create",
        unit="s",
        value=0.25,
        round=3,
        warmup=False,
        params={"network": "default"},
    )


def test_parse_sample_keeps_extra_keys() -> None:
    record = {**sample(1.0), "host": "bench-host", "note": {"a": 1}}

    parsed = parse_sample(record)

    assert parsed.extra == {"host": "bench-host", "note": {"a": 1}}
    assert parsed.value == 1.0


def test_parse_sample_params_default() -> None:
    record = sample(2.0, benchmark="cpu", metric="workload")
    del record["params"]

    assert parse_sample(record).params == {}


def test_parse_sample_integer_value() -> None:
    parsed = parse_sample(sample(51848, benchmark="memory", metric="pss_total", unit="KiB"))

    assert parsed.value == 51848.0
    assert isinstance(parsed.value, float)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"value": "0.1"}, "'value' must be a finite number"),
        ({"value": True}, "'value' must be a finite number"),
        ({"value": math.nan}, "'value' must be a finite number"),
        ({"runtime": ""}, "'runtime' must be a non-empty string"),
        ({"metric": 3}, "'metric' must be a non-empty string"),
        ({"round": 1.5}, "'round' must be an integer"),
        ({"warmup": "no"}, "'warmup' must be true or false"),
        ({"params": ["none"]}, "'params' must be a JSON object, found an array"),
        ({"params": {"network": {"mode": "none"}}}, "'params.network' must be a string"),
    ],
)
def test_parse_sample_invalid_value(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_sample({**sample(0.1), **change})


@pytest.mark.parametrize(
    "key", ["benchmark", "runtime", "metric", "unit", "value", "round", "warmup"]
)
def test_parse_sample_missing_key(key: str) -> None:
    record = sample(0.1)
    del record[key]

    with pytest.raises(ValueError, match=f"the key '{key}' is missing"):
        parse_sample(record)


def test_parse_sample_not_object() -> None:
    with pytest.raises(ValueError, match="expected a JSON object, found an array"):
        parse_sample([1, 2])


# summarize_samples


def test_groups_by_params() -> None:
    records = [
        sample(0.1, network="none"),
        sample(0.3, network="default"),
        sample(0.2, network="none"),
    ]

    summaries = summarize_samples(records)

    assert [summary.params for summary in summaries] == [
        {"network": "none"},
        {"network": "default"},
    ]
    assert summaries[0].stats is not None
    assert summaries[0].stats.n == 2
    assert summaries[0].stats.median == pytest.approx(0.15)


def test_groups_in_order_of_appearance() -> None:
    records = [
        sample(0.1, runtime="runc", metric="start_to_output"),
        sample(0.1, runtime="docker", metric="create"),
        sample(0.2, runtime="runc", metric="start_to_output"),
        sample(0.1, runtime="runc", metric="create"),
    ]

    keys = [(summary.runtime, summary.metric) for summary in summarize_samples(records)]

    assert keys == [("runc", "start_to_output"), ("docker", "create"), ("runc", "create")]


def test_params_order_irrelevant() -> None:
    records = [
        {**sample(1.0), "params": {"network": "none", "size": 4}},
        {**sample(3.0), "params": {"size": 4, "network": "none"}},
    ]

    summaries = summarize_samples(records)

    assert len(summaries) == 1
    assert summaries[0].stats is not None
    assert summaries[0].stats.n == 2


def test_warmup_counted_not_summarized() -> None:
    records = [
        sample(9.0, warmup=True, round=-2),
        sample(8.0, warmup=True, round=-1),
        sample(0.1, round=0),
        sample(0.3, round=1),
    ]

    (summary,) = summarize_samples(records)

    assert summary.warmup_count == 2
    assert summary.stats is not None
    assert summary.stats.n == 2
    assert summary.stats.max == 0.3


def test_warmup_only_group() -> None:
    (summary,) = summarize_samples([sample(9.0, warmup=True)])
    data = summary.to_dict()

    assert summary.stats is None
    assert data["n"] == 0
    assert data["warmup_count"] == 1
    assert data["median"] is None
    assert data["median_ci_low"] is None


def test_summarize_samples_accepts_sample_objects() -> None:
    (summary,) = summarize_samples([parse_sample(sample(0.5)), sample(0.7)])

    assert summary.stats is not None
    assert summary.stats.n == 2


def test_io_ratio_to_native() -> None:
    records = [
        sample(100.0, "native", "io", "seqread", "MiB/s", target="rootfs"),
        sample(50.0, "docker", "io", "seqread", "MiB/s", target="rootfs"),
    ]

    native, docker = summarize_samples(records)

    assert docker.native_median == 100.0
    assert docker.ratio_to_native == 0.5
    assert docker.worse_when == "lower"
    assert native.ratio_to_native is None
    assert native.native_median is None


def test_cpu_ratio_to_native() -> None:
    records = [
        sample(3.0, "runsc", "cpu", "workload"),
        sample(1.5, "native", "cpu", "workload"),
    ]

    runsc, _ = summarize_samples(records)

    assert runsc.ratio_to_native == 2.0
    assert runsc.worse_when == "higher"


def test_ratio_needs_same_params() -> None:
    records = [
        sample(100.0, "native", "io", "randread", "IOPS", target="tmpfs"),
        sample(50.0, "docker", "io", "randread", "IOPS", target="rootfs"),
    ]

    _, docker = summarize_samples(records)

    assert docker.native_median is None
    assert docker.ratio_to_native is None


def test_ratio_needs_same_metric() -> None:
    records = [
        sample(100.0, "native", "io", "randread", "IOPS", target="tmpfs"),
        sample(50.0, "docker", "io", "randwrite", "IOPS", target="tmpfs"),
    ]

    _, docker = summarize_samples(records)

    assert docker.ratio_to_native is None


def test_no_ratio_for_startup() -> None:
    records = [
        sample(0.001, runtime="native", metric="create"),
        sample(0.1, runtime="docker", metric="create"),
    ]

    for summary in summarize_samples(records):
        assert summary.ratio_to_native is None
        assert summary.native_median is None


def test_ratio_with_zero_native_median() -> None:
    records = [
        sample(0.0, "native", "cpu", "workload"),
        sample(1.0, "docker", "cpu", "workload"),
    ]

    _, docker = summarize_samples(records)

    assert docker.native_median == 0.0
    assert docker.ratio_to_native is None


def test_ratio_with_warmup_only_container() -> None:
    records = [
        sample(1.0, "native", "cpu", "workload"),
        sample(2.0, "docker", "cpu", "workload", warmup=True),
    ]

    _, docker = summarize_samples(records)

    assert docker.native_median == 1.0
    assert docker.ratio_to_native is None


@pytest.mark.parametrize(
    ("unit", "worse"),
    [("s", "higher"), ("KiB", "higher"), ("MiB/s", "lower"), ("IOPS", "lower"), ("ms", None)],
)
def test_worse_when_by_unit(unit: str, worse: str | None) -> None:
    (summary,) = summarize_samples([sample(1.0, unit=unit)])

    assert summary.worse_when == worse
    assert summary.to_dict()["worse_when"] == worse


def test_two_units_in_group_raise() -> None:
    records = [sample(0.1, unit="s"), sample(100.0, unit="ms")]

    with pytest.raises(HarnessError, match="two units: 's' and 'ms'"):
        summarize_samples(records)


def test_invalid_record_names_index() -> None:
    with pytest.raises(HarnessError, match="invalid sample at index 1: 'value'"):
        summarize_samples([sample(0.1), {**sample(0.1), "value": None}])


def test_summary_to_dict_shape() -> None:
    records = [
        sample(value, "docker", "io", "seqread", "MiB/s", target="bind")
        for value in (10.0, 20.0, 30.0)
    ]
    records.append(sample(40.0, "native", "io", "seqread", "MiB/s", target="bind"))

    data = summarize_samples(records)[0].to_dict()

    assert list(data) == [
        "benchmark",
        "runtime",
        "metric",
        "unit",
        "params",
        "warmup_count",
        *stats.STAT_FIELDS,
        "native_median",
        "ratio_to_native",
        "worse_when",
    ]
    assert data["params"] == {"target": "bind"}
    assert data["median"] == 20.0
    assert data["ratio_to_native"] == 0.5


# read_samples and write_summary


def test_read_samples_skips_blank_lines(tmp_path: Path) -> None:
    run_dir = write_samples(tmp_path, [sample(0.1), "", "   ", sample(0.2)])

    assert [item.value for item in read_samples(run_dir / SAMPLES_FILE)] == [0.1, 0.2]


def test_read_samples_invalid_json_line(tmp_path: Path) -> None:
    run_dir = write_samples(tmp_path, [sample(0.1), sample(0.2), '{"benchmark": "startup"', ""])
    path = run_dir / SAMPLES_FILE

    with pytest.raises(HarnessError, match="invalid JSON") as caught:
        read_samples(path)
    assert str(caught.value).startswith(f"{path}:3: ")


def test_read_samples_invalid_sample_line(tmp_path: Path) -> None:
    run_dir = write_samples(tmp_path, [sample(0.1), {**sample(0.2), "warmup": "yes"}])
    path = run_dir / SAMPLES_FILE

    with pytest.raises(HarnessError, match=r"samples\.jsonl:2: invalid sample: 'warmup'") as caught:
        read_samples(path)
    assert str(path) in str(caught.value)


def test_read_samples_nan_literal(tmp_path: Path) -> None:
    line = json.dumps(sample(0.1)).replace("0.1", "NaN")
    run_dir = write_samples(tmp_path, [line])

    with pytest.raises(HarnessError, match=":1: invalid sample: 'value' must be a finite number"):
        read_samples(run_dir / SAMPLES_FILE)


def test_read_samples_cut_off_last_line(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    run_dir = write_samples(tmp_path, [sample(0.1)])
    with (run_dir / SAMPLES_FILE).open("a", encoding="utf-8") as handle:
        handle.write('{"benchmark": "startup", "runt')

    samples = read_samples(run_dir / SAMPLES_FILE)

    assert [item.value for item in samples] == [0.1]
    assert "samples.jsonl:2: left out the cut-off last line" in caplog.text


def test_read_samples_unreadable(tmp_path: Path) -> None:
    (tmp_path / SAMPLES_FILE).write_bytes(b"\xff\xfe\n")

    with pytest.raises(HarnessError, match="failed to read the benchmark samples"):
        read_samples(tmp_path / SAMPLES_FILE)


def test_write_summary_document(tmp_path: Path) -> None:
    run_dir = write_samples(
        tmp_path,
        [
            sample(0.5, warmup=True, round=-1),
            sample(0.1),
            sample(0.2),
            sample(0.3),
            sample(2.0, "native", "cpu", "workload"),
            sample(3.0, "docker", "cpu", "workload"),
        ],
    )

    path = write_summary(run_dir)
    document = json.loads(path.read_text(encoding="utf-8"))

    assert path == run_dir / BENCHMARKS_FILE
    assert list(document) == [
        "run_id",
        "environment",
        "samples",
        "warmup_samples",
        "confidence_level",
        "bootstrap",
        "summaries",
    ]
    assert document["run_id"] == "20250101T000000Z-abc123"
    assert document["environment"] == ENVIRONMENT
    assert document["samples"] == 5
    assert document["warmup_samples"] == 1
    assert document["confidence_level"] == 0.95
    assert document["bootstrap"]["method"] == "percentile"
    assert document["bootstrap"]["seed"] == stats.BOOTSTRAP_SEED
    assert len(document["summaries"]) == 3


def test_write_summary_values(tmp_path: Path) -> None:
    run_dir = write_samples(
        tmp_path,
        [
            sample(0.5, warmup=True, round=-1),
            sample(0.1),
            sample(0.2),
            sample(0.3),
            sample(2.0, "native", "cpu", "workload"),
            sample(3.0, "docker", "cpu", "workload"),
        ],
    )

    startup, native, docker = json.loads(write_summary(run_dir).read_text())["summaries"]

    assert startup["metric"] == "create"
    assert startup["params"] == {"network": "none"}
    assert startup["n"] == 3
    assert startup["warmup_count"] == 1
    assert startup["median"] == pytest.approx(0.2)
    assert startup["median_ci_low"] == pytest.approx(0.1)
    assert startup["median_ci_high"] == pytest.approx(0.3)
    assert startup["ratio_to_native"] is None
    assert native["runtime"] == "native"
    assert native["median_ci_low"] is None
    assert docker["native_median"] == 2.0
    assert docker["ratio_to_native"] == 1.5
    assert docker["worse_when"] == "higher"


def test_write_summary_deterministic(tmp_path: Path) -> None:
    values = [0.12, 0.11, 0.15, 0.13, 0.5, 0.12, 0.14]
    run_dir = write_samples(tmp_path, [sample(value) for value in values])

    first = write_summary(run_dir).read_bytes()
    second = write_summary(run_dir).read_bytes()

    assert first == second


def test_write_summary_without_run_json(tmp_path: Path) -> None:
    run_dir = write_samples(tmp_path, [sample(0.1)], meta=False)

    document = json.loads(write_summary(run_dir).read_text())

    assert document["environment"] is None
    assert document["run_id"] is None
    assert document["summaries"][0]["n"] == 1


def test_write_summary_invalid_run_json(tmp_path: Path) -> None:
    run_dir = write_samples(tmp_path, [sample(0.1)], meta=False)
    (run_dir / RUN_FILE).write_text("[1]", encoding="utf-8")

    with pytest.raises(HarnessError, match=r"run\.json: invalid run metadata"):
        write_summary(run_dir)


def test_write_summary_missing_samples(tmp_path: Path) -> None:
    with pytest.raises(HarnessError, match=r"samples\.jsonl: not found"):
        write_summary(tmp_path)
    assert not (tmp_path / BENCHMARKS_FILE).exists()


def test_write_summary_malformed_line(tmp_path: Path) -> None:
    run_dir = write_samples(tmp_path, [sample(0.1), "not json", sample(0.2)])

    with pytest.raises(HarnessError, match=r"samples\.jsonl:2: invalid JSON"):
        write_summary(run_dir)
    assert not (run_dir / BENCHMARKS_FILE).exists()


def test_write_summary_empty_samples(tmp_path: Path) -> None:
    run_dir = write_samples(tmp_path, [])

    document = json.loads(write_summary(run_dir).read_text())

    assert document["summaries"] == []
    assert document["samples"] == 0
