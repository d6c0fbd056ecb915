"""Every YAML suite on the engines and OCI runtimes that must keep every guarantee."""

from __future__ import annotations

from pathlib import Path

import pytest

from isobench.checks import Harness
from isobench.remnants import count, remnants
from isobench.results import read_run
from isobench.spec.loader import LoadedSuite, load_suite
from tests.conftest import SUITES, require_runtime
from tests.integration.test_cli import isobench

pytestmark = pytest.mark.integration

ACCEPTED = ("pass", "xfail", "skip")


@pytest.mark.parametrize("suite", ["namespaces", "cgroups", "security", "process"])
@pytest.mark.parametrize("runtime", ["docker", "podman", "runc"])
def test_row_keeps_guarantees(harness: Harness, runtime: str, suite: str) -> None:
    require_runtime(runtime)
    broken = []
    for loaded in load_suite(SUITES / f"{suite}.yaml").checks:
        verdict = harness.evaluate(loaded, runtime)
        if verdict.outcome not in ACCEPTED:
            broken.append(f"{loaded.id}: {verdict.outcome}: {verdict.message}")
    assert not broken, "\n".join(broken)


@pytest.mark.parametrize("runtime", ["crun", "bwrap"])
def test_row_keeps_namespaces(
    harness: Harness, namespaces_suite: LoadedSuite, runtime: str
) -> None:
    """The rows that run without a daemon of their own: each namespaces check passes, is
    skipped with a reason, or is a declared deviation."""
    require_runtime(runtime)
    broken = []
    for loaded in namespaces_suite.checks:
        verdict = harness.evaluate(loaded, runtime)
        if verdict.outcome not in ACCEPTED:
            broken.append(f"{loaded.id}: {verdict.outcome}: {verdict.message}")
    assert not broken, "\n".join(broken)


@pytest.mark.parametrize("runtime", ["runsc", "docker+runsc", "podman+runsc"])
def test_gvisor_row_has_verdicts(
    harness: Harness, namespaces_suite: LoadedSuite, runtime: str
) -> None:
    require_runtime(runtime)
    outcomes = [harness.evaluate(c, runtime).outcome for c in namespaces_suite.checks]
    assert outcomes.count("pass") >= len(outcomes) // 2
    assert "xpass" not in outcomes


def test_skip_names_reason(harness: Harness, namespaces_suite: LoadedSuite) -> None:
    require_runtime("docker")
    loaded = next(c for c in namespaces_suite.checks if c.id == "user-ns-mapped")
    verdict = harness.evaluate(loaded, "docker")
    assert verdict.outcome == "skip"
    assert "userns-remap" in verdict.message


def test_new_rows_leave_nothing(tmp_path: Path) -> None:
    """crun (behind its mount namespace), bwrap and podman+runsc run the namespaces suite
    through the CLI and leave no container, state, mount, cgroup, process or file."""
    rows = ["crun", "bwrap", "podman+runsc"]
    for row in rows:
        require_runtime(row)
    out = tmp_path / "run"
    arguments = [argument for row in rows for argument in ("--runtime", row)]

    result = isobench("run", *arguments, "--suite", "namespaces", "--out", str(out))

    meta, records = read_run(out)
    assert result.returncode == 0, result.stdout + result.stderr
    assert {r["runtime"] for r in records} == set(rows)
    assert {r["outcome"] for r in records} <= {"pass", "xfail", "skip"}
    found = remnants(str(meta["run_id"]))
    assert count(found) == 0, found
    assert not any(meta["run_id"] in path.name for path in Path("/run/isobench/crun").glob("*"))
