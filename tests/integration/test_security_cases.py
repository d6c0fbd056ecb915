"""Security cases where runtimes differ: binds, added capabilities, privileged requests."""

from __future__ import annotations

import pytest

from isobench.checks import Harness
from isobench.model import Request
from isobench.runtimes import get
from isobench.spec.loader import LoadedCheck, load_suite
from tests.conftest import SUITES, require_runtime

pytestmark = pytest.mark.integration

ADDED_FOR_USER = Request(
    user="1000", cap_drop=("ALL",), cap_add=("NET_BIND_SERVICE",), no_new_privs=True
)


def security_check(check_id: str) -> LoadedCheck:
    return next(c for c in load_suite(SUITES / "security.yaml").checks if c.id == check_id)


@pytest.mark.parametrize("runtime", ["docker", "podman", "runc"])
def test_writable_submount_named(harness: Harness, runtime: str) -> None:
    """A tmpfs beneath a read-only bind stays writable, and the verdict names it."""
    require_runtime(runtime)

    verdict = harness.evaluate(security_check("readonly-bind-submounts"), runtime)

    assert verdict.outcome == "xfail"
    assert "writable: /data/sub" in verdict.observed
    assert "writable: /data'" not in verdict.observed


@pytest.mark.parametrize("runtime", ["docker", "podman", "runc"])
def test_readonly_bind_top_refused(harness: Harness, runtime: str) -> None:
    require_runtime(runtime)

    verdict = harness.evaluate(security_check("readonly-bind-write-refused"), runtime)

    assert verdict.outcome == "pass", verdict.observed


@pytest.mark.parametrize(
    ("runtime", "sets"),
    [
        # docker 20.10 keeps added capabilities of a non-root user in the bounding set only.
        ("docker", {"eff": [], "prm": [], "inh": [], "amb": [], "bnd": ["CAP_NET_BIND_SERVICE"]}),
        # podman raises them into every set, the ambient one included.
        (
            "podman",
            {name: ["CAP_NET_BIND_SERVICE"] for name in ("eff", "prm", "inh", "amb", "bnd")},
        ),
    ],
)
def test_added_caps_sets(harness: Harness, runtime: str, sets: dict[str, list[str]]) -> None:
    """Each capability set of a non-root user with an added capability, by name."""
    require_runtime(runtime)

    facts = harness.probe(get(runtime), ADDED_FOR_USER)

    assert {name: facts.get(f"caps.{name}") for name in sets} == sets


@pytest.mark.parametrize(("runtime", "outcome"), [("docker", "xfail"), ("podman", "pass")])
def test_added_cap_effective_verdict(harness: Harness, runtime: str, outcome: str) -> None:
    """Expecting NET_BIND_SERVICE to be effective fails on docker, as declared, and holds on
    podman."""
    require_runtime(runtime)

    verdict = harness.evaluate(security_check("caps-user-added-effective"), runtime)

    assert verdict.outcome == outcome, verdict.message


def test_privileged_refused_error(harness: Harness) -> None:
    """Where the host's bounding set lacks a capability, docker refuses privileged: an error
    that carries the engine's message, not a verdict."""
    require_runtime("docker")

    verdict = harness.evaluate(
        security_check("caps-no-sys-admin"), "docker", control={"privileged": True}
    )

    if verdict.outcome == "fail":
        pytest.skip("this host grants every capability, so docker runs privileged")
    assert verdict.outcome == "error"
    assert "unable to apply caps" in verdict.message


@pytest.mark.parametrize("runtime", ["podman", "runc"])
def test_privileged_grants_host_set(harness: Harness, runtime: str) -> None:
    """podman and the runc row grant the host's bounding set to a privileged container."""
    require_runtime(runtime)

    facts = harness.probe(get(runtime), Request(privileged=True))

    assert "CAP_SYS_ADMIN" in facts.get("caps.eff")  # type: ignore[operator]
    assert facts.get("masked.visible") != []
