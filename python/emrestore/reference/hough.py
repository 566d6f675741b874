"""Reference Hough transform in plain PyTorch: votes with bincount, peaks with the same greedy
selection as the kernels, written out in Python (fallback and test oracle)."""

from __future__ import annotations

import math

import torch


def hough_offset(height: int, width: int) -> int:
    return math.ceil(math.sqrt(height * height + width * width))


def _round_half_away(r: torch.Tensor) -> torch.Tensor:
    t = torch.trunc(r)
    f = r - t
    return t + (f >= 0.5).to(r.dtype) - (f <= -0.5).to(r.dtype)


def hough_lines(
    image: torch.Tensor, cos_theta: torch.Tensor, sin_theta: torch.Tensor
) -> torch.Tensor:
    """Accumulator [B, R, T] of image [B, H, W] (see ``emrestore.ops.hough_lines``)."""
    b_, h, w = image.shape
    t_ = cos_theta.numel()
    offset = hough_offset(h, w)
    r_ = 2 * offset + 1
    weighted = image.dtype.is_floating_point
    b, y, x = torch.nonzero(image, as_tuple=True)
    rho = cos_theta[None, :] * x[:, None].double() + sin_theta[None, :] * y[:, None].double()
    bins = _round_half_away(rho).long() + offset  # [N, T]
    ok = (bins >= 0) & (bins < r_)
    flat = (b[:, None] * r_ + bins) * t_ + torch.arange(t_, device=image.device)[None, :]
    weights = image[b, y, x].double()[:, None].expand_as(rho)[ok] if weighted else None
    acc = torch.bincount(flat[ok], weights=weights, minlength=b_ * r_ * t_)
    return acc.view(b_, r_, t_).to(image.dtype if weighted else torch.int32)


def conflict(r1, t1, r2, t2, R, T, min_distance, min_angle, wrap) -> bool:
    dt, dr = abs(t1 - t2), abs(r1 - r2)
    if dt <= min_angle and dr <= min_distance:
        return True
    return wrap and T - dt <= min_angle and abs(r1 - (R - 1 - r2)) <= min_distance


def local_maxima(acc: torch.Tensor, threshold: torch.Tensor, wrap: bool) -> torch.Tensor:
    """Bool [B, R, T]: positive cells >= threshold and >= their 8 neighbours (circular theta with
    mirrored rho when ``wrap``)."""
    a = acc.double()
    b_, r_, t_ = a.shape
    neg = torch.full((b_, r_, 1), -math.inf, dtype=a.dtype, device=a.device)
    if wrap:
        ext = torch.cat([a[:, :, -1:].flip(1), a, a[:, :, :1].flip(1)], 2)
    else:
        ext = torch.cat([neg, a, neg], 2)
    row = torch.full((b_, 1, t_ + 2), -math.inf, dtype=a.dtype, device=a.device)
    ext = torch.cat([row, ext, row], 1)
    pooled = torch.nn.functional.max_pool2d(ext[:, None], 3, 1)[:, 0]
    return (a >= pooled) & (a > 0) & (a >= threshold)


def hough_peaks(acc, threshold, num_peaks: int, min_distance: int, min_angle: int, wrap: bool):
    """(rho [B, N], theta [B, N], count [B]) as ``emrestore.ops`` returns them."""
    b_, r_, t_ = acc.shape
    keep = local_maxima(acc, threshold, wrap)
    where = torch.nonzero(keep).tolist()
    values = acc.double()[keep].tolist()
    order = sorted(range(len(values)), key=lambda i: (-values[i], where[i][1], where[i][2]))
    rho = torch.full((b_, num_peaks), -1, dtype=torch.long)
    theta = torch.full((b_, num_peaks), -1, dtype=torch.long)
    count = torch.zeros(b_, dtype=torch.long)
    for i in order:
        b, r, t = where[i]
        n = int(count[b])
        if n >= num_peaks:
            continue
        if any(
            conflict(r, t, int(rho[b, k]), int(theta[b, k]), r_, t_, min_distance, min_angle, wrap)
            for k in range(n)
        ):
            continue
        rho[b, n], theta[b, n], count[b] = r, t, n + 1
    return rho.to(acc.device), theta.to(acc.device), count.to(acc.device)
