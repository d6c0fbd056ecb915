"""Check isobench's startup timing against hyperfine, and measure the harness's own overhead.

Usage (as root, with the runtimes set up by 'make setup'):

    .venv/bin/python benchmarks/agreement.py --runtime runc --runtime docker
    .venv/bin/python benchmarks/agreement.py --overhead

The first form times one whole container run, the command of the run_rm
benchmark, with the same argv for both tools. It alternates blocks: a block
of runs timed as the startup benchmark times them, then a block run by
``hyperfine -N``, and so on. It prints a Markdown table of both medians and
whether they agree within 5 % or 0.5 ms, whichever is larger.

With --overhead it runs the namespaces suite on runc, times the whole run,
counts the containers the suite started, and sets their number times the
median runc start measured just before against the wall time.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from isobench import images, runtimes
from isobench.bench import startup
from isobench.journal import Entry, Journal
from isobench.model import Request
from isobench.results import new_run_id
from isobench.runtimes.base import Context
from isobench.runtimes.engine import EngineAdapter
from isobench.runtimes.oci import OciAdapter

REPO = Path(__file__).resolve().parents[1]
RELATIVE = 0.05
ABSOLUTE_S = 0.0005


def run_command(ctx: Context, name: str) -> tuple[list[str], list[Entry]]:
    """Return the argv of one whole run on a runtime, which can be repeated as it is."""
    adapter = runtimes.get(name)
    adapter.prepare(ctx)
    if isinstance(adapter, OciAdapter):
        # 'run' deletes the container at its end, so the same name can run again.
        container, bundle, entries = adapter.prepare_bundle(ctx, Request(), startup.COMMAND, {})
        return [*adapter.global_argv(ctx), "run", "--bundle", str(bundle), container], entries
    if isinstance(adapter, EngineAdapter):
        container, entry, command = adapter.container_command(
            ctx, Request(), ["run", "--rm"], startup.COMMAND
        )
        # Without a name, every run gets a new one; the run's label finds any left over.
        at = command.index("--name")
        del command[at : at + 2]
        ctx.journal.released(entry)
        label = f"isobench.run={ctx.run_id}"
        sweep = f"{adapter.binary} ps -aq --filter label={label} | xargs -r {adapter.binary} rm -f"
        leftovers = ctx.journal.record("containers", label, ["sh", "-c", sweep])
        return command, [leftovers]
    raise SystemExit(f"{name} is neither an engine nor an OCI runtime")


def hyperfine_block(command: list[str], runs: int) -> list[float]:
    with tempfile.TemporaryDirectory() as scratch:
        export = Path(scratch) / "hyperfine.json"
        subprocess.run(
            [
                "hyperfine",
                "-N",
                "--style",
                "none",
                "--runs",
                str(runs),
                "--export-json",
                str(export),
                shlex.join(command),
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        return [float(t) for t in json.loads(export.read_text())["results"][0]["times"]]


def agreement(ctx: Context, name: str, blocks: int, runs: int) -> dict[str, object]:
    command, entries = run_command(ctx, name)
    try:
        startup.time_command(command)  # warm-up for both
        hyperfine_block(command, 2)
        ours: list[float] = []
        theirs: list[float] = []
        for _ in range(blocks):
            ours += [startup.time_command(command) for _ in range(runs)]
            theirs += hyperfine_block(command, runs)
    finally:
        for entry in reversed(entries):
            ctx.journal.remove(entry)
    median_ours = statistics.median(ours)
    median_theirs = statistics.median(theirs)
    tolerance = max(RELATIVE * median_theirs, ABSOLUTE_S)
    return {
        "runtime": name,
        "command": shlex.join(command),
        "n": len(ours),
        "isobench_median_ms": median_ours * 1000,
        "hyperfine_median_ms": median_theirs * 1000,
        "difference_ms": (median_ours - median_theirs) * 1000,
        "tolerance_ms": tolerance * 1000,
        "agree": abs(median_ours - median_theirs) <= tolerance,
        "isobench_s": ours,
        "hyperfine_s": theirs,
    }


def overhead(ctx: Context, runs: int) -> dict[str, object]:
    command, entries = run_command(ctx, "runc")
    try:
        start_s = statistics.median([startup.time_command(command) for _ in range(runs)])
    finally:
        for entry in reversed(entries):
            ctx.journal.remove(entry)
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "run"
        began = time.perf_counter()
        subprocess.run(
            [
                *(sys.executable, "-m", "isobench", "run", "--suite", "namespaces"),
                *("--runtime", "runc", "--out", str(out), "--no-gate"),
            ],
            check=True,
            cwd=REPO,
            stdout=subprocess.DEVNULL,
        )
        wall = time.perf_counter() - began
        names: set[str] = set()
        for line in (out / "results.jsonl").read_text().splitlines():
            for text in json.loads(line)["commands"]:
                names.update(re.findall(r"isobench-\S+-runc-\d+", text))
    starts = len(names) * start_s
    return {
        "suite_wall_s": wall,
        "containers": len(names),
        "median_start_s": start_s,
        "starts_s": starts,
        "overhead_s": wall - starts,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runtime", action="append", default=[], metavar="NAME")
    parser.add_argument("--blocks", type=int, default=10, help="Alternating blocks (default 10).")
    parser.add_argument("--runs", type=int, default=20, help="Runs per block (default 20).")
    parser.add_argument("--overhead", action="store_true", help="Measure the harness overhead.")
    parser.add_argument("--json", type=Path, default=None, help="Write the raw figures here.")
    args = parser.parse_args()

    run_id = new_run_id()
    journal = Journal(run_id)
    ctx = Context(run_id, journal)
    ctx.image = images.build_probe_image()
    ctx.bundle_root.mkdir(parents=True, exist_ok=True)
    results: dict[str, object] = {}
    try:
        if args.overhead:
            found = overhead(ctx, args.runs)
            results["overhead"] = found
            print("| suite wall time | containers | median runc start | sum of starts | overhead |")
            print("|---|---|---|---|---|")
            print(
                f"| {found['suite_wall_s']:.2f} s | {found['containers']} | "
                f"{float(found['median_start_s']) * 1000:.1f} ms | {found['starts_s']:.2f} s | "  # type: ignore[arg-type]
                f"{found['overhead_s']:.2f} s |"
            )
        rows = [agreement(ctx, name, args.blocks, args.runs) for name in args.runtime]
        results["agreement"] = rows
        if rows:
            header = ("runtime", "n", "isobench median", "hyperfine median", "difference")
            print("| " + " | ".join((*header, "tolerance", "agree")) + " |")
            print("|---|---|---|---|---|---|---|")
        for row in rows:
            print(
                f"| {row['runtime']} | {row['n']} | {row['isobench_median_ms']:.2f} ms | "
                f"{row['hyperfine_median_ms']:.2f} ms | {row['difference_ms']:+.2f} ms | "
                f"{row['tolerance_ms']:.2f} ms | {'yes' if row['agree'] else 'no'} |"
            )
    finally:
        journal.remove_all()
        journal.close()
        with_bundles = ctx.bundle_root
        if with_bundles.exists():
            with_bundles.rmdir()
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2))
    agreed = [row["agree"] for row in results.get("agreement", [])]  # type: ignore[attr-defined]
    return 0 if all(agreed) else 1


if __name__ == "__main__":
    raise SystemExit(main())
