"""The isobox command line, shaped like runc's: ``isobox [--root DIR] COMMAND ...``."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from isobox import __version__, container

DEFAULT_ROOT = Path("/run/isobox")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="isobox", description="A small OCI runtime built directly on Linux system calls."
    )
    parser.add_argument(
        "--version", "-v", action="version", version=f"isobox version {__version__}"
    )
    parser.add_argument(
        "--root",
        type=Path,
        default=DEFAULT_ROOT,
        help=f"State directory (default: {DEFAULT_ROOT}).",
    )
    # Accepted for runc compatibility; isobox writes no log of its own.
    parser.add_argument("--log", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--log-format", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--debug", action="store_true", help=argparse.SUPPRESS)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    for name, text in (
        ("create", "Create a container and leave it waiting for 'start'."),
        ("run", "Create and start a container, wait for it, and delete it."),
    ):
        command = commands.add_parser(name, help=text)
        command.add_argument(
            "--bundle", "-b", type=Path, default=Path("."), help="Bundle directory."
        )
        command.add_argument(
            "--pid-file", type=Path, default=None, help="Write the init's PID here."
        )
        command.add_argument("--console-socket", default=None, help=argparse.SUPPRESS)
        command.add_argument("--no-pivot", action="store_true", help=argparse.SUPPRESS)
        if name == "run":
            command.add_argument("--detach", "-d", action="store_true", help="Return once started.")
        command.add_argument("id")

    commands.add_parser("start", help="Start a created container.").add_argument("id")
    commands.add_parser("state", help="Print a container's state as JSON.").add_argument("id")

    kill = commands.add_parser("kill", help="Send a signal to a container's init (default TERM).")
    kill.add_argument("--all", "-a", action="store_true", help="Signal every process of it.")
    kill.add_argument("id")
    kill.add_argument("signal", nargs="?", default="TERM")

    delete = commands.add_parser("delete", help="Delete a stopped container.")
    delete.add_argument("--force", "-f", action="store_true", help="Kill it first if it runs.")
    delete.add_argument("id")

    execute = commands.add_parser("exec", help="Run a process in a running container.")
    execute.add_argument("--detach", "-d", action="store_true", help="Return once it started.")
    execute.add_argument("id")
    execute.add_argument("args", nargs=argparse.REMAINDER)

    listing = commands.add_parser("list", help="List the containers of the state directory.")
    listing.add_argument("--format", "-f", choices=("table", "json"), default="table")
    listing.add_argument("--quiet", "-q", action="store_true", help="Print the ids only.")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    root: Path = args.root
    try:
        return _dispatch(args, root)
    except container.ContainerError as exc:
        print(f"isobox: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"isobox: {args.command} failed: {exc}", file=sys.stderr)
        return 1


def _dispatch(args: argparse.Namespace, root: Path) -> int:
    if args.command in ("create", "run"):
        if args.console_socket:
            raise container.ContainerError("a console socket (terminal) is not implemented")
        if args.command == "create" or args.detach:
            state = container.create(root, args.id, args.bundle, args.pid_file)
            if args.command == "run":
                container.start(root, args.id)
            del state
            return 0
        return container.run(root, args.id, args.bundle)
    if args.command == "start":
        container.start(root, args.id)
        return 0
    if args.command == "state":
        print(json.dumps(container.public_state(container.read_state(root, args.id)), indent=2))
        return 0
    if args.command == "kill":
        container.kill(root, args.id, container.parse_signal(args.signal), args.all)
        return 0
    if args.command == "delete":
        container.delete(root, args.id, args.force)
        return 0
    if args.command == "exec":
        command = args.args[1:] if args.args[:1] == ["--"] else args.args
        return container.exec_process(root, args.id, command, args.detach)
    if args.command == "list":
        states = container.list_states(root)
        if args.format == "json":
            print(json.dumps(states))
        elif args.quiet:
            print("\n".join(s["id"] for s in states))
        else:
            print(f"{'ID':<40} {'PID':>8} {'STATUS':<8} BUNDLE")
            for s in states:
                print(f"{s['id']:<40} {s['pid']:>8} {s['status']:<8} {s['bundle']}")
        return 0
    raise container.ContainerError(f"unknown command {args.command}")
