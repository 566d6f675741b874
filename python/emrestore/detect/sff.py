"""Support-film folds (SFF): a dark-band response, a weighted Hough transform of its ridges, and
each candidate line verified and traced on profiles averaged along it.

1. Band response: at half-widths of 4-40 px (at a working scale of at most ``max_side`` px), the
   relative darkness of a band core against the ring around it, 1 - mean(core) / mean(ring): 1 for
   a black band, about 1 - level for a film overlap at ``level`` times the content, low for
   membranes (thinner than the smallest core).
2. Candidates: the skeleton of the responding regions votes with the response in ``hough_lines``
   (weighted votes); ``hough_peaks`` keeps lines whose votes cover a share of their chord. Long,
   elongated pieces of that skeleton add the line along their principal axis (a curved fold
   spreads its votes over many rho bins and may make no peak).
3. Verification and tracing: the section is resampled in a strip along each candidate line and
   averaged over 32 px along it, so tissue averages out while a band stays. Tracking starts where
   the band is darkest on the line and runs both ways; at every 8 px the band is the dark run of
   the profile nearest the previous centre (it may drift: curved folds are followed), its
   half-width measured at half its darkness; the longest run of positions with few gaps is the
   fold; longer gaps are bridged when the band comes back with the same width and darkness.
   Folds that are not clearly dark must show more evidence (``fold_evidence``: long, smooth): dark
   tissue lines up only over short stretches, and wavers. A band cut by the border along most of
   its length is not a fold.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np
import torch
from scipy import ndimage

from .. import ops
from ._common import opening, working_copy

HALF_WIDTHS = (4, 6, 9, 13, 19, 28, 40)  # folds are >= 5 px half-width; membranes 1-2
MAX_GAP = 4  # positions (8 px apart) a traced band may vanish for and still be one fold
RIDGE_ELONGATION = 6.0  # variance along a ridge piece over across it, for a line through it
MAX_BRIDGE = 16  # longest gap (positions) bridged between two stretches of the same band


@dataclass
class Fold:
    centre: np.ndarray  # [P, 2] centre polyline (x, y) in pixels of the section
    half_width: np.ndarray  # [P] band half-width at each vertex
    darkness: float  # mean band response along the fold (0..1)
    length: float  # polyline length in pixels


@dataclass
class FoldDetection:
    folds: list[Fold] = field(default_factory=list)
    mask: np.ndarray | None = None  # bool [H, W], the fold bands
    response: np.ndarray | None = None  # band response at the working scale (for inspection)


def band_response(u: np.ndarray, half_widths=HALF_WIDTHS) -> tuple[np.ndarray, np.ndarray]:
    """Relative darkness of the best-matching band at each pixel, and that band's half-width."""
    best = np.zeros_like(u)
    width = np.zeros_like(u)
    for w in half_widths:
        core_k = 2 * int(round(0.6 * w)) + 1
        outer_k = 6 * w + 1
        core = cv2.blur(u, (core_k, core_k))
        s_out = cv2.blur(u, (outer_k, outer_k)) * outer_k * outer_k
        s_in = cv2.blur(u, (2 * w + 1, 2 * w + 1)) * (2 * w + 1) ** 2
        ring = (s_out - s_in) / (outer_k * outer_k - (2 * w + 1) ** 2)
        d = np.clip(1 - core / np.maximum(ring, 1e-3), 0, 1)
        better = d > best
        best[better] = d[better]
        width[better] = w
    return best, width


def detect_folds(
    section: np.ndarray,
    *,
    max_side: int = 1024,
    vote_threshold: float = 0.3,
    line_fraction: float = 0.15,
    strip_threshold: float = 0.3,
    min_darkness: float = 0.35,
    dark_fold: float = 0.7,
    min_evidence: float = 0.6,
    min_pale_length: float = 0.3,
    min_length: float = 0.15,
    max_folds: int = 6,
    vote_side: int = 512,
) -> FoldDetection:
    """Finds folds in one section [H, W].

    ``vote_threshold``: band response that casts Hough votes. ``line_fraction``: share of a line's
    chord its votes must cover to be a candidate. ``strip_threshold``: darkness of the averaged
    profile (1 - profile / its median) that marks the band. ``min_darkness``: the mean band darkness
    a fold needs; from ``dark_fold`` on, that is enough. A paler band must show more evidence of
    being a fold (see ``fold_evidence``), ``min_evidence``, and be ``min_pale_length`` long.
    ``min_length``: the shortest fold. Lengths are fractions of the section's smaller side.
    """
    h, w = section.shape
    u, factor = working_copy(section, max_side)
    hs, ws = u.shape
    # Candidates come from a coarser copy (at most vote_side px): the strip tracing that verifies
    # them runs at the working scale.
    f2 = max(1, int(math.ceil(max(hs, ws) / vote_side)))
    uv = cv2.resize(u, (ws // f2, hs // f2), interpolation=cv2.INTER_AREA) if f2 > 1 else u
    widths = [s // f2 for s in HALF_WIDTHS if s // f2 >= 2 and 6 * (s // f2) + 1 < min(uv.shape)]
    resp, _ = band_response(uv, sorted(set(widths)))
    # Ridges: the skeleton of the responding regions (after an opening that drops thin dark lines
    # such as membranes), along which a fold's votes line up.
    from skimage.morphology import skeletonize

    ridge = skeletonize(opening(resp > vote_threshold, 2))
    votes = torch.from_numpy((ridge * resp).astype(np.float32))
    acc, thetas, rhos = ops.hough_lines(votes)
    peaks = ops.hough_peaks(
        acc,
        thetas,
        rhos,
        num_peaks=3 * max_folds,
        min_distance=int(2 * HALF_WIDTHS[-1] / f2),
        min_angle=8,
        line_fraction=line_fraction * vote_threshold,
        image_shape=uv.shape,
    )
    # Lines in the coarse copy's pixels to lines in the working scale's (pixel centres map as
    # x = f2 x' + (f2 - 1) / 2).
    lines = [
        (float(t), f2 * float(r) + 0.5 * (f2 - 1) * (math.cos(float(t)) + math.sin(float(t))))
        for _, t, r in zip(*peaks)
    ]
    side = min(hs, ws)
    lines += ridge_lines(ridge, min_length * min(uv.shape), f2)
    kept: list[tuple[Fold, np.ndarray, float]] = []
    for theta, rho in lines:
        fold = _trace_strip(
            u, theta, rho, band_threshold=strip_threshold, min_length=min_length * side
        )
        if fold is None:
            continue
        evidence = fold_evidence(fold, side)
        pale = fold.darkness < dark_fold
        if fold.darkness < min_darkness or (
            pale and (evidence < min_evidence or fold.length < min_pale_length * side)
        ):
            continue
        corridor = _corridor(fold, hs, ws)
        # A curved fold answers on several tangent lines: overlapping traces are one fold, and the
        # trace with the most evidence is its geometry (where a fold crosses dark tissue, the
        # tissue's trace can be the longer one).
        for k, (_other, other_corridor, other_evidence) in enumerate(kept):
            if (corridor & other_corridor).sum() > 0.2 * min(corridor.sum(), other_corridor.sum()):
                if evidence > other_evidence:
                    kept[k] = (fold, corridor, evidence)
                break
        else:
            kept.append((fold, corridor, evidence))
        if len(kept) == max_folds:
            break
    folds = [f for f, _, _ in kept]
    mask = np.zeros((hs, ws), bool)
    for _, corridor, _ in kept:
        mask |= corridor
    if factor > 1:
        mask = cv2.resize(mask.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST) > 0
        folds = [scale_fold(f, factor) for f in folds]
    return FoldDetection(folds=folds, mask=mask, response=resp)  # response at the vote scale


def ridge_lines(ridge: np.ndarray, min_extent: float, f2: int) -> list:
    """Lines through long, straight-ish ridge pieces (their principal axis), in working-scale
    pixels. A curved fold spreads its votes over many rho bins and may make no Hough peak, but its
    ridge is one long piece."""
    labels, _ = ndimage.label(ridge, structure=np.ones((3, 3)))
    sizes = np.bincount(labels.ravel())
    boxes = ndimage.find_objects(labels)
    lines = []
    for lab in np.flatnonzero(sizes[1:] >= min_extent) + 1:
        box = boxes[lab - 1]
        ys, xs = np.nonzero(labels[box] == lab)
        pts = np.stack([xs + box[1].start, ys + box[0].start], 1).astype(np.float64)
        c = pts.mean(0)
        evals, evecs = np.linalg.eigh(np.cov((pts - c).T))
        extent = np.ptp((pts - c) @ evecs[:, 1])
        if extent < min_extent or evals[1] < RIDGE_ELONGATION * max(evals[0], 1e-6):
            continue
        normal = evecs[:, 0]
        theta = math.atan2(normal[1], normal[0])
        c = f2 * c + 0.5 * (f2 - 1)
        lines.append((theta, float(c @ np.array([math.cos(theta), math.sin(theta)]))))
    return lines


def fold_evidence(fold: Fold, side: float) -> float:
    """How fold-like a traced band is: its darkness, plus a third of its length as a share of the
    section's smaller side, less a penalty for a wavering centre line. Folds are smooth curves;
    dark tissue that lines up with a Hough line does so over short stretches and in zigzags. The
    weights come from a linear fit separating simulated folds from traces on clean ISBI 2012 and
    FlyEM sections (pale bands only: 0.3 <= darkness < 0.7)."""
    centre = fold.centre[1:-1]  # the ends were extended along the chord
    waver = (
        float(np.linalg.norm(np.diff(centre, 2, axis=0), axis=1).mean()) if len(centre) > 2 else 0.0
    )
    return fold.darkness + min(fold.length / side, 1.0) / 3 - 0.06 * math.log1p(waver)


def longest_run(samples: list) -> list:
    """The longest stretch of traced samples (None: band not seen). Gaps of up to MAX_GAP positions
    are part of a stretch; longer gaps, up to MAX_BRIDGE, are bridged when the band on both sides
    has the same width and darkness (a band crossing bright or dark tissue can vanish from the
    averaged profile for a while: the tracker keeps its position, so both sides are one line)."""
    runs, cur, gap, gaps = [], [], 0, []
    for s in samples:
        if s is None:
            gap += 1
            continue
        if cur and gap > MAX_GAP:
            runs.append(cur)
            gaps.append(gap)
            cur = []
        gap = 0
        cur.append(s)
    if cur:
        runs.append(cur)
    if not runs:
        return []

    def alike(a, b):
        if min(len(a), len(b)) < 3:
            return False
        wa, wb = (float(np.median([hw for _, hw, _, _ in r])) for r in (a, b))
        da, db = (float(np.median([dk for _, _, dk, _ in r])) for r in (a, b))
        return max(wa, wb) <= 1.5 * min(wa, wb) and max(da, db) <= 1.33 * min(da, db)

    merged = [runs[0]]
    spans = [len(runs[0])]  # positions covered, bridged gaps included
    for run, g in zip(runs[1:], gaps):
        if g <= MAX_BRIDGE and alike(merged[-1], run):
            merged[-1] = merged[-1] + run
            spans[-1] += g + len(run)
        else:
            merged.append(run)
            spans.append(len(run))
    return merged[int(np.argmax(spans))]


def scale_fold(fold: Fold, factor: int) -> Fold:
    """``fold``, traced on a copy ``factor`` times smaller, in the section's pixels (pixel centres
    map as x = factor x' + (factor - 1) / 2)."""
    if factor > 1:
        fold.centre = fold.centre * factor + (factor - 1) / 2
        fold.half_width = fold.half_width * factor
        fold.length *= factor
    return fold


def fold_band(fold: Fold, shape: tuple[int, int]) -> np.ndarray:
    """Bool mask [H, W] of the fold's band: within its half-width of its centre polyline."""
    return _corridor(fold, *shape)


def _corridor(fold: Fold, hs: int, ws: int) -> np.ndarray:
    """Pixels within the band half-width of the fold's centre polyline."""
    canvas = np.zeros((hs, ws), np.uint8)
    pts = np.rint(fold.centre).astype(np.int32)
    for a, b, hw in zip(pts[:-1], pts[1:], fold.half_width[:-1]):
        cv2.line(
            canvas,
            tuple(int(v) for v in a),
            tuple(int(v) for v in b),
            1,
            thickness=max(1, int(round(2 * hw))),
        )
    return canvas > 0


def _strip(
    u: np.ndarray, origin, d, n, t0: float, t1: float, search: int
) -> tuple[np.ndarray, np.ndarray]:
    """The image resampled along a line: rows are offsets -search..search along the normal n,
    columns positions t0..t1 (1 px apart) along the direction d. Outside the image: NaN."""
    ts = np.arange(t0, t1 + 1e-6, 1.0, dtype=np.float32)
    offs = np.arange(-search, search + 1, dtype=np.float32)
    map_x = (origin[0] + ts[None, :] * d[0] + offs[:, None] * n[0]).astype(np.float32)
    map_y = (origin[1] + ts[None, :] * d[1] + offs[:, None] * n[1]).astype(np.float32)
    strip = cv2.remap(
        u, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=np.nan
    )
    return strip, ts


def _trace_strip(
    u,
    theta,
    rho,
    *,
    band_threshold,
    min_length,
    window=32,
    step=8,
    search=80,
    max_drift=4.0,
    min_half=3.0,
    seeds=3,
    seed_reach=8,
):
    """Follows a band along the line x cos(theta) + y sin(theta) = rho on profiles averaged over
    ``window`` px along the line (tissue averages out, a band does not). At each position the band
    is the run of offsets darker than ``band_threshold`` (1 - profile / the profile's median),
    nearest the previous centre; its half-width is the run's half-length at half its peak darkness.

    Tracking starts where the band is darkest within ``seed_reach`` px of the line (the line came
    from the band's votes, so it passes through the band there) and runs both ways from there: a
    partial fold seen from the line's end would be approached through tissue, whose dark runs the
    tracker could lock onto. The ``seeds`` darkest places are tried; the fold is the best trace.
    """
    hs, ws = u.shape
    n = np.array([math.cos(theta), math.sin(theta)])
    d = np.array([-n[1], n[0]])
    origin = rho * n
    ts = [
        (np.array(c, float) - origin) @ d
        for c in ((0, 0), (ws - 1, 0), (0, hs - 1), (ws - 1, hs - 1))
    ]
    strip, tpos = _strip(u, origin, d, n, min(ts), max(ts), search)
    valid = np.isfinite(strip)
    filled = np.where(valid, strip, 0).astype(np.float32)
    k = (window, 1)
    count = cv2.blur(valid.astype(np.float32), k, borderType=cv2.BORDER_CONSTANT)
    mean = cv2.blur(filled, k, borderType=cv2.BORDER_CONSTANT) / np.maximum(count, 1e-6)
    mean[count < 0.5] = np.nan
    offs = np.arange(-search, search + 1)
    columns = list(range(window // 2, len(tpos) - window // 2, step))
    if not columns:
        return None
    profiles = mean[:, columns]
    usable = np.isfinite(profiles).sum(0) >= search  # not mostly outside the section
    with np.errstate(invalid="ignore", divide="ignore"):
        bg = np.nanmedian(np.where(usable, profiles, 1.0), 0)
        darks = np.where(np.isfinite(profiles), 1 - profiles / np.maximum(bg, 1e-3), 0)
    darks[:, ~usable] = 0

    def sample(i, centre, misses, seen):
        """The band at column i near ``centre`` (None when not seen)."""
        if not usable[i]:
            return None
        dark, ok = darks[:, i], np.isfinite(profiles[:, i])
        labels, count_runs = ndimage.label(dark > band_threshold)
        if count_runs == 0:
            return None
        runs = [np.flatnonzero(labels == r) for r in range(1, count_runs + 1)]
        idx = min(runs, key=lambda r: abs(offs[r].mean() - centre))
        c = float(offs[idx].mean())
        if abs(c - centre) > max_drift * (1 + misses):
            return None
        # Width at half the band's peak darkness.
        peak = dark[idx].max()
        lo, hi = idx[0], idx[-1]
        while lo > 0 and dark[lo - 1] > 0.5 * peak:
            lo -= 1
        while hi < len(dark) - 1 and dark[hi + 1] > 0.5 * peak:
            hi += 1
        half = 0.5 * (hi - lo + 1)
        darkness = float(dark[idx].mean())
        # Too narrow, or far paler than the band so far (the fold has ended; tissue goes on).
        if half < min_half or (len(seen) >= 3 and darkness < 0.75 * float(np.median(seen))):
            return None
        middle = 0.5 * (offs[lo] + offs[hi])
        at_edge = not (
            ok[max(lo - 2, 0)] and ok[min(hi + 2, len(ok) - 1)]
        )  # band cut by the border
        return c, (origin + tpos[columns[i]] * d + middle * n, half, darkness, at_edge)

    def follow(order, centre):
        samples, misses = [], 0  # misses: positions since the band was last seen (drift grows)
        for i in order:
            got = sample(i, centre, misses, [x[2] for x in samples[-8:] if x is not None])
            if got is None:
                samples.append(None)
                misses += 1
                continue
            c, s = got
            misses = 0
            centre = 0.5 * centre + 0.5 * c
            samples.append(s)
        return samples

    # Seeds: the darkest places within seed_reach of the line, averaged over 5 positions.
    near = np.abs(offs) <= seed_reach
    score = ndimage.uniform_filter1d(darks[near].max(0), 5, mode="constant")
    best, best_score, tried = [], 0.0, []
    for i in np.argsort(-score, kind="stable"):
        if len(tried) == seeds or score[i] < band_threshold:
            break
        if any(abs(int(i) - j) < 8 for j in tried):  # same stretch as a seed already tried
            continue
        tried.append(int(i))
        centre = float(offs[near][np.argmax(darks[near, i])])
        samples = (
            follow(range(i, -1, -1), centre)[::-1] + follow(range(i, len(columns)), centre)[1:]
        )
        run = _trim_pale_ends(longest_run(samples))
        run_score = sum(dk for _, _, dk, _ in run)
        if run_score > best_score:
            best, best_score = run, run_score
    # A band cut by the section's border along most of its length has tissue on one side only: it
    # cannot be told from the border's own shading.
    if len(best) < 2 or sum(e for *_, e in best) > 0.5 * len(best):
        return None
    pts = np.array([p for p, *_ in best])
    # Extend half a window at both ends: the profiles there average over the fold's last pixels.
    ext = window / 2 * (pts[-1] - pts[0]) / max(np.linalg.norm(pts[-1] - pts[0]), 1e-6)
    pts[0] -= ext
    pts[-1] += ext
    length = float(np.linalg.norm(np.diff(pts, axis=0), axis=1).sum())
    if length < min_length:
        return None
    return Fold(
        centre=pts,
        half_width=np.array([hw for _, hw, _, _ in best]),
        darkness=float(np.mean([dk for _, _, dk, _ in best])),
        length=length,
    )


def _trim_pale_ends(run: list) -> list:
    """Past a partial fold's end the profile may still catch dark tissue: pale ends are dropped."""
    if len(run) >= 4:
        typical = float(np.median([dk for _, _, dk, _ in run]))
        while len(run) > 2 and run[0][2] < 0.75 * typical:
            run = run[1:]
        while len(run) > 2 and run[-1][2] < 0.75 * typical:
            run = run[:-1]
    return run
