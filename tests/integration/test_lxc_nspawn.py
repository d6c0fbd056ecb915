"""The lxc and systemd-nspawn rows on this host: the namespaces suite, what a run leaves
behind, and limits that the row sets and the kernel enforces."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from isobench.checks import Harness
from isobench.spec.loader import LoadedSuite, load_suite
from tests.conftest import SUITES, require_runtime

pytestmark = pytest.mark.integration

ROWS = ["lxc", "systemd-nspawn"]
ACCEPTED = ("pass", "xfail", "skip")
#: Checks of suites/cgroups.yaml whose limits each row must set and the kernel enforce.
LIMIT_CHECKS = (
    "memory-limit-configured",
    "memory-over-limit-killed",
    "pids-limit-configured",
    "pids-fork-loop-bounded",
    "cpu-quota-configured",
)


def leftovers(harness: Harness, runtime: str) -> list[str]:
    """Return what the row's containers left: journal entries, directories, cgroups,
    mounts and processes that name the run."""
    found = [f"journal: {e.kind} {e.name}" for e in harness.journal.live() if e.runtime == runtime]
    prefix = f"isobench-{harness.run_id}-{runtime}-"
    root = harness.ctx.bundle_root
    if root.is_dir():
        found += [f"directory: {p}" for p in root.iterdir() if p.name.startswith(prefix)]
    for pattern in (f"*/{prefix}*", f"*/lxc.payload.{prefix}*", f"*/lxc.monitor.{prefix}*"):
        found += [f"cgroup: {p}" for p in Path("/sys/fs/cgroup").glob(pattern)]
    found += [
        f"mount: {line}"
        for line in Path("/proc/self/mountinfo").read_text().splitlines()
        if prefix in line
    ]
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if prefix in command:
            found.append(f"process {entry.name}: {command}")
    return found


@pytest.mark.parametrize("runtime", ROWS)
def test_namespaces_suite_has_no_failure(
    harness: Harness, namespaces_suite: LoadedSuite, runtime: str
) -> None:
    require_runtime(runtime)
    broken = []
    for loaded in namespaces_suite.checks:
        verdict = harness.evaluate(loaded, runtime)
        if verdict.outcome not in ACCEPTED:
            broken.append(f"{loaded.id}: {verdict.outcome}: {verdict.message}")

    assert not broken, "\n".join(broken)
    left = leftovers(harness, runtime)
    assert not left, "\n".join(left)


@pytest.mark.parametrize("runtime", ROWS)
def test_limits_are_enforced(harness: Harness, runtime: str) -> None:
    require_runtime(runtime)
    checks = {c.id: c for c in load_suite(SUITES / "cgroups.yaml").checks}
    outcomes = {}
    for check_id in LIMIT_CHECKS:
        verdict = harness.evaluate(checks[check_id], runtime)
        outcomes[check_id] = f"{verdict.outcome}: {verdict.message}"

    for check_id, outcome in outcomes.items():
        assert outcome.startswith("pass"), f"{check_id} on {runtime}: {outcome}"
    left = leftovers(harness, runtime)
    assert not left, "\n".join(left)
