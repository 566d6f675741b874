"""Support-film folds (SFF): geometry draws, the fused ``fold_warp`` deformation, and the flows the
unfolding network learns from.

Two presets. ``"paper"`` is the published simulator (Huang et al. 2020): one straight fold spanning
the section, black band of half-width w_l ~ U(5, 20), fold width w_f ~ U(w_l, 80), slope
s ~ U(1e-5, 0.1). ``"realistic"`` (default) follows the statistics of real folds more closely:
amplitudes w_f - w_l of 4-20 px (real folds: about 11, at most 20) decaying over hundreds to
thousands of pixels, curved centre lines, partial folds that end inside the section with a tapering
band, band width varying along the fold, asymmetric sides, and a band that shows the darkened
overlap of the two film layers with soft edges and noise (black in a share of folds).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .. import ops
from ..conventions import check_section, full_scale, jsonable, to_dtype, work_dtype
from ._common import Artifact, LogUniform, Spec, draw, generator, smoothstep

PRESETS = ("realistic", "paper")


def _chord(px: float, py: float, ux: float, uy: float, w: int, h: int) -> tuple[float, float]:
    """Parameter range [t0, t1] of the line (px, py) + t (ux, uy) inside [0, w-1] x [0, h-1]."""
    t0, t1 = -math.inf, math.inf
    for p, u, hi in ((px, ux, w - 1), (py, uy, h - 1)):
        if abs(u) < 1e-12:
            continue
        a, b = (0 - p) / u, (hi - p) / u
        t0, t1 = max(t0, min(a, b)), min(t1, max(a, b))
    return t0, t1


def _smooth_wave(rng: np.random.Generator, s: np.ndarray, harmonics: int = 3) -> np.ndarray:
    """A smooth random curve over s in [0, 1], scaled to max |value| = 1."""
    wave = np.zeros_like(s)
    for k in range(1, harmonics + 1):
        wave += rng.normal() / k * np.sin(math.pi * k * s + rng.uniform(0, 2 * math.pi))
    return wave / max(np.abs(wave).max(), 1e-12)


def _realistic_fold(
    rng,
    h,
    w,
    *,
    half_width,
    amplitude,
    slope,
    bend,
    partial,
    width_variation,
    asymmetry,
    black_band,
    band_level,
    band_softness,
    n_vertices=24,
):
    theta = rng.uniform(0, math.pi)
    ux, uy = math.cos(theta), math.sin(theta)
    nx, ny = -uy, ux
    px, py = rng.uniform(0.15, 0.85) * (w - 1), rng.uniform(0.15, 0.85) * (h - 1)
    t0, t1 = _chord(px, py, ux, uy, w, h)
    is_partial = rng.uniform() < partial
    open_start = open_end = True  # an open end continues past the section border
    if is_partial:
        length = (t1 - t0) * rng.uniform(0.3, 0.8)
        if rng.uniform() < 0.5:  # one end inside the section, the other beyond the border
            if rng.uniform() < 0.5:
                t0, open_end = t1 - length, False
            else:
                t1, open_start = t0 + length, False
        else:  # both ends inside
            t0 = rng.uniform(t0, t1 - length)
            t1, open_start, open_end = t0 + length, False, False
    margin = 0.05 * (t1 - t0)
    ta, tb = t0 - (margin if open_start else 0), t1 + (margin if open_end else 0)
    s = np.linspace(0, 1, n_vertices)
    t = ta + (tb - ta) * s
    offset = draw(rng, bend, "bend") * (tb - ta) * _smooth_wave(rng, s)
    xs, ys = px + t * ux + offset * nx, py + t * uy + offset * ny

    wl0, amp0 = draw(rng, half_width, "half_width"), draw(rng, amplitude, "amplitude")
    vary = draw(rng, width_variation, "width_variation")
    wl = wl0 * (1 + vary * _smooth_wave(rng, s, 2))
    amp = amp0 * (1 + 0.5 * vary * _smooth_wave(rng, s, 2))
    taper = np.ones_like(s)
    taper_len = rng.uniform(0.15, 0.3)
    if not open_start:
        taper *= smoothstep(s / taper_len)
    if not open_end:
        taper *= smoothstep((1 - s) / taper_len)
    wl, amp = wl * taper, amp * taper

    # Open ends continue far along their tangent, so the band and the pull stay straight across the
    # border instead of rounding off at a segment end.
    reach = 2.0 * math.hypot(h, w)
    verts, prof = [np.stack([xs, ys], -1)], [np.stack([wl, amp], -1)]
    if open_start:
        d = np.array([xs[0] - xs[1], ys[0] - ys[1]])
        verts.insert(0, (np.array([xs[0], ys[0]]) + reach * d / np.linalg.norm(d))[None])
        prof.insert(0, prof[0][:1])
    if open_end:
        d = np.array([xs[-1] - xs[-2], ys[-1] - ys[-2]])
        verts.append((np.array([xs[-1], ys[-1]]) + reach * d / np.linalg.norm(d))[None])
        prof.append(prof[-1][-1:])
    gains = [1.0, draw(rng, asymmetry, "asymmetry")]
    rng.shuffle(gains)
    level = 0.0 if rng.uniform() < black_band else draw(rng, band_level, "band_level")
    params = [
        draw(rng, slope, "slope"),
        gains[0],
        gains[1],
        level,
        draw(rng, band_softness, "band_softness"),
    ]
    record = {
        "type": "partial" if is_partial else "spanning",
        "angle": theta,
        "half_width": wl0,
        "amplitude": amp0,
        "width_variation": vary,
    }
    return np.concatenate(verts), np.concatenate(prof), np.array(params), record


def _paper_fold(rng, h, w, *, half_width, fold_width, slope):
    wl = draw(rng, half_width, "half_width")
    wf = max(draw(rng, fold_width, "fold_width"), wl)
    theta = rng.uniform(0, math.pi)
    point = (rng.uniform(0.15, 0.85) * (w - 1), rng.uniform(0.15, 0.85) * (h - 1))
    s = draw(rng, slope, "slope")
    v, p, q = ops.paper_fold(
        h, w, point=point, angle=theta, half_width=wl, fold_width=wf, slope=s, dtype=torch.float64
    )
    record = {"type": "paper", "angle": theta, "half_width": wl, "fold_width": wf}
    return v[0, 0].numpy(), p[0, 0].numpy(), q[0, 0].numpy(), record


def _pad_vertices(folds):
    """Stacks folds of different vertex counts by repeating each fold's last vertex (a zero-length
    segment changes nothing)."""
    n = max(len(v) for v, _, _, _ in folds)
    pad = lambda a: np.concatenate([a, np.repeat(a[-1:], n - len(a), 0)])  # noqa: E731
    vertices = np.stack([pad(v) for v, _, _, _ in folds])
    profile = np.stack([pad(p) for _, p, _, _ in folds])
    params = np.stack([q for _, _, q, _ in folds])
    to = lambda a: torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))[None]  # noqa: E731
    return to(vertices), to(profile), to(params)


def _norm2(v: torch.Tensor) -> torch.Tensor:
    """Squared length of [B, 2, H, W] vectors as [B, 1, H, W] (much faster than norm(dim=1) on
    CPU)."""
    return v[:, 0:1] * v[:, 0:1] + v[:, 1:2] * v[:, 1:2]


def invert_flow(
    flow: torch.Tensor, iterations: int = 30, tol: float = 1e-3
) -> tuple[torch.Tensor, torch.Tensor]:
    """Inverse of a backward warp: g with p = q + g(q) solving p + flow(p) = q, by the fixed-point
    iteration g <- -flow(q + g) (a contraction where the flow's slope is below 1, as in the fold
    model). Returns g [B, 2, H, W] and a bool [B, 1, H, W] of the pixels q that have no such p
    inside the image (content squeezed out, or pushed out of the field of view)."""
    g = -flow
    history = []
    for _ in range(iterations):
        g_next = -ops.warp(flow, g, "bilinear", "border")
        # The change is the residual |p + flow(p) - q| at g. Pixels without a preimage never settle
        # (they jump across the fold): stop once the count of unsettled pixels stops falling.
        unsettled = int((_norm2(g_next - g) > tol * tol).sum())
        g = g_next
        history.append(unsettled)
        if unsettled == 0 or (
            len(history) >= 2 and history[-2] - unsettled < 1e-4 * g[0, 0].numel()
        ):
            break
    h, w = flow.shape[-2:]
    ys = torch.arange(h, dtype=flow.dtype).view(h, 1)
    xs = torch.arange(w, dtype=flow.dtype).view(1, w)
    px, py = xs + g[:, 0:1], ys + g[:, 1:2]
    eps = 1e-3
    outside = (px < -eps) | (px > w - 1 + eps) | (py < -eps) | (py > h - 1 + eps)
    residual2 = _norm2(g + ops.warp(flow, g, "bilinear", "border"))
    return g, (residual2 > 0.05**2) | outside


def simulate_sff(
    image: np.ndarray,
    index: int | None = None,
    *,
    seed=None,
    preset: str = "realistic",
    n_folds: Spec = (1, 2),
    half_width: Spec | None = None,
    amplitude: Spec = (4.0, 20.0),
    fold_width: Spec = (5.0, 80.0),
    slope: Spec | None = None,
    bend: Spec = (0.0, 0.06),
    partial: float = 0.35,
    width_variation: Spec = (0.0, 0.35),
    asymmetry: Spec = (0.5, 1.0),
    black_band: float = 0.3,
    band_level: Spec = (0.15, 0.5),
    band_softness: Spec = (0.5, 3.0),
    band_noise: float = 0.04,
    return_flow: bool = True,
) -> Artifact:
    """Adds support-film folds to one section (``image`` [H, W], or ``image[index]`` of a stack).

    Every parameter is a number, a (low, high) range drawn uniformly, or a callable of the
    generator; ``n_folds`` is rounded. Defaults depend on the ``preset`` ("realistic" or "paper",
    see the module): ``half_width`` (w_l) U(5, 20) for both; ``slope`` log-uniform over [2e-3, 5e-2]
    (realistic) or U(1e-5, 0.1) (paper, with ``fold_width`` w_f; realistic uses ``amplitude``
    w_f - w_l). ``partial`` is the probability that a fold ends inside the section, ``black_band``
    that its band is black rather than a darkened overlap. With ``return_flow`` the result carries
    the applied flow, its inverse and the lost pixels (the unfolding network's targets); without,
    the inversion is skipped.
    """
    section = check_section(image, index, "simulate_sff")
    if preset not in PRESETS:
        raise ValueError(f"simulate_sff: preset must be one of {PRESETS}; got {preset!r}")
    rng = generator(seed)
    h, w = section.shape
    half_width = (5.0, 20.0) if half_width is None else half_width
    if preset == "paper":
        slope = (1e-5, 0.1) if slope is None else slope
        folds = [_paper_fold(rng, h, w, half_width=half_width, fold_width=fold_width, slope=slope)]
    else:
        slope = LogUniform(2e-3, 5e-2) if slope is None else slope
        count = max(1, int(round(draw(rng, n_folds, "n_folds"))))
        folds = [
            _realistic_fold(
                rng,
                h,
                w,
                half_width=half_width,
                amplitude=amplitude,
                slope=slope,
                bend=bend,
                partial=partial,
                width_variation=width_variation,
                asymmetry=asymmetry,
                black_band=black_band,
                band_level=band_level,
                band_softness=band_softness,
            )
            for _ in range(count)
        ]
    work = work_dtype(section.dtype)
    vertices, profile, params = (
        t.to(torch.float64 if work == np.float64 else torch.float32) for t in _pad_vertices(folds)
    )
    x = torch.from_numpy(section.astype(work))[None, None]
    flow = inverse = lost = None
    with torch.no_grad():
        flow_t, alpha_t, level_t = ops.fold_field(vertices, profile, params, h, w)
        out = (1 - alpha_t) * ops.warp(x, flow_t, "bilinear", "border") + alpha_t * level_t * x
        if return_flow:
            inv_t, unreachable = invert_flow(flow_t)
            hidden = ops.warp(alpha_t, inv_t, "bilinear", "border") > 0  # under the band
            flow, inverse = flow_t[0].numpy(), inv_t[0].numpy()
            lost = (unreachable | hidden)[0, 0].numpy()
        # Pixels the folds leave alone keep their exact value (resampling at a zero offset
        # can round).
        untouched = (alpha_t == 0) & (flow_t[:, :1] == 0) & (flow_t[:, 1:] == 0)
        out = torch.where(untouched, x, out)
    alpha = alpha_t[0, 0].numpy()
    out = out[0, 0].numpy()
    noise_sd = band_noise * full_scale(section.dtype) if preset == "realistic" else 0.0
    if noise_sd > 0:  # grain of the overlapping film, only inside the band
        band = alpha > 0
        out = out.copy()
        out[band] += alpha[band] * rng.normal(0, noise_sd, int(band.sum())).astype(work)
    record = {"preset": preset, "folds": []}
    for v, p, q, rec in folds:
        rec.update(
            vertices=v,
            profile=p,
            slope=q[0],
            gain_left=q[1],
            gain_right=q[2],
            band_level=q[3],
            band_softness=q[4],
        )
        record["folds"].append(rec)
    return Artifact(
        kind="sff",
        image=to_dtype(out, section.dtype),
        mask=alpha > 0,
        alpha=alpha,
        params=jsonable(record),
        flow=flow,
        inverse_flow=inverse,
        lost=lost,
    )
