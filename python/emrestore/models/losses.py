"""Training losses of the interpolation network: pixel losses, SSIM, and the disagreement of soft
membrane masks. Images are [B, 1, H, W] tensors in [0, 1]."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..metrics import MEMBRANE_QUANTILE, SEGMENT_SIGMA

LOSSES = ("l1", "mse", "l1+grad", "mse+ssim")
SSIM_WEIGHT = 0.5  # default weight of the (1 - SSIM) term in "mse+ssim"


def _gaussian_blur(image, sigma: float, radius: int | None = None):
    """[B, 1, H, W] blurred by a Gaussian of ``radius`` (default 3 sigma) over the window positions
    inside the image (no padding)."""
    radius = max(1, round(3 * sigma)) if radius is None else radius
    x = torch.arange(-radius, radius + 1, dtype=image.dtype, device=image.device)
    g = torch.exp(-x * x / (2 * sigma * sigma))
    g = g / g.sum()
    return F.conv2d(F.conv2d(image, g.view(1, 1, 1, -1)), g.view(1, 1, -1, 1))


def ssim(pred, target, sigma: float = 1.5, size: int = 11):
    """Mean SSIM of [B, 1, H, W] images in [0, 1]: Gaussian window, K1 0.01, K2 0.03 (the metric's
    settings, see ``emrestore.metrics.ssim``), over the window positions inside the images."""

    def blur(image):
        return _gaussian_blur(image, sigma, size // 2)

    c1, c2 = 0.01**2, 0.03**2
    mp, mt = blur(pred), blur(target)
    vp, vt = blur(pred * pred) - mp * mp, blur(target * target) - mt * mt
    cov = blur(pred * target) - mp * mt
    similarity = (2 * mp * mt + c1) * (2 * cov + c2) / ((mp * mp + mt * mt + c1) * (vp + vt + c2))
    return similarity.mean()


def _soft_membranes(smooth, scale, quantile: float = MEMBRANE_QUANTILE):
    level = torch.quantile(smooth.flatten(1), quantile, dim=1)
    return torch.sigmoid((level.view(-1, 1, 1, 1) - smooth) / scale.view(-1, 1, 1, 1))


def membrane_map(image, scale, sigma: float = SEGMENT_SIGMA, quantile: float = MEMBRANE_QUANTILE):
    """Soft membrane masks of [B, 1, H, W] images: the darkest ``quantile`` of each blurred image,
    as ``emrestore.metrics.segment`` finds membranes, with a sigmoid edge ``scale`` [B] wide."""
    return _soft_membranes(_gaussian_blur(image, sigma), scale, quantile)


def membrane_loss(pred, target):
    """Mean disagreement of the soft membrane masks of ``pred`` and ``target`` (0: the same
    pixels are membrane). Pixel losses let a faint membrane cost little where the neighbours
    disagree; the masks do not, so the prediction keeps the membranes that segmentation follows."""
    smooth = _gaussian_blur(target, SEGMENT_SIGMA)  # blurred once: for the edge width and the mask
    scale = 0.1 * smooth.flatten(1).std(dim=1).clamp_min(1e-3)
    return (membrane_map(pred, scale) - _soft_membranes(smooth, scale)).abs().mean()


def training_loss(
    pred, target, kind: str, ssim_weight: float = SSIM_WEIGHT, membrane_weight: float = 0.0
):
    """The loss ``fit`` minimises: ``kind`` is one of ``LOSSES`` (see ``FitConfig.loss``), plus
    ``membrane_weight`` x ``membrane_loss``."""
    if kind == "mse":
        loss = F.mse_loss(pred, target)
    elif kind == "mse+ssim":
        loss = F.mse_loss(pred, target) + ssim_weight * (1 - ssim(pred, target))
    else:
        loss = F.l1_loss(pred, target)
        if kind == "l1+grad":
            for dim in (-1, -2):
                loss = loss + F.l1_loss(pred.diff(dim=dim), target.diff(dim=dim))
    if membrane_weight:
        loss = loss + membrane_weight * membrane_loss(pred, target)
    return loss
