"""The raw samples of a benchmark run: ``samples.jsonl`` in the run directory.

Every measurement is written as it is taken, one JSON object a line and
flushed, so an interrupted run keeps its samples. The fields are a contract
that the statistics and the report read.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

SAMPLES_FILE = "samples.jsonl"
#: The runtime name of work run on the host without a container.
NATIVE = "native"


@dataclass(frozen=True)
class Sample:
    """One measurement: one line of samples.jsonl."""

    benchmark: str
    runtime: str
    metric: str
    unit: str
    value: float
    round: int
    warmup: bool = False
    params: dict[str, Any] = field(default_factory=dict)
    #: Keys of a line outside the format, kept as they are and ignored by the statistics.
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        record = asdict(self)
        record.update(record.pop("extra"))
        return json.dumps(record, sort_keys=True)


class SampleWriter:
    """Appends samples to a run directory's samples.jsonl, safely from several threads."""

    def __init__(self, run_dir: Path) -> None:
        self.path = run_dir / SAMPLES_FILE
        self._lock = threading.Lock()

    def write(self, sample: Sample) -> None:
        line = sample.to_json()
        with self._lock, self.path.open("a", encoding="utf-8") as out:
            out.write(line + "\n")
            out.flush()

    def write_all(self, samples: list[Sample]) -> None:
        for sample in samples:
            self.write(sample)


class Recorder:
    """Writes the samples of one benchmark on one runtime, numbering the rounds.

    Call :meth:`next_round` at the start of each call of the benchmarked
    function; the first ``warmup`` rounds are marked as warm-ups.
    """

    def __init__(self, writer: SampleWriter, benchmark: str, runtime: str, warmup: int) -> None:
        self.writer = writer
        self.benchmark = benchmark
        self.runtime = runtime
        self.warmup = warmup
        self.calls = 0

    def next_round(self) -> None:
        self.calls += 1

    @property
    def round(self) -> int:
        """The current round: negative during the warm-up, then 0, 1, ..."""
        return self.calls - 1 - self.warmup

    def write(
        self, metric: str, unit: str, value: float, runtime: str | None = None, **params: Any
    ) -> None:
        self.writer.write(
            Sample(
                benchmark=self.benchmark,
                runtime=runtime or self.runtime,
                metric=metric,
                unit=unit,
                value=value,
                round=self.round,
                warmup=self.round < 0,
                params=params,
            )
        )


def run_rounds(benchmark: Any, target: Callable[[], None], rounds: int, warmup: int) -> None:
    """Run ``target`` through pytest-benchmark's pedantic mode, ``warmup`` + ``rounds`` times.

    An exception, an interrupt included, stops the work: the remaining rounds
    return at once, and the exception is raised after pytest-benchmark has
    finished, so that it still writes its JSON (it cannot when a benchmark has
    no round at all). The
    benchmark's ``extra_info`` names the error, since its timings are then not
    the target's.
    """
    failures: list[BaseException] = []

    def guarded() -> None:
        if failures:
            return
        try:
            target()
        except BaseException as exc:  # an interrupt too: raised again below, after the rounds
            failures.append(exc)

    benchmark.pedantic(guarded, rounds=rounds, warmup_rounds=warmup, iterations=1)
    if failures:
        text = str(failures[0]) or type(failures[0]).__name__
        benchmark.extra_info["error"] = text.splitlines()[0]
        raise failures[0]
