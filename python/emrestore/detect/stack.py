"""Detection over a whole stack: per section a verdict (several artifacts may apply), one mask bit
per artifact type (ms 1, sff 2, sp 4, as the simulator writes them) and the fold geometry."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..conventions import BITS, check_stack, intensity_range, to_range_unit
from .ms import detect_missing
from .sff import detect_folds
from .sp import detect_with_darkness, strongest_core


@dataclass
class StackDetection:
    masks: np.ndarray  # uint8 [Z, H, W], bits ms 1, sff 2, sp 4
    sections: list[dict] = field(
        default_factory=list
    )  # JSON-ready verdict and geometry per section


def detect_stack(
    stack: np.ndarray,
    *,
    ms: dict | None = None,
    sff: dict | None = None,
    sp: dict | None = None,
    sp_verdict: float = 0.85,
    progress: bool = False,
) -> StackDetection:
    """Finds missing sections, folds and precipitates in ``stack`` [Z, H, W].

    ``ms``, ``sff`` and ``sp`` pass thresholds to ``detect_missing``, ``detect_folds`` and
    ``detect_precipitates``. Folds and precipitates are not searched in missing areas. A section is
    called ``sp`` (and its blobs masked) only when one blob's core darkness reaches ``sp_verdict``:
    dark organelles reach about 0.8.
    """
    stack = check_stack(stack)
    stack = to_range_unit(stack, intensity_range(stack))  # floats outside [0, 1]: to [0, 1]
    missing = detect_missing(stack, **(ms or {}))
    masks = np.zeros(stack.shape, np.uint8)
    sections = []
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
        if m.kind != "ok":
            record["verdict"].append("ms")
            masks[z][m.mask] |= BITS["ms"]
        if m.kind != "whole":
            folds = detect_folds(stack[z], **(sff or {}))
            fold_mask = folds.mask & ~m.mask
            # The edge of a blank region looks like a band's edge: folds must lie in present tissue.
            if folds.folds and fold_mask.sum() < 0.5 * folds.mask.sum():
                folds.folds, fold_mask = [], np.zeros_like(fold_mask)
            if folds.folds:
                record["verdict"].append("sff")
                masks[z][fold_mask] |= BITS["sff"]
            record["folds"] = [
                {
                    "centre": np.round(f.centre, 1).tolist(),
                    "half_width": np.round(f.half_width, 1).tolist(),
                    "darkness": round(f.darkness, 3),
                    "length": round(f.length, 1),
                }
                for f in folds.folds
            ]
            blobs, _, darkness = detect_with_darkness(stack[z], **(sp or {}))
            blobs &= ~m.mask & ~fold_mask
            core = strongest_core(stack[z], blobs, darkness=darkness)
            # Dark organelles pass the pixel test now and then; a section is called only for a
            # blob darker than they get.
            if core >= sp_verdict:
                record["verdict"].append("sp")
                masks[z][blobs] |= BITS["sp"]
            record["sp"] = {"fraction": round(float(blobs.mean()), 5), "core": round(core, 3)}
        if not record["verdict"]:
            record["verdict"] = ["ok"]
        sections.append(record)
    return StackDetection(masks=masks, sections=sections)
