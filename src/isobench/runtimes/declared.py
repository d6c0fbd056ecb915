"""Runtimes declared in a runtimes file (TOML), beside the built-in rows.

A runtimes file contains one table per runtime row under ``runtime``::

    [runtime.crun]
    kind = "oci"                     # an OCI runtime CLI, run on a bundle
    path = "/usr/bin/crun"
    global_flags = ["--cgroup-manager=cgroupfs"]
    cannot = { "network=default" = "crun has no network of its own" }

    [runtime.bwrap]
    kind = "template"                # a CLI of its own, driven by argv templates
    run = ["bwrap", "--bind", "{rootfs}", "/", "{options}", "--", "{argv}"]
    fields = ["env", "hostname"]
    [runtime.bwrap.options]
    env = ["--setenv", "{key}", "{value}"]
    hostname = ["--unshare-uts", "--hostname", "{value}"]

The files read, in order, are ``runtimes.toml`` in the working directory
(the project's), ``$XDG_CONFIG_HOME/isobench/runtimes.toml`` (the user's,
``~/.config`` by default) and every file named by ``--runtimes-file`` or by
``ISOBENCH_RUNTIMES_FILE`` (several joined with ``:``). A later file
replaces a row of the same name from an earlier one. A row may not take the
name of a built-in row. A malformed file raises RuntimesFileError with its
path, line and field.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from isobench.errors import RuntimesFileError
from isobench.model import Request

#: Files larger than this are rejected unread: a runtimes file is a few KiB.
MAX_FILE_BYTES = 1024 * 1024
FILE_NAME = "runtimes.toml"
ENV_FILES = "ISOBENCH_RUNTIMES_FILE"

#: Placeholders that every template can use, besides those of its options.
BUILTIN_PLACEHOLDERS = ("name", "rootfs", "image", "run_id")
#: Placeholders that stand for a list of arguments, so they must be a whole element.
SPLICED = ("{argv}", "{options}")
#: Request fields whose value is a list: an option's fragment repeats per element.
LIST_FIELDS = ("cap_add", "cap_drop", "devices", "mounts", "tmpfs", "ulimits", "env")
#: The placeholders of each element of a list field.
ELEMENT_PLACEHOLDERS: dict[str, tuple[str, ...]] = {
    "env": ("key", "value"),
    "mounts": ("source", "target", "mode"),
    "tmpfs": ("target", "size"),
    "ulimits": ("name", "soft", "hard"),
    # {value} as the suite wrote it (SYS_ADMIN), {cap} with the prefix (CAP_SYS_ADMIN, or ALL).
    "cap_add": ("value", "cap"),
    "cap_drop": ("value", "cap"),
}
#: Request fields that a template never sets: the harness picks the image itself.
HARNESS_FIELDS = ("image",)

RowName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")]
Argv = Annotated[list[Annotated[str, StringConstraints(min_length=1)]], Field(min_length=1)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class OciRuntime(_Strict):
    """An OCI runtime CLI: ``run`` (or ``create`` and ``start``), ``state``, ``kill``,
    ``delete``, and ``exec`` where it has one."""

    kind: Literal["oci"]
    path: Annotated[str, StringConstraints(min_length=1)] = Field(
        description="The runtime binary: an absolute path, or a name looked up on PATH."
    )
    global_flags: list[str] = Field(
        default_factory=list, description="Options placed before every subcommand."
    )
    cannot: dict[str, str] = Field(
        default_factory=dict,
        description="Requests the runtime cannot express, as 'field' or 'field=value', "
        "with the reason a check is skipped.",
    )
    lifecycle: Literal["run", "create-start"] = Field(
        default="run",
        description="'run' starts each container with the runtime's run command; "
        "'create-start' with create and start, under a shim of isobench that waits for it.",
    )
    exec: bool = Field(default=True, description="Whether the runtime has an exec command.")
    description: str = ""


class TemplateRuntime(_Strict):
    """A runtime with a CLI of its own, declared by argv templates."""

    kind: Literal["template"]
    run: Argv = Field(
        description="Starts a container in the foreground and runs {argv} in it; its exit "
        "status is the command's."
    )
    version: list[str] = Field(
        default_factory=list, description="Prints the version; its first line is shown."
    )
    pid: list[str] = Field(
        default_factory=list,
        description="Prints the host PID of the container's first process, while it runs.",
    )
    exec: list[str] = Field(
        default_factory=list,
        description="Runs {argv} in the running container {name} and waits for its end.",
    )
    stop: list[str] = Field(
        default_factory=list,
        description="Sends SIGTERM to the container {name}, then SIGKILL after {grace} seconds.",
    )
    remove: list[str] = Field(
        default_factory=list,
        description="Removes the container {name}, whether or not it still runs. Without "
        "it, ending the run command is all the clean-up there is.",
    )
    fields: list[str] = Field(
        default_factory=list,
        description="The request fields this runtime can express. A check whose request "
        "sets another field is skipped, with that reason.",
    )
    options: dict[str, list[str] | dict[str, list[str]]] = Field(
        default_factory=dict,
        description="Per field, the arguments that {options} expands to: a list used "
        "when the request sets the field (repeated per element of a list), or a table "
        "from each value to its arguments, used for the default value too.",
    )
    description: str = ""


class RuntimesFile(_Strict):
    """The content of one runtimes file."""

    runtime: dict[RowName, Annotated[OciRuntime | TemplateRuntime, Field(discriminator="kind")]]


Declared = OciRuntime | TemplateRuntime


class DeclaredRow:
    """A runtime row declared in a file, with the place where it is written."""

    def __init__(self, name: str, spec: Declared, path: Path, line: int) -> None:
        self.name = name
        self.spec = spec
        self.path = path
        self.line = line

    @property
    def source(self) -> str:
        return f"{self.path}:{self.line}"


def default_paths(cwd: Path | None = None, environ: dict[str, str] | None = None) -> list[Path]:
    """Return the runtimes files to read, in order; those that do not exist are left out,
    except the ones named explicitly, which must exist."""
    env = os.environ if environ is None else environ
    config_home = Path(env.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    found = [
        path
        for path in ((cwd or Path.cwd()) / FILE_NAME, config_home / "isobench" / FILE_NAME)
        if path.is_file()
    ]
    named = [Path(item) for item in env.get(ENV_FILES, "").split(os.pathsep) if item]
    return found + named


def load(paths: Sequence[Path], builtin: Sequence[str]) -> dict[str, DeclaredRow]:
    """Read the runtimes files in order and return the rows they declare, by name."""
    rows: dict[str, DeclaredRow] = {}
    for path in paths:
        for row in load_file(path, builtin).values():
            rows[row.name] = row
    return rows


def load_file(path: Path, builtin: Sequence[str] = ()) -> dict[str, DeclaredRow]:
    """Read one runtimes file; raise RuntimesFileError with path, line and field if malformed."""
    text = _read(path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise _error(path, _toml_line(exc), None, f"invalid TOML: {exc}") from None
    try:
        parsed = RuntimesFile.model_validate(data)
    except ValidationError as exc:
        first = _most_telling(exc)
        loc = _clean_loc(first)
        field = ".".join(str(part) for part in loc) or None
        raise _error(path, locate(text, loc), field, _message(first)) from None

    rows = {}
    for name, spec in parsed.runtime.items():
        line = locate(text, ("runtime", name)) or 1
        if name in builtin:
            raise _error(
                path,
                line,
                f"runtime.{name}",
                f"'{name}' is a built-in runtime row; give the declared one another name",
            )
        if isinstance(spec, TemplateRuntime):
            _check_template(path, text, name, spec)
        else:
            _check_cannot(path, text, name, spec)
        rows[name] = DeclaredRow(name, spec, path, line)
    return rows


def _read(path: Path) -> str:
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise _error(
            path,
            None,
            None,
            f"runtimes file not found or unreadable ({exc.strerror}); check the path given "
            f"with --runtimes-file or {ENV_FILES}",
        ) from None
    if not path.is_file():
        raise _error(path, None, None, "not a regular file; pass a runtimes file (TOML)")
    if size > MAX_FILE_BYTES:
        raise _error(
            path,
            None,
            None,
            f"{size} bytes is too large for a runtimes file (the limit is {MAX_FILE_BYTES} "
            "bytes); check that it is the right file",
        )
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise _error(path, line, None, "not UTF-8 text; save the file as UTF-8") from None


def _error(path: Path, line: int | None, field: str | None, problem: str) -> RuntimesFileError:
    return RuntimesFileError(str(path), line, field, problem)


def _toml_line(exc: tomllib.TOMLDecodeError) -> int | None:
    match = re.search(r"at line (\d+)", str(exc))
    return int(match.group(1)) if match else None


def _most_telling(exc: ValidationError) -> Any:
    """Return the error to show: an unknown field explains a missing one, so it comes first."""
    errors = exc.errors()
    unknown = [error for error in errors if error.get("type") == "extra_forbidden"]
    return (unknown or errors)[0]


def _clean_loc(error: Any) -> tuple[Any, ...]:
    loc = tuple(error["loc"])
    # The discriminated union puts the kind in the location: ('runtime', 'x', 'oci', 'path').
    loc = tuple(part for part in loc if part not in ("oci", "template"))
    # A key that fails its pattern is reported at ('runtime', 'NAME', '[key]').
    loc = tuple(part for part in loc if part != "[key]")
    if str(error.get("type", "")).startswith("union_tag"):
        loc += ("kind",)
    return loc


def _message(error: Any) -> str:
    kind = error.get("type", "")
    if kind == "missing" and tuple(error.get("loc", ())) == ("runtime",):
        return "the file declares no runtime; add a [runtime.NAME] table"
    if kind == "extra_forbidden":
        return "unknown field; check its spelling against docs/adapters.md"
    if kind == "missing":
        return "missing; it is required"
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        return "kind must be 'oci' or 'template'"
    if kind == "string_pattern_mismatch" and "[key]" in error.get("loc", ()):
        return (
            f"invalid row name {error.get('input')!r}: start with a letter or digit, then "
            "use letters, digits and . _ + -"
        )
    return str(error.get("msg", "invalid value"))


# The place of a field in the text.

_HEADER = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(?:#.*)?$")
_KEY = re.compile(r"""^\s*("[^"]*"|'[^']*'|[A-Za-z0-9_.+-]+)\s*=""")


def _split_dotted(key: str) -> list[str]:
    parts = re.findall(r"""\s*("[^"]*"|'[^']*'|[^.]+)\s*(?:\.|$)""", key)
    return [part.strip().strip("\"'") for part in parts]


def locate(text: str, loc: tuple[Any, ...]) -> int | None:
    """Return the line of the deepest part of ``loc`` that the text names, or None.

    Tables are found by their header (``[runtime.NAME]``) and keys by ``key =``
    inside the table, also as dotted keys, and one level into an inline table
    on the same line.
    """
    wanted = [str(part) for part in loc if not isinstance(part, int)]
    best: int | None = None
    best_depth = 0
    table: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        header = _HEADER.match(line)
        if header:
            table = _split_dotted(header.group(1))
            path = table
            rest = ""
        else:
            key = _KEY.match(line)
            if key is None:
                continue
            path = table + _split_dotted(key.group(1))
            rest = line[key.end() :]
        if _common(path, wanted) < len(path):
            continue
        depth = len(path)
        if rest and depth < len(wanted):
            inner = re.escape(wanted[depth])
            if re.search(rf"""(^|[{{,\s])["']?{inner}["']?\s*=""", rest):
                depth += 1
        if depth > best_depth:
            best, best_depth = number, depth
    return best


def _common(path: list[str], wanted: list[str]) -> int:
    count = 0
    for have, want in zip(path, wanted, strict=False):
        if have != want:
            break
        count += 1
    return count


# Templates


def request_fields() -> list[str]:
    return [name for name in Request.model_fields if name not in HARNESS_FIELDS]


def placeholders(argument: str) -> list[str]:
    """Return the placeholder names in one template argument; ``{{`` and ``}}`` are literal."""
    names = []
    for match in re.finditer(r"\{\{|\}\}|\{([^{}]*)\}", argument):
        if match.group(1) is not None:
            names.append(match.group(1))
    return names


def _check_cannot(path: Path, text: str, name: str, spec: OciRuntime) -> None:
    known = request_fields()
    for key in spec.cannot:
        field = key.partition("=")[0]
        if field not in known:
            loc = ("runtime", name, "cannot", key)
            raise _error(
                path,
                locate(text, loc),
                ".".join(loc),
                f"'{field}' is not a request field; known: {', '.join(known)}",
            )


def _check_template(path: Path, text: str, name: str, spec: TemplateRuntime) -> None:
    known = request_fields()
    prefix = ("runtime", name)

    def fail(loc: tuple[str, ...], problem: str) -> None:
        raise _error(path, locate(text, prefix + loc), ".".join(prefix + loc), problem)

    for index, field in enumerate(spec.fields):
        if field not in known:
            fail(
                ("fields",),
                f"'{field}' (item {index + 1}) is not a request field; known: {', '.join(known)}",
            )
    for field, option in spec.options.items():
        if field not in known:
            fail(("options", field), f"'{field}' is not a request field")
        if field not in spec.fields:
            fail(("options", field), f"'{field}' has options but is not listed in 'fields'")
        fragments = option.values() if isinstance(option, dict) else [option]
        allowed = set(BUILTIN_PLACEHOLDERS) | set(ELEMENT_PLACEHOLDERS.get(field, ("value",)))
        for fragment in fragments:
            for argument in fragment:
                for placeholder in placeholders(argument):
                    if placeholder not in allowed:
                        fail(
                            ("options", field),
                            f"unknown placeholder {{{placeholder}}}; here it may be one of "
                            f"{', '.join('{' + a + '}' for a in sorted(allowed))}",
                        )
    if "env" not in spec.fields:
        fail(
            ("fields",),
            "'env' is required: the harness passes its probe's settings as environment variables",
        )
    commands = {
        "run": spec.run,
        "version": spec.version,
        "pid": spec.pid,
        "exec": spec.exec,
        "stop": spec.stop,
        "remove": spec.remove,
    }
    for command, argv in commands.items():
        allowed = set(BUILTIN_PLACEHOLDERS)
        if command == "run":
            allowed |= {"argv", "options"}
        if command == "exec":
            allowed.add("argv")
        if command == "stop":
            allowed.add("grace")
        for argument in argv:
            for placeholder in placeholders(argument):
                if placeholder not in allowed:
                    fail(
                        (command,),
                        f"unknown placeholder {{{placeholder}}}; here it may be one of "
                        f"{', '.join('{' + a + '}' for a in sorted(allowed))}",
                    )
                if f"{{{placeholder}}}" in SPLICED and argument != f"{{{placeholder}}}":
                    fail(
                        (command,),
                        f"{{{placeholder}}} stands for several arguments, so it must be a "
                        f"whole element, not part of '{argument}'",
                    )
    if "{argv}" not in spec.run:
        fail(("run",), "the run template needs an '{argv}' element for the command")
    if spec.exec and "{argv}" not in spec.exec:
        fail(("exec",), "the exec template needs an '{argv}' element for the command")
