"""``emrestore detect``: find the artifacts of a stack."""

from __future__ import annotations

from pathlib import Path

from .options import OVERWRITE, QUIET, command_parser, finite_float, share


def add_parser(sub):
    p = command_parser(
        sub,
        "detect",
        parents=[OVERWRITE, QUIET],
        help="find missing sections, folds and precipitates in a stack",
        description="Reads IN (multi-page TIFF, .npy, or a folder of PNG/TIFF sections) and writes "
        "a mask stack (bits: ms 1, sff 2, sp 4) and optionally a JSON report with a verdict per "
        "section and the fold geometry. IN is never modified.",
    )
    p.add_argument("input", metavar="IN", help="stack to examine")
    p.add_argument("-o", "--output", required=True, metavar="MASKS", help="mask stack to write")
    p.add_argument("--report", help="JSON report path (default: no report)")
    p.add_argument(
        "--ms-min-similarity",
        type=share,
        default=0.12,
        metavar="S",
        help="coarse correlation below which a section resembles no neighbour, 0 to 1",
    )
    p.add_argument(
        "--sff-band-threshold",
        type=share,
        default=0.3,
        metavar="D",
        help="darkness (1 - band/surround, averaged along the fold) marking a fold band, 0 to 1",
    )
    p.add_argument(
        "--sff-min-darkness",
        type=share,
        default=0.35,
        metavar="D",
        help="mean band darkness a fold needs along its length, 0 to 1",
    )
    # The precipitates' soft mask is darkness / threshold: 0 would divide by zero.
    p.add_argument(
        "--sp-threshold",
        type=finite_float(0.0, 1.0, low_open=True),
        default=0.65,
        metavar="D",
        help="darkness against the local background marking precipitates, above 0 and at most 1",
    )
    p.add_argument(
        "--no-consistency",
        action="store_true",
        help="judge each section on its own (no comparison with its aligned neighbours); the "
        "default compares, and uses the section alone only where no neighbour is present",
    )
    p.add_argument(
        "--sff-departure",
        type=share,
        default=0.15,
        metavar="D",
        help="how much darker than its neighbours predict a fold's band must be (median over the "
        "band; tissue lines: about 0.1), 0 to 1",
    )
    p.add_argument(
        "--sp-departure",
        type=share,
        default=0.4,
        metavar="D",
        help="how much darker than its neighbours predict a precipitate's core must be at least, "
        "0 to 1 (the stack raises it above what its own tissue reaches)",
    )
    p.add_argument(
        "--sp-verdict",
        type=share,
        default=0.85,
        metavar="D",
        help="without neighbours (--no-consistency, or none present): core darkness a blob "
        "needs for the section to be called sp, 0 to 1",
    )
    return p


def run(args) -> int:
    from ..workflows import detect_to_disk

    options = {
        "ms": {"min_similarity": args.ms_min_similarity},
        "sff": {"strip_threshold": args.sff_band_threshold, "min_darkness": args.sff_min_darkness},
        "sp": {"threshold": args.sp_threshold},
        "sp_verdict": args.sp_verdict,
        "consistency": not args.no_consistency,
        "sff_departure": args.sff_departure,
        "sp_departure": {"core": args.sp_departure},
    }
    report = detect_to_disk(
        args.input,
        args.output,
        report=args.report,
        options=options,
        overwrite=args.overwrite,
        progress=not args.quiet,
    )
    counts = ", ".join(f"{k} {v}" for k, v in report["counts"].items())
    print(
        f"{len(report['sections'])} sections: {counts} -> masks {report['masks']}"
        + (f", report {Path(args.report)}" if args.report else "")
    )
    return 0
