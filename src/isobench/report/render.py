"""Render a run directory as ``summary.md``, ``index.html``, ``results.csv`` and ``matrix.csv``.

``summary.md`` is sized for a CI job summary: GitHub rejects one larger than
1 MiB, so every section that grows with the run has a cap. ``index.html`` is a
self-contained page with the same content, colored and with a plot. Every
rendered run directory also gets ``junit.xml`` for CI test reporters, which
``isobench.report.ci`` writes.

A run directory with a ``posture.jsonl`` also gets ``posture.csv`` and a
"Security posture" section in ``summary.md`` and ``index.html``. One with a
``samples.jsonl`` gets ``benchmarks.csv`` and a "Benchmarks" section, whose
startup plot is only in ``index.html``.

A run directory that ``isobench merge`` wrote has a ``hosts`` object in
run.json and gets an "Environments" table with one row per host.
"""

from __future__ import annotations

import base64
import dataclasses
import io
import json
import logging
import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import jinja2
import pandas as pd
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from isobench.bench import stats
from isobench.bench.samples import SAMPLES_FILE, Sample
from isobench.errors import HarnessError
from isobench.report import frames
from isobench.report.ci import JUNIT_FILE, write_junit
from isobench.results import RESULTS_FILE, read_run_directory
from isobench.runtimes import capabilities

SUMMARY_FILE = "summary.md"
HTML_FILE = "index.html"
RESULTS_CSV = "results.csv"
MATRIX_CSV = "matrix.csv"
POSTURE_FILE = "posture.jsonl"
POSTURE_CSV = "posture.csv"
BENCHMARKS_CSV = "benchmarks.csv"
#: The status in run.json of a run directory that ``isobench merge`` wrote.
MERGED_STATUS = "merged"
#: The host spec of a run on the machine that isobench runs on.
LOCAL_SPEC = "local://"

log = logging.getLogger(__name__)

# Outcomes listed under "Failures and errors": each means a broken guarantee,
# a check that could not run, or a declared deviation that did not happen.
PROBLEM_OUTCOMES = ("fail", "error", "xpass")

MARKS = {
    "pass": "pass",
    "fail": "FAIL",
    "error": "ERROR",
    "skip": "skip",
    "xfail": "xfail",
    "xpass": "XPASS",
}
NO_RECORD_MARK = "-"

# Colors of the outcomes in the plot and in the HTML matrix.
OUTCOME_COLORS = {
    "pass": "#2e7d32",
    "fail": "#c62828",
    "error": "#e65100",
    "skip": "#9e9e9e",
    "xfail": "#5c7fa3",
    "xpass": "#8e24aa",
}
UNKNOWN_OUTCOME_COLOR = "#616161"

# Caps on summary.md. By estimate they keep a summary below about 400 KiB for
# runs of up to 10 runtimes with check names under 100 characters: 500 matrix
# rows of 200 bytes, the failure budget, 50 skip rows of 300 bytes and the header.
SUMMARY_MAX_PROBLEMS = 50
SUMMARY_PROBLEM_BUDGET_BYTES = 256 * 1024
SUMMARY_MAX_MATRIX_ROWS = 500
#: The explanation above the table of request fields, in both reports.
REQUESTS_NOTE = (
    "For each request field: whether the row can express it (yes), cannot (no, so checks "
    "that ask for it are skipped with the reason), or only some values of it (partly). "
    "The host row runs every request without applying it (ignored). "
    "This is what each row declares. A row that accepted a field and did not apply it "
    "in this run, as the engine's inspect showed (the orchestration layers), is marked "
    "dropped; the checks that ask for that field fail."
)
SUMMARY_MAX_SKIP_GROUPS = 50
SUMMARY_MESSAGE_LINES = 10
SUMMARY_FIELD_CHARS = 1500
SUMMARY_MAX_COMMANDS = 10
SUMMARY_COMMAND_CHARS = 500

# Caps on the security posture section of summary.md. A capability table has
# one row per capability (41 in Linux 6.x), so by estimate 20 request tables of
# 10 runtimes and the values table stay below about 100 KiB.
SUMMARY_MAX_POSTURE_REQUESTS = 20
SUMMARY_MAX_POSTURE_ERRORS = 10
SUMMARY_POSTURE_CELL_CHARS = 500

# Cap on the rows of each benchmark table in summary.md. By estimate, a run of
# the 5 runtime rows has 52 startup rows (5 phases in 2 network modes, and 2
# native rows), so the cap matters only for samples outside the benchmark format.
SUMMARY_MAX_BENCHMARK_ROWS = 200

# Caps on index.html, which has no size limit but should open quickly.
HTML_MAX_PROBLEMS = 1000
HTML_MAX_POSTURE_ERRORS = 1000
HTML_FIELD_CHARS = 20_000

REASON_CHARS = 200

# The capability table cell of a capability that no set of the runtime contains.
NO_SET_MARK = "-"
SETS_LEGEND = (
    "Sets: "
    + ", ".join(
        f"{frames.SET_LETTERS[name]} {frames.SET_NAMES[name]}" for name in frames.CAPABILITY_SETS
    )
    + f". A cell with {NO_SET_MARK} means that no set contains the capability, and "
    + f"{frames.SETS_NOT_RECORDED} means that the record has no capability set."
)
VALUES_LEGEND = (
    "Resource limits show the soft and then the hard limit. Masked paths still visible are "
    "paths of the masked list that still show content. Read-only paths writable are paths "
    "of the read-only list on a mount without the ro mount option."
)

# Row labels of the posture values table. An rlimit.<resource> row is labelled "rlimit <resource>".
VALUE_LABELS = {
    "seccomp": "seccomp mode",
    "no_new_privs": "no_new_privs",
    "devices": "devices",
    "masked_visible": "masked paths still visible",
    "readonly_writable": "read-only paths writable",
}
# The Seccomp field of /proc/PID/status, as proc(5) documents it.
SECCOMP_MODES = {"0": "disabled", "1": "strict", "2": "filter"}
# The cell of a path list that is empty.
EMPTY_LIST_MARK = "none"

JSON_TYPES = {
    list: "an array",
    str: "a string",
    int: "a number",
    float: "a number",
    bool: "a boolean",
}

STATUS_NOTES = {
    "interrupted": "This run was interrupted; results are partial.",
    "running": (
        "This run has not finished, or it stopped without recording its end "
        "(status: running); results are partial."
    ),
    "failed": "This run failed before it completed (status: failed); results are partial.",
}


@dataclass(frozen=True)
class Problem:
    """A fail, error or xpass record, prepared for display."""

    number: int
    outcome: str
    mark: str
    runtime: str
    check_key: str
    title: str
    location: str
    control: str
    request: str
    expected: str
    observed: str
    message: str
    commands: list[str]
    notes: list[str]

    @property
    def headline(self) -> str:
        """The first line of the message."""
        lines = self.message.strip().splitlines()
        return lines[0] if lines else ""


@dataclass(frozen=True)
class SkipGroup:
    """The skips of one runtime that share one reason."""

    runtime: str
    reason: str
    count: int


@dataclass(frozen=True)
class Deviation:
    """A declared deviation that happened (an xfail), with the runtimes it happened on."""

    check_key: str
    reason: str
    runtimes: list[str]


@dataclass(frozen=True)
class UnavailableRuntime:
    """A runtime that run.json marks as not available, with the reason and the fix."""

    name: str
    reason: str
    hint: str


@dataclass(frozen=True)
class HostRow:
    """One host of a merged run: how it was reached, what its run read there, and the run."""

    label: str
    spec: str
    hostname: str
    kernel: str
    os: str
    cgroup_mode: str
    cpu_count: str
    isobench_version: str
    run_id: str
    status: str


@dataclass(frozen=True)
class RuntimeRow:
    """A runtime of the run as run.json records it: its family, version and how it ran."""

    name: str
    family: str
    version: str
    how: str


@dataclass(frozen=True)
class RequestMatrix:
    """The request fields that each runtime row can express, from run.json."""

    runtimes: list[str]
    #: (request field, one cell per runtime: "yes", "no", "partly", "dropped", or "" when
    #: not recorded).
    rows: list[tuple[str, list[str]]]
    #: (runtime, sample request, reason) for every sample a runtime cannot express.
    reasons: list[tuple[str, str, str]]


@dataclass(frozen=True)
class CapabilityTable:
    """The capabilities of each runtime under one request, as set letters ready for display."""

    request: str
    runtimes: list[str]
    #: (capability, one cell per runtime) for each capability that some runtime has,
    #: or that some runtime's record cannot show.
    rows: list[tuple[str, list[str]]]
    #: The capabilities that no runtime has in any set. Empty when they are left out.
    collapsed: list[str]


@dataclass(frozen=True)
class PostureReport:
    """The security posture section, computed from posture.jsonl."""

    #: One row per (runtime, request, set, capability); written to posture.csv.
    capabilities: pd.DataFrame
    defaults: CapabilityTable | None
    requests: list[CapabilityTable]
    value_runtimes: list[str]
    #: (label, one cell per runtime of ``value_runtimes``) under the default request.
    values: list[tuple[str, list[str]]]
    #: One message per line of posture.jsonl that was left out, naming the file and line.
    errors: list[str]
    note: str


@dataclass(frozen=True)
class BenchmarkTable:
    """One part of the benchmarks section, with its cells formatted for display."""

    #: The benchmark, which is also the anchor of the part in index.html.
    key: str
    title: str
    notes: list[str]
    header: list[str]
    #: The display of each column: "name" as code, "number" aligned right, "text" as it is.
    kinds: list[str]
    rows: list[list[str]]


@dataclass(frozen=True)
class BenchmarkReport:
    """The benchmarks section, computed from samples.jsonl."""

    #: One row per summary of ``frames.benchmark_summaries``; written to benchmarks.csv.
    summaries: pd.DataFrame
    #: ``frames.startup_table``, for the plot in index.html.
    startup: pd.DataFrame
    #: The parts of the benchmarks that have summaries, in the order of ``stats.BENCHMARKS``.
    tables: list[BenchmarkTable]
    intro: str
    #: The message when samples.jsonl could not be read. The section then has no tables.
    error: str
    note: str


@dataclass(frozen=True)
class Report:
    """Everything that summary.md and index.html show, computed once from a run directory."""

    run_id: str
    status: str
    status_note: str
    no_results_note: str
    environment: list[tuple[str, str]]
    unavailable: list[UnavailableRuntime]
    frame: pd.DataFrame
    matrix: pd.DataFrame
    totals: pd.DataFrame
    titles: dict[str, str]
    problems: list[Problem]
    skips: list[SkipGroup]
    control_note: str = ""
    deviations: list[Deviation] = field(default_factory=list)
    posture: PostureReport | None = None
    benchmarks: BenchmarkReport | None = None
    runtime_rows: list[RuntimeRow] = field(default_factory=list)
    requests: RequestMatrix | None = None
    #: The hosts of a merged run, in the order of its sources. Empty for other runs.
    hosts: list[HostRow] = field(default_factory=list)
    #: What ``isobench merge`` left out or warned about, from run.json.
    merge_notes: list[str] = field(default_factory=list)


def render(run_dir: Path, out_dir: Path | None = None) -> dict[str, Path]:
    """Write summary.md, index.html, results.csv, matrix.csv and junit.xml for a run directory.

    The files go to ``out_dir``, which is created if needed and defaults to
    ``run_dir``. Returns the path of each file by file name. Raises
    ``UsageError`` when ``run_dir`` has no readable run.json. A missing or
    empty results.jsonl gives a report with a "no results" note. posture.csv
    is written only when the run directory contains posture.jsonl, and
    benchmarks.csv only when it contains samples.jsonl.
    """
    report = load_report(run_dir)
    target = run_dir if out_dir is None else out_dir
    target.mkdir(parents=True, exist_ok=True)

    paths = {
        SUMMARY_FILE: target / SUMMARY_FILE,
        HTML_FILE: target / HTML_FILE,
        RESULTS_CSV: target / RESULTS_CSV,
        MATRIX_CSV: target / MATRIX_CSV,
    }
    paths[SUMMARY_FILE].write_text(summary_markdown(report), encoding="utf-8")
    paths[HTML_FILE].write_text(index_html(report), encoding="utf-8")
    _csv_frame(report.frame).to_csv(paths[RESULTS_CSV], index=False)
    report.matrix.to_csv(paths[MATRIX_CSV])
    if report.posture is not None:
        paths[POSTURE_CSV] = target / POSTURE_CSV
        report.posture.capabilities.to_csv(paths[POSTURE_CSV], index=False)
    if report.benchmarks is not None:
        paths[BENCHMARKS_CSV] = target / BENCHMARKS_CSV
        report.benchmarks.summaries.to_csv(paths[BENCHMARKS_CSV], index=False)
    paths[JUNIT_FILE] = write_junit(run_dir, target)
    return paths


def load_report(run_dir: Path) -> Report:
    """Read a run directory and compute the content of its report."""
    meta, records = _read_run_directory(run_dir)
    runtimes = meta.get("runtimes")
    runtime_info = runtimes if isinstance(runtimes, dict) else {}
    status = str(meta.get("status") or "unknown")

    frame = frames.outcomes(records)
    order = list(runtime_info)
    return Report(
        run_id=str(meta.get("run_id") or run_dir.name),
        status=status,
        status_note=_merged_status_note(meta) if status == MERGED_STATUS else _status_note(status),
        no_results_note=_no_results_note(run_dir, frame),
        environment=_environment_rows(meta),
        unavailable=_unavailable_runtimes(runtime_info),
        frame=frame,
        matrix=frames.matrix(frame, order),
        totals=frames.totals(frame, order),
        titles=_titles(frame),
        problems=_problems(frame),
        skips=_skip_groups(frame, order),
        control_note=_control_note(frame),
        deviations=_deviations(frame),
        posture=_posture_report(run_dir, order),
        benchmarks=_benchmark_report(run_dir, order),
        runtime_rows=_runtime_rows(runtime_info),
        requests=_request_matrix(runtime_info),
        hosts=_host_rows(meta),
        merge_notes=_text_list(meta.get("notes")),
    )


def _runtime_rows(runtime_info: Mapping[str, Any]) -> list[RuntimeRow]:
    rows = []
    for name, info in runtime_info.items():
        if not isinstance(info, Mapping) or not info.get("available"):
            continue
        details = info.get("details")
        how = details.get("how", "") if isinstance(details, Mapping) else ""
        rows.append(
            RuntimeRow(
                name=str(name),
                family=str(info.get("family") or ""),
                version=str(info.get("version") or ""),
                how=str(how),
            )
        )
    return rows


def _request_matrix(runtime_info: Mapping[str, Any]) -> RequestMatrix | None:
    recorded = {
        str(name): info["requests"]
        for name, info in runtime_info.items()
        if isinstance(info, Mapping) and isinstance(info.get("requests"), Mapping)
    }
    if not recorded:
        return None
    fields: list[str] = []
    for answers in recorded.values():
        fields += [str(name) for name in answers if str(name) not in fields]
    rows = []
    reasons = []
    for field_name in fields:
        cells = []
        for runtime, answers in recorded.items():
            samples = answers.get(field_name)
            if not isinstance(samples, Mapping) or not samples:
                cells.append("")
                continue
            cells.append(capabilities.cell({str(k): str(v) for k, v in samples.items()}))
            reasons += [
                (runtime, str(label), str(reason))
                for label, reason in samples.items()
                if reason and reason != capabilities.HOST_IGNORES
            ]
        rows.append((field_name, cells))
    return RequestMatrix(runtimes=list(recorded), rows=rows, reasons=reasons)


def _read_run_directory(run_dir: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    return read_run_directory(run_dir)


def _read_posture(run_dir: Path) -> tuple[list[dict[str, Any]], list[str]] | None:
    """Read the records of posture.jsonl, or return None when the run directory has none.

    Also returns one error message per line that is not a JSON object with a
    runtime. Those lines are left out, and the other lines are kept.
    """
    path = run_dir / POSTURE_FILE
    if not path.exists():
        return None
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        log.warning("%s: failed to read the posture records: %s", path, exc)
        return [], [f"{path}: failed to read the posture records: {exc}"]

    records = []
    errors = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            errors.append(
                f"{path}:{number}: invalid JSON ({exc.msg} at column {exc.colno}), "
                "so the line is left out of the posture tables."
            )
            continue
        if not isinstance(record, dict):
            found = JSON_TYPES.get(type(record), "null")
            errors.append(
                f"{path}:{number}: expected a JSON object, found {found}, "
                "so the line is left out of the posture tables."
            )
            continue
        if not isinstance(record.get("runtime"), str) or not record["runtime"]:
            errors.append(
                f"{path}:{number}: the runtime is missing, so the line is left out of "
                "the posture tables."
            )
            continue
        records.append(record)

    if errors:
        log.warning(
            "%s: lines left out of the posture tables: %d. The first: %s",
            path,
            len(errors),
            errors[0],
        )
    return records, errors


def _status_note(status: str) -> str:
    if status == "complete":
        return ""
    default = f"This run has status '{status}', not 'complete'; results may be partial."
    return STATUS_NOTES.get(status, default)


def _merged_status_note(meta: Mapping[str, Any]) -> str:
    """Name the sources of a merged run that did not complete, or return ""."""
    partial = [
        f"{source.get('host') or source.get('path')} ({source.get('status') or 'unknown'})"
        for source in _mappings(meta.get("sources"))
        if source.get("status") != "complete"
    ]
    if not partial:
        return ""
    return f"Merged runs that did not complete, so their results are partial: {', '.join(partial)}."


def _mappings(value: Any) -> list[Mapping[str, Any]]:
    return [item for item in value if isinstance(item, Mapping)] if isinstance(value, list) else []


def _text_list(value: Any) -> list[str]:
    return [str(item) for item in value] if isinstance(value, list) else []


def _host_rows(meta: Mapping[str, Any]) -> list[HostRow]:
    """List the hosts of a merged run with their environment and the run that came from each."""
    hosts = meta.get("hosts")
    if not isinstance(hosts, Mapping):
        return []
    sources = {str(source.get("host")): source for source in _mappings(meta.get("sources"))}
    rows = []
    for label, info in hosts.items():
        details: Mapping[str, Any] = info if isinstance(info, Mapping) else {}
        found = details.get("environment")
        environment: Mapping[str, Any] = found if isinstance(found, Mapping) else {}
        source = sources.get(str(label), {})
        rows.append(
            HostRow(
                label=str(label),
                spec=str(details.get("spec") or ""),
                hostname=str(environment.get("hostname") or ""),
                kernel=str(environment.get("kernel") or ""),
                os=str(environment.get("os") or ""),
                cgroup_mode=str(environment.get("cgroup_mode") or ""),
                cpu_count=str(environment.get("cpu_count") or ""),
                isobench_version=str(environment.get("isobench_version") or ""),
                run_id=str(source.get("run_id") or ""),
                status=str(source.get("status") or ""),
            )
        )
    return rows


def _no_results_note(run_dir: Path, frame: pd.DataFrame) -> str:
    if not frame.empty:
        return ""
    if not (run_dir / RESULTS_FILE).exists():
        return f"No results: {RESULTS_FILE} is missing from this run directory."
    return f"No results: {RESULTS_FILE} contains no records."


def _environment_rows(meta: Mapping[str, Any]) -> list[tuple[str, str]]:
    environment = meta.get("environment")
    host: Mapping[str, Any] = environment if isinstance(environment, dict) else {}
    # A merged run spans its sources, which can be days apart, so it has no duration.
    merged = meta.get("status") == MERGED_STATUS
    rows = [
        ("Host", _host_text(meta.get("host"))),
        ("Status", str(meta.get("status") or "unknown")),
        ("Started", str(meta.get("started") or "")),
        ("Ended", str(meta.get("ended") or "")),
        ("Duration", "" if merged else _duration(meta.get("started"), meta.get("ended"))),
        ("Kernel", str(host.get("kernel") or "")),
        ("cgroup mode", str(host.get("cgroup_mode") or "")),
        ("CPUs", str(host.get("cpu_count") or "")),
        ("Load average", _join(host.get("load_avg"), " ")),
        ("OS", str(host.get("os") or "")),
        ("Host name", str(host.get("hostname") or "")),
        ("Python", str(host.get("python") or "")),
        ("isobench", str(host.get("isobench_version") or "")),
        ("Suites", _suites(meta.get("suites"))),
        ("Command", _join(meta.get("argv"), " ")),
    ]
    return [(label, value) for label, value in rows if value]


def _host_text(host: Any) -> str:
    """Return "LABEL (SPEC)" for the ``host`` object of a remote run's run.json.

    Returns "" for a local run, whose host name is in the environment rows.
    """
    if not isinstance(host, Mapping):
        return ""
    label = str(host.get("label") or "")
    spec = str(host.get("spec") or "")
    if spec == LOCAL_SPEC:
        return ""
    if label and spec and label != spec:
        return f"{label} ({spec})"
    return label or spec


def _duration(started: Any, ended: Any) -> str:
    try:
        seconds = datetime.fromisoformat(str(ended)) - datetime.fromisoformat(str(started))
    except (TypeError, ValueError):
        return ""
    return f"{seconds.total_seconds():.1f} s"


def _join(values: Any, separator: str) -> str:
    if isinstance(values, list):
        return separator.join(str(value) for value in values)
    return "" if values is None else str(values)


def _suites(suites: Any) -> str:
    if not isinstance(suites, list):
        return ""
    names = []
    for suite in suites:
        if isinstance(suite, dict):
            names.append(f"{suite.get('name', '?')} ({suite.get('checks', '?')} checks)")
    return ", ".join(names)


def _unavailable_runtimes(runtimes: Mapping[str, Any]) -> list[UnavailableRuntime]:
    unavailable = []
    for name, info in runtimes.items():
        if isinstance(info, dict) and not info.get("available", True):
            reason = str(info.get("reason") or "no reason recorded")
            unavailable.append(UnavailableRuntime(str(name), reason, str(info.get("hint") or "")))
    return unavailable


def _titles(frame: pd.DataFrame) -> dict[str, str]:
    titles: dict[str, str] = {}
    for key, control, title in zip(
        frame["check_key"], frame["control"], frame["title"], strict=True
    ):
        if title:
            titles.setdefault(frames.row_label(key, control), title)
    return titles


def _control_note(frame: pd.DataFrame) -> str:
    """Summarize the negative-control row, whose failures are the expected result."""
    rows = frame[frame["expected_to_fail"].astype(bool)]
    if rows.empty:
        return ""
    failed = int((rows["outcome"] == "fail").sum())
    names = ", ".join(f"`{name}`" for name in dict.fromkeys(rows["runtime"].tolist()))
    text = (
        f"{names}: negative control (no isolation). {failed} of {len(rows)} checks that "
        "name it as their control failed there as they should; those failures are not "
        "listed below."
    )
    passed = rows[rows["outcome"] == "pass"]
    if not passed.empty:
        pairs = zip(passed["check_key"], passed["runtime"], strict=True)
        listed = ", ".join(f"`{key}` on `{runtime}`" for key, runtime in pairs)
        text += (
            " These passed on their negative control, so they cannot detect a missing "
            f"guarantee: {listed}."
        )
    return text


def _posture_report(run_dir: Path, runtimes: Sequence[str]) -> PostureReport | None:
    read = _read_posture(run_dir)
    if read is None:
        return None
    records, errors = read
    posture = frames.posture(records)
    requests = frames.posture_requests(posture)

    defaults = None
    if frames.DEFAULT_REQUEST in requests:
        defaults = _capability_table(posture, frames.DEFAULT_REQUEST, runtimes, collapse=True)
    others = [
        _capability_table(posture, request, runtimes, collapse=False)
        for request in requests
        if request != frames.DEFAULT_REQUEST
    ]

    values = frames.value_table(posture, frames.DEFAULT_REQUEST, runtimes)
    value_rows = [
        (_value_label(str(name)), [_value_cell(str(name), cell) for cell in cells])
        for name, cells in zip(values.index, values.to_numpy().tolist(), strict=True)
    ]

    note = ""
    if not records:
        note = f"{POSTURE_FILE} contains no records."
    elif defaults is None:
        note = f"{POSTURE_FILE} contains no record of the default request."
    return PostureReport(
        capabilities=posture.capabilities,
        defaults=defaults,
        requests=others,
        value_runtimes=[str(runtime) for runtime in values.columns],
        values=value_rows,
        errors=errors,
        note=note,
    )


def _capability_table(
    posture: frames.Posture, request: str, runtimes: Sequence[str], *, collapse: bool
) -> CapabilityTable:
    """Prepare the capability table of one request for display.

    The rows of capabilities that no runtime has are left out. With
    ``collapse`` their names are kept in ``collapsed``, for one line under the table.
    """
    table = frames.capability_table(posture, request, runtimes)
    rows = []
    collapsed = []
    for capability, cells in zip(table.index, table.to_numpy().tolist(), strict=True):
        if all(cell == "" for cell in cells):
            collapsed.append(str(capability))
        else:
            rows.append((str(capability), [str(cell) or NO_SET_MARK for cell in cells]))
    return CapabilityTable(
        request=request,
        runtimes=[str(runtime) for runtime in table.columns],
        rows=rows,
        collapsed=collapsed if collapse else [],
    )


def _value_label(name: str) -> str:
    if name.startswith("rlimit."):
        return "rlimit " + name.removeprefix("rlimit.")
    return VALUE_LABELS.get(name, name)


def _value_cell(name: str, value: str | None) -> str:
    if value is None:
        return NO_RECORD_MARK
    if name in frames.POSTURE_LIST_KEYS and not value:
        return EMPTY_LIST_MARK
    if name == "seccomp" and value in SECCOMP_MODES:
        return f"{value} ({SECCOMP_MODES[value]})"
    return value


# Benchmarks


def _benchmark_report(run_dir: Path, runtimes: Sequence[str]) -> BenchmarkReport | None:
    """Summarize samples.jsonl for the report, or return None when the run directory has none.

    An invalid samples.jsonl gives a section with the error and no tables.
    """
    path = run_dir / SAMPLES_FILE
    if not path.exists():
        return None
    try:
        samples = stats.read_samples(path)
        summaries = summarize_by_host(samples)
    except HarnessError as exc:
        log.warning("%s", exc)
        empty = frames.benchmark_summaries([])
        return BenchmarkReport(
            summaries=empty,
            startup=frames.startup_table(empty),
            tables=[],
            intro="",
            error=f"{exc} The benchmark tables are left out.",
            note="",
        )

    df = frames.benchmark_summaries(summary.to_dict() for summary in summaries)
    startup = frames.startup_table(df, runtimes)
    parts = [
        _startup_part(startup),
        _concurrency_part(frames.concurrency_table(df, runtimes)),
        _io_part(frames.io_table(df, runtimes)),
        _cpu_part(frames.cpu_table(df, runtimes)),
        _memory_part(frames.memory_table(df, runtimes)),
        _network_part(frames.network_table(df, runtimes)),
    ]
    return BenchmarkReport(
        summaries=df,
        startup=startup,
        tables=[part for part in parts if part is not None],
        intro=_benchmark_intro(samples) if samples else "",
        error="",
        note=_benchmark_note(df, len(samples)),
    )


def summarize_by_host(samples: Sequence[Sample]) -> list[stats.BenchmarkSummary]:
    """Summarize the samples of each host apart, so each ratio uses the native floor of its host.

    In a merged run the extra key ``host`` of a sample names its host, and
    ``source_runtime`` the runtime as its source run named it, because
    ``runtime`` can be "RUNTIME @ HOST" there while ``stats.summarize_samples``
    finds the native floor only under ``stats.NATIVE_RUNTIME``. The summaries
    keep the merged runtime names. Samples without a host form one group, so
    a run that was not merged gets the summaries of ``stats.summarize_samples``.
    """
    by_host: dict[str, list[Sample]] = {}
    for sample in samples:
        by_host.setdefault(str(sample.extra.get("host", "")), []).append(sample)

    summaries = []
    for group in by_host.values():
        merged_names: dict[str, str] = {}
        plain = []
        for sample in group:
            name = str(sample.extra.get("source_runtime") or sample.runtime)
            merged_names[name] = sample.runtime
            plain.append(dataclasses.replace(sample, runtime=name))
        for summary in stats.summarize_samples(plain):
            summaries.append(dataclasses.replace(summary, runtime=merged_names[summary.runtime]))
    return summaries


def _benchmark_intro(samples: Sequence[Sample]) -> str:
    warmups = sum(1 for sample in samples if sample.warmup)
    return (
        f"Statistics of {len(samples) - warmups} samples. Warm-up samples left out of the "
        f"statistics: {warmups}. The 95 % CI is the bootstrap confidence interval of the "
        f"median ({stats.BOOTSTRAP_METHOD} method, {stats.BOOTSTRAP_RESAMPLES} resamples, "
        f"fixed seed). It is left out below {stats.MIN_CI_SAMPLES} samples. A cell with "
        f"{NO_RECORD_MARK} has no value. Every summary is in {BENCHMARKS_CSV}."
    )


def _benchmark_note(df: pd.DataFrame, sample_count: int) -> str:
    if not sample_count:
        return f"{SAMPLES_FILE} contains no samples."
    others = [name for name in dict.fromkeys(df["benchmark"]) if name not in stats.BENCHMARKS]
    if others:
        return (
            f"The summaries of benchmarks without a table here ({', '.join(others)}) "
            f"are only in {BENCHMARKS_CSV}."
        )
    return ""


def _startup_part(table: pd.DataFrame) -> BenchmarkTable | None:
    if table.empty:
        return None
    notes = [_network_note(table["network"])]
    if stats.NATIVE_RUNTIME in set(table["runtime"]):
        notes.append(
            f"The {stats.NATIVE_RUNTIME} rows are the floor without a container: true is a "
            "fork and exec of /bin/true on the host, and unshare runs /bin/true in an "
            "unshare of the same namespaces."
        )
    rows = [
        [
            str(row["runtime"]),
            _param_text(row["network"]),
            str(row["phase"]),
            str(row["unit"]),
            _number(row["median"]),
            _number(row["p95"]),
            _number(row["p99"]),
            _interval(row["median_ci_low"], row["median_ci_high"]),
            _count(row["n"]),
        ]
        for row in table.to_dict("records")
    ]
    return BenchmarkTable(
        key="startup",
        title="Startup",
        notes=notes,
        header=["runtime", "network", "phase", "unit", "median", "p95", "p99", "95 % CI", "n"],
        kinds=["name", "text", "name", "text", *["number"] * 5],
        rows=rows,
    )


def _network_note(networks: pd.Series) -> str:
    modes = [str(mode) for mode in dict.fromkeys(networks) if mode is not None]
    if not modes:
        return "The samples record no network mode."
    if len(modes) == 1:
        return f"Network mode of the containers: {modes[0]}."
    return f"Network modes: {', '.join(modes)}. The network column gives the mode of each row."


def _concurrency_part(table: pd.DataFrame) -> BenchmarkTable | None:
    if table.empty:
        return None
    latency = _units(table["latency_unit"])
    throughput = _units(table["throughput_unit"])
    rows = [
        [
            str(row["runtime"]),
            _param_text(row["concurrency"]),
            _number(row["latency_median"]),
            _number(row["latency_p95"]),
            _interval(row["latency_median_ci_low"], row["latency_median_ci_high"]),
            _count(row["latency_n"]),
            _number(row["throughput_median"]),
            _count(row["throughput_n"]),
        ]
        for row in table.to_dict("records")
    ]
    return BenchmarkTable(
        key="concurrency",
        title="Concurrency",
        notes=[
            "Latency is the time of each container, and throughput is the rate of each "
            "batch of containers started at once. n counts containers and batches."
        ],
        header=[
            "runtime",
            "concurrency",
            f"latency median{latency}",
            f"latency p95{latency}",
            "latency 95 % CI",
            "n",
            f"throughput median{throughput}",
            "n",
        ],
        kinds=["name", "number", *["number"] * 6],
        rows=rows,
    )


def _io_part(table: pd.DataFrame) -> BenchmarkTable | None:
    if table.empty:
        return None
    rows = [
        [
            _param_text(row["target"]),
            str(row["job"]),
            str(row["runtime"]),
            str(row["unit"]),
            _number(row["median"]),
            _number(row["native_median"]),
            _ratio(row["ratio_to_native"]),
            _count(row["n"]),
        ]
        for row in table.to_dict("records")
    ]
    notes = [
        "The ratio is the container median over the native median of the same fio job "
        "on the same target."
    ]
    return BenchmarkTable(
        key="io",
        title="I/O",
        notes=[*notes, *_ratio_notes(table["worse_when"])],
        header=["target", "job", "runtime", "unit", "median", "native median", "ratio", "n"],
        kinds=["text", "name", "name", "text", *["number"] * 4],
        rows=rows,
    )


def _cpu_part(table: pd.DataFrame) -> BenchmarkTable | None:
    if table.empty:
        return None
    rows = [
        [
            str(row["runtime"]),
            str(row["metric"]),
            str(row["unit"]),
            _number(row["median"]),
            _number(row["native_median"]),
            _ratio(row["ratio_to_native"]),
            _count(row["n"]),
        ]
        for row in table.to_dict("records")
    ]
    return BenchmarkTable(
        key="cpu",
        title="CPU",
        notes=[
            "The ratio is the container median over the native median.",
            *_ratio_notes(table["worse_when"]),
        ],
        header=["runtime", "metric", "unit", "median", "native median", "ratio", "n"],
        kinds=["name", "name", "text", *["number"] * 4],
        rows=rows,
    )


def _memory_part(table: pd.DataFrame) -> BenchmarkTable | None:
    if table.empty:
        return None
    per_container = _units(table["pss_per_container_unit"])
    total = _units(table["pss_total_unit"])
    rows = [
        [
            str(row["runtime"]),
            _param_text(row["containers"]),
            _number(row["pss_per_container_median"]),
            _interval(
                row["pss_per_container_median_ci_low"], row["pss_per_container_median_ci_high"]
            ),
            _count(row["pss_per_container_n"]),
            _number(row["pss_total_median"]),
        ]
        for row in table.to_dict("records")
    ]
    return BenchmarkTable(
        key="memory",
        title="Memory",
        notes=[
            "PSS (proportional set size) per container and in total, by the number of "
            "containers running at once."
        ],
        header=[
            "runtime",
            "containers",
            f"PSS per container median{per_container}",
            "95 % CI",
            "n",
            f"PSS total median{total}",
        ],
        kinds=["name", *["number"] * 5],
        rows=rows,
    )


def _network_part(table: pd.DataFrame) -> BenchmarkTable | None:
    if table.empty:
        return None
    rows = [
        [
            _param_text(row["path"]),
            str(row["metric"]),
            str(row["runtime"]),
            str(row["unit"]),
            _number(row["median"]),
            _number(row["native_median"]),
            _ratio(row["ratio_to_native"]),
            _count(row["n"]),
        ]
        for row in table.to_dict("records")
    ]
    notes = [
        "Paths: loopback has server and client on the host (the native floor), peer is two "
        "containers on the default network, published is the host to a port published on "
        "127.0.0.1, and host is a container on the host's network to a server on the "
        "host's loopback. The server and the client run pinned to one CPU.",
        "latency_p50 and latency_p99 are the percentiles of the TCP round trips of one "
        "sockperf run a round, and throughput is the rate that one iperf3 stream delivered; "
        "the median is over the rounds.",
        "The ratio is the container median over the native median of the same metric "
        "on the loopback path.",
    ]
    return BenchmarkTable(
        key="network",
        title="Network",
        notes=[*notes, *_ratio_notes(table["worse_when"])],
        header=["path", "metric", "runtime", "unit", "median", "native median", "ratio", "n"],
        kinds=["text", "name", "name", "text", *["number"] * 4],
        rows=rows,
    )


def _ratio_notes(worse_when: pd.Series) -> list[str]:
    """Return one note per direction in ``worse_when`` on which ratios are worse than native."""
    notes = {
        "lower": "Higher is better for these rates, so a ratio below 1 is worse than native.",
        "higher": "Lower is better here, so a ratio above 1 is worse than native.",
    }
    return [notes[direction] for direction in dict.fromkeys(worse_when) if direction in notes]


def _units(units: pd.Series) -> str:
    """Return " (unit)" for a header, with every distinct unit of the column, or ""."""
    distinct = [str(unit) for unit in dict.fromkeys(units) if unit]
    return f" ({', '.join(distinct)})" if distinct else ""


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _number(value: Any) -> str:
    """Format a statistic: whole numbers from 1000 up, and 4 significant digits below."""
    if _missing(value):
        return NO_RECORD_MARK
    number = float(value)
    if abs(number) >= 1000:
        return f"{number:.0f}"
    return f"{number:.4g}"


def _interval(low: Any, high: Any) -> str:
    if _missing(low) or _missing(high):
        return NO_RECORD_MARK
    return f"{_number(low)} to {_number(high)}"


def _ratio(value: Any) -> str:
    return NO_RECORD_MARK if _missing(value) else f"{float(value):.2f}"


def _count(value: Any) -> str:
    return NO_RECORD_MARK if _missing(value) else str(int(value))


def _param_text(value: Any) -> str:
    return NO_RECORD_MARK if _missing(value) else str(value)


def _problems(frame: pd.DataFrame) -> list[Problem]:
    expected_failure = frame["expected_to_fail"].astype(bool) & (frame["outcome"] == "fail")
    selected = frame[frame["outcome"].isin(PROBLEM_OUTCOMES) & ~expected_failure]
    problems = []
    for number, row in enumerate(selected.to_dict("records"), start=1):
        outcome = str(row["outcome"])
        location = f"{row['file']}:{row['line']}" if row["file"] else ""
        problems.append(
            Problem(
                number=number,
                outcome=outcome,
                mark=MARKS.get(outcome, outcome),
                runtime=str(row["runtime"]),
                check_key=str(row["check_key"]),
                title=str(row["title"]),
                location=location,
                control=str(row["control"]),
                request=str(row["request"]),
                expected=str(row["expected"]),
                observed=str(row["observed"]),
                message=str(row["message"]),
                commands=list(row["commands"]),
                notes=list(row["notes"]),
            )
        )
    return problems


def _skip_groups(frame: pd.DataFrame, runtimes: Sequence[str]) -> list[SkipGroup]:
    """Group the skips by runtime and reason, the most frequent reason first per runtime."""
    skipped = frame[frame["outcome"] == "skip"]
    reasons = [_first_line(message) or "(no reason recorded)" for message in skipped["message"]]
    counts = Counter(zip(skipped["runtime"], reasons, strict=True))
    order = {
        runtime: position for position, runtime in enumerate(frames.runtime_order(frame, runtimes))
    }
    keys = sorted(counts, key=lambda key: (order[key[0]], -counts[key]))
    return [
        SkipGroup(runtime, _clip(reason, REASON_CHARS), counts[(runtime, reason)])
        for runtime, reason in keys
    ]


def _deviations(frame: pd.DataFrame) -> list[Deviation]:
    """List the xfails by check and reason, with the runtimes each happened on."""
    found: dict[tuple[str, str], list[str]] = {}
    for row in frame[frame["outcome"] == "xfail"].to_dict("records"):
        reason = _first_line(str(row["message"])).removeprefix("declared deviation: ")
        # The judged values follow the reason in brackets; the failure list has them.
        reason = reason.rsplit(" (", 1)[0] if reason.endswith(")") else reason
        found.setdefault((str(row["check_key"]), reason), []).append(str(row["runtime"]))
    return [
        Deviation(key, _clip(reason, REASON_CHARS), runtimes)
        for (key, reason), runtimes in found.items()
    ]


def _first_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[0].strip() if lines else ""


def _clip(text: str, max_chars: int, max_lines: int | None = None) -> str:
    """Shorten text to at most ``max_lines`` lines and ``max_chars`` characters, saying so."""
    clipped = text
    if max_lines is not None:
        lines = text.splitlines()
        if len(lines) > max_lines:
            clipped = "\n".join(lines[:max_lines]) + f"\n[{len(lines) - max_lines} more lines]"
    if len(clipped) > max_chars:
        clipped = clipped[:max_chars] + f" [{len(clipped) - max_chars} more characters]"
    return clipped


def _csv_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Return a copy with list columns as JSON arrays, which keeps a command's newlines intact."""
    export = frame.copy()
    for column in frames.LIST_FIELDS:
        export[column] = [json.dumps(list(values)) for values in export[column]]
    return export


# summary.md


def summary_markdown(report: Report) -> str:
    """Return the report as GitHub-flavored Markdown for a CI job summary."""
    sections = [
        _md_header(report),
        _md_hosts(report),
        _md_unavailable(report),
        _md_runtimes(report),
        _md_totals(report),
        report.control_note,
        _md_matrix(report),
        _md_problems(report),
        _md_deviations(report),
        _md_skips(report),
        _md_posture(report.posture),
        _md_requests(report.requests),
        _md_benchmarks(report.benchmarks),
    ]
    return "\n\n".join(section for section in sections if section) + "\n"


def _md_header(report: Report) -> str:
    lines = [f"# isobench run {_md_code(report.run_id)}"]
    if report.status_note:
        lines += ["", f"> **Warning: {_md_text(report.status_note)}**"]
    if report.no_results_note:
        lines += ["", f"> **{_md_text(report.no_results_note)}**"]
    lines.append("")
    lines += [f"- {label}: {_md_text(value)}" for label, value in report.environment]
    return "\n".join(lines)


def _md_hosts(report: Report) -> str:
    if not report.hosts and not report.merge_notes:
        return ""
    header = ["host", "spec", "host name", "kernel", "OS", "cgroup mode", "CPUs", "isobench"]
    header += ["run id", "status"]
    rows = [
        [
            _md_code(host.label),
            _md_code(host.spec),
            _md_text(host.hostname),
            _md_text(host.kernel),
            _md_text(host.os),
            _md_text(host.cgroup_mode),
            _md_text(host.cpu_count),
            _md_text(host.isobench_version),
            _md_code(host.run_id),
            _md_text(host.status),
        ]
        for host in report.hosts
    ]
    parts = ["## Environments"]
    if rows:
        parts.append(_md_table(header, rows))
    if report.merge_notes:
        parts.append("Notes of the merge:")
        parts.append("\n".join(f"- {_md_text(note)}" for note in report.merge_notes))
    return "\n\n".join(parts)


def _md_unavailable(report: Report) -> str:
    if not report.unavailable:
        return ""
    lines = ["## Runtimes not available", ""]
    for runtime in report.unavailable:
        line = f"- {_md_code(runtime.name)}: {_md_text(runtime.reason.rstrip('.'))}"
        if runtime.hint:
            line += f". Hint: {_md_text(runtime.hint)}"
        lines.append(line)
    return "\n".join(lines)


def _md_runtimes(report: Report) -> str:
    if not report.runtime_rows:
        return ""
    rows = [[_md_code(r.name), r.family, _md_text(r.version)] for r in report.runtime_rows]
    text = "## Runtimes\n\n" + _md_table(["runtime", "family", "version"], rows)
    notes = [f"- {_md_code(r.name)}: {_md_text(r.how)}" for r in report.runtime_rows if r.how]
    if notes:
        text += "\n\nHow rows were run:\n\n" + "\n".join(notes)
    return text


def _md_requests(requests: RequestMatrix | None) -> str:
    if requests is None:
        return ""
    header = ["request field", *(_md_code(runtime) for runtime in requests.runtimes)]
    rows = [[_md_code(name), *cells] for name, cells in requests.rows]
    text = f"## What each runtime can express\n\n{REQUESTS_NOTE}\n\n" + _md_table(header, rows)
    if requests.reasons:
        lines = [
            f"- {_md_code(runtime)}, {_md_text(label)}: {_md_text(_first_line(reason))}"
            for runtime, label, reason in requests.reasons
        ]
        text += (
            f"\n\n<details><summary>Why not ({len(lines)})</summary>\n\n"
            + "\n".join(lines)
            + "\n\n</details>"
        )
    return text


def _md_totals(report: Report) -> str:
    if report.frame.empty:
        return ""
    outcomes = [str(outcome) for outcome in report.totals.columns]
    rows = [
        [_md_code(str(runtime)), *(str(count) for count in counts), str(sum(counts))]
        for runtime, counts in zip(
            report.totals.index, report.totals.to_numpy().tolist(), strict=True
        )
    ]
    return "## Totals\n\n" + _md_table(["runtime", *outcomes, "total"], rows)


def _md_matrix(report: Report) -> str:
    if report.frame.empty:
        return ""
    matrix = report.matrix
    header = ["check", *(_md_code(str(runtime)) for runtime in matrix.columns)]
    rows = [
        [_md_code(str(label)), *(_mark(cell) for cell in cells)]
        for label, cells in zip(
            matrix.index[:SUMMARY_MAX_MATRIX_ROWS],
            matrix.to_numpy().tolist()[:SUMMARY_MAX_MATRIX_ROWS],
            strict=True,
        )
    ]
    text = "## Matrix\n\n" + _md_table(header, rows)
    hidden = len(matrix.index) - len(rows)
    if hidden > 0:
        text += f"\n\n{hidden} more checks in {MATRIX_CSV}."
    return text


def _mark(outcome: str) -> str:
    if outcome == frames.NO_RECORD:
        return NO_RECORD_MARK
    return MARKS.get(outcome, outcome)


def _md_problems(report: Report) -> str:
    if not report.problems:
        return ""
    lines = [f"## Failures and errors ({len(report.problems)})"]
    used_bytes = 0
    listed_count = 0
    for problem in report.problems[:SUMMARY_MAX_PROBLEMS]:
        entry = _md_problem(problem)
        size = len(entry.encode("utf-8"))
        # The first entry is always listed, even one larger than the budget.
        if listed_count and used_bytes + size > SUMMARY_PROBLEM_BUDGET_BYTES:
            break
        lines += ["", entry]
        used_bytes += size
        listed_count += 1
    hidden = len(report.problems) - listed_count
    if hidden > 0:
        lines += ["", f"{hidden} more in {RESULTS_FILE} and {HTML_FILE}."]
    return "\n".join(lines)


def _md_problem(problem: Problem) -> str:
    lines = [
        f"### {problem.number}. {problem.mark}: {_md_code(problem.check_key)} "
        f"on {_md_code(problem.runtime)}",
        "",
    ]
    if problem.location:
        lines.append(f"- Location: {_md_code(problem.location)}")
    if problem.title:
        lines.append(f"- Title: {_md_text(problem.title)}")
    if problem.control:
        lines.append(f"- Negative control: {_md_text(problem.control)}")

    blocks = [
        ("Expected", _clip(problem.expected, SUMMARY_FIELD_CHARS), "text"),
        ("Observed", _clip(problem.observed, SUMMARY_FIELD_CHARS), "text"),
        ("Message", _clip(problem.message, SUMMARY_FIELD_CHARS, SUMMARY_MESSAGE_LINES), "text"),
        ("Commands", _md_commands(problem.commands), "sh"),
    ]
    for label, text, language in blocks:
        if text.strip():
            lines += ["", f"{label}:", "", _md_fence(text, language)]
    return "\n".join(lines)


def _md_commands(commands: Sequence[str]) -> str:
    listed = [_clip(command, SUMMARY_COMMAND_CHARS) for command in commands[:SUMMARY_MAX_COMMANDS]]
    hidden = len(commands) - len(listed)
    if hidden > 0:
        listed.append(f"# {hidden} more commands in {RESULTS_FILE}")
    return "\n".join(listed)


def _md_skips(report: Report) -> str:
    if not report.skips:
        return ""
    groups = report.skips[:SUMMARY_MAX_SKIP_GROUPS]
    rows = [[_md_code(group.runtime), _md_text(group.reason), str(group.count)] for group in groups]
    total = sum(group.count for group in report.skips)
    text = f"## Skipped ({total})\n\n" + _md_table(["runtime", "reason", "count"], rows)
    hidden = len(report.skips) - len(groups)
    if hidden > 0:
        text += f"\n\n{hidden} more skip reasons in {HTML_FILE}."
    return text


def _md_deviations(report: Report) -> str:
    if not report.deviations:
        return ""
    rows = [
        [_md_code(d.check_key), ", ".join(_md_code(r) for r in d.runtimes), _md_text(d.reason)]
        for d in report.deviations[:SUMMARY_MAX_SKIP_GROUPS]
    ]
    return "## Declared deviations (xfail)\n\n" + _md_table(["check", "runtimes", "reason"], rows)


def _md_posture(posture: PostureReport | None) -> str:
    if posture is None:
        return ""
    parts = ["## Security posture"]
    errors = posture.errors[:SUMMARY_MAX_POSTURE_ERRORS]
    parts += [f"> **{_md_text(error)}**" for error in errors]
    hidden_errors = len(posture.errors) - len(errors)
    if hidden_errors > 0:
        parts.append(
            f"{hidden_errors} more invalid lines in {POSTURE_FILE} are listed in {HTML_FILE}."
        )
    if posture.note:
        parts.append(f"> **{_md_text(posture.note)}**")

    if posture.defaults is not None:
        parts.append(f"### Capabilities ({frames.DEFAULT_REQUEST})")
        parts.append(_md_capability_table(posture.defaults))
        if posture.defaults.collapsed:
            names = ", ".join(_md_code(name) for name in posture.defaults.collapsed)
            parts.append(f"None of the runtimes has these in any set: {names}.")
        parts.append(SETS_LEGEND)

    requests = posture.requests[:SUMMARY_MAX_POSTURE_REQUESTS]
    for table in requests:
        parts.append(f"### Capabilities under {_md_code(_request_text(table.request))}")
        if table.rows:
            parts.append(_md_capability_table(table))
        else:
            parts.append("No runtime has a capability under this request.")
    hidden_requests = len(posture.requests) - len(requests)
    if hidden_requests > 0:
        parts.append(f"{hidden_requests} more requests in {POSTURE_CSV} and {HTML_FILE}.")
    if posture.defaults is None and posture.requests:
        parts.append(SETS_LEGEND)

    if posture.values:
        header = ["value", *(_md_code(runtime) for runtime in posture.value_runtimes)]
        rows = [
            [
                _md_text(label),
                *(_md_text(_clip(cell, SUMMARY_POSTURE_CELL_CHARS)) for cell in cells),
            ]
            for label, cells in posture.values
        ]
        parts.append(f"### Other values ({frames.DEFAULT_REQUEST})")
        parts.append(_md_table(header, rows))
        parts.append(VALUES_LEGEND)
    return "\n\n".join(parts)


def _md_capability_table(table: CapabilityTable) -> str:
    header = ["capability", *(_md_code(runtime) for runtime in table.runtimes)]
    rows = [[_md_code(capability), *cells] for capability, cells in table.rows]
    return _md_table(header, rows)


def _md_benchmarks(benchmarks: BenchmarkReport | None) -> str:
    if benchmarks is None:
        return ""
    parts = ["## Benchmarks"]
    for banner in (benchmarks.error, benchmarks.note):
        if banner:
            parts.append(f"> **{_md_text(banner)}**")
    if benchmarks.intro:
        parts.append(_md_text(benchmarks.intro))

    for table in benchmarks.tables:
        parts.append(f"### {table.title}")
        parts += [_md_text(note) for note in table.notes]
        rows = table.rows[:SUMMARY_MAX_BENCHMARK_ROWS]
        cells = [
            [
                _md_code(cell) if kind == "name" else _md_text(cell)
                for kind, cell in zip(table.kinds, row, strict=True)
            ]
            for row in rows
        ]
        parts.append(_md_table([_md_text(label) for label in table.header], cells))
        hidden = len(table.rows) - len(rows)
        if hidden > 0:
            parts.append(f"{hidden} more rows in {BENCHMARKS_CSV} and {HTML_FILE}.")
    return "\n\n".join(parts)


def _request_text(request: str) -> str:
    return request or "(request not recorded)"


def _md_table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


# Characters that Markdown or GitHub's HTML support would interpret in text.
_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|#&~!])")


def _md_text(text: str) -> str:
    """Escape text for one line of Markdown, table cells included."""
    return _MD_SPECIAL.sub(r"\\\1", " ".join(text.split()))


def _md_code(text: str) -> str:
    """Return text as an inline code span that is also safe in a table cell."""
    flat = " ".join(text.split()).replace("|", "\\|")
    longest = max((len(run) for run in re.findall(r"`+", flat)), default=0)
    fence = "`" * (longest + 1)
    padding = " " if longest else ""
    return f"{fence}{padding}{flat}{padding}{fence}"


def _md_fence(text: str, language: str) -> str:
    """Return text as a fenced code block whose fence no line of the text can close."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{language}\n{text.rstrip()}\n{fence}"


# index.html


def index_html(report: Report) -> str:
    """Return the report as a self-contained HTML page."""
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("isobench.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    template = environment.get_template("index.html.j2")
    problems = [_clip_problem(problem) for problem in report.problems[:HTML_MAX_PROBLEMS]]
    return template.render(
        report=report,
        outcomes=[str(outcome) for outcome in report.totals.columns],
        outcome_colors=OUTCOME_COLORS,
        other_color=UNKNOWN_OUTCOME_COLOR,
        outcome_classes={str(name): _css_class(str(name)) for name in report.totals.columns},
        marks=MARKS,
        no_record_mark=NO_RECORD_MARK,
        totals=_totals_rows(report.totals) if not report.frame.empty else [],
        matrix=_matrix_rows(report),
        runtimes=[str(runtime) for runtime in report.matrix.columns],
        problems=problems,
        hidden_problems=len(report.problems) - len(problems),
        skipped_total=sum(group.count for group in report.skips),
        plot=_plot_totals(report.totals) if not report.frame.empty else "",
        results_file=RESULTS_FILE,
        posture=report.posture,
        posture_errors=report.posture.errors[:HTML_MAX_POSTURE_ERRORS] if report.posture else [],
        posture_file=POSTURE_FILE,
        default_request=frames.DEFAULT_REQUEST,
        request_text=_request_text,
        no_set_mark=NO_SET_MARK,
        sets_legend=SETS_LEGEND,
        values_legend=VALUES_LEGEND,
        benchmarks=report.benchmarks,
        requests_note=REQUESTS_NOTE,
        request_classes={
            "yes": "outcome-pass",
            "no": "outcome-skip",
            "partly": "outcome-xfail",
            "ignored": "outcome-fail",
            "dropped": "outcome-fail",
        },
        request_reasons=_request_reasons(report.requests),
        startup_plot=_plot_startup(report.benchmarks.startup) if report.benchmarks else "",
    )


def _request_reasons(requests: RequestMatrix | None) -> dict[tuple[str, str], str]:
    """Return the reasons of each (runtime, field) cell, joined, for the cell's title."""
    if requests is None:
        return {}
    labels = {label: name for name, samples in capabilities.SAMPLES.items() for label, _ in samples}
    joined: dict[tuple[str, str], list[str]] = {}
    for runtime, label, reason in requests.reasons:
        joined.setdefault((runtime, labels.get(label, label)), []).append(f"{label}: {reason}")
    return {key: "\n".join(texts) for key, texts in joined.items()}


def _css_class(outcome: str) -> str:
    """Return the CSS class of an outcome. Names outside OUTCOME_COLORS share one class."""
    if outcome == frames.NO_RECORD:
        return "outcome-none"
    if outcome in OUTCOME_COLORS:
        return f"outcome-{outcome}"
    return "outcome-other"


def _totals_rows(totals: pd.DataFrame) -> list[tuple[str, list[int], int]]:
    rows = []
    for runtime, counts in zip(totals.index, totals.to_numpy().tolist(), strict=True):
        rows.append((str(runtime), [int(count) for count in counts], int(sum(counts))))
    return rows


def _matrix_rows(report: Report) -> list[tuple[str, str, list[tuple[str, str]]]]:
    """Return (row label, title, [(CSS class, mark)]) for each row of the matrix."""
    rows = []
    for label, cells in zip(report.matrix.index, report.matrix.to_numpy().tolist(), strict=True):
        marked = [(_css_class(str(cell)), _mark(str(cell))) for cell in cells]
        rows.append((str(label), report.titles.get(str(label), ""), marked))
    return rows


def _clip_problem(problem: Problem) -> Problem:
    return Problem(
        number=problem.number,
        outcome=problem.outcome,
        mark=problem.mark,
        runtime=problem.runtime,
        check_key=problem.check_key,
        title=problem.title,
        location=problem.location,
        control=problem.control,
        request=_clip(problem.request, HTML_FIELD_CHARS),
        expected=_clip(problem.expected, HTML_FIELD_CHARS),
        observed=_clip(problem.observed, HTML_FIELD_CHARS),
        message=_clip(problem.message, HTML_FIELD_CHARS),
        commands=[_clip(command, HTML_FIELD_CHARS) for command in problem.commands],
        notes=problem.notes,
    )


def _plot_totals(totals: pd.DataFrame) -> str:
    """Draw the outcome counts per runtime as stacked horizontal bars and return a base64 PNG."""
    runtimes = [str(runtime) for runtime in totals.index]
    positions = list(range(len(runtimes)))
    figure = Figure(figsize=(8.0, 1.6 + 0.5 * len(runtimes)), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()

    left = [0] * len(runtimes)
    for outcome in totals.columns:
        counts = [int(count) for count in totals[outcome]]
        color = OUTCOME_COLORS.get(str(outcome), UNKNOWN_OUTCOME_COLOR)
        axes.barh(positions, counts, left=left, color=color, label=str(outcome))
        left = [start + count for start, count in zip(left, counts, strict=True)]

    axes.set_yticks(positions, runtimes)
    axes.invert_yaxis()
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_xlabel("records")
    axes.set_title("Outcomes per runtime")
    figure.legend(loc="outside lower center", ncols=len(totals.columns), frameon=False)

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _plot_startup(table: pd.DataFrame) -> str:
    """Draw the startup medians as grouped bars with CI error bars and return a base64 PNG.

    Returns "" when no row has a median. Each runtime and network mode is one
    color, and the bars of each phase are centered on its tick. The y axis is
    logarithmic when every median is positive, because the native floor can be
    a thousand times shorter than a container start.
    """
    rows = [row for row in table.to_dict("records") if not _missing(row["median"])]
    if not rows:
        return ""
    phases = list(dict.fromkeys(row["phase"] for row in rows))
    series = list(dict.fromkeys((row["runtime"], row["network"]) for row in rows))
    # For each phase, the series that have a bar there, in the order of ``series``.
    in_phase = {
        phase: [(r["runtime"], r["network"]) for r in rows if r["phase"] == phase]
        for phase in phases
    }
    width = 0.8 / max(len(members) for members in in_phase.values())
    several_modes = len({network for _, network in series}) > 1
    # tab10 repeats after 10 colors, and 5 runtimes in 2 network modes plus native are 11.
    palette = colormaps["tab10" if len(series) <= 10 else "tab20"]

    figure = Figure(figsize=(max(6.0, 1.1 * len(phases) + 2.5), 4.5), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    for index, (runtime, network) in enumerate(series):
        own = [row for row in rows if (row["runtime"], row["network"]) == (runtime, network)]
        positions = []
        for row in own:
            members = in_phase[row["phase"]]
            rank = members.index((runtime, network))
            positions.append(phases.index(row["phase"]) + (rank - (len(members) - 1) / 2) * width)
        medians = [float(row["median"]) for row in own]
        lower = [_error_bar(row["median"], row["median_ci_low"]) for row in own]
        upper = [_error_bar(row["median_ci_high"], row["median"]) for row in own]
        label = f"{runtime} (network {network})" if several_modes else str(runtime)
        color = palette(index % palette.N)
        axes.bar(
            positions, medians, width, yerr=[lower, upper], capsize=2, color=color, label=label
        )

    axes.set_xticks(range(len(phases)), phases)
    unit = ", ".join(dict.fromkeys(str(row["unit"]) for row in rows))
    if all(float(row["median"]) > 0 for row in rows):
        axes.set_yscale("log")
        axes.set_ylabel(f"median ({unit}), log scale")
    else:
        axes.set_ylabel(f"median ({unit})")
    axes.set_title("Startup: median per phase, error bars at the 95 % CI of the median")
    figure.legend(loc="outside right upper", frameon=False)

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _error_bar(upper: Any, lower: Any) -> float:
    """Return ``upper - lower``, or 0 where the interval is missing."""
    if _missing(upper) or _missing(lower):
        return 0.0
    return max(0.0, float(upper) - float(lower))
