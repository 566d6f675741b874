"""The interpolation network: adaptive separable convolution over the two clean neighbours of a
missing section (Niklaus et al., ICCV 2017; the ssEM variant of Huang et al. 2020).

A U-Net reads the two neighbours and the section's fractional position ``t`` between them (so that
runs of 2-3 missing sections are filled one section at a time from the nearest clean ones) and
predicts, per output pixel, a vertical and a horizontal K-tap kernel for each neighbour:

    out = sepconv(prev, v1, h1) + sepconv(next, v2, h2)

Each 1-D kernel is a softmax (non-negative, summing to one) and the vertical kernels carry a
per-pixel blend weight w and 1 - w, so the output is a convex combination of neighbour pixels:
no ringing, brightness kept, and an untrained network already equals a blend of the neighbours.

With ``align="flow"`` (the default) the neighbours are first warped to the section's position by
dense optical flow (``emrestore.alignment``; ``interpolate`` and ``fit`` do this, ``forward`` takes
the aligned pair), with ``outer_flow`` their motion measured against the clean sections beyond
them as well. The flow carries large and smooth motion, beyond the kernels' K // 2 reach; the
kernels fix where it is wrong and the blend picks, per pixel, the neighbour that fits. Untrained,
such a network equals the ``flow`` baseline.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .. import ops
from ..alignment import VIEWS

ALIGNMENTS = ("flow", "none")


@dataclass(frozen=True)
class InterpolationConfig:
    kernel_size: int = 21  # K: taps per 1-D kernel, the largest displacement is K // 2 pixels
    widths: tuple[int, ...] = (16, 32, 64, 96)  # U-Net channels per level; len - 1 poolings by 2
    head_width: int = 32  # channels of the kernel heads' hidden layer
    # "flow": the neighbours are first aligned to the section's position by optical flow
    # (emrestore.alignment) and the kernels refine that; "none": the kernels do all the motion.
    align: str = "flow"
    # With "flow": each neighbour's motion is also measured against the clean section beyond it
    # (emrestore.alignment.velocity), where the caller has one.
    outer_flow: bool = True
    # With "flow": each flow averaged over this many of the square's symmetries
    # (emrestore.alignment.symmetric_flow): better motion, at that many flows.
    flow_views: int = 8
    # With "flow", at inference: the share of the prediction's detail finer than detail_sigma pixels
    # replaced by the neighbours' own (emrestore.models.detail; 0: the network's output as it is).
    detail: float = 0.3
    detail_sigma: float = 8.0

    def __post_init__(self):
        if self.kernel_size < 1:
            raise ValueError(f"kernel_size must be >= 1; got {self.kernel_size}")
        if len(self.widths) < 1 or min(self.widths) < 1:
            raise ValueError(
                f"widths must be a non-empty sequence of positive ints; got {self.widths}"
            )
        if self.align not in ALIGNMENTS:
            raise ValueError(f"align must be one of {ALIGNMENTS}; got {self.align!r}")
        if self.flow_views not in VIEWS:
            raise ValueError(f"flow_views must be one of {VIEWS}; got {self.flow_views!r}")
        if not 0.0 <= self.detail <= 1.0:
            raise ValueError(f"detail must lie in [0, 1]; got {self.detail!r}")
        if not self.detail_sigma > 0:
            raise ValueError(f"detail_sigma must be > 0 pixels; got {self.detail_sigma!r}")
        object.__setattr__(self, "widths", tuple(int(w) for w in self.widths))

    def to_dict(self) -> dict:
        return {**asdict(self), "widths": list(self.widths)}

    @classmethod
    def from_dict(cls, d: dict) -> InterpolationConfig:
        d = {
            "align": "none",
            "outer_flow": False,
            "flow_views": 1,
            **d,
        }  # checkpoints from before these options
        return cls(
            **{
                k: (tuple(v) if k == "widths" else v)
                for k, v in d.items()
                if k in cls.__dataclass_fields__
            }
        )

    def detail_share(self, detail: float | None = None) -> float:
        """The share of fine detail a model with this config puts back: ``detail``, or the config's
        own if None; 0 for a model that does not align (its neighbours' detail lies elsewhere)."""
        share = self.detail if detail is None else float(detail)
        if not 0.0 <= share <= 1.0:
            raise ValueError(f"detail must lie in [0, 1]; got {detail}")
        return share if self.align == "flow" else 0.0

    @property
    def uses_outer_flow(self) -> bool:
        """Whether the alignment reads the sections beyond the neighbours too."""
        return self.align == "flow" and self.outer_flow

    @property
    def stride(self) -> int:
        """Input sizes are padded to a multiple of this (the total pooling factor)."""
        return 2 ** (len(self.widths) - 1)

    @property
    def receptive_radius(self) -> int:
        """Pixels of context on each side that an output pixel depends on: the network's 3x3 convs,
        poolings and upsamplings at their scales, plus the kernels' reach K // 2. Tiles with at
        least this halo give the whole-section result."""
        levels = len(self.widths)
        r = 0
        for level in range(levels):  # encoder: two 3x3 convs per level, then a 2x2 pooling
            r += 2 * 2**level + (2**level if level < levels - 1 else 0)
        for level in range(levels - 2, -1, -1):  # decoder: bilinear upsampling, two 3x3 convs
            r += 2 ** (level + 1) + 2 * 2**level
        return r + 1 + self.kernel_size // 2  # the heads' 3x3 conv, then sepconv


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1),
        nn.LeakyReLU(0.1, inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1),
        nn.LeakyReLU(0.1, inplace=True),
    )


class SepConvInterpolator(nn.Module):
    """``forward(prev, next, t)``: prev, next [B, 1, H, W] in [0, 1] (H, W multiples of
    ``config.stride``; aligned to t first when ``config.align == "flow"``), t [B] the position in
    (0, 1) between them; returns [B, 1, H, W]."""

    def __init__(
        self, config: InterpolationConfig | None = None, *, mean: float = 0.5, std: float = 0.2
    ):
        super().__init__()
        self.config = config = config or InterpolationConfig()
        w = config.widths
        # Input standardisation from the training stack; buffers so they travel with the weights.
        self.register_buffer("mean", torch.tensor(float(mean)))
        self.register_buffer("std", torch.tensor(float(std)))
        self.encoders = nn.ModuleList(
            [_block(3, w[0])] + [_block(w[i - 1], w[i]) for i in range(1, len(w))]
        )
        self.decoders = nn.ModuleList([_block(w[i + 1] + w[i], w[i]) for i in range(len(w) - 1)])
        k = config.kernel_size
        self.head = nn.Sequential(
            nn.Conv2d(w[0], config.head_width, 3, padding=1),
            nn.LeakyReLU(0.1, inplace=True),
            nn.Conv2d(config.head_width, 4 * k + 1, 1),
        )
        # Start from centred, nearly one-hot kernels and an even blend: the identity interpolation.
        last = self.head[-1]
        nn.init.zeros_(last.weight)
        taps = torch.arange(k, dtype=torch.float32) - (k - 1) / 2
        with torch.no_grad():
            last.bias.copy_(torch.cat([-(taps**2) / 2] * 4 + [torch.zeros(1)]))

    def kernels(self, prev, next, t):
        """The four [B, K, H, W] kernels (v1, h1, v2, h2), blend weights included in v1 and v2."""
        b, _, h, w = prev.shape
        tmap = (
            torch.as_tensor(t, dtype=prev.dtype, device=prev.device)
            .reshape(-1, 1, 1, 1)
            .expand(b, 1, h, w)
        )
        x = torch.cat(
            [(prev - self.mean) / self.std, (next - self.mean) / self.std, 2 * tmap - 1], 1
        )
        skips = []
        for i, enc in enumerate(self.encoders):
            if i:
                x = F.avg_pool2d(x, 2)
            x = enc(x)
            skips.append(x)
        for i in range(len(self.decoders) - 1, -1, -1):
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
            x = self.decoders[i](torch.cat([x, skips[i]], 1))
        out = self.head(x)
        k = self.config.kernel_size
        *logits, blend = out.split([k, k, k, k, 1], 1)  # split, not slices: a cheaper backward
        v1, h1, v2, h2 = (x.softmax(1) for x in logits)
        # The blend starts at the position prior (1 - t) and the network learns the correction.
        prior = torch.logit(1 - tmap.clamp(1e-3, 1 - 1e-3))
        weight = torch.sigmoid(blend + prior)
        return v1 * weight, h1, v2 * (1 - weight), h2

    def forward(self, prev, next, t):
        if prev.shape != next.shape or prev.dim() != 4 or prev.shape[1] != 1:
            raise ValueError(
                f"expected prev and next [B, 1, H, W] of one shape; got {list(prev.shape)} "
                f"and {list(next.shape)}"
            )
        s = self.config.stride
        if prev.shape[-2] % s or prev.shape[-1] % s:
            raise ValueError(
                f"height and width must be multiples of {s}; got {list(prev.shape[-2:])} "
                "(use emrestore.models.interpolate for any size)"
            )
        v1, h1, v2, h2 = self.kernels(prev, next, t)
        return ops.sepconv(prev, v1, h1) + ops.sepconv(next, v2, h2)


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def padded_size(n: int, multiple: int) -> int:
    return int(math.ceil(n / multiple) * multiple)
