"""Staining precipitates (SP): dark, compact blobs relative to the local background.

The background is the section with its dark structures closed away (a grey closing wider than the
largest expected blob, at a reduced scale), so darkness = 1 - image / background is high inside
precipitates whatever the section's brightness or contrast. Candidates are regions of high darkness
that survive an opening (membranes, thin and dark, do not); they are kept when compact (solidity)
and dark enough in their core, which rejects the long membrane networks and the paler, textured
mitochondria. The soft mask grows each kept blob into its fading edge.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
from scipy import ndimage

from .ms import to_unit
from .sff import opening


def darkness_map(u: np.ndarray, max_radius: int) -> np.ndarray:
    """1 - u / background, with the background from a grey closing of radius ``max_radius``."""
    f = max(1, max_radius // 16)
    small = cv2.resize(u, (max(1, u.shape[1] // f), max(1, u.shape[0] // f)), interpolation=cv2.INTER_AREA)
    r = max(1, max_radius // f)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    bg = cv2.morphologyEx(small, cv2.MORPH_CLOSE, kernel, borderType=cv2.BORDER_REFLECT)
    bg = cv2.GaussianBlur(bg, (0, 0), max(1.0, r / 2))
    bg = cv2.resize(bg, (u.shape[1], u.shape[0]), interpolation=cv2.INTER_LINEAR)
    return np.clip(1 - u / np.maximum(bg, 1e-3), 0, 1)


def detect_precipitates(section: np.ndarray, *, max_side: int = 1024, max_radius: int = 96,
                        threshold: float = 0.65, core: float = 0.75, min_area: int = 40,
                        min_solidity: float = 0.7) -> tuple[np.ndarray, np.ndarray]:
    """Bool mask and soft mask (0..1) of staining precipitates in one section [H, W].

    ``threshold``: darkness that marks candidate pixels; ``core``: the darkness a blob must reach
    on average in its darkest half; ``min_area`` (px at the working scale) and ``min_solidity``
    (area / convex-hull area) keep compact blobs.
    """
    h, w = section.shape
    factor = max(1, int(math.ceil(max(h, w) / max_side)))
    u = to_unit(section)
    if factor > 1:
        u = cv2.resize(u, (w // factor, h // factor), interpolation=cv2.INTER_AREA)
    dark = darkness_map(cv2.GaussianBlur(u, (0, 0), 1.0), max_radius // factor)
    cand = opening(dark > threshold, 2)
    labels, n = ndimage.label(cand)
    keep = np.zeros(n + 1, bool)
    for i, sl in enumerate(ndimage.find_objects(labels), start=1):
        region = labels[sl] == i
        area = int(region.sum())
        if area < min_area:
            continue
        values = np.sort(dark[sl][region])
        if values[len(values) // 2:].mean() < core:
            continue
        contours, _ = cv2.findContours(region.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
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
    return grown, soft


def strongest_core(section: np.ndarray, mask: np.ndarray, *, max_side: int = 1024, max_radius: int = 96) -> float:
    """The highest core darkness (mean of the darker half) among the blobs of ``mask``: how sure the
    section's precipitate verdict can be (dark organelles reach about 0.8, dense stains more)."""
    if not mask.any():
        return 0.0
    h, w = section.shape
    factor = max(1, int(math.ceil(max(h, w) / max_side)))
    u = to_unit(section)
    m = mask
    if factor > 1:
        u = cv2.resize(u, (w // factor, h // factor), interpolation=cv2.INTER_AREA)
        m = cv2.resize(mask.astype(np.uint8), (w // factor, h // factor), interpolation=cv2.INTER_NEAREST) > 0
    dark = darkness_map(cv2.GaussianBlur(u, (0, 0), 1.0), max_radius // factor)
    labels, n = ndimage.label(m)
    best = 0.0
    for i, sl in enumerate(ndimage.find_objects(labels), start=1):
        values = np.sort(dark[sl][labels[sl] == i])
        best = max(best, float(values[len(values) // 2:].mean()))
    return best
