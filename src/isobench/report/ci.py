"""CI formats of a run directory: JUnit XML, GitHub Actions annotations and a step summary.

``junit.xml`` has one testsuite per suite and one testcase per record. Each
testcase carries the spec file and line as its ``file`` and ``line`` attributes,
which the GitHub and GitLab test reporters read. ``github_annotations`` turns
the problems of a run into workflow commands, and ``write_step_summary``
appends Markdown to the file that ``GITHUB_STEP_SUMMARY`` names.

A record with ``expected_to_fail`` set runs on a negative control of its check
(the ``host`` row, for example). There a ``fail`` is the expected result and
counts as passed, and a ``pass`` means that the check cannot detect a missing
guarantee, so it counts as a failure. Other outcomes map as on any runtime.
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from junitparser import Attr, Error, Failure, IntAttr, JUnitXml, Skipped, TestCase, TestSuite

from isobench.report import frames
from isobench.results import OUTCOMES, RESULTS_FILE, Record, read_run_directory

JUNIT_FILE = "junit.xml"
XML_DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>\n'

# Cap on each record field in junit.xml. A container's output is kept up to
# 4 Mi characters in a record, and results.jsonl keeps the full text.
JUNIT_FIELD_CHARS = 20_000

# GitHub shows at most 10 error, 10 warning and 10 notice annotations per step
# (actions/toolkit, docs/problem-matchers.md) and prints the rest in the log only.
ANNOTATIONS_PER_STEP = 10
# Cap on the message of one annotation, so that a long container output does
# not flood the log. results.jsonl keeps the full text.
ANNOTATION_MESSAGE_CHARS = 4000

# GitHub rejects a step summary larger than 1024 KiB: "$GITHUB_STEP_SUMMARY upload
# aborted, supports content up to a size of 1024k". The limit covers the whole
# file of the step, including what other commands of the step wrote.
STEP_SUMMARY_MAX_BYTES = 1024 * 1024
STEP_SUMMARY_VARIABLE = "GITHUB_STEP_SUMMARY"

log = logging.getLogger(__name__)

# Characters that XML 1.0 does not allow, also in escaped form: most C0
# controls, lone surrogates, U+FFFE and U+FFFF.
XML_INVALID = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
# The opening or closing line of a fenced code block in Markdown.
MARKDOWN_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})(.*)$")


class SpecTestCase(TestCase):
    """A testcase with the ``file`` and ``line`` attributes that CI test reporters read."""

    file = Attr()
    line = IntAttr()


# -- JUnit XML ---------------------------------------------------------


def junit_xml(meta: Mapping[str, Any], records: Iterable[Mapping[str, Any] | Record]) -> str:
    """Build a JUnit XML document with one testsuite per suite and one testcase per record.

    ``meta`` is the content of run.json. Its run id, status and environment
    become properties of every testsuite. Suites and testcases keep the order
    of the records. A record read from JSON may lack fields, which then get the
    ``Record`` defaults.
    """
    properties = _suite_properties(meta)
    cases: dict[str, list[TestCase]] = {}
    for record in _normalize(records):
        cases.setdefault(record["suite"], []).append(_testcase(record))

    document = JUnitXml(name=_xml_text(f"isobench {meta.get('run_id') or ''}".strip()))
    for suite_name, suite_cases in cases.items():
        suite = TestSuite(_xml_text(suite_name))
        for name, value in properties:
            suite.add_property(name, value)
        suite.add_testcases(suite_cases)
        document.add_testsuite(suite)
    _set_totals(document)
    return _serialize(document)


def write_junit(run_dir: Path, out_dir: Path | None = None) -> Path:
    """Write junit.xml for a run directory and return its path.

    The file goes to ``out_dir``, which is created if needed and defaults to
    ``run_dir``. Raises ``UsageError`` when ``run_dir`` has no readable run.json.
    A missing results.jsonl gives a document without testsuites.
    """
    meta, records = read_run_directory(run_dir)

    target = run_dir if out_dir is None else out_dir
    target.mkdir(parents=True, exist_ok=True)
    path = target / JUNIT_FILE
    valid = [record for record in records if isinstance(record, dict)]
    path.write_text(junit_xml(meta, valid), encoding="utf-8")
    return path


def _suite_properties(meta: Mapping[str, Any]) -> list[tuple[str, str]]:
    """List the run id, the status and each environment value as (name, value) pairs.

    An environment value of None (such as a machine id that the host lacks) is left out.
    """
    pairs = [
        ("run_id", str(meta.get("run_id") or "")),
        ("status", str(meta.get("status") or "unknown")),
    ]
    environment = meta.get("environment")
    if isinstance(environment, Mapping):
        for key, value in environment.items():
            if value is None:
                continue
            text = value if isinstance(value, str) else json.dumps(value)
            pairs.append((f"environment.{key}", text))
    return [(_xml_text(name), _xml_text(value)) for name, value in pairs]


def _testcase(record: Mapping[str, Any]) -> TestCase:
    """Build the testcase of one record, with its result mapped from the outcome."""
    case = SpecTestCase(
        name=_xml_text(frames.row_label(record["check"], record["control"])),
        classname=_xml_text(f"isobench.{record['suite']}.{record['runtime']}"),
        time=max(record["duration_s"], 0.0),
    )
    if record["file"]:
        case.file = _xml_text(record["file"])
    if record["line"] > 0:
        case.line = record["line"]

    outcome = record["outcome"]
    runtime = record["runtime"]
    notes: list[str] = []
    if _control_passed(record):
        failure = Failure(_xml_text(_control_passed_message(record)), "control-pass")
        failure.text = _xml_text(_failure_body(record))
        case.result = [failure]
    elif _broken(record):
        failure = Failure(_xml_text(_cut(record["message"], JUNIT_FIELD_CHARS)), outcome)
        failure.text = _xml_text(_failure_body(record))
        case.result = [failure]
    elif outcome == "error":
        error = Error(_xml_text(_cut(record["message"], JUNIT_FIELD_CHARS)), "error")
        error.text = _xml_text(_error_body(record))
        case.result = [error]
    elif outcome not in OUTCOMES:
        error = Error(_xml_text(_unknown_outcome_message(record)), "unknown-outcome")
        error.text = _xml_text(_error_body(record))
        case.result = [error]
    elif outcome == "skip":
        case.result = [Skipped(_xml_text(_cut(record["message"], JUNIT_FIELD_CHARS)))]
    elif outcome == "fail":
        notes.append(
            f"negative control: the check failed on {runtime} as it must, because "
            f"{runtime} lacks the guarantee. {record['message']}".strip()
        )
    elif outcome == "xfail":
        notes.append(f"xfail: {record['message'] or 'a declared deviation happened'}")

    notes.extend(f"note: {note}" for note in record["notes"])
    if notes:
        case.system_out = _xml_text(_cut("\n".join(notes), JUNIT_FIELD_CHARS))
    return case


def _failure_body(record: Mapping[str, Any]) -> str:
    lines = [_cut(record["message"], JUNIT_FIELD_CHARS), ""] if record["message"] else []
    for label in ("expected", "observed", "request", "fact"):
        if record[label]:
            lines.append(f"{label}: {_cut(record[label], JUNIT_FIELD_CHARS)}")
    if record["file"]:
        lines.append(f"at {_location(record)}")
    return "\n".join(lines)


def _error_body(record: Mapping[str, Any]) -> str:
    lines = [_cut(record["message"], JUNIT_FIELD_CHARS), ""] if record["message"] else []
    if record["commands"]:
        lines.append("commands:")
        lines.extend(f"  {_cut(command, JUNIT_FIELD_CHARS)}" for command in record["commands"])
    if record["file"]:
        lines.append(f"at {_location(record)}")
    return "\n".join(lines)


def _set_totals(document: JUnitXml) -> None:
    """Set the counts of the root element from its testsuites, which already have theirs."""
    suites = list(document)
    document.tests = sum(suite.tests or 0 for suite in suites)
    document.failures = sum(suite.failures or 0 for suite in suites)
    document.errors = sum(suite.errors or 0 for suite in suites)
    document.skipped = sum(suite.skipped or 0 for suite in suites)
    document.time = round(sum(suite.time or 0.0 for suite in suites), 3)


def _serialize(document: JUnitXml) -> str:
    """Return the document as indented XML text with a declaration."""
    raw = io.BytesIO()
    document.write(raw)
    # Indenting only adds whitespace between elements, so the text of a
    # failure body stays as it is.
    root = ET.fromstring(raw.getvalue())
    ET.indent(root)
    return XML_DECLARATION + ET.tostring(root, encoding="unicode") + "\n"


# -- GitHub Actions annotations ------------------------------------------


def github_annotations(
    records: Iterable[Mapping[str, Any] | Record], *, workspace: Path | None = None
) -> list[str]:
    """Build one GitHub Actions workflow command per problem of a run.

    A fail, an xpass and a pass on a negative control each give an ``::error``
    line, and every one of them is returned. An error outcome, or an outcome
    that is not in ``OUTCOMES``, gives a ``::warning`` line, and at most
    ``ANNOTATIONS_PER_STEP`` of those are returned. When warnings were left
    out, or when there are more error lines than GitHub shows as annotations of
    one step, a last ``::notice`` line reports it. Absolute file paths under
    ``workspace`` (such as ``GITHUB_WORKSPACE``) are made relative to it,
    because GitHub attaches an annotation to a file of the repository by its
    relative path.
    """
    errors: list[str] = []
    warnings: list[str] = []
    for record in _normalize(records):
        if _control_passed(record):
            title = f"CONTROL PASSED {_record_name(record)}"
            message = _control_passed_message(record) + "\n" + _failure_details(record)
            errors.append(_workflow_command("error", record, title, message, workspace))
        elif _broken(record):
            title = f"{record['outcome'].upper()} {_record_name(record)}"
            message = record["message"] + "\n" + _failure_details(record)
            errors.append(_workflow_command("error", record, title, message, workspace))
        elif record["outcome"] == "error":
            title = f"ERROR {_record_name(record)}"
            message = record["message"]
            warnings.append(_workflow_command("warning", record, title, message, workspace))
        elif record["outcome"] not in OUTCOMES:
            title = f"UNKNOWN OUTCOME {_record_name(record)}"
            message = _unknown_outcome_message(record)
            warnings.append(_workflow_command("warning", record, title, message, workspace))

    lines = errors + warnings[:ANNOTATIONS_PER_STEP]
    summary = _annotation_summary(len(errors), len(warnings))
    if summary:
        lines.append(f"::notice title=isobench::{_escape_data(summary)}")
    return lines


def _annotation_summary(error_count: int, warning_count: int) -> str:
    """Describe the annotations that GitHub will not show, or return "" when it shows all."""
    sentences = []
    if error_count > ANNOTATIONS_PER_STEP:
        sentences.append(
            f"{error_count} failures: GitHub shows the first {ANNOTATIONS_PER_STEP} as "
            "annotations, and the log of this step lists all of them."
        )
    left_out = warning_count - ANNOTATIONS_PER_STEP
    if left_out > 0:
        sentences.append(
            f"{warning_count} records could not be judged (outcome error or invalid), and "
            f"{left_out} of them are left out here. The run directory's results.jsonl lists all."
        )
    return " ".join(sentences)


def _workflow_command(
    command: str,
    record: Mapping[str, Any],
    title: str,
    message: str,
    workspace: Path | None,
) -> str:
    properties = []
    if record["file"]:
        properties.append(f"file={_escape_property(_relative(record['file'], workspace))}")
        if record["line"] > 0:
            properties.append(f"line={record['line']}")
    properties.append(f"title={_escape_property(title)}")
    text = _cut(message.strip(), ANNOTATION_MESSAGE_CHARS)
    return f"::{command} {','.join(properties)}::{_escape_data(text)}"


def _failure_details(record: Mapping[str, Any]) -> str:
    lines = [f"{label}: {record[label]}" for label in ("expected", "observed") if record[label]]
    return "\n".join(lines)


def _relative(name: str, workspace: Path | None) -> str:
    path = Path(name)
    if workspace is None or not path.is_absolute():
        return name
    try:
        return str(path.relative_to(workspace))
    except ValueError:
        return name


def _escape_data(text: str) -> str:
    """Escape the message of a workflow command as GitHub's runner unescapes it."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    """Escape a property value of a workflow command, where ':' and ',' are separators."""
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


# -- Step summary ----------------------------------------------------------


def write_step_summary(markdown: str, environ: Mapping[str, str] = os.environ) -> Path | None:
    """Append Markdown to the step summary file that ``GITHUB_STEP_SUMMARY`` names.

    Returns the file's path, or None when the variable is unset or empty. The
    file is appended to and never truncated, because other commands of the step
    write there too. When the file would grow past ``STEP_SUMMARY_MAX_BYTES``,
    the text is cut at a line boundary and ends with a line that reports the cut. When
    not even that line fits, nothing is written and a warning is logged.
    Raises ``OSError`` when the file cannot be read or written.
    """
    name = environ.get(STEP_SUMMARY_VARIABLE, "")
    if not name:
        return None
    path = Path(name)

    existing = path.stat().st_size if path.exists() else 0
    separator = b"\n" if existing and not _ends_with_newline(path) else b""
    data = markdown.encode("utf-8", errors="replace")
    if data and not data.endswith(b"\n"):
        data += b"\n"

    budget = STEP_SUMMARY_MAX_BYTES - existing - len(separator)
    if len(data) > budget:
        cut = _cut_markdown(data, budget)
        if cut is None:
            log.warning(
                "%s already contains %d bytes, so the step summary of %d bytes does not fit "
                "in GitHub's limit of %d bytes and was not written",
                path,
                existing,
                len(data),
                STEP_SUMMARY_MAX_BYTES,
            )
            return path
        data = cut

    with path.open("ab") as handle:
        handle.write(separator + data)
    return path


def _ends_with_newline(path: Path) -> bool:
    with path.open("rb") as handle:
        handle.seek(-1, os.SEEK_END)
        return handle.read(1) == b"\n"


def _cut_markdown(data: bytes, budget: int) -> bytes | None:
    """Cut Markdown at a line boundary so that it and a closing note fit in ``budget`` bytes.

    A fenced code block left open by the cut is closed, so that the note does
    not show as code. Returns None when not even the note fits.
    """
    lines = data.splitlines(keepends=True)
    fences = _open_fences(lines)
    size = len(data)
    for kept_count in range(len(lines), -1, -1):
        fence = fences[kept_count]
        closing = f"{fence}\n".encode() if fence else b""
        note = _cut_note(kept_count, len(lines))
        if size + len(closing) + len(note) <= budget:
            return b"".join(lines[:kept_count]) + closing + note
        if kept_count > 0:
            size -= len(lines[kept_count - 1])
    return None


def _cut_note(kept_count: int, total: int) -> bytes:
    # The blank line ends a table or paragraph that the cut left open.
    text = (
        f"\n_This summary was cut to fit GitHub's limit of 1 MiB per step: {kept_count} of "
        f"{total} lines are shown._\n"
    )
    return text.encode()


def _open_fences(lines: list[bytes]) -> list[str]:
    """Return, for each count k of leading lines, the fence of a code block they leave open.

    The entry is "" where no block is open. The list has ``len(lines) + 1`` entries.
    """
    fence = ""
    states = [fence]
    for raw in lines:
        match = MARKDOWN_FENCE.match(raw.decode("utf-8", errors="replace").rstrip("\r\n"))
        if match is not None:
            marker, rest = match.groups()
            if not fence:
                fence = marker
            elif marker[0] == fence[0] and len(marker) >= len(fence) and not rest.strip():
                fence = ""
        states.append(fence)
    return states


# -- Shared helpers ----------------------------------------------------------


def _normalize(records: Iterable[Mapping[str, Any] | Record]) -> list[dict[str, Any]]:
    """Give every record all ``Record`` fields with their types, as ``frames.outcomes`` does."""
    frame = frames.outcomes(records)
    return [{str(key): value for key, value in row.items()} for row in frame.to_dict("records")]


def _broken(record: Mapping[str, Any]) -> bool:
    """Tell whether a record is an xpass, or a fail on a runtime that is not a negative control."""
    outcome = record["outcome"]
    return outcome == "xpass" or (outcome == "fail" and not record["expected_to_fail"])


def _control_passed(record: Mapping[str, Any]) -> bool:
    return bool(record["expected_to_fail"]) and record["outcome"] == "pass"


def _control_passed_message(record: Mapping[str, Any]) -> str:
    return (
        f"passed on {record['runtime']}, its negative control, so the check cannot detect "
        "a missing guarantee"
    )


def _unknown_outcome_message(record: Mapping[str, Any]) -> str:
    known = ", ".join(OUTCOMES)
    return f"invalid outcome {record['outcome']!r} in {RESULTS_FILE}: expected one of {known}"


def _record_name(record: Mapping[str, Any]) -> str:
    return f"{record['suite']}/{record['check']} on {record['runtime']}"


def _location(record: Mapping[str, Any]) -> str:
    return f"{record['file']}:{record['line']}" if record["line"] > 0 else record["file"]


def _cut(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… [{len(text) - limit} more characters in {RESULTS_FILE}]"


def _xml_text(text: str) -> str:
    """Replace the characters that XML 1.0 cannot hold with a visible escape such as \\x1b."""
    return XML_INVALID.sub(lambda match: ascii(match.group())[1:-1], text)
