"""Alignment on real EM: each section of ISBI 2012 and of the FlyEM sample at z-step 5 predicted
as the blend of its two neighbours warped to it, by the pair's own flow (the ``flow`` baseline)
and with each neighbour's motion also measured against the section beyond it
(``align_pair(..., outer=...)``, what flow-guided networks read), and with each of those flows
averaged over the section's eight turns and mirror images (``views=8``, the models' default).
Skips when the data is absent. Prints the tables docs/interpolation.md quotes:

    pytest benchmarks/test_align_real.py -s

Data: $EMRESTORE_DATA or ../shared/data beside the checkout (see its README).
"""

import functools
import os
from pathlib import Path

import numpy as np
import pytest
from emrestore import io, metrics
from emrestore.alignment import align_pair
from emrestore.conventions import to_unit

DATA = Path(
    os.environ.get("EMRESTORE_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")
)
# name: (folder, z-step, sections, smallest mean gains in dB that the outer sections and then the
# eight views must bring)
STACKS = {
    "isbi_train": ("isbi2012/train/image", 1, slice(None), 0.05, 0.01),
    "isbi_test": ("isbi2012/test/image", 1, slice(None), 0.05, 0.01),
    "flyem_z5_0_125": ("flyem_fibsem_sample1/slices", 5, slice(0, 125), 0.4, 0.03),
    "flyem_z5_125_250": ("flyem_fibsem_sample1/slices", 5, slice(125, 250), 0.4, 0.03),
}


@functools.cache
def _stack(name) -> np.ndarray:
    folder, step, part = STACKS[name][:3]
    return np.stack([to_unit(s) for s in io.read_stack(DATA / folder)[part][::step]]).astype(
        np.float32
    )


@functools.cache
def _blend_psnrs(name, outer: bool, views: int = 1) -> np.ndarray:
    """PSNR of the blend of each section's aligned neighbours, for every section with two sections
    on each side (cached: both tests score the one-view blend with the outer sections)."""
    u = _stack(name)
    psnrs = []
    for z in range(2, len(u) - 2):
        wa, wb = align_pair(
            u[z - 1],
            u[z + 1],
            0.5,
            outer=(u[z - 2], u[z + 2]) if outer else (None, None),
            outer_gaps=(0.5, 0.5),
            views=views,
        )
        psnrs.append(metrics.psnr(0.5 * (wa + wb), u[z]))
    return np.array(psnrs)


def _gain(name, before: dict, after: dict, digits: int) -> float:
    """Mean PSNR gain of the blend aligned with ``after`` over ``before`` (``_blend_psnrs``'
    options); prints the table row."""
    if not (DATA / STACKS[name][0]).is_dir():
        pytest.skip(f"real EM data not found under {DATA}")
    old, new = _blend_psnrs(name, **before), _blend_psnrs(name, **after)
    gain = new.mean() - old.mean()
    print(
        f"\n| {name} | {len(old)} | {old.mean():.{digits}f} | {new.mean():.{digits}f} "
        f"| {gain:+.{digits}f} | {int((new > old).sum())}/{len(old)} |"
    )
    return gain


@pytest.mark.parametrize("name", list(STACKS))
def test_outer_sections_align_real_sections_better(name):
    assert _gain(name, {"outer": False}, {"outer": True}, 2) >= STACKS[name][3]


@pytest.mark.parametrize("name", list(STACKS))
def test_flows_averaged_over_eight_views_align_real_sections_better(name):
    assert _gain(name, {"outer": True}, {"outer": True, "views": 8}, 3) >= STACKS[name][4]
