"""The `dcgan` command: parses and validates options, then calls the library.

Each subcommand lives in its own module with a `register(subparsers)` that adds its parser;
the helpers they share live in cli/options.py.

Bad input ends in one line on stderr and a non-zero exit (2 for usage), never a traceback.
Nothing imports this module.
"""

from __future__ import annotations

import argparse
import sys

from ..errors import DcganError
from ..version import __version__
from . import compare, data, eval, export, generate, report, train

COMMANDS = (train, generate, eval, compare, report, data, export)


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error in one line (plus where to get help)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _one_line(error: BaseException) -> str:
    """An error message on one line, whatever a file name or a value put in it."""
    return " ".join(str(error).split("\n"))


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush cannot fail again."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="dcgan", description="Train DCGANs on images and generate new ones.")
    parser.add_argument("--version", action="version", version=f"dcgan {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for command in COMMANDS:
        command.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from ..perf import openmp_env

    openmp_env()  # before anything imports torch (opt-in: DCGAN_OMP_POLICY=passive)
    args = build_parser().parse_args(argv)
    try:
        code = args.func(args)
        sys.stdout.flush()  # a closed pipe fails here, inside the try, not at interpreter exit
        return code
    except BrokenPipeError:  # `dcgan data list | head -3`: the reader left, stop quietly
        _silence_stdout()
        return 141  # 128 + SIGPIPE, as a shell tool killed by the signal reports it
    except DcganError as e:
        print(f"dcgan {args.command}: error: {_one_line(e)}", file=sys.stderr)
        return e.exit_code
    except OSError as e:  # disk full, permissions: still one line
        print(f"dcgan {args.command}: error: {_one_line(e)}", file=sys.stderr)
        return 1
    except MemoryError:  # an estimate in limits.py missed: still one line, not a traceback
        print(
            f"dcgan {args.command}: error: out of memory; use a smaller --batch-size, "
            "--image-size or --g-features/--d-features",
            file=sys.stderr,
        )
        return 1
    except KeyboardInterrupt:
        print(f"dcgan {args.command}: interrupted", file=sys.stderr)
        return 130
