"""Load suite files with their line numbers, and reject malformed ones before anything runs."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from isobench import runtimes
from isobench.errors import SuiteError
from isobench.model import Request
from isobench.probe.cgroups import CGROUP_FACTS, RUN_CGROUP_FACTS
from isobench.probe.derive import DERIVED_FACTS, HOST_FACTS, PROBE_FACTS, PROCESS_FACTS
from isobench.runtimes.faults import FAULTS
from isobench.spec.schema import Check, FactCheck, HostRef, Matcher, RequestRef, RunCheck, Suite

Path_ = tuple[str | int, ...]

#: The largest suite file read. A suite of a few hundred checks is tens of KiB.
MAX_SUITE_BYTES = 4 * 1024 * 1024
#: The maximum number of values a suite may expand to, so that aliases that repeat a
#: value many times over (an alias bomb) stop with an error instead of filling the memory.
MAX_VALUES = 100_000

#: A ``{host.NAME}`` placeholder in a command's argv; other braces are literal.
PLACEHOLDER = re.compile(r"\{host\.([A-Za-z0-9_.]+)\}")


@dataclass
class LoadedCheck:
    """A validated check with the place where it is written."""

    check: FactCheck | RunCheck
    suite: str
    path: Path
    line: int

    @property
    def id(self) -> str:
        return self.check.id


@dataclass
class LoadedSuite:
    """A validated suite and its checks, in file order."""

    suite: Suite
    path: Path
    checks: list[LoadedCheck] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.suite.suite


class _Converter:
    """Turn a composed YAML node tree into Python values, recording the line of every key
    and item, and raising SuiteError for YAML that a suite must not use."""

    def __init__(self, loader: yaml.SafeLoader, path: Path) -> None:
        self.loader = loader
        self.path = path
        self.lines: dict[Path_, int] = {}
        self._open: set[int] = set()
        self._values = 0

    def fail(self, node: yaml.Node, field: str | None, problem: str) -> SuiteError:
        return SuiteError(str(self.path), node.start_mark.line + 1, field, problem)

    def convert(self, node: yaml.Node, where: Path_ = ()) -> Any:
        self._values += 1
        if self._values > MAX_VALUES:
            raise self.fail(
                node,
                None,
                f"the suite expands to more than {MAX_VALUES} values; aliases that repeat "
                "a value many times over are not allowed",
            )
        self.lines[where] = node.start_mark.line + 1
        if id(node) in self._open:
            raise self.fail(node, None, "a recursive alias; write the value out instead")
        self._open.add(id(node))
        try:
            if isinstance(node, yaml.MappingNode):
                return self._mapping(node, where)
            if isinstance(node, yaml.SequenceNode):
                return [self.convert(item, (*where, i)) for i, item in enumerate(node.value)]
            try:
                return self.loader.construct_object(node, deep=True)
            except yaml.YAMLError as exc:
                problem = getattr(exc, "problem", None) or str(exc)
                raise self.fail(node, None, f"invalid value: {problem}") from None
        finally:
            self._open.discard(id(node))

    def _mapping(self, node: yaml.MappingNode, where: Path_) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise self.fail(key_node, "<<", "merge keys are not supported in suites")
            key = self.convert(key_node, (*where, "<key>"))
            if not isinstance(key, str):
                raise self.fail(key_node, str(key), "keys must be strings")
            if key in result:
                raise self.fail(
                    key_node, key, "duplicate key; the first one would be silently replaced"
                )
            child = (*where, key)
            result[key] = self.convert(value_node, child)
            self.lines[child] = key_node.start_mark.line + 1
        return result


def _line_for(loc: Iterable[str | int], lines: dict[Path_, int]) -> int | None:
    """Find the line of the deepest part of ``loc`` that the file has."""
    # pydantic adds union tags ("fact", "run") and validator names to locations;
    # drop the parts that are not keys or indices of the document.
    parts = list(loc)
    best: int | None = lines.get(())
    current: Path_ = ()
    for part in parts:
        candidate = (*current, part)
        if candidate in lines:
            current = candidate
            best = lines[candidate]
    return best


def _field_name(loc: Iterable[str | int], lines: dict[Path_, int]) -> str:
    """Name the deepest part of ``loc`` that the document has, such as ``checks[1].expect``."""
    current: Path_ = ()
    names: list[str] = []
    for part in loc:
        candidate = (*current, part)
        if candidate in lines:
            current = candidate
            names.append(f"[{part}]" if isinstance(part, int) else str(part))
    text = ".".join(names)
    return re.sub(r"\.\[", "[", text)


_CHECK_FIELDS = set(FactCheck.model_fields) | set(RunCheck.model_fields)


def _reject_unknown_check_keys(data: Any, lines: dict[Path_, int], path: Path) -> None:
    """Name a misspelt key, or an expectation without a value, at its own line; pydantic
    would report only the missing field or the enclosing mapping."""
    if not isinstance(data, dict) or not isinstance(data.get("checks"), list):
        return
    for index, check in enumerate(data["checks"]):
        if not isinstance(check, dict):
            continue
        for key in check:
            if key not in _CHECK_FIELDS:
                raise SuiteError(
                    str(path),
                    lines.get(("checks", index, key)),
                    f"checks[{index}].{key}",
                    f"unknown field; a check has: {', '.join(sorted(_CHECK_FIELDS))}",
                )
        expect = check.get("expect")
        if isinstance(expect, dict):
            for key, value in expect.items():
                if value is None:
                    raise SuiteError(
                        str(path),
                        lines.get(("checks", index, "expect", key)),
                        f"checks[{index}].expect.{key}",
                        "no value, so it would assert nothing",
                    )


def _most_telling(exc: ValidationError) -> Any:
    """Pick the error a user should see first: a misspelt key explains a missing one."""
    errors = exc.errors()
    for error in errors:
        if error["type"] == "extra_forbidden":
            return error
    return errors[0]


def _document_loc(loc: tuple[str | int, ...]) -> tuple[str | int, ...]:
    """Drop the union tag that pydantic puts after a check's index ('fact' or 'run')."""
    if (
        len(loc) > 2
        and loc[0] == "checks"
        and isinstance(loc[1], int)
        and loc[2] in ("fact", "run")
    ):
        return (*loc[:2], *loc[3:])
    return loc


def parse_suite(text: str, path: Path) -> LoadedSuite:
    """Validate suite text; raise SuiteError naming file, line and field on any fault."""
    try:
        loader = yaml.SafeLoader(text)
        node = loader.get_single_node()
    except yaml.reader.ReaderError as exc:
        at = text[: exc.position].count("\n") + 1
        raise SuiteError(
            str(path), at, None, f"invalid YAML: character {exc.character!r} is not allowed"
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise SuiteError(str(path), line, None, f"invalid YAML: {problem}") from None
    if node is None:
        raise SuiteError(str(path), 1, None, "the file is empty")

    converter = _Converter(loader, path)
    data = converter.convert(node)
    lines = converter.lines
    _reject_unknown_check_keys(data, lines, path)
    try:
        suite = Suite.model_validate(data)
    except ValidationError as exc:
        error = _most_telling(exc)
        loc = _document_loc(error["loc"])
        field = _field_name(loc, lines)
        if error["type"] == "missing" and loc and isinstance(loc[-1], str):
            field = f"{field}.{loc[-1]}" if field and not field.endswith(loc[-1]) else loc[-1]
        raise SuiteError(str(path), _line_for(loc, lines), field or None, error["msg"]) from None

    loaded = LoadedSuite(suite, path)
    seen: dict[str, int] = {}
    for index, check in enumerate(suite.checks):
        line = lines.get(("checks", index), 1)
        if check.id in seen:
            raise SuiteError(
                str(path),
                line,
                f"checks[{index}].id",
                f"'{check.id}' is used already by the check on line {seen[check.id]}",
            )
        seen[check.id] = line
        _check_references(check, index, path, lines)
        loaded.checks.append(LoadedCheck(check, suite.suite, path, line))
    return loaded


def _check_references(check: Check, index: int, path: Path, lines: dict[Path_, int]) -> None:
    """Reject names that the schema allows but nothing would resolve."""
    base: Path_ = ("checks", index)

    def fail(where: Path_, field_name: str, problem: str) -> None:
        raise SuiteError(
            str(path), lines.get((*base, *where)) or lines.get(base), field_name, problem
        )

    known_facts = set(PROBE_FACTS) | set(DERIVED_FACTS) | set(CGROUP_FACTS)
    known_runtimes = set(runtimes.names())

    if isinstance(check, FactCheck):
        if check.fact not in known_facts:
            fail(
                ("fact",),
                f"checks[{index}].fact",
                f"unknown fact '{check.fact}'; known facts: {', '.join(sorted(known_facts))}",
            )
        matchers: list[tuple[Path_, Matcher]] = [(("expect",), check.expect)]
    else:
        matchers = [
            (("expect", name), matcher)
            for name in ("exit_code", "stdout", "stderr")
            if (matcher := getattr(check.expect, name)) is not None
        ]
        named_facts = (
            ("host", "host fact", check.expect.host, HOST_FACTS),
            ("cgroup", "cgroup fact", check.expect.cgroup, RUN_CGROUP_FACTS),
            ("process", "process fact", check.expect.process, PROCESS_FACTS),
        )
        for key, kind, expected, known in named_facts:
            for name, matcher in expected.items():
                if name not in known:
                    fail(
                        ("expect", key, name),
                        f"checks[{index}].expect.{key}.{name}",
                        f"unknown {kind} '{name}'; known: {', '.join(sorted(known))}",
                    )
                matchers.append((("expect", key, name), matcher))
        if check.expect.exec_stdout is not None:
            matchers.append((("expect", "exec_stdout"), check.expect.exec_stdout))
        for position, arg in enumerate(check.run):
            for name in PLACEHOLDER.findall(arg):
                if name not in HOST_FACTS:
                    fail(
                        ("run", position),
                        f"checks[{index}].run[{position}]",
                        f"unknown placeholder '{{host.{name}}}'; host facts: "
                        f"{', '.join(sorted(HOST_FACTS))}",
                    )

    for where, matcher in matchers:
        operand = matcher.operand
        if isinstance(operand, HostRef) and operand.host not in HOST_FACTS:
            fail(
                where,
                f"checks[{index}].{'.'.join(map(str, where))}.{matcher.kind}.host",
                f"unknown host fact '{operand.host}'; known: {', '.join(sorted(HOST_FACTS))}",
            )
        if isinstance(operand, RequestRef) and operand.request not in Request.model_fields:
            fail(
                where,
                f"checks[{index}].{'.'.join(map(str, where))}.{matcher.kind}.request",
                f"unknown request field '{operand.request}'",
            )
        if isinstance(operand, RequestRef) and getattr(check.request, operand.request) is None:
            fail(
                where,
                f"checks[{index}].{'.'.join(map(str, where))}.{matcher.kind}.request",
                f"the check's request does not set '{operand.request}'",
            )
        if matcher.kind in ("matches", "not_matches"):
            try:
                re.compile(str(operand))
            except re.error as exc:
                fail(
                    where,
                    f"checks[{index}].{'.'.join(map(str, where))}.{matcher.kind}",
                    f"invalid regular expression: {exc}",
                )

    for position, name in enumerate(check.requires_host):
        if name not in HOST_FACTS:
            fail(
                ("requires_host", position),
                f"checks[{index}].requires_host[{position}]",
                f"unknown host fact '{name}'; known: {', '.join(sorted(HOST_FACTS))}",
            )
    # Mount sources may name host facts: in the request, in a request control and in
    # the request of a container alongside.
    mount_lists: list[tuple[Path_, str, list[Any]]] = [
        (("request",), "request", list(check.request.mounts))
    ]
    for position, control in enumerate(check.controls):
        mounts = control.request.get("mounts") if control.request else None
        if isinstance(mounts, list):
            where = ("controls", position, "request")
            mount_lists.append((where, f"controls[{position}].request", mounts))
    if isinstance(check, RunCheck) and check.alongside is not None:
        mount_lists.append((("alongside",), "alongside", list(check.alongside.mounts)))
    for where, label, mounts in mount_lists:
        for position, mount in enumerate(mounts):
            source = mount.get("source", "") if isinstance(mount, dict) else mount.source
            for name in PLACEHOLDER.findall(str(source)):
                if name not in HOST_FACTS:
                    fail(
                        (*where, "mounts", position),
                        f"checks[{index}].{label}.mounts[{position}].source",
                        f"unknown placeholder '{{host.{name}}}'; host facts: "
                        f"{', '.join(sorted(HOST_FACTS))}",
                    )
    for position, control in enumerate(check.controls):
        if control.fault is not None and control.fault not in FAULTS:
            fail(
                ("controls", position),
                f"checks[{index}].controls[{position}].fault",
                f"unknown fault '{control.fault}'; known: {', '.join(sorted(FAULTS))}",
            )
        names = [control.runtime] if control.runtime else control.runtimes
        for name in names:
            if name not in known_runtimes:
                fail(
                    ("controls", position),
                    f"checks[{index}].controls[{position}]",
                    f"unknown runtime '{name}'; known: {', '.join(sorted(known_runtimes))}",
                )
        if control.request:
            try:
                Request.model_validate({**check.request.model_dump(), **control.request})
            except ValidationError as exc:
                fail(
                    ("controls", position, "request"),
                    f"checks[{index}].controls[{position}].request",
                    exc.errors()[0]["msg"],
                )
    for position, deviation in enumerate(check.deviations):
        for name in deviation.runtimes:
            if name not in known_runtimes:
                fail(
                    ("deviations", position),
                    f"checks[{index}].deviations[{position}]",
                    f"unknown runtime '{name}'; known: {', '.join(sorted(known_runtimes))}",
                )


def load_suite(path: Path) -> LoadedSuite:
    """Read and validate one suite file."""
    try:
        size = path.stat().st_size
        if size > MAX_SUITE_BYTES:
            raise SuiteError(
                str(path),
                None,
                None,
                f"the file has {size / 2**20:.1f} MiB; a suite file may have at most "
                f"{MAX_SUITE_BYTES // 2**20} MiB, so split it into several suites",
            )
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SuiteError(str(path), None, None, f"cannot read the file: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[: exc.start].count(b"\n") + 1
        raise SuiteError(str(path), line, None, "the file is not valid UTF-8") from None
    return parse_suite(text, path)


def suite_name(path: Path) -> str:
    """Return the name of the suite at ``path``: a directory's name, or a file's stem."""
    return path.name if path.is_dir() else path.stem.removeprefix("test_")


def find_suites(directory: Path, names: Iterable[str] = ()) -> list[Path]:
    """Return the suite files of ``directory``, or only those named; unknown names raise.

    A suite is ``NAME.yaml`` (declarative), ``test_NAME.py`` (Python, such as
    property-based checks), or a directory ``NAME/`` of Python modules
    ``test_*.py`` that share its conftest.py.
    """
    available = {p.stem: p for p in sorted(directory.glob("*.yaml"))}
    for path in sorted(directory.glob("test_*.py")):
        available.setdefault(path.stem.removeprefix("test_"), path)
    for path in sorted(directory.iterdir()) if directory.is_dir() else ():
        if path.is_dir() and any(path.glob("test_*.py")):
            available.setdefault(path.name, path)
    wanted = list(names)
    if not wanted:
        return list(available.values())
    missing = [name for name in wanted if name not in available]
    if missing:
        raise SuiteError(
            str(directory),
            None,
            None,
            f"no suite named {', '.join(repr(m) for m in missing)}; "
            f"available: {', '.join(available) or 'none'}",
        )
    return [available[name] for name in wanted]


def remote_ready(path: Path) -> bool:
    """Tell whether the suite at ``path`` can check another host: a YAML suite can, and a
    Python suite when each of its modules sets ``REMOTE_READY = True``.

    The modules are read, not imported: importing a suite runs its module code.
    """
    if path.suffix in (".yaml", ".yml"):
        return True
    modules = sorted(path.glob("test_*.py")) if path.is_dir() else [path]
    return bool(modules) and all(_sets_remote_ready(module) for module in modules)


def _sets_remote_ready(module: Path) -> bool:
    try:
        tree = ast.parse(module.read_text(encoding="utf-8"))
    except (OSError, SyntaxError, ValueError):
        return False
    for node in tree.body:
        targets = (
            node.targets
            if isinstance(node, ast.Assign)
            else [node.target]
            if isinstance(node, ast.AnnAssign)
            else []
        )
        value = getattr(node, "value", None)
        for target in targets:
            if isinstance(target, ast.Name) and target.id == "REMOTE_READY":
                return isinstance(value, ast.Constant) and value.value is True
    return False
