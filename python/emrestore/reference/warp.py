"""Reference backward warping through torch.nn.functional.grid_sample (align_corners=True)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

MODES = ("bilinear", "bicubic", "nearest")
PADDINGS = ("border", "zeros", "reflection")


def flow_to_grid(flow: torch.Tensor, in_height: int, in_width: int) -> torch.Tensor:
    """Pixel flow [B, 2, H, W] (dx, dy) to grid_sample's normalised grid [B, H, W, 2]."""
    _, _, h, w = flow.shape
    ys = torch.arange(h, dtype=flow.dtype, device=flow.device).view(1, h, 1)
    xs = torch.arange(w, dtype=flow.dtype, device=flow.device).view(1, 1, w)
    # align_corners=True: pixel 0 -> -1, pixel size-1 -> +1 (a size-1 axis maps everything to 0).
    sx = 2.0 / max(in_width - 1, 1)
    sy = 2.0 / max(in_height - 1, 1)
    gx = (xs + flow[:, 0]) * sx - 1.0
    gy = (ys + flow[:, 1]) * sy - 1.0
    return torch.stack([gx, gy], dim=-1)


def warp_grid_sample(input, flow, mode: str = "bilinear", padding: str = "border") -> torch.Tensor:
    """out(p) = input(p + flow(p)): builds the sampling grid, then grid_sample."""
    grid = flow_to_grid(flow, input.shape[2], input.shape[3])
    return F.grid_sample(input, grid, mode=mode, padding_mode=padding, align_corners=True)
