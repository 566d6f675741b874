"""Shared pieces of the artifact simulators: the result type and parameter draws."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np


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


# A parameter is a fixed number, a (low, high) range drawn uniformly, or a callable of
# the generator.
Spec = float | int | tuple | list | LogUniform | Callable[[np.random.Generator], float]


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


def smoothstep(u: np.ndarray) -> np.ndarray:
    u = np.clip(u, 0.0, 1.0)
    return u * u * (3.0 - 2.0 * u)
