"""The artifact simulators: determinism, masks equal to the changed pixels, the published formulas,
fold geometry and flows, stack plans, and errors on bad input."""

import numpy as np
import pytest
import torch
from emrestore import ops
from emrestore.phantom import make_phantom
from emrestore.simulate import (
    BITS,
    LogUniform,
    plan_artifacts,
    simulate_ms,
    simulate_sff,
    simulate_sp,
    simulate_stack,
)
from emrestore.simulate.sp import BUCKETS
from scipy import ndimage


@pytest.fixture(scope="module")
def stack():
    return make_phantom((12, 160, 192), seed=5).raw


def smooth_image(h=160, w=192, seed=0):
    img = ndimage.gaussian_filter(np.random.default_rng(seed).uniform(0, 1, (h, w)), 5)
    return ((img - img.min()) / (img.max() - img.min()) * 0.8 + 0.1).astype(np.float64)


@pytest.mark.parametrize("simulate", [simulate_sff, simulate_sp, simulate_ms])
def test_deterministic_for_a_seed_and_input_untouched(simulate, stack):
    before = stack.copy()
    a, b = simulate(stack, 4, seed=11), simulate(stack, 4, seed=11)
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.mask, b.mask)
    assert a.params == b.params
    assert a.image.dtype == stack.dtype and a.image.shape == stack.shape[1:]
    np.testing.assert_array_equal(stack, before)
    others = [simulate(stack, 4, seed=s) for s in range(12, 15)]
    assert any(not np.array_equal(a.image, o.image) for o in others)


@pytest.mark.parametrize("preset", ["realistic", "paper"])
def test_sff_changes_only_the_band_and_the_deformation_zone(preset):
    img = smooth_image()
    for seed in range(4):
        art = simulate_sff(img, seed=seed, preset=preset)
        changed = art.image != img
        moved = np.hypot(*art.flow) > 0
        assert art.mask.any() and changed[art.mask].mean() > 0.99
        assert not (changed & ~art.mask & ~moved).any()
        if preset == "paper":  # the published black band
            assert (art.image[art.alpha == 1] == 0).all()


def test_sff_inverse_flow_restores_the_visible_content():
    img = smooth_image()
    for seed, preset in [(0, "realistic"), (1, "realistic"), (2, "paper")]:
        art = simulate_sff(img, seed=seed, preset=preset)
        back = ops.warp(
            torch.from_numpy(art.image)[None, None],
            torch.from_numpy(art.inverse_flow)[None].double(),
            "bilinear",
            "border",
        )[0, 0].numpy()
        visible = ~art.lost
        assert 0.2 < visible.mean() < 1.0
        assert art.lost[art.mask].mean() > 0.5  # what lies under the band is lost
        assert np.abs(back - img)[visible].max() < 0.02  # bilinear resampling error only


def _segment_distance(points, a, b):
    e = b - a
    t = np.clip(((points - a) @ e) / max(e @ e, 1e-12), 0, 1)
    return np.linalg.norm(points - (a + t[:, None] * e), axis=1)


def test_partial_and_curved_folds_give_connected_bands_that_end_where_the_fold_ends():
    img = smooth_image(256, 256)
    seen_inside_end = 0
    for seed in range(8):
        art = simulate_sff(img, seed=seed, n_folds=1, partial=1.0, bend=(0.03, 0.06))
        fold = art.params["folds"][0]
        assert fold["type"] == "partial"
        _, n_parts = ndimage.label(
            art.mask, np.ones((3, 3))
        )  # 8-connected: the tapered tip is thin
        assert n_parts == 1, f"seed {seed}: band in {n_parts} pieces"
        vertices, profile = np.array(fold["vertices"]), np.array(fold["profile"])
        ys, xs = np.nonzero(art.mask)
        pts = np.stack([xs, ys], 1).astype(float)
        dist = np.min(
            [
                _segment_distance(pts, vertices[k], vertices[k + 1])
                for k in range(len(vertices) - 1)
            ],
            axis=0,
        )
        assert dist.max() <= profile[:, 0].max() + fold["band_softness"] + 1
        for end, inner in ((vertices[0], vertices[1]), (vertices[-1], vertices[-2])):
            inside = 0 <= end[0] <= 255 and 0 <= end[1] <= 255
            if not inside:
                continue
            seen_inside_end += 1
            u = (end - inner) / np.linalg.norm(end - inner)
            assert ((pts - end) @ u).max() <= 1.5, "band extends past the end of the fold"
    assert seen_inside_end >= 4


def test_paper_preset_draws_the_published_ranges():
    img = smooth_image()
    for seed in range(20):
        fold = simulate_sff(img, seed=seed, preset="paper", return_flow=False).params["folds"][0]
        assert 5 <= fold["half_width"] <= 20 and fold["half_width"] <= fold["fold_width"] <= 80
        assert 1e-5 <= fold["slope"] <= 0.1


def test_sp_mask_is_exactly_the_darkened_pixels_without_contrast_change():
    img = smooth_image()
    for seed in range(5):
        art = simulate_sp(img, seed=seed, contrast=None)
        np.testing.assert_array_equal(art.image != img, art.mask)
        assert (art.image <= img).all()
        assert art.params["contrast"] is None


def test_sp_contrast_change_is_the_published_formula():
    flat = np.full((128, 128), 147, np.uint8)  # a I + (170 - 147 a) maps 147 to 170 for every a
    art = simulate_sp(flat, seed=0, contrast_probability=1.0)
    assert 0.3 <= art.params["contrast"] <= 0.5
    assert (art.image[~art.mask] == 170).all()
    ramp = np.tile(np.linspace(0, 1, 128), (128, 1))
    art = simulate_sp(ramp, seed=1, contrast_probability=1.0, contrast=0.4)
    expected = 0.4 * ramp + (170 - 147 * 0.4) / 255
    np.testing.assert_allclose(art.image[~art.mask], expected[~art.mask], rtol=1e-6)


def test_sp_sizes_follow_the_published_buckets():
    img = np.full((2048, 2048), 200, np.uint8)
    totals = np.zeros(5)
    for seed in range(6):
        art = simulate_sp(img, seed=seed, contrast=None)
        counts = art.params["counts"]
        assert all(c <= cap for c, cap in zip(counts, (10, 8, 5, 3, 1)))
        areas = [b["area"] for b in art.params["blobs"]]
        assert len(areas) == sum(counts)
        start = 0
        for (lo, hi), n in zip(BUCKETS, counts):
            assert all(lo <= a <= hi for a in areas[start : start + n])
            start += n
        totals += counts
    assert totals[0] > totals[4]  # many small, few large


def test_sp_blob_area_matches_its_draw():
    img = np.full((512, 512), 200, np.uint8)
    art = simulate_sp(img, seed=3, caps=(0, 1, 0, 0, 0), contrast=None, irregularity=0.0, edge=1.0)
    (blob,) = art.params["blobs"]
    core = (art.alpha > 0.5 * blob["darkness"]).sum()
    assert core == pytest.approx(blob["area"], rel=0.1)


@pytest.mark.parametrize("mode", ["blank", "constant", "noise"])
def test_ms_whole_section_modes(mode, stack):
    art = simulate_ms(stack, 3, seed=0, mode=mode)
    assert art.mask.all() and art.params["mode"] == mode
    if mode == "blank":
        assert (art.image == 0).all()
    elif mode == "constant":
        assert np.unique(art.image).size == 1
    else:
        assert abs(float(art.image.mean()) - float(stack[3].mean())) < 10 and art.image.std() > 3
        assert abs(np.corrcoef(art.image.ravel(), stack[3].ravel())[0, 1]) < 0.1  # no content left


def test_ms_partial_loses_the_drawn_fraction_in_one_region(stack):
    for seed in range(4):
        art = simulate_ms(stack, 2, seed=seed, mode="partial")
        assert art.mask.mean() == pytest.approx(art.params["fraction"], abs=1.0 / art.mask.size)
        assert ndimage.label(art.mask)[1] == 1
        np.testing.assert_array_equal(art.image[~art.mask], stack[2][~art.mask])


def test_plan_places_separated_missing_runs_at_the_rates():
    rng = np.random.default_rng(0)
    plan = plan_artifacts(
        400, {"ms": 0.05, "sff": 0.05, "sp": 0.05}, rng, run_lengths={1: 0.5, 2: 0.3, 3: 0.2}
    )
    missing = sorted(z for z, kinds in plan.items() if "ms" in kinds)
    assert len(missing) == 20 and 0 not in missing and 399 not in missing
    runs = np.split(missing, np.flatnonzero(np.diff(missing) > 1) + 1)
    assert (
        max(len(r) for r in runs) > 1 and max(len(r) for r in runs) <= 3
    )  # runs, separated by intact sections
    for kind in ("sff", "sp"):
        zs = [z for z, kinds in plan.items() if kind in kinds]
        assert len(zs) == 20 and not set(zs) & set(missing)


def test_simulate_stack_masks_and_manifest_agree(stack):
    before = stack.copy()
    rates = {"ms": 0.25, "sff": 0.25, "sp": 0.25}
    res = simulate_stack(stack, rates, seed=2, return_flows=True)
    again = simulate_stack(stack, rates, seed=2)
    np.testing.assert_array_equal(res.volume, again.volume)
    np.testing.assert_array_equal(stack, before)
    listed = {s["index"]: [a["kind"] for a in s["artifacts"]] for s in res.manifest["sections"]}
    for z in range(len(stack)):
        kinds = listed.get(z, [])
        bits = np.bitwise_or.reduce(res.masks[z].ravel())
        assert bits == sum(BITS[k] for k in kinds), z
        if not kinds:
            np.testing.assert_array_equal(res.volume[z], stack[z])
        else:
            assert (res.volume[z] != stack[z]).any()
    assert set(res.flows) == {z for z, k in listed.items() if "sff" in k}
    assert res.manifest["counts"] == {k: sum(k in v for v in listed.values()) for k in BITS}


def test_simulate_stack_section_results_do_not_depend_on_the_rest():
    vol = make_phantom((10, 96, 96), seed=1).raw
    res = simulate_stack(vol, {"sff": 0.3}, seed=7)
    z = res.manifest["sections"][0]["index"]
    shuffled = vol.copy()
    shuffled[[i for i in range(10) if i != z]] = 0  # the other sections' content is irrelevant
    np.testing.assert_array_equal(
        simulate_stack(shuffled, {"sff": 0.3}, seed=7).volume[z], res.volume[z]
    )


def test_simulate_stack_writes_into_out(stack, tmp_path):
    out = np.lib.format.open_memmap(tmp_path / "out.npy", "w+", stack.dtype, stack.shape)
    res = simulate_stack(stack, {"ms": 0.2}, seed=0, out=out)
    assert res.volume is out
    np.testing.assert_array_equal(
        np.asarray(out), simulate_stack(stack, {"ms": 0.2}, seed=0).volume
    )


def test_log_uniform_and_ranges():
    rng = np.random.default_rng(0)
    d = LogUniform(1e-3, 1e-1)
    draws = np.array([d(rng) for _ in range(2000)])
    assert draws.min() >= 1e-3 and draws.max() <= 1e-1
    assert np.mean(draws < 1e-2) == pytest.approx(0.5, abs=0.05)  # uniform in log scale
    with pytest.raises(ValueError, match="0 < low <= high"):
        LogUniform(0, 1)


@pytest.mark.parametrize("simulate", [simulate_sff, simulate_sp, simulate_ms])
def test_bad_sections_are_rejected(simulate, stack):
    with pytest.raises(TypeError, match="numpy array"):
        simulate(stack[0].tolist())
    with pytest.raises(ValueError, match=r"one section \[H, W\]"):
        simulate(stack)
    with pytest.raises(IndexError, match="out of range"):
        simulate(stack, 99)
    with pytest.raises(TypeError, match="int32"):
        simulate(stack[0].astype(np.int32))
    bad = stack[0].astype(np.float32)
    bad[3, 3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        simulate(bad)


def test_bad_options_are_rejected(stack):
    with pytest.raises(ValueError, match="preset"):
        simulate_sff(stack[0], preset="straight")
    with pytest.raises(ValueError, match="mode"):
        simulate_ms(stack[0], mode="gone")
    with pytest.raises(ValueError, match=r"\(low, high\)"):
        simulate_sp(stack[0], darkness=(0.9, 0.1))
    with pytest.raises(ValueError, match="empty"):
        simulate_stack(np.zeros((0, 8, 8), np.uint8))
    with pytest.raises(ValueError, match="unknown artifact"):
        simulate_stack(stack, {"blur": 0.1})
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        simulate_stack(stack, {"ms": 1.5})
    with pytest.raises(ValueError, match="never modified"):
        simulate_stack(stack, out=stack)


def test_precipitates_on_a_section_too_small_are_a_clear_error():
    tiny = np.zeros((12, 16), np.uint8)  # 192 px: no blob fits in half of it
    with pytest.raises(ValueError, match=r"12 x 16 px is too small for precipitates"):
        simulate_sp(tiny, seed=0)
    assert simulate_sp(np.full((20, 21), 200, np.uint8), seed=0).mask.any()  # 420 px: one fits
