"""The cgroup namespace a container gets, by default and on request, and its verdicts."""

from __future__ import annotations

import pytest

from isobench.checks import Harness
from isobench.model import Request
from isobench.results import cgroup_version
from isobench.runtimes import get
from isobench.spec.loader import LoadedSuite
from tests.conftest import require_runtime

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("runtime", ["docker", "podman"])
def test_default_cgroupns_shared_v1(harness: Harness, runtime: str) -> None:
    """On cgroup v1 a default container shares the host's cgroup namespace."""
    require_runtime(runtime)
    if cgroup_version() != "1":
        pytest.skip("the engines default to a private cgroup namespace on cgroup v2")
    harness.start()

    facts = harness.probe(get(runtime), Request())

    assert facts.get("cgroupns.state") == "shared with host"
    assert facts.get("cgroup.memory.path_exists") == "no"
    assert facts.get("cgroup.own_path") != "/"


@pytest.mark.parametrize("runtime", ["docker", "podman", "runc"])
def test_private_cgroupns_root_path(harness: Harness, runtime: str) -> None:
    require_runtime(runtime)
    harness.start()

    facts = harness.probe(get(runtime), Request(cgroupns="private"))

    assert facts.get("cgroupns.state") == "private"
    assert facts.get("cgroup.own_path") == "/"


def test_cgroupns_verdicts_in_suite(harness: Harness, namespaces_suite: LoadedSuite) -> None:
    """The default-request check reports the shared namespace as a declared deviation."""
    require_runtime("docker")
    default = next(c for c in namespaces_suite.checks if c.id == "cgroup-ns-default")
    requested = next(c for c in namespaces_suite.checks if c.id == "cgroup-ns-private-requested")

    default_verdict = harness.evaluate(default, "docker")
    requested_verdict = harness.evaluate(requested, "docker")

    expected_default = "xfail" if cgroup_version() == "1" else "pass"
    assert default_verdict.outcome == expected_default
    assert "shared with host" in default_verdict.observed or expected_default == "pass"
    assert requested_verdict.outcome == "pass"
