"""``sepconv``: adaptive separable convolution, with autograd and fake (meta) kernels for the
compiled operator ``torch.ops.emrestore.sepconv``."""

from __future__ import annotations

import torch

from .. import reference
from ._extension import available

PADDINGS = reference.sepconv.PADDINGS


def sepconv(
    input: torch.Tensor,
    vertical: torch.Tensor,
    horizontal: torch.Tensor,
    padding: str = "replicate",
) -> torch.Tensor:
    """Spatially adaptive separable convolution (Niklaus et al., ICCV 2017).

    ``out[b,c,y,x] = sum_i sum_j in_pad[b,c,y+i,x+j] * vertical[b,i,y,x] * horizontal[b,j,y,x]``

    Args:
        input: [B, C, H, W] image; [B, C, H+K-1, W+K-1] with ``padding="none"``.
        vertical, horizontal: [B, K, H, W] per-pixel K-tap kernels, shared by all channels.
        padding: ``"replicate"``, ``"reflect"``, ``"zeros"`` (input extended by K//2 before and
            (K-1)//2 after) or ``"none"`` (the caller padded already).

    Returns:
        [B, C, H, W], differentiable with respect to all three tensors.
    """
    if available:
        return torch.ops.emrestore.sepconv(input, vertical, horizontal, padding)
    _check(input, vertical, horizontal, padding)
    return reference.sepconv_loop(input, vertical, horizontal, padding)


def _shape(t: torch.Tensor) -> list[int]:
    return list(t.shape)


def _check(input, vertical, horizontal, padding) -> None:
    """The compiled operator's argument checks, for the reference path and the fake kernel."""
    if padding not in PADDINGS:
        raise ValueError(f"padding must be one of {PADDINGS}; got {padding!r}")
    if input.dim() != 4:
        raise ValueError(f"sepconv: input must be [B, C, H, W]; got shape {_shape(input)}")
    if vertical.dim() != 4:
        raise ValueError(f"sepconv: vertical must be [B, K, H, W]; got shape {_shape(vertical)}")
    if horizontal.shape != vertical.shape:
        raise ValueError(
            f"sepconv: horizontal must have the shape of vertical {_shape(vertical)}; "
            f"got {_shape(horizontal)}"
        )
    b, k, h, w = vertical.shape
    if k < 1:
        raise ValueError(
            f"sepconv: kernels need at least one tap (K >= 1); got shape {_shape(vertical)}"
        )
    pad = k - 1 if padding == "none" else 0
    if list(input.shape) != [b, input.shape[1], h + pad, w + pad] or input.shape[1] < 1:
        raise ValueError(
            f"sepconv: with padding={padding!r} and kernels of shape {_shape(vertical)} "
            f"the input must be [{b}, C, {h + pad}, {w + pad}]; got shape {_shape(input)}"
        )
    if not (input.dtype == vertical.dtype == horizontal.dtype) or not input.dtype.is_floating_point:
        raise TypeError(
            "sepconv: input, vertical and horizontal must share one floating-point dtype; got "
            f"{input.dtype}, {vertical.dtype}, {horizontal.dtype}"
        )
    if not (input.device == vertical.device == horizontal.device):
        raise ValueError(
            "sepconv: input, vertical and horizontal must be on one device; got "
            f"{input.device}, {vertical.device}, {horizontal.device}"
        )


if available:

    @torch.library.register_fake("emrestore::sepconv")
    def _sepconv_fake(input, vertical, horizontal, padding):
        _check(input, vertical, horizontal, padding)
        b, _, h, w = vertical.shape
        return input.new_empty((b, input.shape[1], h, w))

    @torch.library.register_fake("emrestore::sepconv_backward")
    def _sepconv_backward_fake(grad_output, input, vertical, horizontal, padding, output_mask):
        empty = input.new_empty((0,))
        return (
            torch.empty_like(input, memory_format=torch.contiguous_format)
            if output_mask[0]
            else empty,
            torch.empty_like(vertical, memory_format=torch.contiguous_format)
            if output_mask[1]
            else empty,
            torch.empty_like(horizontal, memory_format=torch.contiguous_format)
            if output_mask[2]
            else empty,
        )

    def _setup_context(ctx, inputs, output):
        input, vertical, horizontal, padding = inputs
        ctx.save_for_backward(input, vertical, horizontal)
        ctx.padding = padding

    def _backward(ctx, grad_output):
        input, vertical, horizontal = ctx.saved_tensors
        mask = [bool(m) for m in ctx.needs_input_grad[:3]]
        grads = torch.ops.emrestore.sepconv_backward(
            grad_output, input, vertical, horizontal, ctx.padding, mask
        )
        return tuple(g if m else None for g, m in zip(grads, mask)) + (None,)

    torch.library.register_autograd("emrestore::sepconv", _backward, setup_context=_setup_context)
