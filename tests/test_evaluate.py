"""Metrics against hand-computed values, the baselines' behaviour, and the evaluation harness end to
end on a tiny phantom (API and command)."""

import json

import numpy as np
import pytest
from scipy import ndimage

from emrestore import baselines, cli, evaluate, io, metrics
from emrestore.phantom import make_phantom


def test_psnr_by_hand():
    clean = np.zeros((10, 10), np.uint8)
    noisy = clean.copy()
    noisy[0, :] = 51  # error 0.2 on 10 of 100 pixels: MSE 0.004
    assert metrics.psnr(noisy, clean) == pytest.approx(10 * np.log10(1 / 0.004))
    mask = np.zeros((10, 10), bool)
    mask[0, :5] = True  # only wrong pixels: MSE 0.04
    assert metrics.psnr(noisy, clean, mask) == pytest.approx(10 * np.log10(1 / 0.04))
    assert metrics.psnr(clean, clean) == float("inf")


def test_ssim_protocol():
    rng = np.random.default_rng(0)
    a = rng.uniform(size=(64, 64))
    assert metrics.ssim(a, a) == pytest.approx(1.0)
    # A constant offset c on [0, 1] data changes only the luminance term of every window.
    b = np.clip(a + 0.1, 0, 1)
    assert 0.8 < metrics.ssim(b, a) < 1.0
    mask = np.zeros((64, 64), bool)
    mask[:, :32] = True
    c = a.copy()
    c[:, 40:] = rng.uniform(size=(64, 24))  # damage outside the mask (and its window reach)
    assert metrics.ssim(c, a, mask) > metrics.ssim(c, a)


def test_segmentation_scores_are_zero_for_the_same_section_and_grow_with_damage():
    section = make_phantom((1, 128, 128), seed=0, cell_diameter=40).raw[0]
    reference = metrics.segment(section)
    assert reference.max() > 3
    same = metrics.segmentation_scores(section, reference)
    assert same["voi"] == pytest.approx(0, abs=1e-9) and same["arand"] == pytest.approx(0, abs=1e-9)
    noisy = np.clip(section + np.random.default_rng(0).normal(0, 60, section.shape), 0, 255).astype(np.uint8)
    worse = metrics.segmentation_scores(noisy, reference)
    assert worse["voi"] > 0.5 and worse["arand"] > 0.1


@pytest.fixture(scope="module")
def stack():
    return make_phantom((7, 96, 96), seed=3, cell_diameter=40).raw


def test_substitution_and_linear_use_the_nearest_clean_neighbours(stack):
    masks = np.zeros(stack.shape, np.uint8)
    masks[3] = 1
    masks[4] = 1  # a run: section 3 lies between 2 and 5
    before = stack.copy()
    sub = baselines.substitution(stack, masks)
    np.testing.assert_array_equal(sub[3], stack[2])
    np.testing.assert_array_equal(sub[4], stack[5])
    lin = baselines.linear(stack, masks)
    expected = np.rint((2 / 3) * stack[2].astype(float) + (1 / 3) * stack[5].astype(float))
    np.testing.assert_array_equal(lin[3], expected.astype(np.uint8))
    np.testing.assert_array_equal(stack, before)
    np.testing.assert_array_equal(np.delete(lin, [3, 4], 0), np.delete(stack, [3, 4], 0))


def test_flow_interpolation_beats_linear_on_a_shifted_pattern():
    rng = np.random.default_rng(0)
    base = ndimage.gaussian_filter(rng.uniform(0, 255, (140, 140)), 3)
    base = (base - base.min()) / (base.max() - base.min()) * 255
    stack = np.stack([np.roll(base, 4 * k, axis=1) for k in range(3)])[:, 10:-10, 10:-10].astype(np.uint8)
    masks = np.zeros(stack.shape, np.uint8)
    masks[1] = 1
    flow = baselines.flow(stack, masks)[1]
    linear = baselines.linear(stack, masks)[1]
    inner = (slice(10, -10), slice(10, -10))
    assert metrics.psnr(flow[inner], stack[1][inner]) > metrics.psnr(linear[inner], stack[1][inner]) + 5


def test_inpainting_changes_only_the_mask(stack):
    masks = np.zeros(stack.shape, np.uint8)
    masks[2, 40:50, 30:60] = 2
    out = baselines.inpaint(stack, masks)
    changed = out != stack
    assert not changed[masks == 0].any()


def test_baselines_reject_bad_input(stack):
    with pytest.raises(ValueError, match=r"\[Z, H, W\]"):
        baselines.linear(stack[0], stack[0])
    with pytest.raises(ValueError, match="shape"):
        baselines.linear(stack, np.zeros((2, 2, 2), np.uint8))


def test_harness_end_to_end(stack, tmp_path):
    rows = evaluate.evaluate(stack, artifacts=("ms", "sp"), seed=1)
    by = {(r["artifact"], r["method"]): r for r in rows}
    assert len(rows) == 2 * len(baselines.METHODS)
    for artifact in ("ms", "sp"):
        assert by[(artifact, "linear")]["psnr_mask"] > by[(artifact, "degraded")]["psnr_mask"]
    again = evaluate.evaluate(stack, artifacts=("ms",), seed=1)[0]
    assert {k: v for k, v in again.items() if k != "seconds_per_section"} == \
        {k: v for k, v in rows[0].items() if k != "seconds_per_section"}  # deterministic
    io.write_stack(tmp_path / "clean.tif", stack)
    assert cli.main(["evaluate", str(tmp_path / "clean.tif"), "--artifacts", "ms", "--methods",
                     "degraded,linear", "-o", str(tmp_path / "out"), "--quiet"]) == 0
    table = (tmp_path / "out" / "results.md").read_text()
    assert f"| {tmp_path.name}/clean.tif | ms | linear |" in table
    saved = json.loads((tmp_path / "out" / "results.json").read_text())
    assert [r["method"] for r in saved] == ["degraded", "linear"]
    with pytest.raises(SystemExit, match="unknown methods"):
        cli.main(["evaluate", str(tmp_path / "clean.tif"), "--methods", "magic", "-o", str(tmp_path / "x")])
