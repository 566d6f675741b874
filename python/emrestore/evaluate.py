"""The evaluation harness: degrade held-out sections of a clean stack with the simulator, restore
them with each method, and score them with the published protocol (``emrestore.metrics``).

Every third interior section is degraded (each with its own seed), so that every degraded section
has intact neighbours, as in the published evaluation of single-section artifacts; with
``all_sections`` the harness runs three passes, the pattern shifted by one section each time, so
that every interior section is scored once (three times the sections, for small stacks). Each row
keeps its per-section scores, and ``compare`` turns them into paired differences against a
reference method with a bootstrap confidence interval. Folds are
evaluated with both fold models (realistic and the published "paper" preset). Methods are
callables ``restore(stack, masks) -> stack`` (``emrestore.baselines.METHODS``); later models join
the table by name.
"""

from __future__ import annotations

import csv
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from . import baselines, metrics, simulate
from .io import atomic_path, write_json
from .simulate import simulate_ms, simulate_sff, simulate_sp

SIMULATORS = {"ms": simulate_ms, "sff": simulate_sff, "sff-paper": simulate_sff, "sp": simulate_sp}
OPTIONS = {
    "sff-paper": {"preset": "paper", "return_flow": False},
    "sff": {"return_flow": False},
    "ms": {"mode": {"blank": 1, "constant": 1, "noise": 1}},
    "sp": {},
}
BITS = {**simulate.BITS, "sff-paper": simulate.BITS["sff"]}
COLUMNS = ["psnr", "ssim", "psnr_mask", "ssim_mask", "voi", "arand"]


def held_out(n_sections: int, stride: int = 3, offset: int = 0) -> list[int]:
    """The degraded sections: every ``stride``-th interior one, from section 1 + ``offset``."""
    return list(range(1 + offset, n_sections - 1, stride))


def degrade(stack: np.ndarray, artifact: str, seed: int, stride: int = 3, offset: int = 0):
    """The stack with every ``stride``-th interior section (from 1 + ``offset``) degraded by
    ``artifact``, and the masks."""
    out, masks = stack.copy(), np.zeros(stack.shape, np.uint8)
    for z in held_out(len(stack), stride, offset):
        art = SIMULATORS[artifact](
            stack,
            z,
            seed=np.random.default_rng([seed, z, list(SIMULATORS).index(artifact)]),
            **OPTIONS[artifact],
        )
        out[z] = art.image
        masks[z][art.mask] = BITS[artifact]
    return out, masks


def evaluate(
    stack: np.ndarray,
    *,
    artifacts=("ms", "sff", "sff-paper", "sp"),
    methods: dict[str, Callable] | None = None,
    seed: int = 0,
    labels: np.ndarray | None = None,
    name: str = "stack",
    all_sections: bool = False,
    progress: bool = False,
) -> list[dict]:
    """Rows (one per artifact x method) of mean scores over the degraded sections, with the
    seconds a method spent per restored section, and each section's scores (``row["per_section"]``).
    ``labels`` [Z, H, W]: ground-truth cells, for VOI/ARAND against them as well. ``all_sections``:
    score every interior section, in three passes of the every-third pattern shifted by 0, 1 and
    2 sections (pass 0 is the default protocol)."""
    if not isinstance(stack, np.ndarray) or stack.ndim != 3 or len(stack) < 3:
        raise ValueError(
            f"evaluate: expected a stack [Z >= 3, H, W]; got {getattr(stack, 'shape', None)}"
        )
    unknown = set(artifacts) - set(SIMULATORS)
    if unknown:
        raise ValueError(
            f"evaluate: unknown artifacts {sorted(unknown)}; expected some of {list(SIMULATORS)}"
        )
    methods = dict(baselines.METHODS if methods is None else methods)
    passes = {o: held_out(len(stack), offset=o) for o in ((0, 1, 2) if all_sections else (0,))}
    zs = sorted(z for p in passes.values() for z in p)
    clean_segs = {z: metrics.segment(stack[z]) for z in zs}
    rows = []
    todo = [(a, m) for a in artifacts for m in methods]
    if progress:
        from tqdm.auto import tqdm

        todo = tqdm(todo, desc=f"evaluate {name}", unit="run")
    degraded_cache = {}
    for artifact, method in todo:
        scores, seconds = [], 0.0
        for offset, pass_zs in passes.items():
            if (artifact, offset) not in degraded_cache:
                degraded_cache[artifact, offset] = degrade(stack, artifact, seed, offset=offset)
            degraded, masks = degraded_cache[artifact, offset]
            start = time.perf_counter()
            restored = methods[method](degraded, masks)
            seconds += time.perf_counter() - start
            for z in pass_zs:
                scores.append(
                    _section_scores(
                        z,
                        restored[z],
                        stack[z],
                        masks[z] > 0,
                        clean_segs[z],
                        None if labels is None else labels[z],
                    )
                )
        scores.sort(key=lambda sc: sc["index"])
        row = {
            "data": name,
            "artifact": artifact,
            "method": method,
            "sections": len(zs),
            "seconds_per_section": seconds / len(zs),
        }
        for key in scores[0]:
            if key != "index":
                values = [sc[key] for sc in scores if np.isfinite(sc[key])]
                row[key] = float(np.mean(values)) if values else float("nan")
        row["per_section"] = scores
        rows.append(row)
    return rows


# The harness's per-section columns, of those ``metrics.section_scores`` gives.
SECTION_KEYS = ("psnr", "ssim", "psnr_mask", "ssim_mask", "voi", "arand", "voi_gt", "arand_gt")


def _section_scores(z, restored, clean, mask, clean_seg, labels) -> dict:
    scores = metrics.section_scores(restored, clean, mask, labels, clean_labels=clean_seg)
    return {"index": int(z), **{k: scores[k] for k in SECTION_KEYS if k in scores}}


# Higher is better for these scores, lower for the others (voi, arand).
HIGHER_IS_BETTER = ("psnr", "ssim", "psnr_mask", "ssim_mask")


def compare(
    rows: list[dict],
    reference: str = "flow",
    keys=("psnr", "voi"),
    *,
    resamples: int = 10_000,
    seed: int = 0,
) -> list[dict]:
    """Paired differences (method minus ``reference``, section by section) for each data stack and
    artifact the reference was scored on: the mean, its 95 % bootstrap interval (sections
    resampled with replacement), and on how many sections the method did better. An interval that
    holds 0 means the sections cannot tell the two apart."""
    out = []
    refs = {(r["data"], r["artifact"]): r for r in rows if r["method"] == reference}
    for r in rows:
        ref = refs.get((r["data"], r["artifact"]))
        if ref is None or r is ref:
            continue
        if "per_section" not in r or "per_section" not in ref:
            raise ValueError(
                f"compare: rows need their per-section scores (row['per_section'], as evaluate "
                f"returns them); {r['method']} or {reference} has none"
            )
        if [s["index"] for s in r["per_section"]] != [s["index"] for s in ref["per_section"]]:
            raise ValueError(
                f"compare: {r['method']} and {reference} were scored on different sections"
            )
        for key in keys:
            diff = np.array([a[key] - b[key] for a, b in zip(r["per_section"], ref["per_section"])])
            diff = diff[np.isfinite(diff)]
            if diff.size == 0:
                continue
            rng = np.random.default_rng(
                seed
            )  # per pair: an interval does not depend on the other rows
            boot = diff[rng.integers(0, diff.size, (resamples, diff.size))].mean(1)
            better = diff > 0 if key in HIGHER_IS_BETTER else diff < 0
            out.append(
                {
                    "data": r["data"],
                    "artifact": r["artifact"],
                    "method": r["method"],
                    "reference": reference,
                    "score": key,
                    "sections": int(diff.size),
                    "mean_difference": float(diff.mean()),
                    "ci95": [float(np.percentile(boot, 2.5)), float(np.percentile(boot, 97.5))],
                    "better_on": int(better.sum()),
                }
            )
    return out


def compare_markdown(pairs: list[dict]) -> str:
    lines = [
        "| data | artifact | method | against | score | difference | 95 % interval | better on |",
        "|---|---|---|---|---|---:|---:|---:|",
    ]
    for p in pairs:
        lo, hi = p["ci95"]
        lines.append(
            f"| {p['data']} | {p['artifact']} | {p['method']} | {p['reference']} | {p['score']} | "
            f"{p['mean_difference']:+.3f} | [{lo:+.3f}, {hi:+.3f}] | "
            f"{p['better_on']}/{p['sections']} |"
        )
    return "\n".join(lines) + "\n"


def markdown(rows: list[dict]) -> str:
    extra = [c for c in ("voi_gt", "arand_gt") if any(c in r for r in rows)]
    cols = COLUMNS + extra
    head = "| data | artifact | method | " + " | ".join(cols) + " | s/section |"
    lines = [head, "|" + "---|" * 3 + "---:|" * (len(cols) + 1)]
    for r in rows:
        cells = [
            f"{r[c]:.3f}"
            if c in r and c.startswith(("ssim", "voi", "arand"))
            else (f"{r[c]:.2f}" if c in r else "-")
            for c in cols
        ]
        lines.append(
            f"| {r['data']} | {r['artifact']} | {r['method']} | "
            + " | ".join(cells)
            + f" | {r['seconds_per_section']:.3f} |"
        )
    return "\n".join(lines) + "\n"


def write_results(rows: list[dict], folder, pairs: list[dict] | None = None) -> None:
    """results.md, .csv (means) and .json (with each section's scores); comparison.md and .json
    with ``pairs`` (``compare``). Each file is written atomically."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(folder / "results.md") as tmp:
        tmp.write_text(markdown(rows))
    write_json(folder / "results.json", rows)
    keys = list(dict.fromkeys(k for r in rows for k in r if k != "per_section"))
    with atomic_path(folder / "results.csv") as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=keys, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    if pairs:
        with atomic_path(folder / "comparison.md") as tmp:
            tmp.write_text(compare_markdown(pairs))
        write_json(folder / "comparison.json", pairs)
