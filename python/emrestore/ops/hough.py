"""``hough_lines`` and ``hough_peaks``: the straight-line Hough transform for fold detection.

Convention of scikit-image's ``transform.hough_line``: rho = x cos(theta) + y sin(theta) with the
origin at the top-left pixel, 1-pixel rho bins over [-ceil(diag), ceil(diag)], 180 angles over
[-pi/2, pi/2) by default; for binary input the accumulator equals scikit-image's. Float input casts
weighted votes (each pixel adds its value, e.g. a dark-band response).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .. import reference
from ._extension import available


def default_thetas(n: int = 180) -> np.ndarray:
    """n angles evenly spaced over [-pi/2, pi/2) (scikit-image's default)."""
    return np.linspace(-np.pi / 2, np.pi / 2, n, endpoint=False)


def _as_image(image) -> torch.Tensor:
    if isinstance(image, np.ndarray):
        image = torch.from_numpy(np.ascontiguousarray(image))
    if not isinstance(image, torch.Tensor):
        raise TypeError(
            f"hough_lines: expected a tensor or numpy array; got {type(image).__name__}"
        )
    if image.dim() not in (2, 3):
        raise ValueError(
            f"hough_lines: image must be [H, W] or [B, H, W]; got shape {list(image.shape)}"
        )
    if image.dtype not in (torch.bool, torch.uint8, torch.float32, torch.float64):
        raise TypeError(
            f"hough_lines: image must be bool or uint8 (binary votes) or float32/float64 "
            f"(weighted votes); got {image.dtype}"
        )
    if image.dtype.is_floating_point and not torch.isfinite(image).all():
        raise ValueError("hough_lines: the image contains NaN or infinite values")
    return image


def hough_lines(image, theta=None):
    """Hough accumulator of ``image`` [H, W] or [B, H, W] (bool/uint8: one vote per nonzero pixel;
    float32/64: each pixel votes with its value).

    Returns ``(acc, thetas, rhos)``: acc [R, T] or [B, R, T] (int32 counts for binary votes, the
    image's dtype for weighted ones), thetas [T] and rhos [R] float64 on the image's device.
    """
    image = _as_image(image)
    squeeze = image.dim() == 2
    batch = image[None] if squeeze else image
    theta = (
        default_thetas()
        if theta is None
        else np.asarray(
            theta.detach().cpu() if isinstance(theta, torch.Tensor) else theta, dtype=np.float64
        )
    )
    if theta.ndim != 1 or theta.size == 0 or not np.isfinite(theta).all():
        raise ValueError(
            "hough_lines: theta must be a non-empty 1-D array of finite angles; "
            f"got shape {theta.shape}"
        )
    # numpy's cos/sin, as scikit-image uses, so that binary accumulators agree exactly.
    cos_t = torch.from_numpy(np.cos(theta)).to(image.device)
    sin_t = torch.from_numpy(np.sin(theta)).to(image.device)
    if available:
        acc = torch.ops.emrestore.hough_lines(batch, cos_t, sin_t)
    else:
        acc = reference.hough.hough_lines(batch, cos_t, sin_t)
    offset = reference.hough.hough_offset(*batch.shape[1:])
    rhos = torch.linspace(-offset, offset, 2 * offset + 1, dtype=torch.float64, device=image.device)
    return (acc[0] if squeeze else acc), torch.from_numpy(theta).to(image.device), rhos


def chord_length(thetas: torch.Tensor, rhos: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """[R, T] length in pixels of each (rho, theta) line inside [0, W-1] x [0, H-1]: the vote count
    of a complete line of one-pixel width."""
    c, s = torch.cos(thetas)[None, :], torch.sin(thetas)[None, :]
    r = rhos[:, None]
    # Points r (c, s) + t (-s, c); intersect the t-ranges that keep x and y inside.
    lo = torch.full(
        torch.broadcast_shapes(r.shape, c.shape), -math.inf, dtype=torch.float64, device=rhos.device
    )
    hi = -lo
    for base, step, size in ((r * c, -s, width - 1), (r * s, c, height - 1)):
        flat = step.abs() < 1e-12
        a = torch.where(
            flat, torch.full_like(lo, -math.inf), (0 - base) / torch.where(flat, 1.0, step)
        )
        b = torch.where(
            flat, torch.full_like(lo, math.inf), (size - base) / torch.where(flat, 1.0, step)
        )
        inside = (base >= 0) & (base <= size)
        a = torch.where(flat & ~inside, torch.full_like(lo, math.inf), a)
        lo, hi = torch.maximum(lo, torch.minimum(a, b)), torch.minimum(hi, torch.maximum(a, b))
    return (hi - lo).clamp_min(0)


def _uniform_half_turn(thetas: np.ndarray) -> bool:
    if thetas.size < 2:
        return False
    step = np.diff(thetas)
    return bool(
        np.allclose(step, step[0], rtol=0, atol=1e-9)
        and abs(step[0] * thetas.size - math.pi) < 1e-6
    )


def hough_peaks(
    acc,
    thetas,
    rhos,
    num_peaks: int = 10,
    min_distance: int = 9,
    min_angle: int = 10,
    threshold: float | None = None,
    line_fraction: float | None = None,
    image_shape: tuple[int, int] | None = None,
):
    """The strongest lines of a Hough accumulator, with non-maximum suppression that holds.

    A peak is a local maximum (>= its 8 neighbours) that reaches the threshold; peaks are taken by
    decreasing votes, and none is returned within ``min_distance`` rho bins and ``min_angle`` theta
    bins of a stronger one. When the angles cover pi uniformly (the default) the theta axis is
    circular: (theta, rho) near -pi/2 is the same line as (theta + pi, -rho) near pi/2, and
    suppression works across that seam.

    Threshold: ``threshold`` is an absolute vote count; by default 0.5 x the image's maximum (as
    scikit-image). With ``line_fraction`` f and ``image_shape`` (H, W), a peak must also reach f
    times the length of its line inside the image (at least a quarter of the smaller side): the
    share of a complete line that must be present, independent of where the line runs.

    Returns ``(votes, angles, dists)`` tensors for an [R, T] accumulator, or a list of them for
    [B, R, T].
    """
    if not isinstance(acc, torch.Tensor) or acc.dim() not in (2, 3):
        raise ValueError(
            f"hough_peaks: acc must be an [R, T] or [B, R, T] tensor; got "
            f"{getattr(acc, 'shape', type(acc).__name__)}"
        )
    squeeze = acc.dim() == 2
    batch = acc[None] if squeeze else acc
    r_, t_ = batch.shape[1:]
    # The tables are small: kept on the CPU (as hough_lines may return them on the GPU).
    thetas = torch.as_tensor(thetas, dtype=torch.float64).detach().cpu()
    rhos = torch.as_tensor(rhos, dtype=torch.float64).detach().cpu()
    if thetas.shape != (t_,) or rhos.shape != (r_,):
        raise ValueError(
            f"hough_peaks: thetas [{t_}] and rhos [{r_}] must match the accumulator "
            f"{list(acc.shape)}; got {list(thetas.shape)} and {list(rhos.shape)}"
        )
    if threshold is None and line_fraction is None:
        thr = 0.5 * batch.reshape(len(batch), -1).amax(1).double().view(-1, 1, 1)
    else:
        thr = torch.full((1, 1, 1), float(threshold or 0.0), dtype=torch.float64)
    thr = thr.to(acc.device)
    if line_fraction is not None:
        if image_shape is None:
            raise ValueError("hough_peaks: line_fraction needs image_shape=(H, W)")
        h, w = image_shape
        chord = chord_length(thetas, rhos, h, w).clamp_min(min(h, w) / 4)
        thr = torch.maximum(thr, (line_fraction * chord)[None].to(acc.device))
    wrap = _uniform_half_turn(thetas.numpy())
    args = (batch, thr.contiguous(), int(num_peaks), int(min_distance), int(min_angle), wrap)
    if available:
        rho_i, theta_i, count = torch.ops.emrestore.hough_peaks(*args)
    else:
        rho_i, theta_i, count = reference.hough.hough_peaks(*args)
    out = []
    for b in range(len(batch)):
        n = int(count[b])
        ri, ti = rho_i[b, :n], theta_i[b, :n]
        out.append((batch[b, ri, ti], thetas.to(acc.device)[ti], rhos.to(acc.device)[ri]))
    return out[0] if squeeze else out


if available:

    @torch.library.register_fake("emrestore::hough_lines")
    def _hough_lines_fake(image, cos_theta, sin_theta):
        b, h, w = image.shape
        if isinstance(h, int) and isinstance(w, int):
            r = 2 * reference.hough.hough_offset(h, w) + 1
        else:
            r = torch.library.get_ctx().new_dynamic_size()
        dtype = image.dtype if image.dtype.is_floating_point else torch.int32
        return image.new_empty((b, r, cos_theta.shape[0]), dtype=dtype)

    @torch.library.register_fake("emrestore::hough_peaks")
    def _hough_peaks_fake(acc, threshold, num_peaks, min_distance, min_angle, wrap):
        b = acc.shape[0]
        return (
            acc.new_empty((b, num_peaks), dtype=torch.int64),
            acc.new_empty((b, num_peaks), dtype=torch.int64),
            acc.new_empty((b,), dtype=torch.int64),
        )
