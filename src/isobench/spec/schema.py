"""The YAML suite schema, as pydantic models.

A suite is a list of checks. Each check names the container request, what
to observe (a probe fact, or a command of its own) and the expectation, the
requests or runtimes that must make it fail (its negative controls), and
the deviations that a runtime is declared to have.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    field_validator,
    model_validator,
)

from isobench.model import Request

CHECK_ID = re.compile(r"^[a-z0-9][a-z0-9-]*$")


class HostRef(BaseModel):
    """A value read on the host, such as ``{host: ns.pid}``."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    host: str = Field(description="Name of a host fact.")


class RequestRef(BaseModel):
    """A value taken from the check's own request, such as ``{request: hostname}``."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    request: str = Field(description="Name of a request field.")


Scalar = str | int
Operand = Scalar | list[Scalar] | HostRef | RequestRef

MATCHERS = (
    "equals",
    "not_equals",
    "contains",
    "not_contains",
    "matches",
    "not_matches",
    "one_of",
    "subset_of",
    "disjoint_from",
    "empty",
    "at_least",
    "at_most",
    "approx",
)


class Matcher(BaseModel):
    """One expectation on one value. Exactly one key is set."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    equals: Operand | None = Field(default=None, description="The value equals this.")
    not_equals: Operand | None = Field(default=None, description="The value differs from this.")
    contains: Operand | None = Field(
        default=None,
        description="A text value contains this substring; a list value contains this item "
        "(every item, for a list).",
    )
    not_contains: Operand | None = Field(
        default=None, description="The negation of contains: no item or substring is present."
    )
    matches: str | None = Field(default=None, description="A regular expression that matches.")
    not_matches: str | None = Field(
        default=None, description="A regular expression that must not match."
    )
    one_of: list[Scalar] | None = Field(default=None, description="The value is one of these.")
    subset_of: Operand | None = Field(default=None, description="Every item is among these.")
    disjoint_from: Operand | None = Field(default=None, description="No item is among these.")
    empty: bool | None = Field(
        default=None, description="The value is empty (true) or not (false)."
    )
    at_least: float | HostRef | RequestRef | None = Field(
        default=None, description="The value is a number at least this."
    )
    at_most: float | HostRef | RequestRef | None = Field(
        default=None, description="The value is a number at most this."
    )
    approx: tuple[float, float] | None = Field(
        default=None, description="[value, tolerance]: the number is within value ± tolerance."
    )

    @model_validator(mode="before")
    @classmethod
    def _exactly_one(cls, data: Any) -> Any:
        if isinstance(data, list) and not data:
            raise ValueError("an empty list asserts nothing; write a matcher such as {empty: true}")
        if not isinstance(data, dict):
            raise ValueError(f"an expectation must be a mapping with one of: {', '.join(MATCHERS)}")
        given = [key for key in data if key in MATCHERS]
        if len(data) != 1 or len(given) != 1:
            raise ValueError(
                f"an expectation needs exactly one of {', '.join(MATCHERS)}; got "
                f"{', '.join(map(str, data)) or 'nothing'}"
            )
        value = data[given[0]]
        # An empty list would make contains/one_of/... true or false without
        # looking at the value: reject it rather than pass vacuously.
        if isinstance(value, list) and not value:
            raise ValueError(f"'{given[0]}' is an empty list, so it would assert nothing")
        if value is None:
            raise ValueError(f"'{given[0]}' has no value")
        if value == "" and given[0] in ("contains", "not_contains", "matches", "not_matches"):
            raise ValueError(f"'{given[0]}' is an empty string, so it would assert nothing")
        return data

    @property
    def kind(self) -> str:
        for name in MATCHERS:
            if getattr(self, name) is not None:
                return name
        raise AssertionError("validated matcher without a key")

    @property
    def operand(self) -> Any:
        return getattr(self, self.kind)


class Deviation(BaseModel):
    """A declared, strict deviation: the check is expected to fail on these runtimes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    runtimes: list[str] = Field(min_length=1, description="Runtime rows it applies to.")
    reason: str = Field(min_length=1, description="Why the runtime deviates.")
    when: dict[Literal["cgroup_version"], str] = Field(
        default_factory=dict,
        description="Host conditions under which it applies, such as {cgroup_version: '1'}.",
    )


class Control(BaseModel):
    """A negative control: a runtime, request or adapter fault on which the check must fail."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    runtime: str | None = Field(default=None, description="A runtime row without the guarantee.")
    request: dict[str, Any] = Field(
        default_factory=dict, description="Request fields that remove the guarantee."
    )
    runtimes: list[str] = Field(
        default_factory=list,
        description="Runtime rows on which the request control is run.",
    )
    fault: str | None = Field(
        default=None,
        description="A known adapter bug (isobench.runtimes.faults), reproduced on the host "
        "by the harness's own tests: for process-contract checks that every correct "
        "runtime, the host included, passes.",
    )

    @model_validator(mode="after")
    def _one_kind(self) -> Control:
        kinds = [self.runtime is not None, bool(self.request), self.fault is not None]
        if sum(kinds) != 1:
            raise ValueError(
                "a control names one of 'runtime', 'request' (with 'runtimes') or 'fault'"
            )
        if self.request and not self.runtimes:
            raise ValueError("a request control needs 'runtimes' to run it on")
        if self.runtimes and not self.request:
            raise ValueError("'runtimes' goes with a 'request' control")
        return self


class RunExpect(BaseModel):
    """Expectations on a command's result."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    exit_code: Matcher | None = None
    stdout: Matcher | None = None
    stderr: Matcher | None = None
    host: dict[str, Matcher] = Field(
        default_factory=dict,
        description="Host facts read again after the command ran, by name.",
    )
    cgroup: dict[str, Matcher] = Field(
        default_factory=dict,
        description="Facts of the container's cgroup (cg.*), read on the host after the "
        "command ended and before the container exits.",
    )
    values: dict[str, Matcher] = Field(
        default_factory=dict,
        description="Values that the command printed as 'isobench-value NAME VALUE' lines.",
    )
    process: dict[str, Matcher] = Field(
        default_factory=dict,
        description="Facts of the container's first process read on the host side while it "
        "ran (hostside.zombies, hostside.uid).",
    )
    exec_stdout: Matcher | None = Field(
        default=None, description="The output of the process started through exec with wait."
    )

    @model_validator(mode="before")
    @classmethod
    def _no_null(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for key, value in data.items():
                if value is None:
                    raise ValueError(f"'{key}' has no value, so it would assert nothing")
        return data

    @model_validator(mode="after")
    def _something(self) -> RunExpect:
        nothing = self.exit_code is None and self.stdout is None and self.stderr is None
        nothing = nothing and self.exec_stdout is None and not self.process
        if nothing and not self.host and not self.cgroup and not self.values:
            raise ValueError(
                "set at least one of exit_code, stdout, stderr, exec_stdout, host, cgroup, "
                "process, values"
            )
        return self


class CheckBase(BaseModel):
    """The fields that every check has."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(description="Identifier, unique in the suite: lower case, digits, '-'.")
    title: str = Field(min_length=1, description="What the check guarantees, in one sentence.")
    request: Request = Field(default_factory=Request, description="The container request.")
    controls: list[Control] = Field(
        min_length=1, description="Negative controls: where the check must fail."
    )
    deviations: list[Deviation] = Field(default_factory=list)
    requires_path: str | None = Field(
        default=None,
        pattern=r"^/",
        description="A path the check is about: where it does not exist inside the "
        "container, the check is a skip with that reason.",
    )
    requires_host: list[str] = Field(
        default_factory=list,
        description="Host facts that must be non-empty, such as lsm.mac: where one is empty, "
        "the check is a skip with that reason.",
    )
    timeout_s: float = Field(default=60.0, gt=0, le=3600, description="Time limit in seconds.")

    @field_validator("id")
    @classmethod
    def _id_format(cls, value: str) -> str:
        if not CHECK_ID.match(value):
            raise ValueError(
                f"'{value}' is not an identifier of lower case letters, digits and '-'"
            )
        return value


class FactCheck(CheckBase):
    """A check that judges one fact gathered by the probe."""

    fact: str = Field(description="A probe fact to judge, such as ns.pid.")
    expect: Matcher = Field(description="The expectation on the fact.")


class ExecSpec(BaseModel):
    """Processes started in the running container through the runtime's exec."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    argv: list[str] = Field(min_length=1, description="The command's argv.")
    count: int = Field(default=1, ge=1, le=32, description="How many to start.")
    wait: bool = Field(
        default=False,
        description="Run one process to its end and judge its output with exec_stdout.",
    )

    @model_validator(mode="after")
    def _one_when_waited(self) -> ExecSpec:
        if self.wait and self.count != 1:
            raise ValueError("'wait' runs one process: leave 'count' at 1")
        return self


class StopSpec(BaseModel):
    """Stop the container while its command runs, as the engines' stop does."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    after_s: float = Field(
        default=2.0, ge=0, le=60, description="Seconds after the command starts."
    )
    grace_s: float = Field(
        default=3.0, ge=0, le=60, description="Seconds between SIGTERM and SIGKILL."
    )


class RunCheck(CheckBase):
    """A check that runs a command of its own in the container and judges its result."""

    run: list[str] = Field(min_length=1, description="The command's argv, without a shell.")
    exec: ExecSpec | None = Field(
        default=None,
        description="Processes to add through the runtime's exec after the command ended, "
        "before the cgroup is read.",
    )
    alongside: Request | None = Field(
        default=None,
        description="A second container with this request runs the same command at the "
        "same time, for checks of how two containers share a resource (cg.cpu.share).",
    )
    stdin: str | None = Field(default=None, description="Text written to the command's stdin.")
    stop: StopSpec | None = Field(
        default=None,
        description="Stop the container (SIGTERM, then SIGKILL after the grace period) while "
        "the command runs; the exit code is the container's.",
    )
    expect: RunExpect = Field(description="Expectations on exit code, output and host facts.")

    @model_validator(mode="after")
    def _compatible(self) -> RunCheck:
        if self.expect.exec_stdout is not None and not (self.exec and self.exec.wait):
            raise ValueError("'expect.exec_stdout' needs 'exec' with 'wait: true'")
        if self.stop is not None and (self.exec is not None or self.alongside is not None):
            raise ValueError("'stop' cannot be combined with 'exec' or 'alongside'")
        held = self.expect.cgroup or self.expect.process or self.exec or self.alongside
        if self.stdin is not None and (self.stop is not None or held):
            raise ValueError(
                "'stdin' goes with a command that runs to its end by itself, without "
                "'stop', 'exec', 'alongside' or cgroup and process expectations"
            )
        return self


def _check_kind(data: Any) -> str | None:
    if isinstance(data, dict):
        if "fact" in data:
            return "fact"
        if "run" in data:
            return "run"
        return None
    if isinstance(data, FactCheck):
        return "fact"
    if isinstance(data, RunCheck):
        return "run"
    return None


Check = Annotated[
    Annotated[FactCheck, Tag("fact")] | Annotated[RunCheck, Tag("run")],
    Discriminator(
        _check_kind,
        custom_error_type="check_kind",
        custom_error_message="a check needs either 'fact' or 'run'",
    ),
]


class Suite(BaseModel):
    """A suite file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    suite: str = Field(description="The suite's name, as used by --suite.")
    description: str = Field(default="", description="What the suite covers.")
    checks: list[Check] = Field(min_length=1)


def suite_json_schema() -> dict[str, Any]:
    """Return the JSON Schema of a suite file, for editors and docs/suite.schema.json."""
    schema = Suite.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "isobench suite"
    return schema
