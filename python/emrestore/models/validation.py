"""``fit``'s validation: held-out triplets, scored by the PSNR of the interpolated section and the
VOI of its segmentation against the clean section's."""

from __future__ import annotations

import math

import numpy as np

from ..alignment import align_pair, outer_gaps, outer_indices
from ..metrics import segment, segmentation_scores
from .interpolation import InterpolationConfig
from .sampling import read_unit
from .tiling import interpolate


def psnr(pred: np.ndarray, target: np.ndarray) -> float:
    """PSNR in dB of images in [0, 1] (inf where they are equal)."""
    mse = float(np.mean((pred - target) ** 2))
    return float("inf") if mse == 0 else 10 * math.log10(1 / mse)


class Validation:
    """Fixed central ``size`` x ``size`` crops of the validation triplets (before, target, after)
    and the targets' segmentations. With ``config.align == "flow"`` the outer crops are aligned
    here, once, as ``interpolate`` aligns them (from the ``usable`` sections beyond them too, where
    the config uses them), so each validation only runs the network."""

    def __init__(
        self,
        stack,
        trips,
        size: int,
        config: InterpolationConfig,
        usable: np.ndarray,
        z_step: int = 1,
    ):
        _, h, w = stack.shape
        y0, x0 = max(0, (h - size) // 2), max(0, (w - size) // 2)
        win = (slice(y0, y0 + size), slice(x0, x0 + size))
        self.crops = []
        for a, t, b in trips:
            before, target, after = (read_unit(stack, s, *win) for s in (a, t, b))
            if config.align == "flow":
                outer = (
                    outer_indices(usable, a, b, z_step) if config.uses_outer_flow else (None, None)
                )
                outer_crops = tuple(None if s is None else read_unit(stack, s, *win) for s in outer)
                before, after = align_pair(
                    before,
                    after,
                    0.5,
                    outer=outer_crops,
                    outer_gaps=outer_gaps(a, b, outer),
                    views=config.flow_views,
                )
            self.crops.append((before, target, after))
        self.labels = [segment(t) for _, t, _ in self.crops]

    def __len__(self) -> int:
        return len(self.crops)

    def score(self, model) -> tuple[float | None, float | None]:
        """Mean PSNR and VOI of ``model``'s sections over the crops; (None, None) without any.
        Scores the network's own output (detail=0): validation tracks what training changes."""
        if not self.crops:
            return None, None
        was_training = model.training
        model.eval()
        preds = [
            interpolate(model, a, b, 0.5, tile=None, aligned=True, detail=0.0)
            for a, _, b in self.crops
        ]
        model.train(was_training)
        value = float(np.mean([psnr(p, t) for p, (_, t, _) in zip(preds, self.crops)]))
        voi = float(
            np.mean(
                [segmentation_scores(p, labels)["voi"] for p, labels in zip(preds, self.labels)]
            )
        )
        return value, voi
