"""Statistics of the raw benchmark samples of a run: ``samples.jsonl`` to ``benchmarks.json``.

``samples.jsonl`` in a run directory contains one JSON object a line, one raw
sample a line, for example::

    {"benchmark": "startup", "runtime": "docker", "metric": "create", "unit": "s",
     "value": 0.1234, "round": 3, "warmup": false, "params": {"network": "none"}}

Every key but ``params`` is required, and ``params`` defaults to ``{}``. Other
keys are kept in ``Sample.extra`` and play no part in the statistics. The
runtime ``native`` is the same work run on the host without a container, and it
is the denominator of ``ratio_to_native``. Its group has the same benchmark,
metric and params, except the params that ``NATIVE_PARAMS`` sets for a
benchmark whose native figure has a parameter value of its own. Warm-up
samples are counted but left out of every statistic.

``write_summary`` writes ``benchmarks.json``, a JSON object. Its ``run_id``
and ``environment`` are copied from run.json, and are null without it.
``samples`` and ``warmup_samples`` are counts, and ``confidence_level`` and
``bootstrap`` describe how the intervals were computed. ``summaries`` is a
list of ``BenchmarkSummary.to_dict`` objects, one per (benchmark, runtime,
metric, params) group in the order of first appearance in ``samples.jsonl``.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import bootstrap  # type: ignore[import-untyped]

from isobench.bench.samples import NATIVE, SAMPLES_FILE, Sample
from isobench.errors import HarnessError
from isobench.results import RUN_FILE

BENCHMARKS_FILE = "benchmarks.json"

#: The runtime of the samples that ran on the host without a container.
NATIVE_RUNTIME = NATIVE
BENCHMARKS = ("startup", "concurrency", "io", "cpu", "memory", "network")
#: Startup phases of a container, then the two phases that only ``native`` has:
#: fork and exec of /bin/true, and /bin/true in an unshare of the same namespaces.
STARTUP_PHASES = ("create", "start_to_output", "exit", "remove", "run_rm", "true", "unshare")
IO_TARGETS = ("rootfs", "bind", "tmpfs")
#: The benchmarks whose summaries get a ``ratio_to_native``.
RATIO_BENCHMARKS = ("io", "cpu", "network")
#: Params of the native group that a benchmark's summaries are compared with, where they
#: differ from the summary's own: every network path is compared with native loopback.
NATIVE_PARAMS: dict[str, dict[str, str]] = {"network": {"path": "loopback"}}

#: The direction in which values are worse, by unit: higher for durations and
#: memory, lower for rates.
WORSE_WHEN = {
    "s": "higher",
    "KiB": "higher",
    "MiB/s": "lower",
    "IOPS": "lower",
    "containers/s": "lower",
    "us": "higher",
    "Gbit/s": "lower",
}

CONFIDENCE_LEVEL = 0.95
#: The minimum number of samples for a confidence interval. Resampling one or
#: two values gives an interval that only repeats them.
MIN_CI_SAMPLES = 3
BOOTSTRAP_RESAMPLES = 9999
# The percentile method, because BCa returns NaN when every sample is equal (scipy
# 1.17), as memory sizes can be. The interval of the median stays within [min, max].
BOOTSTRAP_METHOD = "percentile"
#: Every interval starts from a new generator with this seed, so one sample set
#: always gives the same interval, whatever other groups a run contains.
BOOTSTRAP_SEED = 20_250_101
# The resamples are drawn in batches of at most this many values, about 8 MB of float64.
BOOTSTRAP_BATCH_VALUES = 1_000_000

#: The statistics of ``Summary``, in the order of ``Summary.to_dict``.
STAT_FIELDS = (
    "n",
    "median",
    "p95",
    "p99",
    "mean",
    "stdev",
    "min",
    "max",
    "median_ci_low",
    "median_ci_high",
)

ParamValue = str | int | float | bool

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Summary:
    """Descriptive statistics of one list of values.

    The percentiles use numpy's default linear interpolation, so with fewer
    than 100 values p99 lies between the two largest values.
    """

    n: int
    median: float
    p95: float
    p99: float
    mean: float
    #: The sample standard deviation (ddof=1). None for a single value.
    stdev: float | None
    min: float
    max: float
    #: The bootstrap confidence interval of the median at ``CONFIDENCE_LEVEL``.
    #: None for fewer than ``MIN_CI_SAMPLES`` values.
    median_ci_low: float | None
    median_ci_high: float | None

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in STAT_FIELDS}


@dataclass(frozen=True)
class BenchmarkSummary:
    """The summary of the samples of one (benchmark, runtime, metric, params) group."""

    benchmark: str
    runtime: str
    metric: str
    unit: str
    params: dict[str, ParamValue]
    warmup_count: int
    #: None when the group has only warm-up samples.
    stats: Summary | None
    #: The median of the ``native`` group with the same benchmark, metric and params
    #: (with ``NATIVE_PARAMS`` applied). Set only for ``RATIO_BENCHMARKS`` and only when
    #: that group has a median.
    native_median: float | None = None
    #: ``stats.median / native_median``. None where ``native_median`` is None or 0.
    ratio_to_native: float | None = None

    @property
    def worse_when(self) -> str | None:
        """'higher' or 'lower': the direction in which values and ratios are worse."""
        return WORSE_WHEN.get(self.unit)

    def to_dict(self) -> dict[str, Any]:
        """Return one flat JSON object. Without ``stats``, n is 0 and the statistics are null."""
        stats = self.stats.to_dict() if self.stats else dict.fromkeys(STAT_FIELDS)
        stats["n"] = self.stats.n if self.stats else 0
        return {
            "benchmark": self.benchmark,
            "runtime": self.runtime,
            "metric": self.metric,
            "unit": self.unit,
            "params": dict(self.params),
            "warmup_count": self.warmup_count,
            **stats,
            "native_median": self.native_median,
            "ratio_to_native": self.ratio_to_native,
            "worse_when": self.worse_when,
        }


def summarize(values: Iterable[float]) -> Summary:
    """Compute the statistics of ``values``.

    Raises ValueError when ``values`` is empty or contains a value that is not finite.
    """
    data = np.asarray(list(values), dtype=np.float64)
    if data.size == 0:
        raise ValueError("cannot summarize an empty list of values")
    if not np.all(np.isfinite(data)):
        raise ValueError("cannot summarize values that are not finite (NaN or infinity)")

    ci_low, ci_high = median_confidence_interval(data)
    return Summary(
        n=int(data.size),
        median=float(np.median(data)),
        p95=float(np.percentile(data, 95)),
        p99=float(np.percentile(data, 99)),
        mean=float(np.mean(data)),
        stdev=float(np.std(data, ddof=1)) if data.size > 1 else None,
        min=float(np.min(data)),
        max=float(np.max(data)),
        median_ci_low=ci_low,
        median_ci_high=ci_high,
    )


def median_confidence_interval(
    data: np.ndarray[Any, np.dtype[np.float64]],
) -> tuple[float | None, float | None]:
    """Compute the bootstrap confidence interval of the median, or (None, None) for few values."""
    if data.size < MIN_CI_SAMPLES:
        return None, None
    result = bootstrap(
        (data,),
        np.median,
        n_resamples=BOOTSTRAP_RESAMPLES,
        batch=max(1, BOOTSTRAP_BATCH_VALUES // data.size),
        vectorized=True,
        confidence_level=CONFIDENCE_LEVEL,
        method=BOOTSTRAP_METHOD,
        rng=np.random.default_rng(BOOTSTRAP_SEED),
    )
    interval = result.confidence_interval
    return float(interval.low), float(interval.high)


# samples.jsonl

_REQUIRED_TEXT = ("benchmark", "runtime", "metric", "unit")
_KNOWN_KEYS = frozenset((*_REQUIRED_TEXT, "value", "round", "warmup", "params"))


def parse_sample(record: Any) -> Sample:
    """Validate one decoded line of ``samples.jsonl`` and return it as a Sample.

    Raises ValueError that names the first missing or invalid key.
    """
    if not isinstance(record, dict):
        raise ValueError(f"expected a JSON object, found {_json_type(record)}")
    for key in (*_REQUIRED_TEXT, "value", "round", "warmup"):
        if key not in record:
            raise ValueError(f"the key '{key}' is missing")

    for key in _REQUIRED_TEXT:
        if not isinstance(record[key], str) or not record[key]:
            raise ValueError(f"'{key}' must be a non-empty string, found {record[key]!r}")
    value = record["value"]
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"'value' must be a finite number, found {value!r}")
    if isinstance(record["round"], bool) or not isinstance(record["round"], int):
        raise ValueError(f"'round' must be an integer, found {record['round']!r}")
    if not isinstance(record["warmup"], bool):
        raise ValueError(f"'warmup' must be true or false, found {record['warmup']!r}")

    return Sample(
        benchmark=record["benchmark"],
        runtime=record["runtime"],
        metric=record["metric"],
        unit=record["unit"],
        value=float(value),
        round=record["round"],
        warmup=record["warmup"],
        params=_parse_params(record.get("params", {})),
        extra={key: item for key, item in record.items() if key not in _KNOWN_KEYS},
    )


def _parse_params(params: Any) -> dict[str, ParamValue]:
    if not isinstance(params, dict):
        raise ValueError(f"'params' must be a JSON object, found {_json_type(params)}")
    for key, value in params.items():
        if not isinstance(value, str | int | float | bool):
            raise ValueError(
                f"'params.{key}' must be a string, number or boolean, found {_json_type(value)}"
            )
    return dict(params)


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}
    if value is None:
        return "null"
    if isinstance(value, int | float) and not isinstance(value, bool):
        return "a number"
    return names.get(type(value), type(value).__name__)


def read_samples(path: Path) -> list[Sample]:
    """Read and validate every sample of a ``samples.jsonl`` file.

    Raises HarnessError naming the file and line of the first invalid line. A
    last line without a newline that is not valid JSON is a write cut off by an
    interrupted run, so it is logged and left out.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise HarnessError(f"{path}: failed to read the benchmark samples: {exc}") from exc

    lines = text.split("\n")
    samples = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            if number == len(lines):
                log.warning("%s:%d: left out the cut-off last line: %s", path, number, exc)
                continue
            raise HarnessError(
                f"{path}:{number}: invalid JSON ({exc.msg} at column {exc.colno}). "
                "Fix or remove the line."
            ) from exc
        try:
            samples.append(parse_sample(record))
        except ValueError as exc:
            raise HarnessError(f"{path}:{number}: invalid sample: {exc}") from exc
    return samples


# Summaries

_GroupKey = tuple[str, str, str, str]


@dataclass
class _Group:
    first: Sample
    values: list[float] = field(default_factory=list)
    warmup_count: int = 0


def summarize_samples(records: Iterable[Sample | Mapping[str, Any]]) -> list[BenchmarkSummary]:
    """Group samples by (benchmark, runtime, metric, params) and summarize each group.

    Records that are not ``Sample`` objects are validated with ``parse_sample``.
    The summaries are in the order in which each group first appears. Raises
    HarnessError for an invalid record, or for a group whose samples differ in unit.
    """
    groups: dict[_GroupKey, _Group] = {}
    for index, record in enumerate(records):
        sample = record if isinstance(record, Sample) else _parse_record(record, index)
        key = (sample.benchmark, sample.runtime, sample.metric, _params_key(sample.params))
        group = groups.setdefault(key, _Group(first=sample))
        if sample.unit != group.first.unit:
            raise HarnessError(
                f"samples of {_group_name(sample)} have two units: "
                f"'{group.first.unit}' and '{sample.unit}'. One group needs one unit."
            )
        if sample.warmup:
            group.warmup_count += 1
        else:
            group.values.append(sample.value)

    stats = {
        key: summarize(group.values) if group.values else None for key, group in groups.items()
    }
    summaries = []
    for key, group in groups.items():
        native_median, ratio = _native_ratio(key, stats)
        summaries.append(
            BenchmarkSummary(
                benchmark=group.first.benchmark,
                runtime=group.first.runtime,
                metric=group.first.metric,
                unit=group.first.unit,
                params=dict(group.first.params),
                warmup_count=group.warmup_count,
                stats=stats[key],
                native_median=native_median,
                ratio_to_native=ratio,
            )
        )
    return summaries


def _parse_record(record: Mapping[str, Any], index: int) -> Sample:
    try:
        return parse_sample(dict(record) if isinstance(record, Mapping) else record)
    except ValueError as exc:
        raise HarnessError(f"invalid sample at index {index}: {exc}") from exc


def _params_key(params: Mapping[str, ParamValue]) -> str:
    return json.dumps(params, sort_keys=True)


def _group_name(sample: Sample) -> str:
    return (
        f"benchmark '{sample.benchmark}', runtime '{sample.runtime}', metric "
        f"'{sample.metric}', params {_params_key(sample.params)}"
    )


def _native_ratio(
    key: _GroupKey, stats: Mapping[_GroupKey, Summary | None]
) -> tuple[float | None, float | None]:
    """Return the native median and the ratio to it of the group ``key``, where they apply."""
    benchmark, runtime, metric, params = key
    if benchmark not in RATIO_BENCHMARKS or runtime == NATIVE_RUNTIME:
        return None, None
    if benchmark in NATIVE_PARAMS:
        params = _params_key({**json.loads(params), **NATIVE_PARAMS[benchmark]})
    native = stats.get((benchmark, NATIVE_RUNTIME, metric, params))
    if native is None:
        return None, None
    own = stats[key]
    if own is None or native.median == 0:
        return native.median, None
    return native.median, own.median / native.median


# benchmarks.json


def write_summary(run_dir: Path) -> Path:
    """Summarize ``samples.jsonl`` of a run directory into ``benchmarks.json`` and return its path.

    Raises HarnessError when samples.jsonl is missing, unreadable or invalid, or
    when run.json exists but is not a JSON object.
    """
    samples_path = run_dir / SAMPLES_FILE
    if not samples_path.is_file():
        raise HarnessError(f"{samples_path}: not found, so there are no benchmark samples")
    samples = read_samples(samples_path)
    meta = _read_meta(run_dir / RUN_FILE)

    document = {
        "run_id": meta.get("run_id"),
        "environment": meta.get("environment"),
        "samples": sum(1 for sample in samples if not sample.warmup),
        "warmup_samples": sum(1 for sample in samples if sample.warmup),
        "confidence_level": CONFIDENCE_LEVEL,
        "bootstrap": {
            "statistic": "median",
            "method": BOOTSTRAP_METHOD,
            "resamples": BOOTSTRAP_RESAMPLES,
            "seed": BOOTSTRAP_SEED,
            "min_samples": MIN_CI_SAMPLES,
        },
        "summaries": [summary.to_dict() for summary in summarize_samples(samples)],
    }

    path = run_dir / BENCHMARKS_FILE
    temporary = run_dir / (BENCHMARKS_FILE + ".tmp")
    temporary.write_text(json.dumps(document, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    temporary.replace(path)
    return path


def _read_meta(path: Path) -> dict[str, Any]:
    """Read run.json, or return {} when it is missing."""
    if not path.exists():
        return {}
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise HarnessError(f"{path}: failed to read the run metadata: {exc}") from exc
    if not isinstance(meta, dict):
        raise HarnessError(f"{path}: invalid run metadata: expected a JSON object")
    return meta
