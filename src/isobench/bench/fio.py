"""Parse the output of ``fio --output-format=json`` into per-job bandwidth and IOPS.

The field names are those of fio 3.x: each entry of ``jobs`` has ``jobname``,
``error`` and a ``read`` and ``write`` object with ``bw_bytes`` (bytes per
second) and ``iops``. tests/unit/data/fio-randread.json is a trimmed output of fio 3.33.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from isobench.errors import HarnessError

MIB = 1024 * 1024

#: The fio job names of the io benchmark: the direction and unit of each job's metric.
#: The fsync job writes with ``--fsync=1``, so its write IOPS are also its fsync rate.
JOB_METRICS: dict[str, tuple[str, str]] = {
    "seqread": ("read", "MiB/s"),
    "seqwrite": ("write", "MiB/s"),
    "randread": ("read", "IOPS"),
    "randwrite": ("write", "IOPS"),
    "fsync": ("write", "IOPS"),
}

# fio can print notes before the JSON, such as "note: both iodepth >= 1 and synchronous
# I/O engine are selected, queue depth will be capped at 1" (a string of fio 3.33).
_JSON_START = re.compile(r"^\{", re.MULTILINE)
_QUOTE_CHARS = 200


@dataclass(frozen=True)
class FioJob:
    """The throughput of one fio job."""

    name: str
    read_mib_s: float
    write_mib_s: float
    read_iops: float
    write_iops: float


class FioMetric(NamedTuple):
    """The figure of a job that the io benchmark records, with the job name as its metric."""

    unit: str
    value: float


def parse_fio(json_text: str, expected: Sequence[str] = ()) -> list[FioJob]:
    """Parse fio's JSON output into one FioJob per job, in the order of the output.

    Text before the first line that starts with ``{`` and text after the JSON
    object are ignored. Raises HarnessError when the output has no valid JSON
    object, when a job has a non-zero ``error`` or lacks a field, and when a
    job named in ``expected`` is missing.
    """
    document = _decode(json_text)
    jobs = document.get("jobs")
    if not isinstance(jobs, list) or not jobs:
        raise HarnessError("fio output has no jobs: the 'jobs' list is missing or empty")

    parsed = [_parse_job(job, index) for index, job in enumerate(jobs)]
    found = [job.name for job in parsed]
    for name in expected:
        if name not in found:
            raise HarnessError(
                f"fio job '{name}' is missing from the output; jobs found: {', '.join(found)}"
            )
    return parsed


def metric_for(job: FioJob) -> FioMetric:
    """Return the figure of a job of ``JOB_METRICS``: MiB/s for seq jobs, IOPS for the others.

    Raises HarnessError for a job name outside ``JOB_METRICS``.
    """
    if job.name not in JOB_METRICS:
        raise HarnessError(
            f"fio job '{job.name}' has no metric; known jobs: {', '.join(JOB_METRICS)}"
        )
    direction, unit = JOB_METRICS[job.name]
    if unit == "MiB/s":
        value = job.read_mib_s if direction == "read" else job.write_mib_s
    else:
        value = job.read_iops if direction == "read" else job.write_iops
    return FioMetric(unit, value)


def _decode(json_text: str) -> dict[str, Any]:
    start = _JSON_START.search(json_text)
    if start is None:
        raise HarnessError(f"fio output contains no JSON object: {_quote(json_text)}")
    try:
        document, _ = json.JSONDecoder().raw_decode(json_text, start.start())
    except json.JSONDecodeError as exc:
        raise HarnessError(
            f"fio output is not valid JSON ({exc.msg} at line {exc.lineno}, "
            f"column {exc.colno}): {_quote(json_text[start.start() :])}"
        ) from exc
    if not isinstance(document, dict):
        raise HarnessError("fio output is not a JSON object")
    return document


def _parse_job(job: Any, index: int) -> FioJob:
    if not isinstance(job, dict):
        raise HarnessError(f"fio job {index} is not a JSON object")
    name = job.get("jobname")
    if not isinstance(name, str) or not name:
        raise HarnessError(f"fio job {index} has no 'jobname'")

    error = job.get("error", 0)
    if error != 0:
        # fio reports the errno of the failed operation.
        reason = f" ({os.strerror(error)})" if isinstance(error, int) else ""
        raise HarnessError(
            f"fio job '{name}' failed with error {error}{reason}. Check fio's stderr for details."
        )
    return FioJob(
        name=name,
        read_mib_s=_number(job, name, "read", "bw_bytes") / MIB,
        write_mib_s=_number(job, name, "write", "bw_bytes") / MIB,
        read_iops=_number(job, name, "read", "iops"),
        write_iops=_number(job, name, "write", "iops"),
    )


def _number(job: dict[str, Any], name: str, direction: str, key: str) -> float:
    section = job.get(direction)
    value = section.get(key) if isinstance(section, dict) else None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise HarnessError(f"fio job '{name}' has no number at '{direction}.{key}'")
    return float(value)


def _quote(text: str) -> str:
    flat = " ".join(text.split())
    if len(flat) > _QUOTE_CHARS:
        return repr(flat[:_QUOTE_CHARS]) + f" [{len(flat) - _QUOTE_CHARS} more characters]"
    return repr(flat)
