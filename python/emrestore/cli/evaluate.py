"""``emrestore evaluate``: score restoration methods on held-out sections of clean stacks."""

from __future__ import annotations

from pathlib import Path

from .options import QUIET, SEED, add_detail, add_model, add_selection, add_tta, selection


def add_parser(sub):
    p = sub.add_parser(
        "evaluate", parents=[SEED, QUIET],
        help="score restoration methods on held-out sections of clean stacks",
        description="Degrades every third interior section of each DATA stack with the simulator "
        "(fixed seeds), restores them with each method and writes a table of PSNR/SSIM (whole and "
        "in the artifact mask), VOI and adapted Rand error, and seconds per section, as Markdown, "
        "CSV and JSON (with each section's scores), and each method's paired difference from "
        "--reference.")
    p.add_argument("data", nargs="+", metavar="DATA", help="clean stacks (TIFF, .npy, folder of sections)")
    p.add_argument("--artifacts", default="ms,sff,sff-paper,sp",
                   help="comma-separated: ms, sff (realistic folds), sff-paper (published fold "
                   "model), sp")
    p.add_argument("--methods", default="degraded,substitution,linear,flow,inpaint")
    p.add_argument("--labels", help="ground-truth membrane masks for the one DATA stack (cells > 0)")
    add_model(p, "also score this interpolation model (method \"emrestore\")")
    add_tta(p, "with --model: ", " (16 passes)")
    add_detail(p, "with --model: ")
    p.add_argument("--all-sections", action="store_true",
                   help="score every interior section: three passes, the every-third pattern "
                   "shifted by 0, 1 and 2 sections (three times the sections; pass 0 is the default "
                   "protocol)")
    p.add_argument("--reference", default="flow", metavar="METHOD",
                   help="the method every other is compared with, section by section (mean "
                   "difference, 95%% bootstrap interval, sections better): comparison.md (default "
                   "flow, when scored)")
    add_selection(p, "each DATA stack")
    p.add_argument("-o", "--output", default="results", help="results folder")
    return p


def run(args) -> int:
    from .. import baselines, evaluate
    from ..workflows import evaluate_to_disk

    artifacts = [a for a in args.artifacts.split(",") if a]
    methods = [m for m in args.methods.split(",") if m]
    available = dict(baselines.METHODS)
    if (args.tta or args.detail is not None) and not args.model:
        raise SystemExit("emrestore evaluate: --tta and --detail go with --model")
    if args.model:
        from ..restoration import as_method

        available["emrestore"] = as_method(args.model, tta=args.tta, detail=args.detail)
        methods.append("emrestore")
    unknown = [m for m in methods if m not in available]
    if unknown:
        raise SystemExit(f"emrestore evaluate: unknown methods {unknown}; available: {list(available)}")
    if args.reference != "flow" and args.reference not in methods:
        raise SystemExit(f"emrestore evaluate: --reference {args.reference!r} is not among the "
                         f"methods {methods}")
    rows, pairs = evaluate_to_disk(
        args.data, args.output, artifacts=artifacts, methods={m: available[m] for m in methods},
        reference=args.reference, labels=args.labels, sections=selection("evaluate", args),
        section_text=args.range, z_step=args.z_step, seed=args.seed,
        all_sections=args.all_sections, progress=not args.quiet)
    print(evaluate.markdown(rows))
    if pairs:
        print(f"Paired by section, against {args.reference}:\n")
        print(evaluate.compare_markdown(pairs))
    print(f"-> {Path(args.output) / 'results.md'} (and .csv, .json"
          + (", comparison.md" if pairs else "") + ")")
    return 0
