"""Working copies and morphology shared by the detectors."""

from __future__ import annotations

import math

import cv2
import numpy as np

from ..conventions import to_unit


def working_copy(section: np.ndarray, max_side: int) -> tuple[np.ndarray, int]:
    """The section in [0, 1], reduced by an integer factor (area average) to at most ``max_side``
    pixels across, and that factor."""
    h, w = section.shape
    factor = max(1, int(math.ceil(max(h, w) / max_side)))
    u = to_unit(section)
    if factor > 1:
        u = cv2.resize(u, (w // factor, h // factor), interpolation=cv2.INTER_AREA)
    return u, factor


def opening(mask: np.ndarray, iterations: int) -> np.ndarray:
    """Binary opening with a 3 x 3 square (OpenCV: far faster than scipy on large masks)."""
    return (
        cv2.morphologyEx(
            mask.astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8), iterations=iterations
        )
        > 0
    )
