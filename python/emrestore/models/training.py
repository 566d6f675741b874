"""``fit``: self-supervised training of the interpolation network on the user's own stack.

Every clean section with clean sections on both sides is a training target: the network sees its
neighbours at gaps of 1 to ``max_gap`` sections on each side (so it learns runs of missing sections
too) and must reproduce it. With ``z_step`` n the gaps are n to n * ``max_gap`` sections, from every
offset: a near-isotropic stack (FIB-SEM) then trains for n-times thicker sections on all of its
sections instead of every n-th one. Crops are read section by section, so the stack may be a memory
map or a zarr/h5py array larger than memory. Sections the detector flags are never used.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..alignment import align_pair, outer_gaps, outer_indices
from ..conventions import to_unit
from ..metrics import MEMBRANE_QUANTILE, SEGMENT_SIGMA, segment, segmentation_scores
from .checkpoint import load_model, pick_device, save_model
from .interpolation import InterpolationConfig, SepConvInterpolator
from .tiling import interpolate

LOSSES = ("l1", "mse", "l1+grad", "mse+ssim")
SSIM_WEIGHT = 0.5  # default weight of the (1 - SSIM) term in "mse+ssim"
CLIP_NORM = None  # no gradient-norm ceiling: clipping at 1.0 did not stop a fit from diverging
COLLAPSE_DB = 1.0  # validation this far below its best means the fit diverged
KEEPS = ("last", "best")
# Training crops are aligned with one flow each: with the model's eight views (validation and
# inference use them) drawing the batches, not the training step, would bound a 2-core fit.
TRAIN_FLOW_VIEWS = 1
# keep="last" keeps the best-validated weights instead when the last validate this much worse:
# three times the widest gap seen between them in fits that neither overfit nor diverged.
KEEP_TOLERANCE_DB = 0.25


@dataclass
class FitResult:
    model: SepConvInterpolator
    folder: Path
    record: dict = field(default_factory=dict)


def _check_stack(stack):
    shape = getattr(stack, "shape", None)
    if shape is None or len(shape) != 3:
        raise ValueError(f"fit: expected a stack [Z, H, W]; got shape {shape}")
    if shape[0] < 3:
        raise ValueError(f"fit: need at least 3 sections (a clean section between two clean neighbours); "
                         f"got {shape[0]}")
    if np.dtype(stack.dtype) not in (np.uint8, np.uint16, np.float32, np.float64):
        raise TypeError(f"fit: expected uint8, uint16, float32 or float64 sections; got {stack.dtype}")


def triplets(clean: np.ndarray, max_gap: int, z_step: int = 1) -> list[tuple[int, int, int]]:
    """(before, target, after) with all three clean and gaps of z_step * (1..max_gap) on each side."""
    ok = np.flatnonzero(clean)
    out = []
    for z in ok:
        for a in range(z - max_gap * z_step, z, z_step):
            for b in range(z + z_step, z + (max_gap + 1) * z_step, z_step):
                if a >= 0 and b < len(clean) and clean[a] and clean[b]:
                    out.append((int(a), int(z), int(b)))
    return out


def _single(trip, z_step: int) -> bool:
    """A triplet for one missing section: both gaps are the plain spacing."""
    a, z, b = trip
    return z - a == z_step and b - z == z_step


def _split(trips, val_fraction: float, z_step: int = 1):
    """Validation: evenly spread targets with both gaps z_step. No training target lies closer than
    z_step sections to one (at z_step > 1 the sections in between are near copies of it)."""
    singles = sorted({t[1] for t in trips if _single(t, z_step)})
    n_val = 0
    if len(singles) >= 4 * z_step and val_fraction > 0:
        n_val = max(1, round(len(singles) * val_fraction / z_step))
    val_targets = {singles[int((i + 0.5) * len(singles) / n_val)] for i in range(n_val)}
    val = [t for t in trips if t[1] in val_targets and _single(t, z_step)]
    train = [t for t in trips if all(abs(t[1] - v) >= z_step for v in val_targets)]
    return train, val


def _unit(stack, z, ys=slice(None), xs=slice(None)) -> np.ndarray:
    return to_unit(np.asarray(stack[z, ys, xs]))


class _Sampler:
    """Random crops of training triplets with flips, 90-degree turns, order swap and
    brightness/contrast jitter (one draw per triplet, applied to all three sections). With
    ``align``, the outer two are then aligned to the middle one's position as ``interpolate`` does,
    on a crop ``margin`` pixels larger on each side, so the flow sees context past the crop; with
    ``outer`` ([Z] bool, the usable sections), from the sections beyond them as well
    (``emrestore.alignment.outer_indices``), each dropped
    with probability ``drop_outer`` so that the network also learns the pairs at a stack's ends;
    ``views``: the flows' symmetric averaging (``emrestore.alignment.symmetric_flow``)."""

    def __init__(self, stack, trips, crop: int, augment: bool = True, jitter: float = 0.15, align: bool = False,
                 margin: int = 32, z_step: int = 1, outer: np.ndarray | None = None, drop_outer: float = 0.15,
                 views: int = 1):
        self.stack, self.trips, self.crop, self.jitter, self.views = stack, trips, crop, jitter, views
        self.augment, self.align, self.margin, self.drop_outer = augment, align, margin, drop_outer
        self.outers = [outer_indices(outer, t[0], t[2], z_step) if outer is not None and align else (None, None)
                       for t in trips]
        # Single missing sections are the common case: half of all draws.
        gaps = np.array([_single(t, z_step) for t in trips], float)
        n_single = gaps.sum()
        p = np.where(gaps > 0, 0.5 / max(n_single, 1), 0.5 / max(len(trips) - n_single, 1))
        self.p = p / p.sum()

    def _augment(self, t, pos, rng, sides):
        if rng.random() < 0.5:  # order swap
            t, pos, sides = t[::-1], 1 - pos, sides[::-1]
        t = np.rot90(t, int(rng.integers(4)), axes=(1, 2))
        if rng.random() < 0.5:
            t = t[:, :, ::-1]
        gain = math.exp(rng.uniform(-self.jitter, self.jitter))
        t = np.clip((t - t.mean()) * gain + t.mean() + rng.uniform(-self.jitter, self.jitter) / 2, 0, 1)
        return t, pos, sides

    def batch(self, size: int, seed):
        """One batch from its own generator (``seed``: an int or a sequence of ints, as
        ``np.random.default_rng`` takes), so batches may be drawn on several threads and still
        depend only on the fit's seed."""
        rng = np.random.default_rng(seed)
        _, h, w = self.stack.shape
        c = self.crop
        m = max(0, min(self.margin, (h - c) // 2, (w - c) // 2)) if self.align else 0
        e = c + 2 * m
        items, ts = [], []
        for i in rng.choice(len(self.trips), size=size, p=self.p):
            a, z, b = self.trips[i]
            y, x = int(rng.integers(0, h - e + 1)), int(rng.integers(0, w - e + 1))
            win = (slice(y, y + e), slice(x, x + e))
            below, above = (o if o is not None and rng.random() >= self.drop_outer else None
                            for o in self.outers[i])
            # [outer or a, a, z, b, outer or b], each section read once; sides: (outer present, its
            # gap in a-b distances).
            crops = {s: _unit(self.stack, s, *win) for s in {below, a, z, b, above} - {None}}
            t = np.stack([crops[s] for s in (a if below is None else below, a, z, b, b if above is None else above)])
            sides = tuple(zip((below is not None, above is not None), outer_gaps(a, b, (below, above))))
            pos = (z - a) / (b - a)
            if self.augment:
                t, pos, sides = self._augment(t, pos, rng, sides)
            if self.align:
                (has_a, gap_a), (has_b, gap_b) = sides
                before, after = align_pair(t[1], t[3], pos, outer=(t[0] if has_a else None, t[4] if has_b else None),
                                           outer_gaps=(gap_a, gap_b), views=self.views)
                t = np.stack([before, t[2], after])[:, m:m + c, m:m + c]
            else:
                t = t[1:4]
            items.append(np.ascontiguousarray(t, dtype=np.float32))
            ts.append(pos)
        return torch.from_numpy(np.stack(items)), torch.tensor(ts, dtype=torch.float32)


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
    vp, vt, cov = blur(pred * pred) - mp * mp, blur(target * target) - mt * mt, blur(pred * target) - mp * mt
    return ((2 * mp * mt + c1) * (2 * cov + c2) / ((mp * mp + mt * mt + c1) * (vp + vt + c2))).mean()


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


def _loss(pred, target, kind: str, ssim_weight: float = SSIM_WEIGHT, membrane_weight: float = 0.0):
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


def _psnr(pred: np.ndarray, target: np.ndarray) -> float:
    mse = float(np.mean((pred - target) ** 2))
    return float("inf") if mse == 0 else 10 * math.log10(1 / mse)


def _schedule(progress: float, warmup: float = 0.03, floor: float = 0.05) -> float:
    """Learning-rate factor: linear warm-up, then cosine decay to ``floor`` at the end of the budget."""
    if progress < warmup:
        return (progress + 1e-3) / warmup
    p = min(1.0, (progress - warmup) / (1 - warmup))
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * p))


def fit(stack, folder, *, minutes: float | None = 30.0, iterations: int | None = None,
        config: InterpolationConfig | None = None, batch_size: int = 8, crop: int = 128, lr: float = 2e-3,
        weight_decay: float = 1e-4, loss: str = "l1+grad", ssim_weight: float = SSIM_WEIGHT,
        membrane_weight: float = 0.0, max_gap: int = 3,
        z_step: int = 1, exclude=None,
        detect: bool = True,
        augment: bool = True, val_fraction: float = 0.1, val_size: int = 512, val_minutes: float = 0.5,
        checkpoint_minutes: float = 2.0, clip_norm: float | None = CLIP_NORM, keep: str = "last",
        seed: int = 0, device: str | torch.device | None = None, resume: bool = False, workers: int | None = None,
        progress: bool = True) -> FitResult:
    """Trains the interpolation network on ``stack`` [Z, H, W] and saves it to ``folder``.

    Args:
        minutes: wall-clock budget (the schedule spans it); ``iterations``: a step budget instead
            or as well (whichever ends first).
        exclude: [Z] bool, sections never used (default: the ones ``emrestore.detect`` flags, if
            ``detect``); ``max_gap``: largest gap on each side (runs of missing sections).
        z_step: train for sections this many apart (the gaps are multiples of it), on every offset.
        augment: flips, 90-degree turns, order swap, brightness/contrast jitter.
        config: the architecture (default ``InterpolationConfig()``: flow-guided); with
            ``config.align == "flow"`` each crop's outer sections are aligned as ``interpolate``
            aligns them.
        loss: ``"l1+grad"`` (L1 on the pixels and on their x and y differences: less blur where
            the neighbours disagree), ``"l1"``, ``"mse"``, or ``"mse+ssim"`` (MSE plus
            ``ssim_weight`` x (1 - SSIM): keeps membranes' contrast, so the section segments better).
        membrane_weight: adds this weight x ``membrane_loss``, the disagreement of the soft membrane
            masks (the darkest quarter of the blurred section, where ``emrestore.metrics.segment``
            puts membranes): trades some PSNR for a section that segments like the clean one.
        val_fraction, val_size: share of single-gap targets held out for validation, and the
            side of the central crop of each that is scored; ``val_minutes``: how often.
        clip_norm: ceiling of the gradient's norm (default None: not clipped). A fit whose validation
            falls ``COLLAPSE_DB`` below its best has diverged: it goes on from the best weights,
            with fresh optimizer moments and half the step size (``record["restarts"]``).
        resume: continue from ``folder``'s checkpoint (latest weights, optimizer, record), for
            ``minutes`` / ``iterations`` more.
        device: default CUDA when available.
        workers: threads drawing batches (reading, augmenting, aligning) ahead of the training step
            (default: 1 on the CPU, where training takes the cores; up to 8 beside a GPU).

        keep: which weights ``folder/model.safetensors`` and the returned model hold. ``"last"``
            (default): the weights at the end of the schedule, unless their validation PSNR lies
            more than ``KEEP_TOLERANCE_DB`` below the best one's (overfitting, or a late
            divergence); then, and with ``"best"``, the weights that scored best on the held-out
            validation triplets (checked every ``val_minutes`` and at the end). On two held-out
            sections the best score is partly luck: over the ten fits of docs/interpolation.md the
            last weights scored as well on the test stacks, and on ISBI segmented better in seven
            of eight.

    ``record["kept"]`` says which weights were kept, ``record["best"]`` when the best validation
    was; ``best.safetensors`` and ``last.safetensors`` hold both. ``record["history"]`` logs the
    loss and, for the validation crops, PSNR and the VOI of their segmentation against the clean
    one's.
    """
    _check_stack(stack)
    if loss not in LOSSES:
        raise ValueError(f"fit: loss must be one of {LOSSES}; got {loss!r}")
    if keep not in KEEPS:
        raise ValueError(f"fit: keep must be one of {KEEPS}; got {keep!r}")
    if minutes is None and iterations is None:
        raise ValueError("fit: give a budget: minutes, iterations or both")
    for name, weight in (("ssim_weight", ssim_weight), ("membrane_weight", membrane_weight)):
        if not (math.isfinite(weight) and weight >= 0):
            raise ValueError(f"fit: {name} must be a finite number >= 0; got {weight!r}")
    if int(z_step) != z_step or z_step < 1:
        raise ValueError(f"fit: z_step must be a positive integer; got {z_step!r}")
    z, h, w = stack.shape
    crop = min(crop, h, w)
    folder = Path(folder)
    device = pick_device(device)
    torch.manual_seed(seed)

    if exclude is None:
        exclude = np.zeros(z, bool)
        if detect:
            from ..detect import detect_stack

            found = detect_stack(np.asarray(stack), progress=progress)
            exclude = np.array([any(v != "ok" for v in s["verdict"]) for s in found.sections])
    exclude = np.asarray(exclude, bool)
    if exclude.shape != (z,):
        raise ValueError(f"fit: exclude must be [Z] = [{z}] booleans; got shape {exclude.shape}")
    trips = triplets(~exclude, max_gap, z_step)
    if not trips:
        raise ValueError(f"fit: no clean section has clean neighbours {z_step} section(s) away on both sides "
                         f"({int(exclude.sum())} of {z} sections excluded)")
    train, val = _split(trips, val_fraction, z_step)

    best_weights = None  # the state dict with the best validation PSNR so far
    if resume:
        model, saved = load_model(folder, device=device, last=True)
        record = saved.get("training", {})
        if record.get("best"):  # folders from before best.safetensors kept the best as the model
            best_weights = load_model(folder, device=device, best=True)[0].state_dict()
    else:
        sample = np.stack([_unit(stack, i) for i in np.linspace(0, z - 1, min(z, 8)).astype(int)])
        model = SepConvInterpolator(config, mean=float(sample.mean()), std=float(sample.std() + 1e-3)).to(device)
        record = {"iterations": 0, "seconds": 0.0, "history": []}
    record.update({"stack_shape": [z, h, w], "excluded_sections": np.flatnonzero(exclude).tolist(),
                   "train_triplets": len(train), "val_targets": sorted({t[1] for t in val}), "loss": loss,
                   "batch_size": batch_size, "crop": crop, "lr": lr, "clip_norm": clip_norm, "max_gap": max_gap,
                   "z_step": z_step, "seed": seed, "keep": keep})
    record.pop("ssim_weight", None)  # a resumed fit may change the loss
    record.pop("membrane_weight", None)
    if loss == "mse+ssim":
        record["ssim_weight"] = ssim_weight
    if membrane_weight:
        record["membrane_weight"] = membrane_weight
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    if resume and (folder / "optimizer.pt").is_file():
        optimizer.load_state_dict(torch.load(folder / "optimizer.pt", map_location=device, weights_only=True))
    use_outer = model.config.uses_outer_flow
    sampler = _Sampler(stack, train, crop, augment, align=model.config.align == "flow", z_step=z_step,
                       outer=~exclude if use_outer else None, views=TRAIN_FLOW_VIEWS)
    val_crops = []
    for a, t, b in val:  # fixed central crops
        y0, x0 = max(0, (h - val_size) // 2), max(0, (w - val_size) // 2)
        win = (slice(y0, y0 + val_size), slice(x0, x0 + val_size))
        before, target, after = (_unit(stack, s, *win) for s in (a, t, b))
        if model.config.align == "flow":  # once, not at every validation
            outer = outer_indices(~exclude, a, b, z_step) if use_outer else (None, None)
            before, after = align_pair(before, after, 0.5,
                                       outer=tuple(None if s is None else _unit(stack, s, *win) for s in outer),
                                       outer_gaps=outer_gaps(a, b, outer), views=model.config.flow_views)
        val_crops.append((before, target, after))
    val_labels = [segment(t) for _, t, _ in val_crops]  # the targets' segmentations, once

    def validate(iteration: int) -> tuple[float | None, float | None]:
        """Validation PSNR and VOI (of the segmentation, against the clean sections'); the weights
        are copied to ``best_weights`` when the PSNR is the best so far."""
        nonlocal best_weights
        if not val_crops:
            return None, None
        model.eval()
        # The network's own output (detail=0): validation tracks what training changes.
        preds = [interpolate(model, a, b, 0.5, tile=None, aligned=True, detail=0.0) for a, t, b in val_crops]
        targets = [t for _, t, _ in val_crops]
        value = float(np.mean([_psnr(p, t) for p, t in zip(preds, targets)]))
        model.train()
        voi = float(np.mean([segmentation_scores(p, labels)["voi"] for p, labels in zip(preds, val_labels)]))
        if value > record.get("best", {}).get("val_psnr", -math.inf):
            record["best"] = {"iteration": iteration, "val_psnr": value}
            best_weights = {k: v.detach().clone() for k, v in model.state_dict().items()}
        return value, voi

    budget_s = minutes * 60 if minutes is not None else math.inf
    budget_it = iterations if iterations is not None else math.inf
    done_s, done_it = record["seconds"], record["iterations"]
    start, last_ckpt, last_log = time.perf_counter(), time.perf_counter(), time.perf_counter()
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=round(budget_s) if minutes is not None else iterations, desc="fit",
                   unit="s" if minutes is not None else "it", dynamic_ncols=True)
    model.train()
    step, running, val_psnr = 0, None, record.get("val_psnr")
    # The next batches are drawn (read, augmented, aligned) while this one trains; each from its own
    # generator seeded by (seed, iteration), so a resumed fit draws new ones.
    if workers is None:
        workers = 1 if device.type == "cpu" else max(1, min(8, (os.cpu_count() or 2) - 1))
    pool = ThreadPoolExecutor(max_workers=workers)
    batch_index = itertools.count(done_it)  # the iteration each drawn batch is for
    pending = deque(pool.submit(sampler.batch, batch_size, (seed, next(batch_index))) for _ in range(2 * workers))
    try:
        while True:
            elapsed = time.perf_counter() - start
            if elapsed >= budget_s or step >= budget_it:
                break
            frac = max(elapsed / budget_s, step / budget_it)
            for g in optimizer.param_groups:
                g["lr"] = lr * _schedule(frac)
            frames, ts = pending.popleft().result()
            pending.append(pool.submit(sampler.batch, batch_size, (seed, next(batch_index))))
            frames, ts = frames.to(device), ts.to(device)
            pred = model(frames[:, :1], frames[:, 2:], ts)
            value = _loss(pred, frames[:, 1:2], loss, ssim_weight, membrane_weight)
            optimizer.zero_grad(set_to_none=True)
            value.backward()
            if clip_norm is not None:  # a rare outlier batch must not blow the network up
                torch.nn.utils.clip_grad_norm_(model.parameters(), clip_norm)
            optimizer.step()
            step += 1
            running = value.item() if running is None else 0.95 * running + 0.05 * value.item()
            now = time.perf_counter()
            ending = now - start >= budget_s or step >= budget_it
            if now - last_log > val_minutes * 60 or ending:
                val_psnr, val_voi = validate(done_it + step)
                best = record.get("best", {}).get("val_psnr")
                if val_psnr is not None and best is not None and val_psnr < best - COLLAPSE_DB and not ending:
                    # Diverged (activations blown up, kernels saturated: it does not come back).
                    # Go on from the best weights with fresh moments and half the step size.
                    model.load_state_dict(best_weights)
                    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
                    lr /= 2
                    record.setdefault("restarts", []).append(
                        {"iteration": done_it + step, "val_psnr": val_psnr, "from": record["best"]["iteration"],
                         "lr": lr})
                record["history"].append({"iteration": done_it + step, "seconds": round(done_s + now - start, 1),
                                          "loss": round(running, 5), "val_psnr": val_psnr,
                                          "val_voi": val_voi})
                last_log = time.perf_counter()
            if now - last_ckpt > checkpoint_minutes * 60:
                _save(model, folder, record, optimizer, done_s + now - start, done_it + step, val_psnr,
                      best_weights)
                last_ckpt = time.perf_counter()
            if bar is not None:
                bar.set_postfix(loss=f"{running:.4f}", val_psnr="-" if val_psnr is None else f"{val_psnr:.2f}",
                                it=done_it + step)
                bar.n = min(bar.total, round(now - start) if minutes is not None else step)
                bar.refresh()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    if bar is not None:
        bar.close()
    val_psnr, _ = validate(done_it + step)
    _save(model, folder, record, optimizer, done_s + time.perf_counter() - start, done_it + step, val_psnr,
          best_weights)
    if record["kept"]["weights"] == "best":
        model.load_state_dict(best_weights)
    model.eval()
    return FitResult(model=model, folder=folder, record=record)


def _save(model, folder, record, optimizer, seconds, iterations, val_psnr, best_weights):
    record.update(seconds=round(seconds, 1), iterations=iterations, val_psnr=val_psnr,
                  torch=torch.__version__, device=str(next(model.parameters()).device))
    best = record.get("best")
    use_best = best_weights is not None and (
        record["keep"] == "best" or val_psnr is None or val_psnr < best["val_psnr"] - KEEP_TOLERANCE_DB)
    record["kept"] = ({"weights": "best", "iteration": best["iteration"], "val_psnr": best["val_psnr"]} if use_best
                      else {"weights": "last", "iteration": iterations, "val_psnr": val_psnr})
    save_model(model, folder, json.loads(json.dumps(record)), optimizer, weights=best_weights if use_best else None,
               best=best_weights)
