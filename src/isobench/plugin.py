"""The pytest plugin: collects ``suites/*.yaml`` and runs every check on every runtime.

Each pair of check and runtime is one item named ``CHECK[RUNTIME]``. The check is
evaluated in the item's set-up, so a runtime that could not run it shows
as a pytest *error*, a broken guarantee as a *failure*, and a request the
runtime cannot express as a *skip*. Every outcome is written to the run
directory as it happens.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Generator, Iterator
from pathlib import Path
from types import FrameType
from typing import Any

import pytest

from isobench import hosts, runlock, runtimes
from isobench.bench.samples import SampleWriter
from isobench.checks import Harness, StopExamples, Verdict, to_record
from isobench.errors import IsobenchError, SuiteError, UsageError
from isobench.results import RESULTS_FILE, Record, RunDirectory, new_run_id
from isobench.runlock import RunLock
from isobench.runtimes import capabilities
from isobench.runtimes.base import Availability
from isobench.spec.loader import LoadedCheck, load_suite

log = logging.getLogger(__name__)

RECORD_KEY = "isobench-record"
verdict_key = pytest.StashKey[Verdict]()
record_key = pytest.StashKey[Record]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("isobench", "isobench: container runtime checks")
    group.addoption(
        "--runtime",
        action="append",
        default=[],
        metavar="NAME",
        help="Runtime row to check (repeatable; default: every available runtime except "
        f"'host'). Known: {', '.join(runtimes.names())}.",
    )
    group.addoption(
        "--isobench-run-id",
        metavar="ID",
        default=None,
        help="Identifier of the run, used in container names (default: time and a random part).",
    )
    group.addoption(
        "--isobench-out",
        metavar="DIR",
        default=None,
        help="Run directory for run.json and results.jsonl (default: reports/runs/RUN_ID).",
    )
    group.addoption(
        "--isobench-host",
        metavar="SPEC",
        default=None,
        help="The machine to check, as a testinfra host spec: local:// (the default) or "
        "ssh://[USER@]HOST[:PORT][?ssh_config=FILE&ssh_identity_file=FILE].",
    )
    group.addoption(
        "--isobench-bench",
        action="store_true",
        default=False,
        help="Benchmark run: take the host-wide run lock alone, and refuse parallel workers.",
    )
    group.addoption(
        "--isobench-rounds",
        type=int,
        default=10,
        metavar="N",
        help="Measured rounds of each benchmark (default: 10).",
    )
    group.addoption(
        "--isobench-warmup",
        type=int,
        default=2,
        metavar="N",
        help="Warm-up rounds of each benchmark, run first and left out of the statistics "
        "(default: 2).",
    )


class IsobenchSession:
    """The per-session state: the run directory and the harness, made on first use."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.run_id = config.getoption("isobench_run_id") or new_run_id()
        self.requested: list[str] = list(dict.fromkeys(config.getoption("runtime")))
        for name in self.requested:
            runtimes.get(name)  # raises UnknownRuntimeError for a wrong name
        self._runtime_names: list[str] | None = None
        out = config.getoption("isobench_out")
        self.out_dir = (
            Path(out) if out else Path(config.rootpath) / "reports" / "runs" / self.run_id
        )
        check_out_dir(self.out_dir)
        self.run_dir: RunDirectory | None = None
        self.harness: Harness | None = None
        self.suites: list[dict[str, Any]] = []
        self._old_sigint: Any = None
        self._old_sigterm: Any = None
        self._interrupted = False
        self.bench = bool(config.getoption("isobench_bench"))
        if self.bench and (config.getoption("numprocesses", None) or 0):
            raise UsageError(
                "benchmarks never run in parallel: remove -n (pytest-xdist) from the arguments"
            )
        self.lock: RunLock | None = None
        self.worker: str | None = getattr(config, "workerinput", {}).get("workerid")
        parallel = config.getoption("numprocesses", None) or 0
        #: With pytest-xdist, the controller writes the run directory and the workers run
        #: the checks, each with a harness of its own.
        self.controller = bool(parallel) and self.worker is None
        spec = config.getoption("isobench_host") or os.environ.get("ISOBENCH_HOST")
        self.host = hosts.Host(spec) if spec else hosts.LOCAL
        if not self.host.is_local and self.bench:
            raise UsageError(
                f"benchmarks run on the machine that runs isobench only, not {self.host.spec}: "
                "a connection would be part of every time measured"
            )
        self._host_problem: str | None = None
        self._previous_host = hosts.LOCAL
        self._fresh_adapters: contextlib.AbstractContextManager[None] | None = None

    @property
    def runtime_names(self) -> list[str]:
        """The runtime rows of this run, chosen when the first suite is collected."""
        if self._runtime_names is None:
            self._runtime_names = self.requested or self._available_runtimes()
        return self._runtime_names

    @staticmethod
    def _available_runtimes() -> list[str]:
        chosen = []
        for name in runtimes.names():
            if name == "host":
                continue
            if runtimes.get(name).availability().available:
                chosen.append(name)
        return chosen

    def ensure_started(self) -> Harness:
        """Create the run directory and harness when the first check needs them."""
        if self.harness is None:
            self.ensure_run_directory()
            # Each worker of pytest-xdist has a harness of its own, whose containers,
            # markers and journal carry the worker's name beside the run id.
            harness_id = self.run_id if self.worker is None else f"{self.run_id}-{self.worker}"
            self.harness = Harness(harness_id, self.out_dir, unreachable=self._host_problem)
        return self.harness

    def ensure_run_directory(self) -> None:
        """Take the run lock and write run.json, once, in the process that owns the run
        directory (the only one, or the controller of pytest-xdist's workers)."""
        if self.run_dir is not None or self.worker is not None:
            if self.worker is not None and self._host_problem is None:
                self._host_problem = self.host.reachable()
            return
        # The CLI takes the run lock before pytest starts; workers of pytest-xdist
        # share their controller's. A run of another host leaves this one's alone.
        if runlock.held() is None and self.host.is_local:
            self.lock = RunLock(exclusive=self.bench)
            self.lock.acquire()
        self._host_problem = self.host.reachable()
        self.run_dir = RunDirectory(self.out_dir, self.run_id)
        host = {"spec": self.host.spec, "label": self.host.label}
        unreached = {"error": self._host_problem} if self._host_problem else None
        self.run_dir.start(sys.argv, self.suites or self._named_suites(), host, unreached)
        for name in self.runtime_names:
            if self._host_problem:
                info = Availability(False, reason=self._host_problem)
            else:
                info = runtimes.get(name).availability()
            self.run_dir.set_runtime(
                name,
                {
                    "available": info.available,
                    "version": info.version,
                    "reason": info.reason,
                    "hint": info.hint,
                    "details": info.details,
                    "family": runtimes.get(name).family,
                    "requests": capabilities.expressed(runtimes.get(name)),
                },
            )
            if not info.available:
                log.warning("runtime %s is not available: %s", name, info.reason)
        log.info("run directory: %s", self.out_dir)

    def _named_suites(self) -> list[dict[str, Any]]:
        """Return the YAML suites named on the command line, for a controller of workers,
        which collects nothing itself."""
        found = []
        for arg in self.config.args:
            path = Path(arg.split("::")[0])
            for candidate in sorted(path.glob("*.y*ml")) if path.is_dir() else [path]:
                if candidate.suffix not in (".yaml", ".yml"):
                    continue
                try:
                    loaded = load_suite(candidate)
                except SuiteError:
                    continue
                found.append(
                    {"name": loaded.name, "path": str(candidate), "checks": len(loaded.checks)}
                )
        return found

    # -- hooks -----------------------------------------------------------

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        self._previous_host = hosts.use(self.host)
        if self._previous_host.spec != self.host.spec:
            # Adapters keep what they found on the host they were made for.
            self._fresh_adapters = runtimes.fresh()
            self._fresh_adapters.__enter__()
        if self.controller:
            self.ensure_run_directory()
        # The handlers note the interrupt before raising it: a second signal can arrive
        # while pytest handles the first, before it has recorded the exit status.
        self._old_sigint = signal.signal(signal.SIGINT, self._on_signal)
        self._old_sigterm = signal.signal(signal.SIGTERM, self._on_signal)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._interrupted = True
        raise KeyboardInterrupt(f"received signal {signum}")

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        report = yield
        record = item.stash.get(record_key, None)
        if record is None and "isobench_runtime" in getattr(item, "fixturenames", ()):
            record = _python_record(item, call, report)
        if record is None:
            return report
        # The record travels with the report, so that with pytest-xdist the
        # controller, which owns the run directory, writes it.
        final = call.when == "call" or (call.when == "setup" and report.outcome != "passed")
        if final:
            report.user_properties.append((RECORD_KEY, record.to_json()))
        return report

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        for key, value in report.user_properties:
            if key == RECORD_KEY and self.run_dir is not None and isinstance(value, str):
                self.run_dir.append(Record(**json.loads(value)))

    # First, so that an error in another plugin's hook (pytest-benchmark writing its
    # JSON) cannot skip the clean-up.
    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        # A second Ctrl-C or SIGTERM must not cut the clean-up short: ignore both
        # until it is done, then restore what was there before the run.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        try:
            self._finish(exitstatus)
        finally:
            signal.signal(signal.SIGINT, self._old_sigint or signal.default_int_handler)
            signal.signal(signal.SIGTERM, self._old_sigterm or signal.SIG_DFL)

    def _record_dropped(self) -> None:
        """Mark in run.json's capability matrix the request fields that a row accepted
        and did not apply during the run."""
        assert self.run_dir is not None
        for name in self.runtime_names:
            try:
                dropped = runtimes.get(name).dropped()
            except IsobenchError:
                continue
            info = self.run_dir.meta.get("runtimes", {}).get(name)
            if not dropped or not isinstance(info, dict):
                continue
            requests = capabilities.with_dropped(info.get("requests", {}), dropped)
            self.run_dir.set_runtime(name, {**info, "requests": requests, "dropped": dropped})

    def _finish(self, exitstatus: int) -> None:
        interrupted = exitstatus == pytest.ExitCode.INTERRUPTED or self._interrupted
        if self.run_dir is not None:
            # Marked first, so that a kill during the clean-up leaves the right status.
            self.run_dir.finish("interrupted" if interrupted else "cleaning")
        if self.run_dir is not None:
            self._record_dropped()
        if self.harness is not None:
            left = self.harness.close()
            if left:
                log.warning("could not remove: %s; run 'isobench clean'", ", ".join(left))
        if self.lock is not None:
            self.lock.release()
        self.host.close()
        hosts.use(self._previous_host)
        if self._fresh_adapters is not None:
            self._fresh_adapters.__exit__(None, None, None)
            self._fresh_adapters = None
        if self.run_dir is not None:
            if interrupted:
                status = "interrupted"
            elif exitstatus in (pytest.ExitCode.INTERNAL_ERROR, pytest.ExitCode.USAGE_ERROR):
                status = "failed"
            else:
                status = "complete"
            self.run_dir.finish(status)

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.run_dir is not None and not os.environ.get("ISOBENCH_CLI"):
            terminalreporter.write_line(
                f"isobench: results in {self.out_dir}; render them with "
                f"'isobench report {self.out_dir}'"
            )

    def pytest_keyboard_interrupt(self, excinfo: pytest.ExceptionInfo[BaseException]) -> None:
        self._interrupted = True

    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        """Refuse, as an error, a Python suite test on another host when its module does not
        say that it goes through the run's host (``REMOTE_READY = True``): its drivers
        read and write files of this machine."""
        if self.host.is_local or "isobench_runtime" not in getattr(item, "fixturenames", ()):
            return
        module = getattr(item, "module", None)
        if not getattr(module, "REMOTE_READY", False):
            suite = getattr(module, "SUITE", None) or item.path.stem.removeprefix("test_")
            pytest.fail(
                f"the {suite} suite drives the runtimes with files and processes of the "
                f"machine that runs isobench, so it checks that machine only, not "
                f"{self.host.label}; run isobench on that host to check it there",
                pytrace=False,
            )


def _python_record(
    item: pytest.Item, call: pytest.CallInfo[None], report: pytest.TestReport
) -> Record | None:
    """Build the record of a Python suite test (a property-based check) for its final phase."""
    if call.when == "teardown" or (call.when == "setup" and report.passed):
        return None
    callspec = getattr(item, "callspec", None)
    runtime = str(callspec.params.get("isobench_runtime", "")) if callspec is not None else ""
    module = getattr(item, "module", None)
    function = getattr(item, "function", None)
    # A test function may name its own negative controls instead of the module's.
    controls = getattr(function, "negative_controls", getattr(module, "NEGATIVE_CONTROLS", ()))
    error = call.excinfo is not None and isinstance(
        call.excinfo.value, IsobenchError | StopExamples
    )
    if report.skipped and hasattr(report, "wasxfail"):
        # The declared reason first, as the YAML suites show it, then what happened.
        longrepr = report.longrepr
        happened = _failure_text(str(longrepr[2] if isinstance(longrepr, tuple) else longrepr))
        outcome = "xfail"
        observed = _first_line(happened).lstrip("E").strip().removeprefix("AssertionError:")
        message = f"declared deviation: {report.wasxfail}" + (
            f" ({observed.strip()})" if observed.strip() else ""
        )
    elif report.skipped:
        outcome = "skip"
        longrepr = report.longrepr
        message = str(longrepr[2]) if isinstance(longrepr, tuple) else str(longrepr or "")
    elif report.failed and str(report.longrepr).startswith("[XPASS(strict)]"):
        outcome = "xpass"
        reason = str(report.longrepr).removeprefix("[XPASS(strict)]").strip()
        message = f"a declared deviation did not happen: {reason}"
    elif report.failed:
        outcome = "error" if call.when == "setup" or error else "fail"
        message = _failure_text(str(report.longrepr))
    else:
        outcome, message = "pass", ""
    path, line, _ = item.location
    doc = (function.__doc__ or "") if function is not None else ""
    return Record(
        # The modules of a suite directory name their suite.
        suite=getattr(module, "SUITE", None) or Path(path).stem.removeprefix("test_"),
        check=getattr(item, "originalname", item.name),
        title=doc.strip().split("\n")[0],
        runtime=runtime,
        outcome=outcome,
        message=message,
        duration_s=round(report.duration, 3),
        file=str(item.path),
        line=(line or 0) + 1,
        expected_to_fail=runtime in controls,
    )


def _first_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[0] if lines else ""


def _failure_text(longrepr: str) -> str:
    """Put the assertion and Hypothesis's shrunk example first, then the rest of the text."""
    lines = longrepr.splitlines()
    asserted = [line for line in lines if line.startswith("E ")][:5]
    example: list[str] = []
    for start, line in enumerate(lines):
        if "Falsifying example" in line or "Failing test case" in line:
            example = lines[start : start + 12]
            break
    head = [*asserted, *example]
    return "\n".join([*head, "", longrepr[-4000:]]) if head else longrepr[-6000:]


@pytest.fixture
def isobench_harness(request: pytest.FixtureRequest) -> Harness:
    """Return the run's harness, for Python suites that start containers themselves."""
    return request.config.stash[session_key].ensure_started()


@pytest.fixture
def isobench_samples(request: pytest.FixtureRequest) -> SampleWriter:
    """Return the writer of the run's samples.jsonl, for benchmark modules."""
    state = request.config.stash[session_key]
    state.ensure_started()
    return SampleWriter(state.out_dir)


@pytest.fixture
def isobench_rounds(request: pytest.FixtureRequest) -> tuple[int, int]:
    """Return the measured and the warm-up rounds of each benchmark."""
    rounds = int(request.config.getoption("isobench_rounds"))
    warmup = int(request.config.getoption("isobench_warmup"))
    if rounds < 1 or warmup < 0:
        raise UsageError(f"rounds must be 1 or more and warm-up 0 or more (got {rounds}, {warmup})")
    return rounds, warmup


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run every Python suite test once per runtime of the run."""
    if "isobench_runtime" in metafunc.fixturenames:
        names = metafunc.config.stash[session_key].runtime_names
        metafunc.parametrize("isobench_runtime", names)


def check_out_dir(path: Path) -> None:
    """Raise UsageError for a run directory that is a file or contains a run already."""
    if path.exists() and not path.is_dir():
        raise UsageError(f"{path} is not a directory; pass a directory to --out")
    results = path / RESULTS_FILE
    if results.exists() and results.stat().st_size > 0:
        raise UsageError(
            f"{path} already contains a run ({RESULTS_FILE}); pass a new --out directory "
            "or remove that one"
        )


session_key = pytest.StashKey[IsobenchSession]()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "isobench_check: a check of an isobench suite")
    try:
        state = IsobenchSession(config)
    except IsobenchError as exc:
        raise pytest.UsageError(str(exc)) from None
    config.stash[session_key] = state
    config.pluginmanager.register(state, "isobench-session")


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    """Collect YAML files in a directory named ``suites``, and any YAML file or directory
    of them named on the command line."""
    if file_path.suffix not in (".yaml", ".yml"):
        return None
    named = {Path(arg.split("::")[0]).resolve() for arg in parent.config.args}
    resolved = file_path.resolve()
    if file_path.parent.name == "suites" or resolved in named or resolved.parent in named:
        return SuiteFile.from_parent(parent, path=file_path)
    return None


class SuiteFile(pytest.File):
    """A suite file; a malformed one is a collection error naming file, line and field."""

    def collect(self) -> Iterator[pytest.Item]:
        try:
            loaded = load_suite(self.path)
        except SuiteError as exc:
            raise self.CollectError(str(exc)) from None
        state = self.config.stash[session_key]
        state.suites.append(
            {"name": loaded.name, "path": str(self.path), "checks": len(loaded.checks)}
        )
        for check in loaded.checks:
            for runtime in state.runtime_names:
                yield CheckItem.from_parent(
                    self, name=f"{check.id}[{runtime}]", loaded=check, runtime=runtime
                )


class CheckItem(pytest.Item):
    """One check on one runtime."""

    def __init__(self, *, loaded: LoadedCheck, runtime: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.loaded = loaded
        self.runtime = runtime
        self.add_marker("isobench_check")

    def setup(self) -> None:
        state = self.config.stash[session_key]
        harness = state.ensure_started()

        started = time.monotonic()
        verdict = harness.evaluate(self.loaded, self.runtime)
        duration = time.monotonic() - started

        self.stash[verdict_key] = verdict
        self.stash[record_key] = to_record(self.loaded, self.runtime, verdict, duration)
        if verdict.outcome == "error":
            pytest.fail(self.describe(verdict), pytrace=False)
        if verdict.outcome == "skip":
            pytest.skip(verdict.message)

    def runtest(self) -> None:
        verdict = self.stash[verdict_key]
        if verdict.outcome == "xfail":
            pytest.xfail(verdict.message)
        if verdict.outcome in ("fail", "xpass"):
            pytest.fail(self.describe(verdict), pytrace=False)

    def describe(self, verdict: Verdict) -> str:
        """Format a verdict with the suite's file:line, the values and the commands run."""
        where = f"{self.loaded.path}:{self.loaded.line}"
        lines = [
            f"{where}: {self.loaded.id} on {self.runtime}: {verdict.outcome}",
            f"  check:    {self.loaded.check.title}",
            f"  request:  {verdict.request.describe() if verdict.request else 'defaults'}",
        ]
        if verdict.expected:
            lines.append(f"  expected: {verdict.expected}")
        if verdict.observed:
            lines.append(f"  observed: {verdict.observed}")
        if verdict.message:
            lines.append(f"  message:  {verdict.message}")
        for note in verdict.notes:
            lines.append(f"  note:     {note}")
        for command in verdict.commands:
            lines.append(f"  $ {command}")
        return "\n".join(lines)

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, self.loaded.line - 1, f"{self.loaded.id}[{self.runtime}]"
