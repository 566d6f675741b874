"""Missing-section detection on real EM (ISBI 2012 train/test, FlyEM sample at z-step 5), degraded
by the simulator at 10% missing sections, seeds 0-2. Skips when the data is absent.

Data: $EMRESTORE_DATA or ../shared/data beside the checkout (see its README). Prints the table the
README quotes: pytest benchmarks/test_detect_real.py -s
"""

import collections
import os
from pathlib import Path

import numpy as np
import pytest

from emrestore import io
from emrestore.detect import detect_missing
from emrestore.simulate import simulate_stack

DATA = Path(os.environ.get("EMRESTORE_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
STACKS = {"isbi_train": ("isbi2012/train/image", 1), "isbi_test": ("isbi2012/test/image", 1),
          "flyem_z5": ("flyem_fibsem_sample1/slices", 5)}


@pytest.fixture(scope="module")
def stacks():
    if not all((DATA / path).is_dir() for path, _ in STACKS.values()):
        pytest.skip(f"real EM data not found under {DATA}")
    return {name: io.read_stack(DATA / path)[::step] for name, (path, step) in STACKS.items()}


def test_missing_sections_on_real_stacks(stacks):
    found = collections.defaultdict(list)
    false_alarms = 0
    for name, vol in stacks.items():
        false_alarms += sum(r.kind != "ok" for r in detect_missing(vol))
        for seed in range(3):
            sim = simulate_stack(vol, {"ms": 0.1}, seed=seed)
            result = detect_missing(sim.volume)
            truth = {s["index"]: s["artifacts"][0]["params"] for s in sim.manifest["sections"]}
            for z, p in truth.items():
                kind = p["mode"] if p["mode"] != "partial" else f"partial ({'noise' if p['fill'] == 'noise' else 'flat'})"
                m, f = (sim.masks[z] & 1) > 0, result[z].mask
                found[kind].append((result[z].kind != "ok", (m & f).sum() / max((m | f).sum(), 1)))
            false_alarms += sum(r.kind != "ok" and z not in truth for z, r in enumerate(result))
    print("\n| missing section | found | mask IoU (median) |\n|---|---:|---:|")
    for kind, rows in sorted(found.items()):
        ious = [iou for hit, iou in rows if hit]
        print(f"| {kind} | {len(ious)}/{len(rows)} | {np.median(ious) if ious else float('nan'):.2f} |")
    print(f"false alarms: {false_alarms}")
    assert false_alarms == 0
    for kind in ("blank", "constant", "noise", "partial (flat)"):
        assert all(hit for hit, _ in found[kind]), kind
