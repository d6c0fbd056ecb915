"""Every check must fail where its guarantee is missing: its negative controls."""

from __future__ import annotations

import pytest

from isobench.checks import Harness
from isobench.spec.loader import load_suite
from tests.conftest import SUITES, require_runtime

pytestmark = pytest.mark.integration


def _controls() -> list[tuple[str, str, str, dict[str, object]]]:
    cases = []
    for path in sorted(SUITES.glob("*.yaml")):
        suite = load_suite(path)
        for loaded in suite.checks:
            for control in loaded.check.controls:
                if control.runtime is not None:
                    cases.append((path.name, loaded.id, control.runtime, {}))
                for runtime in control.runtimes:
                    cases.append((path.name, loaded.id, runtime, dict(control.request)))
    return cases


def _case_id(case: tuple[str, str, str, dict[str, object]]) -> str:
    _, check, runtime, request = case
    fields = ",".join(f"{k}={v}" for k, v in request.items())
    return f"{check}-{runtime}" + (f"-{fields}" if fields else "")


@pytest.mark.parametrize("case", _controls(), ids=_case_id)
def test_control_fails(harness: Harness, case: tuple[str, str, str, dict[str, object]]) -> None:
    suite_file, check_id, runtime, request = case
    require_runtime(runtime)
    suite = load_suite(SUITES / suite_file)
    loaded = next(c for c in suite.checks if c.id == check_id)

    verdict = harness.evaluate(loaded, runtime, control=request or None)

    assert verdict.outcome == "fail", (
        f"{check_id} on {runtime} with {request or 'its own request'} should fail, "
        f"got {verdict.outcome}: {verdict.message} (observed {verdict.observed})"
    )


def test_isolation_checks_fail_on_host() -> None:
    for path in [SUITES / "namespaces.yaml"]:
        for loaded in load_suite(path).checks:
            runtimes = [c.runtime for c in loaded.check.controls if c.runtime]
            assert "host" in runtimes, f"{path.name}:{loaded.line} {loaded.id} has no host control"
