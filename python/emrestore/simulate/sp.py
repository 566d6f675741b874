"""Staining precipitates (SP): dark, soft-edged blobs of varied size and shape, and the global
contrast change of a badly stained section.

Sizes follow the published simulator's buckets (areas < 5k, 5-15k, 15-30k, 30-80k and > 80k px^2
with at most 10/8/5/3/1 blobs each in a 2048 x 2048 section; the counts scale with the section's
area, the sizes do not: a precipitate has a physical size). Each blob darkens the section
multiplicatively; its outline is an ellipse with random low-order harmonics, its edge a smoothstep a
few pixels wide, its interior slightly mottled. The contrast change is out = a I + (170 - 147 a) for
8-bit data (Huang et al. 2020; a in [0.3, 0.5]), scaled to the dtype's range.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from ..conventions import check_section, full_scale, jsonable, to_dtype, work_dtype
from ._common import Artifact, Spec, draw, generator, smoothstep

BUCKETS = ((200, 5_000), (5_000, 15_000), (15_000, 30_000), (30_000, 80_000), (80_000, 200_000))
CAPS = (10, 8, 5, 3, 1)
REFERENCE_AREA = 2048 * 2048


def _bucket_counts(rng, h, w, caps, max_area):
    """Blobs per size bucket: U{0..cap} scaled by the section's area, at least one blob in total."""
    scale = h * w / REFERENCE_AREA
    counts = []
    for (lo, _), cap in zip(BUCKETS, caps):
        expected = rng.integers(0, cap + 1) * scale
        n = int(expected) + int(rng.uniform() < expected - int(expected))  # stochastic rounding
        counts.append(n if lo < max_area else 0)
    if sum(counts) == 0:
        fits = [i for i, (lo, _) in enumerate(BUCKETS) if lo < max_area and caps[i] > 0]
        weights = np.array([caps[i] for i in fits], float)
        counts[fits[rng.choice(len(fits), p=weights / weights.sum())]] = 1
    return counts


def _blob(rng, area, h, w, *, elongation, irregularity, edge, darkness, texture):
    """One blob: its opacity in a bounding box, the box's top-left corner and its description."""
    r0 = math.sqrt(area / math.pi)
    e = draw(rng, elongation, "elongation")
    a, b = r0 * math.sqrt(e), r0 / math.sqrt(e)
    irr = draw(rng, irregularity, "irregularity")
    soft = draw(rng, edge, "edge")
    phi = rng.uniform(0, math.pi)
    harmonics = [(k, rng.normal(0, irr / k), rng.uniform(0, 2 * math.pi)) for k in range(2, 6)]
    reach = int(math.ceil(a * (1 + 2 * irr) + soft)) + 2
    cy, cx = rng.uniform(0, h), rng.uniform(0, w)
    y0, x0 = max(int(cy) - reach, 0), max(int(cx) - reach, 0)
    y1, x1 = min(int(cy) + reach + 1, h), min(int(cx) + reach + 1, w)
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    yy -= cy
    xx -= cx
    u = xx * math.cos(phi) + yy * math.sin(phi)
    v = -xx * math.sin(phi) + yy * math.cos(phi)
    rho = np.sqrt((u / a) ** 2 + (v / b) ** 2)
    ang = np.arctan2(v / b, u / a)
    outline = np.ones_like(rho)
    for k, c, ph in harmonics:
        outline += c * np.cos(k * ang + ph)
    outline = np.maximum(outline, 0.3)
    inside = (1 - rho / outline) * math.sqrt(a * b)  # approximately pixels inside the edge
    alpha = smoothstep(inside / soft + 0.5)
    depth = draw(rng, darkness, "darkness")
    mottle = 1 + texture * ndimage.gaussian_filter(rng.standard_normal(alpha.shape), 1.5) * 4
    opacity = np.clip(alpha * depth * mottle, 0, 1).astype(np.float32)
    record = {
        "centre": [cx, cy],
        "area": area,
        "elongation": e,
        "angle": phi,
        "irregularity": irr,
        "edge": soft,
        "darkness": depth,
    }
    return opacity, (y0, x0), record


def simulate_sp(
    image: np.ndarray,
    index: int | None = None,
    *,
    seed=None,
    caps: tuple[int, ...] = CAPS,
    darkness: Spec = (0.55, 0.95),
    elongation: Spec = (1.0, 2.5),
    irregularity: Spec = (0.0, 0.25),
    edge: Spec = (1.0, 4.0),
    texture: float = 0.05,
    contrast: Spec | None = (0.3, 0.5),
    contrast_probability: float = 0.5,
) -> Artifact:
    """Adds staining precipitates to one section (``image`` [H, W], or ``image[index]`` of a stack).

    ``caps`` bounds the blob count per size bucket (at 2048^2; see the module), ``darkness`` is the
    fraction of the intensity a blob's core removes, ``edge`` the width of its soft edge in pixels.
    With probability ``contrast_probability`` the whole section also gets the published contrast
    change with ``a`` drawn from ``contrast`` (None: never). ``mask`` marks the blobs (every pixel a
    blob darkened), ``alpha`` their combined opacity.
    """
    section = check_section(image, index, "simulate_sp")
    if len(caps) != len(BUCKETS) or min(caps) < 0:
        raise ValueError(
            f"simulate_sp: caps must be {len(BUCKETS)} non-negative counts; got {caps}"
        )
    rng = generator(seed)
    h, w = section.shape
    smallest = BUCKETS[0][0]  # a blob covers at most half the section
    if 0.5 * h * w <= smallest:
        raise ValueError(
            f"simulate_sp: a section of {h} x {w} px is too small for precipitates (the smallest "
            f"covers {smallest} px, at most half a section: at least {2 * smallest + 1} px needed)"
        )
    counts = _bucket_counts(rng, h, w, caps, max_area=0.5 * h * w)
    work = work_dtype(section.dtype)
    out = section.astype(work)
    a = None
    if contrast is not None and rng.uniform() < contrast_probability:
        a = draw(rng, contrast, "contrast")
        out = a * out + (170 - 147 * a) / 255 * full_scale(section.dtype)
    transmit = np.ones((h, w), work)  # product of (1 - opacity) over the blobs
    blobs = []
    for (lo, hi), n in zip(BUCKETS, counts):
        for _ in range(n):
            area = rng.uniform(lo, min(hi, 0.5 * h * w))
            opacity, (y0, x0), record = _blob(
                rng,
                area,
                h,
                w,
                elongation=elongation,
                irregularity=irregularity,
                edge=edge,
                darkness=darkness,
                texture=texture,
            )
            transmit[y0 : y0 + opacity.shape[0], x0 : x0 + opacity.shape[1]] *= 1 - opacity
            blobs.append(record)
    out *= transmit
    alpha = 1 - transmit
    params = {"contrast": a, "counts": counts, "blobs": blobs}
    return Artifact(
        kind="sp",
        image=to_dtype(out, section.dtype),
        mask=alpha > 0,
        alpha=alpha,
        params=jsonable(params),
    )
