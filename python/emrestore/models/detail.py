"""Fine detail from the neighbours, put back into the network's prediction.

Trained for the mean, the network blurs what it cannot predict: where the two neighbours disagree
(often on ssTEM, whose sections are 50 nm apart) it averages their membranes into faint ones, and a
segmentation merges the cells on either side (docs/interpolation.md measures it: half as many cells
as in the clean sections). ``add_detail`` replaces a share of the prediction's detail, the part
finer than ``sigma``, with that of ``detail_source``: the two neighbours aligned to each other by
their own optical flow, as the ``flow`` baseline aligns them, and blended by position. Aligned to
each other rather than to the motion the network reads (which also weighs the sections beyond),
their membranes coincide and the blend's detail stays sharp; chosen on training data, see
docs/interpolation.md. The coarse content stays the network's.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..alignment import align_pair


def _fine(image: np.ndarray, sigma: float) -> np.ndarray:
    return image - ndimage.gaussian_filter(image, sigma, mode="nearest")


def detail_source(a: np.ndarray, b: np.ndarray, t: float, *, aligned: bool = False) -> np.ndarray:
    """The neighbours ``a``, ``b`` (unit range) aligned to position ``t`` by the pair's own flow
    (unless ``aligned``: already aligned) and blended by position, float32."""
    if not aligned:
        a, b = align_pair(a, b, t)
    return ((1.0 - t) * np.asarray(a, np.float32) + t * np.asarray(b, np.float32)).astype(
        np.float32
    )


def add_detail(pred: np.ndarray, source: np.ndarray, *, amount: float, sigma: float) -> np.ndarray:
    """``pred`` [H, W] in [0, 1] with ``amount`` (0: unchanged, 1: all) of its detail finer than
    ``sigma`` pixels replaced by that of ``source`` [H, W]; float32, clipped to [0, 1]."""
    if not 0.0 <= amount <= 1.0:
        raise ValueError(f"add_detail: amount must lie in [0, 1]; got {amount}")
    if not sigma > 0:
        raise ValueError(f"add_detail: sigma must be > 0 pixels; got {sigma}")
    if pred.shape != source.shape or pred.ndim != 2:
        raise ValueError(
            f"add_detail: expected two sections [H, W] of one shape; got {pred.shape} and "
            f"{source.shape}"
        )
    if amount == 0.0:
        return pred.astype(np.float32, copy=False)
    p, s = np.asarray(pred, np.float32), np.asarray(source, np.float32)
    out = p + amount * (_fine(s, sigma) - _fine(p, sigma))
    return np.clip(out, 0.0, 1.0, out=out)
