"""The reference docs stay in step with the code."""

from __future__ import annotations

import json

from isobench.probe.cgroups import RUN_CGROUP_FACTS
from isobench.probe.derive import DERIVED_FACTS, HOST_FACTS, PROBE_FACTS
from isobench.spec.schema import suite_json_schema
from tests.conftest import REPO


def test_schema_file_current() -> None:
    written = json.loads((REPO / "docs" / "suite.schema.json").read_text())
    assert written == suite_json_schema(), "run 'isobench schema --out docs/suite.schema.json'"


def test_every_fact_documented() -> None:
    text = (REPO / "docs" / "suites.md").read_text()
    for name in (*PROBE_FACTS, *DERIVED_FACTS, *HOST_FACTS, *RUN_CGROUP_FACTS):
        assert f"`{name}`" in text, name
