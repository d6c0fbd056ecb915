"""Tidy pandas DataFrames built from the records of a run's ``results.jsonl`` and ``posture.jsonl``.

``outcomes`` has one row per record. ``matrix`` and ``totals`` are views of
that frame: the outcome of each check on each runtime, and the number of each
outcome per runtime. ``posture`` reads the posture records, and
``capability_table`` and ``value_table`` are its views per request.
``benchmark_summaries`` has one row per summary of the benchmark samples, and
``startup_table`` to ``cpu_table`` are its views per benchmark.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import pandas as pd

from isobench.bench import network
from isobench.bench.fio import JOB_METRICS
from isobench.bench.stats import IO_TARGETS, NATIVE_RUNTIME, STARTUP_PHASES, STAT_FIELDS
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


# samples.jsonl, through the summaries of isobench.bench.stats

#: The columns of ``benchmark_summaries`` before the ``params.<key>`` columns.
SUMMARY_KEY_COLUMNS = ("benchmark", "runtime", "metric", "unit")
#: The columns after the ``params.<key>`` columns.
SUMMARY_VALUE_COLUMNS = (
    "warmup_count",
    *STAT_FIELDS,
    "native_median",
    "ratio_to_native",
    "worse_when",
)
PARAM_COLUMN_PREFIX = "params."
_SUMMARY_TEXT_COLUMNS = ("benchmark", "runtime", "metric", "unit", "worse_when")
_SUMMARY_COUNT_COLUMNS = ("n", "warmup_count")


def benchmark_summaries(summaries: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Build a tidy frame with one row per summary, from ``BenchmarkSummary.to_dict`` objects.

    The columns are ``SUMMARY_KEY_COLUMNS``, one ``params.<key>`` column per
    parameter in order of first appearance, then ``SUMMARY_VALUE_COLUMNS``. A
    missing parameter is None, and a missing statistic is NaN.
    """
    rows = list(summaries)
    keys: list[str] = []
    for row in rows:
        params = row.get("params")
        if isinstance(params, Mapping):
            keys += [str(key) for key in params if str(key) not in keys]

    columns: dict[str, pd.Series] = {}
    for name in SUMMARY_KEY_COLUMNS:
        columns[name] = pd.Series([_text(row.get(name)) for row in rows], dtype=object)
    for key in keys:
        values = [_param_value(row.get("params"), key) for row in rows]
        columns[PARAM_COLUMN_PREFIX + key] = pd.Series(values, dtype=object)
    for name in SUMMARY_VALUE_COLUMNS:
        values = [row.get(name) for row in rows]
        if name in _SUMMARY_TEXT_COLUMNS:
            columns[name] = pd.Series([_text(value) for value in values], dtype=object)
        elif name in _SUMMARY_COUNT_COLUMNS:
            columns[name] = pd.Series([int(value or 0) for value in values], dtype="int64")
        else:
            columns[name] = pd.Series(values, dtype="float64")
    return pd.DataFrame(columns, index=pd.RangeIndex(len(rows)))


def _param_value(params: Any, key: str) -> Any:
    return params.get(key) if isinstance(params, Mapping) else None


def benchmark_runtimes(df: pd.DataFrame, runtimes: Sequence[str] = ()) -> list[str]:
    """Return the runtimes of a summaries frame, ordered as in ``runtime_order``, native last."""
    present = set(df["runtime"])
    order = [runtime for runtime in runtime_order(df, runtimes) if runtime in present]
    if NATIVE_RUNTIME in order:
        order.remove(NATIVE_RUNTIME)
        order.append(NATIVE_RUNTIME)
    return order


def _param(rows: pd.DataFrame, key: str) -> list[Any]:
    column = PARAM_COLUMN_PREFIX + key
    if column not in rows.columns:
        return [None] * len(rows)
    return list(rows[column])


def _numbers_first(values: Iterable[Any]) -> list[Any]:
    """Return the distinct values: numbers in ascending order, then the others by appearance."""
    distinct = list(dict.fromkeys(values))
    numbers = [value for value in distinct if isinstance(value, int | float)]
    others = [value for value in distinct if not isinstance(value, int | float)]
    return [*sorted(numbers), *others]


def _sort_rows(frame: pd.DataFrame, orders: Sequence[tuple[str, Sequence[Any]]]) -> pd.DataFrame:
    """Sort rows by each column in turn, by the position of the value in its order.

    A value outside its order sorts after the values in it, in order of appearance.
    """
    positions = []
    for column, order in orders:
        known = {
            value: index for index, value in enumerate(dict.fromkeys([*order, *frame[column]]))
        }
        positions.append([known[value] for value in frame[column]])
    keys = list(zip(*positions, strict=True))
    ordering = sorted(range(len(frame)), key=lambda row: keys[row])
    return frame.iloc[ordering].reset_index(drop=True)


def _select(df: pd.DataFrame, benchmark: str) -> pd.DataFrame:
    return df[df["benchmark"] == benchmark].reset_index(drop=True)


STARTUP_COLUMNS = (
    "runtime",
    "network",
    "phase",
    "unit",
    "n",
    "median",
    "p95",
    "p99",
    "median_ci_low",
    "median_ci_high",
)


def startup_table(df: pd.DataFrame, runtimes: Sequence[str] = ()) -> pd.DataFrame:
    """Select the startup summaries: one row per runtime, network mode and phase.

    The columns are ``STARTUP_COLUMNS``, where ``phase`` is the metric and
    ``network`` is the network parameter (None when a summary has none). Rows
    are ordered by ``benchmark_runtimes``, network mode in order of appearance
    and ``STARTUP_PHASES``.
    """
    rows = _select(df, "startup")
    table = pd.DataFrame(
        {
            "runtime": rows["runtime"],
            "network": pd.Series(_param(rows, "network"), dtype=object),
            "phase": rows["metric"],
            **{name: rows[name] for name in STARTUP_COLUMNS[3:]},
        },
        columns=list(STARTUP_COLUMNS),
    )
    return _sort_rows(
        table,
        [
            ("runtime", benchmark_runtimes(rows, runtimes)),
            ("network", ()),
            ("phase", STARTUP_PHASES),
        ],
    )


def _side_by_side(
    rows: pd.DataFrame, key: str, metrics: Mapping[str, Sequence[str]]
) -> pd.DataFrame:
    """Put the summaries of several metrics in one row per runtime and value of parameter ``key``.

    ``metrics`` maps each metric to the summary columns to keep, which become
    ``<metric>_<column>`` columns. A metric that a row lacks leaves NaN.
    """
    combined: dict[tuple[str, Any], dict[str, Any]] = {}
    for record, value in zip(rows.to_dict("records"), _param(rows, key), strict=True):
        metric = str(record["metric"])
        if metric not in metrics:
            continue
        runtime = str(record["runtime"])
        row = combined.setdefault((runtime, value), {"runtime": runtime, key: value})
        for column in metrics[metric]:
            row[f"{metric}_{column}"] = record[column]

    names = [f"{metric}_{column}" for metric, columns in metrics.items() for column in columns]
    data: dict[str, pd.Series] = {
        "runtime": pd.Series([row["runtime"] for row in combined.values()], dtype=object),
        key: pd.Series([row[key] for row in combined.values()], dtype=object),
    }
    for name in names:
        values = [row.get(name) for row in combined.values()]
        is_text = name.endswith("_unit")
        data[name] = pd.Series(
            [_text(value) for value in values] if is_text else values,
            dtype=object if is_text else "float64",
        )
    return pd.DataFrame(data, index=pd.RangeIndex(len(combined)))


CONCURRENCY_METRICS = {
    "latency": ("unit", "n", "median", "p95", "median_ci_low", "median_ci_high"),
    "throughput": ("unit", "n", "median"),
}


def concurrency_table(df: pd.DataFrame, runtimes: Sequence[str] = ()) -> pd.DataFrame:
    """Put the concurrency summaries in one row per runtime and concurrency.

    The columns are ``runtime``, ``concurrency`` and ``<metric>_<column>`` for
    each pair of ``CONCURRENCY_METRICS``: latency per container and throughput per batch.
    """
    rows = _select(df, "concurrency")
    table = _side_by_side(rows, "concurrency", CONCURRENCY_METRICS)
    return _sort_rows(
        table,
        [
            ("runtime", benchmark_runtimes(rows, runtimes)),
            ("concurrency", _numbers_first(table["concurrency"])),
        ],
    )


MEMORY_METRICS = {
    "pss_per_container": ("unit", "n", "median", "median_ci_low", "median_ci_high"),
    "pss_total": ("unit", "median"),
}


def memory_table(df: pd.DataFrame, runtimes: Sequence[str] = ()) -> pd.DataFrame:
    """Put the memory summaries in one row per runtime and container count.

    The columns are ``runtime``, ``containers`` and ``<metric>_<column>`` for
    each pair of ``MEMORY_METRICS``.
    """
    rows = _select(df, "memory")
    table = _side_by_side(rows, "containers", MEMORY_METRICS)
    return _sort_rows(
        table,
        [
            ("runtime", benchmark_runtimes(rows, runtimes)),
            ("containers", _numbers_first(table["containers"])),
        ],
    )


RATIO_COLUMNS = ("unit", "n", "median", "native_median", "ratio_to_native", "worse_when")
IO_COLUMNS = ("target", "job", "runtime", *RATIO_COLUMNS)
CPU_COLUMNS = ("runtime", "metric", *RATIO_COLUMNS)
NETWORK_COLUMNS = ("path", "metric", "runtime", *RATIO_COLUMNS)


def io_table(df: pd.DataFrame, runtimes: Sequence[str] = ()) -> pd.DataFrame:
    """Select the io summaries of the container runtimes, with the native median and ratio.

    The columns are ``IO_COLUMNS``, where ``job`` is the fio job (the metric)
    and ``target`` the target parameter. Rows are ordered by ``IO_TARGETS``,
    ``JOB_METRICS`` and ``benchmark_runtimes``.
    """
    rows = _select(df, "io")
    rows = rows[rows["runtime"] != NATIVE_RUNTIME].reset_index(drop=True)
    table = pd.DataFrame(
        {
            "target": pd.Series(_param(rows, "target"), dtype=object),
            "job": rows["metric"],
            "runtime": rows["runtime"],
            **{name: rows[name] for name in RATIO_COLUMNS},
        },
        columns=list(IO_COLUMNS),
    )
    return _sort_rows(
        table,
        [
            ("target", IO_TARGETS),
            ("job", tuple(JOB_METRICS)),
            ("runtime", benchmark_runtimes(rows, runtimes)),
        ],
    )


def cpu_table(df: pd.DataFrame, runtimes: Sequence[str] = ()) -> pd.DataFrame:
    """Select the cpu summaries of the container runtimes, with the native median and ratio.

    The columns are ``CPU_COLUMNS``. Rows are ordered by ``benchmark_runtimes``,
    then metric in order of appearance.
    """
    rows = _select(df, "cpu")
    rows = rows[rows["runtime"] != NATIVE_RUNTIME].reset_index(drop=True)
    table = pd.DataFrame({name: rows[name] for name in CPU_COLUMNS}, columns=list(CPU_COLUMNS))
    return _sort_rows(table, [("runtime", benchmark_runtimes(rows, runtimes)), ("metric", ())])


def network_table(df: pd.DataFrame, runtimes: Sequence[str] = ()) -> pd.DataFrame:
    """Select the network summaries, with the native median and ratio of each container path.

    The columns are ``NETWORK_COLUMNS``, where ``path`` is the path parameter.
    The native rows stay, as the loopback path, so that the floor shows even
    where no container path was measured. Rows are ordered by
    ``network.PATHS``, ``network.METRICS`` and ``benchmark_runtimes``.
    """
    rows = _select(df, "network")
    table = pd.DataFrame(
        {
            "path": pd.Series(_param(rows, "path"), dtype=object),
            "metric": rows["metric"],
            "runtime": rows["runtime"],
            **{name: rows[name] for name in RATIO_COLUMNS},
        },
        columns=list(NETWORK_COLUMNS),
    )
    return _sort_rows(
        table,
        [
            ("path", network.PATHS),
            ("metric", tuple(network.METRICS)),
            ("runtime", benchmark_runtimes(rows, runtimes)),
        ],
    )
