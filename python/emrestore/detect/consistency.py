"""z-consistency evidence: where a section is darker than its aligned neighbours predict.

A real artifact belongs to one section; membranes, organelles and dark cells continue into the
neighbours. Each neighbour is aligned to the section (dense optical flow at a working scale of at
most ``side`` px), optionally eroded by ``tolerance`` px, and matched to the section's intensities
(an affine map from quantiles, so a brightness or contrast change of the whole section is no
departure). The prediction is the darker of the neighbours at each pixel: a structure either of
them shows is tissue. The departure is 1 - section / prediction after a blur, clipped at 0: stains
and fold bands are dark departures, tissue is not, whatever the tissue looks like. Pixels brighter
than predicted are no evidence of any artifact here and count 0, as do pixels the neighbours do
not predict (content that moved in over the border) and pixels known lost.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..alignment import optical_flow, warp_image
from ._common import working_copy

QUANTILES = np.linspace(0.1, 0.95, 18)  # the intensity match ignores the darkest tenth (stains)


@dataclass
class Departure:
    """How much darker a section is than its neighbours predict, at a reduced working scale."""

    map: np.ndarray  # float32 [h, w] in [0, 1]
    factor: int  # the section is ``factor`` times larger in each dimension
    neighbours: tuple[int, ...]  # the sections the prediction came from

    def full(self, shape: tuple[int, int]) -> np.ndarray:
        """The departure map at the section's own size ``shape``."""
        if self.map.shape == tuple(shape):
            return self.map
        return cv2.resize(self.map, (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)

    def floor(self) -> float:
        """Departure that only 1 in 1000 pixels of this section exceeds: its misalignment noise."""
        return float(np.quantile(self.map, 0.999))


def neighbour_indices(usable: np.ndarray, z: int, reach: int = 3) -> tuple[int, ...]:
    """The nearest usable section below and above ``z`` (at most ``reach`` away). With one side
    only (a stack's end), the two nearest on that side: one neighbour alone explains too little."""
    sides = []
    for step in (-1, 1):
        found = [
            j for k in range(1, reach + 1) if 0 <= (j := z + step * k) < len(usable) and usable[j]
        ]
        sides.append(found)
    below, above = sides
    if below and above:
        return (below[0], above[0])
    return tuple((below or above)[:2])


def _intensity_map(pred: np.ndarray, u: np.ndarray, keep: np.ndarray | None):
    """(slope, offset) of the affine map that takes ``pred``'s quantiles to ``u``'s (over the
    pixels ``keep``); the identity where the fit is degenerate."""
    a_vals = pred[keep] if keep is not None else pred.ravel()
    b_vals = u[keep] if keep is not None else u.ravel()
    if a_vals.size < 100:
        return 1.0, 0.0
    qa, qb = np.quantile(a_vals, QUANTILES), np.quantile(b_vals, QUANTILES)
    if np.ptp(qa) < 1e-4:
        return 1.0, 0.0
    slope, offset = np.polyfit(qa, qb, 1)
    return (float(slope), float(offset)) if slope > 0 else (1.0, 0.0)


def departure(
    section: np.ndarray,
    neighbours: list[np.ndarray],
    *,
    side: int = 512,
    tolerance: int = 0,
    sigma: float = 3.0,
    exclude: np.ndarray | None = None,
) -> tuple[np.ndarray, int]:
    """Departure map [h, w] of ``section`` from the prediction of ``neighbours`` (sections of the
    same shape), at a working scale of at most ``side`` px, and the reduction factor.
    ``exclude``: bool [H, W] pixels of the section that are known lost (left out of the intensity
    match and given departure 0)."""
    if not neighbours:
        raise ValueError("departure: at least one neighbour section is needed")
    u, factor = working_copy(section, side)
    lost = None
    if exclude is not None and exclude.any():
        lost = cv2.resize(exclude.astype(np.uint8), u.shape[::-1], interpolation=cv2.INTER_NEAREST)
        lost = lost > 0
    keep = ~lost if lost is not None else None
    kernel = np.ones((2 * tolerance + 1,) * 2, np.uint8) if tolerance > 0 else None
    preds = []
    h, w = u.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    for n in neighbours:
        v, _ = working_copy(n, side)
        flow = optical_flow(u, v)
        aligned = warp_image(v, flow)
        tolerant = cv2.erode(aligned, kernel) if kernel is not None else aligned
        # Each neighbour's intensities are matched to the section's on its plain alignment (the
        # eroded one is darker by design); a second fit leaves out the pixels that departed.
        slope, offset = _intensity_map(aligned, u, keep)
        calm = _ratio_departure(u, slope * tolerant + offset, sigma) < 0.2
        slope, offset = _intensity_map(aligned, u, calm if keep is None else calm & keep)
        pred = slope * tolerant + offset
        # Where the flow leads out of the neighbour (content that moved in over the border), it
        # predicts nothing.
        tx, ty = xx + flow[..., 0], yy + flow[..., 1]
        outside = (tx < 0) | (tx > w - 1) | (ty < 0) | (ty > h - 1)
        preds.append(np.where(outside, np.inf, pred))
    # Darker than every neighbour: a structure that one neighbour shows is tissue, not artifact.
    pred = np.min(preds, axis=0)
    unknown = ~np.isfinite(pred)
    d = _ratio_departure(u, np.where(unknown, u, pred), sigma)
    d[cv2.dilate(unknown.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0] = 0.0
    if lost is not None:
        d[lost] = 0.0
    return d, factor


def _ratio_departure(u: np.ndarray, pred: np.ndarray, sigma: float) -> np.ndarray:
    ub = cv2.GaussianBlur(u, (0, 0), sigma)
    pb = cv2.GaussianBlur(pred, (0, 0), sigma)
    return np.clip(1.0 - ub / np.maximum(pb, 1e-3), 0.0, 1.0).astype(np.float32)


def region_score(departure_map: np.ndarray, region: np.ndarray) -> float:
    """Median departure over ``region`` (bool, the map's shape): how strongly the region as a whole
    is darker than the neighbours predict (0 for an empty region)."""
    if not region.any():
        return 0.0
    return float(np.median(departure_map[region]))
