"""Property-based process checks: random argv, environment and exit statuses, sent and compared.

Hypothesis draws arguments and environment values with spaces, quotes,
newlines, shell syntax and non-ASCII text, and exit statuses from 0 to 255.
Each example is a real container on the runtime under test. The command
prints every value it received as hex, so what is compared is the bytes,
not how a terminal shows them. A shell-quoting bug in an adapter shows up as
a shrunk example.

The examples are derandomized, so every run tries the same ones.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from isobench.checks import Harness, StopExamples
from isobench.errors import IsobenchError
from isobench.model import Request
from isobench.runtimes import get
from isobench.runtimes.base import Adapter, execute

#: Only the environment property has a negative control here: the host applies no
#: request. The argv and exit properties fail through the adapter faults in the
#: harness's own tests (tests/integration/test_process_properties.py).
NEGATIVE_CONTROLS: tuple[str, ...] = ()
#: Every container and host-side read goes through the harness, so through the run's host.
REMOTE_READY = True

CHECK = settings(
    max_examples=5,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# Text a process can receive: no NUL (C strings end there), no lone surrogates.
TEXT = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=40
)
SHELL_SYNTAX = st.sampled_from(["", " ", "'", '"', "$HOME", "`id`", "*", "\\", "\n", "a b", "--x"])
VALUE = st.one_of(TEXT, SHELL_SYNTAX, st.text(alphabet="xyz ", min_size=1000, max_size=5000))

# Print each argument as one line of hex.
HEX_EACH = 'for arg; do printf "%s" "$arg" | od -An -tx1 -v | tr -d " \\n"; echo; done'


def _hex_lines(stdout: str) -> list[str]:
    return stdout.splitlines()


def argv_round_trip(harness: Harness, adapter: Adapter, args: list[str]) -> list[str]:
    """Run a command with ``args`` and return each argument as it arrived, as hex."""
    harness.start()
    harness.prepare(adapter)
    execution = execute(adapter, harness.ctx, Request(), ["sh", "-c", HEX_EACH, "sh", *args])
    return _hex_lines(execution.result.stdout)


def env_round_trip(harness: Harness, adapter: Adapter, values: list[str]) -> list[str]:
    """Start a container with environment ``values`` and return each as it arrived, as hex."""
    harness.start()
    harness.prepare(adapter)
    names = [f"ISOBENCH_VALUE_{number}" for number in range(len(values))]
    request = Request(env=tuple(zip(names, values, strict=True)))
    reason = adapter.unsupported(request)
    if reason is not None:
        # Some rows cannot carry some values (LXC's config file has no way to write a
        # newline or a leading blank): a skip with the row's reason, not an error.
        pytest.skip(f"{adapter.name} cannot express a drawn environment value: {reason}")
    script = HEX_EACH.replace("for arg;", "for arg in " + " ".join(f'"${n}"' for n in names) + ";")
    execution = execute(adapter, harness.ctx, request, ["sh", "-c", script])
    return _hex_lines(execution.result.stdout)


def exit_round_trip(harness: Harness, adapter: Adapter, status: int) -> int | None:
    """Run a command that exits with ``status`` and return the status the runtime reports."""
    harness.start()
    harness.prepare(adapter)
    execution = execute(adapter, harness.ctx, Request(), ["sh", "-c", f"exit {status}"])
    return execution.result.exit_code


@CHECK
@given(args=st.lists(VALUE, min_size=1, max_size=6))
def test_argv_arrives_unchanged(
    isobench_harness: Harness, isobench_runtime: str, args: list[str]
) -> None:
    """Every argument arrives byte for byte, however it would read to a shell."""
    try:
        received = argv_round_trip(isobench_harness, get(isobench_runtime), args)
    except IsobenchError as exc:
        raise StopExamples(exc) from exc
    assert received == [arg.encode().hex() for arg in args]


@CHECK
@given(values=st.lists(VALUE, min_size=1, max_size=4))
def test_env_arrives_unchanged(
    isobench_harness: Harness, isobench_runtime: str, values: list[str]
) -> None:
    """Every requested environment value arrives byte for byte."""
    try:
        received = env_round_trip(isobench_harness, get(isobench_runtime), values)
    except IsobenchError as exc:
        raise StopExamples(exc) from exc
    assert received == [value.encode().hex() for value in values]


test_env_arrives_unchanged.negative_controls = ("host",)  # type: ignore[attr-defined]


@CHECK
@given(status=st.integers(min_value=0, max_value=255))
def test_exit_status_exact(isobench_harness: Harness, isobench_runtime: str, status: int) -> None:
    """An exit status from 0 to 255 comes back exactly."""
    try:
        reported = exit_round_trip(isobench_harness, get(isobench_runtime), status)
    except IsobenchError as exc:
        raise StopExamples(exc) from exc
    assert reported == status


@pytest.fixture(autouse=True)
def _runtime_available(isobench_runtime: str) -> None:
    info = get(isobench_runtime).availability()
    if not info.available:
        pytest.fail(f"runtime {isobench_runtime} is not available: {info.reason}", pytrace=False)
