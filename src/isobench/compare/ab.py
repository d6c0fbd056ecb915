"""Interleaved A/B sessions: two runtimes, or two builds of one, timed turn about.

A session starts containers on side A and side B in blocks of A B B A, so
that a drift of the host or the daemon (linear within a block) weighs on both
sides equally. Each block gives two pairs, (A, B) and (B, A), and the pair
differences B - A are what the paired statistics judge (see
isobench.compare.shift). Samples go to ``samples.jsonl`` as they are taken,
so an interrupted session keeps them.

A side is a runtime row (``runc``, ``docker``, ``docker+NAME``) or an OCI
runtime row with another binary, ``runc=/path/to/runc``: the way to time a
new build of a runtime against the installed one.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import signal
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from isobench import images, runtimes
from isobench.bench import startup
from isobench.bench.samples import Sample, SampleWriter
from isobench.bench.stats import WORSE_WHEN
from isobench.compare.shift import (
    DEFAULT_ALPHA,
    DEFAULT_MIN_EFFECT,
    MIN_SAMPLES,
    MinEffect,
    Shift,
    compare,
)
from isobench.errors import IsobenchError, UsageError
from isobench.journal import Journal
from isobench.model import Request
from isobench.results import RunDirectory
from isobench.runtimes.base import Adapter, Context
from isobench.runtimes.oci import OciAdapter

log = logging.getLogger(__name__)

AB_FILE = "ab.json"
BENCHMARK = "ab"
#: The metric of a whole run.
RUN_METRIC = "run_rm"
#: With phases: the sum of the four phases of startup, beside each phase.
TOTAL_METRIC = "total"
#: The order of the sides within a block: balanced against a linear drift.
BLOCK = ("A", "B", "B", "A")
#: The minimum number of samples a side that the statistics can judge.
MIN_PAIRS = MIN_SAMPLES


@dataclass
class Side:
    """One side of a session: its label (A or B), what the user named, and its adapter."""

    label: str
    spec: str
    adapter: Adapter
    binary: str | None = None

    def describe(self) -> dict[str, Any]:
        info = self.adapter.availability()
        return {
            "spec": self.spec,
            "runtime": self.adapter.name,
            "binary": self.binary,
            "available": info.available,
            "version": info.version,
            "reason": info.reason,
            "details": info.details,
            "family": self.adapter.family,
        }


@dataclass
class Plan:
    """The plan of a session: what it measures and for how long."""

    samples: int | None = None
    duration_s: float | None = None
    warmup: int = 2
    phases: bool = False
    network: str = "none"
    paired: bool = True
    alpha: float = DEFAULT_ALPHA
    min_effect: MinEffect = DEFAULT_MIN_EFFECT

    def done(self, pairs: int, elapsed_s: float) -> bool:
        if self.samples is not None and pairs >= self.samples:
            return True
        return self.duration_s is not None and elapsed_s >= self.duration_s


@dataclass
class Outcome:
    """The result of a session: per metric, the samples of each side and the comparison."""

    pairs: int = 0
    elapsed_s: float = 0.0
    status: str = "running"
    samples: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    shifts: dict[str, Shift] = field(default_factory=dict)

    @property
    def regressed(self) -> list[str]:
        return [metric for metric, shift in self.shifts.items() if shift.verdict == "regressed"]


def parse_side(label: str, spec: str) -> Side:
    """Return the side that ``spec`` names: a runtime row, or ``ROW=PATH`` for another binary."""
    name, equals, path = spec.partition("=")
    if not equals:
        return Side(label, spec, runtimes.get(spec))
    if not path:
        raise UsageError(f"side {label} '{spec}' names no binary after '='; give ROW=PATH")
    adapter = runtimes.get(name)
    if not isinstance(adapter, OciAdapter):
        raise UsageError(
            f"side {label} '{spec}': only an OCI runtime row (runc, runsc) takes another binary. "
            f"For an engine, register the build as a runtime of the engine (daemon.json for "
            f"docker) and name it as {name}+RUNTIME"
        )
    binary = Path(path)
    if not binary.is_file() or not os.access(binary, os.X_OK):
        raise UsageError(f"side {label} '{spec}': {path} is not an executable file")
    return Side(label, spec, OciAdapter(adapter.profile, binary=str(binary.resolve())), str(binary))


_DURATION = re.compile(r"([0-9]*\.?[0-9]+)\s*(ms|s|m|min|h)?")


def parse_duration(text: str) -> float:
    """Parse ``90``, ``90s``, ``2m`` or ``1.5h`` into seconds."""
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise UsageError(
            f"invalid duration {text!r}: give seconds (90, 90s), minutes (2m) or hours"
        )
    scale = {None: 1.0, "ms": 1e-3, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}[match.group(2)]
    seconds = float(match.group(1)) * scale
    if seconds <= 0:
        raise UsageError(f"invalid duration {text!r}: it must be more than 0")
    return seconds


def check_sides(sides: list[Side], request: Request) -> None:
    """Raise a usage error for a side that is not available or cannot run the request."""
    for side in sides:
        info = side.adapter.availability()
        if not info.available:
            raise UsageError(
                f"side {side.label} '{side.spec}' is not available: {info.reason}. "
                f"{info.hint}".strip()
            )
        reason = side.adapter.unsupported(request)
        if reason is not None:
            raise UsageError(f"side {side.label} '{side.spec}' cannot run the request: {reason}")
        if not startup.supports_phases(side.adapter):
            raise UsageError(
                f"side {side.label} '{side.spec}' has no container start to time "
                f"({side.adapter.family} runtime)"
            )


def _measure(side: Side, ctx: Context, request: Request, phases: bool) -> dict[str, float]:
    if phases:
        times = startup.measure_phases(side.adapter, ctx, request)
        times[TOTAL_METRIC] = sum(times.values())
        return times
    return {RUN_METRIC: startup.measure_run(side.adapter, ctx, request)}


@contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """Turn SIGTERM into KeyboardInterrupt for the session, so that both clean up alike."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"received signal {signum}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_session(
    sides: list[Side],
    plan: Plan,
    run_dir: RunDirectory,
    progress: Callable[[int, float], None] | None = None,
) -> Outcome:
    """Run one interleaved session, write its samples and ab.json, and return the outcome.

    Everything the session creates is written to a journal first and removed
    at the end, after an error or an interrupt too. An interrupt is raised
    again once ab.json contains what was measured.
    """
    request = Request(network=plan.network)  # type: ignore[arg-type]
    check_sides(sides, request)
    journal = Journal(run_dir.run_id, run_dir.path)
    ctx = Context(run_dir.run_id, journal)
    writer = SampleWriter(run_dir.path)
    outcome = Outcome()
    try:
        with _terminate_as_interrupt():
            _set_up(ctx, sides)
            _interleave(sides, plan, ctx, request, writer, outcome, progress)
        outcome.status = "complete"
    except KeyboardInterrupt:
        outcome.status = "interrupted"
        raise
    except IsobenchError:
        outcome.status = "failed"
        raise
    finally:
        # A second signal must not cut the clean-up short.
        previous = (
            signal.signal(signal.SIGINT, signal.SIG_IGN),
            signal.signal(signal.SIGTERM, signal.SIG_IGN),
        )
        try:
            run_dir.finish("interrupted" if outcome.status == "interrupted" else "cleaning")
            left = journal.remove_all()
            journal.close()
            if left:
                log.warning(
                    "could not remove: %s; run 'isobench clean'",
                    ", ".join(f"{e.kind} {e.name}" for e in left),
                )
            outcome.shifts = judge(outcome.samples, plan)
            write_outcome(run_dir.path, sides, plan, outcome)
            run_dir.finish(outcome.status)
        finally:
            signal.signal(signal.SIGINT, previous[0])
            signal.signal(signal.SIGTERM, previous[1])
    return outcome


def _set_up(ctx: Context, sides: list[Side]) -> None:
    ctx.image = images.build_probe_image()
    root = ctx.bundle_root
    ctx.journal.record("directory", str(root), ["rmdir", str(root)], absent=("No such file",))
    root.mkdir(mode=0o755, parents=True, exist_ok=True)
    for side in sides:
        side.adapter.prepare(ctx)


def _interleave(
    sides: list[Side],
    plan: Plan,
    ctx: Context,
    request: Request,
    writer: SampleWriter,
    outcome: Outcome,
    progress: Callable[[int, float], None] | None,
) -> None:
    """Warm both sides up, then measure blocks until the plan is done.

    The session's duration counts from the end of the warm-up, so the image
    build and the runtimes' preparation do not shorten the measured part.
    """
    by_label = {side.label: side for side in sides}
    # The warm-up alternates too, so that both sides start from the same state.
    for round_number in range(-plan.warmup, 0):
        for label in BLOCK[:2]:
            side = by_label[label]
            times = _measure(side, ctx, request, plan.phases)
            _write(writer, side, times, round_number, warmup=True, network=plan.network)

    measured = 0  # samples a side, so pairs complete at every second sample
    began = time.monotonic()
    while True:
        for label in BLOCK:
            side = by_label[label]
            times = _measure(side, ctx, request, plan.phases)
            _write(writer, side, times, measured // 2, warmup=False, network=plan.network)
            for metric, value in times.items():
                outcome.samples.setdefault(metric, {"A": [], "B": []})[label].append(value)
        measured += 2
        outcome.pairs = measured
        outcome.elapsed_s = time.monotonic() - began
        if progress is not None:
            progress(outcome.pairs, outcome.elapsed_s)
        if plan.done(outcome.pairs, outcome.elapsed_s):
            return


def _write(
    writer: SampleWriter,
    side: Side,
    times: dict[str, float],
    round_number: int,
    warmup: bool,
    network: str,
) -> None:
    for metric, value in times.items():
        writer.write(
            Sample(
                benchmark=BENCHMARK,
                runtime=side.spec,
                metric=metric,
                unit="s",
                value=value,
                round=round_number,
                warmup=warmup,
                params={"side": side.label, "network": network},
                extra={"time": time.time()},
            )
        )


def judge(samples: dict[str, dict[str, list[float]]], plan: Plan) -> dict[str, Shift]:
    """Compare side B with side A for every metric; a pair needs a sample of both sides."""
    shifts = {}
    for metric, by_side in samples.items():
        count = min(len(by_side["A"]), len(by_side["B"]))
        base, new = by_side["A"][:count], by_side["B"][:count]
        shifts[metric] = compare(
            base,
            new,
            WORSE_WHEN["s"],
            paired=plan.paired,
            alpha=plan.alpha,
            min_effect=plan.min_effect,
        )
    return shifts


def write_outcome(path: Path, sides: list[Side], plan: Plan, outcome: Outcome) -> Path:
    """Write ab.json: the sides, the plan, and each metric's comparison."""
    document = {
        "status": outcome.status,
        "pairs": outcome.pairs,
        "elapsed_s": round(outcome.elapsed_s, 3),
        "sides": {side.label: side.describe() for side in sides},
        "plan": {
            "samples": plan.samples,
            "duration_s": plan.duration_s,
            "warmup": plan.warmup,
            "phases": plan.phases,
            "network": plan.network,
            "paired": plan.paired,
            "alpha": plan.alpha,
            "min_effect": str(plan.min_effect),
            "block": list(BLOCK),
        },
        "metrics": {metric: _finite(shift.to_dict()) for metric, shift in outcome.shifts.items()},
    }
    target = path / AB_FILE
    target.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    return target


def _finite(record: dict[str, Any]) -> dict[str, Any]:
    """Replace NaN with None: JSON has no NaN."""
    return {
        key: None if isinstance(value, float) and math.isnan(value) else value
        for key, value in record.items()
    }


def format_table(outcome: Outcome, sides: list[Side]) -> str:
    """Return the comparison as plain text, one line per metric."""
    a, b = sides
    lines = [
        f"A: {a.spec}   B: {b.spec}   {outcome.pairs} pairs in {outcome.elapsed_s:.1f} s",
        f"{'metric':<16} {'A median':>10} {'B median':>10} {'B - A':>10} "
        f"{'interval':>22} {'p':>8}  verdict",
    ]
    for metric, shift in outcome.shifts.items():
        interval, p_value = _interval_and_p(shift, "[{}, {}]")
        lines.append(
            f"{metric:<16} {_ms(shift.base_median):>10} {_ms(shift.new_median):>10} "
            f"{_ms(shift.shift):>10} {interval:>22} {p_value:>8}  {shift.verdict}"
        )
    lines.append("times in ms; " + _method_note(outcome))
    return "\n".join(lines)


def format_markdown(outcome: Outcome, sides: list[Side]) -> str:
    """Return the comparison as a Markdown section, for a CI job summary."""
    a, b = sides
    rows = [
        "## isobench A/B",
        "",
        f"A: `{a.spec}`, B: `{b.spec}`, {outcome.pairs} pairs in {outcome.elapsed_s:.1f} s "
        f"({outcome.status}).",
        "",
        "| metric | A median (ms) | B median (ms) | B - A (ms) | interval (ms) | p | verdict |",
        "|---|---|---|---|---|---|---|",
    ]
    for metric, shift in outcome.shifts.items():
        interval, p_value = _interval_and_p(shift, "{} to {}")
        rows.append(
            f"| {metric} | {_ms(shift.base_median)} | {_ms(shift.new_median)} | "
            f"{_ms(shift.shift)} | {interval} | {p_value} | **{shift.verdict}** |"
        )
    rows += ["", _method_note(outcome), ""]
    return "\n".join(rows)


def _interval_and_p(shift: Shift, form: str) -> tuple[str, str]:
    """Return the interval in milliseconds, written with ``form``, and the p-value; "-" for none."""
    interval = "-"
    if shift.ci_low is not None and shift.ci_high is not None:
        interval = form.format(_ms(shift.ci_low), _ms(shift.ci_high))
    p_value = f"{shift.p_value:.2g}" if shift.p_value is not None else "-"
    return interval, p_value


def _method_note(outcome: Outcome) -> str:
    shift = next(iter(outcome.shifts.values()), None)
    if shift is None:
        return "no complete pair was measured."
    test = "Wilcoxon signed-rank on pairs" if shift.method == "paired" else "Mann-Whitney U"
    return (
        f"{test}, Hodges-Lehmann shift with its {shift.confidence:.0%} interval, "
        f"minimum effect {shift.min_effect_text}."
    )


def _ms(value: float | None) -> str:
    if value is None or math.isnan(value):
        return "-"
    return f"{value * 1000:.2f}"


def print_progress(pairs: int, elapsed_s: float) -> None:
    """Print one line every 20 pairs on standard error."""
    if pairs % 20 == 0:
        print(f"isobench ab: {pairs} pairs, {elapsed_s:.0f} s", file=sys.stderr)
