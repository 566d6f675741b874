"""What several commands share: parent parsers for the common flags and the parsers of option
values (section ranges, Z,Y,X triples, job parts, shares)."""

from __future__ import annotations

import argparse


def _parent(*arguments: tuple[tuple, dict]) -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    for args, kwargs in arguments:
        parent.add_argument(*args, **kwargs)
    return parent


QUIET = _parent((("--quiet",), {"action": "store_true", "help": "no progress bar"}))
OVERWRITE = _parent((("--overwrite",), {"action": "store_true", "help": "replace existing outputs"}))
SEED = _parent((("--seed",), {"type": int, "default": 0}))
DEVICE = _parent((("--device",), {"help": "torch device (default: cuda if available)"}))


def add_model(p: argparse.ArgumentParser, help: str) -> None:
    p.add_argument("--model", metavar="DIR", help=help)


def add_tta(p: argparse.ArgumentParser, prefix: str = "", tail: str = "") -> None:
    p.add_argument("--tta", action="store_true", help=f"{prefix}average over rotations, mirror "
                   f"images and both orders{tail}")


def _detail_arg(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1]; got {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1]; got {text}")
    return value


def add_detail(p: argparse.ArgumentParser, prefix: str = "") -> None:
    p.add_argument("--detail", type=_detail_arg, metavar="A",
                   help=f"{prefix}share of each restored section's fine detail taken from its "
                   "aligned neighbours, 0 to 1 (default: the model's config.json, 0.3; 0: the "
                   "network's output as it is)")


def add_selection(p: argparse.ArgumentParser, of: str,
                  z_help: str = "take every n-th section (e.g. 5 for isotropic data)") -> None:
    p.add_argument("--range", metavar="START:STOP", help=f"use only these sections of {of}")
    p.add_argument("--z-step", type=int, default=1, help=z_help)


def selection(command: str, args: argparse.Namespace) -> slice:
    """--range as a slice, with --z-step checked."""
    if args.z_step < 1:
        raise SystemExit(f"emrestore {command}: --z-step must be >= 1; got {args.z_step}")
    if not args.range:
        return slice(None)
    try:
        start, stop = (int(v) if v else None for v in args.range.split(":"))
    except ValueError:
        raise SystemExit(f"emrestore: --range expects START:STOP (either may be empty); got "
                         f"{args.range!r}") from None
    return slice(start, stop)


def triple(text: str, option: str) -> tuple[int, int, int]:
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 3:
        raise SystemExit(f"emrestore restore: {option} expects three integers Z,Y,X; got {text!r}")
    return values


def part(text: str) -> tuple[int, int]:
    try:
        i, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise SystemExit(f"emrestore restore: --part expects I/N (job I of N, from 0); got "
                         f"{text!r}") from None
    if not (n >= 1 and 0 <= i < n):
        raise SystemExit(f"emrestore restore: --part I/N needs 0 <= I < N; got {text!r}")
    return i, n
