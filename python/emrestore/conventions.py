"""The conventions every part of emrestore shares: the artifact types and their mask bits, the
image dtypes it reads and writes, how intensities map to [0, 1] and back, and the checks a stack
passes before any work. This module is the ground floor: it imports nothing of the package."""

from __future__ import annotations

import numpy as np

# One bit per artifact type in mask volumes: missing (partial or whole) sections, support-film
# folds, staining precipitates.
MS, SFF, SP = 1, 2, 4
BITS = {"ms": MS, "sff": SFF, "sp": SP}
ARTIFACTS = tuple(BITS)

# Image dtypes of stacks (label volumes read for evaluation may hold any integers).
SUPPORTED_DTYPES = (np.uint8, np.uint16, np.float32, np.float64)
DTYPE_NAMES = "uint8, uint16, float32 or float64"


def is_supported(dtype) -> bool:
    """Whether ``dtype`` is one of ``SUPPORTED_DTYPES``."""
    return np.dtype(dtype).type in SUPPORTED_DTYPES


def full_scale(dtype) -> float:
    """The intensity of white: 255 for uint8, 65535 for uint16, 1.0 for floats (data in [0, 1])."""
    dtype = np.dtype(dtype)
    return float(np.iinfo(dtype).max) if dtype.kind == "u" else 1.0


def work_dtype(dtype):
    """Arithmetic precision for a section: float64 data keeps float64, everything else float32."""
    return np.float64 if np.dtype(dtype) == np.float64 else np.float32


def to_unit(section, dtype=np.float32, *, clip: bool = False) -> np.ndarray:
    """Intensities in [0, 1] as ``dtype``: integers divided by their dtype's maximum, floats as
    given (clipped to [0, 1] with ``clip``)."""
    section = np.asarray(section)
    if section.dtype.kind in "ui":
        return section.astype(dtype) / np.iinfo(section.dtype).max
    values = section.astype(dtype)
    return np.clip(values, 0, 1) if clip else values


def to_dtype(values: np.ndarray, dtype) -> np.ndarray:
    """Rounds and clips to the integer range, or casts to the float dtype."""
    dtype = np.dtype(dtype)
    if dtype.kind == "u":
        return np.clip(np.rint(values), 0, np.iinfo(dtype).max).astype(dtype)
    return values.astype(dtype)


def check_stack(stack, who: str = "detect", min_sections: int = 1) -> np.ndarray:
    """The checks every whole-stack entry point makes; errors name ``who`` and what it expected."""
    if not isinstance(stack, np.ndarray):
        raise TypeError(f"{who}: expected a numpy stack [Z, H, W]; got {type(stack).__name__}")
    if stack.ndim != 3:
        raise ValueError(f"{who}: expected a stack [Z, H, W]; got shape {stack.shape}")
    if stack.shape[0] == 0:
        raise ValueError(f"{who}: the stack is empty (0 sections)")
    if stack.shape[0] < min_sections:
        raise ValueError(
            f"{who}: need at least {min_sections} sections to interpolate from neighbours; "
            f"got {stack.shape[0]}"
        )
    if not is_supported(stack.dtype):
        raise TypeError(f"{who}: expected {DTYPE_NAMES}; got {stack.dtype}")
    if stack.dtype.kind == "f" and not np.isfinite(stack).all():
        raise ValueError(f"{who}: the stack contains NaN or infinite values")
    return stack


def check_section(image, index: int | None, who: str) -> np.ndarray:
    """The section to work on: ``image`` [H, W], or ``image[index]`` for a stack [Z, H, W]. Checks
    type, dtype, shape and values; never copies."""
    if not isinstance(image, np.ndarray):
        raise TypeError(f"{who}: expected a numpy array; got {type(image).__name__}")
    if index is not None:
        if image.ndim != 3:
            raise ValueError(
                f"{who}: with index, expected a stack [Z, H, W]; got shape {image.shape}"
            )
        if not -len(image) <= index < len(image):
            raise IndexError(
                f"{who}: index {index} out of range for a stack of {len(image)} sections"
            )
        image = image[index]
    if image.ndim != 2:
        raise ValueError(
            f"{who}: expected one section [H, W] (or a stack and an index); got shape {image.shape}"
        )
    if image.shape[0] < 2 or image.shape[1] < 2:
        raise ValueError(f"{who}: expected a section of at least 2 x 2 pixels; got {image.shape}")
    if not is_supported(image.dtype):
        raise TypeError(f"{who}: expected {DTYPE_NAMES}; got {image.dtype}")
    if image.dtype.kind == "f" and not np.isfinite(image).all():
        raise ValueError(f"{who}: the section contains NaN or infinite values")
    return image


def jsonable(value):
    """Converts numpy scalars and arrays (recursively) to plain Python for JSON; floats rounded to
    six decimals."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float):
        return round(value, 6)
    return value


def intensity_range(stack) -> tuple[float, float]:
    """The intensities that map to 0 and 1: (0, full scale) for integers and for floats already in
    [0, 1]; for other float stacks their own minimum and maximum, so that every step that works in
    [0, 1] sees the whole range and no value is clipped. ``stack``: an array, or any sequence of
    sections (read one at a time)."""
    dtype = np.dtype(stack.dtype)
    if dtype.kind != "f":
        return 0.0, full_scale(dtype)
    if isinstance(stack, np.ndarray):
        lo, hi = float(stack.min()), float(stack.max())
    else:
        sections = [np.asarray(stack[z]) for z in range(len(stack))]
        lo, hi = min(float(s.min()) for s in sections), max(float(s.max()) for s in sections)
    if 0.0 <= lo and hi <= 1.0:
        return 0.0, 1.0
    return lo, (hi if hi > lo else lo + 1.0)


def to_range_unit(values: np.ndarray, value_range: tuple[float, float]) -> np.ndarray:
    """Float ``values`` mapped from ``value_range`` to [0, 1] in their own precision; unchanged
    (not copied) when the range is already [0, 1] or the values are integers."""
    lo, hi = value_range
    if values.dtype.kind != "f" or (lo, hi) == (0.0, 1.0):
        return values
    return ((values - lo) / (hi - lo)).astype(values.dtype)


def from_unit(values: np.ndarray, dtype, value_range: tuple[float, float] | None = None):
    """Intensities in [0, 1] back in ``dtype``: integers at full scale (rounded, clipped), floats
    mapped to ``value_range`` (default [0, 1])."""
    dtype = np.dtype(dtype)
    if dtype.kind == "u":
        return to_dtype(values * full_scale(dtype), dtype)
    lo, hi = value_range or (0.0, 1.0)
    return to_dtype(values if (lo, hi) == (0.0, 1.0) else lo + values * (hi - lo), dtype)
