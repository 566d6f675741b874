"""Alignment on real EM: each section of ISBI 2012 and of the FlyEM sample at z-step 5 predicted
as the blend of its two neighbours warped to it, by the pair's own flow (the ``flow`` baseline)
and with each neighbour's motion also measured against the section beyond it
(``align_pair(..., outer=...)``, what flow-guided networks read). Skips when the data is absent.
Prints the table docs/interpolation.md quotes:

    pytest benchmarks/test_align_real.py -s

Data: $EMRESTORE_DATA or ../shared/data beside the checkout (see its README).
"""

import os
from pathlib import Path

import numpy as np
import pytest

from emrestore import io, metrics
from emrestore.alignment import align_pair
from emrestore.detect._common import to_unit

DATA = Path(os.environ.get("EMRESTORE_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
# name: (folder, z-step, sections, smallest mean gain in dB the outer sections must bring)
STACKS = {"isbi_train": ("isbi2012/train/image", 1, slice(None), 0.05),
          "isbi_test": ("isbi2012/test/image", 1, slice(None), 0.05),
          "flyem_z5_0_125": ("flyem_fibsem_sample1/slices", 5, slice(0, 125), 0.4),
          "flyem_z5_125_250": ("flyem_fibsem_sample1/slices", 5, slice(125, 250), 0.4)}


def _blend_psnr(u, z, outer):
    wa, wb = align_pair(u[z - 1], u[z + 1], 0.5, outer=(u[z - 2], u[z + 2]) if outer else (None, None),
                        outer_gaps=(0.5, 0.5))
    return metrics.psnr(0.5 * (wa + wb), u[z])


@pytest.mark.parametrize("name", list(STACKS))
def test_outer_sections_align_real_sections_better(name):
    folder, step, part, min_gain = STACKS[name]
    if not (DATA / folder).is_dir():
        pytest.skip(f"real EM data not found under {DATA}")
    u = np.stack([to_unit(s) for s in io.read_stack(DATA / folder)[part][::step]]).astype(np.float32)
    zs = range(2, len(u) - 2)
    pair = np.array([_blend_psnr(u, z, False) for z in zs])
    outer = np.array([_blend_psnr(u, z, True) for z in zs])
    print(f"\n| {name} | {len(zs)} | {pair.mean():.2f} | {outer.mean():.2f} | {outer.mean() - pair.mean():+.2f} "
          f"| {int((outer > pair).sum())}/{len(zs)} |")
    assert outer.mean() - pair.mean() >= min_gain
