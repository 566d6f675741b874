"""The ``emrestore`` command line: a thin layer over ``emrestore.workflows``. Each command has a
module here that declares its options and calls one library entry point."""

from __future__ import annotations

import argparse
import sys

from . import demo, detect, evaluate, fit, info, restore, simulate

COMMANDS = (info, simulate, detect, evaluate, fit, restore, demo)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="emrestore", description="The ``emrestore`` command line.")
    sub = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.add_parser(sub).set_defaults(func=command.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (FileNotFoundError, FileExistsError, ValueError, TypeError) as e:
        # Bad input: the message, not a traceback.
        raise SystemExit(f"emrestore {args.command}: {e}") from e


if __name__ == "__main__":
    sys.exit(main())
