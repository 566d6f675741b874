"""``emrestore fit``: train the interpolation network on the user's own stack."""

from __future__ import annotations

from .options import (
    DEVICE,
    MIN_CROP,
    QUIET,
    SEED,
    add_selection,
    command_parser,
    crop_side,
    int_list,
    non_negative_float,
    positive_float,
    positive_int,
    selection,
)


def add_parser(sub):
    p = command_parser(
        sub,
        "fit",
        parents=[SEED, DEVICE, QUIET],
        help="train the missing-section interpolation network on your own stack",
        description="Self-supervised: every clean section between clean neighbours is a training "
        "target (sections the detector flags are left out). Writes -o DIR: model.safetensors (the "
        "weights kept: see --keep), config.json (architecture, normalisation, training record), "
        "best.safetensors (the best-validated weights), last.safetensors and optimizer.pt (for "
        "--resume). Uses a CUDA GPU when there is one.",
    )
    p.add_argument("input", metavar="IN", nargs="?", help="stack (TIFF, .npy, folder of sections)")
    p.add_argument(
        "--phantom",
        action="store_true",
        help="train on the built-in phantom instead (artifact-free: no detection)",
    )
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="model folder")
    p.add_argument("--minutes", type=positive_float, default=30.0, help="wall-clock budget, > 0")
    p.add_argument(
        "--iterations",
        type=positive_int,
        metavar="N",
        help="step budget, >= 1 (with --minutes: whichever ends first)",
    )
    add_selection(
        p,
        "IN",
        z_help="train for sections n apart, as `evaluate --z-step n` takes "
        "them, on all sections (every offset), not only every n-th (e.g. 5 for "
        "isotropic data)",
    )
    p.add_argument(
        "--workers",
        type=positive_int,
        metavar="N",
        help="threads drawing training batches, >= 1 (default: 1 on the CPU, up to 8 beside a GPU)",
    )
    p.add_argument(
        "--kernel-size",
        type=positive_int,
        default=21,
        metavar="K",
        help="taps per 1-D kernel, >= 1",
    )
    p.add_argument(
        "--widths",
        type=int_list,
        default="16,32,64,96",
        metavar="C,C,...",
        help="U-Net channels per level (each level after the first halves the "
        "resolution, so --crop must be a multiple of 2 ** (levels - 1))",
    )
    p.add_argument(
        "--align",
        choices=("flow", "none"),
        default="flow",
        help="align the neighbours by optical flow before the kernels, or not",
    )
    p.add_argument(
        "--no-outer-flow",
        action="store_true",
        help="measure each neighbour's motion against the other neighbour only, not "
        "also against the clean section beyond it",
    )
    p.add_argument(
        "--flow-views",
        type=int,
        choices=(1, 2, 4, 8),
        default=8,
        help="average each optical flow over this many of the section's turns and "
        "mirror images (1: one flow, the cheapest)",
    )
    p.add_argument(
        "--batch-size", type=positive_int, default=8, metavar="N", help="training triplets per step"
    )
    p.add_argument(
        "--crop",
        type=crop_side,
        metavar="PIXELS",
        help=f"training crop side in pixels, at least {MIN_CROP} and at most the "
        "sections' (default: 128, or the sections' side if smaller)",
    )
    p.add_argument(
        "--lr",
        type=positive_float,
        default=2e-3,
        help="peak learning rate (AdamW, warm-up then cosine decay), > 0",
    )
    p.add_argument(
        "--loss",
        choices=("l1", "mse", "l1+grad", "mse+ssim"),
        default="l1+grad",
        help="l1 plus an L1 term on pixel gradients (l1+grad), l1, mse, or mse plus an "
        "SSIM term (mse+ssim: sharper membranes, better segmentation)",
    )
    p.add_argument(
        "--membrane-weight",
        type=non_negative_float,
        default=0.0,
        metavar="W",
        help="weight of a term that keeps the membranes' soft mask, >= 0 (0: off)",
    )
    p.add_argument(
        "--ssim-weight",
        type=non_negative_float,
        default=0.5,
        metavar="W",
        help="weight of the (1 - SSIM) term with --loss mse+ssim, >= 0",
    )
    p.add_argument(
        "--keep",
        choices=("last", "best"),
        default="last",
        help="weights to keep: last, those at the end of the schedule (the "
        "best-validated ones instead if the last validate more than 0.25 dB worse); "
        "best, the best-validated",
    )
    p.add_argument(
        "--max-gap",
        type=positive_int,
        default=3,
        metavar="N",
        help="largest run of missing sections trained for, >= 1",
    )
    p.add_argument(
        "--no-detect", action="store_true", help="use every section (skip artifact detection)"
    )
    p.add_argument(
        "--resume", action="store_true", help="continue the model in DIR for the given budget"
    )
    p.add_argument("--overwrite", action="store_true", help="start over in a non-empty DIR")
    return p


def run(args) -> int:
    from ..models import InterpolationConfig
    from ..workflows import fit_to_disk

    if (args.input is None) == (not args.phantom):
        raise SystemExit("emrestore fit: give a stack IN or --phantom (not both)")
    config = InterpolationConfig(
        kernel_size=args.kernel_size,
        widths=args.widths,
        align=args.align,
        outer_flow=not args.no_outer_flow,
        flow_views=args.flow_views,
    )
    result = fit_to_disk(
        args.input,
        args.output,
        phantom=args.phantom,
        sections=selection(args),
        config=config,
        resume=args.resume,
        overwrite=args.overwrite,
        crop=args.crop,
        minutes=args.minutes,
        iterations=args.iterations,
        batch_size=args.batch_size,
        lr=args.lr,
        loss=args.loss,
        ssim_weight=args.ssim_weight,
        membrane_weight=args.membrane_weight,
        max_gap=args.max_gap,
        z_step=args.z_step,
        keep=args.keep,
        detect=not (args.no_detect or args.phantom),
        seed=args.seed,
        device=args.device,
        workers=args.workers,
        progress=not args.quiet,
    )
    r = result.record
    best, kept = r.get("best"), r["kept"]
    val = (
        ""
        if best is None
        else (
            f", validation PSNR {r['val_psnr']:.2f} dB at the end, best "
            f"{best['val_psnr']:.2f} dB at iteration {best['iteration']}"
        )
    )
    print(
        f"fit: {r['iterations']} iterations in {r['seconds']:.0f} s{val}; kept the "
        f"{kept['weights']} weights (iteration {kept['iteration']}) -> {result.folder}"
    )
    for restart in r.get("restarts", []):
        print(
            f"fit: diverged at iteration {restart['iteration']} (validation "
            f"{restart['val_psnr']:.2f} dB); went on from iteration {restart['from']} at "
            f"learning rate {restart['lr']:.2g}"
        )
    return 0
