"""Classical restoration baselines, one interface: ``restore(stack, masks) -> stack``.

``stack`` [Z, H, W] is the degraded stack, ``masks`` [Z, H, W] uint8 the artifact bits (missing
section 1, fold 2, precipitate 4, as ``emrestore.simulate`` and ``emrestore.detect`` write them).
Sections with any bit set are restored where their mask is set, from the nearest sections without
artifacts (a missing section: the whole section). Inputs are never modified.

- ``degraded``: the input itself (the floor).
- ``substitution``: the nearest clean neighbour (what large pipelines do today).
- ``linear``: the mean of the nearest clean neighbours above and below, weighted by distance.
- ``flow``: dense optical flow between those neighbours (OpenCV DIS), both warped to the
  section's position with ``emrestore.ops.warp`` and blended.
- ``inpaint``: OpenCV Telea inpainting of the masked pixels from the section itself (for folds
  and precipitates; missing sections fall back to ``linear``).
"""

from __future__ import annotations

import cv2
import numpy as np

from .alignment import align_pair, to_u8
from .conventions import MS


def _check(stack, masks):
    if not isinstance(stack, np.ndarray) or stack.ndim != 3:
        raise ValueError(
            "baselines: expected a stack [Z, H, W]; "
            f"got {getattr(stack, 'shape', type(stack).__name__)}"
        )
    if masks.shape != stack.shape:
        raise ValueError(
            f"baselines: masks must have the stack's shape {stack.shape}; got {masks.shape}"
        )
    if len(stack) < 2:
        raise ValueError(
            f"baselines: need at least 2 sections to restore from neighbours; got {len(stack)}"
        )


def clean_neighbours(bad: np.ndarray, z: int) -> tuple[int | None, int | None]:
    """Nearest sections above and below z without artifacts."""
    below = next((i for i in range(z - 1, -1, -1) if not bad[i]), None)
    above = next((i for i in range(z + 1, len(bad)) if not bad[i]), None)
    return below, above


def _apply(stack, masks, fill):
    """Calls fill(z, below, above) -> float image for each section with artifacts; pastes it into
    the masked pixels."""
    _check(stack, masks)
    out = stack.copy()
    bad = masks.reshape(len(masks), -1).any(1)
    for z in np.flatnonzero(bad):
        below, above = clean_neighbours(bad, z)
        if below is None and above is None:
            continue  # nothing to restore from
        image = fill(z, below, above)
        region = masks[z] > 0
        out[z][region] = _cast(image[region], stack.dtype)
    return out


def _cast(values, dtype):
    if np.dtype(dtype).kind in "ui":
        return np.clip(np.rint(values), 0, np.iinfo(dtype).max).astype(dtype)
    return values.astype(dtype)


def degraded(stack, masks):
    _check(stack, masks)
    return stack.copy()


def substitution(stack, masks):
    def fill(z, below, above):
        if below is None or (above is not None and above - z < z - below):
            return stack[above].astype(np.float64)
        return stack[below].astype(np.float64)

    return _apply(stack, masks, fill)


def linear(stack, masks):
    def fill(z, below, above):
        if below is None or above is None:
            return stack[above if below is None else below].astype(np.float64)
        t = (z - below) / (above - below)
        return (1 - t) * stack[below].astype(np.float64) + t * stack[above].astype(np.float64)

    return _apply(stack, masks, fill)


def flow(stack, masks):
    def fill(z, below, above):
        if below is None or above is None:
            return stack[above if below is None else below].astype(np.float64)
        t = (z - below) / (above - below)
        wa, wb = align_pair(stack[below], stack[above], t)
        return (1 - t) * wa.astype(np.float64) + t * wb.astype(np.float64)

    return _apply(stack, masks, fill)


def inpaint(stack, masks):
    _check(stack, masks)
    fallback = linear(stack, masks)
    out = fallback.copy()
    for z in np.flatnonzero(masks.reshape(len(masks), -1).any(1)):
        if (masks[z] & MS).any():
            continue  # missing content: nothing in the section to inpaint from
        region = (masks[z] > 0).astype(np.uint8)
        u8 = to_u8(stack[z])
        filled = cv2.inpaint(u8, region, 5, cv2.INPAINT_TELEA).astype(np.float64)
        if stack.dtype != np.uint8:
            filled *= (np.iinfo(stack.dtype).max if stack.dtype.kind in "ui" else 1.0) / 255.0
        out[z][region > 0] = _cast(filled[region > 0], stack.dtype)
    return out


METHODS = {
    "degraded": degraded,
    "substitution": substitution,
    "linear": linear,
    "flow": flow,
    "inpaint": inpaint,
}
