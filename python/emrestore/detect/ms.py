"""Missing sections (MS): whole or partial, blank, constant or noise.

Sections are compared with their neighbours at a coarse scale (about 128 px across, smoothed), where
real neighbouring sections correlate clearly and an empty acquisition does not. A section is missing
when it resembles none of the sections up to ``reach`` away while those resemble each other. Inside
an otherwise present section, a region is missing when it is flat (blank or constant: no imaging
noise at all), or when its local correlation with its prediction from the sections on either side
is lost while those still correlate there, or when it correlates poorly and lacks the coarse
structure its neighbours show there (an empty acquisition is noise, without cells at that scale);
such a region is confirmed over all its pixels and grown to its outline. Featureless tissue (e.g.
a lumen), where neighbours do not correlate either, is never flagged.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scipy import ndimage

from ..conventions import to_unit


@dataclass
class MissingSection:
    kind: str  # "ok", "whole" or "partial"
    mask: np.ndarray  # bool [H, W], the missing pixels
    fraction: float  # share of the section that is missing
    similarity: float  # correlation with the best-matching neighbour (coarse scale)
    reference: float  # best correlation between those neighbours


def _coarse(section: np.ndarray, side: int) -> np.ndarray:
    u = to_unit(section)
    f = max(1, int(round(max(u.shape) / side)))
    small = cv2.resize(
        u, (max(1, u.shape[1] // f), max(1, u.shape[0] // f)), interpolation=cv2.INTER_AREA
    )
    return cv2.GaussianBlur(small, (0, 0), 1.0)


def _local_ncc(a: np.ndarray, b: np.ndarray, win: int) -> np.ndarray:
    """Correlation of a and b in a win x win window around every pixel."""
    k = (win, win)
    ma, mb = cv2.blur(a, k), cv2.blur(b, k)
    va = np.maximum(cv2.blur(a * a, k) - ma * ma, 0)
    vb = np.maximum(cv2.blur(b * b, k) - mb * mb, 0)
    cov = cv2.blur(a * b, k) - ma * mb
    return cov / np.sqrt(np.maximum(va * vb, 1e-12))


def _local_var(a: np.ndarray, win: int) -> np.ndarray:
    return np.maximum(cv2.blur(a * a, (win, win)) - cv2.blur(a, (win, win)) ** 2, 0)


def _ncc(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / max(np.sqrt((a * a).sum() * (b * b).sum()), 1e-12))


def detect_missing(
    stack: np.ndarray,
    *,
    reach: int = 3,
    coarse_side: int = 128,
    flat_std: float = 1e-3,
    drop: float = 0.3,
    min_similarity: float = 0.12,
    partial_fraction: float = 0.05,
    whole_fraction: float = 0.9,
) -> list[MissingSection]:
    """Per section of ``stack`` [Z, H, W]: whether it is missing, wholly or partially, and where.

    A section is missing when its correlation with every section up to ``reach`` away is below
    ``min_similarity`` and below ``drop`` times what sections that far apart reach in this stack
    (the median), while its neighbours still correlate with each other. A region is missing when
    its local correlation with the mean of the nearest present sections on either side is below
    ``min_similarity`` and ``drop`` times theirs with each other (or below ``min_similarity`` where
    its coarse variance is under 0.3 of the neighbours'), confirmed over the whole region (below
    ``drop`` times the correlation of those sections with each other there, which must reach
    ``min_similarity``); see ``_lost_regions``. ``flat_std``: a region whose intensity varies less
    than this (in [0, 1] units, 5 x 5 px) is blank or constant. ``partial_fraction``: the smallest
    missing region reported. ``whole_fraction``: above it, the whole section is missing.
    """
    z_n, h, w = stack.shape
    coarse = [_coarse(s, coarse_side) for s in stack]
    section_flat = np.array([float(c.std()) < flat_std for c in coarse])

    def neighbours(z):
        return [i for i in range(max(0, z - reach), min(z_n, z + reach + 1)) if i != z]

    pair = {}

    def corr(i, j):
        key = (min(i, j), max(i, j))
        if key not in pair:
            pair[key] = 0.0 if section_flat[i] or section_flat[j] else _ncc(coarse[i], coarse[j])
        return pair[key]

    # What correlation sections d apart usually reach in this stack (missing sections are rare, so
    # the median is the intact tissue's): a section is judged against neighbours at its distance.
    expected = {}
    for d in range(1, min(reach, z_n - 1) + 1):
        values = [
            corr(i, i + d) for i in range(z_n - d) if not (section_flat[i] or section_flat[i + d])
        ]
        expected[d] = float(np.median(values)) if values else 0.0
    win = max(5, (min(coarse[0].shape) // 4) | 1)
    # First pass: whole sections. The second pass judges partial losses against the sections left.
    verdicts = {}
    for z in range(z_n):
        near = neighbours(z)
        best = max((corr(z, i) for i in near), default=0.0)
        ref = max((corr(a, b) for a in near for b in near if a < b), default=0.0)
        # Present neighbours at distances where intact sections reliably correlate (the nearest
        # always counts); with none, the section cannot be judged missing by its content.
        usable = [
            i
            for i in near
            if not section_flat[i]
            and (abs(i - z) == 1 or expected[abs(i - z)] >= 2 * min_similarity)
        ]
        relative = max(
            (corr(z, i) / expected[abs(i - z)] for i in usable if expected[abs(i - z)] > 0),
            default=1.0,
        )
        whole = section_flat[z] or (
            best < min_similarity and relative < drop and ref >= 2 * min_similarity
        )
        verdicts[z] = (whole, best, ref)
    results = []
    for z in range(z_n):
        whole, best, ref = verdicts[z]
        if whole:
            results.append(MissingSection("whole", np.ones((h, w), bool), 1.0, best, ref))
            continue
        near = neighbours(z)
        good = [i for i in near if not verdicts[i][0]]
        mask = _large_regions(
            _flat_region(stack[z], flat_std), partial_fraction, thick=0.05 * min(h, w)
        )
        if ref >= 2 * min_similarity and len(good) >= 2:
            flat = (
                cv2.resize(
                    mask.astype(np.uint8), coarse[z].shape[::-1], interpolation=cv2.INTER_AREA
                )
                > 0
            )
            lost = _lost_regions(
                z,
                coarse,
                good,
                win,
                min_similarity,
                drop,
                partial_fraction,
                exclude=ndimage.binary_dilation(flat, iterations=2),
            )
            if lost.any():
                mask |= (
                    cv2.resize(lost.astype(np.uint8) * 255, (w, h), interpolation=cv2.INTER_LINEAR)
                    >= 128
                )
        frac = float(mask.mean())
        kind = "whole" if frac >= whole_fraction else "partial" if frac > 0 else "ok"
        if kind == "whole":
            mask = np.ones((h, w), bool)
        results.append(MissingSection(kind, mask, 1.0 if kind == "whole" else frac, best, ref))
    return results


def _lost_regions(
    z, coarse, good, win, min_similarity, drop, partial_fraction, exclude
) -> np.ndarray:
    """Regions of section z (coarse scale) whose content is unrelated to its neighbours ``good``
    (noise fills), while the neighbours relate to each other there; ``exclude``: regions already
    found (flat fills, outlined exactly).

    The section is compared with its prediction from the nearest present section on each side
    within 2 (their mean), which correlates with intact tissue far better than any single neighbour
    and, unlike the best of several, is not biased up where nothing correlates. Cores found with
    large windows are confirmed over all their pixels and then grown to the region's outline on a
    finer correlation map, split halfway between the core and intact tissue. With present sections
    on one side only, the best correlation with any neighbour is used and cores are not grown.
    """
    # Sections further than 2 away predict too little (and one that far on one side only spoils
    # the mean of two).
    below = [i for i in good if z - 2 <= i < z]
    above = [i for i in good if z < i <= z + 2]
    sides = [max(below)] if below else []
    sides += [min(above)] if above else []
    # A region is lost when the section is unrelated to the prediction (or to every neighbour when
    # there is none) while the sections it is judged against relate there: the prediction's two
    # sides, or any two neighbours.
    pairs = [(coarse[a], coarse[b]) for a in good for b in good if a < b]
    others = [coarse[i] for i in good]
    if len(sides) == 2:
        pred = 0.5 * (coarse[sides[0]] + coarse[sides[1]])
        pairs, others = [(coarse[sides[0]], coarse[sides[1]])], [pred]
        loc = _local_ncc(coarse[z], pred, win)
        loc_ref = _local_ncc(coarse[sides[0]], coarse[sides[1]], win)
    else:  # one side only (a stack's end, a run of missing sections): the best of all neighbours
        if min(abs(i - z) for i in good) > 1:  # nothing adjacent: too little to judge a region by
            return np.zeros_like(coarse[z], dtype=bool)
        pred = None
        loc = np.max([_local_ncc(coarse[z], coarse[i], win) for i in good], axis=0)
        loc_ref = np.max([_local_ncc(a, b, win) for a, b in pairs], axis=0)
    # Two kinds of evidence: correlation lost where the neighbours keep theirs, or correlation low
    # where the section has lost the coarse structure its neighbours show (an empty acquisition is
    # noise, without cells at this scale).
    structure = _local_var(coarse[z], win) / np.maximum(
        np.max([_local_var(coarse[i], win) for i in good], axis=0), 1e-12
    )
    # The best of several correlations is biased up: it must fall lower.
    low = min_similarity if pred is not None else 0.5 * min_similarity
    core = ((loc < low) & (loc < drop * loc_ref) & (loc_ref >= 3 * min_similarity)) | (
        (structure < 0.3) & (loc < min_similarity)
    )
    core = ndimage.binary_opening(core, iterations=2)
    if pred is None:  # no growth step to outline them: only large regions count
        core = _large_regions(
            ndimage.binary_closing(core, iterations=win // 2), 2 * partial_fraction
        )
    else:  # a core only seeds the region grown below
        core = _large_regions(core, 0.5 * partial_fraction)
    # Confirm each core with the correlation over all of its pixels (far more samples than one
    # window): unrelated to every neighbour, while they relate there.
    core &= ~exclude
    labels, n = ndimage.label(core)
    for i in range(1, n + 1):
        region = labels == i
        if not _unrelated(region, coarse[z], others, pairs, min_similarity, drop):
            core[region] = False
    intact = (loc >= 0.3) & ~exclude
    if pred is None or not core.any() or not intact.any():
        return core
    fine = cv2.GaussianBlur(_local_ncc(coarse[z], pred, max(5, (win // 2) | 1)), (0, 0), 2.0)
    split = 0.5 * (float(np.median(fine[core])) + float(np.median(fine[intact])))
    labels, n = ndimage.label(fine < split)
    out = np.zeros_like(core)
    for i in range(1, n + 1):
        region = labels == i
        seed = core & region
        if not seed.any():
            continue
        region = ndimage.binary_fill_holes(region | seed) & ~exclude
        # The grown region must still be unrelated to every neighbour as a whole; one that spread
        # into intact tissue is not, and its core stands alone.
        out |= (
            region if _unrelated(region, coarse[z], others, pairs, min_similarity, drop) else seed
        )
    return _large_regions(out, partial_fraction)


def _unrelated(region, section, others, pairs, min_similarity, drop) -> bool:
    """Whether ``section`` is unrelated to each of ``others`` over ``region`` while some pair of
    ``pairs`` relates there."""
    best = max(_ncc(section[region], o[region]) for o in others)
    ref = max((_ncc(a[region], b[region]) for a, b in pairs), default=0.0)
    return best < drop * ref and ref >= min_similarity


def _large_regions(region: np.ndarray, min_fraction: float, thick: float = 0.0) -> np.ndarray:
    """Connected parts of ``region`` covering at least ``min_fraction`` of the section and, with
    ``thick``, reaching that far from their boundary somewhere (a fold's black band is flat too, but
    long and narrow; a lost region is a broad area)."""
    labels, n = ndimage.label(region)
    if n == 0:
        return region
    index = np.arange(1, n + 1)
    keep = ndimage.sum(region, labels, index) / region.size >= min_fraction
    if thick > 0 and keep.any():
        depth = ndimage.distance_transform_edt(np.pad(region, 1))[1:-1, 1:-1]
        keep &= ndimage.maximum(depth, labels, index) >= thick
    return np.isin(labels, index[keep])


def _flat_region(section: np.ndarray, flat_std: float) -> np.ndarray:
    """Pixels of blank or constant areas: no variation at all in a 5 x 5 neighbourhood (imaging
    noise makes real tissue vary everywhere)."""
    u = to_unit(section)
    var = cv2.blur(u * u, (5, 5)) - cv2.blur(u, (5, 5)) ** 2
    return (
        cv2.morphologyEx(
            (var < flat_std**2).astype(np.uint8),
            cv2.MORPH_OPEN,
            np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], np.uint8),
            iterations=2,
        )
        > 0
    )
