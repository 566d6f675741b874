"""``emrestore demo``: missing sections simulated, detected and restored on a built-in phantom."""

from __future__ import annotations

from pathlib import Path

from .options import OVERWRITE, QUIET, add_model, command_parser


def add_parser(sub):
    p = command_parser(
        sub,
        "demo",
        parents=[OVERWRITE, QUIET],
        help="simulate, detect and restore missing sections on a built-in phantom",
        description="Simulates missing sections on a built-in phantom stack, detects and restores "
        "them, prints PSNR/SSIM against the baselines and writes a before/after panel. Refuses a "
        "folder that holds a panel or report already, unless --overwrite.",
    )
    p.add_argument(
        "-o",
        "--output",
        default="emrestore-demo",
        metavar="DIR",
        help="folder for panel.png and report.json",
    )
    add_model(p, "model folder (default: the shipped model)")
    return p


def run(args) -> int:
    from .. import demo

    report = demo.run(
        args.output, model=args.model, overwrite=args.overwrite, progress=not args.quiet
    )
    print(demo.summary(report))
    print(
        f"-> {Path(args.output) / 'panel.png'} (clean | missing | linear | flow | emrestore), "
        f"{Path(args.output) / 'report.json'}"
    )
    return 0
