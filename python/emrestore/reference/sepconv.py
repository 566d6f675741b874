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

    'reflect' mirrors without repeating the edge, repeatedly for pads wider than the image, exactly as
    numpy.pad(mode='reflect'), whose index map this uses.
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
    """Loop of shifted multiply-adds over the K*K taps: each step touches one image-sized plane, so it
    stays in cache; the fastest pure-PyTorch formulation (the benchmark baseline)."""
    x, k, h, w = _padded(input, vertical, padding)
    out = None
    for i in range(k):
        rows = x[:, :, i : i + h, :]
        t = None
        for j in range(k):
            term = rows[:, :, :, j : j + w] * horizontal[:, j : j + 1]
            t = term if t is None else t + term
        term = t * vertical[:, i : i + 1]
        out = term if out is None else out + term
    return out


def sepconv_unfold(input, vertical, horizontal, padding: str = "replicate") -> torch.Tensor:
    """Unfold/einsum formulation: materialises every K x K window ([B, C, K, K, H, W] memory)."""
    x, k, h, w = _padded(input, vertical, padding)
    b, c = x.shape[:2]
    patches = F.unfold(x, kernel_size=k).view(b, c, k, k, h, w)
    return torch.einsum("bcijyx,biyx,bjyx->bcyx", patches, vertical, horizontal)
