"""Shared fixtures of the harness's own tests.

Integration tests need real runtimes. Where one is missing they skip with
the reason, unless ISOBENCH_REQUIRE_RUNTIMES=1 (or CI=true) is set: then a
missing runtime fails the test, so CI cannot go green by skipping.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from isobench import runtimes
from isobench.checks import Harness
from isobench.results import new_run_id
from isobench.spec.loader import LoadedSuite, load_suite

REPO = Path(__file__).resolve().parents[1]
SUITES = REPO / "suites"


def strict_runtimes() -> bool:
    return os.environ.get("ISOBENCH_REQUIRE_RUNTIMES") == "1" or os.environ.get("CI") == "true"


def require_runtime(name: str) -> None:
    """Skip (or, in CI, fail) the calling test when a runtime is not usable here."""
    info = runtimes.get(name).availability()
    if info.available:
        return
    message = f"runtime {name} is not available: {info.reason}. {info.hint}"
    if strict_runtimes():
        pytest.fail(message)
    pytest.skip(message)


def require_root() -> None:
    if os.geteuid() != 0:
        message = "needs root (containers, mounts and host markers)"
        if strict_runtimes():
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="session")
def namespaces_suite() -> LoadedSuite:
    return load_suite(SUITES / "namespaces.yaml")


@pytest.fixture(scope="session")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    """One harness for the whole test session, so probe containers are shared."""
    require_root()
    work = tmp_path_factory.mktemp("isobench-work")
    made = Harness(new_run_id(), work)
    yield made
    left = made.close()
    assert not left, f"resources left behind: {left}"
    cgroups = [str(p) for p in Path("/sys/fs/cgroup").glob(f"*/*{made.run_id}*")]
    assert not cgroups, f"cgroups left behind: {cgroups}"
    shutil.rmtree(work, ignore_errors=True)
