"""Float stacks keep their own intensity range end to end: nothing is clipped to [0, 1]."""

import numpy as np
import pytest
from emrestore import restore
from emrestore.conventions import BITS, intensity_range, to_range_unit
from emrestore.detect import detect_stack
from emrestore.phantom import make_phantom
from emrestore.simulate import simulate_stack


@pytest.fixture(scope="module")
def wide():
    """A phantom in [-500, 520] (float32) with section 4 missing (at the stack's minimum)."""
    clean = make_phantom((9, 96, 96), seed=3).raw.astype(np.float32) / 255
    stack = (clean * 1020 - 500).astype(np.float32)
    stack[4] = stack.min()
    return stack


def test_intensity_range():
    assert intensity_range(np.zeros((2, 4, 4), np.uint8)) == (0.0, 255.0)
    assert intensity_range(np.full((2, 4, 4), 0.5, np.float32)) == (0.0, 1.0)
    assert intensity_range(np.array([[[-2.0, 3.0]]])) == (-2.0, 3.0)
    assert intensity_range(np.full((1, 2, 2), 7.0)) == (7.0, 8.0)  # constant: a unit-wide range


def test_restore_keeps_a_float_stacks_range(wide):
    masks = np.zeros(wide.shape, np.uint8)
    masks[4] = BITS["ms"]
    result = restore(wide, masks=masks, tile=None)
    assert [r["index"] for r in result.report["restored"]] == [4]
    lo, hi = float(wide.min()), float(wide.max())
    filled = result.stack[4]
    assert lo <= filled.min() and filled.max() <= hi
    assert filled.max() > 1.0  # not clipped to [0, 1]
    untouched = [z for z in range(len(wide)) if z != 4]
    np.testing.assert_array_equal(result.stack[untouched], wide[untouched])
    # The same as restoring the stack scaled to [0, 1] and mapping the section back.
    unit = restore(to_range_unit(wide, (lo, hi)), masks=masks, tile=None).stack[4]
    np.testing.assert_allclose(filled, lo + unit * (hi - lo), rtol=0, atol=1e-3)


def test_detect_sees_a_float_stack_in_its_own_range(wide):
    found = detect_stack(wide)
    scaled = detect_stack(to_range_unit(wide, intensity_range(wide)))
    np.testing.assert_array_equal(found.masks, scaled.masks)
    assert "ms" in found.sections[4]["verdict"]


def test_simulate_maps_back_and_leaves_other_pixels_exact(wide):
    rates = {"ms": 0.0, "sff": 0.3, "sp": 0.3}
    sim = simulate_stack(wide, rates, seed=1)
    lo, hi = float(wide.min()), float(wide.max())
    assert sim.volume.max() > 1.0  # not clipped to [0, 1]
    # The same pixels change as when the stack is given in [0, 1]; all others keep their values.
    unit = to_range_unit(wide, (lo, hi))
    in_unit = simulate_stack(unit, rates, seed=1)
    assert (in_unit.volume != unit).any()
    np.testing.assert_array_equal(sim.volume != wide, in_unit.volume != unit)
    np.testing.assert_allclose(sim.volume, lo + in_unit.volume * (hi - lo), rtol=0, atol=1e-3)
