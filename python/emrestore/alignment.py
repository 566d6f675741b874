"""Dense alignment of two sections to a position between them: OpenCV's DIS optical flow in both
directions, each section warped with ``emrestore.ops.warp`` to the fractional position ``t``.

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


def _dis():
    # One per thread: a DIS object is not safe to share (fit draws batches in a second thread),
    # and building one costs more than the flow of a small crop.
    if not hasattr(_LOCAL, "dis"):
        _LOCAL.dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    return _LOCAL.dis


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
        raise ValueError(f"optical_flow: expected two sections [H, W] of one shape; got {a.shape} and {b.shape}")
    return _dis().calc(np.ascontiguousarray(to_u8(a)), np.ascontiguousarray(to_u8(b)), None)


def _warp(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    img = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None, None]
    f = torch.from_numpy(np.ascontiguousarray(flow, dtype=np.float32)).permute(2, 0, 1)[None].contiguous()
    with torch.no_grad():
        return ops.warp(img, f, "bilinear", "border")[0, 0].numpy()


def align_pair(a: np.ndarray, b: np.ndarray, t: float) -> tuple[np.ndarray, np.ndarray]:
    """``a`` and ``b`` warped to the section at fraction ``t`` between them (float32, a's units).

    That section samples a at p - t f_ab(p) and b at p - (1 - t) f_ba(p): the flows are taken at p
    itself, fine for the small, smooth motion between neighbouring sections."""
    if not 0.0 <= t <= 1.0:
        raise ValueError(f"align_pair: t must lie in [0, 1]; got {t}")
    f_ab, f_ba = optical_flow(a, b), optical_flow(b, a)
    return _warp(a, -t * f_ab), _warp(b, -(1 - t) * f_ba)
