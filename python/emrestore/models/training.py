"""``fit``: self-supervised training of the interpolation network on the user's own stack.

Every clean section with clean sections on both sides is a training target: the network sees its
neighbours at gaps of 1 to ``max_gap`` sections on each side (so it learns runs of missing sections
too) and must reproduce it. With ``z_step`` n the gaps are n to n * ``max_gap`` sections, from every
offset: a near-isotropic stack (FIB-SEM) then trains for n-times thicker sections on all of its
sections instead of every n-th one. Sections the detector flags are never used. The data are in
``sampling``, the losses in ``losses``, the held-out scoring in ``validation``; this module runs the
loop and saves.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..conventions import DTYPE_NAMES, is_supported
from .checkpoint import load_model, pick_device, save_model
from .interpolation import InterpolationConfig, SepConvInterpolator
from .losses import training_loss
from .sampling import (
    TRAIN_FLOW_VIEWS,
    BatchQueue,
    TripletSampler,
    read_unit,
    split_triplets,
    triplets,
)
from .settings import COLLAPSE_DB, KEEP_TOLERANCE_DB, FitConfig
from .validation import Validation


@dataclass
class FitResult:
    model: SepConvInterpolator
    folder: Path
    record: dict = field(default_factory=dict)


def _check_stack(stack):
    """Shape and dtype only: the stack may be a zarr/h5py array or memory map, read lazily."""
    shape = getattr(stack, "shape", None)
    if shape is None or len(shape) != 3:
        raise ValueError(f"fit: expected a stack [Z, H, W]; got shape {shape}")
    if shape[0] < 3:
        raise ValueError(
            f"fit: need at least 3 sections (a clean section between two clean "
            f"neighbours); got {shape[0]}"
        )
    if not is_supported(stack.dtype):
        raise TypeError(f"fit: expected {DTYPE_NAMES} sections; got {stack.dtype}")


def _excluded(stack, exclude, detect: bool, progress: bool) -> np.ndarray:
    """[Z] bool, the sections never used: ``exclude``, or those the detector flags."""
    z = stack.shape[0]
    if exclude is None:
        exclude = np.zeros(z, bool)
        if detect:
            from ..detect import detect_stack

            found = detect_stack(np.asarray(stack), progress=progress)
            exclude = np.array([any(v != "ok" for v in s["verdict"]) for s in found.sections])
    exclude = np.asarray(exclude, bool)
    if exclude.shape != (z,):
        raise ValueError(f"fit: exclude must be [Z] = [{z}] booleans; got shape {exclude.shape}")
    return exclude


def _start(
    stack, folder: Path, config: InterpolationConfig | None, device: torch.device, resume: bool
) -> tuple[SepConvInterpolator, dict, dict | None]:
    """The model, its training record and the best weights so far: from ``folder``'s checkpoint
    when resuming, else a fresh model standardised on up to eight of the stack's sections."""
    if resume:
        model, saved = load_model(folder, device=device, last=True)
        record = saved.get("training", {})
        best_weights = None
        if record.get("best"):  # folders from before best.safetensors kept the best as the model
            best_weights = load_model(folder, device=device, best=True)[0].state_dict()
        return model, record, best_weights
    z = stack.shape[0]
    sample = np.stack([read_unit(stack, i) for i in np.linspace(0, z - 1, min(z, 8)).astype(int)])
    model = SepConvInterpolator(config, mean=float(sample.mean()), std=float(sample.std() + 1e-3))
    return model.to(device), {"iterations": 0, "seconds": 0.0, "history": []}, None


def _describe(record: dict, s: FitConfig, shape, exclude, train, val, crop: int) -> None:
    """Writes this fit's data and settings into ``record`` (a resumed fit may change them)."""
    record.update(
        {
            "stack_shape": list(shape),
            "excluded_sections": np.flatnonzero(exclude).tolist(),
            "train_triplets": len(train),
            "val_targets": sorted({t[1] for t in val}),
            "loss": s.loss,
            "batch_size": s.batch_size,
            "crop": crop,
            "lr": s.lr,
            "clip_norm": s.clip_norm,
            "max_gap": s.max_gap,
            "z_step": s.z_step,
            "seed": s.seed,
            "keep": s.keep,
        }
    )
    record.pop("ssim_weight", None)
    record.pop("membrane_weight", None)
    if s.loss == "mse+ssim":
        record["ssim_weight"] = s.ssim_weight
    if s.membrane_weight:
        record["membrane_weight"] = s.membrane_weight


def _schedule(progress: float, warmup: float = 0.03, floor: float = 0.05) -> float:
    """Learning-rate factor: linear warm-up, then cosine decay to ``floor`` at the end of the
    budget."""
    if progress < warmup:
        return (progress + 1e-3) / warmup
    p = min(1.0, (progress - warmup) / (1 - warmup))
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * p))


class _Run:
    """What a fit changes as it goes: the model, its optimizer and step size, the record, and the
    best-validated weights."""

    def __init__(
        self,
        model,
        optimizer,
        record: dict,
        best_weights: dict | None,
        validation: Validation,
        settings: FitConfig,
        folder: Path,
    ):
        self.model, self.optimizer, self.record = model, optimizer, record
        self.best_weights, self.validation, self.settings = best_weights, validation, settings
        self.folder, self.lr = folder, settings.lr

    def validate(self, iteration: int) -> tuple[float | None, float | None]:
        """Validation PSNR and VOI; the weights are copied to ``best_weights`` when the PSNR is
        the best so far."""
        value, voi = self.validation.score(self.model)
        if value is not None and value > self.record.get("best", {}).get("val_psnr", -math.inf):
            self.record["best"] = {"iteration": iteration, "val_psnr": value}
            self.best_weights = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        return value, voi

    def restart(self, iteration: int, val_psnr: float) -> None:
        """After a divergence (activations blown up, kernels saturated: it does not come back):
        on from the best weights with fresh moments and half the step size."""
        self.model.load_state_dict(self.best_weights)
        self.optimizer = torch.optim.AdamW(
            self.model.parameters(), lr=self.lr, weight_decay=self.settings.weight_decay
        )
        self.lr /= 2
        self.record.setdefault("restarts", []).append(
            {
                "iteration": iteration,
                "val_psnr": val_psnr,
                "from": self.record["best"]["iteration"],
                "lr": self.lr,
            }
        )

    def save(self, seconds: float, iterations: int, val_psnr: float | None) -> None:
        """Checkpoints to the folder, shipping the weights ``keep`` asks for."""
        record, best = self.record, self.record.get("best")
        record.update(
            seconds=round(seconds, 1),
            iterations=iterations,
            val_psnr=val_psnr,
            torch=torch.__version__,
            device=str(next(self.model.parameters()).device),
        )
        use_best = self.best_weights is not None and (
            record["keep"] == "best"
            or val_psnr is None
            or val_psnr < best["val_psnr"] - KEEP_TOLERANCE_DB
        )
        record["kept"] = (
            {"weights": "best", "iteration": best["iteration"], "val_psnr": best["val_psnr"]}
            if use_best
            else {"weights": "last", "iteration": iterations, "val_psnr": val_psnr}
        )
        save_model(
            self.model,
            self.folder,
            json.loads(json.dumps(record)),
            self.optimizer,
            weights=self.best_weights if use_best else None,
            best=self.best_weights,
            fit_settings=self.settings.to_dict(),
        )


def _progress_bar(s: FitConfig, budget_s: float):
    from tqdm.auto import tqdm

    timed = s.minutes is not None
    return tqdm(
        total=round(budget_s) if timed else s.iterations,
        desc="fit",
        unit="s" if timed else "it",
        dynamic_ncols=True,
    )


def _train(run: _Run, sampler: TripletSampler, device: torch.device, progress: bool) -> None:
    """The training loop: steps until the budget is spent, validating every ``val_minutes`` and
    at the end, checkpointing every ``checkpoint_minutes``, then validates and saves."""
    s, record = run.settings, run.record
    budget_s = s.minutes * 60 if s.minutes is not None else math.inf
    budget_it = s.iterations if s.iterations is not None else math.inf
    done_s, done_it = record["seconds"], record["iterations"]
    start, last_ckpt, last_log = time.perf_counter(), time.perf_counter(), time.perf_counter()
    bar = _progress_bar(s, budget_s) if progress else None
    run.model.train()
    step, running, val_psnr = 0, None, record.get("val_psnr")
    workers = s.workers
    if workers is None:
        workers = 1 if device.type == "cpu" else max(1, min(8, (os.cpu_count() or 2) - 1))
    batches = BatchQueue(sampler, s.batch_size, s.seed, done_it, workers)
    try:
        while True:
            elapsed = time.perf_counter() - start
            if elapsed >= budget_s or step >= budget_it:
                break
            frac = max(elapsed / budget_s, step / budget_it)
            for g in run.optimizer.param_groups:
                g["lr"] = run.lr * _schedule(frac)
            frames, ts = batches.next()
            frames, ts = frames.to(device), ts.to(device)
            pred = run.model(frames[:, :1], frames[:, 2:], ts)
            value = training_loss(pred, frames[:, 1:2], s.loss, s.ssim_weight, s.membrane_weight)
            run.optimizer.zero_grad(set_to_none=True)
            value.backward()
            if s.clip_norm is not None:  # a rare outlier batch must not blow the network up
                torch.nn.utils.clip_grad_norm_(run.model.parameters(), s.clip_norm)
            run.optimizer.step()
            step += 1
            running = value.item() if running is None else 0.95 * running + 0.05 * value.item()
            now = time.perf_counter()
            ending = now - start >= budget_s or step >= budget_it
            if now - last_log > s.val_minutes * 60 or ending:
                val_psnr, val_voi = run.validate(done_it + step)
                best = record.get("best", {}).get("val_psnr")
                if (
                    val_psnr is not None
                    and best is not None
                    and val_psnr < best - COLLAPSE_DB
                    and not ending
                ):
                    run.restart(done_it + step, val_psnr)
                record["history"].append(
                    {
                        "iteration": done_it + step,
                        "seconds": round(done_s + now - start, 1),
                        "loss": round(running, 5),
                        "val_psnr": val_psnr,
                        "val_voi": val_voi,
                    }
                )
                last_log = time.perf_counter()
            if now - last_ckpt > s.checkpoint_minutes * 60:
                run.save(done_s + now - start, done_it + step, val_psnr)
                last_ckpt = time.perf_counter()
            if bar is not None:
                bar.set_postfix(
                    loss=f"{running:.4f}",
                    val_psnr="-" if val_psnr is None else f"{val_psnr:.2f}",
                    it=done_it + step,
                )
                bar.n = min(bar.total, round(now - start) if s.minutes is not None else step)
                bar.refresh()
    finally:
        batches.close()
    if bar is not None:
        bar.close()
    val_psnr, _ = run.validate(done_it + step)
    run.save(done_s + time.perf_counter() - start, done_it + step, val_psnr)


def fit(
    stack,
    folder,
    settings: FitConfig | None = None,
    *,
    config: InterpolationConfig | None = None,
    exclude=None,
    device: str | torch.device | None = None,
    resume: bool = False,
    progress: bool = True,
    **overrides,
) -> FitResult:
    """Trains the interpolation network on ``stack`` [Z, H, W] and saves it to ``folder``.

    Args:
        settings: how to train (default ``FitConfig()``); ``overrides``: FitConfig fields to
            change, e.g. ``fit(stack, out, minutes=5, seed=1)``.
        config: the architecture (default ``InterpolationConfig()``: flow-guided); with
            ``config.align == "flow"`` each crop's outer sections are aligned as ``interpolate``
            aligns them. Ignored with ``resume``.
        exclude: [Z] bool, sections never used (default: the ones ``emrestore.detect`` flags, if
            ``settings.detect``).
        device: default CUDA when available.
        resume: continue from ``folder``'s checkpoint (latest weights, optimizer, record), for
            ``minutes`` / ``iterations`` more.

    ``record["kept"]`` says which weights were kept (``FitConfig.keep``), ``record["best"]`` when
    the best validation was; ``best.safetensors`` and ``last.safetensors`` hold both.
    ``record["history"]`` logs the loss and, for the validation crops, PSNR and the VOI of their
    segmentation against the clean one's.
    """
    _check_stack(stack)
    s = FitConfig.resolve(settings, **overrides)
    z, h, w = stack.shape
    crop = min(s.crop, h, w)
    folder = Path(folder)
    device = pick_device(device)
    torch.manual_seed(s.seed)  # the fresh weights draw from it

    exclude = _excluded(stack, exclude, s.detect, progress)
    trips = triplets(~exclude, s.max_gap, s.z_step)
    if not trips:
        raise ValueError(
            f"fit: no clean section has clean neighbours {s.z_step} section(s) away "
            f"on both sides ({int(exclude.sum())} of {z} sections excluded)"
        )
    train, val = split_triplets(trips, s.val_fraction, s.z_step)

    model, record, best_weights = _start(stack, folder, config, device, resume)
    _describe(record, s, (z, h, w), exclude, train, val, crop)
    optimizer = torch.optim.AdamW(model.parameters(), lr=s.lr, weight_decay=s.weight_decay)
    if resume and (folder / "optimizer.pt").is_file():
        optimizer.load_state_dict(
            torch.load(folder / "optimizer.pt", map_location=device, weights_only=True)
        )
    usable = ~exclude
    outer = usable if model.config.uses_outer_flow else None
    sampler = TripletSampler(
        stack,
        train,
        crop,
        s.augment,
        align=model.config.align == "flow",
        z_step=s.z_step,
        outer=outer,
        views=TRAIN_FLOW_VIEWS,
    )
    validation = Validation(stack, val, s.val_size, model.config, usable, s.z_step)
    run = _Run(model, optimizer, record, best_weights, validation, s, folder)
    _train(run, sampler, device, progress)
    if record["kept"]["weights"] == "best":
        model.load_state_dict(run.best_weights)
    model.eval()
    return FitResult(model=model, folder=folder, record=record)
