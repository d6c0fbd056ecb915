"""The ``isobench`` command: run, report, merge, runtimes, doctor, clean, schema, ab and compare.

Exit status: 0 when no check failed (skips and declared deviations are
fine). 1 when a guarantee is broken (fail or xpass). 2 for a usage error.
3 when a runtime or the harness could not run a check. 130 after an
interrupt. Failures of the ``host`` row are expected, because it is the
negative control; a check that *passes* there counts as a broken check.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import logging
import os
import shutil
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from isobench import __version__, fleet, hosts, images, journal, merge, runlock, runtimes, trial
from isobench.bench.samples import SAMPLES_FILE
from isobench.bench.stats import write_summary
from isobench.compare.cli import _add_ab_parser, _add_compare_parser, cmd_ab, cmd_compare
from isobench.errors import (
    EXIT_ERROR,
    EXIT_FAIL,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    HarnessError,
    IsobenchError,
    UsageError,
)
from isobench.plugin import check_out_dir
from isobench.probe import host as host_probe
from isobench.results import (
    CONTROL_RUNTIME,
    OUTCOMES,
    RESULTS_FILE,
    RUN_FILE,
    new_run_id,
    read_run,
)
from isobench.runtimes.declared import ENV_FILES
from isobench.spec.loader import find_suites, load_suite, remote_ready, suite_name

log = logging.getLogger("isobench")


def _default_suites_dir() -> Path:
    configured = os.environ.get("ISOBENCH_SUITES_DIR")
    if configured:
        return Path(configured)
    here = Path.cwd() / "suites"
    if here.is_dir():
        return here
    # An editable install: the suites beside the source tree.
    return Path(__file__).resolve().parents[2] / "suites"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="isobench",
        description="Check that container runtimes isolate, and compare them side by side.",
    )
    parser.add_argument("--version", action="version", version=f"isobench {__version__}")
    parser.add_argument(
        "--runtimes-file",
        action="append",
        default=[],
        type=Path,
        metavar="FILE",
        help="Runtimes file (TOML) that declares more runtime rows; repeatable. Read after "
        "./runtimes.toml and ~/.config/isobench/runtimes.toml (see docs/adapters.md).",
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="Log every command with its exit status and duration.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="Run suites on runtimes and write a run directory.")
    run.add_argument(
        "--runtime",
        action="append",
        default=[],
        metavar="NAME",
        help="Runtime row to check; repeatable. Default: every available runtime except 'host'.",
    )
    run.add_argument(
        "--all",
        action="store_true",
        help="Check every available runtime, including the 'host' negative control.",
    )
    run.add_argument(
        "--suite",
        action="append",
        default=[],
        metavar="NAME",
        help="Suite to run, by name (suites/NAME.yaml); repeatable. Default: all.",
    )
    run.add_argument(
        "--suites-dir",
        type=Path,
        default=None,
        metavar="DIR",
        help="Directory of suite files (default: ./suites).",
    )
    run.add_argument(
        "--out",
        type=Path,
        default=None,
        metavar="DIR",
        help="Run directory to write (default: reports/runs/RUN_ID, linked from reports/latest).",
    )
    run.add_argument(
        "-k",
        dest="keyword",
        default=None,
        metavar="EXPR",
        help="Only run checks whose name matches this pytest -k expression.",
    )
    run.add_argument(
        "--no-gate",
        action="store_true",
        help="Exit 0 once the report is written, whatever the verdicts (for "
        "comparison reports); usage errors and interrupts still exit non-zero.",
    )
    run.add_argument(
        "--bench",
        action="store_true",
        help="Run the benchmarks (benchmarks/bench_*.py) instead of the suites, alone on "
        "this host: startup by phase, concurrency, I/O, CPU and memory against native.",
    )
    run.add_argument(
        "--bench-dir",
        type=Path,
        default=None,
        metavar="DIR",
        help="Directory of benchmark modules (default: ./benchmarks).",
    )
    run.add_argument(
        "--rounds",
        type=int,
        default=None,
        metavar="N",
        help="With --bench: measured rounds of each benchmark (default: 10).",
    )
    run.add_argument(
        "--warmup",
        type=int,
        default=None,
        metavar="N",
        help="With --bench: warm-up rounds, run first and left out of the statistics (default: 2).",
    )
    run.add_argument(
        "-n",
        "--workers",
        dest="workers",
        type=int,
        default=None,
        metavar="N",
        help="Spread the checks over N processes (pytest-xdist); the outcomes are those of a "
        "serial run. Benchmarks refuse it.",
    )
    run.add_argument(
        "--hosts",
        action="append",
        default=[],
        metavar="SPEC[,SPEC...]",
        help="Check these machines instead of this one, each as a testinfra host spec "
        "(ssh://[USER@]HOST[:PORT][?ssh_config=FILE&ssh_identity_file=FILE], local://); "
        "repeatable. Each host gets a run directory of its own, and the report joins them.",
    )
    run.add_argument(
        "--host",
        default=None,
        metavar="SPEC",
        help=argparse.SUPPRESS,  # one host of --hosts, in the process that --hosts starts
    )
    run.add_argument(
        "--pytest-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="Extra argument passed to pytest; repeatable.",
    )

    report = commands.add_parser("report", help="Render a run directory to Markdown, HTML and CSV.")
    report.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    report.add_argument(
        "--out",
        type=Path,
        default=None,
        metavar="DIR",
        help="Where to write the report (default: the run directory).",
    )

    merging = commands.add_parser(
        "merge",
        help="Join run directories from several hosts or days into one, and render its report.",
        description="Copy every record of each RUN_DIR into one new run directory and render "
        "its report, as 'isobench report' does. Each run is labelled by its host: the host "
        "label that a remote run recorded, or the host name of a local run. Runs of one host "
        "are distinguished by their start time, such as 'node1 (20261205T1210)'. With more than "
        "one label, each runtime becomes 'RUNTIME @ HOST', so the matrix has one column per "
        "host and runtime, and results.csv has host and source_runtime columns. The report "
        "gets an Environments table with each host's kernel, OS, cgroup mode and CPUs. "
        "posture.jsonl and samples.jsonl are merged the same way, and each benchmark ratio "
        "uses the native floor of its own host. Other files are left out and listed in the "
        "report. A run that is still running is merged with a warning.",
    )
    merging.add_argument(
        "run_dirs",
        nargs="+",
        type=Path,
        metavar="RUN_DIR",
        help="A run directory that 'isobench run' wrote (it contains run.json).",
    )
    merging.add_argument(
        "--out",
        type=Path,
        default=None,
        metavar="DIR",
        help="The merged run directory to write; it must not contain a run "
        "(default: reports/merged/RUN_ID).",
    )

    listing = commands.add_parser(
        "runtimes", help="List runtimes, their versions and availability."
    )
    listing.add_argument("--json", action="store_true", help="Print JSON instead of a table.")
    listing.add_argument(
        "--no-start",
        action="store_true",
        help="Do not start a trial container on each installed runtime; then a runtime that "
        "answers but cannot run containers on this host is listed as available.",
    )
    listing.add_argument(
        "--host",
        default=None,
        metavar="SPEC",
        help="List the runtimes of another machine, as a testinfra host spec "
        "(ssh://[USER@]HOST[:PORT][?ssh_config=FILE]).",
    )

    commands.add_parser("doctor", help="Tell what this host lacks to run isobench, and the fix.")

    schema = commands.add_parser(
        "schema", help="Print the JSON Schema of suite files, or of a results.jsonl line."
    )
    schema.add_argument(
        "--results",
        action="store_true",
        help="Print the schema of one results.jsonl line instead of a suite file.",
    )
    schema.add_argument(
        "--out",
        type=Path,
        default=None,
        metavar="FILE",
        help="Write the schema to FILE instead of standard output.",
    )

    _add_ab_parser(commands)
    _add_compare_parser(commands)

    clean = commands.add_parser("clean", help="Remove what runs that died left behind.")
    clean.add_argument("--dry-run", action="store_true", help="List what would be removed.")

    # The global options are accepted after the command too: 'isobench run --runtimes-file F'.
    for command in commands.choices.values():
        command.add_argument(
            "--runtimes-file",
            action="append",
            dest="runtimes_file_after",
            default=[],
            type=Path,
            metavar="FILE",
            help="As before the command: a runtimes file that declares more runtime rows.",
        )
        command.add_argument(
            "-v",
            "--verbose",
            action="store_true",
            dest="verbose_after",
            help="As before the command: log every command.",
        )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.runtimes_file = [*args.runtimes_file, *args.runtimes_file_after]
    args.verbose = args.verbose or args.verbose_after
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if args.runtimes_file:
        # Through the environment, so that the pytest plugin and its workers read them too.
        named = [os.environ.get(ENV_FILES, ""), *(str(p.resolve()) for p in args.runtimes_file)]
        os.environ[ENV_FILES] = os.pathsep.join(item for item in named if item)
        runtimes.reset()
    # Plotting libraries log every font they look at on DEBUG.
    for noisy in ("matplotlib", "PIL"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        if args.command == "run":
            return cmd_run(args)
        if args.command == "report":
            return cmd_report(args)
        if args.command == "merge":
            return cmd_merge(args)
        if args.command == "runtimes":
            return cmd_runtimes(args)
        if args.command == "doctor":
            return cmd_doctor(args)
        if args.command == "clean":
            return cmd_clean(args)
        if args.command == "schema":
            return cmd_schema(args)
        if args.command == "ab":
            return cmd_ab(args)
        if args.command == "compare":
            return cmd_compare(args)
    except UsageError as exc:
        print(f"isobench: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except IsobenchError as exc:
        print(f"isobench: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("isobench: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    parser.error(f"unknown command {args.command}")
    return EXIT_USAGE


# -- run ----------------------------------------------------------------


def _choose_runtimes(args: argparse.Namespace) -> list[str]:
    for name in args.runtime:
        runtimes.get(name)  # raises UnknownRuntimeError
    if args.runtime:
        return list(dict.fromkeys(args.runtime))
    problem = hosts.current().reachable()
    if problem:
        raise UsageError(
            f"{problem}; with --runtime NAME the run records an error for each check there"
        )
    chosen = []
    for name in runtimes.names():
        if name == CONTROL_RUNTIME and not args.all:
            continue
        info = runtimes.get(name).availability()
        if info.available:
            chosen.append(name)
        else:
            log.warning("skipping runtime %s: %s. %s", name, info.reason, info.hint)
    if not chosen:
        raise UsageError("no runtime is available here; run 'isobench doctor' to see why")
    return chosen


def _run_fleet(args: argparse.Namespace, specs: list[str]) -> int:
    """Run the suites on every host of ``--hosts`` and write one report that joins them."""
    if args.bench:
        raise UsageError(
            "benchmarks run on the machine that runs isobench only: remove --hosts, and run "
            "'isobench run --bench' on each host to compare them with 'isobench merge'"
        )
    link = None
    out = args.out
    if out is None:
        out = Path("reports") / "runs" / new_run_id()
        link = Path("reports") / "latest"
    out = out.resolve()
    check_out_dir(out)
    merged, problems = fleet.run_hosts(specs, _run_argv(args), out)
    for line in problems:
        print(f"isobench: {line}", file=sys.stderr)
    if link is not None:
        _point_latest(link, merged)
    from isobench.report import render

    written = render(merged)
    _print_outcome(merged)
    print(f"run directory: {merged} (one per host in {merged / 'hosts'})")
    print(f"report: {written['index.html']}")
    print(f"summary: {written['summary.md']}")
    print(f"JUnit XML: {written['junit.xml']}")
    _report_to_github(merged, written["summary.md"])
    if problems:
        return EXIT_ERROR
    return EXIT_OK if args.no_gate else _exit_status(merged)


def _run_argv(args: argparse.Namespace) -> list[str]:
    """Return the arguments of ``isobench run`` that each host's run repeats: all of this
    one's but --hosts and --out."""
    argv: list[str] = []
    for name in args.runtime:
        argv += ["--runtime", name]
    if args.all:
        argv.append("--all")
    for name in args.suite:
        argv += ["--suite", name]
    if args.suites_dir is not None:
        argv += ["--suites-dir", str(args.suites_dir.resolve())]
    if args.keyword:
        argv += ["-k", args.keyword]
    if args.workers is not None:
        argv += ["-n", str(args.workers)]
    for value in args.pytest_arg:
        argv.append(f"--pytest-arg={value}")
    return argv


def _bench_paths(args: argparse.Namespace) -> list[Path]:
    """Check the options of a benchmark run and return its modules."""
    if args.suite:
        raise UsageError(
            "--bench runs the benchmarks alone; run the suites in a separate 'isobench run'"
        )
    parallel = [a for a in args.pytest_arg if a in ("-n", "--numprocesses") or a.startswith("-n")]
    if parallel or any(a.startswith("--numprocesses") for a in args.pytest_arg):
        raise UsageError("benchmarks never run in parallel: remove -n from --pytest-arg")
    directory = args.bench_dir or Path("benchmarks")
    if not directory.is_dir():
        raise UsageError(f"benchmark directory {directory} not found; pass --bench-dir DIR")
    paths = sorted(directory.glob("bench_*.py"))
    if not paths:
        raise UsageError(f"no benchmark modules (bench_*.py) in {directory}")
    return paths


def cmd_run(args: argparse.Namespace) -> int:
    if (args.rounds is not None or args.warmup is not None) and not args.bench:
        raise UsageError("--rounds and --warmup go with --bench")
    if args.workers is not None:
        if args.bench:
            raise UsageError("benchmarks never run in parallel: remove -n")
        if args.workers < 1:
            raise UsageError(f"-n takes a number of processes of 1 or more (got {args.workers})")
        if importlib.util.find_spec("xdist") is None:
            raise UsageError("-n needs pytest-xdist: pip install 'pytest-xdist>=3.5'")
    specs = [spec.strip() for value in args.hosts for spec in value.split(",") if spec.strip()]
    if specs:
        if args.host:
            raise UsageError("--host is set by --hosts; give one of them")
        return _run_fleet(args, specs)
    if args.host:
        if args.bench:
            raise UsageError(
                f"benchmarks run on the machine that runs isobench only, not {args.host}: "
                "the connection would be part of every time measured"
            )
        with _checking(hosts.Host(args.host)):
            return _run_here(args)
    return _run_here(args)


@contextlib.contextmanager
def _checking(host: hosts.Host) -> Iterator[None]:
    """Send this process's commands and reads to ``host`` within the block."""
    before = hosts.use(host)
    try:
        with runtimes.fresh():
            yield
    finally:
        host.close()
        hosts.use(before)


def _run_here(args: argparse.Namespace) -> int:
    """Run the suites or the benchmarks on the run's host."""
    if args.bench:
        return _run(args, _bench_paths(args), args.bench_dir or Path("benchmarks"))
    suites_dir = args.suites_dir or _default_suites_dir()
    if not suites_dir.is_dir():
        raise UsageError(f"suite directory {suites_dir} not found; pass --suites-dir DIR")
    suite_paths = find_suites(suites_dir, args.suite)
    if not suite_paths:
        raise UsageError(
            f"no suites (*.yaml, test_*.py, or directories of test_*.py) in {suites_dir}"
        )
    if not args.suite and not hosts.current().is_local:
        # Without --suite, another host gets the suites that can check it.
        left = [path for path in suite_paths if not remote_ready(path)]
        if left:
            log.warning(
                "left out on %s, whose suites drive the runtimes with files of this machine: "
                "%s (name one with --suite to record an error for each of its checks)",
                hosts.current().label,
                ", ".join(suite_name(path) for path in left),
            )
        suite_paths = [path for path in suite_paths if path not in left]
    # Load every suite first, so that a malformed one stops the run before
    # any container starts.
    for path in suite_paths:
        if path.suffix == ".yaml":
            load_suite(path)
    return _run(args, suite_paths, suites_dir)


def _run(args: argparse.Namespace, paths: list[Path], root: Path) -> int:
    """Run suites or benchmark modules through pytest and render the run directory."""
    chosen = _choose_runtimes(args)
    if args.bench:
        # The host runs the same work natively in every benchmark, as the floor.
        chosen = [name for name in chosen if name != CONTROL_RUNTIME]
        if not chosen:
            raise UsageError(
                "benchmarks need a container runtime: the host is measured natively in each one"
            )
    # The run lock is this machine's: a run of another host leaves it to other runs here.
    lock = runlock.RunLock(exclusive=args.bench) if hosts.current().is_local else None
    if lock is not None:
        lock.acquire()
    # What runs killed with SIGKILL left is removed first; runs still alive are left alone.
    for line in journal.clean_stale():
        log.warning("earlier run: %s", line)
    try:
        return _run_locked(args, paths, root, chosen)
    finally:
        if lock is not None:
            lock.release()


def _run_locked(args: argparse.Namespace, paths: list[Path], root: Path, chosen: list[str]) -> int:

    run_id = new_run_id()
    link = None
    out = args.out
    if out is None:
        out = Path("reports") / "runs" / run_id
        link = Path("reports") / "latest"
    out = out.resolve()
    check_out_dir(out)

    pytest_args = [str(p) for p in paths]
    # The report contains every failure with its evidence, so pytest prints only
    # progress here; --pytest-arg=--tb=short brings its failure listing back.
    pytest_args += ["-p", "no:cacheprovider", "--isobench-out", str(out), "-q", "--tb=no"]
    pytest_args += ["--isobench-run-id", run_id]
    # The CLI imports isobench before pytest starts, so pytest cannot rewrite
    # its asserts; isobench has no asserts that need it.
    pytest_args += ["-W", "ignore::pytest.PytestAssertRewriteWarning"]
    pytest_args += ["--rootdir", str(root.resolve().parent)]
    # pytest-benchmark makes its storage directory (./.benchmarks) where pytest starts:
    # a suite run has no use for it, and a benchmark run keeps it in its run directory.
    if not args.bench:
        pytest_args += ["-p", "no:benchmark"]
    if args.bench:
        pytest_args += ["--benchmark-storage", f"file://{out / 'pytest-benchmark'}"]
        pytest_args += ["--isobench-bench", "--benchmark-json", str(out / "pytest-benchmark.json")]
        if args.rounds is not None:
            pytest_args += ["--isobench-rounds", str(args.rounds)]
        if args.warmup is not None:
            pytest_args += ["--isobench-warmup", str(args.warmup)]
    for name in chosen:
        pytest_args += ["--runtime", name]
    if not hosts.current().is_local:
        pytest_args += ["--isobench-host", hosts.current().spec]
    if args.workers is not None:
        pytest_args += ["-n", str(args.workers)]
    if args.keyword:
        pytest_args += ["-k", args.keyword]
    pytest_args += args.pytest_arg

    names = [suite_name(p) for p in paths]
    log.info("running %s on %s", ", ".join(names), ", ".join(chosen))
    os.environ["ISOBENCH_CLI"] = "1"  # the CLI renders the report itself
    code = pytest.main(pytest_args)

    if link is not None and out.exists():
        _point_latest(link, out)
    if code == pytest.ExitCode.USAGE_ERROR:
        raise UsageError("pytest rejected the arguments (see its message above)")
    if code == pytest.ExitCode.NO_TESTS_COLLECTED:
        raise UsageError(
            f"no check matched -k {args.keyword!r}" if args.keyword else "the suites have no checks"
        )
    if not (out / RUN_FILE).exists():
        print(
            f"isobench: no results were written (pytest exit status {int(code)})", file=sys.stderr
        )
        return EXIT_INTERRUPTED if code == pytest.ExitCode.INTERRUPTED else EXIT_ERROR

    from isobench.report import render

    if args.bench and (out / SAMPLES_FILE).exists():
        write_summary(out)
    written = render(out)
    _print_outcome(out)
    print(f"run directory: {out}")
    print(f"report: {written['index.html']}")
    print(f"summary: {written['summary.md']}")
    print(f"JUnit XML: {written['junit.xml']}")
    _report_to_github(out, written["summary.md"])
    if code == pytest.ExitCode.INTERRUPTED:
        return EXIT_INTERRUPTED
    status = _exit_status(out)
    return EXIT_OK if args.no_gate else status


def _print_outcome(run_dir: Path) -> None:
    """Print outcome counts per runtime and the problems that are not expected."""
    _, records = read_run(run_dir)
    table: dict[str, dict[str, int]] = {}
    for record in records:
        row = table.setdefault(record["runtime"], {})
        row[record["outcome"]] = row.get(record["outcome"], 0) + 1
    for runtime, counts in table.items():
        text = ", ".join(f"{counts[o]} {o}" for o in OUTCOMES if counts.get(o))
        print(f"{runtime:>14}: {text}")
    problems = [
        r
        for r in records
        if r["outcome"] in ("fail", "error", "xpass") and not r.get("expected_to_fail")
    ]
    for record in problems[:20]:
        first = (record.get("message") or "").strip().splitlines()
        print(
            f"{record['outcome'].upper()} {record['suite']}/{record['check']} on "
            f"{record['runtime']} ({record['file']}:{record['line']}): {first[0] if first else ''}"
        )
    if len(problems) > 20:
        print(f"… {len(problems) - 20} more in the report")


def _report_to_github(run_dir: Path, summary: Path) -> None:
    """In GitHub Actions, print an annotation per problem and append the job summary."""
    from isobench.report import ci

    if os.environ.get("GITHUB_ACTIONS") == "true":
        _, records = read_run(run_dir)
        workspace = os.environ.get("GITHUB_WORKSPACE")
        for line in ci.github_annotations(
            records, workspace=Path(workspace) if workspace else None
        ):
            print(line)
    ci.write_step_summary(summary.read_text(encoding="utf-8"))


def _point_latest(link: Path, target: Path) -> None:
    """Make ``reports/latest`` a symlink to the newest run; a real directory there is kept."""
    if link.is_symlink() or not link.exists():
        link.unlink(missing_ok=True)
        link.symlink_to(os.path.relpath(target, link.parent))
    else:
        log.warning("%s is not a symlink; leaving it as it is", link)


def _exit_status(run_dir: Path) -> int:
    _, records = read_run(run_dir)
    controls = [r for r in records if r.get("expected_to_fail")]
    broken = [
        r for r in records if r["outcome"] in ("fail", "xpass") and not r.get("expected_to_fail")
    ]
    errors = [r for r in records if r["outcome"] == "error"]
    unfailing = [r for r in controls if r["outcome"] == "pass"]
    for record in unfailing:
        print(
            f"isobench: check {record['suite']}/{record['check']} passed on "
            f"{record['runtime']}, its negative control, so it cannot detect a missing "
            f"guarantee ({record['file']}:{record['line']})",
            file=sys.stderr,
        )
    if broken or unfailing:
        return EXIT_FAIL
    if errors:
        return EXIT_ERROR
    return EXIT_OK


# -- report, runtimes, doctor, clean -------------------------------------


def cmd_report(args: argparse.Namespace) -> int:
    from isobench.report import render

    if not (args.run_dir / RUN_FILE).exists() and not (args.run_dir / RESULTS_FILE).exists():
        raise UsageError(
            f"{args.run_dir} is not a run directory (no {RUN_FILE}); "
            "pass the --out directory of an 'isobench run'"
        )
    written = render(args.run_dir, args.out)
    for name, path in written.items():
        print(f"{name}: {path}")
    return EXIT_OK


def cmd_merge(args: argparse.Namespace) -> int:
    from isobench.report import render

    argv = ["isobench", "merge", *(str(path) for path in args.run_dirs)]
    if args.out is not None:
        argv += ["--out", str(args.out)]
    out = merge.merge_runs(args.run_dirs, args.out, argv=argv)
    written = render(out)
    print(f"merged run directory: {out}")
    for name, path in written.items():
        print(f"{name}: {path}")
    return EXIT_OK


def cmd_runtimes(args: argparse.Namespace) -> int:
    if args.host:
        host = hosts.Host(args.host)
        problem = host.reachable()
        if problem:
            raise HarnessError(problem)
        with _checking(host):
            return _list_runtimes(args)
    return _list_runtimes(args)


def _list_runtimes(args: argparse.Namespace) -> int:
    rows: list[dict[str, Any]] = []
    for name, source in runtimes.sources().items():
        try:
            adapter = runtimes.get(name)
        except UsageError as exc:
            # A broken third-party adapter is listed as such, beside the rows that work.
            rows.append(
                {
                    "runtime": name,
                    "source": source,
                    "family": "unknown",
                    "available": False,
                    "state": "cannot load",
                    "version": "",
                    "reason": str(exc),
                    "hint": "Fix or uninstall the package that registers it.",
                    "details": {},
                }
            )
            continue
        info = adapter.availability()
        rows.append(
            {
                "runtime": name,
                "source": source,
                "family": adapter.family,
                "available": info.available,
                "state": info.state,
                "version": info.version,
                "reason": info.reason,
                "hint": info.hint,
                "details": info.details,
            }
        )
    _try_starts(args, rows)
    if args.json:
        print(json.dumps(rows, indent=2))
        return EXIT_OK
    width = max(len(r["runtime"]) for r in [*rows, {"runtime": "runtime"}])
    family_width = max(len(r["family"]) for r in rows)
    print(f"{'runtime':<{width}}  {'family':<{family_width}}  {'state':<15} version")
    for row in rows:
        name, family, state = row["runtime"], row["family"], row["state"]
        print(f"{name:<{width}}  {family:<{family_width}}  {state:<15} {row['version']}")
        if row["source"] != "built-in":
            print(f"{'':<{width}}    declared: {row['source']}")
        for key, value in row["details"].items():
            print(f"{'':<{width}}    {key}: {value}")
        if not row["available"]:
            print(f"{'':<{width}}    reason: {row['reason']}")
            if row["hint"]:
                print(f"{'':<{width}}    fix: {row['hint']}")
    return EXIT_OK


def _try_starts(args: argparse.Namespace, rows: list[dict[str, Any]]) -> None:
    """Start a trial container on each available row and mark those that cannot run here."""
    chosen = [row for row in rows if row["available"] and row["family"] != "host"]
    if args.no_start:
        for row in chosen:
            row["details"] = {**row["details"], "trial": "not started (--no-start)"}
        return
    if not chosen:
        return
    if os.geteuid() != 0:
        for row in chosen:
            row["details"] = {**row["details"], "trial": "not started: isobench runs as a user"}
        return
    lock = runlock.RunLock(exclusive=False) if hosts.current().is_local else None
    if lock is not None:
        lock.acquire()
    try:
        outcomes = trial.trial_starts([runtimes.get(row["runtime"]) for row in chosen])
    finally:
        if lock is not None:
            lock.release()
    for row in chosen:
        problem = outcomes.get(row["runtime"], "")
        if not problem:
            continue
        row["available"] = False
        row["state"] = "cannot run here"
        row["reason"] = f"a trial container did not run: {problem}"
        row["hint"] = (
            "The message is the runtime's own. docs/adapters.md tells what the built-in "
            "rows do about the known ones."
        )


def cmd_doctor(args: argparse.Namespace) -> int:
    problems = 0

    def report(ok: bool, what: str, fix: str = "") -> None:
        nonlocal problems
        print(f"[{'ok' if ok else 'missing'}] {what}")
        if not ok:
            problems += 1
            if fix:
                print(f"          fix: {fix}")

    report(
        os.geteuid() == 0,
        "running as root (needed for containers, mounts and markers)",
        "run isobench as root",
    )
    try:
        busybox = images.find_busybox()
        report(True, f"busybox at {busybox}")
    except UsageError as exc:
        report(False, "a static busybox for the probe image", str(exc))
    for tool, package in (
        ("ipcrm", "util-linux"),
        ("pkill", "procps"),
        ("mount", "util-linux"),
        ("tar", "tar"),
    ):
        report(shutil.which(tool) is not None, f"'{tool}' on PATH", f"apt-get install {package}")
    print(f"[info] cgroup mode: {host_probe.cgroup_mode()}")

    newer = shutil.which("docker")
    if newer and newer != "/usr/bin/docker" and Path("/usr/bin/docker").exists():
        print(
            f"[info] 'docker' on PATH is {newer}; isobench uses /usr/bin/docker, the client "
            "that matches the Debian engine (set ISOBENCH_DOCKER to choose another)"
        )

    for name in runtimes.names():
        info = runtimes.get(name).availability()
        what = f"runtime {name} {info.version}".rstrip()
        report(info.available, what if info.available else f"{what}: {info.reason}", info.hint)

    stale = journal.stale_entries()
    leftovers = sum(len(entries) for entries in stale.values())
    report(
        leftovers == 0,
        f"no resources left by dead runs ({leftovers} found)",
        "run 'isobench clean'",
    )
    if problems == 0:
        print("all set")
    else:
        print(f"{problems} problem(s); the 'fix:' lines above say what to do")
    return EXIT_OK if problems == 0 else EXIT_ERROR


def cmd_clean(args: argparse.Namespace) -> int:
    lines = journal.clean_stale(dry_run=args.dry_run)
    for line in lines:
        print(line)
    if not lines:
        print("nothing to clean")
    return EXIT_ERROR if any(line.startswith("could not") for line in lines) else EXIT_OK


def cmd_schema(args: argparse.Namespace) -> int:
    from isobench.results_schema import results_schema
    from isobench.spec.schema import suite_json_schema

    schema = results_schema() if args.results else suite_json_schema()
    text = json.dumps(schema, indent=2) + "\n"
    if args.out is None:
        sys.stdout.write(text)
    else:
        args.out.write_text(text)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
