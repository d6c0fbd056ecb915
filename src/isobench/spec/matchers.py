"""Expectation matchers: judge one observed value against one matcher."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from isobench.errors import HarnessError
from isobench.spec.schema import HostRef, Matcher, RequestRef

Value = str | int | list[str] | None

#: Matchers that hold for any value when their operand is an empty list.
VACUOUS_WHEN_EMPTY = ("contains", "not_contains", "disjoint_from")


@dataclass(frozen=True)
class Judgement:
    """A matcher's verdict, with the expected and observed values as text."""

    ok: bool
    expected: str
    observed: str


def _items(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, list):
        return [str(v) for v in value]
    return [str(value)]


SHOWN_ITEMS = 8
SHOWN_CHARS = 160


def _clip(text: str) -> str:
    return text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 1] + "…"


def _show(value: Any) -> str:
    """Format a value for a message, cutting long lists and strings."""
    if isinstance(value, list):
        if not value:
            return "[] (empty list)"
        shown = ", ".join(repr(_clip(str(v))) for v in value[:SHOWN_ITEMS])
        more = len(value) - SHOWN_ITEMS
        return f"[{shown}{f', … {more} more' if more > 0 else ''}]"
    if value is None:
        return "nothing (the fact is missing)"
    return repr(_clip(str(value)))


def judge(
    matcher: Matcher,
    observed: Value,
    resolve: Callable[[HostRef | RequestRef], Value],
) -> Judgement:
    """Apply ``matcher`` to ``observed``; ``resolve`` supplies host and request values."""
    kind = matcher.kind
    raw = matcher.operand
    source = ""
    if isinstance(raw, HostRef | RequestRef):
        operand: Any = resolve(raw)
        source = f"host's {raw.host}" if isinstance(raw, HostRef) else f"requested {raw.request}"
        if kind in VACUOUS_WHEN_EMPTY and _items(operand) == []:
            raise HarnessError(
                f"the {source} is empty here, so '{kind}' would assert nothing; "
                "the check cannot be judged on this host"
            )
    else:
        operand = raw
    shown = f"{source} {_show(operand)}".strip() if source else _show(operand)

    if kind in ("equals", "not_equals"):
        if isinstance(observed, list) or isinstance(operand, list):
            same = observed is not None and _items(observed) == _items(operand)
        else:
            same = observed is not None and str(observed) == str(operand)
        ok = same if kind == "equals" else (observed is not None and not same)
        text = "equal to" if kind == "equals" else "different from"
        return Judgement(ok, f"{text} {shown}", _show(observed))

    if kind in ("contains", "not_contains"):
        wanted = _items(operand)
        if isinstance(observed, list):
            present = [w for w in wanted if w in observed]
        elif observed is None:
            present = []
        else:
            present = [w for w in wanted if w in str(observed)]
        if kind == "contains":
            ok = observed is not None and len(present) == len(wanted)
            return Judgement(ok, f"contains {shown}", _show(observed))
        ok = observed is not None and not present
        found = f" (found {_show(present)})" if present else ""
        return Judgement(ok, f"does not contain {shown}", _show(observed) + found)

    if kind in ("matches", "not_matches"):
        pattern = re.compile(str(operand))
        hits = [item for item in _items(observed) if pattern.search(item)]
        ok = bool(hits) if kind == "matches" else (observed is not None and not hits)
        verb = "matches" if kind == "matches" else "does not match"
        return Judgement(ok, f"{verb} /{operand}/", _show(observed))

    if kind == "one_of":
        options = _items(operand)
        ok = observed is not None and not isinstance(observed, list) and str(observed) in options
        return Judgement(ok, f"one of {_show(options)}", _show(observed))

    if kind in ("subset_of", "disjoint_from"):
        others = set(_items(operand))
        items = _items(observed)
        if kind == "subset_of":
            extra = [item for item in items if item not in others]
            ok = observed is not None and not extra
            note = f" (not allowed: {_show(extra)})" if extra else ""
            return Judgement(ok, f"only items of {shown}", _show(observed) + note)
        shared = [item for item in items if item in others]
        ok = observed is not None and not shared
        note = f" (shared: {_show(shared)})" if shared else ""
        return Judgement(ok, f"no item of {shown}", _show(observed) + note)

    if kind in ("at_least", "at_most", "approx"):
        return _judge_number(kind, operand, observed, shown)

    if kind == "empty":
        is_empty = (
            observed is not None
            and len(observed if isinstance(observed, list) else str(observed)) == 0
        )
        ok = is_empty if operand else (observed is not None and not is_empty)
        return Judgement(ok, "empty" if operand else "not empty", _show(observed))

    raise AssertionError(f"matcher kind without a rule: {kind}")


def _number(value: Any) -> float | None:
    if isinstance(value, list) or value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _judge_number(kind: str, operand: Any, observed: Value, shown: str) -> Judgement:
    """Compare numbers; a value that is not a number (such as 'max') never passes."""
    number = _number(observed)
    if kind == "approx":
        center, tolerance = float(operand[0]), float(operand[1])
        ok = number is not None and abs(number - center) <= tolerance
        return Judgement(ok, f"within {center:g} ± {tolerance:g}", _show(observed))
    bound = _number(operand)
    if bound is None:
        raise HarnessError(f"the operand {shown} of '{kind}' is not a number")
    if kind == "at_least":
        return Judgement(
            number is not None and number >= bound, f"at least {shown}", _show(observed)
        )
    return Judgement(number is not None and number <= bound, f"at most {shown}", _show(observed))
