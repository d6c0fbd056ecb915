"""The process contract: stop and init, images without a shell, missing commands, and the
property checks' failures through adapter faults."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

from isobench.checks import Harness
from isobench.runtimes.faults import FaultyHost
from isobench.spec.loader import LoadedCheck, load_suite
from tests.conftest import SUITES, require_runtime

pytestmark = pytest.mark.integration


def process_check(check_id: str) -> LoadedCheck:
    return next(c for c in load_suite(SUITES / "process.yaml").checks if c.id == check_id)


def note(notes: list[str], start: str) -> str:
    return next(n for n in notes if n.startswith(start))


@pytest.mark.parametrize("runtime", ["docker", "podman"])
def test_stop_without_init(harness: Harness, runtime: str) -> None:
    """Without an init, stop ends PID 1 with SIGKILL after the grace period, and orphans stay
    as zombies."""
    require_runtime(runtime)

    verdict = harness.evaluate(
        process_check("signal-init-reaps-zombies"), runtime, control={"init": False}
    )

    assert verdict.outcome == "fail"
    assert "hostside.zombies: '5'" in verdict.observed
    assert "with status 137" in note(verdict.notes, "stopped")


@pytest.mark.parametrize("runtime", ["docker", "podman"])
def test_stop_with_init(harness: Harness, runtime: str) -> None:
    """With an init, stop ends the command with SIGTERM (143) and no zombies stay."""
    require_runtime(runtime)

    verdict = harness.evaluate(process_check("signal-init-reaps-zombies"), runtime)

    assert verdict.outcome == "pass", verdict.message
    assert "with status 143" in note(verdict.notes, "stopped")
    assert note(verdict.notes, "exited children not reaped").endswith(": 0")


def test_runc_init_skipped(harness: Harness) -> None:
    require_runtime("runc")

    verdict = harness.evaluate(process_check("signal-stop-init-graceful"), "runc")

    assert verdict.outcome == "skip"
    assert "no init process" in verdict.message


def static_check(tmp_path: Path, run: str) -> LoadedCheck:
    suite = tmp_path / "static.yaml"
    suite.write_text(
        "suite: static\n"
        "checks:\n"
        "  - id: static-run\n"
        "    title: A command in the static image\n"
        "    request: {image: static}\n"
        f"    run: {run}\n"
        "    expect: {exit_code: {equals: 0}}\n"
        "    controls: [{fault: exit-flattened}]\n"
    )
    return load_suite(suite).checks[0]


@pytest.mark.parametrize("runtime", ["docker", "podman", "runc"])
def test_static_image_direct_argv(harness: Harness, runtime: str) -> None:
    """In an image whose only file is a static binary, the binary runs by direct argv."""
    require_runtime(runtime)

    verdict = harness.evaluate(process_check("argv-direct-without-shell"), runtime)

    assert verdict.outcome == "pass", verdict.message


@pytest.mark.parametrize("runtime", ["docker", "runc"])
def test_static_image_shell_skipped(harness: Harness, runtime: str, tmp_path: Path) -> None:
    """Only a check that needs a shell is skipped, and the reason names the shell."""
    require_runtime(runtime)

    verdict = harness.evaluate(static_check(tmp_path, "[sh, -c, 'true']"), runtime)

    assert verdict.outcome == "skip"
    assert "needs /bin/sh" in verdict.message
    assert "static image" in verdict.message


@pytest.mark.parametrize("runtime", ["docker", "runc"])
def test_missing_command_error(harness: Harness, runtime: str, tmp_path: Path) -> None:
    """A command that is not in the image is an error that names it."""
    require_runtime(runtime)

    verdict = harness.evaluate(static_check(tmp_path, "[/bin/isobench-absent, x]"), runtime)

    assert verdict.outcome == "error"
    assert "'/bin/isobench-absent' does not exist in the static image" in verdict.message


def property_suite() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "process_properties", SUITES / "test_process_properties.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_argv_property_catches_joining(harness: Harness) -> None:
    """The argv property detects changed bytes when an adapter joins argv unquoted."""
    args = ["two  words", "", "$HOME"]

    received = property_suite().argv_round_trip(harness, FaultyHost("argv-joined"), args)

    assert received != [arg.encode().hex() for arg in args]


def test_exit_property_catches_flattening(harness: Harness) -> None:
    """The exit property detects 7 coming back as 1 through an adapter that flattens statuses."""
    status = property_suite().exit_round_trip(harness, FaultyHost("exit-flattened"), 7)

    assert status == 1


def test_env_property_fails_on_host(harness: Harness) -> None:
    """The host applies no request, so the environment property receives nothing."""
    from isobench.runtimes import get

    received = property_suite().env_round_trip(harness, get("host"), ["a b"])

    assert received == [""]


@pytest.mark.parametrize(
    "runtime",
    [
        *("docker", "podman", "runc", "runsc", "crun", "docker+runsc", "podman+runsc"),
        *("isobox", "containerd", "bwrap", "lxc", "systemd-nspawn", "host"),
    ],
)
def test_values_never_reach_shell(
    harness: Harness, runtime: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An argv element or environment value with shell syntax arrives as one value and runs
    nothing. bwrap is a command-template row, crun runs its commands through sh."""
    from isobench.model import Request
    from isobench.runtimes import get
    from isobench.runtimes.base import execute

    require_runtime(runtime)
    target = tmp_path / "owned"
    hostile = f"x; touch {target}; $(touch {target}) `touch {target}`"
    request = Request(env=(("ISOBENCH_HOSTILE", hostile),))
    harness.start()
    adapter = get(runtime)
    harness.prepare(adapter)

    execution = execute(
        adapter,
        harness.ctx,
        request,
        ["/bin/sh", "-c", 'printf "%s\\n" "$1" "$ISOBENCH_HOSTILE"', "sh", hostile],
    )

    lines = execution.result.stdout.splitlines()
    assert lines[0] == hostile
    if runtime != "host":  # the host applies no request, so its environment value is empty
        assert lines[1] == hostile
    assert not target.exists()
