"""Tidy pandas DataFrames built from the records of a run's ``results.jsonl``.

``outcomes`` has one row per record. ``matrix`` and ``totals`` are views of
that frame: the outcome of each check on each runtime, and the number of each
outcome per runtime.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pandas as pd

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
