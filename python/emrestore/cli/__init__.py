"""The ``emrestore`` command line: a thin layer over ``emrestore.workflows``. Each command has a
module here that declares its options and calls one library entry point; ``options`` holds what
they share, including the parsers that check every option's value as it is read."""

from __future__ import annotations

import argparse
import sys

from ..version import __version__
from . import demo, detect, evaluate, fit, info, restore, simulate
from .options import HelpFormatter

COMMANDS = (info, simulate, detect, evaluate, fit, restore, demo)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="emrestore",
        formatter_class=HelpFormatter,
        description="Serial-section EM volumes: simulates and detects missing sections, folds and "
        "precipitates, and restores missing sections. `emrestore COMMAND --help` for each "
        "command.",
    )
    parser.add_argument("--version", action="version", version=f"emrestore {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(sub).set_defaults(func=command.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ModuleNotFoundError as e:  # a declared dependency missing from this environment
        raise SystemExit(
            f"emrestore {args.command}: the package {e.name!r} is needed for this and is not "
            f"installed (pip install {e.name})"
        ) from e
    except (OSError, ValueError, TypeError) as e:
        # Bad input (a missing or unreadable file, an output in the way, a stack that does not
        # fit the options): the message, not a traceback.
        raise SystemExit(f"emrestore {args.command}: {e}") from e


if __name__ == "__main__":
    sys.exit(main())
