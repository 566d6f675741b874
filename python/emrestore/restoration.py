"""``restore``: find missing sections (whole and partial) and fill them in with the interpolation
network from the nearest sections that are not missing (their motion measured against the next
clean sections beyond them as well); runs of several missing sections are filled section by section
at their fractional position between those neighbours. Folds and precipitates
are detected and reported, and left as they are until the correction and fusion modules exist."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from .alignment import outer_gaps, outer_indices
from .baselines import clean_neighbours
from .conventions import BITS, check_stack, from_unit, intensity_range, to_range_unit


@dataclass
class Restoration:
    stack: np.ndarray  # [Z, H, W], the input's dtype
    masks: np.ndarray  # uint8 [Z, H, W], artifact bits (ms 1, sff 2, sp 4)
    report: dict = field(default_factory=dict)  # JSON-ready: what was changed, and how


def restore(
    volume: np.ndarray,
    *,
    model=None,
    masks: np.ndarray | None = None,
    detect_options: dict | None = None,
    tile: int | None = 512,
    device: str | torch.device | None = None,
    tta: bool = False,
    detail: float | None = None,
    value_range: tuple[float, float] | None = None,
    progress: bool = False,
) -> Restoration:
    """Restores the missing sections of ``volume`` [Z, H, W]; never modifies it.

    Args:
        model: a ``SepConvInterpolator``, a model folder, or None for the model shipped with the
            package (train your own with ``emrestore.fit`` for best results).
        masks: artifact bits [Z, H, W] (ms 1, sff 2, sp 4; uint8 or another integer type) if
            already known (``check_masks``); default: run ``emrestore.detect.detect_stack`` with
            ``detect_options``, which do not apply with ``masks``.
        tile: inference tile side (None: whole sections at once).
        tta: average over the rotations, mirror images and both orders of each pair of
            neighbours (16 passes per section; see ``emrestore.models.interpolate``).
        detail: share of each prediction's fine detail replaced by that of the neighbours aligned
            to each other (``emrestore.models.detail``; flow-guided models only); default: the
            model's ``config.detail``, 0 to turn it off.
        value_range: the intensities a float stack maps to 0 and 1 (default:
            ``emrestore.conventions.intensity_range``: [0, 1], or the stack's own minimum and
            maximum when it holds values outside): restored sections come back in that range.
    """
    from .models import SepConvInterpolator, interpolate, load_model, pick_device

    volume = check_stack(volume, "restore", min_sections=3)
    if not isinstance(model, SepConvInterpolator):
        model, _ = load_model(model)
    device = pick_device(device)
    model = model.to(device).eval()
    detail = model.config.detail_share(detail)  # checked before any work
    value_range = intensity_range(volume) if value_range is None else tuple(map(float, value_range))
    unit = to_range_unit(volume, value_range)  # the volume itself unless floats outside [0, 1]
    sections = None
    if masks is None:
        from .detect import detect_stack

        # Block by block, a block's result must be the whole stack's: the departure from the
        # neighbours needs present sections beyond a missing run, which a block's halo may not
        # hold, so restore judges folds and precipitates on the section alone.
        options = {"consistency": False, **(detect_options or {})}
        found = detect_stack(unit, progress=progress, **options)
        masks, sections = found.masks, found.sections
    elif detect_options:
        raise ValueError(
            f"restore: masks replace detection; detect_options ({', '.join(detect_options)}) "
            f"do not apply"
        )
    else:
        masks = np.asarray(masks)
        check_masks(masks, volume.shape)
        masks = masks.astype(np.uint8, copy=False)
    # Section by section: a boolean copy of the whole mask stack would cost a stack's worth
    # of memory.
    missing_count = np.array([np.count_nonzero(m & BITS["ms"]) for m in masks])
    whole = missing_count == volume.shape[1] * volume.shape[2]
    # The network reads whole neighbours: a section with any missing pixels is never a source.
    bad = missing_count > 0
    out = volume.copy()
    records = []
    todo = np.flatnonzero(bad)
    iterator = todo
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(todo, desc="restore", unit="section")
    for z in iterator:
        below, above = clean_neighbours(bad, z)
        region = (masks[z] & BITS["ms"]) > 0
        record = {
            "index": int(z),
            "artifact": "ms",
            "kind": "whole" if whole[z] else "partial",
            "fraction": round(float(region.mean()), 4),
        }
        if below is not None and above is not None:
            t = (z - below) / (above - below)
            outer = (
                outer_indices(~bad, below, above) if model.config.uses_outer_flow else (None, None)
            )
            section = interpolate(
                model,
                unit[below],
                unit[above],
                t,
                tile=tile,
                device=device,
                tta=tta,
                detail=detail,
                outer=tuple(None if o is None else unit[o] for o in outer),
                outer_gaps=outer_gaps(below, above, outer),
            )
            filled = from_unit(section, volume.dtype, value_range)
            record.update(
                action="interpolated", sources=[int(below), int(above)], position=round(t, 4)
            )
            if any(o is not None for o in outer):
                record["motion_from"] = [None if o is None else int(o) for o in outer]
        elif below is not None or above is not None:
            src = below if below is not None else above
            filled = volume[src]
            record.update(
                action="copied",
                sources=[int(src)],
                reason="at the end of the stack: only one clean neighbour",
            )
        else:
            record.update(action="none", reason="no section without missing pixels to restore from")
            records.append(record)
            continue
        out[z][region] = filled[region]
        record["changed"] = round(float(np.count_nonzero(out[z] != volume[z])) / out[z].size, 4)
        records.append(record)
    others = []
    for z in range(len(volume)):
        found_bits = [name for name in ("sff", "sp") if (masks[z] & BITS[name]).any()]
        if found_bits:
            others.append(
                {
                    "index": z,
                    "artifacts": found_bits,
                    "action": "none",
                    "reason": "fold and precipitate restoration are not implemented yet",
                }
            )
    report = {
        "sections": len(volume),
        "shape": list(volume.shape),
        "dtype": str(volume.dtype),
        "restored": records,
        "left_untouched": others,
        "model": getattr(model, "source", None),
        "tta": bool(tta),
        "detail": detail,
        "masks": {"source": "given" if sections is None else "detection"},
    }
    if sections is not None:
        report["detection"] = sections
    report["warnings"] = warnings_for(records, volume.shape, detected=sections is not None)
    return Restoration(stack=out, masks=masks, report=report)


# The values a mask voxel may hold: any combination of the bits ms 1, sff 2 and sp 4.
MASK_MAX = BITS["ms"] | BITS["sff"] | BITS["sp"]
# Masks are checked a slab of at most this many bytes at a time: a mask volume larger than
# memory is never read whole.
SCAN_BYTES = 2**26


def _slabs(shape, itemsize: int, budget: int):
    """(sections, rows) slices that cover a [Z, H, W] volume, each at most ``budget`` bytes (or
    one row, if a row is larger)."""
    z_count, height, width = shape
    rows = max(1, min(height, budget // (width * itemsize)))
    sections = max(1, budget // (rows * width * itemsize)) if rows == height else 1
    for z in range(0, z_count, sections):
        for y in range(0, height, rows):
            yield slice(z, z + sections), slice(y, y + rows)


def check_masks(masks, shape, source: str = "the mask stack given") -> None:
    """Refuses masks (an array, or a lazy volume read a slab at a time) that do not fit a stack of
    ``shape``: another shape, a dtype that is no integer type, or values other than the bits ms 1,
    sff 2, sp 4 and their combinations. ``source`` names them in the message."""
    shape, got = tuple(shape), tuple(masks.shape)
    if got != shape:
        raise ValueError(
            f"masks must be uint8 [Z, H, W] of the stack's shape {shape}; {source} has shape {got}"
        )
    if not np.issubdtype(masks.dtype, np.integer):
        raise ValueError(
            f"masks must be uint8 (or another integer type) holding the bits ms 1, "
            f"sff 2, sp 4; {source} holds {masks.dtype}"
        )
    others: set[int] = set()
    for slab in _slabs(shape, masks.dtype.itemsize, SCAN_BYTES):
        part = np.asarray(masks[slab])
        others.update(np.unique(part[(part < 0) | (part > MASK_MAX)]).tolist())
        if len(others) > 10:  # enough to name
            break
    if others:
        listed = ", ".join(map(str, sorted(others)[:10])) + (" ..." if len(others) > 10 else "")
        raise ValueError(
            f"masks may hold only the bits ms 1, sff 2, sp 4 (values 0 to {MASK_MAX}); "
            f"{source} also holds {listed}"
        )


def open_masks(path, shape, outputs=()):
    """The mask stack at ``path`` (any format ``io.open_volume`` reads) as a lazy volume, checked
    against a stack of ``shape`` (``check_masks``). Refuses it first where one of ``outputs``
    would replace it: the masks are read while the outputs are written."""
    from . import io

    file = io.split_path(path)[0]
    for target in outputs:
        if file.exists() and io.split_path(target)[0].resolve() == file.resolve():
            raise ValueError(
                f"the output {target} would replace the masks read from {path}; name "
                f"another (--masks names the masks written)"
            )
    volume = io.open_volume(path)
    check_masks(volume, shape, source=str(path))
    return volume


# A section judged partly missing that has this share of its pixels rewritten is named in a
# warning: in intact tissue such calls are the detector's mistakes, and the user should look.
PARTIAL_WARNING = 0.01
# Sections narrower than this give the missing-section detector too little texture to judge.
MIN_DETECT_SIDE = 64


def changed_shares(records: list[dict], shape, kind: str | None = None) -> dict[int, float]:
    """Each restored section's share of pixels rewritten, from the report's records (block by
    block: its blocks' ``region`` shares added up); ``kind``: only records of that kind."""
    _, height, width = shape
    shares: dict[int, float] = {}
    for r in records:
        if kind is None or r["kind"] == kind:
            y0, y1, x0, x1 = r.get("region", (0, height, 0, width))
            part = r.get("changed", 0.0) * (y1 - y0) * (x1 - x0) / (height * width)
            shares[r["index"]] = shares.get(r["index"], 0.0) + part
    return dict(sorted(shares.items()))


def warnings_for(records: list[dict], shape, detected: bool = True) -> list[str]:
    """What the user should check in a restoration: partly missing sections with a large share
    rewritten, and sections too small for detection to be trusted."""
    found = []
    partial = {
        z: share
        for z, share in changed_shares(records, shape, "partial").items()
        if share >= PARTIAL_WARNING
    }
    if partial:
        listed = ", ".join(f"{z} ({100 * share:.1f}%)" for z, share in partial.items())
        found.append(
            f"{len(partial)} section(s) judged partly missing had pixels rewritten: "
            f"{listed}; if they are intact, these are detection errors: check the masks"
        )
    if detected and min(shape[1:]) < MIN_DETECT_SIDE:
        found.append(
            f"sections of {shape[1]} x {shape[2]} px are too small for reliable detection "
            f"(at least {MIN_DETECT_SIDE} px across): missing sections may be missed or "
            f"intact ones called missing"
        )
    return found


def as_method(
    model=None, *, tile: int | None = 512, tta: bool = False, detail: float | None = None
):
    """The network as an evaluation-harness method ``restore(stack, masks) -> stack``: missing
    sections restored, everything else as given."""
    from .models import SepConvInterpolator, load_model

    if not isinstance(model, SepConvInterpolator):
        model, _ = load_model(model)

    def method(stack, masks):
        return restore(
            stack, model=model, masks=masks.astype(np.uint8), tile=tile, tta=tta, detail=detail
        ).stack

    return method
