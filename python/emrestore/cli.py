"""The ``emrestore`` command line."""

from __future__ import annotations

import argparse
import json

import numpy as np
import os
import statistics
import sys
import time
from pathlib import Path

from .volume import beside


def _median_seconds(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench(args: argparse.Namespace) -> int:
    """Times sepconv (forward, forward+backward) on built-in random data: extension vs reference."""
    import torch

    from . import ops, reference

    torch.manual_seed(0)
    info = ops.build_info()
    print(f"emrestore {info['version']} | backend {info['backend']} | torch {torch.__version__} | "
          f"{torch.get_num_threads()} threads | CUDA kernels {info['cuda']}")
    cases = [(1, 1, 512, 512, 51), (8, 1, 128, 128, 25)]
    if args.quick:
        cases = [(1, 1, 256, 256, 25)]
    rows = []
    for b, c, h, w, k in cases:
        x = torch.rand(b, c, h, w, requires_grad=True)
        v = torch.rand(b, k, h, w).softmax(1).requires_grad_()
        hz = torch.rand(b, k, h, w).softmax(1).requires_grad_()
        flops = 2 * k * k * b * c * h * w

        def fwd(fn):
            with torch.no_grad():
                fn(x, v, hz)

        def fwd_bwd(fn):
            out = fn(x, v, hz)
            torch.autograd.grad(out, (x, v, hz), torch.ones_like(out))

        for label, run in (("forward", fwd), ("forward+backward", fwd_bwd)):
            t_ext = _median_seconds(lambda: run(ops.sepconv), args.repeats)
            t_ref = _median_seconds(lambda: run(reference.sepconv_loop), max(1, args.repeats // 3))
            rows.append((f"{b}x{c}x{h}x{w} K={k}", label, t_ext, t_ref, flops))
    print("\n| case | pass | emrestore ms | reference loop ms | speed-up | emrestore GFLOP/s |")
    print("|---|---|---:|---:|---:|---:|")
    for case, label, t_ext, t_ref, flops in rows:
        gflops = flops / t_ext / 1e9 if label == "forward" else float("nan")
        print(f"| {case} | {label} | {t_ext * 1e3:.1f} | {t_ref * 1e3:.1f} | {t_ref / t_ext:.1f}x | "
              + (f"{gflops:.1f} |" if label == "forward" else "- |"))
    return 0


def _sections(src: Path) -> tuple[list[str] | None, str]:
    """For a folder of sections: their names and the format to write beside them ("tif" unless they
    are PNG); for a stack file: no names, "png"."""
    from .volume import path_format

    if path_format(src) != "folder" or not src.is_dir():
        return None, "png"
    from . import io

    files = io.section_files(src)
    return [f.stem for f in files], "png" if files and files[0].suffix.lower() == ".png" else "tif"


def simulate(args: argparse.Namespace) -> int:
    """Degrades a stack with the simulator; writes the stack, the masks and a JSON manifest."""
    import numpy as np

    from . import io
    from .simulate import simulate_stack

    src, out = Path(args.input), Path(args.output)
    masks_path = Path(args.masks) if args.masks else beside(out, "_masks")
    manifest_path = Path(args.manifest) if args.manifest else beside(out, "", ".json")
    targets = [out, masks_path, manifest_path] + ([Path(args.flows)] if args.flows else [])
    io.check_outputs(src, targets, args.overwrite)
    for name in ("ms", "sff", "sp"):
        if not 0 <= getattr(args, name) <= 1:
            raise SystemExit(f"emrestore simulate: --{name} is a per-section rate in [0, 1]; got {getattr(args, name)}")

    volume = io.read_stack(src)
    names, section_format = _sections(src)
    if volume.dtype.kind == "f":
        section_format = "tif"  # PNG holds no floats
    result = simulate_stack(volume, {"ms": args.ms, "sff": args.sff, "sp": args.sp}, seed=args.seed,
                            sff={"preset": args.preset}, return_flows=bool(args.flows), progress=not args.quiet)
    kw = {"overwrite": args.overwrite, "section_format": section_format, "names": names}
    io.write_stack(out, result.volume, **kw)
    io.write_stack(masks_path, result.masks, **kw)
    if args.flows:
        arrays = {f"{kind}_{z}": a[kind] for z, a in result.flows.items() for kind in a}
        tmp = Path(args.flows).with_name(f".{Path(args.flows).name}.tmp.npz")
        np.savez_compressed(tmp, **arrays)
        os.replace(tmp, args.flows)
    manifest = dict(result.manifest, input=str(src), output=str(out), masks=str(masks_path))
    if names is not None:
        manifest["section_names"] = names
    io.write_json(manifest_path, manifest)
    counts = ", ".join(f"{k} {v}" for k, v in result.manifest["counts"].items())
    print(f"{len(volume)} sections, degraded: {counts} -> {out}, masks {masks_path}, manifest {manifest_path}")
    return 0


def detect(args: argparse.Namespace) -> int:
    """Finds missing sections, folds and precipitates; writes the mask stack and a JSON report."""
    from . import io
    from .detect import detect_stack
    from .simulate import BITS

    src, masks_path = Path(args.input), Path(args.output)
    report_path = Path(args.report) if args.report else None
    io.check_outputs(src, [masks_path] + ([report_path] if report_path else []), args.overwrite)
    volume = io.read_stack(src)
    names, section_format = _sections(src)
    result = detect_stack(
        volume,
        ms={"min_similarity": args.ms_min_similarity},
        sff={"strip_threshold": args.sff_band_threshold, "min_darkness": args.sff_min_darkness},
        sp={"threshold": args.sp_threshold},
        sp_verdict=args.sp_verdict,
        progress=not args.quiet,
    )
    io.write_stack(masks_path, result.masks, overwrite=args.overwrite, names=names, section_format=section_format)
    counts = {k: sum(k in s["verdict"] for s in result.sections) for k in ("ok", "ms", "sff", "sp")}
    if report_path:
        report = {"input": str(src), "masks": str(masks_path), "mask_bits": dict(BITS),
                  "counts": counts, "sections": result.sections}
        if names is not None:
            for s, name in zip(report["sections"], names):
                s["name"] = name
        io.write_json(report_path, report)
    print(f"{len(volume)} sections: " + ", ".join(f"{k} {v}" for k, v in counts.items()) + f" -> masks {masks_path}"
          + (f", report {report_path}" if report_path else ""))
    return 0


def evaluate_command(args: argparse.Namespace) -> int:
    """Degrades held-out sections of each DATA stack, restores them with each method, scores them."""
    from . import baselines, evaluate

    artifacts = [a for a in args.artifacts.split(",") if a]
    methods = [m for m in args.methods.split(",") if m]
    available = dict(baselines.METHODS)
    if (args.tta or args.detail is not None) and not args.model:
        raise SystemExit("emrestore evaluate: --tta and --detail go with --model")
    if args.model:
        from .restoration import as_method

        available["emrestore"] = as_method(args.model, tta=args.tta, detail=args.detail)
        methods.append("emrestore")
    unknown = [m for m in methods if m not in available]
    if unknown:
        raise SystemExit(f"emrestore evaluate: unknown methods {unknown}; available: {list(available)}")
    if args.reference != "flow" and args.reference not in methods:
        raise SystemExit(f"emrestore evaluate: --reference {args.reference!r} is not among the methods {methods}")
    if args.labels and len(args.data) != 1:
        raise SystemExit("emrestore evaluate: --labels goes with exactly one DATA stack")
    rows = []
    for path in args.data:
        stack = _read_selected("evaluate", path, args)
        labels = None
        if args.labels:
            from scipy import ndimage

            raw = _read_selected("evaluate", args.labels, args)
            labels = np.stack([ndimage.label(s > 0)[0] for s in raw])  # membrane masks: cells are > 0
        p = Path(path)
        name = (f"{p.parent.name}/{p.name}" + (f" [{args.range}]" if args.range else "")
                + (f" (z-step {args.z_step})" if args.z_step > 1 else ""))
        rows += evaluate.evaluate(stack, artifacts=artifacts, methods={m: available[m] for m in methods},
                                  seed=args.seed, labels=labels, name=name, all_sections=args.all_sections,
                                  progress=not args.quiet)
    pairs = evaluate.compare(rows, args.reference) if args.reference in methods else []
    evaluate.write_results(rows, args.output, pairs)
    print(evaluate.markdown(rows))
    if pairs:
        print(f"Paired by section, against {args.reference}:\n")
        print(evaluate.compare_markdown(pairs))
    print(f"-> {Path(args.output) / 'results.md'} (and .csv, .json" + (", comparison.md" if pairs else "") + ")")
    return 0


def _section_range(text: str | None) -> slice:
    if not text:
        return slice(None)
    try:
        start, stop = (int(v) if v else None for v in text.split(":"))
    except ValueError:
        raise SystemExit(f"emrestore: --range expects START:STOP (either may be empty); got {text!r}") from None
    return slice(start, stop)


def _read_selected(command: str, path, args: argparse.Namespace, thin: bool = True) -> np.ndarray:
    """The stack at ``path``, cut to --range and (with ``thin``) thinned by --z-step; only those
    sections are read."""
    from .volume import open_volume

    if args.z_step < 1:
        raise SystemExit(f"emrestore {command}: --z-step must be >= 1; got {args.z_step}")
    volume = open_volume(path)
    picked = range(len(volume))[_section_range(args.range)][:: args.z_step if thin else 1]
    if len(picked) == 0:
        return np.empty((0,) + volume.shape[1:], volume.dtype)
    return volume[picked.start:picked.stop:picked.step]


def _add_selection(p: argparse.ArgumentParser, of: str,
                   z_help: str = "take every n-th section (e.g. 5 for isotropic data)") -> None:
    p.add_argument("--range", metavar="START:STOP", help=f"use only these sections of {of}")
    p.add_argument("--z-step", type=int, default=1, help=z_help)


def _detail_arg(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1]; got {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1]; got {text}")
    return value


def _add_detail(p: argparse.ArgumentParser, prefix: str = "") -> None:
    p.add_argument("--detail", type=_detail_arg, metavar="A",
                   help=f"{prefix}share of each restored section's fine detail taken from its aligned neighbours, "
                   "0 to 1 (default: the model's config.json, 0.3; 0: the network's output as it is)")


def fit_command(args: argparse.Namespace) -> int:
    """Trains the interpolation network on IN (or the built-in phantom) and saves it to -o."""
    from .models import InterpolationConfig, fit

    if (args.input is None) == (not args.phantom):
        raise SystemExit("emrestore fit: give a stack IN or --phantom (not both)")
    if args.phantom:
        from .phantom import make_phantom

        stack = make_phantom(PHANTOM_SHAPE, seed=args.seed).raw
    else:
        stack = _read_selected("fit", args.input, args, thin=False)  # every offset trains
    out = Path(args.output)
    if out.exists() and any(out.iterdir()) and not (args.resume or args.overwrite):
        raise SystemExit(f"emrestore fit: {out} is not empty; pass --resume to continue it or --overwrite")
    try:
        widths = tuple(int(w) for w in args.widths.split(","))
    except ValueError:
        raise SystemExit(f"emrestore fit: --widths expects comma-separated integers; got {args.widths!r}") from None
    config = InterpolationConfig(kernel_size=args.kernel_size, widths=widths, align=args.align,
                                 outer_flow=not args.no_outer_flow, flow_views=args.flow_views)
    result = fit(stack, out, minutes=args.minutes, iterations=args.iterations, config=config,
                 batch_size=args.batch_size, crop=args.crop, lr=args.lr, loss=args.loss,
                 ssim_weight=args.ssim_weight, membrane_weight=args.membrane_weight,
                 max_gap=args.max_gap, z_step=args.z_step, keep=args.keep,
                 detect=not (args.no_detect or args.phantom), seed=args.seed, device=args.device,
                 workers=args.workers, resume=args.resume, progress=not args.quiet)
    r = result.record
    best, kept = r.get("best"), r["kept"]
    val = "" if best is None else (f", validation PSNR {r['val_psnr']:.2f} dB at the end, best "
                                   f"{best['val_psnr']:.2f} dB at iteration {best['iteration']}")
    print(f"fit: {r['iterations']} iterations in {r['seconds']:.0f} s{val}; kept the {kept['weights']} weights "
          f"(iteration {kept['iteration']}) -> {out}")
    for restart in r.get("restarts", []):
        print(f"fit: diverged at iteration {restart['iteration']} (validation {restart['val_psnr']:.2f} dB); "
              f"went on from iteration {restart['from']} at learning rate {restart['lr']:.2g}")
    return 0


PHANTOM_SHAPE = (32, 384, 384)


def _triple_arg(text: str, option: str) -> tuple[int, int, int]:
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 3:
        raise SystemExit(f"emrestore restore: {option} expects three integers Z,Y,X; got {text!r}")
    return values


def _part_arg(text: str) -> tuple[int, int]:
    try:
        i, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise SystemExit(f"emrestore restore: --part expects I/N (job I of N, from 0); got {text!r}") from None
    if not (n >= 1 and 0 <= i < n):
        raise SystemExit(f"emrestore restore: --part I/N needs 0 <= I < N; got {text!r}")
    return i, n


def restore_command(args: argparse.Namespace) -> int:
    """Finds and restores the missing sections of IN; writes OUT, the masks and a JSON report."""
    from . import io, volume
    from .restoration import restore

    src, out = Path(args.input), Path(args.output)
    masks_path = Path(args.masks) if args.masks else beside(out, "_masks")
    report_path = Path(args.report) if args.report else beside(out, "_report", ".json")
    blockwise = args.block is not None or args.halo is not None or args.part is not None
    if blockwise or volume.is_chunked(out):
        if not (volume.is_chunked(out) and volume.is_chunked(masks_path)):
            raise SystemExit("emrestore restore: block-wise restoration (--block, --halo, --part) writes zarr "
                             f"(OUT.zarr) or HDF5 (OUT.h5) outputs; got {out} and masks {masks_path}")
        return _restore_blocks(args, src, out, masks_path, report_path)
    io.check_outputs(src, [out, masks_path, report_path], args.overwrite)
    stack = io.read_stack(src)
    names, section_format = _sections(src)
    result = restore(stack, model=args.model, tile=args.tile or None, device=args.device, tta=args.tta,
                     detail=args.detail, progress=not args.quiet)
    kw = {"overwrite": args.overwrite, "names": names}
    io.write_stack(out, result.stack, section_format="tif" if stack.dtype.kind == "f" else section_format, **kw)
    io.write_stack(masks_path, result.masks, section_format=section_format, **kw)
    io.write_json(report_path, result.report)
    done = result.report["restored"]
    print(f"restore: {sum(r['action'] != 'none' for r in done)} missing section(s) restored of "
          f"{len(stack)}; {len(result.report['left_untouched'])} section(s) with folds or precipitates "
          f"left as they are -> {out}, masks {masks_path}, report {report_path}")
    return 0


def _restore_blocks(args, src: Path, out: Path, masks_path: Path, report_path: Path) -> int:
    from .blockwise import DEFAULT_BLOCK, DEFAULT_HALO, restore_volume

    block = _triple_arg(args.block, "--block") if args.block else DEFAULT_BLOCK
    halo = _triple_arg(args.halo, "--halo") if args.halo else DEFAULT_HALO
    part = _part_arg(args.part) if args.part else None
    result = restore_volume(src, out, masks=masks_path, report=report_path, block=block, halo=halo, part=part,
                            model=args.model, tile=args.tile or None, device=args.device, tta=args.tta,
                            detail=args.detail, overwrite=args.overwrite, progress=not args.quiet)
    if part is not None:
        print(f"restore: part {part[0]}/{part[1]}: {result['restored_now']} block(s) restored now, "
              f"{result['done']} of {result['blocks']} done in all; when every part has finished, run the same "
              f"command without --part to move the outputs into place")
        return 0
    sections = {r["index"] for r in result["restored"] if r["action"] != "none"}
    print(f"restore: {len(sections)} section(s) with missing pixels restored of {result['sections']}, in "
          f"{result['blocks']} block(s); {len({r['index'] for r in result['left_untouched']})} section(s) with "
          f"folds or precipitates left as they are -> {out}, masks {masks_path}, report {report_path}")
    return 0


def demo_command(args: argparse.Namespace) -> int:
    from . import demo

    report = demo.run(args.output, model=args.model, progress=not args.quiet)
    print(demo.summary(report))
    print(f"-> {Path(args.output) / 'panel.png'} (clean | missing | linear | flow | emrestore), "
          f"{Path(args.output) / 'report.json'}")
    return 0


def info(args: argparse.Namespace) -> int:
    from . import ops

    print(json.dumps(ops.build_info(), indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="emrestore", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("info", help="what this installation contains (extension, CUDA, threads)")
    p.set_defaults(func=info)
    p = sub.add_parser("bench", help="time the sepconv op against its pure-PyTorch reference")
    p.add_argument("--repeats", type=int, default=5, help="timed runs per measurement (median)")
    p.add_argument("--quick", action="store_true", help="one small case, for a smoke test")
    p.set_defaults(func=bench)
    p = sub.add_parser("simulate", help="degrade a clean stack with missing sections, folds and precipitates",
                       description="Degrades IN (multi-page TIFF, .npy, or a folder of PNG/TIFF sections) "
                       "and writes OUT in the same kind of format, a mask stack (bits: ms 1, sff 2, sp 4) "
                       "and a JSON manifest of every artifact. Deterministic for a seed; IN is never modified.")
    p.add_argument("input", metavar="IN")
    p.add_argument("output", metavar="OUT")
    p.add_argument("--ms", type=float, default=0.044, help="rate of missing sections (default 0.044)")
    p.add_argument("--sff", type=float, default=0.032, help="rate of support-film folds (default 0.032)")
    p.add_argument("--sp", type=float, default=0.026, help="rate of staining precipitates (default 0.026)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--preset", choices=("realistic", "paper"), default="realistic", help="fold model")
    p.add_argument("--masks", help="mask stack path (default: OUT with _masks)")
    p.add_argument("--manifest", help="JSON manifest path (default: OUT with .json)")
    p.add_argument("--flows", help="also write the folds' flow, inverse flow and lost pixels to this .npz")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=simulate)
    p = sub.add_parser("detect", help="find missing sections, folds and precipitates in a stack",
                       description="Reads IN (multi-page TIFF, .npy, or a folder of PNG/TIFF sections) and "
                       "writes a mask stack (bits: ms 1, sff 2, sp 4) and optionally a JSON report with a "
                       "verdict per section and the fold geometry. IN is never modified.")
    p.add_argument("input", metavar="IN")
    p.add_argument("-o", "--output", required=True, metavar="MASKS", help="mask stack to write")
    p.add_argument("--report", help="JSON report path")
    p.add_argument("--ms-min-similarity", type=float, default=0.12,
                   help="coarse correlation below which a section resembles no neighbour (default 0.12)")
    p.add_argument("--sff-band-threshold", type=float, default=0.3,
                   help="darkness (1 - band/surround, averaged along the fold) marking a fold band "
                   "(default 0.3)")
    p.add_argument("--sff-min-darkness", type=float, default=0.35,
                   help="mean band darkness a fold needs along its length (default 0.35)")
    p.add_argument("--sp-threshold", type=float, default=0.65,
                   help="darkness against the local background marking precipitates (default 0.65)")
    p.add_argument("--sp-verdict", type=float, default=0.85,
                   help="core darkness a blob needs for the section to be called sp (default 0.85)")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=detect)
    p = sub.add_parser("evaluate", help="score restoration methods on held-out sections of clean stacks",
                       description="Degrades every third interior section of each DATA stack with the "
                       "simulator (fixed seeds), restores them with each method and writes a table of "
                       "PSNR/SSIM (whole and in the artifact mask), VOI and adapted Rand error, and "
                       "seconds per section, as Markdown, CSV and JSON (with each section's scores), and "
                       "each method's paired difference from --reference.")
    p.add_argument("data", nargs="+", metavar="DATA", help="clean stacks (TIFF, .npy, folder of sections)")
    p.add_argument("--artifacts", default="ms,sff,sff-paper,sp",
                   help="comma-separated: ms, sff (realistic folds), sff-paper (published fold model), sp")
    p.add_argument("--methods", default="degraded,substitution,linear,flow,inpaint")
    p.add_argument("--labels", help="ground-truth membrane masks for the one DATA stack (cells > 0)")
    p.add_argument("--model", metavar="DIR", help="also score this interpolation model (method \"emrestore\")")
    p.add_argument("--tta", action="store_true",
                   help="with --model: average over rotations, mirror images and both orders (16 passes)")
    _add_detail(p, "with --model: ")
    p.add_argument("--all-sections", action="store_true",
                   help="score every interior section: three passes, the every-third pattern shifted by "
                   "0, 1 and 2 sections (three times the sections; pass 0 is the default protocol)")
    p.add_argument("--reference", default="flow", metavar="METHOD",
                   help="the method every other is compared with, section by section (mean difference, 95%% "
                   "bootstrap interval, sections better): comparison.md (default flow, when scored)")
    _add_selection(p, "each DATA stack")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("-o", "--output", default="results", help="results folder")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=evaluate_command)
    p = sub.add_parser("fit", help="train the missing-section interpolation network on your own stack",
                       description="Self-supervised: every clean section between clean neighbours is a "
                       "training target (sections the detector flags are left out). Writes -o DIR: "
                       "model.safetensors (the weights kept: see --keep), config.json (architecture, "
                       "normalisation, training record), best.safetensors (the best-validated weights), "
                       "last.safetensors and optimizer.pt (for --resume). Uses a CUDA GPU when there is one.")
    p.add_argument("input", metavar="IN", nargs="?", help="stack (TIFF, .npy, folder of sections)")
    p.add_argument("--phantom", action="store_true",
                   help="train on the built-in phantom instead (artifact-free: no detection)")
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="model folder")
    p.add_argument("--minutes", type=float, default=30.0, help="wall-clock budget (default 30)")
    p.add_argument("--iterations", type=int, help="step budget (with --minutes: whichever ends first)")
    _add_selection(p, "IN", z_help="train for sections n apart, as `evaluate --z-step n` takes them, on all "
                   "sections (every offset), not only every n-th (e.g. 5 for isotropic data)")
    p.add_argument("--workers", type=int, help="threads drawing training batches (default: 1 on the CPU, "
                   "up to 8 beside a GPU)")
    p.add_argument("--kernel-size", type=int, default=21, help="taps per 1-D kernel (default 21)")
    p.add_argument("--widths", default="16,32,64,96", help="U-Net channels per level (default 16,32,64,96)")
    p.add_argument("--align", choices=("flow", "none"), default="flow",
                   help="align the neighbours by optical flow before the kernels (default), or not")
    p.add_argument("--no-outer-flow", action="store_true",
                   help="measure each neighbour's motion against the other neighbour only, not also against "
                        "the clean section beyond it")
    p.add_argument("--flow-views", type=int, choices=(1, 2, 4, 8), default=8,
                   help="average each optical flow over this many of the section's turns and mirror images "
                        "(default 8; 1: one flow, the cheapest)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--crop", type=int, default=128, help="training crop side in pixels (default 128)")
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--loss", choices=("l1", "mse", "l1+grad", "mse+ssim"), default="l1+grad",
                   help="l1 plus an L1 term on pixel gradients (l1+grad, default), l1, mse, or mse plus an "
                   "SSIM term (mse+ssim: sharper membranes, better segmentation)")
    p.add_argument("--membrane-weight", type=float, default=0.0,
                   help="weight of a term that keeps the membranes' soft mask (default 0: off)")
    p.add_argument("--ssim-weight", type=float, default=0.5,
                   help="weight of the (1 - SSIM) term with --loss mse+ssim (default 0.5)")
    p.add_argument("--keep", choices=("last", "best"), default="last",
                   help="weights to keep: those at the end of the schedule (default; the best-validated "
                        "ones instead if the last validate more than 0.25 dB worse), or the best-validated")
    p.add_argument("--max-gap", type=int, default=3, help="largest run of missing sections trained for")
    p.add_argument("--no-detect", action="store_true", help="use every section (skip artifact detection)")
    p.add_argument("--device", help="torch device (default: cuda if available)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resume", action="store_true", help="continue the model in DIR for the given budget")
    p.add_argument("--overwrite", action="store_true", help="start over in a non-empty DIR")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=fit_command)
    p = sub.add_parser("restore", help="find and fill in missing sections",
                       description="Detects missing sections (whole and partial) in IN and fills them in "
                       "with the interpolation network from the nearest intact sections. Writes OUT (the "
                       "input's format and dtype), a mask stack (bits: ms 1, sff 2, sp 4) and a JSON report "
                       "of every change. Folds and precipitates are reported and left as they are. IN is "
                       "never modified.")
    p.add_argument("input", metavar="IN")
    p.add_argument("-o", "--output", required=True, metavar="OUT")
    p.add_argument("--model", metavar="DIR", help="model folder from `emrestore fit` (default: the shipped model)")
    p.add_argument("--masks", help="mask stack path (default: OUT with _masks)")
    p.add_argument("--report", help="JSON report path (default: OUT with _report.json)")
    p.add_argument("--tile", type=int, default=512, help="inference tile side, 0 for whole sections (default 512)")
    p.add_argument("--tta", action="store_true", help="average over rotations, mirror images and both orders of "
                   "the neighbours: 16 passes per section, about 0.1-0.2 dB more on real EM")
    _add_detail(p)
    p.add_argument("--device", help="torch device (default: cuda if available)")
    p.add_argument("--block", metavar="Z,Y,X", help="restore block by block, each read with a halo, for volumes "
                   "larger than memory (default for zarr/HDF5 outputs: 64,2048,2048); OUT must be zarr or HDF5")
    p.add_argument("--halo", metavar="Z,Y,X", help="sections, rows and columns read around each block "
                   "(default 10,128,128; grown along z where a run of missing sections needs it)")
    p.add_argument("--part", metavar="I/N", help="do job I's share of the blocks (every N-th from the I-th, I "
                   "from 0) so that N jobs share the volume; then run once without --part to finish")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=restore_command)
    p = sub.add_parser("demo", help="simulate, detect and restore missing sections on a built-in phantom",
                       description="Simulates missing sections on a built-in phantom stack, detects and "
                       "restores them, prints PSNR/SSIM against the baselines and writes a before/after panel.")
    p.add_argument("-o", "--output", default="emrestore-demo", help="folder for panel.png and report.json")
    p.add_argument("--model", metavar="DIR", help="model folder (default: the shipped model)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=demo_command)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (FileNotFoundError, FileExistsError, ValueError, TypeError) as e:  # bad input: the message, not a traceback
        raise SystemExit(f"emrestore {args.command}: {e}") from e


if __name__ == "__main__":
    sys.exit(main())
