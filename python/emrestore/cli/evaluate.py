"""``emrestore evaluate``: score restoration methods on held-out sections of clean stacks."""

from __future__ import annotations

from pathlib import Path

from .options import (
    OVERWRITE,
    QUIET,
    SEED,
    add_detail,
    add_model,
    add_selection,
    add_tta,
    command_parser,
    names_from,
    range_text,
    selection,
)


def _artifacts():
    from ..evaluate import SIMULATORS

    return SIMULATORS


def add_parser(sub):
    p = command_parser(
        sub,
        "evaluate",
        parents=[SEED, OVERWRITE, QUIET],
        help="score restoration methods on held-out sections of clean stacks",
        description="Degrades every third interior section of each DATA stack with the simulator "
        "(fixed seeds), restores them with each method and writes a table of PSNR/SSIM (whole and "
        "in the artifact mask), VOI and adapted Rand error, and seconds per section, as Markdown, "
        "CSV and JSON (with each section's scores), and each method's paired difference from "
        "--reference. Refuses an output folder that holds results already, unless --overwrite.",
    )
    p.add_argument(
        "data", nargs="+", metavar="DATA", help="clean stacks (TIFF, .npy, folder of sections)"
    )
    p.add_argument(
        "--artifacts",
        type=names_from(_artifacts, "artifacts"),
        default="ms,sff,sff-paper,sp",
        help="comma-separated: ms, sff (realistic folds), sff-paper (published fold model), sp",
    )
    p.add_argument(
        "--methods",
        default="degraded,substitution,linear,flow,inpaint",
        help="comma-separated restoration methods to score: degraded (the input "
        "itself), substitution (the nearest clean neighbour), linear (the neighbours' "
        "distance-weighted mean), flow (the neighbours warped by optical flow and "
        "blended), inpaint (OpenCV inpainting of folds and precipitates)",
    )
    p.add_argument(
        "--labels", help="ground-truth membrane masks for the one DATA stack (cells > 0)"
    )
    add_model(p, 'also score this interpolation model (method "emrestore")')
    add_tta(p, "with --model: ", " (16 passes)")
    add_detail(p, "with --model: ")
    p.add_argument(
        "--all-sections",
        action="store_true",
        help="score every interior section: three passes, the every-third pattern "
        "shifted by 0, 1 and 2 sections (three times the sections; pass 0 is the "
        "default protocol)",
    )
    p.add_argument(
        "--reference",
        default="flow",
        metavar="METHOD",
        help="the method every other is compared with, section by section (mean "
        "difference, 95%% bootstrap interval, sections better): comparison.md (when "
        "scored)",
    )
    add_selection(p, "each DATA stack")
    p.add_argument(
        "-o",
        "--output",
        default="results",
        metavar="DIR",
        help="results folder: results.md, .csv, .json, comparison.md, .json",
    )
    return p


def run(args) -> int:
    from .. import baselines, evaluate
    from ..workflows import evaluate_to_disk

    methods = list(dict.fromkeys(m for m in args.methods.split(",") if m))
    available = dict(baselines.METHODS)
    if (args.tta or args.detail is not None) and not args.model:
        raise SystemExit("emrestore evaluate: --tta and --detail go with --model")
    if args.model and "emrestore" not in methods:
        methods.append("emrestore")
    unknown = [m for m in methods if m not in available and not (m == "emrestore" and args.model)]
    if unknown:
        raise SystemExit(
            f"emrestore evaluate: unknown methods {unknown} in --methods; "
            f"available: {list(available)} (and emrestore, with --model)"
        )
    if args.reference != "flow" and args.reference not in methods:
        raise SystemExit(
            f"emrestore evaluate: --reference {args.reference!r} is not among the methods {methods}"
        )
    rows, pairs = evaluate_to_disk(
        args.data,
        args.output,
        artifacts=args.artifacts,
        methods={m: available[m] for m in methods if m != "emrestore"},
        model=args.model,
        tta=args.tta,
        detail=args.detail,
        reference=args.reference,
        labels=args.labels,
        sections=selection(args),
        section_text=range_text(args.range),
        z_step=args.z_step,
        seed=args.seed,
        all_sections=args.all_sections,
        overwrite=args.overwrite,
        progress=not args.quiet,
    )
    print(evaluate.markdown(rows))
    if pairs:
        print(f"Paired by section, against {args.reference}:\n")
        print(evaluate.compare_markdown(pairs))
    print(
        f"-> {Path(args.output) / 'results.md'} (and .csv, .json"
        + (", comparison.md" if pairs else "")
        + ")"
    )
    return 0
