"""``restore_volume``: ``restore`` for volumes larger than memory, one block at a time.

The volume is cut into blocks (sections x rows x columns). Each block is read with a halo, detected
and restored in memory like a small stack, and only its core is written to a chunked output (zarr
or HDF5) whose chunks tile the blocks, so no two blocks write the same chunk. A block's halo grows
along z until every missing section of its core has the same sources it would have in the whole
volume: the nearest intact sections on either side and, for a flow-guided model, the sections
beyond them. Along y and x the halo gives the optical flow and the network their context.

Runs are resumable and can be split over jobs: a finished block leaves a record in a folder beside
the report, and a rerun skips it; ``part=(i, n)`` does every n-th block from the i-th, so n jobs
(on a cluster, or several processes on one machine) share a volume. The outputs are written under
staging names and move to their own names only when every block is done, by a run without
``part``: an output under its final name is always complete.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from itertools import product
from pathlib import Path

import numpy as np

from .io import check_outputs, write_json
from .volume import DTYPES, ChunkedOutput, beside, open_volume, path_format, remove, split_path, staging_path

DEFAULT_BLOCK = (64, 2048, 2048)
# z: the sources of runs of up to three missing sections and the sections beyond them, with room
# for their own verdicts; grown further where a block needs it. y, x: flow and network context.
DEFAULT_HALO = (10, 128, 128)


def _triple(value, name: str) -> tuple[int, int, int]:
    value = tuple(int(v) for v in value)
    if len(value) != 3:
        raise ValueError(f"{name} must be three integers (sections, rows, columns); got {value}")
    return value


def blocks_folder(report) -> Path:
    """The folder of finished blocks' records beside ``report``."""
    report = Path(report)
    return report.with_name(f".{report.name}.blocks")


CHUNK_LIMIT = (8, 512, 512)  # at most 2 MiB of uint8 per chunk: blocks are far larger than codecs like


def output_chunks(block, shape) -> tuple[int, int, int]:
    """The outputs' chunks: along each axis the largest divisor of the block's side up to
    ``CHUNK_LIMIT``, so that chunks tile every block and no two blocks share one."""
    chunks = []
    for b, n, limit in zip(block, shape, CHUNK_LIMIT):
        b = min(b, n)
        chunks.append(max(d for d in range(1, min(b, limit) + 1) if b % d == 0))
    return tuple(chunks)


def _grid(shape, block):
    starts = [range(0, n, b) for n, b in zip(shape, block)]
    return [tuple(s) for s in product(*starts)]


def _block_id(origin) -> str:
    return "z{}_y{}_x{}".format(*origin)


def _needed_window(records, lo, hi, z_count, outer_flow: bool) -> tuple[int, int]:
    """The z range [lo, hi) that gives each restored section of the core its whole-volume sources."""
    need_lo, need_hi = lo, hi
    for r in records:
        z = r["index"]
        if r["action"] == "interpolated":
            below, above = r["sources"]
            reach = (above - below) if outer_flow else 0  # the sections beyond are searched this far
            need_lo, need_hi = min(need_lo, below - reach), max(need_hi, above + reach + 1)
        else:  # copied: one side had no intact section inside the window; none: neither had
            lacks_above = r["action"] == "none" or r["sources"][0] < z
            lacks_below = r["action"] == "none" or r["sources"][0] > z
            # One step further (the caller adds the halo), unless the volume ends there.
            if lacks_above and hi < z_count:
                need_hi = max(need_hi, hi + 1)
            if lacks_below and lo > 0:
                need_lo = min(need_lo, lo - 1)
    return max(0, need_lo), min(z_count, need_hi)


def _restore_block(volume, origin, block, halo, model, restore_kw):
    """Restores one block; returns its core (stack, masks) and its JSON record."""
    from .restoration import restore

    z_count, height, width = volume.shape
    (z0, y0, x0), (bz, by, bx), (hz, hy, hx) = origin, block, halo
    z1, y1, x1 = min(z0 + bz, z_count), min(y0 + by, height), min(x0 + bx, width)
    ylo, yhi, xlo, xhi = max(0, y0 - hy), min(height, y1 + hy), max(0, x0 - hx), min(width, x1 + hx)
    lo, hi = max(0, z0 - hz), min(z_count, z1 + hz)
    while hi - lo < 3:  # restore reads at least three sections (the volume has them)
        lo, hi = max(0, lo - 1), min(z_count, hi + 1)
    while True:
        window = volume[lo:hi, ylo:yhi, xlo:xhi]
        result = restore(window, model=model, **restore_kw)
        core = [dict(r, index=r["index"] + lo) for r in result.report["restored"] if z0 <= r["index"] + lo < z1]
        for r in core:
            for key in ("sources", "motion_from"):
                if key in r:
                    r[key] = [None if s is None else s + lo for s in r[key]]
        need_lo, need_hi = _needed_window(core, lo, hi, z_count, model.config.uses_outer_flow)
        if need_lo >= lo and need_hi <= hi:
            break
        # Grow by the halo beyond what is needed, so that the new edge sections have neighbours to
        # be judged by.
        lo, hi = max(0, min(lo, need_lo - hz)), min(z_count, max(hi, need_hi + hz))
    cut = (slice(z0 - lo, z1 - lo), slice(y0 - ylo, y1 - ylo), slice(x0 - xlo, x1 - xlo))
    region = [y0, y1, x0, x1]
    for r in core:
        r["region"] = region
    untouched = [dict(r, index=r["index"] + lo, region=region) for r in result.report["left_untouched"]
                 if z0 <= r["index"] + lo < z1]
    detection = [dict(r, index=r["index"] + lo, region=region) for r in result.report.get("detection", [])
                 if z0 <= r["index"] + lo < z1 and r["verdict"] != ["ok"]]
    record = {"block": _block_id(origin), "origin": [z0, y0, x0], "end": [z1, y1, x1],
              "window": [lo, hi, ylo, yhi, xlo, xhi], "restored": core, "left_untouched": untouched,
              "detection": detection}
    # Copies: the window's arrays are freed here, before the next block reads its own.
    return result.stack[cut].copy(), result.masks[cut].copy(), record


def _fingerprint(model) -> str:
    """A digest of the model's weights: a resumed run must restore with the same ones."""
    digest = hashlib.sha1()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def restore_volume(src, out, *, masks=None, report=None, block=DEFAULT_BLOCK, halo=DEFAULT_HALO,
                   part: tuple[int, int] | None = None, model=None, tile: int | None = 512, device=None,
                   tta: bool = False, detail: float | None = None, detect_options: dict | None = None,
                   overwrite: bool = False, progress: bool = False) -> dict:
    """Restores the missing sections of the stack at ``src`` block by block into ``out`` (zarr
    ``OUT.zarr`` or HDF5 ``OUT.h5[:NAME]``), with the masks in ``masks`` (default ``OUT_masks``, same
    format) and the JSON report in ``report`` (default ``OUT_report.json``). ``src`` may be any
    stack ``open_volume`` reads; it is never modified.

    ``block`` and ``halo``: (sections, rows, columns). ``part=(i, n)``: this job's share of the
    blocks (every n-th from the i-th); it leaves the outputs under their staging names, and a
    final run without ``part`` does what is left and moves them into place. ``model``, ``tile``,
    ``device``, ``tta``, ``detail`` and ``detect_options`` as ``emrestore.restore`` takes them.
    Returns the report, or with ``part`` a summary of the blocks done.
    """
    from .models import SepConvInterpolator, load_model, pick_device

    block, halo = _triple(block, "block"), _triple(halo, "halo")
    if min(block) < 1 or min(halo) < 0:
        raise ValueError(f"block sizes must be >= 1 and halos >= 0; got block {block}, halo {halo}")
    if part is not None:
        i, n = part
        if not (n >= 1 and 0 <= i < n):
            raise ValueError(f"part must be (i, n) with 0 <= i < n; got {part}")
    out = str(out)
    masks = str(masks if masks is not None else beside(out, "_masks"))
    report = Path(report if report is not None else beside(out, "_report", ".json"))
    for path in (out, masks):
        if path_format(path) not in ("zarr", "hdf5") or (path_format(path) == "zarr"
                                                          and not split_path(path)[0].name.lower().endswith(".zarr")):
            raise ValueError(f"block-wise output must be a zarr array OUT.zarr or an HDF5 dataset OUT.h5[:NAME]; got {path}")
    if part is not None and "hdf5" in (path_format(out), path_format(masks)):
        raise ValueError("parts (several jobs writing at once) need zarr outputs: HDF5 files take one writer")
    volume = open_volume(src)
    if volume.dtype not in DTYPES:
        raise TypeError(f"restore: expected uint8, uint16, float32 or float64 sections in {src}; got {volume.dtype}")
    z_count = volume.shape[0]
    if z_count < 3:
        raise ValueError(f"restore: need at least 3 sections to interpolate from neighbours; got {z_count}")
    check_outputs(src, [out, masks, report], overwrite)

    model = model if isinstance(model, SepConvInterpolator) else load_model(model)[0]
    device = pick_device(device)
    detail = model.config.detail_share(detail)
    run = {"source": str(src), "shape": list(volume.shape), "dtype": str(volume.dtype), "block": list(block),
           "halo": list(halo), "model": getattr(model, "source", None), "weights": _fingerprint(model),
           "tta": bool(tta), "detail": detail, "tile": tile,
           "detect_options": detect_options or {}}
    records_dir = blocks_folder(report)
    staged = [staging_path(out), staging_path(masks)]
    run_file = records_dir / "run.json"
    # A run with the same arguments goes on where an earlier one stopped (every part of one run
    # shares its staging); one with other arguments starts over, if allowed to.
    earlier = json.loads(run_file.read_text()) if run_file.exists() else None
    if earlier is not None and earlier != run:
        if not overwrite or part is not None:
            raise ValueError(f"{records_dir} belongs to an unfinished run with other arguments ({earlier}); finish it "
                             f"with the same arguments, or start over with overwrite=True (--overwrite) and no part")
        earlier = None
    if earlier is None:
        shutil.rmtree(records_dir, ignore_errors=True)
        for path in staged:
            remove(path)
        records_dir.mkdir(parents=True, exist_ok=True)
        write_json(run_file, run)

    chunks = output_chunks(block, volume.shape)
    writers = [ChunkedOutput(staged[0], volume.shape, volume.dtype, chunks),
               ChunkedOutput(staged[1], volume.shape, np.uint8, chunks)]
    grid = _grid(volume.shape, block)
    mine = [o for k, o in enumerate(grid) if part is None or k % part[1] == part[0]]
    todo = [o for o in mine if not (records_dir / f"{_block_id(o)}.json").exists()]
    restore_kw = {"tile": tile, "device": device, "tta": tta, "detail": detail, "detect_options": detect_options}
    model = model.to(device).eval()
    iterator = todo
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(todo, desc="restore blocks", unit="block")
    try:
        for origin in iterator:
            stack, block_masks, record = _restore_block(volume, origin, block, halo, model, restore_kw)
            writers[0].write(origin, stack)
            writers[1].write(origin, block_masks)
            write_json(records_dir / f"{record['block']}.json", record)  # only after its data
            del stack, block_masks
    finally:
        for w in writers:
            w.close()
    done = sum((records_dir / f"{_block_id(o)}.json").exists() for o in grid)
    if part is not None:
        return {"blocks": len(grid), "done": done, "this_part": len(mine), "restored_now": len(todo),
                "finished": False}
    if done != len(grid):  # another job's records vanished midway: say so rather than move a hole into place
        raise RuntimeError(f"{len(grid) - done} of {len(grid)} blocks have no record in {records_dir}; rerun")
    records = [json.loads((records_dir / f"{_block_id(o)}.json").read_text()) for o in grid]
    result = dict(run, sections=z_count, blocks=len(grid),
                  restored=sorted((r for rec in records for r in rec["restored"]), key=lambda r: (r["index"], r["region"])),
                  left_untouched=sorted((r for rec in records for r in rec["left_untouched"]),
                                        key=lambda r: (r["index"], r["region"])),
                  detection=sorted((r for rec in records for r in rec["detection"]), key=lambda r: (r["index"], r["region"])),
                  windows={rec["block"]: rec["window"] for rec in records})
    for final, stage in zip((out, masks), staged):
        remove(final)
        os.replace(split_path(stage)[0], split_path(final)[0])
    write_json(report, result)
    shutil.rmtree(records_dir)
    return result
