"""Degrading a whole stack at given per-section rates, with a manifest of what was done where.

Which sections get which artifact is drawn first (the plan); each section is then degraded with its
own generator seeded by (seed, section index, artifact), so a section's result does not depend on
the order of processing and a volume can be degraded in parallel pieces with the same outcome.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..conventions import (
    BITS,
    DTYPE_NAMES,
    from_unit,
    intensity_range,
    is_supported,
    jsonable,
    to_range_unit,
)
from ..version import __version__
from .ms import simulate_ms
from .sff import simulate_sff
from .sp import simulate_sp

FLY_BRAIN_RATES = {"ms": 0.044, "sff": 0.032, "sp": 0.026}  # measured in a real fly-brain volume
DEFAULT_RUN_LENGTHS = {1: 0.8, 2: 0.15, 3: 0.05}
_KIND_CODE = {"ms": 0, "sff": 1, "sp": 2}
_SIMULATORS = {"ms": simulate_ms, "sff": simulate_sff, "sp": simulate_sp}


@dataclass
class StackSimulation:
    volume: np.ndarray  # degraded stack [Z, H, W], the input's dtype (or the ``out`` array)
    masks: np.ndarray  # uint8 [Z, H, W], one bit per artifact: ms 1, sff 2, sp 4
    manifest: dict  # JSON-ready: seed, rates, plan and every section's parameters
    flows: dict[int, dict[str, np.ndarray]] = field(default_factory=dict)  # SFF targets per section


def _count(rng, rate: float, n: int) -> int:
    expected = rate * n
    return int(expected) + int(rng.uniform() < expected - int(expected))  # stochastic rounding


def plan_artifacts(
    n_sections: int,
    rates: dict[str, float],
    rng: np.random.Generator,
    run_lengths: dict[int, float] = DEFAULT_RUN_LENGTHS,
    keep_ends: bool = True,
) -> dict[int, list[str]]:
    """Chooses the sections of each artifact: ``rates[kind] * n_sections`` sections per kind
    (stochastically rounded). Missing sections come in runs (lengths drawn from ``run_lengths``),
    separated by at least one intact section and, with ``keep_ends``, never the first or the last
    section (so each has intact neighbours to restore from). Folds and precipitates fall on sections
    that are not missing, and may share one."""
    unknown = set(rates) - set(BITS)
    if unknown:
        raise ValueError(
            f"unknown artifact kinds {sorted(unknown)}; expected some of {sorted(BITS)}"
        )
    for kind, rate in rates.items():
        if not 0 <= rate <= 1:
            raise ValueError(f"rate of {kind!r} must be in [0, 1]; got {rate}")
    plan: dict[int, list[str]] = {}
    lo, hi = (1, n_sections - 1) if keep_ends else (0, n_sections)
    missing = np.zeros(n_sections + 2, bool)  # padded by one on each side
    todo = _count(rng, rates.get("ms", 0.0), n_sections)
    lengths = np.array(list(run_lengths), int)
    probs = np.array([run_lengths[k] for k in run_lengths], float)
    while todo > 0:
        length = min(int(lengths[rng.choice(len(lengths), p=probs / probs.sum())]), todo)
        starts = [
            s for s in range(lo, hi - length + 1) if not missing[s : s + length + 2].any()
        ]  # the run and its two neighbours are free
        if not starts:
            if length == 1:
                break  # the stack is full
            continue
        s = starts[rng.integers(len(starts))]
        missing[s + 1 : s + 1 + length] = True
        for z in range(s, s + length):
            plan.setdefault(z, []).append("ms")
        todo -= length
    intact = np.flatnonzero(~missing[1:-1])
    for kind in ("sff", "sp"):
        n = min(_count(rng, rates.get(kind, 0.0), n_sections), len(intact))
        for z in sorted(rng.choice(intact, n, replace=False).tolist()):
            plan.setdefault(z, []).append(kind)
    return dict(sorted(plan.items()))


def simulate_stack(
    volume,
    rates: dict[str, float] | None = None,
    *,
    seed: int | np.random.Generator | None = 0,
    ms: dict | None = None,
    sff: dict | None = None,
    sp: dict | None = None,
    run_lengths: dict[int, float] = DEFAULT_RUN_LENGTHS,
    keep_ends: bool = True,
    return_flows: bool = False,
    out=None,
    progress: bool = False,
) -> StackSimulation:
    """Degrades a stack [Z, H, W] at per-section ``rates`` (default: the fly-brain rates
    ms 4.4%, sff 3.2%, sp 2.6%).

    ``ms``, ``sff``, ``sp`` are keyword arguments for ``simulate_ms``/``simulate_sff``/
    ``simulate_sp`` (e.g. ``sff={"preset": "paper"}``). ``volume`` may be any array with numpy-style
    indexing (numpy, memmap, zarr, h5py), read one section at a time; the degraded stack is written
    to ``out`` if given (an array of the same shape and dtype), otherwise to a new numpy array.
    ``volume`` is never modified. With ``return_flows`` the fold sections' flow, inverse flow and
    lost pixels are kept in ``flows``.
    """
    shape = tuple(getattr(volume, "shape", ()))
    if len(shape) != 3:
        raise ValueError(f"simulate_stack: expected a stack [Z, H, W]; got shape {shape}")
    if shape[0] == 0:
        raise ValueError("simulate_stack: the stack is empty (0 sections)")
    dtype = np.dtype(volume.dtype)
    if not is_supported(dtype):
        raise TypeError(f"simulate_stack: expected {DTYPE_NAMES}; got {dtype}")
    if out is not None and (tuple(out.shape) != shape or np.dtype(out.dtype) != dtype):
        raise ValueError(
            f"simulate_stack: out must have shape {shape} and dtype {dtype}; got "
            f"{tuple(out.shape)} {out.dtype}"
        )
    if out is volume:
        raise ValueError(
            "simulate_stack: out must not be the input volume (inputs are never modified)"
        )
    rates = dict(FLY_BRAIN_RATES if rates is None else rates)
    if isinstance(seed, np.random.Generator):
        seed = int(seed.integers(2**63))
    elif seed is None:
        seed = int(np.random.SeedSequence().entropy % 2**63)
    plan = plan_artifacts(
        shape[0], rates, np.random.default_rng([seed, 0x5EC7]), run_lengths, keep_ends
    )
    options = {"ms": dict(ms or {}), "sff": dict(sff or {}), "sp": dict(sp or {})}
    for kind, kwargs in options.items():
        if "seed" in kwargs:
            raise ValueError(f"simulate_stack: pass the seed to simulate_stack, not in {kind}=")
    if not return_flows:
        options["sff"].setdefault("return_flow", False)

    # A float stack outside [0, 1] is degraded in [0, 1] and mapped back: never clipped.
    value_range = intensity_range(volume)
    result = out if out is not None else np.empty(shape, dtype)
    masks = np.zeros(shape, np.uint8)
    flows: dict[int, dict[str, np.ndarray]] = {}
    sections = []
    iterator = range(shape[0])
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(iterator, desc="simulate", unit="section")
    for z in iterator:
        section = np.asarray(volume[z])
        if z not in plan:
            result[z] = section
            continue
        record = []
        for kind in plan[z]:
            rng = np.random.default_rng([seed, z, _KIND_CODE[kind]])
            unit = to_range_unit(section, value_range)
            art = _SIMULATORS[kind](unit, seed=rng, **options[kind])
            if unit is section:
                section = art.image
            else:  # mapped back; the pixels it left alone keep their exact values
                section = np.where(
                    art.image == unit, section, from_unit(art.image, dtype, value_range)
                )
            masks[z][art.mask] |= BITS[kind]
            record.append({"kind": kind, "params": art.params})
            if kind == "sff" and return_flows:
                flows[z] = {"flow": art.flow, "inverse_flow": art.inverse_flow, "lost": art.lost}
        result[z] = section
        sections.append({"index": z, "artifacts": record})
    counts = {kind: sum(kind in kinds for kinds in plan.values()) for kind in BITS}
    manifest = {
        "emrestore": __version__,
        "seed": seed,
        "rates": rates,
        "shape": list(shape),
        "dtype": str(dtype),
        "mask_bits": dict(BITS),
        "counts": counts,
        "options": {
            k: {key: repr(v) if callable(v) else v for key, v in o.items()}
            for k, o in options.items()
        },
        "sections": sections,
    }
    return StackSimulation(volume=result, masks=masks, manifest=jsonable(manifest), flows=flows)
