"""Model folders: ``model.safetensors`` (weights and input standardisation; after ``fit``, the
weights it kept: see ``FitConfig.keep``), ``config.json`` (architecture, normalisation, the
training record and ``fit``'s settings) and, from training, ``last.safetensors`` (the latest
weights) and ``optimizer.pt`` for resuming, and ``best.safetensors`` (the best-validated weights).
Every file is written to a temporary name and renamed, so a folder is never half-written."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from ..io import atomic_path
from .interpolation import InterpolationConfig, SepConvInterpolator

DEFAULT_MODEL = Path(__file__).parent / "default"
FORMAT = "emrestore.interpolation/1"


def pick_device(device: str | torch.device | None = None) -> torch.device:
    """``device``, or CUDA when there is a GPU, else the CPU."""
    return torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))


def _replace(path: Path, write) -> None:
    """``write(tmp)`` to a temporary path, moved to ``path`` when complete."""
    with atomic_path(path) as tmp:
        write(tmp)


def _tensors(state: dict) -> dict:
    return {k: v.detach().cpu().contiguous() for k, v in state.items()}


def save_model(
    model: SepConvInterpolator,
    folder,
    record: dict | None = None,
    optimizer=None,
    *,
    weights: dict | None = None,
    best: dict | None = None,
    fit_settings: dict | None = None,
) -> Path:
    """Writes ``model`` to ``folder``. ``weights``: a state dict to ship as ``model.safetensors``
    instead of the model's own (``fit``: the ones it keeps); with ``optimizer``, the model's own
    weights and the optimizer state are kept too, for resuming, and ``best`` (the best-validated
    state dict) as ``best.safetensors``. ``fit_settings`` (``fit``'s ``FitConfig`` as a dict) goes
    into config.json as ``"fit"``; folders without it load all the same."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = _tensors(model.state_dict())
    if optimizer is not None:
        _replace(folder / "last.safetensors", lambda p: save_file(tensors, str(p)))
        _replace(folder / "optimizer.pt", lambda p: torch.save(optimizer.state_dict(), p))
        if best is not None:
            best_tensors = _tensors(best)
            _replace(folder / "best.safetensors", lambda p: save_file(best_tensors, str(p)))
    shipped = tensors if weights is None else _tensors(weights)
    _replace(folder / "model.safetensors", lambda p: save_file(shipped, str(p)))
    config = {
        "format": FORMAT,
        "model": model.config.to_dict(),
        "normalization": {
            "input": "intensity / dtype maximum (floats as given), in [0, 1]",
            "mean": float(model.mean),
            "std": float(model.std),
        },
        "training": record or {},
    }
    if fit_settings is not None:
        config["fit"] = fit_settings
    _replace(folder / "config.json", lambda p: p.write_text(json.dumps(config, indent=1)))
    return folder


def load_model(
    folder=None, *, device: str | torch.device = "cpu", last: bool = False, best: bool = False
) -> tuple[SepConvInterpolator, dict]:
    """The model in ``folder`` (default: the model shipped with the package) and its config.json.
    ``last``: the latest training weights (``last.safetensors``, for resuming), ``best``: the
    best-validated ones (``best.safetensors``), where the folder has them, instead of the kept
    ones."""
    if last and best:
        raise ValueError("load_model: ask for the last or the best weights, not both")
    folder = Path(DEFAULT_MODEL if folder is None else folder)
    config_path, weights_path = folder / "config.json", folder / "model.safetensors"
    for wanted, name in ((last, "last.safetensors"), (best, "best.safetensors")):
        if wanted and (folder / name).is_file():
            weights_path = folder / name
    if not config_path.is_file() or not weights_path.is_file():
        raise FileNotFoundError(
            f"not a model folder (expected config.json and model.safetensors): {folder}"
        )
    try:
        config = json.loads(config_path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{config_path}: corrupt config ({e})") from None
    if config.get("format") != FORMAT:
        raise ValueError(f"{config_path}: expected format {FORMAT!r}; got {config.get('format')!r}")
    model = SepConvInterpolator(InterpolationConfig.from_dict(config["model"]))
    try:
        state = load_file(str(weights_path))
    except Exception as e:  # safetensors raises its own error types for truncated or foreign files
        raise ValueError(f"{weights_path}: corrupt weights ({e})") from None
    damaged = sorted(
        name
        for name, tensor in state.items()
        if tensor.is_floating_point() and not torch.isfinite(tensor).all()
    )
    if damaged:
        raise ValueError(
            f"{weights_path}: corrupt weights (NaN or infinite values in "
            f"{', '.join(damaged[:3])}{' ...' if len(damaged) > 3 else ''})"
        )
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise ValueError(
            f"{weights_path}: weights do not match the config's architecture: {e}"
        ) from None
    model.source = "default" if folder == DEFAULT_MODEL else str(folder)
    return model.to(device).eval(), config
