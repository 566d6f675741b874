"""``emrestore demo``: missing sections simulated, detected and restored on a built-in phantom."""

from __future__ import annotations

from pathlib import Path

from .options import QUIET, add_model


def add_parser(sub):
    p = sub.add_parser(
        "demo", parents=[QUIET],
        help="simulate, detect and restore missing sections on a built-in phantom",
        description="Simulates missing sections on a built-in phantom stack, detects and restores "
        "them, prints PSNR/SSIM against the baselines and writes a before/after panel.")
    p.add_argument("-o", "--output", default="emrestore-demo", help="folder for panel.png and report.json")
    add_model(p, "model folder (default: the shipped model)")
    return p


def run(args) -> int:
    from .. import demo

    report = demo.run(args.output, model=args.model, progress=not args.quiet)
    print(demo.summary(report))
    print(f"-> {Path(args.output) / 'panel.png'} (clean | missing | linear | flow | emrestore), "
          f"{Path(args.output) / 'report.json'}")
    return 0
