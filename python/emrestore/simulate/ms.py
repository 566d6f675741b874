"""Missing sections (MS): a section lost entirely (blank, a constant grey, or noise from an empty
acquisition) or partially (a large region lost, bounded by a smooth random edge)."""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from ..conventions import check_section, full_scale, jsonable, to_dtype, work_dtype
from ._common import Artifact, Spec, draw, generator

MODES = ("blank", "constant", "noise", "partial")
DEFAULT_MODES = {"blank": 0.35, "constant": 0.2, "noise": 0.2, "partial": 0.25}


def _fill(rng, kind: str, shape, section: np.ndarray, scale: float) -> np.ndarray:
    if kind == "blank":
        return np.zeros(shape, np.float32)
    if kind == "constant":
        return np.full(shape, rng.uniform(0, 1) * scale, np.float32)
    # Noise of an empty acquisition: the section's mean and spread, slightly correlated.
    noise = ndimage.gaussian_filter(
        rng.standard_normal(shape).astype(np.float32), rng.uniform(0, 1.5)
    )
    noise /= noise.std() + 1e-12
    return section.mean() + rng.uniform(0.3, 1.0) * section.std() * noise


def _lost_region(rng, h: int, w: int, fraction: float) -> np.ndarray:
    """A region of exactly round(fraction * h * w) pixels on one side of a smooth wavy edge."""
    theta = rng.uniform(0, 2 * math.pi)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    along = -xx * math.sin(theta) + yy * math.cos(theta)
    wave = np.zeros_like(along)
    span = math.hypot(h, w)
    for k in range(1, 4):
        wave += rng.normal(0, 0.04 * span / k) * np.sin(
            2 * math.pi * k * along / span + rng.uniform(0, 6.3)
        )
    level = xx * math.cos(theta) + yy * math.sin(theta) + wave
    n_lost = int(round(fraction * h * w))
    order = np.argsort(level, axis=None, kind="stable")[:n_lost]
    region = np.zeros(h * w, bool)
    region[order] = True
    return region.reshape(h, w)


def simulate_ms(
    image: np.ndarray,
    index: int | None = None,
    *,
    seed=None,
    mode: str | dict[str, float] = DEFAULT_MODES,
    fraction: Spec = (0.2, 0.7),
) -> Artifact:
    """Replaces one section (``image`` [H, W], or ``image[index]`` of a stack) as a missing section.

    ``mode`` is one of "blank", "constant", "noise", "partial", or a dict of their probabilities.
    A partial loss covers ``fraction`` of the section, filled as blank, constant or noise.
    """
    section = check_section(image, index, "simulate_ms")
    rng = generator(seed)
    if isinstance(mode, dict):
        unknown = set(mode) - set(MODES)
        if unknown or not mode or min(mode.values()) < 0 or sum(mode.values()) <= 0:
            raise ValueError(
                f"simulate_ms: mode probabilities must be non-negative over {MODES}; got {mode}"
            )
        names = list(mode)
        p = np.array([mode[k] for k in names], float)
        mode = names[rng.choice(len(names), p=p / p.sum())]
    elif mode not in MODES:
        raise ValueError(
            f"simulate_ms: mode must be one of {MODES} or a dict of probabilities; got {mode!r}"
        )
    h, w = section.shape
    scale = full_scale(section.dtype)
    params: dict = {"mode": mode}
    if mode == "partial":
        frac = draw(rng, fraction, "fraction")
        if not 0 < frac <= 1:
            raise ValueError(f"simulate_ms: fraction must be in (0, 1]; got {frac}")
        region = _lost_region(rng, h, w, frac)
        fill = ("blank", "constant", "noise")[rng.integers(3)]
        out = section.astype(work_dtype(section.dtype))
        out[region] = _fill(rng, fill, (h, w), section, scale)[region]
        params.update(fraction=frac, fill=fill)
    else:
        region = np.ones((h, w), bool)
        out = _fill(rng, mode, (h, w), section, scale)
    return Artifact(
        kind="ms",
        image=to_dtype(out, section.dtype),
        mask=region,
        alpha=region.astype(np.float32),
        params=jsonable(params),
    )
