import json

import numpy as np
import pytest
import tifffile
from emrestore import baselines, cli, io, metrics, restore
from emrestore.models import InterpolationConfig, fit
from emrestore.phantom import make_phantom
from emrestore.simulate import BITS, simulate_ms

TINY = InterpolationConfig(kernel_size=5, widths=(8, 16), head_width=8)


@pytest.fixture(scope="module")
def clean():
    return make_phantom((10, 96, 96), seed=11, cell_diameter=60).raw


@pytest.fixture(scope="module")
def large():
    """Big enough for the detector to judge (too few cells in a section look like a missing one)."""
    return make_phantom((8, 320, 320), seed=12).raw


def _degrade(clean, plan):
    out, masks = clean.copy(), np.zeros(clean.shape, np.uint8)
    for z, mode in plan.items():
        art = simulate_ms(clean, z, seed=z, mode=mode)
        out[z], masks[z][art.mask] = art.image, BITS["ms"]
    return out, masks


def test_restore_fills_single_sections_runs_and_partial_losses(large):
    degraded, masks = _degrade(large, {1: "blank", 3: "noise", 4: "constant", 6: "partial"})
    before = degraded.copy()
    result = restore(degraded, masks=masks, tile=128)
    assert np.array_equal(degraded, before)  # the input is never modified
    assert result.stack.dtype == degraded.dtype
    untouched = masks == 0
    assert np.array_equal(result.stack[untouched], degraded[untouched])
    records = {r["index"]: r for r in result.report["restored"]}
    assert sorted(records) == [1, 3, 4, 6]
    assert records[3]["sources"] == [2, 5] and records[3]["position"] == pytest.approx(
        1 / 3, abs=1e-4
    )
    assert records[4]["sources"] == [2, 5] and records[4]["position"] == pytest.approx(
        2 / 3, abs=1e-4
    )
    assert records[6]["kind"] == "partial" and records[6]["action"] == "interpolated"
    linear = baselines.linear(degraded, masks)
    for z in (1, 3, 4, 6):  # the shipped model knows the phantom: better than the neighbours' blend
        assert metrics.psnr(result.stack[z], large[z]) > metrics.psnr(linear[z], large[z])
        assert metrics.psnr(result.stack[z], large[z]) > metrics.psnr(degraded[z], large[z])


def test_restore_measures_motion_against_the_sections_beyond(clean):
    from emrestore.models import SepConvInterpolator, interpolate

    degraded, masks = _degrade(clean, {1: "blank", 4: "noise", 5: "blank"})
    model = SepConvInterpolator(
        TINY
    ).eval()  # flow-guided, outer_flow: an untrained one is the flow
    result = restore(degraded, model=model, masks=masks, tile=None)
    records = {r["index"]: r for r in result.report["restored"]}
    assert records[1]["sources"] == [0, 2] and records[1]["motion_from"] == [None, 3]
    assert records[4]["sources"] == [3, 6] and records[4]["motion_from"] == [2, 7]
    expected = interpolate(
        model,
        degraded[3],
        degraded[6],
        1 / 3,
        tile=None,
        outer=(degraded[2], degraded[7]),
        outer_gaps=(1 / 3, 1 / 3),
    )
    np.testing.assert_array_equal(
        result.stack[4], np.clip(np.rint(expected * 255), 0, 255).astype(np.uint8)
    )
    plain = restore(
        degraded,
        model=SepConvInterpolator(InterpolationConfig(**{**TINY.to_dict(), "outer_flow": False})),
        masks=masks,
        tile=None,
    )
    assert all("motion_from" not in r for r in plain.report["restored"])
    assert not np.array_equal(plain.stack[4], result.stack[4])


def test_restore_with_test_time_augmentation(clean, tmp_path):
    degraded, masks = _degrade(clean, {4: "blank"})
    plain = restore(degraded, masks=masks, tile=None)
    tta = restore(degraded, masks=masks, tile=None, tta=True)
    assert tta.report["tta"] and not plain.report["tta"]
    untouched = masks == 0
    assert np.array_equal(tta.stack[untouched], degraded[untouched])
    assert not np.array_equal(tta.stack[4], plain.stack[4])  # 16 predictions averaged, not one
    assert metrics.psnr(tta.stack[4], clean[4]) > metrics.psnr(degraded[4], clean[4]) + 3
    with pytest.raises(SystemExit, match="--tta and --detail go with --model"):
        cli.main(["evaluate", str(tmp_path / "none.tif"), "--tta", "-o", str(tmp_path / "r")])


def test_restore_puts_back_the_share_of_detail_asked_for(clean, tmp_path, capsys):
    from emrestore.models import SepConvInterpolator, interpolate

    degraded, masks = _degrade(clean, {4: "blank"})
    model = SepConvInterpolator(TINY).eval()
    default = restore(degraded, model=model, masks=masks, tile=None)
    none = restore(degraded, model=model, masks=masks, tile=None, detail=0.0)
    assert default.report["detail"] == TINY.detail > 0 and none.report["detail"] == 0.0
    assert not np.array_equal(default.stack[4], none.stack[4])
    expected = interpolate(
        model,
        degraded[3],
        degraded[5],
        0.5,
        tile=None,
        outer=(degraded[2], degraded[6]),
        outer_gaps=(0.5, 0.5),
        detail=0.0,
    )
    np.testing.assert_array_equal(
        none.stack[4], np.clip(np.rint(expected * 255), 0, 255).astype(np.uint8)
    )
    with pytest.raises(ValueError, match=r"detail must lie in \[0, 1\]; got 1.5"):
        restore(degraded, model=model, masks=masks, detail=1.5)
    shipped = restore(
        degraded, masks=masks, tile=None
    )  # plain SepConv: its neighbours are not aligned
    assert shipped.report["detail"] == 0.0
    with pytest.raises(SystemExit):
        cli.main(
            ["restore", str(tmp_path / "in.tif"), "-o", str(tmp_path / "out.tif"), "--detail", "2"]
        )
    assert "--detail: expected a number in [0, 1]; got 2" in capsys.readouterr().err
    assert not (tmp_path / "out.tif").exists()


def test_restore_at_the_ends_copies_the_one_neighbour(clean):
    degraded, masks = _degrade(clean, {0: "blank"})
    result = restore(degraded, masks=masks)
    record = result.report["restored"][0]
    assert record["action"] == "copied" and record["sources"] == [1]
    assert np.array_equal(result.stack[0], degraded[1])


def test_restore_detects_missing_sections_itself(large):
    degraded, _ = _degrade(large, {3: "blank", 5: "noise"})
    result = restore(degraded)
    assert [r["index"] for r in result.report["restored"]] == [3, 5]
    assert "detection" in result.report


def test_fit_then_restore_round_trip(clean, tmp_path):
    trained = fit(
        clean,
        tmp_path / "m",
        minutes=None,
        iterations=40,
        config=TINY,
        batch_size=4,
        crop=64,
        detect=False,
        progress=False,
        loss="mse",
    )
    degraded, masks = _degrade(clean, {4: "blank"})
    from_folder = restore(degraded, model=tmp_path / "m", masks=masks)
    from_object = restore(degraded, model=trained.model, masks=masks)
    assert np.array_equal(from_folder.stack, from_object.stack)
    assert from_folder.report["model"] == str(tmp_path / "m")


def test_restore_rejects_bad_input(clean):
    with pytest.raises(ValueError, match=r"\[Z, H, W\]"):
        restore(clean[0])
    with pytest.raises(ValueError, match="at least 3 sections"):
        restore(clean[:2])
    with pytest.raises(TypeError, match="numpy stack"):
        restore([clean[0]] * 3)
    with pytest.raises(ValueError, match="masks must be uint8"):
        restore(clean, masks=np.zeros((10, 96, 95), np.uint8))
    bad = clean.astype(np.float32) / 255
    bad[1, 2, 3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        restore(bad)


def test_cli_fit_and_restore(large, tmp_path, capsys):
    degraded, _ = _degrade(large, {4: "blank"})
    tifffile.imwrite(tmp_path / "in.tif", degraded)
    tifffile.imwrite(tmp_path / "train.tif", large)
    digest = (tmp_path / "in.tif").read_bytes()
    assert (
        cli.main(
            [
                "fit",
                str(tmp_path / "train.tif"),
                "-o",
                str(tmp_path / "m"),
                "--iterations",
                "2",
                "--kernel-size",
                "5",
                "--widths",
                "8,16",
                "--crop",
                "32",
                "--no-detect",
                "--quiet",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "2 iterations" in printed and "kept the last weights (iteration 2)" in printed
    with pytest.raises(SystemExit, match="not empty"):
        cli.main(
            [
                "fit",
                str(tmp_path / "train.tif"),
                "-o",
                str(tmp_path / "m"),
                "--iterations",
                "1",
                "--quiet",
            ]
        )
    # --z-step n: trained for gaps of n sections on every section, not on every n-th only
    assert (
        cli.main(
            [
                "fit",
                str(tmp_path / "train.tif"),
                "-o",
                str(tmp_path / "m2"),
                "--iterations",
                "1",
                "--z-step",
                "2",
                "--loss",
                "mse+ssim",
                "--ssim-weight",
                "1.5",
                "--membrane-weight",
                "0.5",
                "--keep",
                "best",
                "--kernel-size",
                "5",
                "--widths",
                "8,16",
                "--crop",
                "32",
                "--no-detect",
                "--no-outer-flow",
                "--flow-views",
                "2",
                "--quiet",
            ]
        )
        == 0
    )
    saved = json.loads((tmp_path / "m2" / "config.json").read_text())
    record = saved["training"]
    assert (
        record["z_step"] == 2
        and record["stack_shape"][0] == len(large)
        and record["loss"] == "mse+ssim"
    )
    assert saved["model"]["outer_flow"] is False and record["ssim_weight"] == 1.5
    assert saved["model"]["flow_views"] == 2
    assert record["membrane_weight"] == 0.5 and record["keep"] == "best"
    assert json.loads((tmp_path / "m" / "config.json").read_text())["model"]["outer_flow"] is True
    assert json.loads((tmp_path / "m" / "config.json").read_text())["model"]["flow_views"] == 8
    report_two = restore(
        degraded, model=str(tmp_path / "m2"), masks=_degrade(large, {4: "blank"})[1], tile=None
    )
    assert "motion_from" not in report_two.report["restored"][0]
    assert (
        cli.main(
            [
                "restore",
                str(tmp_path / "in.tif"),
                "-o",
                str(tmp_path / "out.tif"),
                "--model",
                str(tmp_path / "m"),
                "--quiet",
            ]
        )
        == 0
    )
    assert (tmp_path / "in.tif").read_bytes() == digest
    out = io.read_stack(tmp_path / "out.tif")
    assert out.shape == degraded.shape and not np.array_equal(out[4], degraded[4])
    assert np.array_equal(np.delete(out, 4, 0), np.delete(degraded, 4, 0))
    report = json.loads((tmp_path / "out_report.json").read_text())
    assert [r["index"] for r in report["restored"]] == [4]
    assert io.read_stack(tmp_path / "out_masks.tif")[4].all()
    with pytest.raises(SystemExit, match="exist"):
        cli.main(["restore", str(tmp_path / "in.tif"), "-o", str(tmp_path / "out.tif"), "--quiet"])


def test_demo_beats_the_baselines_with_the_shipped_model(tmp_path, capsys):
    assert cli.main(["demo", "-o", str(tmp_path / "demo"), "--quiet"]) == 0
    report = json.loads((tmp_path / "demo" / "report.json").read_text())
    scores = report["scores"]
    assert report["detection"]["found_sections"] == report["detection"]["true_sections"]
    for name in ("degraded", "substitution", "linear", "flow"):
        assert scores["emrestore"]["psnr"] > scores[name]["psnr"], (name, scores)
    import cv2

    panel = cv2.imread(str(tmp_path / "demo" / "panel.png"))
    assert panel is not None and panel.shape[0] > 3 * 300
    assert "| emrestore |" in capsys.readouterr().out


def test_cli_restore_reports_bad_input_clearly(tmp_path):
    import cv2

    folder = tmp_path / "sections"
    folder.mkdir()
    for i, shape in enumerate([(32, 32), (32, 32), (32, 40)]):
        cv2.imwrite(str(folder / f"{i:02d}.png"), np.zeros(shape, np.uint8))
    with pytest.raises(SystemExit, match="emrestore restore: .*32, 40"):
        cli.main(["restore", str(folder), "-o", str(tmp_path / "out.tif"), "--quiet"])
    tifffile.imwrite(tmp_path / "two.tif", np.zeros((2, 32, 32), np.uint8))
    with pytest.raises(SystemExit, match="at least 3 sections"):
        cli.main(["restore", str(tmp_path / "two.tif"), "-o", str(tmp_path / "out.tif"), "--quiet"])
    assert not (tmp_path / "out.tif").exists()


def test_restore_reports_how_much_of_each_section_it_changed():
    from emrestore.conventions import BITS as bits

    stack = make_phantom((7, 96, 96), seed=5).raw
    masks = np.zeros(stack.shape, np.uint8)
    masks[3] = bits["ms"]  # a whole section
    masks[5, 10:40, 10:40] = bits["ms"]  # a partial call in tissue that is there
    result = restore(stack, masks=masks, tile=None)
    changed = {r["index"]: r["changed"] for r in result.report["restored"]}
    for z, fraction in changed.items():
        assert fraction == pytest.approx(np.mean(result.stack[z] != stack[z]), abs=1e-4)
    assert changed[3] > 0.5 and 0 < changed[5] <= 900 / 96**2
    untouched = [z for z in range(len(stack)) if z not in changed]
    np.testing.assert_array_equal(result.stack[untouched], stack[untouched])
    (warning,) = result.report["warnings"]
    assert "partly missing" in warning and "5 (" in warning


def test_restore_warns_that_tiny_sections_defeat_detection():
    stack = make_phantom((7, 32, 32), seed=1).raw
    assert any(
        "too small for reliable detection" in w
        for w in restore(stack, tile=None).report["warnings"]
    )


def test_cli_restore_says_how_much_of_each_section_it_changed(tmp_path, capsys):
    stack = make_phantom((9, 96, 96), seed=2).raw
    stack[4] = 0
    io.write_stack(tmp_path / "in.tif", stack)
    assert (
        cli.main(
            [
                "restore",
                str(tmp_path / "in.tif"),
                "-o",
                str(tmp_path / "out.tif"),
                "--tile",
                "0",
                "--quiet",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    report = json.loads((tmp_path / "out_report.json").read_text())
    changed = {r["index"]: r["changed"] for r in report["restored"]}
    assert changed[4] > 0.9
    assert f"4 ({100 * changed[4]:.1f}%)" in out
    restored = io.read_stack(tmp_path / "out.tif")
    for z in set(range(len(stack))) - set(changed):  # sections not listed are bit-identical
        np.testing.assert_array_equal(restored[z], stack[z])


def test_changed_shares_add_up_a_sections_blocks():
    from emrestore.restoration import changed_shares, warnings_for

    records = [  # section 4 restored in two of its four 50 x 50 blocks
        {"index": 4, "kind": "partial", "changed": 0.5, "region": [0, 50, 0, 50]},
        {"index": 4, "kind": "partial", "changed": 0.1, "region": [0, 50, 50, 100]},
        {"index": 7, "kind": "whole", "changed": 1.0, "region": [0, 100, 0, 100]},
    ]
    assert changed_shares(records, (9, 100, 100)) == pytest.approx({4: 0.15, 7: 1.0})
    (warning,) = warnings_for(records, (9, 100, 100))
    assert "1 section(s) judged partly missing" in warning and "4 (15.0%)" in warning
