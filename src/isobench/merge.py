"""Merge run directories from several hosts, or from several days, into one run directory.

Each source run gets a host label: the ``label`` of the ``host`` object in its
run.json, or for a local run without one, the host name of its environment.
Sources with the same label are distinguished by their start time to the
minute ("node1 (20261205T1210)"), by run id when those are equal too, and by
their position on the command line when they are copies of one run.

Every record of every source is copied once, with two fields added: ``host``
(the label) and ``source_runtime`` (the runtime as the source named it). When
the merge has more than one label, ``runtime`` becomes "RUNTIME @ HOST", so
the report has one column per host and runtime and sums nothing across hosts.
The lines of posture.jsonl and samples.jsonl are renamed the same way and get
the same two keys. Files that have no place for a host are left out, and
run.json lists them under ``notes``.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from isobench.bench import stats
from isobench.bench.samples import SAMPLES_FILE, Sample
from isobench.errors import HarnessError, UsageError
from isobench.report.ci import JUNIT_FILE
from isobench.report.render import (
    BENCHMARKS_CSV,
    HTML_FILE,
    LOCAL_SPEC,
    MATRIX_CSV,
    MERGED_STATUS,
    POSTURE_CSV,
    POSTURE_FILE,
    RESULTS_CSV,
    SUMMARY_FILE,
    summarize_by_host,
)
from isobench.results import OUTCOMES, RESULTS_FILE, RUN_FILE, new_run_id, read_run_directory

log = logging.getLogger(__name__)

#: Joins a runtime and its host label in the runtime name of a merged record.
HOST_SEPARATOR = " @ "
DEFAULT_OUT_PARENT = Path("reports") / "merged"
#: The start time in the label of a run whose host has other runs in the merge: 20261205T1210.
START_STAMP_FORMAT = "%Y%m%dT%H%M"

# Files of a source that the merge reads, or that the merged report writes anew. The
# merge writes benchmarks.json anew from the samples.
MERGED_FILES = frozenset(
    {
        RUN_FILE,
        RESULTS_FILE,
        POSTURE_FILE,
        SAMPLES_FILE,
        stats.BENCHMARKS_FILE,
        SUMMARY_FILE,
        HTML_FILE,
        RESULTS_CSV,
        MATRIX_CSV,
        POSTURE_CSV,
        BENCHMARKS_CSV,
        JUNIT_FILE,
    }
)


@dataclass
class Source:
    """One run directory to merge, read in full."""

    path: Path
    meta: dict[str, Any]
    records: list[dict[str, Any]]
    spec: str
    #: The label before the sources of one host are distinguished.
    host_label: str
    label: str = ""
    notes: list[str] = field(default_factory=list)


def merge_runs(sources: Sequence[Path], out: Path | None = None, argv: Sequence[str] = ()) -> Path:
    """Merge the run directories ``sources`` into the run directory ``out`` and return it.

    ``out`` defaults to reports/merged/RUN_ID. Raises UsageError when there is
    no source, a source is not a run directory or is itself a merged run, a
    directory is given twice, or ``out`` already contains a run. A source that
    is still running is merged with the results it has, and with a warning.
    """
    if not sources:
        raise UsageError("no run directories to merge; pass one or more RUN_DIR")
    _reject_repeats(sources)
    run_id = new_run_id()
    target = (out if out is not None else DEFAULT_OUT_PARENT / run_id).resolve()
    _check_out_dir(target)

    read = [_read_source(path) for path in sources]
    _assign_labels(read)
    # Labels are unique, so more than one source means more than one host label.
    several_hosts = len(read) > 1
    notes = [note for source in read for note in source.notes]

    target.mkdir(parents=True, exist_ok=True)
    records = [
        _with_host(record, source.label, several_hosts)
        for source in read
        for record in source.records
    ]
    _write_lines(target / RESULTS_FILE, records)

    if any((source.path / POSTURE_FILE).exists() for source in read):
        posture = []
        for source in read:
            posture += _posture_lines(source, several_hosts, notes)
        _write_lines(target / POSTURE_FILE, posture)

    if any((source.path / SAMPLES_FILE).exists() for source in read):
        samples = []
        for source in read:
            samples += _samples(source, several_hosts, notes)
        _write_samples(target, samples, notes)

    for source in read:
        notes += _unmerged_files(source)
    for note in notes:
        log.warning("%s", note)

    meta = _merged_meta(run_id, read, records, several_hosts, list(argv), notes)
    temporary = target / (RUN_FILE + ".tmp")
    temporary.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    temporary.replace(target / RUN_FILE)
    return target


def runtime_column(runtime: str, label: str, several_hosts: bool) -> str:
    """Return the runtime name of a merged record: "RUNTIME @ HOST" when there are several hosts."""
    if not several_hosts or not runtime:
        return runtime
    return f"{runtime}{HOST_SEPARATOR}{label}"


def _reject_repeats(sources: Sequence[Path]) -> None:
    seen: dict[Path, Path] = {}
    for path in sources:
        resolved = path.resolve()
        if resolved in seen:
            raise UsageError(
                f"{path}: given twice (also as {seen[resolved]}); pass each run directory once, "
                "or its records would be merged twice"
            )
        seen[resolved] = path


def _check_out_dir(path: Path) -> None:
    if path.exists() and not path.is_dir():
        raise UsageError(f"{path} is not a directory; pass a directory to --out")
    results = path / RESULTS_FILE
    if (path / RUN_FILE).exists() or (results.exists() and results.stat().st_size > 0):
        raise UsageError(
            f"{path} already contains a run ({RUN_FILE}); pass a new --out directory "
            "or remove that one"
        )


def _read_source(path: Path) -> Source:
    if not path.is_dir():
        raise UsageError(
            f"{path}: run directory not found. Pass directories that 'isobench run' wrote, "
            f"each with a {RUN_FILE}."
        )
    meta, _ = read_run_directory(path)
    status = str(meta.get("status") or "unknown")
    if status == MERGED_STATUS:
        raise UsageError(
            f"{path} is a merged run; merge the run directories that its {RUN_FILE} lists "
            "under 'sources' instead"
        )
    records, notes = _read_records(path)
    if status == "running":
        notes.append(
            f"{path}: the run has status 'running': it has not finished, or it stopped "
            "without recording its end. Its results so far are merged."
        )

    host = meta.get("host")
    environment = meta.get("environment")
    hostname = environment.get("hostname") if isinstance(environment, dict) else None
    spec, label = LOCAL_SPEC, ""
    if isinstance(host, dict):
        spec = str(host.get("spec") or "")
        label = str(host.get("label") or "")
    # A local run's label ("local") names no machine once the run is copied, so the
    # host name of its environment is used instead.
    if spec == LOCAL_SPEC or not label:
        label = str(hostname or label or spec or path.name)
    return Source(path, meta, records, spec, label, notes=notes)


def _read_records(path: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """Read every record of results.jsonl, with a note for each line that is not one."""
    results = path / RESULTS_FILE
    if not results.exists():
        return [], [f"{results}: missing, so the run adds no records."]
    records, left_out = _json_objects(results.read_text(encoding="utf-8"))
    if not left_out:
        return records, []
    lines = ", ".join(str(number) for number in left_out)
    return records, [f"{results}: lines left out because they are not JSON objects: {lines}."]


def _json_objects(text: str, required: str = "") -> tuple[list[dict[str, Any]], list[int]]:
    """Return the JSON objects of a JSON Lines text (each with a string ``required`` field,
    when one is named) and the numbers of the other lines that are not empty."""
    found = []
    left_out = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            left_out.append(number)
            continue
        if isinstance(record, dict) and (not required or isinstance(record.get(required), str)):
            found.append(record)
        else:
            left_out.append(number)
    return found, left_out


def _assign_labels(sources: Sequence[Source]) -> None:
    """Give each source a unique label, distinguishing the runs of one host by start or run id."""
    by_label: dict[str, list[Source]] = {}
    for source in sources:
        by_label.setdefault(source.host_label, []).append(source)

    for label, group in by_label.items():
        if len(group) == 1:
            group[0].label = label
            continue
        stamps = [_start_stamp(source.meta.get("started")) for source in group]
        run_ids = [str(source.meta.get("run_id") or "") for source in group]
        if all(stamps) and len(set(stamps)) == len(group):
            tags = stamps
        elif all(run_ids) and len(set(run_ids)) == len(group):
            tags = run_ids
        else:
            # Copies of one run differ only in their position on the command line.
            tags = [f"source {number}" for number in range(1, len(group) + 1)]
        for source, tag in zip(group, tags, strict=True):
            source.label = f"{label} ({tag})"

    # A label with a suffix can equal another host's own label, such as "node1 (20261205T1210)".
    used: set[str] = set()
    for source in sources:
        label = source.label
        number = 2
        while label in used:
            label = f"{source.label} #{number}"
            number += 1
        source.label = label
        used.add(label)


def _start_stamp(started: Any) -> str:
    try:
        moment = datetime.fromisoformat(str(started))
    except ValueError:
        return ""
    return moment.strftime(START_STAMP_FORMAT)


def _with_host(record: dict[str, Any], label: str, several_hosts: bool) -> dict[str, Any]:
    runtime = record.get("runtime")
    plain = runtime if isinstance(runtime, str) else ""
    merged = dict(record)
    merged["host"] = label
    merged["source_runtime"] = plain
    if plain:
        merged["runtime"] = runtime_column(plain, label, several_hosts)
    return merged


def _write_lines(path: Path, lines: Sequence[dict[str, Any]]) -> None:
    with path.open("w", encoding="utf-8") as handle:
        for line in lines:
            handle.write(json.dumps(line, sort_keys=True) + "\n")


def _posture_lines(source: Source, several_hosts: bool, notes: list[str]) -> list[dict[str, Any]]:
    """Read a source's posture.jsonl with the host added; lines without a runtime are noted."""
    path = source.path / POSTURE_FILE
    if not path.exists():
        return []
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        notes.append(f"{path}: failed to read, so its posture records are left out: {exc}")
        return []

    records, left_out = _json_objects(text, required="runtime")
    lines = [_with_host(record, source.label, several_hosts) for record in records]
    if left_out:
        numbers = ", ".join(str(number) for number in left_out)
        notes.append(
            f"{path}: lines left out because they are not JSON objects with a runtime: {numbers}."
        )
    return lines


def _samples(source: Source, several_hosts: bool, notes: list[str]) -> list[Sample]:
    """Read a source's benchmark samples with the host added, or note why they are left out."""
    path = source.path / SAMPLES_FILE
    if not path.exists():
        return []
    try:
        samples = stats.read_samples(path)
    except HarnessError as exc:
        notes.append(f"{exc} The samples of {source.label} are left out.")
        return []
    # NOTE: frames.io_table and frames.cpu_table leave out only the runtime named exactly
    # "native", so a merged report lists each "native @ HOST" there as a row of its own.
    return [
        replace(
            sample,
            runtime=runtime_column(sample.runtime, source.label, several_hosts),
            extra={**sample.extra, "host": source.label, "source_runtime": sample.runtime},
        )
        for sample in samples
    ]


def _write_samples(target: Path, samples: Sequence[Sample], notes: list[str]) -> None:
    """Write samples.jsonl and a benchmarks.json whose ratios use each host's own native floor."""
    with (target / SAMPLES_FILE).open("w", encoding="utf-8") as handle:
        for sample in samples:
            handle.write(sample.to_json() + "\n")
    # write_summary gives the document its layout, and its summaries mix no hosts,
    # because the merged runtime names differ. Only their ratios need the per-host groups.
    try:
        summaries = summarize_by_host(samples)
        path = stats.write_summary(target)
    except HarnessError as exc:
        notes.append(f"{exc} {stats.BENCHMARKS_FILE} is not written.")
        return
    document = json.loads(path.read_text(encoding="utf-8"))
    document["summaries"] = [summary.to_dict() for summary in summaries]
    path.write_text(json.dumps(document, indent=2, allow_nan=False) + "\n", encoding="utf-8")


def _unmerged_files(source: Source) -> list[str]:
    others = sorted(entry.name for entry in source.path.iterdir() if entry.name not in MERGED_FILES)
    summary = source.path / stats.BENCHMARKS_FILE
    if summary.exists() and not (source.path / SAMPLES_FILE).exists():
        others.append(stats.BENCHMARKS_FILE)
    if not others:
        return []
    return [
        f"{source.path}: files left out of the merge because their formats have no place for "
        f"a host: {', '.join(others)}. They stay in the source directory."
    ]


def _merged_meta(
    run_id: str,
    sources: Sequence[Source],
    records: Sequence[dict[str, Any]],
    several_hosts: bool,
    argv: list[str],
    notes: list[str],
) -> dict[str, Any]:
    """Build the run.json of the merged run."""
    runtimes: dict[str, Any] = {}
    suites: list[Any] = []
    for source in sources:
        found = source.meta.get("runtimes")
        for name, info in (found if isinstance(found, dict) else {}).items():
            details = info if isinstance(info, dict) else {}
            column = runtime_column(str(name), source.label, several_hosts)
            runtimes[column] = {**details, "host": source.label, "source_runtime": str(name)}
        listed = source.meta.get("suites")
        for suite in listed if isinstance(listed, list) else []:
            if suite not in suites:
                suites.append(suite)

    counts = Counter(
        record["outcome"] for record in records if isinstance(record.get("outcome"), str)
    )
    return {
        "run_id": run_id,
        "status": MERGED_STATUS,
        "started": _first_time([source.meta.get("started") for source in sources]),
        "ended": _last_time([source.meta.get("ended") for source in sources]),
        "merged_at": datetime.now(UTC).isoformat(),
        "argv": argv,
        "sources": [
            {
                "path": str(source.path.resolve()),
                "run_id": source.meta.get("run_id"),
                "host": source.label,
                "status": source.meta.get("status"),
                "started": source.meta.get("started"),
                "ended": source.meta.get("ended"),
            }
            for source in sources
        ],
        "hosts": {
            source.label: {"spec": source.spec, "environment": source.meta.get("environment")}
            for source in sources
        },
        "suites": suites,
        "runtimes": runtimes,
        "counts": {**dict.fromkeys(OUTCOMES, 0), **counts},
        "notes": notes,
    }


def _first_time(times: Sequence[Any]) -> str | None:
    parsed = _parse_times(times)
    return min(parsed).isoformat() if parsed else None


def _last_time(times: Sequence[Any]) -> str | None:
    parsed = _parse_times(times)
    return max(parsed).isoformat() if parsed else None


def _parse_times(times: Sequence[Any]) -> list[datetime]:
    """Parse the ISO 8601 times in ``times``, leaving out the others (None: a run not ended)."""
    parsed = []
    for text in times:
        try:
            moment = datetime.fromisoformat(str(text))
        except ValueError:
            continue
        # A time without a UTC offset is taken as UTC, so that it compares with the others.
        parsed.append(moment if moment.tzinfo else moment.replace(tzinfo=UTC))
    return parsed
