"""``emrestore simulate``: degrade a clean stack."""

from __future__ import annotations

from pathlib import Path

from ..io.paths import beside
from .options import OVERWRITE, QUIET, SEED, command_parser, share


def add_parser(sub):
    p = command_parser(
        sub,
        "simulate",
        parents=[SEED, OVERWRITE, QUIET],
        help="degrade a clean stack with missing sections, folds and precipitates",
        description="Degrades IN (multi-page TIFF, .npy, or a folder of PNG/TIFF sections) and "
        "writes OUT in the same kind of format, a mask stack (bits: ms 1, sff 2, sp 4) and a JSON "
        "manifest of every artifact. Deterministic for a seed; IN is never modified.",
    )
    p.add_argument("input", metavar="IN", help="clean stack")
    p.add_argument("output", metavar="OUT", help="degraded stack to write")
    p.add_argument(
        "--ms", type=share, default=0.044, metavar="RATE", help="rate of missing sections, 0 to 1"
    )
    p.add_argument(
        "--sff",
        type=share,
        default=0.032,
        metavar="RATE",
        help="rate of support-film folds, 0 to 1",
    )
    p.add_argument(
        "--sp",
        type=share,
        default=0.026,
        metavar="RATE",
        help="rate of staining precipitates, 0 to 1",
    )
    p.add_argument(
        "--preset", choices=("realistic", "paper"), default="realistic", help="fold model"
    )
    p.add_argument("--masks", help="mask stack path (default: OUT with _masks)")
    p.add_argument("--manifest", help="JSON manifest path (default: OUT with .json)")
    p.add_argument(
        "--flows", help="also write the folds' flow, inverse flow and lost pixels to this .npz"
    )
    return p


def run(args) -> int:
    from ..workflows import simulate_to_disk

    manifest = simulate_to_disk(
        args.input,
        args.output,
        rates={"ms": args.ms, "sff": args.sff, "sp": args.sp},
        seed=args.seed,
        preset=args.preset,
        masks=args.masks,
        manifest=args.manifest,
        flows=args.flows,
        overwrite=args.overwrite,
        progress=not args.quiet,
    )
    counts = ", ".join(f"{k} {v}" for k, v in manifest["counts"].items())
    written = Path(args.manifest) if args.manifest else beside(args.output, "", ".json")
    print(
        f"{manifest['shape'][0]} sections, degraded: {counts} -> {manifest['output']}, masks "
        f"{manifest['masks']}, manifest {written}"
    )
    return 0
