"""Leave-one-dataset-out evaluation of the z-consistency detectors on every stack under the shared
data folder, each also resampled to half and to double its pixel size (see
``test_detect_generalize.py``). Collecting the scores takes the time; choosing thresholds is
cheap, so every candidate's score is kept and each threshold is applied afterwards."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from emrestore import io
from emrestore.detect.consistency import Departure, departure, neighbour_indices
from emrestore.detect.sp import calibrate_sp_core, departure_blobs
from emrestore.detect.stack import consistent_folds
from emrestore.simulate import simulate_sff, simulate_sp

DATA = Path(
    os.environ.get("EMRESTORE_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")
)
SOURCES = {  # name: (path, z-step); all artifact-free
    "isbi2012": ("isbi2012/train/image", 1),
    "flyem": ("flyem_fibsem_sample1/slices", 5),
    "cdeep3m": ("cdeep3m_sbem/train/image", 1),
    "epfl": ("epfl_fibsem/every8th.tif", 1),
}
SCALES = (0.5, 1.0, 2.0)
MAX_PIXELS = 2 * 1024 * 1024 * 8  # per resampled stack: larger ones keep their first sections
FOLD_GRID = (0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45)
SP_PIXEL_GRID = (0.3, 0.4, 0.5)
SP_CORE_GRID = (0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8)
SP_QUANTILE_GRID = (0.75, 0.9)
SP_MARGIN_GRID = (0.0, 0.05, 0.1, 0.15)
SP_AREA_GRID = (100, 200, 400)  # section pixels
SP_SOLIDITY_GRID = (0.0, 0.5)


def available() -> bool:
    return all((DATA / path).exists() for path, _ in SOURCES.values())


def resample(vol: np.ndarray, scale: float) -> np.ndarray:
    if scale == 1.0:
        return vol
    h, w = vol.shape[1:]
    n = min(len(vol), max(3, MAX_PIXELS // int(h * w * scale * scale)))
    size = (int(round(w * scale)), int(round(h * scale)))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    return np.stack([cv2.resize(v, size, interpolation=interp) for v in vol[:n]])


def stacks() -> dict[str, np.ndarray]:
    """Every source at every scale, keyed "name x scale"."""
    out = {}
    for name, (path, step) in SOURCES.items():
        vol = io.read_stack(DATA / path)[::step]
        for s in SCALES:
            out[f"{name} x{s:g}"] = resample(vol, s)
    return out


@dataclass
class Scores:
    clean_folds: list = field(default_factory=list)  # per clean section: candidate departures
    clean_sp: dict = field(default_factory=dict)  # pixel threshold: per section, blob cores
    folds: dict = field(default_factory=dict)  # preset: per section, (candidates, truth)
    sp: dict = field(default_factory=dict)  # pixel threshold: per section, (cores, tp, fp, fn)
    seconds: list = field(default_factory=list)
    shape: tuple = ()


def _dep(section, vol, z):
    near = neighbour_indices(np.ones(len(vol), bool), z)
    return departure(section, [vol[j] for j in near])


def _candidates(section, d, factor):
    dep = Departure(map=d, factor=factor, neighbours=())
    found = consistent_folds(section, dep, np.zeros(section.shape, bool), min_departure=0.0)
    return [(band, score) for _, band, score, _ in found]


def _sp(d, factor, truth=None):
    """Per pixel threshold: the blobs (clean), or each blob with its true and false pixels at the
    section's size and the stain's pixel count (degraded)."""
    out = {}
    for t in SP_PIXEL_GRID:
        labels, blobs = departure_blobs(d, threshold=t)
        if truth is None:
            out[t] = [(b.core, b.area * factor**2, b.solidity) for b in blobs]
            continue
        full = cv2.resize(
            labels.astype(np.int32), truth.shape[::-1], interpolation=cv2.INTER_NEAREST
        )
        n = int(labels.max())
        tp = np.bincount(full[truth], minlength=n + 1)
        area = np.bincount(full.ravel(), minlength=n + 1)
        rows = [
            (
                b.core,
                b.area * factor**2,
                b.solidity,
                int(tp[b.label]),
                int(area[b.label] - tp[b.label]),
            )
            for b in blobs
        ]
        out[t] = (rows, int(truth.sum()))
    return out


def collect(vol: np.ndarray, seed: int) -> Scores:
    import time

    s = Scores(folds={"realistic": [], "paper": []}, shape=vol.shape)
    s.clean_sp = {t: [] for t in SP_PIXEL_GRID}
    s.sp = {t: [] for t in SP_PIXEL_GRID}
    for z in range(len(vol)):
        start = time.perf_counter()
        d, f = _dep(vol[z], vol, z)
        s.clean_folds.append([score for _, score in _candidates(vol[z], d, f)])
        for t, cores in _sp(d, f).items():
            s.clean_sp[t].append(cores)
        s.seconds.append(time.perf_counter() - start)
        for preset in ("realistic", "paper"):
            art = simulate_sff(vol, z, seed=(seed, z, 1), preset=preset, return_flow=False)
            d, f = _dep(art.image, vol, z)
            s.folds[preset].append((_candidates(art.image, d, f), art.alpha > 0.5))
        art = simulate_sp(vol, z, seed=(seed, z, 2))
        d, f = _dep(art.image, vol, z)
        for t, row in _sp(d, f, art.alpha > 0.5).items():
            s.sp[t].append(row)
    return s


def fold_result(s: Scores, tau: float) -> dict:
    """Folds found (band IoU >= 0.5) per preset, their mean IoU, and false folds in clean sections,
    keeping candidates whose departure reaches ``tau``."""
    out = {
        "false": sum(any(x >= tau for x in c) for c in s.clean_folds),
        "clean": len(s.clean_folds),
    }
    for preset, rows in s.folds.items():
        ious = []
        for cands, truth in rows:
            mask = np.zeros(truth.shape, bool)
            for band, score in cands:
                if score >= tau:
                    mask |= band
            ious.append((mask & truth).sum() / max((mask | truth).sum(), 1))
        ious = np.array(ious)
        out[preset] = (
            int((ious >= 0.5).sum()),
            len(ious),
            float(ious[ious >= 0.5].mean()) if (ious >= 0.5).any() else 0.0,
        )
    return out


def _kept(row, rule, core=None) -> bool:
    c, area, solidity = row[:3]
    core = rule["core"] if core is None else core
    return c >= core and area >= rule["min_area"] and solidity >= rule["min_solidity"]


def calibrated_core(s: Scores, rule: dict) -> float:
    """The core threshold ``calibrate_sp_core`` gives on this stack's clean sections."""
    base = dict(rule, core=0.0)
    strongest = [
        max((r[0] for r in rows if _kept(r, base)), default=0.0)
        for rows in s.clean_sp[rule["threshold"]]
    ]
    return calibrate_sp_core(strongest, rule["core"], rule["quantile"], rule["margin"])


def sp_result(s: Scores, rule: dict) -> dict:
    """Pixel F1 of the blobs that ``rule`` keeps (threshold, core, min_area, min_solidity, and the
    stack calibration's quantile and margin) over the stain sections, the share of them called
    and the share of clean sections called."""
    core = calibrated_core(s, rule)
    tp = fp = total = called = 0
    for rows, n_truth in s.sp[rule["threshold"]]:
        kept = [r for r in rows if _kept(r, rule, core)]
        called += bool(kept)
        tp += sum(r[3] for r in kept)
        fp += sum(r[4] for r in kept)
        total += n_truth
    fn = total - tp
    clean = sum(any(_kept(r, rule, core) for r in rows) for rows in s.clean_sp[rule["threshold"]])
    return {
        "f1": 2 * tp / max(2 * tp + fp + fn, 1),
        "called": called / len(s.sp[rule["threshold"]]),
        "clean_called": clean / len(s.clean_sp[rule["threshold"]]),
        "core": core,
    }
