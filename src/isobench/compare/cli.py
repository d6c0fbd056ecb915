"""The ``isobench ab`` and ``isobench compare`` commands."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any

from isobench import journal, runlock
from isobench.compare import ab
from isobench.compare.shift import DEFAULT_ALPHA, DEFAULT_MIN_EFFECT, parse_min_effect
from isobench.errors import EXIT_FAIL, EXIT_OK, UsageError
from isobench.plugin import check_out_dir
from isobench.results import RunDirectory, new_run_id

log = logging.getLogger("isobench")

DEFAULT_AB_DURATION = "60s"


def _add_statistics_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--alpha",
        type=float,
        default=DEFAULT_ALPHA,
        metavar="P",
        help=f"Significance level of the rank test; the interval is at 1 - P "
        f"(default: {DEFAULT_ALPHA}).",
    )
    parser.add_argument(
        "--min-effect",
        type=parse_min_effect,
        default=DEFAULT_MIN_EFFECT,
        metavar="SIZE",
        help="Smallest shift that counts as a regression or improvement: a percentage of "
        "the baseline median (2%%), a duration (10ms) or a number in the metric's unit "
        f"(default: {str(DEFAULT_MIN_EFFECT).replace('%', '%%')}).",
    )
    parser.add_argument(
        "--no-gate",
        action="store_true",
        help="Exit 0 whatever the verdicts; usage errors and interrupts still exit non-zero.",
    )


def _add_ab_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "ab",
        help="Time two runtimes, or two builds of one, interleaved in one session.",
        description="Start containers on side A and side B in blocks of A B B A until the "
        "duration or sample count is reached, then judge B against A per metric: the "
        "Wilcoxon signed-rank test on the pair differences and their Hodges-Lehmann shift. "
        "Exit 1 when B regressed. A side is a runtime row (runc, docker, docker+NAME for a "
        "runtime registered with dockerd, podman+NAME) or ROW=PATH for another binary of "
        "an OCI runtime row, such as runc=/opt/runc-new/runc or runsc=PATH.",
    )
    parser.add_argument("side_a", metavar="A", help="The baseline side.")
    parser.add_argument("side_b", metavar="B", help="The side judged against A.")
    parser.add_argument(
        "--duration",
        default=None,
        metavar="TIME",
        help=f"Length of the measured part (90s, 2m); default {DEFAULT_AB_DURATION} unless "
        "--samples is given.",
    )
    parser.add_argument(
        "--samples",
        type=int,
        default=None,
        metavar="N",
        help="Stop after N samples a side (rounded up to an even number); with --duration, "
        "whichever comes first.",
    )
    parser.add_argument(
        "--warmup",
        type=int,
        default=2,
        metavar="N",
        help="Warm-up starts a side, alternating, left out of the statistics (default: 2).",
    )
    parser.add_argument(
        "--phases",
        action="store_true",
        help="Time create, start to first output, exit and remove apart, and their sum as "
        "'total', instead of one whole 'run --rm'.",
    )
    parser.add_argument(
        "--network",
        choices=("none", "default"),
        default="none",
        help="Network of the containers (default: none).",
    )
    parser.add_argument(
        "--unpaired",
        action="store_true",
        help="Judge with the Mann-Whitney U test on the two sample sets, ignoring the pairs.",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        metavar="DIR",
        help="Session directory to write (default: reports/runs/RUN_ID).",
    )
    _add_statistics_options(parser)


def _add_compare_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "compare",
        help="Compare two run directories: conformance changes and benchmark shifts.",
        description="Print the environment differences of two runs, the checks that newly "
        "fail, newly pass, changed outcome or disappeared, and for every benchmark metric the "
        "Mann-Whitney U test with the Hodges-Lehmann shift. Exit 1 on a new failure or "
        "error, a vanished check or metric, or a regression. A baseline from another "
        "machine, or more than an hour older, is marked as weak evidence: prefer "
        "'isobench ab' to judge a runtime build.",
    )
    parser.add_argument("base", type=Path, metavar="BASE", help="The baseline run directory.")
    parser.add_argument("new", type=Path, metavar="NEW", help="The run directory judged.")
    parser.add_argument(
        "--json",
        type=Path,
        default=None,
        metavar="FILE",
        help="Also write the comparison as JSON to FILE.",
    )
    parser.add_argument(
        "--markdown",
        type=Path,
        default=None,
        metavar="FILE",
        help="Also write the comparison as Markdown to FILE. The same text is appended to "
        "$GITHUB_STEP_SUMMARY whenever that variable is set.",
    )
    parser.add_argument(
        "--no-holm",
        action="store_true",
        help="Test each benchmark metric at --alpha alone, without the Holm correction "
        "for the number of metrics compared.",
    )
    _add_statistics_options(parser)


def cmd_ab(args: argparse.Namespace) -> int:
    if args.samples is not None and args.samples < ab.MIN_PAIRS:
        raise UsageError(f"--samples {args.samples} is too few: give at least {ab.MIN_PAIRS}")
    if args.warmup < 0:
        raise UsageError(f"--warmup {args.warmup} is invalid: give 0 or more")
    duration = args.duration or (None if args.samples is not None else DEFAULT_AB_DURATION)
    plan = ab.Plan(
        samples=args.samples,
        duration_s=ab.parse_duration(duration) if duration else None,
        warmup=args.warmup,
        phases=args.phases,
        network=args.network,
        paired=not args.unpaired,
        alpha=args.alpha,
        min_effect=args.min_effect,
    )
    sides = [ab.parse_side("A", args.side_a), ab.parse_side("B", args.side_b)]

    lock = runlock.RunLock(exclusive=True)
    lock.acquire()
    try:
        for line in journal.clean_stale():
            log.warning("earlier run: %s", line)
        run_id = new_run_id()
        out = (args.out or Path("reports") / "runs" / run_id).resolve()
        check_out_dir(out)
        run_dir = RunDirectory(out, run_id)
        run_dir.start(sys.argv, [])
        for side in sides:
            run_dir.set_runtime(side.spec, {"side": side.label, **side.describe()})
        log.info("A/B session: A %s, B %s, directory %s", args.side_a, args.side_b, out)
        try:
            outcome = ab.run_session(sides, plan, run_dir, progress=ab.print_progress)
        finally:
            print(f"session directory: {out}")
    finally:
        lock.release()

    print(ab.format_table(outcome, sides))
    markdown = ab.format_markdown(outcome, sides)
    (out / "summary.md").write_text(markdown, encoding="utf-8")
    write_step_summary(markdown)
    for metric in outcome.regressed:
        shift = outcome.shifts[metric]
        print(
            f"isobench: B ({args.side_b}) regressed on {metric}: +{shift.shift * 1000:.2f} ms "
            f"against A ({args.side_a}), p = {shift.p_value:.2g}",
            file=sys.stderr,
        )
    if outcome.regressed and not args.no_gate:
        return EXIT_FAIL
    return EXIT_OK


def cmd_compare(args: argparse.Namespace) -> int:
    from isobench.compare import runs

    comparison = runs.compare_runs(
        args.base,
        args.new,
        alpha=args.alpha,
        min_effect=args.min_effect,
        holm=not args.no_holm,
    )
    print(runs.format_text(comparison))
    markdown = runs.format_markdown(comparison)
    if args.markdown is not None:
        args.markdown.write_text(markdown, encoding="utf-8")
    if args.json is not None:
        runs.write_json(comparison, args.json)
    write_step_summary(markdown)
    if comparison.gate_failures and not args.no_gate:
        for line in comparison.gate_failures:
            print(f"isobench: {line}", file=sys.stderr)
        return EXIT_FAIL
    return EXIT_OK


def write_step_summary(markdown: str) -> None:
    """Append to the GitHub Actions job summary when ``GITHUB_STEP_SUMMARY`` is set."""
    if os.environ.get("GITHUB_STEP_SUMMARY"):
        from isobench.report import ci

        ci.write_step_summary(markdown)
