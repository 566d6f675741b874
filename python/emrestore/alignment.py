"""Dense alignment of two sections to a position between them: OpenCV's DIS optical flow in both
directions, each section warped with ``emrestore.ops.warp`` to the fractional position ``t``.

Given the sections beyond the pair (``outer``), each side's motion is also measured against its
outer section, which lies closer to it than the other neighbour does: the flow over the shorter
distance sees less change of content and errs less (on FlyEM at 50 nm, the flow to the outer
section alone aligns better than the flow across the gap; see docs/archive/interpolation-log.md).
Each side's velocity is the mean of the two estimates, weighted by the inverse of the distance each
was measured over, and the motion stays linear in z.

DIS errs differently on a section turned or mirrored (its patch grid and coarse-to-fine search are
not symmetric), so ``views`` > 1 averages the flows of the pair seen in that many of the square's
eight symmetries, each mapped back: a better motion estimate at that many times the cost (measured
in docs/archive/interpolation-log.md, "Flow averaged over the section's symmetries").

Used by the ``flow`` baseline (the blend of the two aligned sections) and by flow-guided
interpolation networks, whose per-pixel kernels then only refine what the flow got roughly right.
"""

from __future__ import annotations

import threading

import cv2
import numpy as np
import torch

from . import ops

_LOCAL = threading.local()
MIN_FLOW_SIDE = 12  # DIS needs a section at least this wide or high


def _dis(shape: tuple[int, int]):
    # One per thread (a DIS object is not safe to share: fit draws batches in a second thread) and
    # per section shape: a DIS object adapts its pyramid to the first small image it sees and keeps
    # that, so reused across shapes its flows would depend on what it saw before. Building one
    # costs more than the flow of a small crop, so a few are kept.
    cache = _LOCAL.__dict__.setdefault("dis", {})
    if shape not in cache:
        if len(cache) >= 8:
            cache.pop(next(iter(cache)))
        cache[shape] = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    return cache[shape]


def to_u8(section: np.ndarray) -> np.ndarray:
    """8-bit view for the flow: integers by their dtype's range, floats as intensities in [0, 1]."""
    section = np.asarray(section)
    if section.dtype == np.uint8:
        return section
    scale = 255.0 / (np.iinfo(section.dtype).max if section.dtype.kind in "ui" else 1.0)
    return np.clip(section.astype(np.float64) * scale, 0, 255).astype(np.uint8)


def optical_flow(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Flow f [H, W, 2] (x, y) float32 with a(p) ~ b(p + f(p))."""
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(
            f"optical_flow: expected two sections [H, W] of one shape; got {a.shape} and {b.shape}"
        )
    if max(a.shape) < MIN_FLOW_SIDE:  # too small for the flow's patches: no motion seen
        return np.zeros((*a.shape, 2), np.float32)
    return _dis(a.shape).calc(np.ascontiguousarray(to_u8(a)), np.ascontiguousarray(to_u8(b)), None)


VIEWS = (1, 2, 4, 8)  # how many of the square's symmetries a flow may be averaged over
ALL_VIEWS = 8  # all of them: the averaged flow then turns and mirrors exactly with the sections
_TURN = np.array([[0.0, 1.0], [-1.0, 0.0]])  # np.rot90 once, on (x, y) displacements
_MIRROR = np.diag([-1.0, 1.0])  # a mirror image in x


def dihedral(x: np.ndarray, k: int, mirror: bool) -> np.ndarray:
    """``x`` [H, W, ...] mirrored in x if ``mirror``, then turned k times by 90 degrees."""
    return np.ascontiguousarray(np.rot90(x[:, ::-1] if mirror else x, k))


def undo_dihedral(x: np.ndarray, k: int, mirror: bool) -> np.ndarray:
    """The inverse of ``dihedral``."""
    x = np.rot90(x, -k)
    return x[:, ::-1] if mirror else x


def dihedral_views(n: int):
    """The first ``n`` symmetries as (k, mirror, vector map back): turns by k x 90 degrees, each
    without and with a mirror image (``dihedral``)."""
    for i in range(n):
        k, mirror = divmod(i, 2)
        linear = np.linalg.matrix_power(_TURN, k) @ (_MIRROR if mirror else np.eye(2))
        yield k, bool(mirror), np.linalg.inv(linear).T


def symmetric_flow(a: np.ndarray, b: np.ndarray, views: int = 8) -> np.ndarray:
    """``optical_flow`` averaged over ``views`` of the square's symmetries (1, 2, 4 or 8): each
    view's flow is mapped back to the sections' own frame before averaging."""
    if views not in VIEWS:
        raise ValueError(f"symmetric_flow: views must be one of {VIEWS}; got {views!r}")
    if views == 1:
        return optical_flow(a, b)
    total = None
    for k, mirror, back in dihedral_views(views):
        f = (
            undo_dihedral(optical_flow(dihedral(a, k, mirror), dihedral(b, k, mirror)), k, mirror)
            @ back
        )
        total = f if total is None else total + f
    return (total / views).astype(np.float32)


def warp_image(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """``image`` [H, W] sampled at p + ``flow``(p) [H, W, 2] (bilinear, border), float32."""
    img = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None, None]
    f = (
        torch.from_numpy(np.ascontiguousarray(flow, dtype=np.float32))
        .permute(2, 0, 1)[None]
        .contiguous()
    )
    with torch.no_grad():
        return ops.warp(img, f, "bilinear", "border")[0, 0].numpy()


def velocity(
    near: np.ndarray,
    other: np.ndarray,
    outer: np.ndarray | None = None,
    outer_gap: float = 1.0,
    views: int = 1,
) -> np.ndarray:
    """Displacement field [H, W, 2] of ``near``'s content per gap towards ``other``.

    ``outer``: a section on the far side of ``near``, ``outer_gap`` gaps from it (0.5: half as far
    as ``other``). Its flow, reversed and scaled to one gap, is a second estimate; the two are
    weighted 1 : 1 / outer_gap (inverse distance). ``views``: see ``symmetric_flow``."""
    f = symmetric_flow(near, other, views)
    if outer is None:
        return f
    if not outer_gap > 0:
        raise ValueError(f"velocity: outer_gap must be > 0; got {outer_gap}")
    w = outer_gap / (1.0 + outer_gap)
    return w * f - (1.0 - w) / outer_gap * symmetric_flow(near, outer, views)


def outer_indices(usable, below: int, above: int, step: int = 1) -> tuple[int | None, int | None]:
    """The nearest usable sections beyond ``below`` and ``above`` (at multiples of ``step``), each
    only if it lies no farther from its neighbour than ``above - below``: past that its flow spans
    more change than the direct one, and is no better an estimate of the motion."""
    usable = np.asarray(usable, bool)
    reach = above - below
    lo = next(
        (s for s in range(below - step, below - reach - 1, -step) if s >= 0 and usable[s]), None
    )
    hi = next(
        (s for s in range(above + step, above + reach + 1, step) if s < len(usable) and usable[s]),
        None,
    )
    return lo, hi


def outer_gaps(below: int, above: int, outer: tuple[int | None, int | None]) -> tuple[float, float]:
    """``align_pair``'s outer_gaps for sections at these indices (1.0 where there is none)."""
    lo, hi = outer
    span = above - below
    return (
        (below - lo) / span if lo is not None else 1.0,
        (hi - above) / span if hi is not None else 1.0,
    )


def align_pair(
    a: np.ndarray,
    b: np.ndarray,
    t: float,
    *,
    outer=(None, None),
    outer_gaps=(1.0, 1.0),
    views: int = 1,
) -> tuple[np.ndarray, np.ndarray]:
    """``a`` and ``b`` warped to the section at fraction ``t`` between them (float32, a's units).

    That section samples a at p - t v_ab(p) and b at p - (1 - t) v_ba(p): the flows are taken at p
    itself, fine for the small, smooth motion between neighbouring sections. ``outer``: the
    sections beyond a (on the side away from b) and beyond b, or None for either; ``outer_gaps``:
    their distances from a and from b in units of the a-b distance (see ``velocity``); ``views``:
    each flow averaged over that many of the square's symmetries (see ``symmetric_flow``)."""
    if not 0.0 <= t <= 1.0:
        raise ValueError(f"align_pair: t must lie in [0, 1]; got {t}")
    outer_a, outer_b = outer
    for name, o in (("outer[0]", outer_a), ("outer[1]", outer_b)):
        if o is not None and np.shape(o) != np.shape(a):
            raise ValueError(
                f"align_pair: {name} must have the pair's shape {np.shape(a)}; got {np.shape(o)}"
            )
    v_ab = velocity(a, b, outer_a, outer_gaps[0], views)
    v_ba = velocity(b, a, outer_b, outer_gaps[1], views)
    return warp_image(a, -t * v_ab), warp_image(b, -(1 - t) * v_ba)
