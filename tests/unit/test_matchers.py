"""Tests of isobench.spec.matchers.judge: every matcher kind, missing facts and message texts."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from isobench.spec.matchers import SHOWN_CHARS, SHOWN_ITEMS, Judgement, Value, judge
from isobench.spec.schema import HostRef, Matcher, RequestRef


def matcher(**spec: Any) -> Matcher:
    return Matcher.model_validate(spec)


def no_refs(ref: HostRef | RequestRef) -> Value:
    raise AssertionError(f"the matcher has no reference to resolve, but got {ref!r}")


def refs(values: dict[str, Value]) -> Callable[[HostRef | RequestRef], Value]:
    """Return a resolver that looks host and request names up in ``values``."""

    def resolve(ref: HostRef | RequestRef) -> Value:
        name = ref.host if isinstance(ref, HostRef) else ref.request
        return values[name]

    return resolve


def check(spec: dict[str, Any], observed: Value) -> Judgement:
    return judge(matcher(**spec), observed, no_refs)


# -- each kind, passing and failing ------------------------------------------

CASES = [
    # (matcher, observed, ok)
    ({"equals": "1"}, "1", True),
    ({"equals": "1"}, "2", False),
    ({"equals": 0}, "0", True),
    ({"equals": "0"}, 0, True),
    ({"equals": ["a", "b"]}, ["a", "b"], True),
    ({"equals": ["a", "b"]}, ["b", "a"], False),
    ({"equals": ["a"]}, ["a", "b"], False),
    ({"not_equals": "1"}, "2", True),
    ({"not_equals": "1"}, "1", False),
    ({"not_equals": ["a"]}, ["a", "b"], True),
    ({"not_equals": ["a"]}, ["a"], False),
    ({"contains": "cat"}, "concatenate", True),
    ({"contains": "dog"}, "concatenate", False),
    ({"contains": "lo"}, ["lo", "eth0"], True),
    ({"contains": "l"}, ["lo", "eth0"], False),
    ({"contains": ["lo", "eth0"]}, ["eth0", "lo", "wlan0"], True),
    ({"contains": ["lo", "eth1"]}, ["eth0", "lo"], False),
    ({"contains": ["con", "nate"]}, "concatenate", True),
    ({"not_contains": "dog"}, "concatenate", True),
    ({"not_contains": "cat"}, "concatenate", False),
    ({"not_contains": "eth1"}, ["lo", "eth0"], True),
    ({"not_contains": "eth0"}, ["lo", "eth0"], False),
    ({"not_contains": ["eth1", "eth0"]}, ["lo", "eth0"], False),
    ({"matches": r"^pid:\[\d+\]$"}, "pid:[4026531836]", True),
    ({"matches": r"^pid:\[\d+\]$"}, "net:[4026531836]", False),
    ({"matches": "^eth"}, ["lo", "eth0"], True),
    ({"matches": "^wlan"}, ["lo", "eth0"], False),
    ({"not_matches": "^wlan"}, ["lo", "eth0"], True),
    ({"not_matches": "^eth"}, ["lo", "eth0"], False),
    ({"not_matches": "x"}, "abc", True),
    ({"not_matches": "b"}, "abc", False),
    ({"one_of": ["1", "2"]}, "2", True),
    ({"one_of": ["1", "2"]}, "3", False),
    ({"one_of": ["1", "2"]}, ["1"], False),
    ({"subset_of": ["lo"]}, ["lo"], True),
    ({"subset_of": ["lo", "eth0"]}, ["lo"], True),
    ({"subset_of": ["lo"]}, ["lo", "eth0"], False),
    ({"subset_of": ["lo"]}, [], True),
    ({"disjoint_from": ["eth0"]}, ["lo"], True),
    ({"disjoint_from": ["eth0", "eth1"]}, ["lo", "eth1"], False),
    ({"empty": True}, "", True),
    ({"empty": True}, [], True),
    ({"empty": True}, "x", False),
    ({"empty": True}, ["x"], False),
    ({"empty": False}, ["x"], True),
    ({"empty": False}, "x", True),
    ({"empty": False}, [], False),
    ({"empty": False}, "", False),
]


@pytest.mark.parametrize(("spec", "observed", "ok"), CASES)
def test_judge_kind_verdict(spec: dict[str, Any], observed: Value, ok: bool) -> None:
    assert check(spec, observed).ok is ok


# -- a missing fact ----------------------------------------------------------

EVERY_KIND = [
    {"equals": "x"},
    {"equals": ["x"]},
    {"not_equals": "x"},
    {"not_equals": ["x"]},
    {"contains": "x"},
    {"not_contains": "x"},
    {"not_contains": ["x", "y"]},
    {"matches": ".*"},
    {"not_matches": "x"},
    {"one_of": ["x"]},
    {"subset_of": ["x"]},
    {"disjoint_from": ["x"]},
    {"empty": True},
    {"empty": False},
]


@pytest.mark.parametrize("spec", EVERY_KIND, ids=lambda spec: next(iter(spec)))
def test_missing_fact_fails(spec: dict[str, Any]) -> None:
    assert check(spec, None).ok is False


@pytest.mark.parametrize("kind", ["not_equals", "not_contains", "disjoint_from"])
def test_missing_fact_host_ref_fails(kind: str) -> None:
    judgement = judge(matcher(**{kind: {"host": "ns.pid"}}), None, refs({"ns.pid": "pid:[1]"}))

    assert judgement.ok is False


def test_missing_fact_equals_empty_list() -> None:
    # A host fact such as net.if.external is [] on a host with only a loopback.
    resolve = refs({"net.if.external": []})

    judgement = judge(matcher(equals={"host": "net.if.external"}), None, resolve)

    assert judgement.ok is False


def test_missing_fact_observed_text() -> None:
    assert check({"equals": "x"}, None).observed == "nothing (the fact is missing)"


# -- operand references ------------------------------------------------------


def test_host_ref_resolved() -> None:
    seen: list[HostRef | RequestRef] = []

    def resolve(ref: HostRef | RequestRef) -> Value:
        seen.append(ref)
        return "pid:[4026531836]"

    judgement = judge(matcher(not_equals={"host": "ns.pid"}), "pid:[4026532000]", resolve)

    assert seen == [HostRef(host="ns.pid")]
    assert judgement.ok is True


def test_host_ref_same_value_fails() -> None:
    resolve = refs({"ns.pid": "pid:[4026531836]"})

    judgement = judge(matcher(not_equals={"host": "ns.pid"}), "pid:[4026531836]", resolve)

    assert judgement.ok is False


def test_host_ref_expected_text() -> None:
    resolve = refs({"ns.pid": "pid:[4026531836]"})

    judgement = judge(matcher(not_equals={"host": "ns.pid"}), "pid:[1]", resolve)

    assert judgement.expected == "different from host's ns.pid 'pid:[4026531836]'"


def test_host_ref_list_operand() -> None:
    resolve = refs({"net.if.external": ["eth0 02:42:ac:11:00:02"]})
    spec = matcher(disjoint_from={"host": "net.if.external"})

    assert judge(spec, ["eth0 02:42:ac:11:00:03"], resolve).ok is True
    assert judge(spec, ["eth0 02:42:ac:11:00:02"], resolve).ok is False


def test_host_ref_contains_marker() -> None:
    resolve = refs({"marker.process": "isobench-marker-r1 3600"})
    spec = matcher(not_contains={"host": "marker.process"})

    assert judge(spec, ["sh", "isobench-marker-r1 3600"], resolve).ok is False
    assert judge(spec, ["sh"], resolve).ok is True


def test_request_ref_resolved() -> None:
    resolve = refs({"hostname": "isobench-uts"})

    judgement = judge(matcher(equals={"request": "hostname"}), "isobench-uts", resolve)

    assert judgement.ok is True
    assert judgement.expected == "equal to requested hostname 'isobench-uts'"


# -- message texts -----------------------------------------------------------


def test_equals_texts() -> None:
    judgement = check({"equals": "1"}, "2")

    assert judgement.expected == "equal to '1'"
    assert judgement.observed == "'2'"


def test_not_contains_names_found() -> None:
    judgement = check({"not_contains": ["eth0", "eth1"]}, ["lo", "eth0"])

    assert judgement.expected == "does not contain ['eth0', 'eth1']"
    assert judgement.observed == "['lo', 'eth0'] (found ['eth0'])"


def test_subset_of_names_extra() -> None:
    judgement = check({"subset_of": ["lo"]}, ["lo", "eth0"])

    assert judgement.observed.endswith("(not allowed: ['eth0'])")


def test_disjoint_from_names_shared() -> None:
    judgement = check({"disjoint_from": ["eth0"]}, ["lo", "eth0"])

    assert judgement.observed.endswith("(shared: ['eth0'])")


def test_matches_expected_text() -> None:
    assert check({"not_matches": "^eth"}, "lo").expected == "does not match /^eth/"


def test_empty_list_observed_text() -> None:
    assert check({"empty": False}, []).observed == "[] (empty list)"


def test_long_list_clipped() -> None:
    observed = [f"item{number}" for number in range(20)]

    text = check({"equals": "x"}, observed).observed

    assert text.endswith(f", … {20 - SHOWN_ITEMS} more]")
    assert f"'item{SHOWN_ITEMS - 1}'" in text
    assert f"'item{SHOWN_ITEMS}'" not in text


def test_long_item_clipped() -> None:
    text = check({"equals": "x"}, ["a" * 1000]).observed

    assert text == "['" + "a" * (SHOWN_CHARS - 1) + "…']"


def test_long_text_clipped() -> None:
    text = check({"equals": "x"}, "b" * 1000).observed

    assert text == "'" + "b" * (SHOWN_CHARS - 1) + "…'"


def test_short_list_not_clipped() -> None:
    observed = [f"item{number}" for number in range(SHOWN_ITEMS)]

    assert "more" not in check({"equals": "x"}, observed).observed


# -- properties --------------------------------------------------------------

texts = st.text(max_size=12)
observed_values = texts | st.lists(texts, max_size=6) | st.integers(min_value=-5, max_value=500)


@given(observed_values, st.text(min_size=1, max_size=12))
def test_contains_negation(observed: Value, operand: str) -> None:
    contains = check({"contains": operand}, observed)
    not_contains = check({"not_contains": operand}, observed)

    assert contains.ok is not not_contains.ok


@given(observed_values, texts | st.lists(texts, min_size=1, max_size=6))
def test_equals_negation(observed: Value, operand: str | list[str]) -> None:
    equals = check({"equals": operand}, observed)
    not_equals = check({"not_equals": operand}, observed)

    assert equals.ok is not not_equals.ok


@given(st.lists(texts, min_size=1, max_size=8))
def test_subset_of_itself(items: list[str]) -> None:
    assert check({"subset_of": items}, items).ok is True


@given(st.lists(texts, min_size=1, max_size=8))
def test_disjoint_from_itself(items: list[str]) -> None:
    assert check({"disjoint_from": items}, items).ok is False


@given(st.lists(texts, min_size=1, max_size=8))
def test_equals_itself(items: list[str]) -> None:
    assert check({"equals": items}, items).ok is True
