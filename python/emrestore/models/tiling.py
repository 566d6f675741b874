"""Inference on sections of any size: overlapping tiles with a halo of the network's receptive
radius (network context plus the kernels' reach), aligned to its pooling stride. Every output pixel
is computed from exactly the context it would see in a whole-section pass, so tiles are cropped,
not blended, and the tiled result equals the whole-section result to float rounding: no seams.
For flow-guided models the flow is computed once on the whole section, before tiling (with the
sections beyond the neighbours, where given), and the neighbours' fine detail is put back into the
whole prediction after tiling (``emrestore.models.detail``)."""

from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn.functional as F

from ..alignment import ALL_VIEWS, align_pair, dihedral, undo_dihedral
from ..conventions import to_unit
from .detail import add_detail, detail_source
from .interpolation import SepConvInterpolator, padded_size


def _unit(section) -> np.ndarray:
    a = np.asarray(section)
    if a.ndim != 2:
        raise ValueError(f"interpolate: expected 2-D sections [H, W]; got shape {a.shape}")
    if a.dtype.kind == "f" and not np.isfinite(a).all():
        raise ValueError("interpolate: a neighbour section contains NaN or infinite values")
    return to_unit(a)


@torch.no_grad()
def interpolate(
    model: SepConvInterpolator,
    before,
    after,
    t: float = 0.5,
    *,
    tile: int | None = 512,
    device: str | torch.device | None = None,
    aligned: bool = False,
    tta: bool = False,
    outer=(None, None),
    outer_gaps=(1.0, 1.0),
    detail: float | None = None,
) -> np.ndarray:
    """The section at fractional position ``t`` between ``before`` and ``after`` ([H, W], any dtype
    the package reads), as float32 in [0, 1]. ``tile``: core tile side in pixels (None or 0: one
    pass over the whole section); each tile is read with a halo of
    ``model.config.receptive_radius``.
    ``aligned``: for a flow-guided model, the neighbours are already aligned to ``t`` (as
    ``emrestore.alignment.align_pair`` returns them), so the flow is not computed again.
    ``outer``, ``outer_gaps``: the sections beyond ``before`` and beyond ``after`` (or None) and
    their distances from them in units of the before-after distance, for a model with
    ``config.outer_flow`` (ignored otherwise): the flow measures each neighbour's motion against
    them as well (``emrestore.alignment.align_pair``).
    ``tta``: average the predictions for the pair's eight rotations and mirror images, each read
    in both orders (16 passes; a flow-guided model with ``flow_views`` 1, 2 or 4 aligns each of
    them anew, and optical flow differs between them; with 8, the flow is the same for all of them
    and is computed once): see docs/interpolation.md (the `--tta` rows) for what it gains, at up to
    16 times the cost.
    ``detail``: for a flow-guided model, the share of the prediction's fine detail replaced by that
    of the neighbours aligned to each other (``emrestore.models.detail``; with ``aligned``, the
    neighbours as given); default ``model.config.detail``, 0 for the network's output as it is."""
    a, b = _unit(before), _unit(after)
    if a.shape != b.shape:
        raise ValueError(f"interpolate: neighbours differ in shape: {a.shape} and {b.shape}")
    uses_outer = model.config.uses_outer_flow and not aligned
    oa, ob = (_unit(o) if o is not None and uses_outer else None for o in outer)
    for name, o in (("outer[0]", oa), ("outer[1]", ob)):
        if o is not None and o.shape != a.shape:
            raise ValueError(
                f"interpolate: {name} must have the neighbours' shape {a.shape}; got {o.shape}"
            )
    ga, gb = outer_gaps
    detail = model.config.detail_share(detail)
    if not 0.0 < t < 1.0:
        raise ValueError(f"interpolate: t must lie strictly between 0 and 1; got {t}")
    held = model_device(model)
    device = torch.device(device) if device is not None else held
    if device.type != held.type or device.index not in (None, held.index):
        model = copy.deepcopy(model).to(device)  # a copy: the caller's model stays where it is
    source = detail_source(a, b, t, aligned=aligned) if detail else None

    def finish(pred: np.ndarray) -> np.ndarray:
        if not np.isfinite(pred).all():  # damaged weights: never a silently wrong section
            raise ValueError(
                f"interpolate: the network ({getattr(model, 'source', 'in memory')}) "
                "gave NaN or infinite values; its weights may be damaged"
            )
        return (
            add_detail(pred, source, amount=detail, sigma=model.config.detail_sigma)
            if detail
            else pred
        )

    if not tta:
        return finish(_align_and_predict(model, (a, b, oa, ob), t, (ga, gb), tile, device, aligned))
    if model.config.align == "flow" and model.config.flow_views == ALL_VIEWS and not aligned:
        # A flow averaged over all eight views turns and mirrors with the sections, and reading the
        # pair the other way round swaps the same two flows: every pass would align alike, so
        # align once.
        a, b = _align(model, (a, b, oa, ob), t, (ga, gb))
        oa = ob = None
        aligned = True
    total = np.zeros(a.shape, np.float64)
    for k in range(4):
        for mirror in (False, True):
            fa, fb, foa, fob = (
                None if x is None else dihedral(x, k, mirror) for x in (a, b, oa, ob)
            )
            # Read the other way round, the same section lies at 1 - t.
            for secs, position, gaps in (
                ((fa, fb, foa, fob), t, (ga, gb)),
                ((fb, fa, fob, foa), 1.0 - t, (gb, ga)),
            ):
                pred = _align_and_predict(model, secs, position, gaps, tile, device, aligned)
                total += undo_dihedral(pred, k, mirror)
    return finish((total / 16).astype(np.float32))


def _align(model, sections, t, gaps) -> tuple[np.ndarray, np.ndarray]:
    """The pair of ``sections`` (a, b, outer a, outer b) aligned to ``t`` as the model aligns it
    (as given for a model without flow guidance)."""
    a, b, oa, ob = sections
    if model.config.align != "flow":
        return a, b
    return align_pair(a, b, t, outer=(oa, ob), outer_gaps=gaps, views=model.config.flow_views)


def _align_and_predict(model, sections, t, gaps, tile, device, aligned) -> np.ndarray:
    a, b = sections[:2] if aligned else _align(model, sections, t, gaps)
    return _predict(model, a, b, t, tile, device)


def _predict(
    model: SepConvInterpolator,
    a: np.ndarray,
    b: np.ndarray,
    t: float,
    tile: int | None,
    device: torch.device,
) -> np.ndarray:
    """One tiled pass of the network over unit-range neighbours a and b."""
    stride = model.config.stride
    halo = padded_size(model.config.receptive_radius, stride)
    h, w = a.shape
    full_h, full_w = padded_size(h, stride), padded_size(w, stride)
    tile_h, tile_w = (
        (min(padded_size(tile, stride), full_h), min(padded_size(tile, stride), full_w))
        if tile
        else (full_h, full_w)
    )
    # The section padded by the halo (edge-replicated, as the sepconv op pads) and up to the stride.
    pair = torch.from_numpy(np.stack([a, b]))[None].to(device)
    pair = F.pad(pair, (halo, full_w - w + halo, halo, full_h - h + halo), mode="replicate")
    out = np.empty((h, w), np.float32)
    tt = torch.tensor([float(t)], device=device)
    for y in range(0, h, tile_h):
        for x in range(0, w, tile_w):
            ch, cw = (
                min(tile_h, full_h - y),
                min(tile_w, full_w - x),
            )  # the last tiles shrink to fit
            window = pair[:, :, y : y + ch + 2 * halo, x : x + cw + 2 * halo]
            pred = model(window[:, :1], window[:, 1:], tt)[0, 0, halo : halo + ch, halo : halo + cw]
            th, tw = min(ch, h - y), min(cw, w - x)
            out[y : y + th, x : x + tw] = pred[:th, :tw].clamp(0, 1).cpu().numpy()
    return out


def model_device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device
