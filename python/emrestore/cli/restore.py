"""``emrestore restore``: find and fill in missing sections, in memory or block by block."""

from __future__ import annotations

import sys
from pathlib import Path

from ..io.paths import beside
from .options import (
    DEVICE,
    MIN_TILE,
    OVERWRITE,
    QUIET,
    add_detail,
    add_model,
    add_tta,
    command_parser,
    part,
    positive_int,
    scheduler,
    tile_side,
    triple,
)


def add_parser(sub):
    p = command_parser(
        sub,
        "restore",
        parents=[DEVICE, OVERWRITE, QUIET],
        help="find and fill in missing sections",
        description="Detects missing sections (whole and partial) in IN, or takes them from "
        "--masks-from, and fills them in with the interpolation network from the nearest intact "
        "sections. Writes OUT (the input's format and dtype), a mask stack (bits: ms 1, sff 2, "
        "sp 4) and a JSON report of every change. Folds and precipitates are reported and left "
        "as they are. IN is never modified.",
    )
    p.add_argument("input", metavar="IN", help="stack to restore")
    p.add_argument(
        "-o",
        "--output",
        required=True,
        metavar="OUT",
        help="restored stack to write (a multi-page TIFF, .npy, a folder of sections, "
        "or zarr/HDF5 to restore block by block)",
    )
    add_model(p, "model folder from `emrestore fit` (default: the shipped model)")
    p.add_argument("--masks", help="mask stack to write (default: OUT with _masks)")
    p.add_argument(
        "--masks-from",
        metavar="MASKS",
        help="restore with the mask stack MASKS (bits: ms 1, sff 2, sp 4; e.g. from `emrestore "
        "detect` or `emrestore simulate`, in any format IN may have) instead of detecting: it "
        "must have IN's shape and an integer dtype; --masks gets a copy of it",
    )
    p.add_argument("--report", help="JSON report path (default: OUT with _report.json)")
    p.add_argument(
        "--tile",
        type=tile_side,
        default=512,
        metavar="PIXELS",
        help=f"inference tile side: 0 for whole sections, else at least {MIN_TILE} "
        "(each tile is read with a halo of that many pixels)",
    )
    add_tta(p, tail=" of the neighbours: 16 passes per section, about 0.1-0.2 dB more on real EM")
    add_detail(p)
    p.add_argument(
        "--block",
        metavar="Z,Y,X",
        help="restore block by block, each read with a halo, for volumes larger than "
        "memory (default for zarr/HDF5 outputs: 64,2048,2048); OUT must be zarr or HDF5",
    )
    p.add_argument(
        "--halo",
        metavar="Z,Y,X",
        help="sections, rows and columns read around each block (default: 10,128,128; "
        "grown along z where a run of missing sections needs it)",
    )
    p.add_argument(
        "--part",
        metavar="I/N",
        help="do job I's share of the blocks (every N-th from the I-th, I from 0) so "
        "that N jobs share the volume; then run once without --part to finish",
    )
    p.add_argument(
        "--scheduler",
        type=scheduler,
        metavar="local|ADDRESS",
        help="restore the blocks on Dask distributed: 'local' for worker processes on this "
        "machine, or a running scheduler's address (tcp://HOST:PORT) whose workers see IN, OUT "
        "and the model at the same paths; OUT must be zarr",
    )
    p.add_argument(
        "--workers",
        type=positive_int,
        metavar="N",
        help="worker processes of --scheduler local (default: one per core, fewer where "
        "memory is short for a block each)",
    )
    return p


def run(args) -> int:
    block = triple(args.block, "--block", 1) if args.block else None
    halo = triple(args.halo, "--halo", 0) if args.halo else None
    job = part(args.part) if args.part else None
    if args.workers is not None and args.scheduler != "local":
        raise SystemExit(
            "emrestore restore: --workers N sizes a local cluster: add --scheduler local"
        )
    try:
        report = _restore(args, block, halo, job)
    except RuntimeError as e:
        from ..engines import BlocksFailed

        if not isinstance(e, BlocksFailed):  # blocks that failed on the workers, named
            raise
        raise SystemExit(f"emrestore restore: {e}") from e
    out = Path(args.output)
    masks = Path(args.masks) if args.masks else beside(out, "_masks")
    report_path = Path(args.report) if args.report else beside(out, "_report", ".json")
    for warning in report.get("warnings", []):
        print(f"emrestore restore: warning: {warning}", file=sys.stderr)
    if job:
        print(
            f"restore: part {job[0]}/{job[1]}: {report['restored_now']} block(s) restored now, "
            f"{report['done']} of {report['blocks']} done in all; when every part has finished, "
            f"run the same command without --part to move the outputs into place"
        )
        return 0
    untouched = report["left_untouched"]
    if "blocks" in report:  # block by block
        sections = {r["index"] for r in report["restored"] if r["action"] != "none"}
        print(f"restore: changed {_changed(report)}")
        runs = report.get("block_runs", {})
        if runs:  # on Dask: the blocks of this run, where and in how many tries
            retried = sorted(b for b, r in runs.items() if r["attempts"] > 1)
            print(
                f"restore: {len(runs)} block(s) on {len({r['worker'] for r in runs.values()})} "
                f"worker(s), {sum(r['seconds'] for r in runs.values()):.1f} s of work"
                + (f"; retried {', '.join(retried)}" if retried else "")
            )
        print(
            f"restore: {len(sections)} section(s) with missing pixels restored of "
            f"{report['sections']}, in {report['blocks']} block(s); "
            f"{len({r['index'] for r in untouched})} section(s) with folds or precipitates left "
            f"as they are -> {out}, masks {masks}, report {report_path}"
        )
        return 0
    restored = sum(r["action"] != "none" for r in report["restored"])
    print(f"restore: changed {_changed(report)}")
    print(
        f"restore: {restored} missing section(s) restored of {report['sections']}; "
        f"{len(untouched)} section(s) with folds or precipitates left as they are -> {out}, "
        f"masks {masks}, report {report_path}"
    )
    return 0


def _changed(report: dict, shown: int = 20) -> str:
    """The sections changed, with the share of their pixels: "3 (100.0%), 7 (4.2%)"."""
    from ..restoration import changed_shares

    changed = [(z, c) for z, c in changed_shares(report["restored"], report["shape"]).items() if c]
    if not changed:
        return "no section"
    text = ", ".join(f"{z} ({100 * c:.1f}%)" for z, c in changed[:shown])
    return text + (
        f" and {len(changed) - shown} more (see the report)" if len(changed) > shown else ""
    )


def _restore(args, block, halo, job) -> dict:
    from ..workflows import restore_to_disk

    return restore_to_disk(
        args.input,
        args.output,
        masks=args.masks,
        masks_from=args.masks_from,
        report=args.report,
        block=block,
        halo=halo,
        part=job,
        model=args.model,
        tile=args.tile or None,
        device=args.device,
        tta=args.tta,
        detail=args.detail,
        overwrite=args.overwrite,
        progress=not args.quiet,
        scheduler=args.scheduler,
        workers=args.workers,
    )
