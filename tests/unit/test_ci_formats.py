"""JUnit XML, GitHub Actions annotations, the step summary and the results line schema."""

from __future__ import annotations

import dataclasses
import json
import logging
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from junitparser import Error, Failure, JUnitXml, Skipped, TestCase

from isobench.errors import UsageError
from isobench.report import render
from isobench.report.ci import (
    ANNOTATION_MESSAGE_CHARS,
    ANNOTATIONS_PER_STEP,
    JUNIT_FIELD_CHARS,
    JUNIT_FILE,
    STEP_SUMMARY_MAX_BYTES,
    github_annotations,
    junit_xml,
    write_junit,
    write_step_summary,
)
from isobench.results import OUTCOMES, RESULTS_FILE, RUN_FILE, Record
from isobench.results_schema import ResultLine, results_schema
from tests.conftest import REPO

SPEC = "suites/namespaces.yaml"

META: dict[str, Any] = {
    "run_id": "20250101T000000Z-abc123",
    "status": "complete",
    "started": "2025-01-01T00:00:00+00:00",
    "environment": {
        "hostname": "builder",
        "kernel": "6.1.0-18-amd64",
        "cgroup_mode": "hybrid",
        "cpu_count": 2,
        "load_avg": [0.5, 0.25, 0.1],
        "machine_id": None,
    },
    "runtimes": {},
}


def record(outcome: str, **fields: Any) -> Record:
    values: dict[str, Any] = {
        "suite": "namespaces",
        "check": "pid-ns",
        "runtime": "runc",
        "outcome": outcome,
        "file": SPEC,
        "line": 12,
        "duration_s": 0.25,
    }
    values.update(fields)
    return Record(**values)


def only_case(records: list[Record], meta: dict[str, Any] | None = None) -> TestCase:
    document = JUnitXml.fromstring(junit_xml(META if meta is None else meta, records))
    cases = [case for suite in document for case in suite]
    assert len(cases) == 1
    return cases[0]


def case_element(records: list[Record]) -> ET.Element:
    root = ET.fromstring(junit_xml(META, records))
    element = root.find("testsuite/testcase")
    assert element is not None
    return element


def write_run(path: Path, records: list[Record]) -> Path:
    path.mkdir(parents=True)
    (path / RUN_FILE).write_text(json.dumps(META), encoding="utf-8")
    lines = "".join(item.to_json() + "\n" for item in records)
    (path / RESULTS_FILE).write_text(lines, encoding="utf-8")
    return path


# -- JUnit XML ---------------------------------------------------------


def test_junit_fail_is_failure() -> None:
    failing = record(
        "fail",
        message="ns.pid does not meet the expectation",
        expected="not equal to the host's",
        observed="pid:[4026531836]",
        request="pid: host",
    )

    case = only_case([failing])

    assert case.is_failure
    result = case.result[0]
    assert isinstance(result, Failure)
    assert result.message == "ns.pid does not meet the expectation"
    assert result.type == "fail"
    assert "expected: not equal to the host's" in result.text
    assert "observed: pid:[4026531836]" in result.text
    assert "request: pid: host" in result.text
    assert f"at {SPEC}:12" in result.text


def test_junit_xpass_is_failure() -> None:
    case = only_case([record("xpass", message="a declared deviation did not happen")])

    assert case.is_failure
    assert case.result[0].type == "xpass"
    assert case.result[0].message == "a declared deviation did not happen"


def test_junit_error_has_commands() -> None:
    erred = record(
        "error",
        message="runc run failed: exit status 1",
        commands=["runc run --bundle /tmp/b c1", "runc delete c1"],
    )

    case = only_case([erred])

    assert case.is_error
    result = case.result[0]
    assert isinstance(result, Error)
    assert result.message == "runc run failed: exit status 1"
    assert "runc run --bundle /tmp/b c1" in result.text
    assert "runc delete c1" in result.text


def test_junit_skip_has_reason() -> None:
    case = only_case([record("skip", message="runsc has no network of its own")])

    assert case.is_skipped
    assert isinstance(case.result[0], Skipped)
    assert case.result[0].message == "runsc has no network of its own"


def test_junit_xfail_passes_with_note() -> None:
    case = only_case([record("xfail", message="declared deviation: shares the host's")])

    assert case.is_passed
    assert case.system_out is not None
    assert "xfail" in case.system_out
    assert "declared deviation: shares the host's" in case.system_out


def test_junit_pass_has_no_result() -> None:
    case = only_case([record("pass")])

    assert case.is_passed
    assert case.system_out is None


def test_junit_control_fail_passes() -> None:
    control = record("fail", runtime="host", expected_to_fail=True, message="same namespace")

    case = only_case([control])

    assert case.is_passed
    assert case.system_out is not None
    assert "negative control" in case.system_out


def test_junit_control_pass_fails() -> None:
    control = record("pass", runtime="host", expected_to_fail=True, observed="pid:[1]")

    case = only_case([control])

    assert case.is_failure
    result = case.result[0]
    assert "cannot detect a missing guarantee" in result.message
    assert "host" in result.message
    assert result.type == "control-pass"
    assert "observed: pid:[1]" in result.text


def test_junit_control_xpass_fails() -> None:
    control = record("xpass", runtime="host", expected_to_fail=True)

    assert only_case([control]).is_failure


def test_junit_unknown_outcome_is_error() -> None:
    case = only_case([record("passed")])

    assert case.is_error
    assert case.result[0].type == "unknown-outcome"
    assert "invalid outcome 'passed'" in case.result[0].message


def test_junit_file_and_line_attributes() -> None:
    element = case_element([record("pass", file="suites/a.yaml", line=42)])

    assert element.get("file") == "suites/a.yaml"
    assert element.get("line") == "42"


def test_junit_unknown_location_omitted() -> None:
    element = case_element([record("pass", file="", line=0)])

    assert element.get("file") is None
    assert element.get("line") is None


def test_junit_case_names() -> None:
    element = case_element([record("pass", runtime="docker+runsc", duration_s=1.5)])

    assert element.get("classname") == "isobench.namespaces.docker+runsc"
    assert element.get("name") == "pid-ns"
    assert element.get("time") == "1.5"


def test_junit_control_label_in_name() -> None:
    element = case_element([record("fail", control="no pid namespace")])

    assert element.get("name") == "pid-ns [control: no pid namespace]"


def test_junit_suite_per_suite_name() -> None:
    records = [
        record("pass"),
        record("fail", suite="cgroups", check="memory-limit"),
        record("pass", runtime="docker"),
    ]

    document = JUnitXml.fromstring(junit_xml(META, records))
    suites = list(document)

    assert [suite.name for suite in suites] == ["namespaces", "cgroups"]
    assert suites[0].tests == 2
    assert suites[1].tests == 1
    assert suites[1].failures == 1
    assert document.tests == 3
    assert document.failures == 1


def test_junit_properties() -> None:
    document = JUnitXml.fromstring(junit_xml(META, [record("pass")]))
    suite = next(iter(document))
    properties = {prop.name: prop.value for prop in suite.properties()}

    assert properties["run_id"] == "20250101T000000Z-abc123"
    assert properties["status"] == "complete"
    assert properties["environment.kernel"] == "6.1.0-18-amd64"
    assert properties["environment.cgroup_mode"] == "hybrid"
    assert properties["environment.cpu_count"] == "2"
    assert json.loads(properties["environment.load_avg"]) == [0.5, 0.25, 0.1]
    assert "environment.machine_id" not in properties


def test_junit_properties_on_every_suite() -> None:
    records = [record("pass"), record("pass", suite="cgroups")]

    document = JUnitXml.fromstring(junit_xml(META, records))

    for suite in document:
        names = [prop.name for prop in suite.properties()]
        assert "run_id" in names, suite.name
        assert "status" in names, suite.name


def test_junit_invalid_xml_characters() -> None:
    failing = record("fail", message="colored \x1b[31mred\x00", observed="\ud800")

    text = junit_xml(META, [failing])
    case = only_case([failing])

    assert ET.fromstring(text) is not None
    assert case.result[0].message == "colored \\x1b[31mred\\x00"
    assert "observed: \\ud800" in case.result[0].text


def test_junit_long_field_cut() -> None:
    failing = record("fail", observed="x" * (JUNIT_FIELD_CHARS + 500))

    body = only_case([failing]).result[0].text

    assert "x" * JUNIT_FIELD_CHARS in body
    assert "x" * (JUNIT_FIELD_CHARS + 1) not in body
    assert "500 more characters in results.jsonl" in body


def test_junit_records_from_json() -> None:
    lines = [{"suite": "namespaces", "check": "uts-ns", "runtime": "runc", "outcome": "fail"}]

    document = JUnitXml.fromstring(junit_xml({}, lines))
    case = next(iter(next(iter(document))))

    assert case.name == "uts-ns"
    assert case.is_failure


def test_junit_without_records() -> None:
    root = ET.fromstring(junit_xml(META, []))

    assert root.tag == "testsuites"
    assert root.findall("testsuite") == []


def test_write_junit_writes_file(tmp_path: Path) -> None:
    run_dir = write_run(tmp_path / "run", [record("pass"), record("fail")])

    path = write_junit(run_dir)

    assert path == run_dir / JUNIT_FILE
    assert JUnitXml.fromfile(str(path)).failures == 1


def test_write_junit_out_dir(tmp_path: Path) -> None:
    run_dir = write_run(tmp_path / "run", [record("pass")])
    out_dir = tmp_path / "out" / "nested"

    path = write_junit(run_dir, out_dir)

    assert path == out_dir / JUNIT_FILE
    assert path.is_file()
    assert not (run_dir / JUNIT_FILE).exists()


def test_write_junit_missing_run_json(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="not a run directory"):
        write_junit(tmp_path)


def test_render_writes_junit(tmp_path: Path) -> None:
    run_dir = write_run(tmp_path / "run", [record("fail")])

    paths = render(run_dir)

    assert paths[JUNIT_FILE] == run_dir / JUNIT_FILE
    assert JUnitXml.fromfile(str(paths[JUNIT_FILE])).failures == 1


# -- GitHub Actions annotations ------------------------------------------


def unescape_data(text: str) -> str:
    """Undo the data escaping, in the order that GitHub's runner applies."""
    return text.replace("%0D", "\r").replace("%0A", "\n").replace("%25", "%")


def unescape_property(text: str) -> str:
    unescaped = text.replace("%0D", "\r").replace("%0A", "\n").replace("%3A", ":")
    return unescaped.replace("%2C", ",").replace("%25", "%")


def test_annotation_escaping() -> None:
    message = "100% broken:\r\nfirst, second: third"
    failing = record("fail", message=message, file="suites/a,b:c.yaml", line=7)

    [line] = github_annotations([failing])

    assert line == (
        "::error file=suites/a%2Cb%3Ac.yaml,line=7,"
        "title=FAIL namespaces/pid-ns on runc::"
        "100%25 broken:%0D%0Afirst, second: third"
    )


def test_annotation_escaping_round_trip() -> None:
    message = "50% of %0A, and: more\nnext line"
    failing = record("fail", message=message, file="suites/x%y,z.yaml", expected="a, b")

    [line] = github_annotations([failing])
    head, data = line.removeprefix("::error ").split("::", 1)
    properties = dict(item.split("=", 1) for item in head.split(","))

    assert unescape_property(properties["file"]) == "suites/x%y,z.yaml"
    assert unescape_data(data) == f"{message}\nexpected: a, b"


def test_annotation_kinds() -> None:
    records = [
        record("pass"),
        record("skip"),
        record("xfail"),
        record("fail", runtime="host", expected_to_fail=True),
        record("fail", message="broken"),
        record("xpass", message="deviation did not happen"),
        record("pass", runtime="host", expected_to_fail=True),
        record("error", message="runtime failed"),
    ]

    lines = github_annotations(records)

    assert len(lines) == 4
    assert lines[0].startswith("::error ")
    assert "title=FAIL namespaces/pid-ns on runc::broken" in lines[0]
    assert "title=XPASS " in lines[1]
    assert "title=CONTROL PASSED namespaces/pid-ns on host::" in lines[2]
    assert "cannot detect a missing guarantee" in lines[2]
    assert lines[3].startswith("::warning ")
    assert lines[3].endswith("::runtime failed")


def test_annotation_unknown_outcome() -> None:
    [line] = github_annotations([record("passed")])

    assert line.startswith("::warning ")
    assert "title=UNKNOWN OUTCOME namespaces/pid-ns on runc::" in line
    assert "invalid outcome 'passed'" in line


def test_annotation_without_file() -> None:
    [line] = github_annotations([record("fail", file="", line=0, message="m")])

    assert line == "::error title=FAIL namespaces/pid-ns on runc::m"


def test_annotation_workspace_relative(tmp_path: Path) -> None:
    inside = record("fail", file=str(tmp_path / "suites" / "a.yaml"))
    outside = record("fail", file="/elsewhere/b.yaml")

    lines = github_annotations([inside, outside], workspace=tmp_path)

    assert lines[0].startswith("::error file=suites/a.yaml,")
    assert lines[1].startswith("::error file=/elsewhere/b.yaml,")


def test_annotation_warning_cap() -> None:
    errors = [record("error", check=f"check-{index}") for index in range(25)]

    lines = github_annotations(errors)

    warnings = [line for line in lines if line.startswith("::warning ")]
    assert len(warnings) == ANNOTATIONS_PER_STEP
    assert len(lines) == ANNOTATIONS_PER_STEP + 1
    assert lines[-1].startswith("::notice ")
    assert "15 of them are left out" in lines[-1]


def test_annotation_failures_never_cut() -> None:
    failures = [record("fail", check=f"check-{index}") for index in range(15)]

    lines = github_annotations(failures)

    assert len([line for line in lines if line.startswith("::error ")]) == 15
    assert lines[-1].startswith("::notice ")
    assert "15 failures" in lines[-1]


def test_annotation_no_summary_within_cap() -> None:
    records = [record("fail", check=f"f-{index}") for index in range(ANNOTATIONS_PER_STEP)]
    records += [record("error", check=f"e-{index}") for index in range(ANNOTATIONS_PER_STEP)]

    lines = github_annotations(records)

    assert len(lines) == 2 * ANNOTATIONS_PER_STEP
    assert not any(line.startswith("::notice") for line in lines)


def test_annotation_message_cut() -> None:
    [line] = github_annotations([record("fail", message="y" * (ANNOTATION_MESSAGE_CHARS * 2))])

    assert "y" * ANNOTATION_MESSAGE_CHARS in line
    assert "y" * (ANNOTATION_MESSAGE_CHARS + 1) not in line


# -- Step summary ----------------------------------------------------------


def test_step_summary_appends(tmp_path: Path) -> None:
    path = tmp_path / "step_summary"
    path.write_text("# Earlier step output\n", encoding="utf-8")

    written = write_step_summary("## isobench\n", {"GITHUB_STEP_SUMMARY": str(path)})

    assert written == path
    assert path.read_text(encoding="utf-8") == "# Earlier step output\n## isobench\n"


def test_step_summary_twice(tmp_path: Path) -> None:
    path = tmp_path / "step_summary"
    environ = {"GITHUB_STEP_SUMMARY": str(path)}

    write_step_summary("first\n", environ)
    write_step_summary("second", environ)

    assert path.read_text(encoding="utf-8") == "first\nsecond\n"


def test_step_summary_after_unterminated_line(tmp_path: Path) -> None:
    path = tmp_path / "step_summary"
    path.write_text("no newline", encoding="utf-8")

    write_step_summary("## isobench\n", {"GITHUB_STEP_SUMMARY": str(path)})

    assert path.read_text(encoding="utf-8") == "no newline\n## isobench\n"


def test_step_summary_without_variable(tmp_path: Path) -> None:
    assert write_step_summary("text\n", {}) is None
    assert write_step_summary("text\n", {"GITHUB_STEP_SUMMARY": ""}) is None
    assert list(tmp_path.iterdir()) == []


def test_step_summary_cut_at_line(tmp_path: Path) -> None:
    path = tmp_path / "step_summary"
    line = "| check | " + "é" * 40 + " |\n"
    text = line * (STEP_SUMMARY_MAX_BYTES // len(line.encode()) + 100)

    write_step_summary(text, {"GITHUB_STEP_SUMMARY": str(path)})
    written = path.read_bytes()
    shown, note = written.decode().rsplit("\n\n", 1)

    assert len(written) <= STEP_SUMMARY_MAX_BYTES
    assert text.startswith(shown + "\n")
    assert shown.endswith(line.rstrip("\n"))
    assert note.startswith("_This summary was cut to fit GitHub's limit of 1 MiB per step")
    assert note.endswith("lines are shown._\n")


def test_step_summary_cut_counts_existing(tmp_path: Path) -> None:
    path = tmp_path / "step_summary"
    earlier = "x" * (STEP_SUMMARY_MAX_BYTES // 2) + "\n"
    path.write_text(earlier, encoding="utf-8")
    text = "line of the report\n" * (STEP_SUMMARY_MAX_BYTES // 19)

    write_step_summary(text, {"GITHUB_STEP_SUMMARY": str(path)})
    written = path.read_text(encoding="utf-8")

    assert written.startswith(earlier)
    assert len(written.encode()) <= STEP_SUMMARY_MAX_BYTES
    assert "This summary was cut" in written


def test_step_summary_cut_closes_fence(tmp_path: Path) -> None:
    path = tmp_path / "step_summary"
    text = "## Failures\n\n```\n" + "runc run --bundle /tmp/bundle c1\n" * 40_000

    write_step_summary(text, {"GITHUB_STEP_SUMMARY": str(path)})
    written = path.read_text(encoding="utf-8")

    assert len(written.encode()) <= STEP_SUMMARY_MAX_BYTES
    assert "\n```\n\n_This summary was cut" in written


def test_step_summary_full_file(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "step_summary"
    earlier = b"x" * STEP_SUMMARY_MAX_BYTES
    path.write_bytes(earlier)

    with caplog.at_level(logging.WARNING):
        written = write_step_summary("## isobench\n", {"GITHUB_STEP_SUMMARY": str(path)})

    assert written == path
    assert path.read_bytes() == earlier
    assert "was not written" in caplog.text


# -- Results line schema -----------------------------------------------------


def full_record() -> Record:
    return Record(
        suite="security",
        check="cap-drop-all",
        runtime="docker+runsc",
        outcome="xfail",
        message="declared deviation: gVisor keeps effective capabilities",
        title="cap_drop ALL leaves no capability",
        duration_s=1.234,
        file="suites/security.yaml",
        line=88,
        commands=["docker run --rm --cap-drop ALL isobench-probe"],
        expected="empty",
        observed="cap_chown,cap_kill",
        request="cap_drop: [ALL]",
        fact="caps.effective",
        notes=["stdout cut at 4 Mi characters"],
        control="no cap_drop",
        expected_to_fail=True,
        host="root@10.0.0.2",
        source_runtime="docker+runsc",
    )


def schema_lines() -> list[dict[str, Any]]:
    records = [
        full_record(),
        Record("namespaces", "pid-ns", "runc", "pass"),
        Record("namespaces", "pid-ns", "host", "fail", expected_to_fail=True),
        Record("cgroups", "memory-oom", "runsc", "error", commands=["runsc run c1"]),
        Record("process", "argv", "podman", "skip", message="no shell in the image"),
        Record("process", "signals", "runsc", "xpass"),
    ]
    return [json.loads(item.to_json()) for item in records]


def test_results_schema_file_current() -> None:
    written = json.loads((REPO / "docs" / "results.schema.json").read_text())

    assert written == results_schema(), (
        "run '.venv/bin/isobench schema --results --out docs/results.schema.json'"
    )


def test_results_schema_file_format() -> None:
    text = (REPO / "docs" / "results.schema.json").read_text()

    assert text == json.dumps(results_schema(), indent=2) + "\n"


def test_result_line_mirrors_record() -> None:
    record_fields = {field.name: field for field in dataclasses.fields(Record)}
    defaults = dataclasses.asdict(Record(suite="s", check="c", runtime="r", outcome="pass"))

    assert list(ResultLine.model_fields) == list(record_fields)
    for name, field in ResultLine.model_fields.items():
        assert field.description, name
        if field.is_required():
            assert record_fields[name].default is dataclasses.MISSING, name
        else:
            assert field.get_default(call_default_factory=True) == defaults[name], name


def test_results_schema_outcomes() -> None:
    assert results_schema()["properties"]["outcome"]["enum"] == list(OUTCOMES)


def test_results_schema_valid() -> None:
    jsonschema.Draft202012Validator.check_schema(results_schema())


def test_results_schema_accepts_records() -> None:
    validator = jsonschema.Draft202012Validator(results_schema())

    for line in schema_lines():
        errors = [error.message for error in validator.iter_errors(line)]
        assert errors == [], line


def test_results_schema_full_record_sets_every_field() -> None:
    line = json.loads(full_record().to_json())
    defaults = dataclasses.asdict(Record(suite="", check="", runtime="", outcome=""))

    assert set(line) == set(results_schema()["properties"])
    assert all(line[name] != defaults[name] for name in line)


def test_results_schema_rejects_unknown_outcome() -> None:
    line = json.loads(Record("namespaces", "pid-ns", "runc", "passed").to_json())

    with pytest.raises(jsonschema.ValidationError, match="'passed' is not one of"):
        jsonschema.validate(line, results_schema())


def test_results_schema_rejects_missing_field() -> None:
    line = json.loads(Record("namespaces", "pid-ns", "runc", "pass").to_json())
    del line["runtime"]

    with pytest.raises(jsonschema.ValidationError, match="'runtime' is a required property"):
        jsonschema.validate(line, results_schema())


def test_results_schema_rejects_unknown_field() -> None:
    line = json.loads(Record("namespaces", "pid-ns", "runc", "pass").to_json())
    line["verdict"] = "pass"

    with pytest.raises(jsonschema.ValidationError, match="Additional properties"):
        jsonschema.validate(line, results_schema())
