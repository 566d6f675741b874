"""Shared pieces of the artifact simulators: the result type, parameter draws, input checks and the
intensity scale of each dtype."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Union

import numpy as np

# One bit per artifact type in mask volumes.
MS, SFF, SP = 1, 2, 4
BITS = {"ms": MS, "sff": SFF, "sp": SP}

SUPPORTED_DTYPES = (np.uint8, np.uint16, np.float32, np.float64)


@dataclass
class Artifact:
    """A degraded section and its ground truth.

    ``image`` has the input's shape and dtype. ``mask`` marks the pixels whose content was replaced
    (the fold band, the precipitates, the missing area); ``alpha`` is its soft version (opacity in
    [0, 1]). For folds, ``flow`` [2, H, W] is the backward warp that was applied
    (degraded(p) = clean(p + flow(p)) outside the band; channel 0 = dx, 1 = dy, in pixels),
    ``inverse_flow`` [2, H, W] undoes it (clean(q) = degraded(q + inverse_flow(q))) wherever
    ``lost`` is False; ``lost`` marks the clean pixels that are not visible in the degraded image
    (hidden under the band or squeezed out). ``params`` is a JSON-ready record of every random draw.
    """

    kind: str
    image: np.ndarray
    mask: np.ndarray
    alpha: np.ndarray
    params: dict[str, Any] = field(default_factory=dict)
    flow: np.ndarray | None = None
    inverse_flow: np.ndarray | None = None
    lost: np.ndarray | None = None


class LogUniform:
    """A log-uniform distribution over [low, high], for scale parameters such as the fold slope."""

    def __init__(self, low: float, high: float):
        if not 0 < low <= high:
            raise ValueError(f"LogUniform needs 0 < low <= high; got ({low}, {high})")
        self.low, self.high = float(low), float(high)

    def __call__(self, rng: np.random.Generator) -> float:
        return float(math.exp(rng.uniform(math.log(self.low), math.log(self.high))))

    def __repr__(self) -> str:
        return f"LogUniform({self.low}, {self.high})"


# A parameter is a fixed number, a (low, high) range drawn uniformly, or a callable of the generator.
Spec = Union[float, int, tuple, list, LogUniform, Callable[[np.random.Generator], float]]


def draw(rng: np.random.Generator, spec: Spec, name: str = "parameter") -> float:
    if callable(spec):
        return float(spec(rng))
    if isinstance(spec, (tuple, list)):
        if len(spec) != 2 or spec[0] > spec[1]:
            raise ValueError(f"{name}: expected a number or a (low, high) range; got {spec!r}")
        return float(rng.uniform(spec[0], spec[1]))
    if isinstance(spec, (int, float, np.number)):
        return float(spec)
    raise TypeError(f"{name}: expected a number, a (low, high) range or a callable; got {spec!r}")


def generator(seed) -> np.random.Generator:
    if isinstance(seed, np.random.Generator):
        return seed
    return np.random.default_rng(seed)


def section_of(image, index: int | None, who: str) -> np.ndarray:
    """The section to degrade: ``image`` [H, W], or ``image[index]`` for a stack [Z, H, W]. Checks
    type, dtype, shape and values; never copies."""
    if not isinstance(image, np.ndarray):
        raise TypeError(f"{who}: expected a numpy array; got {type(image).__name__}")
    if index is not None:
        if image.ndim != 3:
            raise ValueError(f"{who}: with index, expected a stack [Z, H, W]; got shape {image.shape}")
        if not -len(image) <= index < len(image):
            raise IndexError(f"{who}: index {index} out of range for a stack of {len(image)} sections")
        image = image[index]
    if image.ndim != 2:
        raise ValueError(f"{who}: expected one section [H, W] (or a stack and an index); got shape "
                         f"{image.shape}")
    if image.shape[0] < 2 or image.shape[1] < 2:
        raise ValueError(f"{who}: expected a section of at least 2 x 2 pixels; got {image.shape}")
    if image.dtype.type not in SUPPORTED_DTYPES:
        raise TypeError(f"{who}: expected uint8, uint16, float32 or float64; got {image.dtype}")
    if image.dtype.kind == "f" and not np.isfinite(image).all():
        raise ValueError(f"{who}: the section contains NaN or infinite values")
    return image


def full_scale(dtype) -> float:
    """The intensity of white: 255 for uint8, 65535 for uint16, 1.0 for floats (data in [0, 1])."""
    dtype = np.dtype(dtype)
    return float(np.iinfo(dtype).max) if dtype.kind == "u" else 1.0


def work_dtype(dtype):
    """Arithmetic precision for a section: float64 data keeps float64, everything else float32."""
    return np.float64 if np.dtype(dtype) == np.float64 else np.float32


def to_dtype(values: np.ndarray, dtype) -> np.ndarray:
    """Rounds and clips to the integer range, or casts to the float dtype."""
    dtype = np.dtype(dtype)
    if dtype.kind == "u":
        return np.clip(np.rint(values), 0, np.iinfo(dtype).max).astype(dtype)
    return values.astype(dtype)


def jsonable(value):
    """Converts numpy scalars and arrays (recursively) to plain Python for JSON."""
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


def smoothstep(u: np.ndarray) -> np.ndarray:
    u = np.clip(u, 0.0, 1.0)
    return u * u * (3.0 - 2.0 * u)
