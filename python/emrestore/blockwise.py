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

With ``scheduler`` ("local", a Dask scheduler's address or a ``distributed.Client``) the blocks
run on Dask distributed (``emrestore.engines``): each worker opens the volume and loads the model
once per run from a small description (the source's path, the model's folder or weights, restore's
options) and writes the blocks it gets; this process moves the outputs into place at the end.

The block runner (grid, records, staging, parts) is ``emrestore.blocks``; this module holds
restore's rules: the z-window, the model's fingerprint, the run's arguments and the report.
"""

from __future__ import annotations

import hashlib
import os
from functools import partial
from pathlib import Path

import numpy as np

from .blocks import (
    Block,
    Output,
    Task,
    check_chunked_outputs,
    check_part,
    records_folder,
    run_blocks,
)
from .conventions import DTYPE_NAMES, intensity_range, is_supported
from .engines import check_engine
from .io import beside, check_outputs, open_volume, split_path

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
    return records_folder(report)


# At most 2 MiB of uint8 per chunk: blocks are far larger than codecs like.
CHUNK_LIMIT = (8, 512, 512)


def output_chunks(block, shape) -> tuple[int, int, int]:
    """The outputs' chunks: along each axis the largest divisor of the block's side up to
    ``CHUNK_LIMIT``, so that chunks tile every block and no two blocks share one."""
    chunks = []
    for b, n, limit in zip(block, shape, CHUNK_LIMIT):
        b = min(b, n)
        chunks.append(max(d for d in range(1, min(b, limit) + 1) if b % d == 0))
    return tuple(chunks)


def needed_z_window(records, lo, hi, z_count, outer_flow: bool) -> tuple[int, int]:
    """The z range [lo, hi) that gives each restored section of the core (``records``, in volume
    indices, restored from the window [lo, hi)) its whole-volume sources."""
    need_lo, need_hi = lo, hi
    for r in records:
        z = r["index"]
        if r["action"] == "interpolated":
            below, above = r["sources"]
            # The sections beyond are searched this far.
            reach = (above - below) if outer_flow else 0
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


def _restore_block(block: Block, *, volume, given, z_halo: int, model, restore_kw):
    """The task's ``process``: restores one block (with the window of the mask volume ``given``,
    if any, in place of detection); returns its core (stack, masks) and record."""
    from .restoration import restore

    z_count = volume.shape[0]
    (z0, y0, x0), (z1, y1, x1) = block.origin, block.end
    (lo, ylo, xlo), (hi, yhi, xhi) = block.read_origin, block.read_end
    while hi - lo < 3:  # restore reads at least three sections (the volume has them)
        lo, hi = max(0, lo - 1), min(z_count, hi + 1)
    while True:
        window = volume[lo:hi, ylo:yhi, xlo:xhi]
        masks = None if given is None else given[lo:hi, ylo:yhi, xlo:xhi]
        result = restore(window, model=model, masks=masks, **restore_kw)
        core = [
            dict(r, index=r["index"] + lo)
            for r in result.report["restored"]
            if z0 <= r["index"] + lo < z1
        ]
        for r in core:
            for key in ("sources", "motion_from"):
                if key in r:
                    r[key] = [None if s is None else s + lo for s in r[key]]
        need_lo, need_hi = needed_z_window(core, lo, hi, z_count, model.config.uses_outer_flow)
        if need_lo >= lo and need_hi <= hi:
            break
        # Grow by the halo beyond what is needed, so that the new edge sections have neighbours to
        # be judged by.
        lo, hi = max(0, min(lo, need_lo - z_halo)), min(z_count, max(hi, need_hi + z_halo))
    cut = (slice(z0 - lo, z1 - lo), slice(y0 - ylo, y1 - ylo), slice(x0 - xlo, x1 - xlo))
    region = [y0, y1, x0, x1]
    restored, given = result.stack[cut], window[cut]
    for r in core:
        r["region"] = region
        z = r["index"] - z0  # the share of the block's own pixels that changed
        r["changed"] = round(float(np.count_nonzero(restored[z] != given[z])) / restored[z].size, 4)
    untouched = [
        dict(r, index=r["index"] + lo, region=region)
        for r in result.report["left_untouched"]
        if z0 <= r["index"] + lo < z1
    ]
    detection = [
        dict(r, index=r["index"] + lo, region=region)
        for r in result.report.get("detection", [])
        if z0 <= r["index"] + lo < z1 and r["verdict"] != ["ok"]
    ]
    record = {
        "block": block.id,
        "origin": [z0, y0, x0],
        "end": [z1, y1, x1],
        "window": [lo, hi, ylo, yhi, xlo, xhi],
        "restored": core,
        "left_untouched": untouched,
        "detection": detection,
    }
    # Copies: the window's arrays are freed here, before the next block reads its own.
    return (result.stack[cut].copy(), result.masks[cut].copy()), record


def _resolved(path) -> str:
    """A stack's path resolved (an HDF5 dataset's name kept): the same stack named another way
    is the same run's."""
    file, key = split_path(path)
    return f"{file.resolve()}:{key}" if key else str(file.resolve())


def _fingerprint(model) -> str:
    """A digest of the model's weights: a resumed run must restore with the same ones."""
    digest = hashlib.sha1()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def _by_place(entries):
    return sorted(entries, key=lambda r: (r["index"], r["region"]))


def _report(run: dict, sections: int, masks_from, records: list[dict]) -> dict:
    """The whole volume's report from the blocks' records (in grid order); ``masks_from``: the
    mask stack restored with (as the caller named it), None where the blocks were detected."""
    from .restoration import warnings_for

    restored = _by_place(r for rec in records for r in rec["restored"])
    detected = masks_from is None
    report = dict(
        run,
        sections=sections,
        blocks=len(records),
        restored=restored,
        left_untouched=_by_place(r for rec in records for r in rec["left_untouched"]),
        masks={"source": "detection"} if detected else {"source": "file", "path": masks_from},
        windows={rec["block"]: rec["window"] for rec in records},
        warnings=warnings_for(restored, run["shape"], detected=detected),
    )
    if detected:
        report["detection"] = _by_place(r for rec in records for r in rec["detection"])
    # Blocks run on workers (a scheduler): where, how long and in how many tries each took.
    runs = {
        rec["block"]: {
            "worker": rec["worker"],
            "seconds": rec["seconds"],
            "attempts": rec["attempts"],
            "sections": sorted({r["index"] for r in rec["restored"] if r["action"] != "none"}),
        }
        for rec in records
        if "worker" in rec
    }
    if runs:
        report["block_runs"] = runs
    return report


def _task(
    volume, model, *, given, masks_from, out, masks, report, block, halo, run, restore_kw
) -> Task:
    """restore's ``Task`` over ``volume`` with ``model`` (on its device) and, if not None, the
    lazy mask volume ``given`` read from ``masks_from``."""
    chunks = output_chunks(block, volume.shape)
    return Task(
        name="restore",
        shape=volume.shape,
        block=block,
        halo=halo,
        process=partial(
            _restore_block,
            volume=volume,
            given=given,
            z_halo=halo[0],
            model=model,
            restore_kw=restore_kw,
        ),
        outputs=[
            Output(out, volume.shape, volume.dtype, chunks),
            Output(masks, volume.shape, np.uint8, chunks),
        ],
        summary=report,
        summarize=partial(_report, run, volume.shape[0], masks_from),
        arguments=run,
    )


def _worker_task(description: dict) -> Task:
    """On a Dask worker: restore's ``Task`` from its description (``restore_volume``), with the
    volume opened and the model loaded here."""
    from .models import InterpolationConfig, SepConvInterpolator, load_model, pick_device

    model = description["model"]
    if isinstance(model, dict):  # weights sent along: a model that lives in memory only
        loaded = SepConvInterpolator(InterpolationConfig.from_dict(model["config"]))
        loaded.load_state_dict(model["state"])
        loaded.source = model["source"]
    else:
        loaded = load_model(model)[0]
    run = description["task"]["run"]
    if _fingerprint(loaded) != run["weights"]:
        raise ValueError(
            f"the model a worker loaded ({loaded.source}) is not the one this run restores with: "
            f"its weights changed since the run began"
        )
    device = pick_device(description["device"])
    restore_kw = dict(description["restore_kw"], device=device)
    volume = open_volume(description["source"])
    masks_from = description["task"]["masks_from"]  # checked by the run before any block
    given = None if masks_from is None else open_volume(masks_from)
    model = loaded.to(device).eval()
    return _task(volume, model, given=given, restore_kw=restore_kw, **description["task"])


def worker_memory(block, halo, shape) -> int:
    """An estimate of a worker's peak memory restoring a block (bytes): the read window (grown
    along z by the halo once more) at 32 bytes a voxel (the window, its float copies, the restored
    stack, masks and detection) and 1 GiB for the interpreter, torch and the model."""
    window = 1
    for b, h, n in zip(block, halo, shape):
        window *= min(n, b + 2 * h)
    return 32 * window + 2**30


def restore_volume(
    src,
    out,
    *,
    masks=None,
    masks_from=None,
    report=None,
    block=DEFAULT_BLOCK,
    halo=DEFAULT_HALO,
    part: tuple[int, int] | None = None,
    model=None,
    tile: int | None = 512,
    device=None,
    tta: bool = False,
    detail: float | None = None,
    detect_options: dict | None = None,
    overwrite: bool = False,
    progress: bool = False,
    scheduler=None,
    workers: int | None = None,
    on_block=None,
) -> dict:
    """Restores the missing sections of the stack at ``src`` block by block into ``out`` (zarr
    ``OUT.zarr`` or HDF5 ``OUT.h5[:NAME]``), with the masks in ``masks`` (default ``OUT_masks``,
    same format) and the JSON report in ``report`` (default ``OUT_report.json``). ``src`` may be
    any stack ``open_volume`` reads; it is never modified.

    ``block`` and ``halo``: (sections, rows, columns). ``part=(i, n)``: this job's share of the
    blocks (every n-th from the i-th); it leaves the outputs under their staging names, and a
    final run without ``part`` does what is left and moves them into place. ``model``, ``tile``,
    ``device``, ``tta``, ``detail`` and ``detect_options`` as ``emrestore.restore`` takes them.
    ``masks_from``: a mask stack (bits ms 1, sff 2, sp 4, any format ``open_volume`` reads) to
    restore with instead of detecting: checked whole, a slab at a time, before any block
    (``restoration.open_masks``); each block then reads its own window of it; ``detect_options``
    do not apply. Returns the report, or with ``part`` a summary of the blocks done.

    ``scheduler``: None (the default) restores the blocks one after another in this process;
    "local" on a ``distributed.LocalCluster`` of ``workers`` processes (default: one per core,
    fewer where memory is short: ``worker_memory``), created and closed by the run; a Dask
    scheduler's address (tcp://HOST:PORT) or a ``distributed.Client`` on that cluster, whose
    workers must see ``src``, the outputs and the model's folder at the same paths. The outputs
    must then be zarr; the report gains ``block_runs`` (each block's worker, seconds, attempts and
    sections restored). A block whose process raises is retried twice, one whose worker dies is
    handed to another; a block that still fails is named in the error once the others are done.
    ``on_block(block_id, record)``: called in this process as each block is done; raising from it
    stops the run, and a rerun resumes.
    """
    from .models import SepConvInterpolator, load_model, pick_device
    from .restoration import open_masks

    if masks_from is not None and detect_options:
        raise ValueError(
            f"restore: masks_from replaces detection; detect_options "
            f"({', '.join(detect_options)}) do not apply"
        )
    block, halo = _triple(block, "block"), _triple(halo, "halo")
    if min(block) < 1 or min(halo) < 0:
        raise ValueError(f"block sizes must be >= 1 and halos >= 0; got block {block}, halo {halo}")
    check_part(part)
    out = str(out)
    masks = str(masks if masks is not None else beside(out, "_masks"))
    report = Path(report if report is not None else beside(out, "_report", ".json"))
    check_chunked_outputs([out, masks], part)
    check_engine(scheduler, workers, [out, masks])  # before the volume and the model load
    volume = open_volume(src)
    if not is_supported(volume.dtype):
        raise TypeError(f"restore: expected {DTYPE_NAMES} sections in {src}; got {volume.dtype}")
    z_count = volume.shape[0]
    if z_count < 3:
        raise ValueError(
            f"restore: need at least 3 sections to interpolate from neighbours; got {z_count}"
        )
    given = None  # before the outputs: a default one may be in its place
    if masks_from is not None:
        given = open_masks(masks_from, volume.shape, [out, masks, report])
    check_outputs(src, [out, masks, report], overwrite)

    in_memory = isinstance(model, SepConvInterpolator)
    model_folder = None if model is None or in_memory else os.path.abspath(model)
    model = model if in_memory else load_model(model)[0]
    device_arg, device = device, pick_device(device)
    detail = model.config.detail_share(detail)
    # Floats outside [0, 1]: every block maps the whole volume's range to [0, 1], not its own.
    value_range = intensity_range(volume)
    # The run's arguments: a resumed run (or another part) must restore exactly as this one. The
    # source by its resolved path: the same input given another way is the same run.
    source = _resolved(src)
    run = {
        "source": source,
        "shape": list(volume.shape),
        "dtype": str(volume.dtype),
        "block": list(block),
        "halo": list(halo),
        "model": getattr(model, "source", None),
        "weights": _fingerprint(model),
        "tta": bool(tta),
        "detail": detail,
        "tile": tile,
        "detect_options": detect_options or {},
        "value_range": list(value_range),
    }
    if masks_from is not None:  # a resumed run must restore with the same masks
        run["masks_from"] = _resolved(masks_from)
    restore_kw = {
        "tile": tile,
        "device": device,
        "tta": tta,
        "detail": detail,
        "detect_options": detect_options,
        "value_range": value_range,
    }
    model = model.to(device).eval()
    masks_from = None if masks_from is None else str(masks_from)
    where = {"block": block, "halo": halo, "run": run}
    task = _task(
        volume,
        model,
        given=given,
        masks_from=masks_from,
        out=out,
        masks=masks,
        report=report,
        restore_kw=restore_kw,
        **where,
    )
    if scheduler is None:
        done = run_blocks(
            task, part=part, overwrite=overwrite, progress=progress, on_block=on_block
        )
    else:
        from .engines import Remote, run_task_dask

        if in_memory:  # the weights travel: the workers have no folder to load them from
            state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
            sent = {"config": model.config.to_dict(), "state": state, "source": run["model"]}
        else:
            sent = model_folder
        # What the workers get (picklable, small): paths made absolute, the worker's cwd may differ
        description = {
            "source": os.path.abspath(str(src)),
            "model": sent,
            "device": None if device_arg is None else str(device_arg),
            "restore_kw": {k: v for k, v in restore_kw.items() if k != "device"},
            "task": dict(
                where,
                masks_from=None if masks_from is None else os.path.abspath(masks_from),
                out=os.path.abspath(out),
                masks=os.path.abspath(masks),
                report=Path(os.path.abspath(report)),
            ),
        }
        done = run_task_dask(
            task,
            Remote(_worker_task, description),
            scheduler=scheduler,
            workers=workers,
            part=part,
            overwrite=overwrite,
            progress=progress,
            on_block=on_block,
            memory_per_worker=worker_memory(block, halo, volume.shape),
        )
    if part is not None:
        return {
            "blocks": done.blocks,
            "done": done.done,
            "this_part": done.this_part,
            "restored_now": done.done_now,
            "finished": False,
        }
    return done.summary
