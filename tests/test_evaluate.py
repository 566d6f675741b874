"""Metrics against hand-computed values, the baselines' behaviour, and the evaluation harness end to
end on a tiny phantom (API and command)."""

import json

import numpy as np
import pytest
from emrestore import baselines, cli, evaluate, io, metrics
from emrestore.phantom import make_phantom
from scipy import ndimage


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
    noisy = np.clip(section + np.random.default_rng(0).normal(0, 60, section.shape), 0, 255).astype(
        np.uint8
    )
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
    stack = np.stack([np.roll(base, 4 * k, axis=1) for k in range(3)])[:, 10:-10, 10:-10].astype(
        np.uint8
    )
    masks = np.zeros(stack.shape, np.uint8)
    masks[1] = 1
    flow = baselines.flow(stack, masks)[1]
    linear = baselines.linear(stack, masks)[1]
    inner = (slice(10, -10), slice(10, -10))
    assert (
        metrics.psnr(flow[inner], stack[1][inner])
        > metrics.psnr(linear[inner], stack[1][inner]) + 5
    )


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
    assert {k: v for k, v in again.items() if k != "seconds_per_section"} == {
        k: v for k, v in rows[0].items() if k != "seconds_per_section"
    }  # deterministic
    io.write_stack(tmp_path / "clean.tif", stack)
    assert (
        cli.main(
            [
                "evaluate",
                str(tmp_path / "clean.tif"),
                "--artifacts",
                "ms",
                "--methods",
                "degraded,linear",
                "-o",
                str(tmp_path / "out"),
                "--quiet",
            ]
        )
        == 0
    )
    table = (tmp_path / "out" / "results.md").read_text()
    assert f"| {tmp_path.name}/clean.tif | ms | linear |" in table
    saved = json.loads((tmp_path / "out" / "results.json").read_text())
    assert [r["method"] for r in saved] == ["degraded", "linear"]
    with pytest.raises(SystemExit, match="unknown methods"):
        cli.main(
            [
                "evaluate",
                str(tmp_path / "clean.tif"),
                "--methods",
                "magic",
                "-o",
                str(tmp_path / "x"),
            ]
        )


def test_all_sections_scores_every_interior_section_once_and_keeps_the_default_pass(stack):
    assert sorted(z for o in (0, 1, 2) for z in evaluate.held_out(len(stack), offset=o)) == list(
        range(1, len(stack) - 1)
    )
    methods = {m: baselines.METHODS[m] for m in ("degraded", "linear")}
    default = evaluate.evaluate(stack, artifacts=("ms",), methods=methods, seed=2)
    full = evaluate.evaluate(stack, artifacts=("ms",), methods=methods, seed=2, all_sections=True)
    for d, f in zip(default, full):
        assert d["sections"] == 2 and f["sections"] == len(stack) - 2
        assert [s["index"] for s in f["per_section"]] == list(range(1, len(stack) - 1))
        # pass 0 is the default protocol, section for section
        assert [s for s in f["per_section"] if s["index"] in (1, 4)] == d["per_section"]
        assert f["psnr"] == pytest.approx(np.mean([s["psnr"] for s in f["per_section"]]))


def test_compare_pairs_sections_and_bounds_the_mean_difference(stack):
    methods = {m: baselines.METHODS[m] for m in ("degraded", "linear")}
    methods["linear again"] = baselines.METHODS["linear"]
    rows = evaluate.evaluate(stack, artifacts=("ms",), methods=methods, seed=2, all_sections=True)
    pairs = {(p["method"], p["score"]): p for p in evaluate.compare(rows, reference="linear")}
    assert set(pairs) == {(m, k) for m in ("degraded", "linear again") for k in ("psnr", "voi")}
    same = pairs["linear again", "psnr"]
    assert same["mean_difference"] == 0 and same["ci95"] == [0, 0] and same["better_on"] == 0
    worse = pairs["degraded", "psnr"]  # a blank section loses on every section
    lo, hi = worse["ci95"]
    assert lo <= worse["mean_difference"] <= hi < 0
    assert worse["better_on"] == 0 and worse["sections"] == len(stack) - 2
    assert (
        pairs["degraded", "voi"]["mean_difference"] > 0
        and pairs["degraded", "voi"]["better_on"] == 0
    )
    assert evaluate.compare(rows, reference="flow") == []  # not scored: nothing to compare with
    short = [
        dict(r, per_section=r["per_section"][:2]) if r["method"] == "degraded" else r for r in rows
    ]
    with pytest.raises(ValueError, match="different sections"):
        evaluate.compare(short, reference="linear")
    with pytest.raises(ValueError, match="per-section scores"):
        evaluate.compare(
            [{k: v for k, v in r.items() if k != "per_section"} for r in rows], reference="linear"
        )


def test_evaluate_command_all_sections_and_comparison(stack, tmp_path):
    io.write_stack(tmp_path / "clean.tif", stack)
    out = tmp_path / "out"
    assert (
        cli.main(
            [
                "evaluate",
                str(tmp_path / "clean.tif"),
                "--artifacts",
                "ms",
                "--methods",
                "degraded,linear",
                "--reference",
                "linear",
                "--all-sections",
                "-o",
                str(out),
                "--quiet",
            ]
        )
        == 0
    )
    saved = json.loads((out / "results.json").read_text())
    assert [len(r["per_section"]) for r in saved] == [len(stack) - 2] * 2
    assert "per_section" not in (out / "results.csv").read_text().splitlines()[0].split(
        ","
    )  # means only
    pairs = json.loads((out / "comparison.json").read_text())
    assert {(p["method"], p["reference"]) for p in pairs} == {("degraded", "linear")}
    assert "| degraded | linear | psnr |" in (out / "comparison.md").read_text()
    with pytest.raises(SystemExit, match="--reference 'magic' is not among"):
        cli.main(
            [
                "evaluate",
                str(tmp_path / "clean.tif"),
                "--methods",
                "linear",
                "--reference",
                "magic",
                "-o",
                str(tmp_path / "x"),
            ]
        )
