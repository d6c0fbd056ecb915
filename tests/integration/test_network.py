"""The network suite on docker, podman and the host, and what it leaves behind.

docker and podman must give only pass, a declared xfail or a skip with a
reason. The host row, whose processes share the host's network, must fail
every isolation check. Two checks show a working function instead: a peer on
the same network is reached, and a published port answers. They pass on the
host too, so their negative controls are faults of a fake docker client that
take the function away.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest

from isobench.remnants import remnants
from isobench.results import read_run
from tests.conftest import REPO, SUITES, require_root, require_runtime
from tests.integration.test_cli import isobench

pytestmark = pytest.mark.integration

SUITE = SUITES / "network"
#: Checks that show a function rather than a boundary: the host row has it too.
FUNCTION_CHECKS = {"test_peers_same_network_reach", "test_publish_answers_on_bound_address"}


def suite_checks() -> list[str]:
    return [
        node.name
        for module in sorted(SUITE.glob("test_*.py"))
        for node in ast.parse(module.read_text()).body
        if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")
    ]


def run_network(out: Path, *runtimes: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    arguments = ["run", "--suite", "network", "--out", str(out)]
    for runtime in runtimes:
        arguments += ["--runtime", runtime]
    finished = isobench(*arguments, timeout=1200)
    meta, records = read_run(out)
    assert records, f"the run wrote no records:\n{finished.stdout}\n{finished.stderr}"
    return meta, records


@pytest.fixture(scope="module")
def network_run(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    require_root()
    for runtime in ("docker", "podman"):
        require_runtime(runtime)
    out = tmp_path_factory.mktemp("network") / "run"
    meta, records = run_network(out, "docker", "podman", "host")
    found = {kind: items for kind, items in remnants(str(meta["run_id"])).items() if items}
    assert not found, f"run {meta['run_id']} left {found}"
    return records


def outcomes(records: list[dict[str, Any]], runtime: str) -> dict[str, str]:
    return {r["check"]: r["outcome"] for r in records if r["runtime"] == runtime}


def test_suite_has_twelve_checks_or_more() -> None:
    assert len(suite_checks()) >= 12


@pytest.mark.parametrize("runtime", ["docker", "podman"])
def test_engines_pass_or_declare(network_run: list[dict[str, Any]], runtime: str) -> None:
    found = outcomes(network_run, runtime)
    bad = {
        check: outcome
        for check, outcome in found.items()
        if outcome not in ("pass", "xfail", "skip")
    }

    assert set(found) == set(suite_checks())
    assert not bad, [r["message"][:400] for r in network_run if r["check"] in bad]


def test_engine_skips_have_reasons(network_run: list[dict[str, Any]]) -> None:
    skipped = [r for r in network_run if r["outcome"] == "skip"]

    assert all("cannot" in r["message"] for r in skipped), skipped


def test_host_fails_isolation_checks(network_run: list[dict[str, Any]]) -> None:
    """The host row fails every check but the two that show a function it has too."""
    found = outcomes(network_run, "host")
    expected = {check: "pass" if check in FUNCTION_CHECKS else "fail" for check in suite_checks()}

    assert found == expected


FAKE_ENGINE = REPO / "tests" / "data" / "fake-engine" / "fake-engine"
#: The function checks, each with the fault of the fake docker client that takes the
#: function away: the check must then fail.
FUNCTION_CONTROLS = [
    ("test_peers_same_network_reach", "later-on-default-network"),
    ("test_publish_answers_on_bound_address", "drop-publish"),
]


def test_function_checks_have_controls() -> None:
    assert {check for check, _ in FUNCTION_CONTROLS} == FUNCTION_CHECKS


@pytest.mark.parametrize(("check", "fault"), FUNCTION_CONTROLS)
def test_fault_fails_function_check(tmp_path: Path, check: str, fault: str) -> None:
    require_root()
    require_runtime("docker")
    arguments = ["run", "--suite", "network", "--runtime", "docker", "-k", check]
    env = {
        "ISOBENCH_DOCKER": str(FAKE_ENGINE),
        "ISOBENCH_FAKE_TARGET": "/usr/bin/docker",
        "ISOBENCH_FAKE_FAULT": fault,
        "ISOBENCH_FAKE_STATE": str(tmp_path / "fake-state"),
    }

    isobench(*arguments, "--out", str(tmp_path / "run"), env=env, timeout=600)

    meta, records = read_run(tmp_path / "run")
    assert [(r["check"], r["outcome"]) for r in records] == [(check, "fail")], records
    found = {kind: items for kind, items in remnants(str(meta["run_id"])).items() if items}
    assert not found, f"run {meta['run_id']} left {found}"
