"""Block-wise restoration of volumes larger than memory: the same result as the whole stack in
memory, resumable, shared between jobs, written into place only when complete."""

import json

import numpy as np
import pytest
from emrestore import cli, metrics, restore, restore_volume
from emrestore.blockwise import blocks_folder, needed_z_window, output_chunks
from emrestore.io import open_volume, staging_path
from emrestore.models import InterpolationConfig, SepConvInterpolator
from emrestore.phantom import make_phantom
from emrestore.simulate import simulate_ms

zarr = pytest.importorskip("zarr", reason="zarr is not installed")

TINY = InterpolationConfig(kernel_size=5, widths=(8, 16), head_width=8)


@pytest.fixture(scope="module")
def volume():
    """Missing sections alone, in a run of two and next to a block boundary; sections large enough
    for the detector to judge."""
    clean = make_phantom((12, 320, 320), seed=12).raw
    degraded = clean.copy()
    for z, mode in {2: "blank", 5: "noise", 6: "constant", 9: "partial"}.items():
        degraded[z] = simulate_ms(clean, z, seed=z, mode=mode).image
    return clean, degraded


@pytest.fixture(scope="module")
def model():
    return SepConvInterpolator(
        TINY
    ).eval()  # flow-guided with the sections beyond: needs wide windows


@pytest.fixture(scope="module")
def whole(volume, model):
    return restore(volume[1], model=model, tile=None)


def _zarr(path, data, chunks=(3, 160, 160)):
    zarr.open_array(path, mode="w", shape=data.shape, chunks=chunks, dtype=data.dtype)[:] = data
    return path


def test_blocks_along_z_give_the_whole_stack_result(tmp_path, volume, model, whole):
    src = _zarr(tmp_path / "in.zarr", volume[1])
    # Halo 1: every block must grow its window to reach the sections beyond its missing ones.
    report = restore_volume(
        src, tmp_path / "out.zarr", block=(4, 320, 320), halo=(1, 0, 0), model=model, tile=None
    )
    np.testing.assert_array_equal(open_volume(tmp_path / "out.zarr")[:], whole.stack)
    np.testing.assert_array_equal(open_volume(tmp_path / "out_masks.zarr")[:], whole.masks)
    assert open_volume(src)[:].tobytes() == volume[1].tobytes()  # the input is never modified
    expected = {r["index"]: (r["sources"], r.get("motion_from")) for r in whole.report["restored"]}
    assert {
        r["index"]: (r["sources"], r.get("motion_from")) for r in report["restored"]
    } == expected
    assert sorted(expected) == [2, 5, 6, 9] and expected[5] == ([4, 7], [3, 8])
    # Grown from [3, 9) over the search for the sections beyond 4 and 7 (1 to 10), plus the halo.
    assert report["windows"]["z4_y0_x0"][:2] == [0, 12]
    assert json.loads((tmp_path / "out_report.json").read_text()) == json.loads(json.dumps(report))
    assert zarr.open_array(tmp_path / "out.zarr", mode="r").chunks == (4, 320, 320)
    assert not blocks_folder(tmp_path / "out_report.json").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "in.zarr",
        "out.zarr",
        "out_masks.zarr",
        "out_report.json",
    ]


def test_a_window_grows_until_each_missing_section_has_its_sources():
    inside = [{"index": 5, "action": "interpolated", "sources": [4, 7]}]
    assert needed_z_window(inside, 3, 9, 12, outer_flow=False) == (3, 9)
    assert needed_z_window(inside, 3, 9, 12, outer_flow=True) == (
        1,
        11,
    )  # the sections beyond, 3 away
    copied_up = [{"index": 5, "action": "copied", "sources": [4]}]  # nothing intact above in [3, 7)
    assert needed_z_window(copied_up, 3, 7, 12, outer_flow=True) == (3, 8)
    assert needed_z_window(copied_up, 3, 12, 12, outer_flow=True) == (
        3,
        12,
    )  # the volume's end: as in memory
    nothing = [{"index": 5, "action": "none"}]
    assert needed_z_window(nothing, 3, 7, 12, outer_flow=True) == (2, 8)
    assert needed_z_window(nothing, 0, 12, 12, outer_flow=True) == (0, 12)


def test_output_chunks_tile_the_blocks():
    assert output_chunks((64, 2048, 2048), (5000, 40000, 40000)) == (8, 512, 512)
    assert output_chunks((6, 320, 200), (12, 320, 320)) == (6, 320, 200)
    assert output_chunks((7, 600, 100), (3, 600, 90)) == (
        3,
        300,
        90,
    )  # a volume smaller than the block


def test_tiles_along_y_and_x_restore_the_same_sections(tmp_path, volume, whole):
    clean, degraded = volume
    np.save(tmp_path / "in.npy", degraded)
    shipped = restore(degraded, tile=128)
    report = restore_volume(
        tmp_path / "in.npy",
        f"{tmp_path / 'out.h5'}:restored",
        block=(12, 320, 200),
        halo=(10, 96, 96),
        tile=128,
    )
    assert {tuple(r["region"]) for r in report["restored"]} == {
        (0, 320, 0, 200),
        (0, 320, 200, 320),
    }
    assert sorted({r["index"] for r in report["restored"]}) == [2, 5, 6, 9]
    out = open_volume(f"{tmp_path / 'out.h5'}:restored")[:]
    for z in (
        2,
        5,
        6,
        9,
    ):  # the flow and the network see each tile with its halo: no seams to pay for
        assert metrics.psnr(out[z], clean[z]) > metrics.psnr(shipped.stack[z], clean[z]) - 0.2
    intact = [z for z in range(len(clean)) if z not in (2, 5, 6, 9)]
    np.testing.assert_array_equal(out[intact], degraded[intact])


def test_parts_share_the_blocks_and_a_last_run_moves_the_outputs_into_place(
    tmp_path, volume, model, whole
):
    src = _zarr(tmp_path / "in.zarr", volume[1])
    kw = {"block": (4, 320, 320), "halo": (6, 0, 0), "model": model, "tile": None}
    first = restore_volume(src, tmp_path / "out.zarr", part=(0, 2), **kw)
    assert first == {"blocks": 3, "done": 2, "this_part": 2, "restored_now": 2, "finished": False}
    assert not (tmp_path / "out.zarr").exists() and not (tmp_path / "out_report.json").exists()
    assert (tmp_path / staging_path("out.zarr")).exists()
    again = restore_volume(
        src, tmp_path / "out.zarr", part=(0, 2), **kw
    )  # a rerun resumes: nothing to do
    assert again["restored_now"] == 0
    with pytest.raises(ValueError, match="another run|other arguments"):
        restore_volume(src, tmp_path / "out.zarr", **{**kw, "halo": (5, 0, 0)})
    with pytest.raises(
        ValueError, match="other arguments"
    ):  # another share of the neighbours' detail
        restore_volume(src, tmp_path / "out.zarr", **{**kw, "detail": 0.0})
    report = restore_volume(src, tmp_path / "out.zarr", **kw)  # part 1/2's block, then into place
    np.testing.assert_array_equal(open_volume(tmp_path / "out.zarr")[:], whole.stack)
    assert report["blocks"] == 3 and sorted({r["index"] for r in report["restored"]}) == [
        2,
        5,
        6,
        9,
    ]
    with pytest.raises(FileExistsError, match="exist"):
        restore_volume(src, tmp_path / "out.zarr", **kw)
    with pytest.raises(ValueError, match="need zarr outputs"):
        restore_volume(src, tmp_path / "o.h5", part=(0, 2), **kw)


def test_cli_restores_block_by_block(tmp_path, volume, capsys):
    src = _zarr(tmp_path / "in.zarr", volume[1])
    base = ["restore", str(src), "-o", str(tmp_path / "out.zarr"), "--quiet", "--tile", "0"]
    assert cli.main(base + ["--block", "6,320,320", "--part", "1/2"]) == 0
    assert "1 of 2 done" in capsys.readouterr().out
    assert cli.main(base + ["--block", "6,320,320"]) == 0
    assert (
        "4 section(s) with missing pixels restored of 12, in 2 block(s)" in capsys.readouterr().out
    )
    report = json.loads((tmp_path / "out_report.json").read_text())
    assert sorted({r["index"] for r in report["restored"]}) == [2, 5, 6, 9]
    assert open_volume(tmp_path / "out_masks.zarr")[2].all()
    for args, message in [
        (["--block", "6,320"], "--block expects three integers"),
        (["--part", "2/2"], "--part I/N needs 0 <= I < N"),
        (["--part", "x"], "--part expects I/N"),
    ]:
        with pytest.raises(SystemExit, match=message):
            cli.main(base + ["--overwrite"] + args)
    with pytest.raises(SystemExit, match="writes zarr .* or HDF5"):
        cli.main(
            [
                "restore",
                str(src),
                "-o",
                str(tmp_path / "out.tif"),
                "--block",
                "6,320,320",
                "--quiet",
            ]
        )
    with pytest.raises(SystemExit, match="exist"):
        cli.main(base)


def test_hdf5_outputs_keep_the_files_other_datasets(tmp_path, volume, model, whole):
    import h5py

    src = _zarr(tmp_path / "in.zarr", volume[1])
    with h5py.File(tmp_path / "v.h5", "w") as f:
        f["raw"] = volume[0]
    with h5py.File(tmp_path / "m.h5", "w") as f:
        f["notes"] = np.arange(3)
    restore_volume(
        src,
        f"{tmp_path / 'v.h5'}:restored",
        masks=f"{tmp_path / 'm.h5'}:masks",
        block=(6, 320, 320),
        halo=(10, 0, 0),
        model=model,
        tile=None,
    )
    with h5py.File(tmp_path / "v.h5", "r") as f:
        assert sorted(f) == ["raw", "restored"]
        np.testing.assert_array_equal(f["raw"][:], volume[0])
        np.testing.assert_array_equal(f["restored"][:], whole.stack)
    with h5py.File(tmp_path / "m.h5", "r") as f:
        assert sorted(f) == ["masks", "notes"]
        np.testing.assert_array_equal(f["masks"][:], whole.masks)


def test_a_run_resumes_with_its_input_named_another_way(tmp_path, volume, model, monkeypatch):
    src = _zarr(tmp_path / "in.zarr", volume[1])
    kw = {"block": (6, 320, 320), "halo": (10, 0, 0), "model": model, "tile": None}
    restore_volume(src, tmp_path / "out.zarr", part=(0, 2), **kw)
    monkeypatch.chdir(tmp_path)
    done = restore_volume("in.zarr", tmp_path / "out.zarr", part=(1, 2), **kw)  # relative now
    assert done["done"] == 2 and done["restored_now"] == 1


def test_float_volumes_keep_their_range_block_by_block(tmp_path, volume, model):
    wide = (volume[1].astype(np.float32) * 4 - 300).astype(np.float32)
    src = _zarr(tmp_path / "in.zarr", wide)
    report = restore_volume(
        src, tmp_path / "out.zarr", block=(6, 160, 160), halo=(10, 32, 32), model=model, tile=None
    )
    assert report["value_range"] == [float(wide.min()), float(wide.max())]
    # Every block maps the whole volume's range, as the stack in memory does.
    in_memory = restore(wide, model=model, tile=None)
    blocks = open_volume(tmp_path / "out.zarr")[:]
    restored = sorted({r["index"] for r in report["restored"]})
    assert restored == sorted(r["index"] for r in in_memory.report["restored"])
    assert blocks.max() > 1.0 and blocks.min() < 0.0  # not clipped to [0, 1]
    for r in report["restored"]:
        assert 0 < r["changed"] <= 1
