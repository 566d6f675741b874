"""``fold_warp`` and ``fold_field``: support-film fold deformation (SFF), fused per pixel.

Model (Huang et al. 2020, generalised): a fold is a centre polyline (``vertices`` [B, F, P, 2], x
and y in pixels) with, per vertex, the band half-width w_l and the displacement amplitude
A = w_f - w_l (``profile`` [B, F, P, 2]; both taper to 0 at the ends of a partial fold), and per
fold ``params`` [B, F, 5] = (slope s, gain of the left side, gain of the right side, band level,
band softness). With d the distance of pixel p to the centre line and n the unit vector from its
nearest line point to p, the image is warped backward, out(p) = in(p + m(d) n),
m(d) = gain * max(0, A - s (d - w_l)): tissue on both sides is pulled toward the fold. The band
d < w_l shows the overlapping film, ``band_level`` times the local content (0: the published black
band), blended over ``band_softness`` pixels at its edge. Several folds add their displacements.
"""

from __future__ import annotations

import math

import torch

from .. import reference
from ._extension import available


def fold_warp(
    input: torch.Tensor, vertices: torch.Tensor, profile: torch.Tensor, params: torch.Tensor
) -> torch.Tensor:
    """Applies the folds to ``input`` [B, C, H, W]; differentiable with respect to the image. The
    displacement is computed per pixel inside the kernel: no flow tensor is allocated."""
    if available:
        return torch.ops.emrestore.fold_warp(input, vertices, profile, params)
    return reference.fold.fold_warp(input, vertices, profile, params)


def fold_field(
    vertices: torch.Tensor, profile: torch.Tensor, params: torch.Tensor, height: int, width: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The folds' flow [B, 2, H, W] (the sampling offset fold_warp uses, in pixels), band opacity
    [B, 1, H, W] (the band mask, soft at its edge) and band level [B, 1, H, W]."""
    if available:
        return torch.ops.emrestore.fold_field(vertices, profile, params, height, width)
    return reference.fold.fold_field(vertices, profile, params, height, width)


def paper_fold(
    height: int,
    width: int,
    *,
    point=None,
    angle: float = 0.0,
    half_width: float = 10.0,
    fold_width: float = 40.0,
    slope: float = 0.05,
    batch: int = 1,
    dtype=torch.float32,
    device="cpu",
):
    """Geometry of one straight fold spanning the section, as in the published simulator: the line
    through ``point`` (x, y; default the centre) at ``angle`` (radians from the x axis), a black
    band of half-width ``half_width`` (w_l), displacement w_f - w_l at the band edge decaying with
    ``slope`` s. Returns (vertices, profile, params) for ``fold_warp``/``fold_field``."""
    if not half_width <= fold_width:
        raise ValueError(f"fold_width must be >= half_width; got {fold_width} < {half_width}")
    cx, cy = point if point is not None else ((width - 1) / 2, (height - 1) / 2)
    reach = 2.0 * math.hypot(height, width)  # end points well outside the section
    ux, uy = math.cos(angle), math.sin(angle)
    f64 = torch.float64  # exact until the final cast
    vertices = torch.tensor(
        [[cx - reach * ux, cy - reach * uy], [cx + reach * ux, cy + reach * uy]], dtype=f64
    )
    profile = torch.tensor([[half_width, fold_width - half_width]] * 2, dtype=f64)
    params = torch.tensor([slope, 1.0, 1.0, 0.0, 0.0], dtype=f64)
    expand = lambda t: t.expand(batch, 1, *t.shape).to(dtype=dtype, device=device).contiguous()  # noqa: E731
    return (
        expand(vertices),
        expand(profile),
        params.expand(batch, 1, 5).to(dtype=dtype, device=device).contiguous(),
    )


if available:

    @torch.library.register_fake("emrestore::fold_warp")
    def _fold_warp_fake(input, vertices, profile, params):
        return torch.empty_like(input, memory_format=torch.contiguous_format)

    @torch.library.register_fake("emrestore::fold_field")
    def _fold_field_fake(vertices, profile, params, height, width):
        b = vertices.shape[0]
        return (
            vertices.new_empty((b, 2, height, width)),
            vertices.new_empty((b, 1, height, width)),
            vertices.new_empty((b, 1, height, width)),
        )

    def _setup_context(ctx, inputs, output):
        input, vertices, profile, params = inputs
        ctx.save_for_backward(input, vertices, profile, params)

    def _backward(ctx, grad):
        input, vertices, profile, params = ctx.saved_tensors
        flow, alpha, level = torch.ops.emrestore.fold_field(
            vertices, profile, params, input.shape[2], input.shape[3]
        )
        # out = (1 - alpha) * warp(input, flow) + alpha * level * input
        grad_warp, _ = torch.ops.emrestore.warp_backward(
            grad * (1 - alpha), input, flow, "bilinear", "border", [True, False]
        )
        return grad_warp + grad * alpha * level, None, None, None

    torch.library.register_autograd("emrestore::fold_warp", _backward, setup_context=_setup_context)
