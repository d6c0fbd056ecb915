"""Every check must fail where its guarantee is missing: its negative controls."""

from __future__ import annotations

import pytest

from isobench.checks import Harness
from isobench.runtimes.faults import FaultyHost
from isobench.spec.loader import load_suite
from tests.conftest import SUITES, require_runtime

pytestmark = pytest.mark.integration


Case = tuple[str, str, str, dict[str, object], str]


def _controls() -> list[Case]:
    cases: list[Case] = []
    for path in sorted(SUITES.glob("*.yaml")):
        suite = load_suite(path)
        for loaded in suite.checks:
            for control in loaded.check.controls:
                if control.runtime is not None:
                    cases.append((path.name, loaded.id, control.runtime, {}, ""))
                for runtime in control.runtimes:
                    cases.append((path.name, loaded.id, runtime, dict(control.request), ""))
                if control.fault is not None:
                    cases.append((path.name, loaded.id, "host", {}, control.fault))
    return cases


def _case_id(case: Case) -> str:
    _, check, runtime, request, fault = case
    fields = ",".join(f"{k}={v}" for k, v in request.items())
    name = f"{check}-{runtime}" + (f"-{fields}" if fields else "")
    return f"{name}+{fault}" if fault else name


@pytest.mark.parametrize("case", _controls(), ids=_case_id)
def test_control_fails(harness: Harness, case: Case) -> None:
    suite_file, check_id, runtime, request, fault = case
    require_runtime(runtime)
    suite = load_suite(SUITES / suite_file)
    loaded = next(c for c in suite.checks if c.id == check_id)
    adapter = FaultyHost(fault) if fault else None

    verdict = harness.evaluate(loaded, runtime, control=request or None, adapter=adapter)

    conditional = loaded.check.requires_path or loaded.check.requires_host
    if verdict.outcome == "skip" and conditional:
        pytest.skip(f"the check does not apply on this host: {verdict.message}")
    assert verdict.outcome == "fail", (
        f"{check_id} on {runtime} with {request or fault or 'its own request'} should fail, "
        f"got {verdict.outcome}: {verdict.message} (observed {verdict.observed})"
    )


def test_isolation_checks_fail_on_host() -> None:
    for path in [SUITES / "namespaces.yaml"]:
        for loaded in load_suite(path).checks:
            runtimes = [c.runtime for c in loaded.check.controls if c.runtime]
            assert "host" in runtimes, f"{path.name}:{loaded.line} {loaded.id} has no host control"


def test_host_passes_few_security_checks(harness: Harness) -> None:
    """The host, which isolates nothing, passes at most a fifth of the security checks."""
    checks = load_suite(SUITES / "security.yaml").checks
    passed = [c.id for c in checks if harness.evaluate(c, "host").outcome == "pass"]

    assert len(passed) <= len(checks) / 5, f"the host passes {passed}"
