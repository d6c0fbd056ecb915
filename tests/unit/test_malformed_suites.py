"""Broken and hostile suite files: each is a SuiteError with file and line, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from isobench.errors import SuiteError
from isobench.spec.loader import MAX_SUITE_BYTES, LoadedSuite, load_suite, parse_suite

CORPUS = Path(__file__).resolve().parents[1] / "data" / "malformed"

#: Corpus file: (line, field) the error must name; None where the file has no field.
EXPECTED = {
    "alias-bomb.yaml": (1, None),
    "asserts-nothing.yaml": (6, "checks[0].expect.stderr"),
    "binary.yaml": (1, None),
    "duplicate-key.yaml": (2, "suite"),
    "empty.yaml": (1, None),
    "latin1.yaml": (1, None),
    "merge-key.yaml": (3, "<<"),
    "no-controls.yaml": (7, "checks[0].controls"),
    "scalar.yaml": (1, None),
    "tabs.yaml": (3, None),
    "unknown-field.yaml": (8, "checks[0].expectt"),
    "wrong-request-type.yaml": (8, "checks[0].request.hostname"),
    "wrong-type.yaml": (8, "checks[0].timeout_s"),
}

VALID = """\
suite: fuzz
checks:
  - id: a
    title: T
    fact: hostname
    expect: {equals: x}
    controls: [{runtime: host}]
"""


def test_corpus_complete() -> None:
    assert sorted(p.name for p in CORPUS.glob("*.yaml")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_corpus_file_rejected(name: str) -> None:
    line, field = EXPECTED[name]

    with pytest.raises(SuiteError) as info:
        load_suite(CORPUS / name)

    assert info.value.path == str(CORPUS / name)
    assert info.value.line == line
    assert info.value.field == field


def test_huge_file_rejected(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    with big.open("w") as out:
        out.write("suite: big\nchecks:\n")
        while out.tell() <= MAX_SUITE_BYTES:
            out.write("  - {id: a, title: T, fact: hostname, expect: {equals: x}}\n")

    with pytest.raises(SuiteError, match="at most 4 MiB"):
        load_suite(big)


FUZZ = settings(
    max_examples=400,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
JSON_LIKE = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
KEYS = st.sampled_from(
    ["suite", "checks", "id", "title", "fact", "run", "expect", "controls", "request", "x"]
)


def _parse(text: str) -> LoadedSuite | None:
    try:
        return parse_suite(text, Path("fuzz.yaml"))
    except SuiteError as exc:
        assert exc.path == "fuzz.yaml"
        return None


@FUZZ
@given(text=st.text(max_size=300))
def test_any_text_suite_error(text: str) -> None:
    """Arbitrary text loads or is a SuiteError, nothing else."""
    _parse(text)


@FUZZ
@given(document=st.dictionaries(KEYS, JSON_LIKE, max_size=5))
def test_any_document_suite_error(document: dict[str, object]) -> None:
    """Arbitrary YAML documents with suite-like keys load or are a SuiteError."""
    _parse(yaml.safe_dump(document))


@FUZZ
@given(position=st.integers(0, len(VALID) - 1), junk=st.text(min_size=1, max_size=6))
def test_mutated_suite_error(position: int, junk: str) -> None:
    """A valid suite with a few characters replaced loads or is a SuiteError."""
    _parse(VALID[:position] + junk + VALID[position + len(junk) :])
