"""Staining precipitates (SP): dark, compact blobs relative to the local background.

The background is the section with its dark structures closed away (a grey closing wider than the
largest expected blob, at a reduced scale), so darkness = 1 - image / background is high inside
precipitates whatever the section's brightness or contrast. Candidates are regions of high darkness
that survive an opening (membranes, thin and dark, do not); they are kept when compact (solidity)
and dark enough in their core, which rejects the long membrane networks and the paler, textured
mitochondria. The soft mask grows each kept blob into its fading edge.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scipy import ndimage

from ._common import opening, working_copy

# Precipitates on the departure map (``precipitates_from_departure``); min_area in section pixels.
SP_DEPARTURE = {"threshold": 0.3, "core": 0.4, "min_area": 400, "min_solidity": 0.0}
# The stack's own calibration of the core threshold (``calibrate_sp_core``).
SP_CALIBRATION = {"quantile": 0.75, "margin": 0.15}
MIN_CALIBRATION_SECTIONS = 10


def darkness_map(u: np.ndarray, max_radius: int) -> np.ndarray:
    """1 - u / background, with the background from a grey closing of radius ``max_radius``."""
    f = max(1, max_radius // 16)
    small = cv2.resize(
        u, (max(1, u.shape[1] // f), max(1, u.shape[0] // f)), interpolation=cv2.INTER_AREA
    )
    r = max(1, max_radius // f)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    bg = cv2.morphologyEx(small, cv2.MORPH_CLOSE, kernel, borderType=cv2.BORDER_REFLECT)
    bg = cv2.GaussianBlur(bg, (0, 0), max(1.0, r / 2))
    bg = cv2.resize(bg, (u.shape[1], u.shape[0]), interpolation=cv2.INTER_LINEAR)
    return np.clip(1 - u / np.maximum(bg, 1e-3), 0, 1)


def detect_precipitates(
    section: np.ndarray,
    *,
    max_side: int = 1024,
    max_radius: int = 96,
    threshold: float = 0.65,
    core: float = 0.75,
    min_area: int = 40,
    min_solidity: float = 0.7,
) -> tuple[np.ndarray, np.ndarray]:
    """Bool mask and soft mask (0..1) of staining precipitates in one section [H, W].

    ``threshold``: darkness that marks candidate pixels; ``core``: the darkness a blob must reach
    on average in its darkest half; ``min_area`` (px at the working scale) and ``min_solidity``
    (area / convex-hull area) keep compact blobs.
    """
    mask, soft, _ = detect_with_darkness(
        section,
        max_side=max_side,
        max_radius=max_radius,
        threshold=threshold,
        core=core,
        min_area=min_area,
        min_solidity=min_solidity,
    )
    return mask, soft


def _darkness(section: np.ndarray, max_side: int, max_radius: int) -> tuple[np.ndarray, int]:
    """Darkness map at the working scale, and the working scale's reduction factor."""
    u, factor = working_copy(section, max_side)
    return darkness_map(cv2.GaussianBlur(u, (0, 0), 1.0), max_radius // factor), factor


def _core(values: np.ndarray) -> float:
    """Mean of the darker half of a blob's darkness values."""
    values = np.sort(values)
    return float(values[len(values) // 2 :].mean())


def detect_with_darkness(
    section: np.ndarray,
    *,
    max_side: int = 1024,
    max_radius: int = 96,
    threshold: float = 0.65,
    core: float = 0.75,
    min_area: int = 40,
    min_solidity: float = 0.7,
):
    """``detect_precipitates``, also returning (darkness map, factor) for ``strongest_core``."""
    h, w = section.shape
    dark, factor = _darkness(section, max_side, max_radius)
    cand = opening(dark > threshold, 2)
    labels, n = ndimage.label(cand)
    keep = np.zeros(n + 1, bool)
    for i, sl in enumerate(ndimage.find_objects(labels), start=1):
        region = labels[sl] == i
        area = int(region.sum())
        if area < min_area:
            continue
        if _core(dark[sl][region]) < core:
            continue
        contours, _ = cv2.findContours(
            region.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE
        )
        hull = cv2.contourArea(cv2.convexHull(np.concatenate(contours)))
        if area / max(hull, 1.0) < min_solidity:
            continue
        keep[i] = True
    blobs = keep[labels]
    # Soft edge: grow into the surrounding darkness, a few pixels at most.
    grown = cv2.dilate(blobs.astype(np.uint8), np.ones((3, 3), np.uint8), iterations=4) > 0
    grown &= dark > 0.5 * threshold
    grown |= blobs
    soft = np.where(grown, np.clip(dark / threshold, 0, 1), 0).astype(np.float32)
    if factor > 1:
        grown = cv2.resize(grown.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST) > 0
        soft = cv2.resize(soft, (w, h), interpolation=cv2.INTER_LINEAR)
    return grown, soft, (dark, factor)


def strongest_core(
    section: np.ndarray,
    mask: np.ndarray,
    *,
    max_side: int = 1024,
    max_radius: int = 96,
    darkness: tuple[np.ndarray, int] | None = None,
) -> float:
    """The highest core darkness (mean of the darker half) among the blobs of ``mask``: how sure the
    section's precipitate verdict can be (dark organelles reach about 0.8, dense stains more).
    ``darkness``: the (map, factor) that ``detect_with_darkness`` returned for this section, so it
    is not computed again."""
    if not mask.any():
        return 0.0
    dark, factor = darkness if darkness is not None else _darkness(section, max_side, max_radius)
    m = mask
    if factor > 1:
        m = (
            cv2.resize(
                mask.astype(np.uint8),
                (dark.shape[1], dark.shape[0]),
                interpolation=cv2.INTER_NEAREST,
            )
            > 0
        )
    labels, _ = ndimage.label(m)
    return max(
        (
            _core(dark[sl][labels[sl] == i])
            for i, sl in enumerate(ndimage.find_objects(labels), start=1)
        ),
        default=0.0,
    )


@dataclass
class DepartureBlob:
    """A connected region where the section is darker than its neighbours predict."""

    label: int  # its label in the map ``departure_blobs`` returned
    core: float  # mean departure of its darker half
    area: int  # pixels at the departure map's scale
    solidity: float  # area / convex-hull area: 1 for a compact blob, low for a membrane piece

    def fits(self, factor: int, min_area: int, min_solidity: float) -> bool:
        """Whether the blob covers ``min_area`` px of the section (the map is ``factor`` times
        smaller) and is compact enough (``min_solidity``): the precipitate rule less its core."""
        return self.area * factor * factor >= min_area and self.solidity >= min_solidity


def departure_blobs(
    departure: np.ndarray,
    *,
    threshold: float = 0.3,
    min_area: int = 4,
    exclude: np.ndarray | None = None,
) -> tuple[np.ndarray, list[DepartureBlob]]:
    """The regions of ``departure`` [h, w] above ``threshold`` (after an opening that drops thin
    lines, without the pixels ``exclude``) with at least ``min_area`` px: a label map and one
    ``DepartureBlob`` per region."""
    cand = opening(departure > threshold, 1)
    if exclude is not None:
        cand &= ~exclude
    labels, _ = ndimage.label(cand)
    blobs = []
    for i, sl in enumerate(ndimage.find_objects(labels), start=1):
        region = labels[sl] == i
        area = int(region.sum())
        if area < min_area:
            continue
        contours, _ = cv2.findContours(
            region.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE
        )
        hull = cv2.contourArea(cv2.convexHull(np.concatenate(contours)))
        blobs.append(DepartureBlob(i, _core(departure[sl][region]), area, area / max(hull, 1.0)))
    return labels, blobs


def precipitates_from_departure(
    departure: np.ndarray,
    factor: int = 1,
    *,
    threshold: float = SP_DEPARTURE["threshold"],
    core: float = SP_DEPARTURE["core"],
    min_area: int = SP_DEPARTURE["min_area"],
    min_solidity: float = SP_DEPARTURE["min_solidity"],
    exclude: np.ndarray | None = None,
) -> tuple[np.ndarray, list[float]]:
    """Precipitates where the section is darker than its neighbours predict.

    ``departure``: a departure map [h, w] (``consistency.departure``) at 1 / ``factor`` of the
    section's size. Candidates depart by more than ``threshold`` (``departure_blobs``); a blob is a
    precipitate when its core reaches ``core``, it covers ``min_area`` px of the section (the
    simulator's smallest blob covers 200) and its solidity reaches ``min_solidity`` (pieces of
    membrane that moved between sections are thin and branched). ``exclude``: bool [h, w] pixels
    explained otherwise (folds, lost regions). Returns the bool mask [h, w] and each kept blob's
    core departure.
    """
    labels, blobs = departure_blobs(departure, threshold=threshold, exclude=exclude)
    return select_blobs(
        labels, blobs, factor, core=core, min_area=min_area, min_solidity=min_solidity
    )


def select_blobs(
    labels: np.ndarray,
    blobs: list[DepartureBlob],
    factor: int = 1,
    *,
    core: float,
    min_area: int,
    min_solidity: float,
) -> tuple[np.ndarray, list[float]]:
    """The mask of the ``blobs`` (of the label map ``labels``) that pass the precipitate rule
    of ``precipitates_from_departure``, and their cores."""
    kept = [b for b in blobs if b.core >= core and b.fits(factor, min_area, min_solidity)]
    keep = np.zeros(labels.max() + 1, bool)
    keep[[b.label for b in kept]] = True
    return keep[labels], [b.core for b in kept]


def calibrate_sp_core(
    strongest: list[float],
    core: float,
    quantile: float = SP_CALIBRATION["quantile"],
    margin: float = SP_CALIBRATION["margin"],
) -> float:
    """The core departure a precipitate needs in this stack: at least ``core``, and ``margin``
    above the ``quantile`` of ``strongest`` (each section's strongest blob core). Sections of
    every stack hold a few structures of their own (an organelle's end, a dense vesicle); real
    precipitates are rare (about 3% of sections), so the quantile is the tissue's, and a
    precipitate must stand out of it. Fewer than MIN_CALIBRATION_SECTIONS sections are too few to
    tell the tissue's level from a precipitate's: ``core`` alone."""
    if len(strongest) < MIN_CALIBRATION_SECTIONS:
        return core
    return max(core, float(np.quantile(strongest, quantile)) + margin)
