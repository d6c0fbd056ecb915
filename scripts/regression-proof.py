"""Measure how often 'isobench ab' flags a 10 ms slower runc, and how often a no-op wrapper.

Usage (as root, after 'make setup', with nothing else running on the host):

    .venv/bin/python scripts/regression-proof.py runc --sessions 20 --duration 15s --out DIR
    .venv/bin/python scripts/regression-proof.py docker --sessions 20 --duration 120s --out DIR
    .venv/bin/python scripts/regression-proof.py tables --out DIR

Two wrappers of the installed runc are written to DIR/wrappers:

- ``runc-sleep10`` runs ``sleep 0.01``, then executes runc;
- ``runc-noop`` executes runc and adds nothing else (one exec of /bin/sh).

``runc`` runs 'isobench ab runc runc=WRAPPER' sessions, the two wrappers
taking turns. ``docker`` registers the real runc and both wrappers as
dockerd runtimes (isobench-proof-runc, -sleep10, -noop), reloads dockerd with
SIGHUP, runs 'isobench ab docker+isobench-proof-runc docker+isobench-proof-WRAPPER'
sessions, and restores daemon.json at the end, after a failure too. Every
session directory is kept under DIR.

``tables`` reads the session directories back and prints Markdown tables.
Each row counts, for one wrapper, the sessions that gave each verdict when
cut after their first T seconds, using the sample times. The tables give the
paired test that 'isobench ab' uses and the unpaired one. Cutting one
session at several lengths shows the session length that a detection rate
needs, without running every length apart.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from isobench.compare import ab
from isobench.compare.shift import DEFAULT_MIN_EFFECT

REPO = Path(__file__).resolve().parents[1]
WRAPPERS = ("sleep10", "noop")
DAEMON_JSON = Path("/etc/docker/daemon.json")
DOCKER_PID = Path("/var/run/docker.pid")
PREFIX = "isobench-proof-"
#: Session lengths, in seconds, at which the tables cut each session.
CUTS = {"runc": (2, 5, 10, 20), "docker": (15, 30, 45, 60)}


def write_wrappers(directory: Path) -> dict[str, Path]:
    runc = shutil.which("runc")
    if runc is None:
        sys.exit("regression-proof: runc not found; run 'make setup'")
    real = Path(runc).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    bodies = {
        "sleep10": f'#!/bin/sh\nsleep 0.01\nexec {real} "$@"\n',
        "noop": f'#!/bin/sh\nexec {real} "$@"\n',
    }
    paths = {"runc": real}
    for kind, body in bodies.items():
        path = directory / f"runc-{kind}"
        path.write_text(body)
        path.chmod(0o755)
        paths[kind] = path
    return paths


def run_session(side_a: str, side_b: str, duration: str, out: Path) -> dict[str, Any]:
    argv = [sys.executable, "-m", "isobench", "ab", side_a, side_b]
    argv += ["--duration", duration, "--out", str(out), "--no-gate"]
    began = time.monotonic()
    result = subprocess.run(argv, cwd=REPO, capture_output=True, text=True)
    took = time.monotonic() - began
    if result.returncode != 0:
        sys.exit(f"regression-proof: {' '.join(argv)} exited {result.returncode}:\n{result.stderr}")
    document = json.loads((out / ab.AB_FILE).read_text())
    verdict = document["metrics"][ab.RUN_METRIC]["verdict"]
    print(f"{out.name}: {verdict}, {document['pairs']} pairs, {took:.0f} s", flush=True)
    return document


def experiment_runc(args: argparse.Namespace) -> None:
    wrappers = write_wrappers(args.out / "wrappers")
    for number in range(1, args.sessions + 1):
        for kind in WRAPPERS:
            out = args.out / "runc" / f"{kind}-{number:02d}"
            run_session("runc", f"runc={wrappers[kind]}", args.duration, out)


def _reload_dockerd() -> None:
    os.kill(int(DOCKER_PID.read_text().strip()), signal.SIGHUP)
    time.sleep(2)


def experiment_docker(args: argparse.Namespace) -> None:
    wrappers = write_wrappers(args.out / "wrappers")
    original = DAEMON_JSON.read_text() if DAEMON_JSON.exists() else None
    config = json.loads(original) if original else {}
    registered = config.setdefault("runtimes", {})
    registered[f"{PREFIX}runc"] = {"path": str(wrappers["runc"])}
    for kind in WRAPPERS:
        registered[f"{PREFIX}{kind}"] = {"path": str(wrappers[kind])}
    DAEMON_JSON.write_text(json.dumps(config, indent=2) + "\n")
    try:
        _reload_dockerd()
        for number in range(1, args.sessions + 1):
            for kind in WRAPPERS:
                out = args.out / "docker" / f"{kind}-{number:02d}"
                run_session(f"docker+{PREFIX}runc", f"docker+{PREFIX}{kind}", args.duration, out)
    finally:
        if original is None:
            DAEMON_JSON.unlink()
        else:
            DAEMON_JSON.write_text(original)
        _reload_dockerd()


def _cut(directory: Path, seconds: float) -> tuple[list[float], list[float]]:
    """Return the pairs of a session's first ``seconds`` of measurement, A then B."""
    lines = [json.loads(line) for line in (directory / "samples.jsonl").read_text().splitlines()]
    runs = [s for s in lines if s["metric"] == ab.RUN_METRIC]
    warmups = [s["time"] for s in runs if s["warmup"]]
    measured = [s for s in runs if not s["warmup"]]
    start = warmups[-1] if warmups else measured[0]["time"] - measured[0]["value"]
    a = [s for s in measured if s["params"]["side"] == "A"]
    b = [s for s in measured if s["params"]["side"] == "B"]
    pairs = [
        (x, y) for x, y in zip(a, b, strict=False) if max(x["time"], y["time"]) - start <= seconds
    ]
    return [x["value"] for x, _ in pairs], [y["value"] for _, y in pairs]


def tables(args: argparse.Namespace) -> None:
    for experiment in ("runc", "docker"):
        folder = args.out / experiment
        if not folder.is_dir():
            continue
        print(f"\n### {experiment}\n")
        print(
            "| wrapper | test | session (s) | pairs (median) | regressed | unchanged | "
            "inconclusive | improved | shift (ms, median) |"
        )
        print("|---|---|---|---|---|---|---|---|---|")
        for kind in WRAPPERS:
            sessions = sorted(folder.glob(f"{kind}-*"))
            for paired in (True, False):
                for seconds in CUTS[experiment]:
                    _table_row(kind, paired, seconds, sessions)


def _table_row(kind: str, paired: bool, seconds: float, sessions: list[Path]) -> None:
    plan = ab.Plan(paired=paired, min_effect=DEFAULT_MIN_EFFECT)
    verdicts: Counter[str] = Counter()
    pair_counts, shifts = [], []
    for session in sessions:
        base, new = _cut(session, seconds)
        shift = ab.judge({ab.RUN_METRIC: {"A": base, "B": new}}, plan)[ab.RUN_METRIC]
        verdicts[shift.verdict] += 1
        pair_counts.append(len(base))
        shifts.append(shift.shift * 1000)
    if not sessions:
        return
    pair_counts.sort()
    shifts.sort()
    print(
        f"| {kind} | {'paired' if paired else 'unpaired'} | {seconds} | "
        f"{pair_counts[len(pair_counts) // 2]} | {verdicts['regressed']}/{len(sessions)} | "
        f"{verdicts['unchanged']} | {verdicts['inconclusive']} | {verdicts['improved']} | "
        f"{shifts[len(shifts) // 2]:.2f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("experiment", choices=("runc", "docker", "tables"))
    parser.add_argument("--sessions", type=int, default=20, help="Sessions per wrapper.")
    parser.add_argument("--duration", default="60s", help="Length of each session (15s, 2m).")
    parser.add_argument("--out", type=Path, required=True, help="Directory of the sessions.")
    args = parser.parse_args()
    if args.experiment == "runc":
        experiment_runc(args)
    elif args.experiment == "docker":
        experiment_docker(args)
    tables(args)


if __name__ == "__main__":
    main()
