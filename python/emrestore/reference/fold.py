"""Reference support-film fold deformation in plain PyTorch: the fold field computed with tensor
ops over all pixels, then grid_sample (the path the fused ``fold_warp`` kernel replaces)."""

from __future__ import annotations

import torch

from .warp import warp_grid_sample

N_PARAMS = 5  # slope, gain_left, gain_right, band_level, band_softness


def fold_field(vertices, profile, params, height: int, width: int):
    """Flow [B, 2, H, W], band opacity [B, 1, H, W] and band level [B, 1, H, W] of the folds
    (model: see ``emrestore.ops.fold_warp``)."""
    b, f, p, _ = vertices.shape
    dt, dev = vertices.dtype, vertices.device
    ys, xs = torch.meshgrid(
        torch.arange(height, dtype=dt, device=dev),
        torch.arange(width, dtype=dt, device=dev),
        indexing="ij",
    )
    pix = torch.stack([xs, ys], -1).view(1, 1, 1, height * width, 2)  # [1, 1, 1, N, 2]
    a = vertices[:, :, :-1, None, :]  # [B, F, P-1, 1, 2]
    e = vertices[:, :, 1:, None, :] - a
    len2 = (e * e).sum(-1)
    t = torch.where(
        len2 > 0, ((pix - a) * e).sum(-1) / len2.clamp_min(1e-30), torch.zeros_like(len2)
    )
    t = t.clamp(0, 1)  # [B, F, P-1, N]
    q = a + t[..., None] * e
    d2 = ((pix - q) ** 2).sum(-1)
    k = d2.argmin(2, keepdim=True)  # nearest segment (first on ties, as the kernel)
    take = lambda x: x.gather(2, k).squeeze(2)  # noqa: E731
    d = take(d2).sqrt()  # [B, F, N]
    tk = take(t)
    qk = torch.stack([take(q[..., 0]), take(q[..., 1])], -1)
    cross = take(e[..., 0] * (pix[..., 1] - a[..., 1]) - e[..., 1] * (pix[..., 0] - a[..., 0]))
    idx = k.squeeze(2)  # [B, F, N]
    lo = profile.gather(2, idx[..., None].expand(-1, -1, -1, 2))
    hi = profile.gather(2, (idx + 1)[..., None].expand(-1, -1, -1, 2))
    wl = lo[..., 0] * (1 - tk) + hi[..., 0] * tk
    amp = lo[..., 1] * (1 - tk) + hi[..., 1] * tk
    slope, g_left, g_right, level, soft = (params[..., i, None] for i in range(N_PARAMS))
    gain = torch.where(cross >= 0, g_left, g_right)
    m = gain * (amp - slope * (d - wl).clamp_min(0)).clamp_min(0)
    safe = torch.where(d > 0, d, torch.ones_like(d))
    scale = torch.where((d > 0) & (m > 0), m / safe, torch.zeros_like(d))
    px = pix.view(1, 1, height * width, 2)
    dx = (scale * (px[..., 0] - qk[..., 0])).sum(1)
    dy = (scale * (px[..., 1] - qk[..., 1])).sum(1)
    u = ((wl + 0.5 * soft - d) / torch.where(soft > 0, soft, torch.ones_like(soft))).clamp(0, 1)
    alpha_f = torch.where(soft > 0, u * u * (3 - 2 * u), (d < wl).to(dt))  # [B, F, N]
    if f:
        alpha, which = alpha_f.max(1)
        lev = level.expand_as(alpha_f).gather(1, which[:, None]).squeeze(1)
        lev = torch.where(alpha > 0, lev, torch.ones_like(lev))
    else:
        alpha = torch.zeros(b, height * width, dtype=dt, device=dev)
        lev = torch.ones_like(alpha)
    flow = torch.stack([dx, dy], 1).view(b, 2, height, width)
    return flow, alpha.view(b, 1, height, width), lev.view(b, 1, height, width)


def fold_warp(input, vertices, profile, params):
    """out = (1 - alpha) * input(p + flow) + alpha * level * input(p), bilinear, border clamp."""
    flow, alpha, level = fold_field(vertices, profile, params, input.shape[2], input.shape[3])
    warped = warp_grid_sample(input, flow, "bilinear", "border")
    return (1 - alpha) * warped + alpha * level * input
