"""``warp``: backward warping by a dense pixel flow, with autograd and fake kernels for the compiled
operator ``torch.ops.emrestore.warp``."""

from __future__ import annotations

import torch

from .. import reference
from ._extension import available

MODES = reference.warp.MODES
PADDINGS = reference.warp.PADDINGS


def warp(
    input: torch.Tensor, flow: torch.Tensor, mode: str = "bilinear", padding: str = "border"
) -> torch.Tensor:
    """Backward warping:
    ``out[b, :, y, x] = input[b, :, y + flow[b, 1, y, x], x + flow[b, 0, y, x]]``.

    Args:
        input: [B, C, Hin, Win] image.
        flow: [B, 2, H, W] displacement in pixels, channel 0 = dx (columns), 1 = dy (rows).
        mode: ``"bilinear"``, ``"bicubic"`` or ``"nearest"``.
        padding: ``"border"``, ``"zeros"`` or ``"reflection"`` for samples outside the image.

    Returns:
        [B, C, H, W], equal to ``grid_sample(align_corners=True)`` on the equivalent grid and
        differentiable with respect to input and flow (nearest: zero flow gradient). On an input
        axis of size 1, where grid_sample's normalised grid has no pixel scale, the flow is still
        applied in pixels.
    """
    if available:
        return torch.ops.emrestore.warp(input, flow, mode, padding)
    _check(input, flow, mode, padding)
    return reference.warp_grid_sample(input, flow, mode, padding)


def _check(input, flow, mode, padding) -> None:
    if mode not in MODES:
        raise ValueError(f"warp: mode must be one of {MODES}; got {mode!r}")
    if padding not in PADDINGS:
        raise ValueError(f"warp: padding must be one of {PADDINGS}; got {padding!r}")
    if input.dim() != 4:
        raise ValueError(f"warp: input must be [B, C, H, W]; got shape {list(input.shape)}")
    if flow.dim() != 4 or flow.shape[1] != 2 or flow.shape[0] != input.shape[0]:
        raise ValueError(
            f"warp: flow must be [{input.shape[0]}, 2, H, W] "
            f"for input of shape {list(input.shape)}; got shape {list(flow.shape)}"
        )
    if input.dtype != flow.dtype or not input.dtype.is_floating_point:
        raise TypeError(
            "warp: input and flow must share one floating-point dtype; "
            f"got {input.dtype}, {flow.dtype}"
        )
    if input.device != flow.device:
        raise ValueError(
            f"warp: input and flow must be on one device; got {input.device}, {flow.device}"
        )


if available:

    @torch.library.register_fake("emrestore::warp")
    def _warp_fake(input, flow, mode, padding):
        _check(input, flow, mode, padding)
        return input.new_empty((input.shape[0], input.shape[1], flow.shape[2], flow.shape[3]))

    @torch.library.register_fake("emrestore::warp_backward")
    def _warp_backward_fake(grad_output, input, flow, mode, padding, output_mask):
        empty = input.new_empty((0,))
        return (
            torch.empty_like(input, memory_format=torch.contiguous_format)
            if output_mask[0]
            else empty,
            torch.empty_like(flow, memory_format=torch.contiguous_format)
            if output_mask[1]
            else empty,
        )

    def _setup_context(ctx, inputs, output):
        input, flow, mode, padding = inputs
        ctx.save_for_backward(input, flow)
        ctx.mode, ctx.padding = mode, padding

    def _backward(ctx, grad_output):
        input, flow = ctx.saved_tensors
        mask = [bool(m) for m in ctx.needs_input_grad[:2]]
        grads = torch.ops.emrestore.warp_backward(
            grad_output, input, flow, ctx.mode, ctx.padding, mask
        )
        return tuple(g if m else None for g, m in zip(grads, mask)) + (None, None)

    torch.library.register_autograd("emrestore::warp", _backward, setup_context=_setup_context)
