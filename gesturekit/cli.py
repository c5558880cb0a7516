"""The `gesturekit` command: a thin argparse layer over the library.

Each area adds its own subcommands (`add_commands`) from a light module, and imports the
heavy parts (TensorFlow, interpreters) only inside the command that needs them, so
`gesturekit --help` and `gesturekit run` start fast.

Errors: a `UserError` (and an `OSError` about a path or device the user named) prints one line
and exits with its code (2, or 3 for the sandbox gate); anything else is a bug, shown as a
traceback; `--debug` shows tracebacks for every error.
"""

from __future__ import annotations

import argparse
import os
import sys

from gesturekit import __version__
from gesturekit.errors import UserError


def build_parser() -> argparse.ArgumentParser:
    from gesturekit.device import cli as device_cli
    from gesturekit.export import cli as export_cli
    from gesturekit.train import cli as train_cli

    parser = argparse.ArgumentParser(
        prog="gesturekit",
        description="IMU gestures from a board's serial port to a model running on that board.",
    )
    parser.add_argument("--version", action="version", version=f"gesturekit {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for every error")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    train_cli.add_commands(commands)
    export_cli.add_commands(commands)
    device_cli.add_commands(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse `argv`, run the command, return the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except UserError as e:
        if args.debug:
            raise
        print(f"gesturekit {args.command}: error: {e}", file=sys.stderr)
        return e.exit_code
    except BrokenPipeError:
        # Output piped into `head` and closed: not an error. Point stdout at devnull so the
        # interpreter's final flush does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as e:
        # A path or device the user named (not a directory, permission denied, disk full).
        if args.debug:
            raise
        print(f"gesturekit {args.command}: error: {e}", file=sys.stderr)
        return UserError.exit_code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
