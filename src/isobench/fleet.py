"""Runs on several hosts: one ``isobench run --host SPEC`` per host, side by side, then one
report that joins their run directories.

Each host's run is a process of its own, with its own run directory, journal
and connection. So a host that cannot be reached, or that lacks a runtime,
gives errors in its own run only, and the other hosts go on.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from isobench import hosts, merge
from isobench.errors import UsageError
from isobench.results import RUN_FILE

log = logging.getLogger(__name__)


@dataclass
class HostRun:
    """One host's run: its spec, run directory, log file and process."""

    spec: str
    out: Path
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    returncode: int | None = None


def plan(specs: Sequence[str], out: Path) -> list[HostRun]:
    """Check the host specs and give each host a run directory under ``out/hosts``."""
    runs = []
    used_names: set[str] = set()
    for spec in specs:
        label = hosts.Host(spec).label  # raises UsageError for a spec isobench cannot use
        safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in label)
        name, number = safe, 1
        while name in used_names:
            number += 1
            name = f"{safe}-{number}"
        used_names.add(name)
        runs.append(HostRun(spec, out / "hosts" / name, out / "hosts" / f"{name}.log"))
    if len({run.spec for run in runs}) != len(runs):
        raise UsageError("a host is named twice in --hosts; name each once")
    return runs


def run_hosts(specs: Sequence[str], run_argv: Sequence[str], out: Path) -> tuple[Path, list[str]]:
    """Run ``isobench run RUN_ARGV`` on every host at once, each into ``out/hosts/NAME``,
    and merge their run directories into ``out``.

    Returns the merged directory and one line per host whose run wrote no
    results, with the reason.
    """
    runs = plan(specs, out)
    (out / "hosts").mkdir(parents=True, exist_ok=True)
    for run in runs:
        argv = [sys.executable, "-m", "isobench", "run", *run_argv]
        argv += ["--host", run.spec, "--out", str(run.out), "--no-gate"]
        log.info("running on %s; its output goes to %s", run.spec, run.log_path)
        with run.log_path.open("wb") as output:
            run.process = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT
            )
    try:
        for run in runs:
            assert run.process is not None
            run.returncode = run.process.wait()
    except KeyboardInterrupt:
        # Each host's run cleans up after itself on SIGINT; wait for that.
        for run in runs:
            if run.process is not None and run.process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    run.process.send_signal(signal.SIGINT)
        for run in runs:
            if run.process is not None:
                run.process.wait()
        raise
    problems = []
    for run in runs:
        if not (run.out / RUN_FILE).exists():
            reason = _last_lines(run.log_path)
            problems.append(f"{run.spec}: no results (exit status {run.returncode}): {reason}")
            _write_failed_run(run, reason)
    merged = merge.merge_runs([run.out for run in runs], out, argv=sys.argv)
    return merged, problems


def _last_lines(path: Path, count: int = 3) -> str:
    try:
        lines = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return "no output"
    return " | ".join(lines[-count:]) or "no output"


def _write_failed_run(run: HostRun, reason: str) -> None:
    """Write a run directory without results for a host whose run failed before its first
    check, so that the joined report names the host and the reason."""
    run.out.mkdir(parents=True, exist_ok=True)
    now = datetime.now(UTC).isoformat()
    meta = {
        "run_id": f"failed-{os.getpid()}-{run.out.name}",
        "status": "failed",
        "started": now,
        "ended": now,
        "argv": [],
        "host": {"spec": run.spec, "label": hosts.label_of(run.spec)},
        "environment": {"error": reason},
        "suites": [],
        "runtimes": {},
        "counts": {},
    }
    (run.out / RUN_FILE).write_text(json.dumps(meta, indent=2) + "\n")
    (run.out / "results.jsonl").touch()
