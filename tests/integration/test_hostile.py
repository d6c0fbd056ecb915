"""Hostile workloads stay contained, and the harness survives them with its results whole.

Fork loops and fills run only inside a container that has the limit set,
never on the host adapter.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from isobench.checks import Harness
from isobench.model import Request, Tmpfs
from isobench.runtimes import get
from isobench.runtimes.base import MAX_KEPT_CHARS, execute
from isobench.spec.loader import load_suite
from tests.conftest import require_runtime

pytestmark = pytest.mark.integration

CONTAINERS = ["docker", "podman", "runc"]


def prepared(harness: Harness, runtime: str):  # type: ignore[no-untyped-def]
    require_runtime(runtime)
    harness.start()
    adapter = get(runtime)
    harness.prepare(adapter)
    return adapter


@pytest.mark.parametrize("runtime", CONTAINERS)
def test_stdout_flood_capped(harness: Harness, runtime: str) -> None:
    """100 MB on stdout: the harness keeps its first part, notes the cut, and goes on."""
    adapter = prepared(harness, runtime)

    execution = execute(
        adapter,
        harness.ctx,
        Request(),
        ["sh", "-c", "yes isobench-flood | head -c 100000000; echo finished >&2"],
        timeout=300,
    )

    assert execution.result.exit_code == 0
    assert len(execution.result.stdout) == MAX_KEPT_CHARS
    assert "finished" in execution.result.stderr
    assert any(note.startswith("stdout was cut") for note in execution.notes)


@pytest.mark.parametrize("runtime", CONTAINERS)
def test_flood_without_newlines(harness: Harness, runtime: str) -> None:
    adapter = prepared(harness, runtime)

    execution = execute(
        adapter,
        harness.ctx,
        Request(),
        ["sh", "-c", "head -c 50000000 /dev/zero | tr '\\0' x"],
        timeout=300,
    )

    assert execution.result.exit_code == 0
    assert len(execution.result.stdout) == MAX_KEPT_CHARS


def hanging_check(tmp_path: Path, command: str) -> object:
    suite = tmp_path / "hanging.yaml"
    suite.write_text(
        "suite: hanging\n"
        "checks:\n"
        "  - id: never-ends\n"
        "    title: A command that does not end\n"
        f"    run: [sh, -c, '{command}']\n"
        "    timeout_s: 3\n"
        "    expect: {exit_code: {equals: 0}}\n"
        "    controls: [{runtime: host}]\n"
    )
    return load_suite(suite).checks[0]


@pytest.mark.parametrize(
    "command",
    [
        "sleep 3600",
        'trap "" TERM INT; sleep 3600',
        "exec >&- 2>&-; sleep 3600",
    ],
    ids=["never-exits", "ignores-sigterm", "closes-stdout"],
)
@pytest.mark.parametrize("runtime", CONTAINERS)
def test_hanging_command_timeout(
    harness: Harness, runtime: str, command: str, tmp_path: Path
) -> None:
    """A container that does not end is an error naming the time limit, and is removed."""
    require_runtime(runtime)

    verdict = harness.evaluate(hanging_check(tmp_path, command), runtime)  # type: ignore[arg-type]

    assert verdict.outcome == "error"
    assert "3" in verdict.message
    assert "timed out" in verdict.message or "time limit" in verdict.message


@pytest.mark.parametrize("runtime", CONTAINERS)
def test_fork_bomb_contained(harness: Harness, runtime: str) -> None:
    """A fork bomb under a pids limit of 64 stays within it, and ends after 5 s."""
    adapter = prepared(harness, runtime)
    bomb = "timeout -s KILL 5 sh -c 'f() { f | f & }; f; wait'; echo survived"

    # One CPU, so the failing forks do not take both of the host's.
    request = Request(pids_limit=64, cpus=1.0)
    execution, _, stdout = harness.run_held(adapter, request, ["sh", "-c", bomb], timeout_s=120)

    assert "survived" in stdout
    assert execution.host_view["cg.pids.max"] == "64"
    assert int(str(execution.host_view["cg.pids.current"])) <= 64


@pytest.mark.parametrize("runtime", CONTAINERS)
def test_tmpfs_fill_contained(harness: Harness, runtime: str) -> None:
    """Filling an 8 MiB tmpfs stops at its size with ENOSPC."""
    adapter = prepared(harness, runtime)
    request = Request(tmpfs=(Tmpfs(target="/fill", size=8 * 1024 * 1024),))

    execution = execute(
        adapter,
        harness.ctx,
        request,
        ["sh", "-c", "dd if=/dev/zero of=/fill/data bs=1M count=64; du -k /fill/data"],
        timeout=120,
    )

    assert "No space left on device" in execution.result.stderr
    kib = int(execution.result.stdout.split()[0])
    assert kib <= 8 * 1024
