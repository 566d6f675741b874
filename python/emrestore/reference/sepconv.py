"""Reference adaptive separable convolution (SepConv) in plain PyTorch, differentiable by autograd.

out[b,c,y,x] = sum_i sum_j pad(input)[b,c,y+i,x+j] * vertical[b,i,y,x] * horizontal[b,j,y,x]
with the input padded by K//2 before and (K-1)//2 after along both image axes.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

PADDINGS = ("replicate", "reflect", "zeros", "none")
_NUMPY_MODE = {"replicate": "edge", "reflect": "reflect"}


def pad_input(input: torch.Tensor, k: int, padding: str) -> torch.Tensor:
    """Pads [B, C, H, W] by k//2 before and (k-1)//2 after along H and W.

    'reflect' mirrors without repeating the edge, repeatedly for pads wider than the image, exactly
    as numpy.pad(mode='reflect'), whose index map this uses.
    """
    if padding not in PADDINGS:
        raise ValueError(f"padding must be one of {PADDINGS}; got {padding!r}")
    lo, hi = k // 2, (k - 1) // 2
    if padding == "none":
        return input
    if padding == "zeros":
        return F.pad(input, (lo, hi, lo, hi))
    mode = _NUMPY_MODE[padding]
    rows = torch.from_numpy(np.pad(np.arange(input.shape[2]), (lo, hi), mode=mode)).to(input.device)
    cols = torch.from_numpy(np.pad(np.arange(input.shape[3]), (lo, hi), mode=mode)).to(input.device)
    return input.index_select(2, rows).index_select(3, cols)


def _padded(input, vertical, padding):
    k = vertical.shape[1]
    return pad_input(input, k, padding), k, vertical.shape[2], vertical.shape[3]


def sepconv_loop(input, vertical, horizontal, padding: str = "replicate") -> torch.Tensor:
    """Loop of shifted multiply-adds over the K*K taps: each step touches one image-sized plane, so
    it stays in cache. The fastest pure-PyTorch formulation, with a backward of the same kind
    (autograd through K*K small ops would be many times slower): the fallback and the benchmark
    baseline."""
    k = vertical.shape[1]
    if not torch.is_grad_enabled() or not any(
        t.requires_grad for t in (input, vertical, horizontal)
    ):
        return _loop_forward(pad_input(input, k, padding), vertical, horizontal)
    return _SepconvLoop.apply(input, vertical, horizontal, padding)


def _loop_forward(xp, vertical, horizontal):
    k, h, w = vertical.shape[1:]
    out = None
    for i in range(k):
        term = _row_dot(xp, i, horizontal) * vertical[:, i : i + 1]
        out = term if out is None else out + term
    return out


def _row_dot(xp, i, horizontal):
    """sum_j xp[:, :, i + y, j + x] * horizontal[:, j, y, x]: window row i against the h kernels."""
    k, h, w = horizontal.shape[1:]
    rows = xp[:, :, i : i + h, :]
    t = None
    for j in range(k):
        term = rows[:, :, :, j : j + w] * horizontal[:, j : j + 1]
        t = term if t is None else t + term
    return t


class _SepconvLoop(torch.autograd.Function):
    @staticmethod
    def forward(ctx, input, vertical, horizontal, padding):
        k = vertical.shape[1]
        xp = pad_input(input, k, padding)
        ctx.save_for_backward(input, vertical, horizontal)
        ctx.padding = padding
        return _loop_forward(xp, vertical, horizontal)

    @staticmethod
    def backward(ctx, grad):
        input, vertical, horizontal = ctx.saved_tensors
        k, h, w = vertical.shape[1:]
        xp = pad_input(input, k, ctx.padding)
        need_x, need_v, need_h = ctx.needs_input_grad[:3]
        gxp = torch.zeros_like(xp) if need_x else None
        gv = torch.zeros_like(vertical) if need_v else None
        gh = torch.zeros_like(horizontal) if need_h else None
        for i in range(k):
            rows = xp[:, :, i : i + h, :]
            if need_v:
                gv[:, i] = (grad * _row_dot(xp, i, horizontal)).sum(1)
            gvi = grad * vertical[:, i : i + 1]
            for j in range(k):
                if need_h:
                    gh[:, j] += (gvi * rows[:, :, :, j : j + w]).sum(1)
                if need_x:
                    gxp[:, :, i : i + h, j : j + w] += gvi * horizontal[:, j : j + 1]
        gx = None
        if need_x:
            with torch.enable_grad():
                x = input.detach().requires_grad_()
                (gx,) = torch.autograd.grad(pad_input(x, k, ctx.padding), x, gxp)
        return gx, gv, gh, None


def sepconv_unfold(input, vertical, horizontal, padding: str = "replicate") -> torch.Tensor:
    """Unfold/einsum formulation: materialises every K x K window ([B, C, K, K, H, W] memory)."""
    x, k, h, w = _padded(input, vertical, padding)
    b, c = x.shape[:2]
    patches = F.unfold(x, kernel_size=k).view(b, c, k, k, h, w)
    return torch.einsum("bcijyx,biyx,bjyx->bcyx", patches, vertical, horizontal)
