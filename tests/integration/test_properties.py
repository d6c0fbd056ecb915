"""The property-based cgroup suite on a runtime with limits and on its negative control."""

from __future__ import annotations

from pathlib import Path

import pytest

from isobench.results import read_run
from tests.conftest import require_runtime
from tests.integration.test_cli import isobench

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def property_run(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, object]]:
    require_runtime("runc")
    out = tmp_path_factory.mktemp("properties") / "run"
    isobench(
        "run",
        "--runtime",
        "runc",
        "--runtime",
        "host",
        "--suite",
        "cgroup_properties",
        "--out",
        str(out),
    )
    _, records = read_run(out)
    return records


def outcomes(records: list[dict[str, object]], runtime: str) -> set[object]:
    return {r["outcome"] for r in records if r["runtime"] == runtime}


def test_properties_hold_on_runc(property_run: list[dict[str, object]]) -> None:
    assert outcomes(property_run, "runc") == {"pass"}


def test_properties_fail_on_host(property_run: list[dict[str, object]]) -> None:
    host = [r for r in property_run if r["runtime"] == "host"]

    assert {r["outcome"] for r in host} == {"fail"}
    assert all(r["expected_to_fail"] for r in host)


def test_counterexample_in_record(property_run: list[dict[str, object]]) -> None:
    host = [r for r in property_run if r["runtime"] == "host"]

    for record in host:
        assert "Failing test case" in str(record["message"]) or "Falsifying example" in str(
            record["message"]
        )
        assert "isobench_runtime='host'" in str(record["message"])


def test_property_suite_file(property_run: list[dict[str, object]]) -> None:
    files = {Path(str(r["file"])).name for r in property_run}
    assert files == {"test_cgroup_properties.py"}


@pytest.fixture(scope="module")
def process_run(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, object]]:
    for runtime in ("docker", "podman", "runc"):
        require_runtime(runtime)
    out = tmp_path_factory.mktemp("process-properties") / "run"
    isobench(
        "run",
        *("--runtime", "docker", "--runtime", "podman", "--runtime", "runc"),
        *("--runtime", "host", "--suite", "process_properties", "--out", str(out)),
    )
    _, records = read_run(out)
    return records


@pytest.mark.parametrize("runtime", ["docker", "podman", "runc"])
def test_process_properties_hold(process_run: list[dict[str, object]], runtime: str) -> None:
    """Drawn argv, environment values and exit statuses arrive unchanged on every adapter."""
    assert outcomes(process_run, runtime) == {"pass"}


def test_host_env_property_fails(process_run: list[dict[str, object]]) -> None:
    """The host applies no request, so only its environment property fails, as declared."""
    host = {str(r["check"]): r for r in process_run if r["runtime"] == "host"}

    assert host["test_env_arrives_unchanged"]["outcome"] == "fail"
    assert host["test_env_arrives_unchanged"]["expected_to_fail"]
    assert host["test_argv_arrives_unchanged"]["outcome"] == "pass"
    assert host["test_exit_status_exact"]["outcome"] == "pass"
