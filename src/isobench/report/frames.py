"""Tidy pandas DataFrames built from the records of a run's ``results.jsonl`` and ``posture.jsonl``.

``outcomes`` has one row per record. ``matrix`` and ``totals`` are views of
that frame: the outcome of each check on each runtime, and the number of each
outcome per runtime. ``posture`` reads the posture records, and
``capability_table`` and ``value_table`` are its views per request.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import pandas as pd

from isobench.model import CAPABILITIES
from isobench.results import OUTCOMES, Record

RECORD_FIELDS: tuple[str, ...] = tuple(field.name for field in dataclasses.fields(Record))
COLUMNS: tuple[str, ...] = ("check_key", *RECORD_FIELDS)
LIST_FIELDS = ("commands", "notes")

# The matrix cell of a runtime that has no record for a check.
NO_RECORD = ""

_DEFAULTS: dict[str, Any] = dataclasses.asdict(Record(suite="", check="", runtime="", outcome=""))


def check_key(suite: str, check: str) -> str:
    """Return the name that identifies a check across suites."""
    return f"{suite}/{check}"


def row_label(key: str, control: str) -> str:
    """Return the matrix row of a record, which is separate for each negative control."""
    return f"{key} [control: {control}]" if control else key


def outcomes(records: Iterable[Mapping[str, Any] | Record]) -> pd.DataFrame:
    """Build a frame with one row per record, in the order of the records.

    The columns are ``check_key`` followed by the fields of ``Record``. A record
    read from JSON may lack fields or carry wrong types. Missing values get the
    ``Record`` defaults, other values are converted to the field's type, and
    unknown keys are dropped.
    """
    rows = []
    for record in records:
        values = dataclasses.asdict(record) if isinstance(record, Record) else record
        row = {name: _convert(name, values.get(name)) for name in RECORD_FIELDS}
        row["check_key"] = check_key(row["suite"], row["check"])
        rows.append(row)

    frame = pd.DataFrame(rows, columns=list(COLUMNS))
    text_columns = [name for name in COLUMNS if isinstance(_DEFAULTS.get(name, ""), str)]
    dtypes: dict[str, Any] = dict.fromkeys(text_columns, str)
    dtypes["line"] = "int64"
    dtypes["duration_s"] = "float64"
    return frame.astype(dtypes)


def _convert(name: str, value: Any) -> Any:
    default = _DEFAULTS[name]
    if value is None:
        return list(default) if isinstance(default, list) else default
    if isinstance(default, list):
        items = value if isinstance(value, list) else [value]
        return [str(item) for item in items]
    if isinstance(default, bool | int | float):
        try:
            return type(default)(value)
        except (TypeError, ValueError):
            return default
    return str(value)


def runtime_order(df: pd.DataFrame, runtimes: Sequence[str] = ()) -> list[str]:
    """Return ``runtimes`` followed by the other runtimes of ``df`` in order of appearance."""
    order = list(dict.fromkeys(runtimes))
    known = set(order)
    for runtime in dict.fromkeys(df["runtime"]):
        if runtime not in known:
            order.append(runtime)
            known.add(runtime)
    return order


def matrix(df: pd.DataFrame, runtimes: Sequence[str] = ()) -> pd.DataFrame:
    """Build the check-by-runtime table of outcomes from an ``outcomes`` frame.

    Rows are labelled by ``row_label`` in the order the checks first appear.
    Columns are ``runtimes`` (the order of run.json), then any other runtime
    of ``df``. A cell without a record contains ``NO_RECORD``. When one check has
    several records on one runtime, the last record wins.
    """
    columns = pd.Index(runtime_order(df, runtimes), name="runtime", dtype=object)
    labels = [
        row_label(key, control) for key, control in zip(df["check_key"], df["control"], strict=True)
    ]
    index = pd.Index(list(dict.fromkeys(labels)), name="check", dtype=object)

    cells: dict[tuple[str, str], str] = {}
    for label, runtime, outcome in zip(labels, df["runtime"], df["outcome"], strict=True):
        cells[(label, runtime)] = outcome

    data = [[cells.get((label, runtime), NO_RECORD) for runtime in columns] for label in index]
    return pd.DataFrame(data, index=index, columns=columns, dtype=object)


def totals(df: pd.DataFrame, runtimes: Sequence[str] = ()) -> pd.DataFrame:
    """Count the outcomes of each runtime in an ``outcomes`` frame.

    Rows are runtimes in the order of ``matrix``. The columns are the six
    outcomes, even where a count is zero, followed by any other outcome name
    found in ``df``.
    """
    counts = Counter(zip(df["runtime"], df["outcome"], strict=True))
    unknown = [name for name in dict.fromkeys(df["outcome"]) if name not in OUTCOMES]
    columns = pd.Index([*OUTCOMES, *unknown], name="outcome", dtype=object)
    index = pd.Index(runtime_order(df, runtimes), name="runtime", dtype=object)

    data = [[counts[(runtime, outcome)] for outcome in columns] for runtime in index]
    return pd.DataFrame(data, index=index, columns=columns, dtype="int64")


# posture.jsonl

#: The capability sets of a posture record, in the order of their letters in a table cell.
CAPABILITY_SETS: tuple[str, ...] = ("eff", "prm", "bnd", "inh", "amb")
SET_LETTERS = {"eff": "E", "prm": "P", "bnd": "B", "inh": "I", "amb": "A"}
SET_NAMES = {
    "eff": "effective",
    "prm": "permitted",
    "bnd": "bounding",
    "inh": "inheritable",
    "amb": "ambient",
}

#: The ``request`` text of a container that the probe ran with the runtime's defaults.
DEFAULT_REQUEST = "defaults"

#: Posture keys whose value is a list of paths.
POSTURE_LIST_KEYS = ("devices", "masked_visible", "readonly_writable")

CONTAINER_COLUMNS = ("runtime", "request", "sets")
CAPABILITY_COLUMNS = ("runtime", "request", "set", "capability")
VALUE_COLUMNS = ("runtime", "request", "name", "value")

# The capability table cell of a container whose record has no capability set.
SETS_NOT_RECORDED = "?"


class Posture(NamedTuple):
    """Tidy frames of a run's posture records, one (runtime, request) container each."""

    #: ``runtime``, ``request`` and ``sets``: the capability sets that the record contains.
    containers: pd.DataFrame
    #: ``runtime``, ``request``, ``set`` and ``capability``: one row per capability in a set.
    capabilities: pd.DataFrame
    #: ``runtime``, ``request``, ``name`` and ``value``: seccomp, no_new_privs,
    #: ``rlimit.<resource>`` and the path lists, which are joined with ", ".
    values: pd.DataFrame


def posture(records: Iterable[Mapping[str, Any]]) -> Posture:
    """Build the posture frames from the records of ``posture.jsonl``.

    When one (runtime, request) pair has several records, the last one wins.
    Missing keys and values of the wrong type are left out of the frames.
    """
    latest: dict[tuple[str, str], Mapping[str, Any]] = {}
    for record in records:
        key = (_text(record.get("runtime")), _text(record.get("request")))
        latest[key] = record

    containers = []
    capabilities = []
    values = []
    for (runtime, request), record in latest.items():
        caps = record.get("caps")
        sets = caps if isinstance(caps, Mapping) else {}
        recorded = [name for name in CAPABILITY_SETS if _text_list(sets.get(name)) is not None]
        containers.append((runtime, request, recorded))
        for name in recorded:
            for capability in dict.fromkeys(_text_list(sets.get(name)) or []):
                capabilities.append((runtime, request, name, capability))
        for name, value in _posture_values(record):
            values.append((runtime, request, name, value))

    return Posture(
        containers=pd.DataFrame(containers, columns=list(CONTAINER_COLUMNS), dtype=object),
        capabilities=pd.DataFrame(capabilities, columns=list(CAPABILITY_COLUMNS), dtype=str),
        values=pd.DataFrame(values, columns=list(VALUE_COLUMNS), dtype=str),
    )


def _posture_values(record: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Return (name, value) for each value of a posture record other than the capabilities."""
    found = []
    for name in ("seccomp", "no_new_privs"):
        value = record.get(name)
        if isinstance(value, str | int):
            found.append((name, str(value)))

    rlimits = record.get("rlimits")
    if isinstance(rlimits, Mapping):
        for resource, limits in rlimits.items():
            if isinstance(limits, str | int):
                found.append((f"rlimit.{resource}", str(limits)))

    for name in POSTURE_LIST_KEYS:
        paths = _text_list(record.get(name))
        if paths is not None:
            found.append((name, ", ".join(paths)))
    return found


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _text_list(value: Any) -> list[str] | None:
    """Return a JSON list as strings, or None when it is missing or not a list."""
    if not isinstance(value, list):
        return None
    return [str(item) for item in value]


def posture_requests(posture: Posture) -> list[str]:
    """Return the requests of the posture records: ``DEFAULT_REQUEST`` first, then by appearance."""
    requests = list(dict.fromkeys(posture.containers["request"]))
    if DEFAULT_REQUEST in requests:
        requests.remove(DEFAULT_REQUEST)
        requests.insert(0, DEFAULT_REQUEST)
    return requests


def _posture_runtimes(posture: Posture, request: str, runtimes: Sequence[str]) -> list[str]:
    """Return the runtimes with a record for ``request``, in the order of ``runtime_order``."""
    present = posture.containers[posture.containers["request"] == request]
    names = set(present["runtime"])
    return [runtime for runtime in runtime_order(present, runtimes) if runtime in names]


def capability_table(posture: Posture, request: str, runtimes: Sequence[str] = ()) -> pd.DataFrame:
    """Build the capability-by-runtime table of set letters for one request.

    Rows are every capability of ``CAPABILITIES`` in bit order, then any other
    name found under ``request``. Columns are the runtimes with a record for
    ``request``, ordered as in ``matrix``. A cell contains the letters of the sets
    that contain the capability (for example "EPB"), "" when no set contains it,
    and ``SETS_NOT_RECORDED`` when the runtime's record has no capability set.
    """
    columns = pd.Index(_posture_runtimes(posture, request, runtimes), name="runtime", dtype=object)
    memberships = posture.capabilities[posture.capabilities["request"] == request]
    unknown = [
        name for name in dict.fromkeys(memberships["capability"]) if name not in CAPABILITIES
    ]
    index = pd.Index([*CAPABILITIES, *unknown], name="capability", dtype=object)

    containers = posture.containers[posture.containers["request"] == request]
    recorded = dict(zip(containers["runtime"], containers["sets"], strict=True))
    sets: dict[tuple[str, str], set[str]] = {}
    for runtime, name, capability in zip(
        memberships["runtime"], memberships["set"], memberships["capability"], strict=True
    ):
        sets.setdefault((capability, runtime), set()).add(name)

    data = [
        [_letters(sets.get((capability, runtime), set()), recorded[runtime]) for runtime in columns]
        for capability in index
    ]
    return pd.DataFrame(data, index=index, columns=columns, dtype=object)


def _letters(holding: set[str], recorded: Sequence[str]) -> str:
    if not recorded:
        return SETS_NOT_RECORDED
    return "".join(SET_LETTERS[name] for name in CAPABILITY_SETS if name in holding)


def value_table(posture: Posture, request: str, runtimes: Sequence[str] = ()) -> pd.DataFrame:
    """Build the value-by-runtime table of the non-capability values for one request.

    Rows are seccomp, no_new_privs, each ``rlimit.<resource>`` in order of
    appearance, then the path lists, each only where some record contains it.
    Columns are as in ``capability_table``. A cell without a value is None.
    """
    columns = pd.Index(_posture_runtimes(posture, request, runtimes), name="runtime", dtype=object)
    rows = posture.values[posture.values["request"] == request]
    found = list(dict.fromkeys(rows["name"]))
    rlimits = [name for name in found if name.startswith("rlimit.")]
    order = ["seccomp", "no_new_privs", *rlimits, *POSTURE_LIST_KEYS]
    index = pd.Index([name for name in order if name in found], name="name", dtype=object)

    cells = dict(zip(zip(rows["name"], rows["runtime"], strict=True), rows["value"], strict=True))
    data = [[cells.get((name, runtime)) for runtime in columns] for name in index]
    return pd.DataFrame(data, index=index, columns=columns, dtype=object)
