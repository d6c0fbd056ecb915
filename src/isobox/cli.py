"""The isobox command line, shaped like runc's: ``isobox [--root DIR] COMMAND ...``."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from isobox import __version__, container

DEFAULT_ROOT = "/run/isobox"


#: The commands, with their help. Only the parser of the command given is built:
#: building all of them costs 4 ms, and isobox starts once per container.
COMMANDS = {
    "create": "Create a container and leave it waiting for 'start'.",
    "run": "Create and start a container, wait for it, and delete it.",
    "start": "Start a created container.",
    "state": "Print a container's state as JSON.",
    "kill": "Send a signal to a container's init (default TERM).",
    "delete": "Delete a stopped container.",
    "exec": "Run a process in a running container.",
    "list": "List the containers of the state directory.",
}


def build_parser() -> argparse.ArgumentParser:
    """Return the parser of the global options; the command's own come after it."""
    parser = argparse.ArgumentParser(
        prog="isobox",
        description="A small OCI runtime built directly on Linux system calls.",
        epilog="commands: "
        + "; ".join(f"{name}: {text}" for name, text in COMMANDS.items())
        + " Run 'isobox COMMAND --help' for a command's options.",
    )
    parser.add_argument(
        "--version", "-v", action="version", version=f"isobox version {__version__}"
    )
    parser.add_argument(
        "--root",
        default=DEFAULT_ROOT,
        help=f"State directory (default: {DEFAULT_ROOT}).",
    )
    # Accepted for runc compatibility; isobox writes no log of its own.
    parser.add_argument("--log", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--log-format", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--debug", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("command", choices=COMMANDS, metavar="COMMAND")
    parser.add_argument("arguments", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    return parser


def command_parser(name: str) -> argparse.ArgumentParser:
    """Return the parser of one command's options and arguments."""
    command = argparse.ArgumentParser(prog=f"isobox {name}", description=COMMANDS[name])
    if name in ("create", "run"):
        command.add_argument("--bundle", "-b", default=".", help="Bundle directory.")
        command.add_argument("--pid-file", default=None, help="Write the init's PID here.")
        command.add_argument("--console-socket", default=None, help=argparse.SUPPRESS)
        command.add_argument("--no-pivot", action="store_true", help=argparse.SUPPRESS)
        if name == "run":
            command.add_argument("--detach", "-d", action="store_true", help="Return once started.")
    if name == "kill":
        command.add_argument("--all", "-a", action="store_true", help="Signal every process of it.")
    if name == "delete":
        command.add_argument("--force", "-f", action="store_true", help="Kill it first if it runs.")
    if name == "exec":
        command.add_argument("--detach", "-d", action="store_true", help="Return once it started.")
    if name == "list":
        command.add_argument("--format", "-f", choices=("table", "json"), default="table")
        command.add_argument("--quiet", "-q", action="store_true", help="Print the ids only.")
    else:
        command.add_argument("id")
    if name == "kill":
        command.add_argument("signal", nargs="?", default="TERM")
    if name == "exec":
        command.add_argument("args", nargs=argparse.REMAINDER)
    return command


def main(argv: Sequence[str] | None = None) -> int:
    top = build_parser().parse_args(argv)
    args = command_parser(top.command).parse_args(top.arguments)
    args.command = top.command
    root: str = top.root
    try:
        return _dispatch(args, root)
    except container.ContainerError as exc:
        print(f"isobox: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"isobox: {args.command} failed: {exc}", file=sys.stderr)
        return 1


def _dispatch(args: argparse.Namespace, root: str) -> int:
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
            for s in states:
                print(s["id"])
        else:
            print(f"{'ID':<40} {'PID':>8} {'STATUS':<8} BUNDLE")
            for s in states:
                print(f"{s['id']:<40} {s['pid']:>8} {s['status']:<8} {s['bundle']}")
        return 0
    raise container.ContainerError(f"unknown command {args.command}")
