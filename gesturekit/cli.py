"""The `gesturekit` command: a thin argparse layer over the library.

Each area adds its own subcommands (`add_commands`) from a light module, and imports the
heavy parts (TensorFlow, interpreters) only inside the command that needs them, so
`gesturekit --help` and `gesturekit run` start fast.

Errors: a `UserError` (and an `OSError` about a path the user named, or a full disk) prints one
line and exits with its code (2, or 3 for the sandbox gate); anything else is a bug, shown as a
traceback; `--debug` shows tracebacks for every error, and TensorFlow's C++ logging.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import sys

from gesturekit import __version__, native_log
from gesturekit.errors import UserError

# Commands that load TensorFlow, whose C++ log lines are dropped unless --debug.
LOADS_TENSORFLOW = ("train", "evaluate", "export", "compare")
# OSErrors without a file name that are the machine's state, not a bug.
ENVIRONMENT_ERRNOS = (errno.ENOSPC, errno.EDQUOT)


class HelpFormatter(argparse.HelpFormatter):
    """Every option's help ends with its default, unless the help already says it: the value,
    or "none" for an option that is off unless given. Flags and required options have none.
    In descriptions and epilogs, an indented line (an example command) is kept as written."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        return "\n".join(indent + line if line[:1].isspace() or not line
                         else super(HelpFormatter, self)._fill_text(line, width, indent)
                         for line in text.splitlines())

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if (not action.option_strings or action.required or "default" in text
                or action.nargs == 0 or action.default is argparse.SUPPRESS):
            return text
        return f"{text} (default: {'none' if action.default is None else '%(default)s'})"


class Parser(argparse.ArgumentParser):
    """The command's parser; its subcommands' parsers are of this class too."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        """A bad option is one line naming it, exit 2: the usage (up to 20 lines) would bury it."""
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} -h)\n")


def epilog(*examples: str, done: str = "", bad: str = "", other: str = "") -> str:
    """The end of a command's -h: example commands, then its exit codes; `done`, `bad` and
    `other` add the command's own cases to 0, to 2 and after 2."""
    return "\n".join(["examples:", *(f"  {e}" for e in examples), "",
                      f"exit codes: 0 done{done}; 2 bad input or options{bad} (one line naming "
                      f"the file, field or option){other}; anything else is a bug (a "
                      "traceback; gesturekit --debug shows one for every error)"])


def postprocess_options() -> argparse.ArgumentParser:
    """The post-processing overrides that `run` and `plot` share (argparse `parents=`)."""
    from gesturekit.options import nonnegative_float, probability

    options = argparse.ArgumentParser(add_help=False)
    post = options.add_argument_group("post-processing (defaults from the bundle)")
    post.add_argument("--smoothing", type=nonnegative_float, metavar="SECONDS",
                      help="average the window outputs of the last SECONDS (default: the bundle's)")
    post.add_argument("--threshold", type=probability,
                      help="smoothed confidence to announce (default: the bundle's)")
    post.add_argument("--min-on", type=nonnegative_float, metavar="SECONDS",
                      help="seconds a class must stay on before it is announced (default: the "
                           "bundle's)")
    post.add_argument("--refractory", type=nonnegative_float, metavar="SECONDS",
                      help="seconds of silence after an event (default: the bundle's)")
    return options


def postprocess_overrides(args: argparse.Namespace) -> dict:
    """The options of `postprocess_options` as `PostprocessConfig.for_bundle` takes them."""
    return {"smoothing_s": args.smoothing, "threshold": args.threshold,
            "min_on_s": args.min_on, "refractory_s": args.refractory}


def build_parser() -> argparse.ArgumentParser:
    from gesturekit.device import cli as device_cli
    from gesturekit.export import cli as export_cli
    from gesturekit.train import cli as train_cli

    parser = Parser(
        prog="gesturekit",
        description="IMU gestures from a board's serial port to a model running on that board.",
    )
    parser.add_argument("--version", action="version", version=f"gesturekit {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="show tracebacks for every error, and TensorFlow's C++ logging")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    train_cli.add_commands(commands)
    export_cli.add_commands(commands)
    device_cli.add_commands(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse `argv`, run the command, return the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    native_log.show_native_logs = args.debug
    with native_log.native_logs_dropped() if args.command in LOADS_TENSORFLOW else contextlib.nullcontext():
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    command = " ".join(filter(None, (args.command, getattr(args, "data_command", None))))
    try:
        return int(args.func(args) or 0)
    except UserError as e:
        if args.debug:
            raise
        print(f"gesturekit {command}: error: {e}", file=sys.stderr)
        return e.exit_code
    except BrokenPipeError:
        # Output piped into `head` and closed: not an error. Point stdout at devnull so the
        # interpreter's final flush does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as e:
        # A path the user named (no such file, not a directory, permission denied) or a full
        # disk; any other OSError is a bug and keeps its traceback.
        if args.debug or (e.filename is None and e.errno not in ENVIRONMENT_ERRNOS):
            raise
        print(f"gesturekit {command}: error: {e}", file=sys.stderr)
        return UserError.exit_code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
