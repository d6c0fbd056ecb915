"""Tests of isobench.spec.loader: valid suites load, and malformed ones raise SuiteError."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from isobench.errors import SuiteError
from isobench.spec.loader import LoadedSuite, find_suites, load_suite, parse_suite, suite_name
from isobench.spec.schema import FactCheck, RunCheck
from tests.conftest import SUITES

SUITE_PATH = Path("suites/example.yaml")
REAL_SUITE = Path(__file__).resolve().parents[2] / "suites" / "namespaces.yaml"

MINIMAL = """\
suite: example
checks:
  - id: pid-private
    title: The container has its own PID namespace
    fact: ns.pid
    expect: {not_equals: {host: ns.pid}}
    controls:
      - runtime: host

  - id: true-exits-zero
    title: A command of its own exits with status 0
    run: ["true"]
    expect:
      exit_code: {equals: "0"}
    controls:
      - runtime: host
"""


def parse(text: str) -> LoadedSuite:
    return parse_suite(text, SUITE_PATH)


def suite_error(text: str) -> SuiteError:
    """Parse ``text`` and return the SuiteError it must raise."""
    with pytest.raises(SuiteError) as info:
        parse(text)
    return info.value


def one_check(body: str) -> str:
    """Return a suite whose only check starts on line 3 with ``body`` (indented by four)."""
    lines = body.strip("\n").splitlines()
    indented = "\n".join(f"    {line}" if line else "" for line in lines)
    return f"suite: example\nchecks:\n  - id: only\n{indented}\n"


FACT_CHECK = """\
title: T
fact: hostname
expect: {equals: x}
controls:
  - runtime: host
"""


# -- a valid suite -----------------------------------------------------------


def test_minimal_suite_name() -> None:
    loaded = parse(MINIMAL)

    assert loaded.name == "example"
    assert loaded.path == SUITE_PATH


def test_minimal_suite_check_ids() -> None:
    loaded = parse(MINIMAL)

    assert [check.id for check in loaded.checks] == ["pid-private", "true-exits-zero"]


def test_minimal_suite_check_lines() -> None:
    loaded = parse(MINIMAL)

    assert [check.line for check in loaded.checks] == [3, 10]


def test_minimal_suite_check_kinds() -> None:
    fact_check, run_check = parse(MINIMAL).checks

    assert isinstance(fact_check.check, FactCheck)
    assert isinstance(run_check.check, RunCheck)


def test_loaded_check_carries_suite() -> None:
    check = parse(MINIMAL).checks[0]

    assert check.suite == "example"
    assert check.path == SUITE_PATH


def test_request_ref_with_hostname() -> None:
    text = one_check("""\
title: T
request: {hostname: box}
fact: hostname
expect: {equals: {request: hostname}}
controls:
  - runtime: host
""")

    assert parse(text).checks[0].check.request.hostname == "box"


def test_literal_braces_in_argv() -> None:
    text = one_check("""\
title: T
run: [awk, "{print}", "{host.hostname}"]
expect: {exit_code: {equals: "0"}}
controls:
  - runtime: host
""")

    check = parse(text).checks[0].check

    assert isinstance(check, RunCheck)
    assert check.run[1] == "{print}"


# -- YAML faults -------------------------------------------------------------


def test_invalid_yaml_line() -> None:
    error = suite_error("suite: example\nchecks:\n  - id: [a\n    title: T\n")

    assert error.path == str(SUITE_PATH)
    assert error.line == 4
    assert "invalid YAML" in error.problem


def test_empty_file() -> None:
    error = suite_error("")

    assert error.path == str(SUITE_PATH)
    assert error.line == 1
    assert "empty" in error.problem


def test_comment_only_file() -> None:
    error = suite_error("# nothing here yet\n")

    assert "empty" in error.problem


def test_top_level_not_mapping() -> None:
    error = suite_error("- just\n- a list\n")

    assert error.line == 1
    assert error.field is None


def test_duplicate_yaml_key() -> None:
    text = one_check("""\
title: T
fact: hostname
fact: ns.pid
expect: {equals: x}
controls:
  - runtime: host
""")

    error = suite_error(text)

    assert error.line == 6
    assert error.field == "fact"
    assert "duplicate" in error.problem


def test_non_string_key() -> None:
    error = suite_error("suite: example\n1: one\n")

    assert error.line == 2
    assert "strings" in error.problem


# -- structure faults --------------------------------------------------------


def test_unknown_top_level_key() -> None:
    error = suite_error("suite: example\nowner: someone\n" + MINIMAL.split("\n", 1)[1])

    assert error.line == 2
    assert error.field == "owner"


def test_unknown_check_key() -> None:
    # A misspelt key must name the check's file, line and field, so that the
    # check cannot drop out of the suite unnoticed.
    text = MINIMAL.replace("    expect:\n      exit_code", "    expcet:\n      exit_code")

    error = suite_error(text)

    assert error.path == str(SUITE_PATH)
    assert error.line == 13
    assert error.field == "checks[1].expcet"


def test_unknown_key_after_controls() -> None:
    error = suite_error(one_check(FACT_CHECK + "severity: high\n"))

    assert error.line == 9
    assert error.field == "checks[0].severity"


def test_misspelt_fact_key() -> None:
    error = suite_error(one_check(FACT_CHECK.replace("fact:", "fakt:")))

    assert error.line == 5
    assert error.field == "checks[0].fakt"
    assert "unknown field" in error.problem


def test_check_without_fact_or_run() -> None:
    text = one_check("""\
title: T
expect: {equals: x}
controls:
  - runtime: host
""")

    error = suite_error(text)

    assert error.line == 3
    assert "'fact' or 'run'" in error.problem


def test_check_with_fact_and_run() -> None:
    error = suite_error(one_check(FACT_CHECK + 'run: ["true"]\n'))

    assert error.line == 9
    assert error.field == "checks[0].run"


def test_bad_check_id() -> None:
    error = suite_error(one_check(FACT_CHECK).replace("id: only", "id: Only_One"))

    assert error.line == 3
    assert error.field == "checks[0].id"


def test_empty_checks_list() -> None:
    error = suite_error("suite: example\nchecks: []\n")

    assert error.line == 2
    assert error.field == "checks"


def test_timeout_out_of_range() -> None:
    error = suite_error(one_check(FACT_CHECK + "timeout_s: 0\n"))

    assert error.line == 9
    assert error.field == "checks[0].timeout_s"


def test_duplicate_check_ids() -> None:
    text = MINIMAL.replace("id: true-exits-zero", "id: pid-private")

    error = suite_error(text)

    assert error.line == 10
    assert error.field == "checks[1].id"
    assert "line 3" in error.problem


# -- expectation faults ------------------------------------------------------


def test_empty_stderr_list() -> None:
    # ``stderr: []`` would assert nothing about what the command prints.
    text = one_check("""\
title: T
run: [sh, -c, "echo x >&2"]
expect:
  stderr: []
controls:
  - runtime: host
""")

    error = suite_error(text)

    assert error.path == str(SUITE_PATH)
    assert error.line == 7
    assert error.field == "checks[0].expect.stderr"


def test_run_expect_without_keys() -> None:
    text = one_check("""\
title: T
run: ["true"]
expect: {}
controls:
  - runtime: host
""")

    error = suite_error(text)

    assert error.line == 6
    assert error.field == "checks[0].expect"


def test_contains_empty_list() -> None:
    error = suite_error(one_check(FACT_CHECK.replace("{equals: x}", "{contains: []}")))

    assert error.line == 6
    assert error.field == "checks[0].expect"
    assert "empty list" in error.problem


def test_matcher_two_keys() -> None:
    error = suite_error(one_check(FACT_CHECK.replace("{equals: x}", "{equals: x, matches: y}")))

    assert error.line == 6
    assert "exactly one" in error.problem


def test_matcher_unknown_key() -> None:
    error = suite_error(one_check(FACT_CHECK.replace("{equals: x}", "{is: x}")))

    assert error.line == 6
    assert "exactly one" in error.problem


def test_matcher_null_operand() -> None:
    error = suite_error(one_check(FACT_CHECK.replace("{equals: x}", "{equals: null}")))

    assert error.line == 6
    assert "no value" in error.problem


def test_invalid_regex() -> None:
    error = suite_error(one_check(FACT_CHECK.replace("{equals: x}", "{matches: '(unclosed'}")))

    assert error.line == 6
    assert error.field == "checks[0].expect.matches"
    assert "regular expression" in error.problem


# -- name references ---------------------------------------------------------


def test_unknown_fact() -> None:
    error = suite_error(one_check(FACT_CHECK.replace("fact: hostname", "fact: ns.pidd")))

    assert error.line == 5
    assert error.field == "checks[0].fact"
    assert "ns.pidd" in error.problem


def test_unknown_host_ref() -> None:
    text = one_check(FACT_CHECK.replace("{equals: x}", "{not_equals: {host: ns.pidd}}"))

    error = suite_error(text)

    assert error.line == 6
    assert error.field == "checks[0].expect.not_equals.host"
    assert "ns.pidd" in error.problem


def test_unknown_host_fact_key() -> None:
    text = one_check("""\
title: T
run: ["true"]
expect:
  host:
    hostnme: {equals: x}
controls:
  - runtime: host
""")

    error = suite_error(text)

    assert error.line == 8
    assert error.field == "checks[0].expect.host.hostnme"


def test_unknown_placeholder() -> None:
    text = one_check("""\
title: T
run: [cat, "{print}", "{host.marker.fiel}"]
expect: {exit_code: {equals: "0"}}
controls:
  - runtime: host
""")

    error = suite_error(text)

    assert error.line == 5
    assert error.field == "checks[0].run[2]"
    assert "{host.marker.fiel}" in error.problem


def test_request_ref_unset() -> None:
    text = one_check(FACT_CHECK.replace("{equals: x}", "{equals: {request: hostname}}"))

    error = suite_error(text)

    assert error.line == 6
    assert error.field == "checks[0].expect.equals.request"
    assert "hostname" in error.problem


def test_request_ref_unknown_field() -> None:
    text = one_check(FACT_CHECK.replace("{equals: x}", "{equals: {request: hostnme}}"))

    error = suite_error(text)

    assert error.line == 6
    assert "hostnme" in error.problem


# -- controls and deviations -------------------------------------------------


def test_unknown_control_runtime() -> None:
    error = suite_error(one_check(FACT_CHECK.replace("runtime: host", "runtime: lxd")))

    assert error.line == 8
    assert error.field == "checks[0].controls[0]"
    assert "lxd" in error.problem


def test_unknown_request_control_runtime() -> None:
    text = one_check(FACT_CHECK + "  - request: {pid: host}\n    runtimes: [docker, lxd]\n")

    error = suite_error(text)

    assert error.line == 9
    assert error.field == "checks[0].controls[1]"


def test_unknown_deviation_runtime() -> None:
    text = one_check(FACT_CHECK + "deviations:\n  - runtimes: [runsc, gvisor]\n    reason: r\n")

    error = suite_error(text)

    assert error.line == 10
    assert error.field == "checks[0].deviations[0]"
    assert "gvisor" in error.problem


def test_control_without_runtime_or_request() -> None:
    text = one_check(FACT_CHECK.replace("  - runtime: host", "  - runtimes: [docker]"))

    error = suite_error(text)

    assert error.line == 8
    assert error.field == "checks[0].controls[0]"


def test_control_with_runtime_and_request() -> None:
    text = one_check(
        FACT_CHECK.replace(
            "  - runtime: host", "  - {runtime: host, request: {pid: host}, runtimes: [docker]}"
        )
    )

    error = suite_error(text)

    assert error.line == 8
    assert error.field == "checks[0].controls[0]"


def test_request_control_without_runtimes() -> None:
    error = suite_error(one_check(FACT_CHECK + "  - request: {pid: host}\n"))

    assert error.line == 9
    assert error.field == "checks[0].controls[1]"
    assert "runtimes" in error.problem


def test_request_control_invalid_value() -> None:
    text = one_check(FACT_CHECK + "  - request: {pid: shared}\n    runtimes: [docker]\n")

    error = suite_error(text)

    assert error.line == 9
    assert error.field == "checks[0].controls[1].request"


def test_check_without_controls() -> None:
    text = one_check(FACT_CHECK.replace("controls:\n  - runtime: host\n", "controls: []\n"))

    error = suite_error(text)

    assert error.line == 7
    assert error.field == "checks[0].controls"


# -- faults the loader does not turn into SuiteError yet ---------------------


def test_empty_value_suite_error() -> None:
    error = suite_error("suite: example\ndescription:\n" + MINIMAL.split("\n", 1)[1])

    assert error.line == 2


def test_unknown_tag_suite_error() -> None:
    error = suite_error("suite: !name example\n" + MINIMAL.split("\n", 1)[1])

    assert error.line == 1


def test_merge_key_handled() -> None:
    # Either outcome is fine: merge the keys, or reject them with the line.
    text = one_check("<<: {title: T}\n" + FACT_CHECK.replace("title: T\n", ""))

    try:
        loaded = parse(text)
    except SuiteError as error:
        assert error.line == 4
    else:
        assert loaded.checks[0].check.title == "T"


def test_recursive_alias_suite_error() -> None:
    error = suite_error("suite: example\nchecks: &loop [*loop]\n")

    assert error.line == 2


def test_null_expectation_rejected() -> None:
    text = one_check("""\
title: T
run: [sh, -c, "echo x >&2"]
expect:
  exit_code: {equals: "0"}
  stderr: null
controls:
  - runtime: host
""")

    error = suite_error(text)

    assert error.line == 8


# -- files -------------------------------------------------------------------


def test_load_suite_from_file(tmp_path: Path) -> None:
    path = tmp_path / "example.yaml"
    path.write_text(MINIMAL, encoding="utf-8")

    loaded = load_suite(path)

    assert loaded.path == path
    assert loaded.checks[1].path == path


def test_load_suite_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.yaml"

    with pytest.raises(SuiteError) as info:
        load_suite(path)

    assert info.value.path == str(path)
    assert info.value.line is None


def test_load_suite_error_names_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("suite: broken\nchecks: []\n", encoding="utf-8")

    with pytest.raises(SuiteError) as info:
        load_suite(path)

    assert info.value.path == str(path)
    assert str(info.value).startswith(f"{path}:2:")


def test_find_suites_all(tmp_path: Path) -> None:
    for name in ("b", "a"):
        (tmp_path / f"{name}.yaml").write_text(MINIMAL, encoding="utf-8")
    (tmp_path / "notes.txt").write_text("not a suite", encoding="utf-8")

    assert find_suites(tmp_path) == [tmp_path / "a.yaml", tmp_path / "b.yaml"]


def test_find_suites_by_name(tmp_path: Path) -> None:
    for name in ("a", "b"):
        (tmp_path / f"{name}.yaml").write_text(MINIMAL, encoding="utf-8")

    assert find_suites(tmp_path, ["b"]) == [tmp_path / "b.yaml"]


def test_find_suites_unknown_name(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(MINIMAL, encoding="utf-8")

    with pytest.raises(SuiteError) as info:
        find_suites(tmp_path, ["a", "nope"])

    assert "'nope'" in info.value.problem
    assert "available: a" in info.value.problem


def test_find_suites_directory(tmp_path: Path) -> None:
    """A directory of test_*.py modules is one suite, named by the directory."""
    (tmp_path / "a.yaml").write_text(MINIMAL, encoding="utf-8")
    (tmp_path / "staged").mkdir()
    (tmp_path / "staged" / "test_one.py").write_text("", encoding="utf-8")
    (tmp_path / "staged" / "conftest.py").write_text("", encoding="utf-8")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "notes.txt").write_text("not a suite", encoding="utf-8")

    assert find_suites(tmp_path) == [tmp_path / "a.yaml", tmp_path / "staged"]
    assert find_suites(tmp_path, ["staged"]) == [tmp_path / "staged"]
    assert suite_name(tmp_path / "staged") == "staged"
    assert suite_name(tmp_path / "test_props.py") == "props"


def test_suite_directory_modules_name_their_suite() -> None:
    """Each module of a suite directory in suites/ sets SUITE to the directory's name,
    which its records carry."""
    directories = [
        path for path in SUITES.iterdir() if path.is_dir() and any(path.glob("test_*.py"))
    ]
    assert directories
    for directory in directories:
        for module in directory.glob("test_*.py"):
            assert f'\nSUITE = "{directory.name}"\n' in module.read_text(), module


# -- the real suite file ---------------------------------------------------------


@pytest.fixture(scope="module")
def real_suite() -> LoadedSuite:
    return load_suite(REAL_SUITE)


def test_real_suite_check_count(real_suite: LoadedSuite) -> None:
    assert len(real_suite.checks) >= 12


def test_real_suite_controls(real_suite: LoadedSuite) -> None:
    without = [check.id for check in real_suite.checks if not check.check.controls]

    assert without == []


def test_real_suite_unique_ids(real_suite: LoadedSuite) -> None:
    ids = [check.id for check in real_suite.checks]

    assert len(ids) == len(set(ids))


def test_real_suite_lines_ascend(real_suite: LoadedSuite) -> None:
    lines = [check.line for check in real_suite.checks]

    assert lines == sorted(lines)
    assert len(set(lines)) == len(lines)


# -- random input ------------------------------------------------------------

CHECK_KEYS = [
    "id",
    "title",
    "fact",
    "run",
    "expect",
    "request",
    "controls",
    "deviations",
    "timeout_s",
    "equals",
    "contains",
    "host",
    "runtime",
    "runtimes",
    "stderr",
    "exit_code",
]

scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
junk = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(CHECK_KEYS) | st.text(), children, max_size=4)
    ),
    max_leaves=20,
)
check_mappings = st.dictionaries(st.sampled_from(CHECK_KEYS) | st.text(), junk, max_size=8)


def parse_or_suite_error(data: Any) -> None:
    """Dump ``data`` as the only check of a suite; loading must succeed or raise SuiteError."""
    text = yaml.safe_dump({"suite": "fuzz", "checks": [data]}, allow_unicode=True)
    with contextlib.suppress(SuiteError):
        parse(text)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(check_mappings)
def test_junk_check_mapping(data: dict[str, Any]) -> None:
    parse_or_suite_error(data)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.fixed_dictionaries(
        {"id": st.text(), "title": st.text(), "fact": st.text(), "expect": junk, "controls": junk},
        optional={"run": junk, "request": junk, "deviations": junk},
    )
)
def test_junk_check_fields(data: dict[str, Any]) -> None:
    parse_or_suite_error(data)


@settings(max_examples=100, deadline=None)
@given(junk)
def test_junk_check_value(data: Any) -> None:
    parse_or_suite_error(data)


YAML_PIECES = [
    *"abxyz019 :-_[]{},'\"#&*!|>?.\n",
    "id",
    "fact",
    "run",
    "expect",
    "equals",
    "controls",
    "runtime",
    "\n    ",
    "\n  - ",
]


@settings(max_examples=300, deadline=None)
@example("stderr:")
@given(st.lists(st.sampled_from(YAML_PIECES), max_size=30).map("".join))
def test_junk_check_text(body: str) -> None:
    text = f"suite: fuzz\nchecks:\n  - id: only\n    title: T\n    {body}\n"
    with contextlib.suppress(SuiteError):
        parse(text)
