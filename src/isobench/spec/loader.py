"""Load suite files with their line numbers, and reject malformed ones before anything runs."""

from __future__ import annotations

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
from isobench.probe.derive import DERIVED_FACTS, HOST_FACTS, PROBE_FACTS
from isobench.spec.schema import Check, FactCheck, HostRef, Matcher, RequestRef, RunCheck, Suite

Path_ = tuple[str | int, ...]

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


def _to_python(node: yaml.Node, where: Path_, lines: dict[Path_, int], path: Path) -> Any:
    """Convert a composed YAML node, recording the line of every key and item."""
    lines[where] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = yaml.safe_load(yaml.serialize(key_node))
            if not isinstance(key, str):
                raise SuiteError(
                    str(path), key_node.start_mark.line + 1, str(key), "keys must be strings"
                )
            if key in result:
                raise SuiteError(
                    str(path),
                    key_node.start_mark.line + 1,
                    key,
                    "duplicate key; the first one would be silently replaced",
                )
            child = (*where, key)
            result[key] = _to_python(value_node, child, lines, path)
            lines[child] = key_node.start_mark.line + 1
        return result
    if isinstance(node, yaml.SequenceNode):
        return [
            _to_python(item, (*where, index), lines, path) for index, item in enumerate(node.value)
        ]
    return yaml.safe_load(yaml.serialize(node))


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
    current: Path_ = ()
    names: list[str] = []
    for part in loc:
        candidate = (*current, part)
        if candidate in lines:
            current = candidate
            names.append(f"[{part}]" if isinstance(part, int) else str(part))
        elif isinstance(part, str) and not part.startswith(("function-", "tagged-union")):
            names.append(part)
    text = ".".join(names)
    return re.sub(r"\.\[", "[", text)


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
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise SuiteError(str(path), line, None, f"invalid YAML: {problem}") from None
    if node is None:
        raise SuiteError(str(path), 1, None, "the file is empty")

    lines: dict[Path_, int] = {}
    data = _to_python(node, (), lines, path)
    try:
        suite = Suite.model_validate(data)
    except ValidationError as exc:
        error = _most_telling(exc)
        loc = _document_loc(error["loc"])
        raise SuiteError(
            str(path), _line_for(loc, lines), _field_name(loc, lines) or None, error["msg"]
        ) from None

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

    known_facts = set(PROBE_FACTS) | set(DERIVED_FACTS)
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
        for name, matcher in check.expect.host.items():
            if name not in HOST_FACTS:
                fail(
                    ("expect", "host", name),
                    f"checks[{index}].expect.host.{name}",
                    f"unknown host fact '{name}'; known: {', '.join(sorted(HOST_FACTS))}",
                )
            matchers.append((("expect", "host", name), matcher))
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

    for position, control in enumerate(check.controls):
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
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SuiteError(str(path), None, None, f"cannot read the file: {exc.strerror}") from None
    return parse_suite(text, path)


def find_suites(directory: Path, names: Iterable[str] = ()) -> list[Path]:
    """Return the suite files of ``directory``, or only those named; unknown names raise."""
    available = {p.stem: p for p in sorted(directory.glob("*.yaml"))}
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
