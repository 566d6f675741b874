"""``FitConfig``: the settings of ``fit``'s training loop, checked when made and saved in the
model folder beside the architecture."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from .losses import LOSSES, SSIM_WEIGHT

CLIP_NORM = None  # no gradient-norm ceiling: clipping at 1.0 did not stop a fit from diverging
COLLAPSE_DB = 1.0  # validation this far below its best means the fit diverged
KEEPS = ("last", "best")
# keep="last" keeps the best-validated weights instead when the last validate this much worse:
# three times the widest gap seen between them in fits that neither overfit nor diverged.
KEEP_TOLERANCE_DB = 0.25


@dataclass(frozen=True)
class FitConfig:
    """How ``fit`` trains; saved as ``config.json["fit"]`` in the model folder, from which
    ``FitConfig(**config["fit"])`` rebuilds it.

    minutes: wall-clock budget (the schedule spans it); iterations: a step budget instead or as
        well (whichever ends first).
    batch_size, crop: triplets per step and the side of their crops (at most the stack's).
    lr, weight_decay: AdamW's peak step size (warm-up, then cosine decay) and decay.
    loss: ``"l1+grad"`` (L1 on the pixels and on their x and y differences: less blur where the
        neighbours disagree), ``"l1"``, ``"mse"``, or ``"mse+ssim"`` (MSE plus ``ssim_weight`` x
        (1 - SSIM): keeps membranes' contrast, so the section segments better).
    membrane_weight: adds this weight x ``membrane_loss``, the disagreement of the soft membrane
        masks (the darkest quarter of the blurred section, where ``emrestore.metrics.segment``
        puts membranes): trades some PSNR for a section that segments like the clean one.
    max_gap: largest gap on each side (runs of missing sections).
    z_step: train for sections this many apart (the gaps are multiples of it), on every offset.
    detect: without ``fit``'s ``exclude``, leave out the sections ``emrestore.detect`` flags.
    augment: flips, 90-degree turns, order swap, brightness/contrast jitter.
    val_fraction, val_size: share of single-gap targets held out for validation, and the side of
        the central crop of each that is scored; val_minutes: how often.
    checkpoint_minutes: how often the folder is written during the fit.
    clip_norm: ceiling of the gradient's norm (default None: not clipped). A fit whose validation
        falls ``COLLAPSE_DB`` below its best has diverged: it goes on from the best weights, with
        fresh optimizer moments and half the step size (``record["restarts"]``).
    keep: which weights ``folder/model.safetensors`` and the returned model hold. ``"last"``
        (default): the weights at the end of the schedule, unless their validation PSNR lies more
        than ``KEEP_TOLERANCE_DB`` below the best one's (overfitting, or a late divergence); then,
        and with ``"best"``, the weights that scored best on the held-out validation triplets
        (checked every ``val_minutes`` and at the end). On two held-out sections the best score
        is partly luck: over the ten fits of docs/archive/interpolation-log.md ("Which weights `fit`
        keeps") the last weights scored as
        well on the test stacks, and on ISBI segmented better in seven of eight.
    seed: seeds the weights and every batch.
    workers: threads drawing batches (reading, augmenting, aligning) ahead of the training step
        (default: 1 on the CPU, where training takes the cores; up to 8 beside a GPU).
    """

    minutes: float | None = 30.0
    iterations: int | None = None
    batch_size: int = 8
    crop: int = 128
    lr: float = 2e-3
    weight_decay: float = 1e-4
    loss: str = "l1+grad"
    ssim_weight: float = SSIM_WEIGHT
    membrane_weight: float = 0.0
    max_gap: int = 3
    z_step: int = 1
    detect: bool = True
    augment: bool = True
    val_fraction: float = 0.1
    val_size: int = 512
    val_minutes: float = 0.5
    checkpoint_minutes: float = 2.0
    clip_norm: float | None = CLIP_NORM
    keep: str = "last"
    seed: int = 0
    workers: int | None = None

    def __post_init__(self):
        if self.loss not in LOSSES:
            raise ValueError(f"fit: loss must be one of {LOSSES}; got {self.loss!r}")
        if self.keep not in KEEPS:
            raise ValueError(f"fit: keep must be one of {KEEPS}; got {self.keep!r}")
        if self.minutes is None and self.iterations is None:
            raise ValueError("fit: give a budget: minutes, iterations or both")
        for name in ("ssim_weight", "membrane_weight"):
            weight = getattr(self, name)
            if not (math.isfinite(weight) and weight >= 0):
                raise ValueError(f"fit: {name} must be a finite number >= 0; got {weight!r}")
        if int(self.z_step) != self.z_step or self.z_step < 1:
            raise ValueError(f"fit: z_step must be a positive integer; got {self.z_step!r}")
        # A budget that never ends, or ends before the first step, saves no trained model.
        _number(self.minutes, "minutes", low=0, none=True)
        _integer(self.iterations, "iterations", 1, none=True)
        for name in ("batch_size", "crop", "max_gap", "val_size"):
            _integer(getattr(self, name), name, 1)
        _integer(self.seed, "seed", 0)
        _integer(self.workers, "workers", 1, none=True)
        _number(self.lr, "lr", low=0)
        _number(self.weight_decay, "weight_decay", low=0, inclusive=True)
        _number(self.val_minutes, "val_minutes", low=0, inclusive=True)  # 0: every step
        _number(self.checkpoint_minutes, "checkpoint_minutes", low=0, inclusive=True)
        _number(self.clip_norm, "clip_norm", low=0, none=True)
        if not 0 <= self.val_fraction < 1:
            raise ValueError(f"fit: val_fraction must be in [0, 1); got {self.val_fraction!r}")

    @classmethod
    def resolve(cls, settings: FitConfig | None = None, **overrides) -> FitConfig:
        """``settings`` (default ``FitConfig()``) with the fields in ``overrides`` replaced."""
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(overrides) - set(names))
        if unknown:
            raise TypeError(
                f"fit: unknown setting(s) {', '.join(map(repr, unknown))}; "
                f"FitConfig has {', '.join(names)}"
            )
        if settings is None:
            return cls(**overrides)
        return dataclasses.replace(settings, **overrides) if overrides else settings

    def to_dict(self) -> dict:
        """The fields as JSON values (numpy scalars, as a caller may pass them, made Python's)."""
        return {
            k: v.item() if isinstance(v, np.generic) else v
            for k, v in dataclasses.asdict(self).items()
        }


def _number(value, name: str, low: float, *, inclusive: bool = False, none: bool = False) -> None:
    if value is None and none:
        return
    ok = isinstance(value, (int, float, np.number)) and not isinstance(value, bool)
    if not ok or not math.isfinite(value) or value < low or (value == low and not inclusive):
        bound = f">= {low}" if inclusive else f"> {low}"
        raise ValueError(f"fit: {name} must be a finite number {bound}; got {value!r}")


def _integer(value, name: str, low: int, *, none: bool = False) -> None:
    if value is None and none:
        return
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"fit: {name} must be an integer >= {low}; got {value!r}")
