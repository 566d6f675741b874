"""What several commands share: the help formatter, parent parsers for the common flags, and the
parsers of option values. Every value is checked as it is parsed (argparse ``type=``), so a bad
one stops the command before any work, with a message that names the option, what it expects and
what it got (``emrestore fit: error: argument --minutes: expected a finite number > 0; got
'nan'``, exit code 2)."""

from __future__ import annotations

import argparse
import math

# Smallest --tile: the halo each tile is read with (the shipped network's receptive radius, 76
# pixels, rounded up to its pooling stride of 8). A smaller tile reads more halo than it computes:
# tile 8 costs (8 + 2 * 80)**2 / 8**2 = 441 times the pixels per section.
MIN_TILE = 80
# Smallest --crop: the SSIM window (11) of --loss mse+ssim, rounded up to the network's stride.
MIN_CROP = 16
MAX_SEED = 2**32 - 1  # what every random generator the package seeds accepts


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Prints each option's default after its help, unless there is none to print: a default of
    None (the help says what happens instead) or a flag's False."""

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.default is None or action.default is False:
            return action.help or ""
        return super()._get_help_string(action)


def command_parser(sub, name: str, **kwargs) -> argparse.ArgumentParser:
    """A command's sub-parser, with the one help formatter all commands share."""
    return sub.add_parser(name, formatter_class=HelpFormatter, **kwargs)


# --- value parsers -------------------------------------------------------------------------------


def _integer(text: str, low: int, high: int | None = None) -> int:
    expected = f"an integer >= {low}" if high is None else f"an integer in [{low}, {high}]"
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {expected}; got {text!r}") from None
    if value < low or (high is not None and value > high):
        raise argparse.ArgumentTypeError(f"expected {expected}; got {text!r}")
    return value


def positive_int(text: str) -> int:
    return _integer(text, 1)


def seed(text: str) -> int:
    return _integer(text, 0, MAX_SEED)


def crop_side(text: str) -> int:
    return _integer(text, MIN_CROP)


def tile_side(text: str) -> int:
    """0 (whole sections) or at least MIN_TILE pixels."""
    expected = f"0 (whole sections) or an integer >= {MIN_TILE} (the network's halo)"
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {expected}; got {text!r}") from None
    if value != 0 and value < MIN_TILE:
        raise argparse.ArgumentTypeError(f"expected {expected}; got {text!r}")
    return value


def finite_float(low: float | None = None, high: float | None = None, *, low_open: bool = False):
    """A parser of finite numbers in [low, high] (low excluded with ``low_open``; None: no
    bound)."""
    if high is None:
        expected = f"a finite number {'>' if low_open else '>='} {low:g}"
    else:
        expected = f"a finite number in {'(' if low_open else '['}{low:g}, {high:g}]"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        inside = (
            math.isfinite(value)
            and (low is None or value > low or (value == low and not low_open))
            and (high is None or value <= high)
        )
        if not inside:
            raise argparse.ArgumentTypeError(f"expected {expected}; got {text!r}")
        return value

    parse.__name__ = "number"  # argparse names a value by its parser
    return parse


share = finite_float(0.0, 1.0)  # a share or a rate, 0 to 1
non_negative_float = finite_float(0.0)
positive_float = finite_float(0.0, low_open=True)


def int_list(text: str) -> tuple[int, ...]:
    """Comma-separated integers >= 1."""
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        values = ()
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers >= 1; got {text!r}")
    return values


def names_from(choices, what: str):
    """A parser of comma-separated names, each one of ``choices()`` (called when parsing, so that
    the modules that define them load only then); duplicates dropped, the order kept."""

    def parse(text: str) -> list[str]:
        known = list(choices())
        names = list(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
        unknown = [n for n in names if n not in known]
        if not names or unknown:
            why = f"unknown {', '.join(map(repr, unknown))}; " if unknown else ""
            raise argparse.ArgumentTypeError(
                f"{why}expected comma-separated {what} from {', '.join(known)}; got {text!r}"
            )
        return names

    parse.__name__ = what
    return parse


def section_range(text: str) -> slice:
    """START:STOP (Python's slice of the sections; either may be empty, negative counts from the
    end) as a slice."""
    expected = "START:STOP (integers; either may be empty)"
    try:
        start, stop = (int(v) if v.strip() else None for v in text.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {expected}; got {text!r}") from None
    if start is not None and stop is not None and (start >= 0) == (stop >= 0) and start >= stop:
        raise argparse.ArgumentTypeError(
            f"expected {expected} with START < STOP; got {text!r}, which selects no section"
        )
    return slice(start, stop)


def range_text(sections: slice | None) -> str | None:
    """--range as the user wrote it, give or take spaces: for the results table."""
    if sections is None:
        return None
    return ":".join("" if v is None else str(v) for v in (sections.start, sections.stop))


def available_devices() -> list[str]:
    """The torch devices this machine can run on."""
    import torch

    names = ["cpu"]
    if torch.cuda.is_available():
        names += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        names.append("mps")
    return names


def device(text: str) -> str:
    """A torch device that this machine has: cpu, cuda, cuda:N, mps."""
    import torch

    try:
        parsed = torch.device(text)
    except (RuntimeError, ValueError, TypeError):
        parsed = None
    available = available_devices()
    if parsed is None or parsed.type not in ("cpu", "cuda", "mps"):
        usable = False
    elif parsed.type == "cuda":
        usable = torch.cuda.is_available() and (parsed.index or 0) < torch.cuda.device_count()
    else:
        usable = parsed.type in available and parsed.index in (None, 0)
    if not usable:
        raise argparse.ArgumentTypeError(
            f"expected a torch device available here ({', '.join(available)}); got {text!r}"
        )
    return text


# --- parent parsers and shared options -----------------------------------------------------------


def _parent(*arguments: tuple[tuple, dict]) -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    for args, kwargs in arguments:
        parent.add_argument(*args, **kwargs)
    return parent


QUIET = _parent((("--quiet",), {"action": "store_true", "help": "no progress bar"}))
OVERWRITE = _parent(
    (("--overwrite",), {"action": "store_true", "help": "replace existing outputs"})
)
SEED = _parent(
    (
        ("--seed",),
        {
            "type": seed,
            "default": 0,
            "metavar": "N",
            "help": f"seed of every random draw, 0 to {MAX_SEED}",
        },
    )
)
DEVICE = _parent(
    (
        ("--device",),
        {
            "type": device,
            "help": "torch device: cpu, cuda, cuda:N or mps (default: cuda if available, else cpu)",
        },
    )
)


def add_model(p: argparse.ArgumentParser, help: str) -> None:
    p.add_argument("--model", metavar="DIR", help=help)


def add_tta(p: argparse.ArgumentParser, prefix: str = "", tail: str = "") -> None:
    p.add_argument(
        "--tta",
        action="store_true",
        help=f"{prefix}average over rotations, mirror images and both orders{tail}",
    )


def _detail_arg(text: str) -> float:
    # Worded as before finite_float existed: tests/test_restore.py expects this message.
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1]; got {text!r}") from None
    if not 0.0 <= value <= 1.0:  # NaN fails it too
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1]; got {text}")
    return value


def add_detail(p: argparse.ArgumentParser, prefix: str = "") -> None:
    p.add_argument(
        "--detail",
        type=_detail_arg,
        metavar="A",
        help=f"{prefix}share of each restored section's fine detail taken from its "
        "aligned neighbours, 0 to 1 (default: the model's config.json, 0.3; 0: the "
        "network's output as it is)",
    )


def add_selection(
    p: argparse.ArgumentParser,
    of: str,
    z_help: str = "take every n-th section (e.g. 5 for isotropic data)",
) -> None:
    p.add_argument(
        "--range",
        type=section_range,
        metavar="START:STOP",
        help=f"use only these sections of {of}, from START to before STOP, "
        "counted from 0 (negative: from the end, as in --range=-10:) (default: all)",
    )
    p.add_argument("--z-step", type=positive_int, default=1, metavar="N", help=z_help)


def selection(args: argparse.Namespace) -> slice:
    """--range as a slice (all sections without it)."""
    return args.range or slice(None)


# --block, --halo and --part are checked when the command starts, before any work: their
# messages ("--block expects three integers ...") are what the block-wise tests expect.


def triple(text: str, option: str, low: int) -> tuple[int, int, int]:
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 3 or min(values) < low:
        raise SystemExit(
            f"emrestore restore: {option} expects three integers Z,Y,X, each >= {low}; got {text!r}"
        )
    return values


def part(text: str) -> tuple[int, int]:
    try:
        i, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise SystemExit(
            f"emrestore restore: --part expects I/N (job I of N, from 0); got {text!r}"
        ) from None
    if not (n >= 1 and 0 <= i < n):
        raise SystemExit(f"emrestore restore: --part I/N needs 0 <= I < N; got {text!r}")
    return i, n


def scheduler(text: str) -> str:
    """'local' or a Dask scheduler's address SCHEME://HOST:PORT (tcp://10.0.0.5:8786)."""
    from ..engines import ADDRESS

    if text == "local" or ADDRESS.match(text):
        return text
    raise argparse.ArgumentTypeError(
        f"expected 'local' or a Dask scheduler's address tcp://HOST:PORT; got {text!r}"
    )
