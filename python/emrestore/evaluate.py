"""The evaluation harness: degrade held-out sections of a clean stack with the simulator, restore
them with each method, and score them with the published protocol (``emrestore.metrics``).

Every third interior section is degraded (each with its own seed), so that every degraded section
has intact neighbours, as in the published evaluation of single-section artifacts. Folds are
evaluated with both fold models (realistic and the published "paper" preset). Methods are
callables ``restore(stack, masks) -> stack`` (``emrestore.baselines.METHODS``); later models join
the table by name.
"""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path
from typing import Callable

import numpy as np

from . import baselines, metrics, simulate
from .simulate import simulate_ms, simulate_sff, simulate_sp

SIMULATORS = {"ms": simulate_ms, "sff": simulate_sff, "sff-paper": simulate_sff, "sp": simulate_sp}
OPTIONS = {"sff-paper": {"preset": "paper", "return_flow": False}, "sff": {"return_flow": False},
           "ms": {"mode": {"blank": 1, "constant": 1, "noise": 1}}, "sp": {}}
BITS = {**simulate.BITS, "sff-paper": simulate.BITS["sff"]}
COLUMNS = ["psnr", "ssim", "psnr_mask", "ssim_mask", "voi", "arand"]


def held_out(n_sections: int, stride: int = 3) -> list[int]:
    return list(range(1, n_sections - 1, stride))


def degrade(stack: np.ndarray, artifact: str, seed: int, stride: int = 3):
    """The stack with every ``stride``-th interior section degraded by ``artifact``, and the masks."""
    out, masks = stack.copy(), np.zeros(stack.shape, np.uint8)
    for z in held_out(len(stack), stride):
        art = SIMULATORS[artifact](stack, z, seed=np.random.default_rng([seed, z, list(SIMULATORS).index(artifact)]),
                                   **OPTIONS[artifact])
        out[z] = art.image
        masks[z][art.mask] = BITS[artifact]
    return out, masks


def evaluate(stack: np.ndarray, *, artifacts=("ms", "sff", "sff-paper", "sp"),
             methods: dict[str, Callable] | None = None, seed: int = 0, labels: np.ndarray | None = None,
             name: str = "stack", progress: bool = False) -> list[dict]:
    """Rows (one per artifact x method) of mean scores over the degraded sections, with the
    seconds a method spent per restored section. ``labels`` [Z, H, W]: ground-truth cells, for
    VOI/ARAND against them as well."""
    if not isinstance(stack, np.ndarray) or stack.ndim != 3 or len(stack) < 3:
        raise ValueError(f"evaluate: expected a stack [Z >= 3, H, W]; got {getattr(stack, 'shape', None)}")
    unknown = set(artifacts) - set(SIMULATORS)
    if unknown:
        raise ValueError(f"evaluate: unknown artifacts {sorted(unknown)}; expected some of {list(SIMULATORS)}")
    methods = dict(baselines.METHODS if methods is None else methods)
    zs = held_out(len(stack))
    clean_segs = {z: metrics.segment(stack[z]) for z in zs}
    rows = []
    todo = [(a, m) for a in artifacts for m in methods]
    if progress:
        from tqdm.auto import tqdm

        todo = tqdm(todo, desc=f"evaluate {name}", unit="run")
    degraded_cache = {}
    for artifact, method in todo:
        if artifact not in degraded_cache:
            degraded_cache[artifact] = degrade(stack, artifact, seed)
        degraded, masks = degraded_cache[artifact]
        start = time.perf_counter()
        restored = methods[method](degraded, masks)
        seconds = (time.perf_counter() - start) / len(zs)
        scores = []
        for z in zs:
            mask = masks[z] > 0
            s = {"psnr": metrics.psnr(restored[z], stack[z]), "ssim": metrics.ssim(restored[z], stack[z]),
                 "psnr_mask": metrics.psnr(restored[z], stack[z], mask),
                 "ssim_mask": metrics.ssim(restored[z], stack[z], mask)}
            s.update({k: v for k, v in metrics.segmentation_scores(restored[z], clean_segs[z]).items()
                      if k in ("voi", "arand")})
            if labels is not None:
                gt = metrics.segmentation_scores(restored[z], labels[z])
                s.update(voi_gt=gt["voi"], arand_gt=gt["arand"])
            scores.append(s)
        row = {"data": name, "artifact": artifact, "method": method, "sections": len(zs),
               "seconds_per_section": seconds}
        for key in scores[0]:
            values = [sc[key] for sc in scores if np.isfinite(sc[key])]
            row[key] = float(np.mean(values)) if values else float("nan")
        rows.append(row)
    return rows


def markdown(rows: list[dict]) -> str:
    extra = [c for c in ("voi_gt", "arand_gt") if any(c in r for r in rows)]
    cols = COLUMNS + extra
    head = "| data | artifact | method | " + " | ".join(cols) + " | s/section |"
    lines = [head, "|" + "---|" * 3 + "---:|" * (len(cols) + 1)]
    for r in rows:
        cells = [f"{r[c]:.3f}" if c in r and c.startswith(("ssim", "voi", "arand")) else
                 (f"{r[c]:.2f}" if c in r else "-") for c in cols]
        lines.append(f"| {r['data']} | {r['artifact']} | {r['method']} | " + " | ".join(cells)
                     + f" | {r['seconds_per_section']:.3f} |")
    return "\n".join(lines) + "\n"


def write_results(rows: list[dict], folder) -> None:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "results.md").write_text(markdown(rows))
    (folder / "results.json").write_text(json.dumps(rows, indent=1))
    keys = list(dict.fromkeys(k for r in rows for k in r))
    with open(folder / "results.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)
