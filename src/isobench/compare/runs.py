"""Compare two run directories: the environment, the conformance outcomes and the benchmarks.

A check is identified by (suite, check, runtime, control). Against the
baseline it is newly failing, newly passing, changed, vanished or new. A
check that vanished is always listed and fails the gate, because a check
that no longer runs can hide a broken guarantee.

A benchmark metric is identified by (benchmark, runtime, metric, params).
The two runs' samples are independent, so the comparison is unpaired: the
Mann-Whitney U test and the Hodges-Lehmann shift (isobench.compare.shift).
Because a benchmark run has many metrics, the p-values are adjusted with
Holm's step-down method before the verdicts, so that the chance of any
false alarm in the whole comparison stays near ``alpha``.

Two runs on different machines, or hours apart, compare machine and time as
much as the runtime: such a comparison is marked weak.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from isobench.bench.samples import SAMPLES_FILE
from isobench.bench.stats import WORSE_WHEN, read_samples
from isobench.compare.shift import (
    DEFAULT_ALPHA,
    DEFAULT_MIN_EFFECT,
    MinEffect,
    Shift,
    compare,
    verdict_for,
)
from isobench.errors import UsageError
from isobench.results import CONTROL_RUNTIME, RUN_FILE, read_run

#: Hours between the starts of two runs beyond which the baseline is weak evidence.
WEAK_AFTER_HOURS = 1.0
#: Environment keys printed when they differ; load is compared apart.
ENVIRONMENT_KEYS = (
    "machine_id",
    "hostname",
    "kernel",
    "os",
    "cgroup_mode",
    "cpu_count",
    "python",
    "isobench_version",
)

CHANGE_KINDS = ("newly failing", "newly erroring", "vanished", "newly passing", "changed", "new")
#: The kinds of change that fail the gate.
GATE_KINDS = ("newly failing", "newly erroring", "vanished")


@dataclass(frozen=True)
class CheckChange:
    """One check whose outcome differs between the two runs."""

    kind: str
    suite: str
    check: str
    runtime: str
    control: str
    base: str | None
    new: str | None
    file: str
    line: int
    message: str

    @property
    def name(self) -> str:
        control = f" [{self.control}]" if self.control else ""
        return f"{self.suite}/{self.check} on {self.runtime}{control}"


@dataclass(frozen=True)
class MetricComparison:
    """One benchmark metric of both runs and its comparison."""

    benchmark: str
    runtime: str
    metric: str
    params: dict[str, Any]
    unit: str
    shift: Shift
    #: The p-value after Holm's adjustment, which the verdict used.
    p_adjusted: float | None

    @property
    def name(self) -> str:
        params = ", ".join(f"{k}={v}" for k, v in sorted(self.params.items()))
        return f"{self.benchmark}/{self.metric} on {self.runtime}" + (
            f" ({params})" if params else ""
        )


@dataclass
class Comparison:
    """Everything ``isobench compare`` reports."""

    base: Path
    new: Path
    environment: list[tuple[str, Any, Any]] = field(default_factory=list)
    weak: list[str] = field(default_factory=list)
    changes: list[CheckChange] = field(default_factory=list)
    same_checks: int = 0
    metrics: list[MetricComparison] = field(default_factory=list)
    #: Metrics of the baseline that the new run lacks, by name.
    vanished_metrics: list[str] = field(default_factory=list)
    new_metrics: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def gate_failures(self) -> list[str]:
        """One line per reason to exit non-zero."""
        lines = [
            f"{c.kind}: {c.name} ({c.base} -> {c.new})"
            for c in self.changes
            if c.kind in GATE_KINDS
        ]
        lines += [
            f"regressed: {m.name} by {_format_value(m.shift.shift, m.unit)}"
            for m in self.metrics
            if m.shift.verdict == "regressed"
        ]
        lines += [f"vanished benchmark metric: {name}" for name in self.vanished_metrics]
        return lines


def compare_runs(
    base: Path,
    new: Path,
    alpha: float = DEFAULT_ALPHA,
    min_effect: MinEffect = DEFAULT_MIN_EFFECT,
    holm: bool = True,
) -> Comparison:
    """Compare the run directory ``new`` against the baseline ``base``."""
    for path in (base, new):
        if not (path / RUN_FILE).is_file():
            raise UsageError(
                f"{path} is not a run directory (no {RUN_FILE}); pass the --out directory "
                "of an 'isobench run'"
            )
    base_meta, base_records = read_run(base)
    new_meta, new_records = read_run(new)
    comparison = Comparison(base=base, new=new)
    comparison.environment, comparison.weak = compare_environments(base_meta, new_meta)
    comparison.changes, comparison.same_checks = compare_outcomes(base_records, new_records)
    _compare_benchmarks(comparison, base, new, alpha, min_effect, holm)
    for path, meta in ((base, base_meta), (new, new_meta)):
        status = meta.get("status")
        if status != "complete":
            comparison.notes.append(f"{path} has status '{status}': its results may be partial")
    return comparison


# Environment


def compare_environments(
    base: dict[str, Any], new: dict[str, Any]
) -> tuple[list[tuple[str, Any, Any]], list[str]]:
    """Return the differing environment values and the reasons the baseline is weak evidence."""
    base_env = base.get("environment") or {}
    new_env = new.get("environment") or {}
    differences: list[tuple[str, Any, Any]] = []
    for key in ENVIRONMENT_KEYS:
        if base_env.get(key) != new_env.get(key):
            differences.append((key, base_env.get(key), new_env.get(key)))
    base_load = (base_env.get("load_avg") or [None])[0]
    new_load = (new_env.get("load_avg") or [None])[0]
    if base_load != new_load:
        differences.append(("load_avg (1 min, at start)", base_load, new_load))
    differences += _runtime_differences(base.get("runtimes") or {}, new.get("runtimes") or {})

    weak = []
    if _other_machine(base_env, new_env):
        weak.append(
            "the runs are from different machines "
            f"({base_env.get('hostname')} and {new_env.get('hostname')}): a shift may be "
            "the machine's, not the runtime's"
        )
    hours = _hours_apart(base.get("started"), new.get("started"))
    if hours is None:
        weak.append("a start time is missing, so the runs may be far apart in time")
    elif hours > WEAK_AFTER_HOURS:
        weak.append(
            f"the runs started {hours:.1f} hours apart: the host's load and state may have "
            "changed between them"
        )
    for key in ("kernel", "cgroup_mode", "cpu_count"):
        if base_env.get(key) != new_env.get(key):
            weak.append(f"{key} differs ({base_env.get(key)} and {new_env.get(key)})")
    return differences, weak


def _runtime_differences(base: dict[str, Any], new: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    differences = []
    for name in dict.fromkeys([*base, *new]):
        old_info, new_info = base.get(name) or {}, new.get(name) or {}
        for key in ("version", "available"):
            if old_info.get(key) != new_info.get(key):
                differences.append((f"runtime {name} {key}", old_info.get(key), new_info.get(key)))
        old_binary = (old_info.get("details") or {}).get("binary")
        new_binary = (new_info.get("details") or {}).get("binary")
        if old_binary != new_binary:
            differences.append((f"runtime {name} binary", old_binary, new_binary))
    return differences


def _other_machine(base: dict[str, Any], new: dict[str, Any]) -> bool:
    if base.get("machine_id") and new.get("machine_id"):
        return bool(base["machine_id"] != new["machine_id"])
    return bool(base.get("hostname") != new.get("hostname"))


def _hours_apart(base: str | None, new: str | None) -> float | None:
    try:
        began = datetime.fromisoformat(str(base))
        ended = datetime.fromisoformat(str(new))
    except ValueError:
        return None
    return abs((ended - began).total_seconds()) / 3600


# Conformance


def _key(record: dict[str, Any]) -> tuple[str, str, str, str]:
    return (
        str(record.get("suite", "")),
        str(record.get("check", "")),
        str(record.get("runtime", "")),
        str(record.get("control", "")),
    )


def _broken(record: dict[str, Any]) -> bool:
    """Tell whether the record breaks a guarantee: a fail or xpass, or a control that passed.

    Records written before ``expected_to_fail`` existed count the host row as the control.
    """
    control = record.get("expected_to_fail")
    if control is None:
        control = record.get("runtime") == CONTROL_RUNTIME
    if control:
        return record.get("outcome") == "pass"
    return record.get("outcome") in ("fail", "xpass")


def compare_outcomes(
    base: list[dict[str, Any]], new: list[dict[str, Any]]
) -> tuple[list[CheckChange], int]:
    """Return the checks whose outcome differs, and the count of those that are the same."""
    base_by_key = {_key(r): r for r in base}
    new_by_key = {_key(r): r for r in new}
    changes = []
    same = 0
    for key in dict.fromkeys([*base_by_key, *new_by_key]):
        old, now = base_by_key.get(key), new_by_key.get(key)
        kind = _change_kind(old, now)
        if kind is None:
            same += 1
            continue
        source = now or old
        assert source is not None
        changes.append(
            CheckChange(
                kind=kind,
                suite=key[0],
                check=key[1],
                runtime=key[2],
                control=key[3],
                base=old.get("outcome") if old else None,
                new=now.get("outcome") if now else None,
                file=str(source.get("file", "")),
                line=int(source.get("line") or 0),
                message=(str((now or {}).get("message") or "").strip().splitlines() or [""])[0],
            )
        )
    changes.sort(key=lambda c: (CHANGE_KINDS.index(c.kind), c.suite, c.check, c.runtime))
    return changes, same


def _change_kind(old: dict[str, Any] | None, now: dict[str, Any] | None) -> str | None:
    if old is None and now is None:
        return None
    if now is None:
        return "vanished"
    if old is None:
        return "newly failing" if _broken(now) else "new"
    if old.get("outcome") == now.get("outcome"):
        return None
    if _broken(now):
        return "newly failing"
    if now.get("outcome") == "error":
        return "newly erroring"
    if _broken(old):
        return "newly passing"
    return "changed"


# Benchmarks


def _compare_benchmarks(
    comparison: Comparison,
    base: Path,
    new: Path,
    alpha: float,
    min_effect: MinEffect,
    holm: bool,
) -> None:
    has_base, has_new = (base / SAMPLES_FILE).exists(), (new / SAMPLES_FILE).exists()
    if not has_base and not has_new:
        return
    if has_base != has_new:
        which = new if has_base else base
        comparison.notes.append(f"{which} has no {SAMPLES_FILE}: its benchmarks cannot be compared")
    base_groups = _sample_groups(base) if has_base else {}
    new_groups = _sample_groups(new) if has_new else {}
    comparison.vanished_metrics = [
        _group_label(key) for key in base_groups if key not in new_groups and has_new
    ]
    comparison.new_metrics = [_group_label(key) for key in new_groups if key not in base_groups]

    metrics = []
    for key, (unit, old_values) in base_groups.items():
        if key not in new_groups:
            continue
        worse_when = WORSE_WHEN.get(unit)
        if worse_when is None:
            comparison.notes.append(
                f"{_group_label(key)}: unit '{unit}' has no known worse direction; not compared"
            )
            continue
        shift = compare(
            old_values, new_groups[key][1], worse_when, alpha=alpha, min_effect=min_effect
        )
        benchmark, runtime, metric, params = key
        metrics.append(
            MetricComparison(benchmark, runtime, metric, json.loads(params), unit, shift, None)
        )
    comparison.metrics = (
        _holm(metrics, alpha) if holm else [replace(m, p_adjusted=m.shift.p_value) for m in metrics]
    )


_GroupKey = tuple[str, str, str, str]


def _sample_groups(run_dir: Path) -> dict[_GroupKey, tuple[str, list[float]]]:
    groups: dict[_GroupKey, tuple[str, list[float]]] = {}
    for sample in read_samples(run_dir / SAMPLES_FILE):
        if sample.warmup:
            continue
        key = (
            sample.benchmark,
            sample.runtime,
            sample.metric,
            json.dumps(sample.params, sort_keys=True),
        )
        groups.setdefault(key, (sample.unit, []))[1].append(sample.value)
    return groups


def _group_label(key: _GroupKey) -> str:
    benchmark, runtime, metric, params = key
    values = json.loads(params)
    text = ", ".join(f"{k}={v}" for k, v in sorted(values.items()))
    return f"{benchmark}/{metric} on {runtime}" + (f" ({text})" if text else "")


def holm_adjust(p_values: list[float | None]) -> list[float | None]:
    """Return Holm's step-down adjusted p-values; None stays None and is not counted."""
    indexed = sorted((p, i) for i, p in enumerate(p_values) if p is not None)
    count = len(indexed)
    adjusted: list[float | None] = [None] * len(p_values)
    running = 0.0
    for rank, (p_value, index) in enumerate(indexed):
        running = max(running, min(1.0, (count - rank) * p_value))
        adjusted[index] = running
    return adjusted


def _holm(metrics: list[MetricComparison], alpha: float) -> list[MetricComparison]:
    adjusted = holm_adjust([m.shift.p_value for m in metrics])
    result = []
    for metric, p_adjusted in zip(metrics, adjusted, strict=True):
        shift = metric.shift
        if p_adjusted is not None and shift.ci_low is not None and shift.ci_high is not None:
            verdict, reason = verdict_for(
                shift.shift,
                shift.ci_low,
                shift.ci_high,
                p_adjusted,
                alpha,
                shift.min_effect,
                shift.worse_when,
            )
            if p_adjusted != shift.p_value:
                reason += f" (Holm-adjusted over {len(metrics)} metrics)"
            shift = replace(shift, verdict=verdict, reason=reason)
        result.append(replace(metric, shift=shift, p_adjusted=p_adjusted))
    return result


# Output


def _format_value(value: float | None, unit: str) -> str:
    if value is None or math.isnan(value):
        return "-"
    if unit == "s":
        return f"{value * 1000:.2f} ms"
    return f"{value:.4g} {unit}"


def format_text(comparison: Comparison) -> str:
    """Return the comparison for a terminal: environment first, then checks, then benchmarks."""
    lines = [f"base: {comparison.base}", f"new:  {comparison.new}", "", "Environment"]
    if comparison.environment:
        for key, old, now in comparison.environment:
            lines.append(f"  {key}: {old} -> {now}")
    else:
        lines.append("  the same")
    for reason in comparison.weak:
        lines.append(f"  WEAK BASELINE: {reason}")
    for note in comparison.notes:
        lines.append(f"  note: {note}")

    lines += ["", "Checks"]
    counts = Counter(c.kind for c in comparison.changes)
    lines.append(
        f"  {comparison.same_checks} the same; "
        + ", ".join(f"{counts[k]} {k}" for k in CHANGE_KINDS if counts[k])
        if comparison.changes
        else f"  {comparison.same_checks} the same, no change"
    )
    for change in comparison.changes:
        where = f"{change.file}:{change.line}" if change.file else ""
        lines.append(
            f"  {change.kind.upper()}: {change.name}: {change.base} -> {change.new} {where}"
        )
        if change.message and change.kind in GATE_KINDS:
            lines.append(f"    {change.message}")

    if comparison.metrics or comparison.vanished_metrics or comparison.new_metrics:
        lines += ["", "Benchmarks"]
        verdicts = Counter(m.shift.verdict for m in comparison.metrics)
        lines.append(
            "  "
            + ", ".join(
                f"{verdicts[v]} {v}"
                for v in ("regressed", "improved", "inconclusive", "unchanged")
                if verdicts[v]
            )
        )
        for metric in comparison.metrics:
            shift = metric.shift
            if shift.verdict == "unchanged":
                continue
            unit = metric.unit
            interval = (
                f" [{_format_value(shift.ci_low, unit)}, {_format_value(shift.ci_high, unit)}]"
                if shift.ci_low is not None and shift.ci_high is not None
                else ""
            )
            lines.append(
                f"  {shift.verdict.upper()}: {metric.name}: "
                f"{_format_value(shift.base_median, unit)} -> "
                f"{_format_value(shift.new_median, unit)}, shift "
                f"{_format_value(shift.shift, unit)}{interval}, minimum effect "
                f"{_format_value(shift.min_effect, unit)}: {shift.reason}"
            )
        for name in comparison.vanished_metrics:
            lines.append(f"  VANISHED: {name}")
        for name in comparison.new_metrics:
            lines.append(f"  new: {name}")
    return "\n".join(lines)


def format_markdown(comparison: Comparison) -> str:
    """Return the comparison as Markdown, for a CI job summary."""
    lines = ["## isobench compare", "", f"Base `{comparison.base}`, new `{comparison.new}`.", ""]
    for reason in comparison.weak:
        lines.append(f"> **Weak baseline:** {reason}.")
    if comparison.weak:
        lines.append("")
    if comparison.environment:
        lines += ["| environment | base | new |", "|---|---|---|"]
        lines += [f"| {key} | {old} | {now} |" for key, old, now in comparison.environment]
        lines.append("")
    gate = comparison.gate_failures
    lines.append(
        f"**{len(gate)} problem(s)** fail the gate." if gate else "Nothing fails the gate."
    )
    lines.append("")
    if comparison.changes:
        lines += ["| change | check | base | new | where |", "|---|---|---|---|---|"]
        for change in comparison.changes:
            lines.append(
                f"| {change.kind} | {change.name} | {change.base or '-'} | {change.new or '-'} | "
                f"{change.file}:{change.line} |"
            )
        lines.append("")
    if comparison.metrics:
        lines += [
            "| metric | base median | new median | shift | interval | p (adjusted) | verdict |",
            "|---|---|---|---|---|---|---|",
        ]
        for metric in comparison.metrics:
            shift = metric.shift
            p_value = f"{metric.p_adjusted:.2g}" if metric.p_adjusted is not None else "-"
            lines.append(
                f"| {metric.name} | {_format_value(shift.base_median, metric.unit)} | "
                f"{_format_value(shift.new_median, metric.unit)} | "
                f"{_format_value(shift.shift, metric.unit)} | "
                f"{_format_value(shift.ci_low, metric.unit)} to "
                f"{_format_value(shift.ci_high, metric.unit)} | {p_value} | {shift.verdict} |"
            )
        lines.append("")
    for name in comparison.vanished_metrics:
        lines.append(f"- vanished benchmark metric: {name}")
    for note in comparison.notes:
        lines.append(f"- note: {note}")
    return "\n".join(lines) + "\n"


def to_dict(comparison: Comparison) -> dict[str, Any]:
    """Return the comparison as a JSON-ready object."""
    return {
        "base": str(comparison.base),
        "new": str(comparison.new),
        "environment": [
            {"key": key, "base": old, "new": now} for key, old, now in comparison.environment
        ],
        "weak_baseline": comparison.weak,
        "same_checks": comparison.same_checks,
        "changes": [
            {
                "kind": c.kind,
                "suite": c.suite,
                "check": c.check,
                "runtime": c.runtime,
                "control": c.control,
                "base": c.base,
                "new": c.new,
                "file": c.file,
                "line": c.line,
                "message": c.message,
            }
            for c in comparison.changes
        ],
        "metrics": [
            {
                "benchmark": m.benchmark,
                "runtime": m.runtime,
                "metric": m.metric,
                "params": m.params,
                "unit": m.unit,
                "p_adjusted": m.p_adjusted,
                **_finite(m.shift.to_dict()),
            }
            for m in comparison.metrics
        ],
        "vanished_metrics": comparison.vanished_metrics,
        "new_metrics": comparison.new_metrics,
        "notes": comparison.notes,
        "gate_failures": comparison.gate_failures,
    }


def _finite(record: dict[str, Any]) -> dict[str, Any]:
    return {
        key: None if isinstance(value, float) and math.isnan(value) else value
        for key, value in record.items()
    }


def write_json(comparison: Comparison, path: Path) -> None:
    path.write_text(json.dumps(to_dict(comparison), indent=2) + "\n", encoding="utf-8")
