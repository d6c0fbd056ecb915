"""Interrupt isobench runs at random moments and count what each one left behind.

Usage (as root, after 'make setup'):

    .venv/bin/python scripts/interrupt-proof.py --runs 50 --seed 1 --markdown table.md

Each round starts 'isobench run' with a random suite on a random set of
runtimes, waits a random time, and sends SIGINT or SIGKILL (half each). After
SIGINT the run must clean up by itself; after SIGKILL, 'isobench clean' runs.
Then everything on the host that carries the run's id is counted
(isobench.remnants): engine containers, runc and runsc state, mounts, cgroup
directories, network namespaces and files. The goal is zero in every row.
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from isobench.remnants import count, remnants

REPO = Path(__file__).resolve().parents[1]
JOURNALS = Path("/var/lib/isobench/journal")
SUITES = ("namespaces", "cgroups", "security", "process")
RUNTIMES = ("docker", "podman", "runc", "runsc")


def one_round(
    rng: random.Random, number: int, scratch: Path, max_delay: float
) -> dict[str, object]:
    suite = rng.choice(SUITES)
    chosen = sorted(rng.sample(RUNTIMES, rng.randint(1, 3)))
    delay = round(rng.uniform(1.0, max_delay), 1)
    kind = rng.choice(("SIGINT", "SIGKILL"))
    out = scratch / f"run-{number}"
    before = set(JOURNALS.glob("*.jsonl")) if JOURNALS.exists() else set()
    argv = [sys.executable, "-m", "isobench", "run", "--suite", suite, "--out", str(out)]
    for runtime in chosen:
        argv += ["--runtime", runtime]

    process = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    time.sleep(delay)
    finished_first = process.poll() is not None
    # send_signal does nothing once the run has ended (and been reaped) by itself.
    process.send_signal(signal.SIGINT if kind == "SIGINT" else signal.SIGKILL)
    began = time.monotonic()
    try:
        status = process.wait(120)
    except subprocess.TimeoutExpired:
        process.kill()
        status = process.wait(30)
    stopped_s = time.monotonic() - began

    if kind == "SIGKILL":
        subprocess.run(
            [sys.executable, "-m", "isobench", "clean"],
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=False,
        )

    run_ids = {path.stem for path in set(JOURNALS.glob("*.jsonl")) - before}
    meta = out / "run.json"
    run_status = ""
    if meta.exists():
        data = json.loads(meta.read_text())
        run_ids.add(data["run_id"])
        run_status = data.get("status", "")

    found: dict[str, list[str]] = {}
    for run_id in run_ids:
        for name, items in remnants(run_id).items():
            found.setdefault(name, []).extend(items)
    return {
        "round": number,
        "suite": suite,
        "runtimes": ",".join(chosen),
        "signal": kind,
        "after_s": delay,
        "ended_before_signal": finished_first,
        "exit_status": status,
        "stop_s": round(stopped_s, 2),
        "run_status": run_status,
        "left": {name: items for name, items in found.items() if items},
        "left_count": count(found),
    }


def markdown(rows: list[dict[str, object]]) -> str:
    header = ("round", "suite", "runtimes", "signal", "after", "exit", "stopped in")
    lines = [
        "| " + " | ".join((*header, "run.json status", "left")) + " |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        left = row["left"] or "nothing"
        lines.append(
            f"| {row['round']} | {row['suite']} | {row['runtimes']} | {row['signal']} | "
            f"{row['after_s']} s | {row['exit_status']} | {row['stop_s']} s | "
            f"{row['run_status'] or '-'} | {left} |"
        )
    total = sum(int(str(row["left_count"])) for row in rows)
    lines.append("")
    lines.append(f"Rounds: {len(rows)}. Things left behind, in total: {total}.")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--max-delay", type=float, default=12.0, help="Latest signal, in s.")
    parser.add_argument("--markdown", type=Path, default=None, help="Write the table here.")
    parser.add_argument("--json", type=Path, default=None, help="Write the rows here.")
    parser.add_argument("--scratch", type=Path, default=Path("/tmp/isobench-interrupt-proof"))
    args = parser.parse_args()

    rng = random.Random(args.seed)
    args.scratch.mkdir(parents=True, exist_ok=True)
    rows = []
    for number in range(1, args.runs + 1):
        row = one_round(rng, number, args.scratch, args.max_delay)
        rows.append(row)
        print(
            f"{number:3} {row['signal']:7} after {row['after_s']:4} s {row['suite']:10} "
            f"{row['runtimes']:24} left {row['left_count']}",
            flush=True,
        )
    table = markdown(rows)
    print(table)
    if args.markdown is not None:
        args.markdown.write_text(table)
    if args.json is not None:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0 if all(row["left_count"] == 0 for row in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
