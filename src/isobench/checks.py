"""Evaluate checks on runtimes: request, observe, judge.

One :class:`Harness` lives for a run. It builds the probe image, places the
host markers, prepares each runtime once, runs one probe container per
distinct (runtime, request) pair and judges every check against the facts.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shlex
import subprocess
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from isobench import commands, hosts, images, runtimes
from isobench.errors import HarnessError, IsobenchError
from isobench.fixtures import HostMarkers
from isobench.journal import Journal
from isobench.model import MASKED_PATHS, READONLY_PATHS, Facts, Request
from isobench.probe import END_MARKER, IMAGE_PATH, host, parse
from isobench.probe.derive import HOST_FACTS, derive, relative_facts
from isobench.results import Record, cgroup_version
from isobench.runtimes.base import Adapter, Context, Execution, Launched, ProbeImage, execute
from isobench.spec.loader import PLACEHOLDER, LoadedCheck
from isobench.spec.matchers import Judgement, Value, judge
from isobench.spec.schema import (
    Deviation,
    ExecSpec,
    FactCheck,
    HostRef,
    Matcher,
    RequestRef,
    RunCheck,
)

log = logging.getLogger(__name__)

#: Time limit of a probe container; ISOBENCH_PROBE_TIMEOUT overrides it (seconds).
PROBE_TIMEOUT_S = float(os.environ.get("ISOBENCH_PROBE_TIMEOUT", "90"))
#: A command reports a measured value with a line "isobench-value NAME VALUE".
VALUE_PREFIX = "isobench-value "
# How far ahead {host.start_at} lies: long enough for two containers to start.
START_DELAY_S = 3

# A run check that reads the cgroup runs under this wrapper. It prints a start
# line, runs the command, then prints the exit status and the number of
# processes in /proc. It then waits for stdin to close, so that the cgroup
# still exists while the harness reads it.
HOLD_START = "isobench-run-start"
HOLD_END = "isobench-run-end"
HOLD_WRAPPER = (
    "/bin/sh",
    "-c",
    f'echo {HOLD_START}; "$@"; rc=$?; set -- /proc/[0-9]*; echo "{HOLD_END} $rc $#"; '
    "read -r _; exit $rc",
    "sh",
)
# A run check that stops the container starts its command under this wrapper,
# which prints the start line and then becomes the command, so the command is
# the container's first process (or the init's child).
STOP_WRAPPER = ("/bin/sh", "-c", f'echo {HOLD_START}; exec "$@"', "sh")
#: Further paths whose presence inside checks can require (``requires_path``).
PROBE_PATHS = ("/proc/self/limits",)
#: The run directory file with the security posture of every probed container.
POSTURE_FILE = "posture.jsonl"


@dataclass
class Verdict:
    """The outcome of one check on one runtime, before it becomes a record."""

    outcome: str
    message: str = ""
    expected: str = ""
    observed: str = ""
    commands: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    request: Request | None = None


def _on_host(function: str, *args: Any) -> Any:
    """Call a function of isobench.probe.host on the run's host."""
    return hosts.current().call(host, function, *args)


def _process_facts(pid: int) -> dict[str, str | list[str]]:
    """Read a container's process from the host side, on the run's host."""
    facts: dict[str, str | list[str]] = _on_host("process_facts", pid)
    return facts


class Harness:
    """The state shared by every check of a run."""

    def __init__(
        self,
        run_id: str,
        run_dir: Path | None = None,
        journal: Journal | None = None,
        unreachable: str | None = None,
    ) -> None:
        self.run_id = run_id
        #: Why the run's host could not be reached: every check there is an error.
        self.unreachable = unreachable
        self.run_dir = run_dir
        self.journal = journal or Journal(run_id, run_dir)
        self.ctx = Context(run_id, self.journal)
        self.markers = HostMarkers(run_id, self.journal)
        self.host_facts: dict[str, str | list[str]] = {}
        self._started = False
        self._prepared: dict[str, Exception | None] = {}
        self._probes: dict[tuple[str, Request], Facts | Exception] = {}
        self._lock = threading.Lock()

    # -- set-up and tear-down --------------------------------------------

    def start(self) -> None:
        """Build the probe image and place the host markers (once)."""
        if self.unreachable:
            raise HarnessError(self.unreachable)
        if self._started:
            return
        self._started = True
        self.ctx.image = images.build_probe_image()
        self.ctx.images["static"] = images.build_static_image()
        root = self.ctx.bundle_root
        self.journal.record("directory", str(root), ["rmdir", str(root)], absent=("No such file",))
        if hosts.current().is_local:
            root.mkdir(mode=0o755, parents=True, exist_ok=True)
        else:
            commands.run(["mkdir", "-p", "-m", "755", str(root)], timeout=30)
        facts = _on_host("host_facts")
        facts.update(self.markers.create())
        facts["cgroup.version"] = cgroup_version(_on_host("cgroup_mode"))
        facts.update(derive(facts))
        self.host_facts = facts

    def close(self) -> list[str]:
        """Remove everything the run made; return what could not be removed."""
        self.markers.remove()
        left = self.journal.remove_all()
        self.journal.close()
        return [f"{entry.kind} {entry.name}" for entry in left]

    def prepare(self, adapter: Adapter) -> None:
        """Make a runtime ready once; a failure is remembered and raised for every check."""
        with self._lock:
            if adapter.name not in self._prepared:
                try:
                    adapter.prepare(self.ctx)
                    self._prepared[adapter.name] = None
                except IsobenchError as exc:
                    self._prepared[adapter.name] = exc
            problem = self._prepared[adapter.name]
        if problem is not None:
            raise problem

    # -- observing -------------------------------------------------------

    def probe(self, adapter: Adapter, request: Request) -> Facts:
        """Return the facts of one container with ``request``, starting it on first use."""
        key = (adapter.name, request)
        with self._lock:
            cached = self._probes.get(key)
        if isinstance(cached, Exception):
            raise cached
        if cached is not None:
            return cached
        try:
            facts = self._run_probe(adapter, request)
        except IsobenchError as exc:
            with self._lock:
                self._probes[key] = exc
            raise
        with self._lock:
            self._probes[key] = facts
        return facts

    def _run_probe(self, adapter: Adapter, request: Request) -> Facts:
        paths = [str(self.host_facts.get("marker.file", "")), *READONLY_PATHS, *PROBE_PATHS]
        env = {
            "ISOBENCH_PROBE_HOLD": "1",
            "ISOBENCH_PROBE_PATHS": ":".join(paths),
            "ISOBENCH_PROBE_MASKED": ":".join(MASKED_PATHS),
        }
        execution = execute(
            adapter,
            self.ctx,
            request,
            ["/bin/sh", IMAGE_PATH],
            env=env,
            hold_marker=END_MARKER,
            read_host=lambda launched, pid: _process_facts(pid),
            timeout=PROBE_TIMEOUT_S,
        )
        result = execution.result
        if END_MARKER not in result.stdout:
            stderr_lines = result.stderr.strip().splitlines()
            raise HarnessError(
                f"the probe did not finish on {adapter.name} (exit status {result.exit_code})"
                + (f": {stderr_lines[-1][:300]}" if stderr_lines else "")
                + f"\ncommand: {result.commands[-1]}\nstderr:\n{result.stderr.strip()[-2000:]}"
            )
        inside = parse.parse(result.stdout)

        facts = Facts(run=result)
        facts.update(inside, "inside")
        facts.update(derive(inside), "inside")
        if execution.host_view:
            for name, value in execution.host_view.items():
                if name.startswith("ns.") and name in inside and inside[name] != value:
                    facts.values[f"inside.{name}"] = inside[name]
                    facts.notes.append(
                        f"{name}: {inside[name]} inside, {value} from the host side "
                        f"(/proc/{execution.host_pid}); the host side is used"
                    )
            facts.update(execution.host_view, f"host side (/proc/{execution.host_pid})")
        else:
            facts.notes.append(f"{adapter.name} shows no host PID; facts are read inside only")
        facts.update(relative_facts(facts.values, self.host_facts), "compared with the host")
        self._write_posture(adapter.name, request, facts)
        return facts

    def _write_posture(self, runtime: str, request: Request, facts: Facts) -> None:
        """Append the container's security posture to the run directory's posture.jsonl."""
        if self.run_dir is None:
            return
        values = facts.values
        record = {
            "runtime": runtime,
            "request": request.describe(),
            "caps": {
                short: values.get(f"caps.{short}", [])
                for short in ("eff", "prm", "bnd", "inh", "amb")
            },
            "seccomp": values.get("status.Seccomp", ""),
            "no_new_privs": values.get("status.NoNewPrivs", ""),
            "rlimits": {
                name.removeprefix("rlimit."): value
                for name, value in values.items()
                if name.startswith("rlimit.") and isinstance(value, str)
            },
            "devices": values.get("dev.nodes", []),
            "masked_visible": values.get("masked.visible", []),
            "readonly_writable": values.get("readonly.writable", []),
        }
        with self._lock, (self.run_dir / POSTURE_FILE).open("a", encoding="utf-8") as out:
            out.write(json.dumps(record, sort_keys=True) + "\n")

    # -- judging ---------------------------------------------------------

    def _resolver(self, request: Request) -> Callable[[HostRef | RequestRef], Value]:
        def resolve(ref: HostRef | RequestRef) -> Value:
            if isinstance(ref, HostRef):
                value = self.host_facts.get(ref.host)
                if value is None:
                    raise HarnessError(f"the host fact '{ref.host}' could not be read")
                return value
            found: Any = getattr(request, ref.request)
            return None if found is None else str(found)

        return resolve

    def evaluate(
        self,
        loaded: LoadedCheck,
        runtime: str,
        control: dict[str, Any] | None = None,
        adapter: Adapter | None = None,
    ) -> Verdict:
        """Run one check on one runtime; ``control`` merges request fields of a negative control.

        ``adapter`` replaces the registered one, for the tests' faulty adapters.
        """
        check = loaded.check
        request = check.request
        if control:
            request = Request.model_validate({**request.model_dump(), **control})
        if adapter is None:
            adapter = runtimes.get(runtime)
        if self.unreachable:
            return Verdict("error", self.unreachable, request=request)

        available = adapter.availability()
        if not available.available:
            return Verdict(
                "error", f"{available.reason}. {available.hint}".strip(), request=request
            )
        reason = adapter.unsupported(request)
        if reason is None and isinstance(check, RunCheck) and check.exec and not adapter.can_exec():
            reason = f"{adapter.name} cannot start a process in a running container (exec)"
        if reason is None and request.image != "probe" and _needs_shell(check):
            reason = (
                f"the check needs /bin/sh ({_shell_use(check)}), which the {request.image} "
                "image does not have"
            )
        if reason is not None:
            return Verdict("skip", reason, request=request)

        try:
            self.start()
            missing = [name for name in check.requires_host if not self.host_facts.get(name)]
            if missing:
                described = ", ".join(f"{name} ({HOST_FACTS[name]})" for name in missing)
                return Verdict(
                    "skip",
                    f"the check needs host facts that are empty here: {described}",
                    request=request,
                )
            request = self._bind(request)
            self.prepare(adapter)
            if isinstance(check, FactCheck):
                verdict = self._judge_fact(check, adapter, request)
            else:
                verdict = self._judge_run(check, adapter, request)
        except IsobenchError as exc:
            return Verdict("error", str(exc), request=request, commands=_commands_of(exc))
        verdict.request = request

        if control is None:
            deviation = self.deviation(loaded, runtime)
            if deviation is not None:
                verdict = _apply_deviation(verdict, deviation)
        return verdict

    def _bind(self, request: Request) -> Request:
        """Replace ``{host.NAME}`` placeholders in the request's mount sources."""
        if not any(PLACEHOLDER.search(mount.source) for mount in request.mounts):
            return request
        mounts = tuple(
            mount.model_copy(update={"source": substitute(mount.source, self.host_facts)})
            for mount in request.mounts
        )
        return request.model_copy(update={"mounts": mounts})

    def deviation(self, loaded: LoadedCheck, runtime: str) -> Deviation | None:
        """Return the deviation declared for this runtime on this host, if any."""
        for deviation in loaded.check.deviations:
            if runtime not in deviation.runtimes:
                continue
            wanted = deviation.when.get("cgroup_version")
            version = str(self.host_facts.get("cgroup.version") or cgroup_version())
            if wanted is not None and wanted != version:
                continue
            return deviation
        return None

    def _judge_fact(self, check: FactCheck, adapter: Adapter, request: Request) -> Verdict:
        facts = self.probe(adapter, request)
        commands = facts.run.commands if facts.run else []
        if check.requires_path is not None:
            present = _as_list(facts.get("path.exists")) + _as_list(facts.get("masked.present"))
            if check.requires_path not in present:
                return Verdict(
                    "skip",
                    f"{check.requires_path} does not exist in the container on this kernel, "
                    "so there is nothing to check",
                    commands=list(commands),
                )
        value = facts.get(check.fact)
        if value is None and check.fact.startswith("status.") and "status.CapEff" in facts:
            line = check.fact.removeprefix("status.")
            return Verdict(
                "skip",
                f"/proc/self/status in the container on {adapter.name} has no {line} line, "
                "so the check cannot observe it",
                commands=list(commands),
            )
        no_host_pid = facts.run is not None and facts.run.host_pid is None
        if value is None and no_host_pid and _read_on_host_side(check.fact):
            return Verdict(
                "skip",
                f"{adapter.name} shows no host PID of its containers, so {check.fact}, "
                "which is read on the host side, cannot be observed",
                commands=list(commands),
            )
        if value is None:
            raise _ObservationError(
                f"the probe reported no fact '{check.fact}' on {adapter.name}", commands
            )
        verdict = _verdict(
            judge(check.expect, value, self._resolver(request)), f"{check.fact}", commands
        )
        source = facts.sources.get(check.fact, "")
        if source:
            verdict.notes.append(f"{check.fact} read {source}")
        verdict.notes.extend(note for note in facts.notes if note.startswith(check.fact + ":"))
        return verdict

    def _judge_run(self, check: RunCheck, adapter: Adapter, request: Request) -> Verdict:
        facts = {**self.host_facts, "start_at": str(int(time.time()) + START_DELAY_S)}
        argv = [substitute(arg, facts) for arg in check.run]
        _require_command(self.ctx.image_for(request), argv[0])
        held = bool(check.expect.cgroup or check.expect.process)
        held = held or check.exec is not None or check.alongside is not None
        # A request that shares the host's UTS namespace can change its hostname.
        with self.markers.hostname_guard() as changed:
            if check.alongside is not None:
                execution, exit_code, stdout = self._run_pair(check, adapter, request, argv)
            elif check.stop is not None:
                execution, exit_code, stdout = self._run_stopped(check, adapter, request, argv)
            elif held:
                execution, exit_code, stdout = self._run_held(check, adapter, request, argv)
            else:
                execution = execute(
                    adapter, self.ctx, request, argv, timeout=check.timeout_s, stdin=check.stdin
                )
                exit_code, stdout = execution.result.exit_code, execution.result.stdout
            after = {"hostname": _on_host("host_facts")["hostname"]}
        result = execution.result
        view = execution.host_view
        if held and not view:
            raise _ObservationError(
                f"the container on {adapter.name} ended (exit status {result.exit_code}) before "
                f"its cgroup could be read, or the runtime shows no host PID\n"
                f"stderr:\n{result.stderr.strip()[-1000:]}",
                result.commands,
            )

        printed = _printed_values(stdout)
        stdout = "".join(
            line for line in stdout.splitlines(keepends=True) if not line.startswith(VALUE_PREFIX)
        )
        parts: list[tuple[str, Matcher, Value]] = []
        expect = check.expect
        if expect.exit_code is not None:
            parts.append(("exit_code", expect.exit_code, str(exit_code)))
        if expect.stdout is not None:
            parts.append(("stdout", expect.stdout, stdout))
        if expect.stderr is not None:
            parts.append(("stderr", expect.stderr, result.stderr))
        for name, matcher in expect.host.items():
            parts.append(
                (f"host {name} after the run", matcher, after.get(name, self.host_facts.get(name)))
            )
        for name, matcher in expect.values.items():
            if name not in printed:
                raise _ObservationError(
                    f"the command printed no '{VALUE_PREFIX}{name} …' line on {adapter.name}\n"
                    f"stdout:\n{stdout.strip()[-1000:]}\nstderr:\n{result.stderr.strip()[-1000:]}",
                    result.commands,
                )
            parts.append((name, matcher, printed[name]))
        if expect.exec_stdout is not None:
            parts.append(("exec stdout", expect.exec_stdout, view.get("exec.stdout")))
        for name, matcher in expect.process.items():
            if name not in view:
                raise _ObservationError(
                    f"the host side of the container on {adapter.name} shows no '{name}'",
                    result.commands,
                )
            parts.append((name, matcher, view[name]))
        for name, matcher in expect.cgroup.items():
            if name not in view:
                raise _ObservationError(
                    f"the cgroup of the container on {adapter.name} has no '{name}' "
                    f"(read from {', '.join(map(str, view.get('cg.paths', []))) or 'nowhere'})",
                    result.commands,
                )
            parts.append((name, matcher, view[name]))

        resolve = self._resolver(request)
        expected, observed, failed = [], [], []
        for label, matcher, value in parts:
            judgement = judge(matcher, value, resolve)
            expected.append(f"{label}: {judgement.expected}")
            observed.append(f"{label}: {judgement.observed}")
            if not judgement.ok:
                failed.append(label)

        notes = [
            f"exit status: {exit_code}",
            f"stdout: {stdout.strip()[-500:]}",
            f"stderr: {result.stderr.strip()[-500:]}",
        ]
        notes += _cgroup_notes(view, execution.exit_state, check)
        notes += execution.notes
        if changed:
            notes.append(f"the host's hostname was changed to {changed[0]!r} and has been restored")
        outcome = "fail" if failed else "pass"
        message = f"not as expected: {', '.join(failed)}" if failed else ""
        return Verdict(
            outcome, message, "; ".join(expected), "; ".join(observed), result.commands, notes
        )

    def _run_held(
        self, check: RunCheck, adapter: Adapter, request: Request, argv: list[str]
    ) -> tuple[Execution, int | None, str]:
        return self.run_held(adapter, request, argv, check.timeout_s, check.exec)

    def _run_stopped(
        self, check: RunCheck, adapter: Adapter, request: Request, argv: list[str]
    ) -> tuple[Execution, int | None, str]:
        """Start the command, read its process on the host, then stop the container."""
        assert check.stop is not None
        stop = check.stop

        def during(launched: Launched, pid: int) -> dict[str, str | list[str]]:
            time.sleep(stop.after_s)
            view = _process_facts(pid)
            began = time.monotonic()
            adapter.stop(self.ctx, launched, stop.grace_s)
            with contextlib.suppress(subprocess.TimeoutExpired):
                launched.process.wait(stop.grace_s + 30)
            view["stop.seconds"] = f"{time.monotonic() - began:.2f}"
            return view

        execution = execute(
            adapter,
            self.ctx,
            request,
            [*STOP_WRAPPER, *argv],
            hold_marker=HOLD_START,
            read_host=during,
            timeout=check.timeout_s + stop.after_s + stop.grace_s,
        )
        result = execution.result
        if HOLD_START not in execution.marker_times:
            raise _ObservationError(
                f"the command did not start on {adapter.name} (exit status {result.exit_code})"
                f"\nstderr:\n{result.stderr.strip()[-2000:]}",
                result.commands,
            )
        view = execution.host_view
        if "stop.seconds" in view:
            execution.notes.append(
                f"stopped {stop.after_s:g} s after the start with a grace period of "
                f"{stop.grace_s:g} s; the container exited {view['stop.seconds']} s after the "
                f"stop began, with status {result.exit_code}"
            )
        if "hostside.zombies" in view:
            execution.notes.append(
                f"exited children not reaped by the first process before the stop: "
                f"{view['hostside.zombies']}"
            )
        stdout = "".join(
            line for line in result.stdout.splitlines(keepends=True) if line.strip() != HOLD_START
        )
        return execution, result.exit_code, stdout

    def _run_pair(
        self, check: RunCheck, adapter: Adapter, request: Request, argv: list[str]
    ) -> tuple[Execution, int | None, str]:
        """Run the command in two containers at once and derive each one's CPU share."""
        assert check.alongside is not None
        with ThreadPoolExecutor(max_workers=2) as pool:
            first = pool.submit(self.run_held, adapter, request, argv, check.timeout_s)
            other_request = self._bind(check.alongside)
            second = pool.submit(self.run_held, adapter, other_request, argv, check.timeout_s)
            execution, exit_code, stdout = first.result()
            other, _, _ = second.result()

        mine = execution.host_view.get("cg.cpu.usage_ns")
        theirs = other.host_view.get("cg.cpu.usage_ns")
        if isinstance(mine, str) and isinstance(theirs, str) and int(mine) + int(theirs) > 0:
            share = int(mine) / (int(mine) + int(theirs))
            execution.host_view["cg.cpu.share"] = f"{share:.3f}"
        execution.notes.append(
            f"CPU time: {int(str(mine or 0)) / 1e9:.2f} s here ({request.describe()}), "
            f"{int(str(theirs or 0)) / 1e9:.2f} s in the container alongside "
            f"({check.alongside.describe()})"
        )
        execution.result.commands += other.result.commands
        return execution, exit_code, stdout

    def run_held(
        self,
        adapter: Adapter,
        request: Request,
        argv: list[str],
        timeout_s: float = 60.0,
        exec_spec: ExecSpec | None = None,
    ) -> tuple[Execution, int | None, str]:
        """Run a command in a container, then hold the container while processes are added
        through exec and its cgroup is read on the host.

        Returns the execution (its ``host_view`` has the ``cg.*`` facts), the command's
        exit status and its output without the wrapper's marker lines.
        """
        self.start()
        self.prepare(adapter)
        refused: list[str] = []

        def during(launched: Launched, pid: int) -> dict[str, str | list[str]]:
            if exec_spec is not None and exec_spec.wait:
                output = adapter.exec_output(self.ctx, launched, exec_spec.argv)
                return {**_process_facts(pid), "exec.stdout": output}
            if exec_spec is not None:
                for number in range(1, exec_spec.count + 1):
                    # A refused exec is an observation: the runtime or the kernel
                    # may refuse a process that would pass a limit.
                    try:
                        adapter.exec_detached(self.ctx, launched, exec_spec.argv)
                    except IsobenchError as exc:
                        refused.append(
                            f"exec {number} of {exec_spec.count} refused: {_last_line(exc)}"
                        )
            return _process_facts(pid)

        execution = execute(
            adapter,
            self.ctx,
            request,
            [*HOLD_WRAPPER, *argv],
            hold_marker=HOLD_END,
            read_host=during,
            timeout=timeout_s,
        )
        result = execution.result
        execution.notes.extend(refused[:3])
        if len(refused) > 3:
            execution.notes.append(f"{len(refused) - 3} more execs were refused")
        exit_code = result.exit_code
        kept = []
        for line in result.stdout.splitlines(keepends=True):
            if line.startswith(HOLD_END):
                fields = line.split()
                exit_code = int(fields[1])
                if len(fields) > 2:
                    execution.host_view["inside.processes"] = fields[2]
            elif not line.startswith(HOLD_START):
                kept.append(line)
        if HOLD_START not in execution.marker_times:
            raise _ObservationError(
                f"the command did not start on {adapter.name} (exit status {result.exit_code})"
                f"\nstderr:\n{result.stderr.strip()[-2000:]}",
                result.commands,
            )

        began = execution.marker_times.get(HOLD_START)
        ended = execution.marker_times.get(HOLD_END)
        usage = execution.host_view.get("cg.cpu.usage_ns")
        # The usage counts from the cgroup's creation, so it includes the runtime's own
        # set-up. Over a short command, that set-up would make most of the rate.
        if (
            began is not None
            and ended is not None
            and ended - began >= MIN_RATE_WINDOW_S
            and isinstance(usage, str)
        ):
            rate = int(usage) / 1e9 / (ended - began)
            execution.host_view["cg.cpu.rate"] = f"{rate:.3f}"
        return execution, exit_code, "".join(kept)


#: The shortest command, in seconds, whose CPU rate (cg.cpu.rate) is reported.
MIN_RATE_WINDOW_S = 1.0


def _read_on_host_side(fact: str) -> bool:
    """Tell whether a fact needs the container's host PID: its cgroup, or its parent's limits."""
    return fact == "rlimit.inherited" or fact.startswith(("cg.", "hostside."))


def _as_list(value: str | list[str] | None) -> list[str]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _shell_use(check: FactCheck | RunCheck) -> str:
    """Say what a check needs a shell for, or return "" when it needs none."""
    if isinstance(check, FactCheck):
        return "the probe is a shell script"
    if check.run[0] in ("sh", "/bin/sh"):
        return "its command is a shell"
    if check.stop is not None or check.exec is not None or check.alongside is not None:
        return "the harness wraps the command in a shell to hold or stop it"
    if check.expect.cgroup or check.expect.process:
        return "the harness wraps the command in a shell to hold it"
    return ""


def _needs_shell(check: FactCheck | RunCheck) -> bool:
    return bool(_shell_use(check))


def _require_command(image: ProbeImage, command: str) -> None:
    """Raise HarnessError when the command does not exist in the image (PATH is /bin)."""
    candidates = [command] if command.startswith("/") else [f"/bin/{command}"]
    for candidate in candidates:
        if (image.rootfs / candidate.lstrip("/")).exists():
            return
    where = "" if command.startswith("/") else " (the image's PATH is /bin)"
    raise HarnessError(
        f"the command '{command}' does not exist in the {image.kind} image{where}. "
        "Check the 'run' argv of the check."
    )


def _printed_values(stdout: str) -> dict[str, str]:
    """Collect the ``isobench-value NAME VALUE`` lines a command printed."""
    values = {}
    for line in stdout.splitlines():
        if line.startswith(VALUE_PREFIX):
            name, _, value = line[len(VALUE_PREFIX) :].partition(" ")
            values[name] = value.strip()
    return values


def _last_line(exc: IsobenchError) -> str:
    """Return the last line of an error's stderr (runc prints a register dump before it)."""
    stderr = getattr(exc, "stderr", "")
    lines = [line for line in str(stderr).strip().splitlines() if line.strip()]
    return lines[-1] if lines else str(exc).splitlines()[0]


def _cgroup_notes(
    view: dict[str, str | list[str]], exit_state: dict[str, str], check: RunCheck
) -> list[str]:
    """Observations to show beside the verdict: the engine's OOM flag against the kernel's
    count, and the task count against the limit after exec."""
    notes = []
    kills = view.get("cg.memory.oom_kills")
    flag = exit_state.get("engine.OOMKilled")
    if isinstance(kills, str) and flag is not None:
        kernel_killed = int(kills) > 0
        engine_flagged = flag == "true"
        agreement = "agree" if kernel_killed == engine_flagged else "DISAGREE"
        notes.append(
            f"OOM kills counted by the kernel in the container's cgroup: {kills}; "
            f"the engine's OOMKilled flag: {flag} ({agreement})"
        )
    current, limit = view.get("cg.pids.current"), view.get("cg.pids.max")
    if isinstance(current, str) and isinstance(limit, str):
        text = f"tasks in the container's cgroup on the host: {current} (pids.max {limit})"
        if check.exec is not None:
            text += f", after {check.exec.count} processes were added through exec"
        if limit != "max" and int(current) > int(limit):
            text += "; the count is above the limit"
        inside = view.get("inside.processes")
        if isinstance(inside, str):
            text += f"; processes visible inside when the command ended: {inside}"
        notes.append(text)
    if "cg.cpu.rate" in view:
        notes.append(f"CPU used while the command ran: {view['cg.cpu.rate']} CPUs")
    return notes


def substitute(arg: str, host_facts: dict[str, str | list[str]]) -> str:
    """Replace ``{host.NAME}`` placeholders with host facts; other braces stay as they are."""

    def replace(match: re.Match[str]) -> str:
        value = host_facts.get(match.group(1))
        if not isinstance(value, str):
            raise HarnessError(
                f"the host fact '{match.group(1)}' has no single value to substitute"
            )
        return value

    return PLACEHOLDER.sub(replace, arg)


def _commands_of(exc: Exception) -> list[str]:
    found = getattr(exc, "commands", None)
    if isinstance(found, list):
        return [str(c) for c in found]
    argv = getattr(exc, "argv", None)
    return [shlex.join(argv)] if isinstance(argv, list) else []


class StopExamples(BaseException):
    """Raised by a property-based check when the runtime could not run an example.

    It derives from BaseException so that Hypothesis does not treat it as a
    failing example and shrink it, which would start many containers in vain.
    The plugin records the check as an ``error`` with the cause.
    """

    def __init__(self, cause: IsobenchError) -> None:
        super().__init__(str(cause))
        self.cause = cause


class _ObservationError(HarnessError):
    def __init__(self, message: str, commands: list[str]) -> None:
        super().__init__(message)
        self.commands = commands


def _verdict(judgement: Judgement, label: str, commands: list[str]) -> Verdict:
    outcome = "pass" if judgement.ok else "fail"
    message = "" if judgement.ok else f"{label} does not meet the expectation: {judgement.expected}"
    return Verdict(outcome, message, judgement.expected, judgement.observed, list(commands))


def _apply_deviation(verdict: Verdict, deviation: Deviation) -> Verdict:
    if verdict.outcome == "fail":
        verdict.outcome = "xfail"
        verdict.message = f"declared deviation: {deviation.reason} ({verdict.message})"
    elif verdict.outcome == "pass":
        verdict.outcome = "xpass"
        verdict.message = (
            f"a declared deviation did not happen: {deviation.reason}. "
            "Remove the deviation from the suite if the runtime now keeps the guarantee."
        )
    return verdict


def to_record(
    loaded: LoadedCheck, runtime: str, verdict: Verdict, duration_s: float, control: str = ""
) -> Record:
    """Turn a verdict into a results.jsonl record."""
    check = loaded.check
    return Record(
        suite=loaded.suite,
        check=check.id,
        title=check.title,
        runtime=runtime,
        outcome=verdict.outcome,
        message=verdict.message,
        duration_s=round(duration_s, 3),
        file=str(loaded.path),
        line=loaded.line,
        commands=verdict.commands,
        expected=verdict.expected,
        observed=verdict.observed,
        request=verdict.request.describe() if verdict.request else "",
        fact=check.fact if isinstance(check, FactCheck) else "",
        notes=verdict.notes,
        control=control,
        expected_to_fail=runtime in [c.runtime for c in check.controls if c.runtime],
    )
