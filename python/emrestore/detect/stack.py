"""Detection over a whole stack: per section a verdict (several artifacts may apply), one mask bit
per artifact type (ms 1, sff 2, sp 4, as the simulator writes them) and the fold geometry."""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from ..conventions import BITS, check_stack, intensity_range, to_range_unit
from .consistency import Departure, departure, neighbour_indices, region_score
from .ms import detect_missing
from .sff import detect_folds, fold_band, scale_fold
from .sp import (
    SP_CALIBRATION,
    SP_DEPARTURE,
    calibrate_sp_core,
    departure_blobs,
    detect_with_darkness,
    select_blobs,
    strongest_core,
)

SFF_DEPARTURE = 0.15  # median departure over a fold's band (tissue traced as a fold: below 0.1)


@dataclass
class StackDetection:
    masks: np.ndarray  # uint8 [Z, H, W], bits ms 1, sff 2, sp 4
    sections: list[dict] = field(
        default_factory=list
    )  # JSON-ready verdict and geometry per section
    calibration: dict = field(default_factory=dict)  # what the stack's own statistics set


def detect_stack(
    stack: np.ndarray,
    *,
    ms: dict | None = None,
    sff: dict | None = None,
    sp: dict | None = None,
    sp_verdict: float = 0.85,
    consistency: bool = True,
    sff_departure: float = SFF_DEPARTURE,
    sp_departure: dict | None = None,
    sp_calibration: dict | bool | None = None,
    progress: bool = False,
) -> StackDetection:
    """Finds missing sections, folds and precipitates in ``stack`` [Z, H, W].

    ``ms``, ``sff`` and ``sp`` pass thresholds to ``detect_missing``, ``detect_folds`` and
    ``detect_precipitates``. Folds and precipitates are not searched in missing areas.

    With ``consistency`` (the default), every section with a present neighbour is compared with
    its aligned neighbours (``consistency.departure``): a fold is kept only where its band is darker
    than the neighbours predict by at least ``sff_departure`` (median over the band), and folds are
    also searched on the departure map itself. Precipitates are the blobs of that map that pass
    ``sp_departure`` (``precipitates_from_departure``'s rule), with a core threshold the stack
    calibrates (``calibrate_sp_core`` with ``sp_calibration``: its sections' own strongest blobs
    set how high it must be; False: ``sp_departure``'s core alone). Sections without a present
    neighbour, and every section without ``consistency``, use the section alone: a section is then
    called ``sp`` only when one blob's core darkness reaches ``sp_verdict`` (dark organelles reach
    about 0.8).
    """
    stack = check_stack(stack)
    stack = to_range_unit(stack, intensity_range(stack))  # floats outside [0, 1]: to [0, 1]
    missing = detect_missing(stack, **(ms or {}))
    masks = np.zeros(stack.shape, np.uint8)
    usable = np.array([m.kind != "whole" for m in missing])
    rule = {**SP_DEPARTURE, **(sp_departure or {})}
    sections, pending = [], []
    iterator = range(len(stack))
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(iterator, desc="detect", unit="section")
    for z in iterator:
        m = missing[z]
        record: dict = {
            "index": z,
            "verdict": [],
            "ms": {
                "kind": m.kind,
                "fraction": round(m.fraction, 4),
                "similarity": round(m.similarity, 4),
            },
        }
        sections.append(record)
        if m.kind != "ok":
            record["verdict"].append("ms")
            masks[z][m.mask] |= BITS["ms"]
        if m.kind == "whole":
            continue
        near = neighbour_indices(usable, z) if consistency else ()
        if not near:
            _single_section(stack[z], m.mask, masks[z], record, sff, sp, sp_verdict)
            continue
        d, factor = departure(stack[z], [stack[j] for j in near], exclude=m.mask)
        dep = Departure(map=d, factor=factor, neighbours=near)
        record["evidence"] = {"neighbours": list(near), "floor": round(dep.floor(), 3)}
        fold_mask = _consistent_folds(stack[z], dep, m.mask, masks[z], record, sff, sff_departure)
        explained = cv2.resize(
            (fold_mask | m.mask).astype(np.uint8), d.shape[::-1], interpolation=cv2.INTER_NEAREST
        )
        labels, blobs = departure_blobs(d, threshold=rule["threshold"], exclude=explained > 0)
        pending.append((z, factor, labels, blobs))
    # Precipitates last: the core threshold depends on every section's strongest blob.
    size = {"min_area": rule["min_area"], "min_solidity": rule["min_solidity"]}
    strongest = [
        max((b.core for b in blobs if b.fits(factor, **size)), default=0.0)
        for _, factor, _, blobs in pending
    ]
    core = rule["core"]
    if sp_calibration is not False:
        calibration = {**SP_CALIBRATION, **(sp_calibration or {})}
        core = calibrate_sp_core(strongest, rule["core"], **calibration)
    for (z, factor, labels, blobs), best in zip(pending, strongest):
        kept, cores = select_blobs(labels, blobs, factor, core=core, **size)
        record = sections[z]
        if cores:
            record["verdict"].append("sp")
            full = cv2.resize(
                kept.astype(np.uint8), stack.shape[:0:-1], interpolation=cv2.INTER_NEAREST
            )
            masks[z][(full > 0) & ~missing[z].mask] |= BITS["sp"]
        record["sp"] = {
            "fraction": round(float(kept.mean()), 5),
            "core": round(best, 3),
            "blobs": len(cores),
        }
    for record in sections:
        if not record["verdict"]:
            record["verdict"] = ["ok"]
    return StackDetection(
        masks=masks,
        sections=sections,
        calibration={"sp_core": round(core, 3), "sections": len(pending)},
    )


def _fold_record(fold, **scores) -> dict:
    return {
        "centre": np.round(fold.centre, 1).tolist(),
        "half_width": np.round(fold.half_width, 1).tolist(),
        "darkness": round(fold.darkness, 3),
        "length": round(fold.length, 1),
        **scores,
    }


def _single_section(section, lost, mask, record, sff, sp, sp_verdict) -> None:
    """The section's own evidence only (no present neighbour to compare with)."""
    folds = detect_folds(section, **(sff or {}))
    fold_mask = folds.mask & ~lost
    # The edge of a blank region looks like a band's edge: folds must lie in present tissue.
    if folds.folds and fold_mask.sum() < 0.5 * folds.mask.sum():
        folds.folds, fold_mask = [], np.zeros_like(fold_mask)
    if folds.folds:
        record["verdict"].append("sff")
        mask[fold_mask] |= BITS["sff"]
    record["folds"] = [_fold_record(f) for f in folds.folds]
    blobs, _, darkness = detect_with_darkness(section, **(sp or {}))
    blobs &= ~lost & ~fold_mask
    core = strongest_core(section, blobs, darkness=darkness)
    # Dark organelles pass the pixel test now and then; a section is called only for a blob
    # darker than they get.
    if core >= sp_verdict:
        record["verdict"].append("sp")
        mask[blobs] |= BITS["sp"]
    record["sp"] = {"fraction": round(float(blobs.mean()), 5), "core": round(core, 3)}


def consistent_folds(
    section: np.ndarray,
    dep: Departure,
    lost: np.ndarray,
    *,
    min_departure: float = SFF_DEPARTURE,
    sff: dict | None = None,
) -> list[tuple]:
    """Folds of ``section`` whose band is darker than the neighbours predict (``dep``): candidates
    traced on the section and on 1 - the departure map (at the map's own scale), each kept when the
    median departure over its band (outside ``lost``) reaches ``min_departure``. Returns (fold,
    band mask, departure, where it was traced) per fold, overlapping candidates merged."""
    shape = section.shape
    departure_map = dep.full(shape)
    candidates = [(f, "section") for f in detect_folds(section, **(sff or {})).folds]
    candidates += [
        (scale_fold(f, dep.factor), "departure")
        for f in detect_folds(1.0 - dep.map, **(sff or {})).folds
    ]
    kept: list[tuple] = []
    for fold, source in candidates:
        whole = fold_band(fold, shape)
        band = whole & ~lost
        if band.sum() < 0.5 * whole.sum():
            continue  # the edge of a lost region, not a band in present tissue
        score = region_score(departure_map, band)
        if score < min_departure:
            continue
        if any((band & other).sum() > 0.2 * min(band.sum(), other.sum()) for _, other, *_ in kept):
            continue
        kept.append((fold, band, score, source))
    return kept


def _consistent_folds(section, dep, lost, mask, record, sff, sff_departure) -> np.ndarray:
    """Folds judged against the aligned neighbours (``dep``); returns their band mask."""
    folds = consistent_folds(section, dep, lost, min_departure=sff_departure, sff=sff)
    fold_mask = np.zeros(section.shape, bool)
    for _, band, _, _ in folds:
        fold_mask |= band
    if folds:
        record["verdict"].append("sff")
        mask[fold_mask] |= BITS["sff"]
    record["folds"] = [
        _fold_record(f, departure=round(score, 3), traced_on=source)
        for f, _, score, source in folds
    ]
    return fold_mask
