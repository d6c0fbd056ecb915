"""The JSON Schema of one ``results.jsonl`` line, built from a pydantic model of ``Record``.

``docs/results.schema.json`` is this schema. Write it again after a change to
``Record`` with::

    .venv/bin/isobench schema --results --out docs/results.schema.json

A unit test compares the model's fields with ``Record`` and the file with the model.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Outcome = Literal["pass", "fail", "error", "skip", "xfail", "xpass"]


class ResultLine(BaseModel):
    """One outcome of one check on one runtime: a line of results.jsonl."""

    model_config = ConfigDict(extra="forbid")

    suite: str = Field(
        min_length=1,
        description="The suite's name, as used by --suite. For a pytest module, the module's "
        "name without the test_ prefix.",
    )
    check: str = Field(
        min_length=1,
        description="The check's id, unique in its suite. For a pytest module, the test "
        "function's name.",
    )
    runtime: str = Field(
        min_length=1,
        description="The runtime row, such as docker, docker+runsc, podman, runc, runsc or host.",
    )
    outcome: Outcome = Field(
        description="pass: the guarantee holds. fail: the guarantee is broken. error: the "
        "runtime or harness could not run the check, which is not a verdict. skip: the runtime "
        "cannot express the request. xfail: a deviation declared in the suite for that runtime "
        "happened. xpass: a declared deviation did not happen, which counts as a failure.",
    )
    message: str = Field(
        default="",
        description="Why the outcome happened: the unmet expectation, the runtime's or "
        "harness's error, the skip reason or the declared deviation. Empty on a pass.",
    )
    title: str = Field(default="", description="What the check guarantees, in one sentence.")
    duration_s: float = Field(
        default=0.0, ge=0, description="Time the check took on this runtime, in seconds."
    )
    file: str = Field(default="", description="The suite file or test module of the check.")
    line: int = Field(
        default=0,
        ge=0,
        description="The line of the check in file, counted from 1, or 0 when unknown.",
    )
    commands: list[str] = Field(
        default_factory=list,
        description="The commands that the harness ran for the check, one string each.",
    )
    expected: str = Field(default="", description="The expectation, as text.")
    observed: str = Field(default="", description="The observed value, as text.")
    request: str = Field(default="", description="The container request, as text.")
    fact: str = Field(
        default="",
        description="The probe fact that the check judges, such as ns.pid. Empty for a check "
        "that runs a command of its own.",
    )
    notes: list[str] = Field(
        default_factory=list,
        description="Remarks on the record, such as container output dropped past 4 Mi characters.",
    )
    control: str = Field(
        default="",
        description="The label of the negative control that this record ran, which the report "
        "shows on a matrix row of its own. Empty for a record of the check itself.",
    )
    expected_to_fail: bool = Field(
        default=False,
        description="The runtime is a declared negative control of the check, such as host. "
        "There fail is the expected outcome, and pass means that the check cannot detect a "
        "missing guarantee.",
    )
    host: str = Field(
        default="",
        description="The label of the host that the record comes from, set by isobench merge. "
        "Empty in a run that was not merged.",
    )
    source_runtime: str = Field(
        default="",
        description="In a merged run, the runtime as the source run named it. runtime is then "
        "'RUNTIME @ HOST' when the merged run has more than one host. Empty in a run that was "
        "not merged.",
    )


def results_schema() -> dict[str, Any]:
    """Return the JSON Schema of one results.jsonl line, for docs/results.schema.json."""
    schema = ResultLine.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "isobench results line"
    return schema
