"""restore with masks from a file (``restore --masks-from``, ``masks_from=``) in place of
detection: the same result as with those masks given in memory, in memory and block by block, and
masks that do not fit the stack refused with a message before anything is written."""

import json

import numpy as np
import pytest
import tifffile
from emrestore import cli, io, restore, restore_volume
from emrestore.conventions import BITS
from emrestore.phantom import make_phantom

SHAPE = (12, 96, 128)


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    """A phantom degraded by the simulator (missing sections, folds and precipitates) and the
    simulator's own masks."""
    folder = tmp_path_factory.mktemp("simulated")
    tifffile.imwrite(folder / "clean.tif", make_phantom(SHAPE, seed=0).raw)
    rates = ["--ms", "0.2", "--sff", "0.2", "--sp", "0.2", "--seed", "4", "--quiet"]
    assert cli.main(["simulate", str(folder / "clean.tif"), str(folder / "deg.tif"), *rates]) == 0
    return folder / "deg.tif", folder / "deg_masks.tif"


def _restore(src, out, masks_from, *more) -> int:
    args = ["restore", str(src), "-o", str(out), "--masks-from", str(masks_from)]
    return cli.main(args + [*map(str, more), "--tile", "0", "--quiet"])


def _report(out) -> dict:
    return json.loads(io.beside(out, "_report", ".json").read_text())


def _sections_with(masks, name: str) -> list[int]:
    return [z for z in range(len(masks)) if (masks[z] & BITS[name]).any()]


def test_the_simulators_masks_from_a_file_restore_as_given_in_memory(simulated, tmp_path):
    deg, masks = simulated
    stack, given = io.read_stack(deg), io.read_stack(masks)
    assert {1, 2, 4} <= set(np.unique(given).tolist())  # every artifact bit is there
    assert _restore(deg, tmp_path / "out.tif", masks) == 0

    expected = restore(stack, masks=given, tile=None)
    restored = io.read_stack(tmp_path / "out.tif")
    np.testing.assert_array_equal(restored, expected.stack)
    np.testing.assert_array_equal(io.read_stack(tmp_path / "out_masks.tif"), given)
    outside = (given & BITS["ms"]) == 0
    assert restored[outside].tobytes() == stack[outside].tobytes()
    assert not np.array_equal(restored, stack)

    report = _report(tmp_path / "out.tif")
    assert report["masks"] == {"source": "file", "path": str(masks)}
    assert "detection" not in report and expected.report["masks"] == {"source": "given"}
    assert [r["index"] for r in report["restored"]] == _sections_with(given, "ms")
    folds_and_precipitates = sorted(set(_sections_with(given, "sff") + _sections_with(given, "sp")))
    assert [r["index"] for r in report["left_untouched"]] == folds_and_precipitates

    # Any integer dtype holds the bits: a uint16 file, int32 in memory.
    tifffile.imwrite(tmp_path / "masks16.tif", given.astype(np.uint16))
    assert _restore(deg, tmp_path / "out16.tif", tmp_path / "masks16.tif") == 0
    np.testing.assert_array_equal(io.read_stack(tmp_path / "out16.tif"), expected.stack)
    in_memory = restore(stack, masks=given.astype(np.int32), tile=None)
    np.testing.assert_array_equal(in_memory.stack, expected.stack)


def test_masks_that_do_not_fit_are_refused_before_anything_is_written(simulated, tmp_path):
    deg, masks = simulated
    given = io.read_stack(masks)
    bad_bits = given.copy()
    bad_bits[0, 0, 0], bad_bits[3, 5, 7] = 8, 255
    tifffile.imwrite(tmp_path / "narrow.tif", given[:, :, :-1])
    tifffile.imwrite(tmp_path / "float.tif", given.astype(np.float32))
    tifffile.imwrite(tmp_path / "bits.tif", bad_bits)
    (tmp_path / "corrupt.tif").write_bytes(b"no tiff at all")
    cases = {
        "narrow.tif": r"masks must be uint8 \[Z, H, W\] of the stack's shape \(12, 96, 128\); "
        r".*narrow\.tif has shape \(12, 96, 127\)$",
        "float.tif": r"masks must be uint8 \(or another integer type\).*float\.tif holds float32$",
        "bits.tif": r"masks may hold only the bits ms 1, sff 2, sp 4 \(values 0 to 7\); "
        r".*bits\.tif also holds 8, 255$",
        "missing.tif": r"no such stack: .*missing\.tif",
        "corrupt.tif": r"cannot read TIFF stack .*corrupt\.tif",
    }
    files = sorted(tmp_path.iterdir())
    for name, message in cases.items():
        with pytest.raises(SystemExit, match=f"^emrestore restore: {message}"):
            _restore(deg, tmp_path / "out.tif", tmp_path / name)
        assert sorted(tmp_path.iterdir()) == files, name  # no output, not even in part

    # The masks written would replace the masks read: refused, even with --overwrite.
    tifffile.imwrite(tmp_path / "out_masks.tif", given)
    with pytest.raises(SystemExit, match="out_masks.tif would replace the masks read from"):
        _restore(deg, tmp_path / "out.tif", tmp_path / "out_masks.tif", "--overwrite")
    assert not (tmp_path / "out.tif").exists()


def test_masks_replace_detection_and_its_options(simulated, tmp_path):
    deg, masks = simulated
    stack, given = io.read_stack(deg), io.read_stack(masks)
    with pytest.raises(ValueError, match="masks replace detection; detect_options"):
        restore(stack, masks=given, detect_options={"progress": False})
    with pytest.raises(ValueError, match="masks_from replaces detection; detect_options"):
        restore_volume(
            deg, tmp_path / "out.zarr", masks_from=masks, detect_options={"progress": False}
        )
    assert not list(tmp_path.iterdir())


def test_block_by_block_reads_each_blocks_masks_and_restores_as_in_memory(
    simulated, tmp_path, monkeypatch
):
    pytest.importorskip("zarr", reason="zarr is not installed")
    from emrestore import restoration
    from emrestore.io.volume import Volume

    deg, masks = simulated
    stack, given = io.read_stack(deg), io.read_stack(masks)
    io.write_stack(tmp_path / "in.zarr", stack)
    io.write_stack(tmp_path / "masks.zarr", given)
    assert _restore(deg, tmp_path / "whole.tif", masks) == 0

    # Every read of the mask volume is recorded; its check reads a section at a time.
    monkeypatch.setattr(restoration, "SCAN_BYTES", SHAPE[1] * SHAPE[2])
    reads, read = [], Volume.__getitem__

    def recorded(self, index):
        block = read(self, index)
        if "masks.zarr" in self.source:
            reads.append(block.shape)
        return block

    monkeypatch.setattr(Volume, "__getitem__", recorded)
    block = f"4,{SHAPE[1]},{SHAPE[2]}"
    blockwise = ["--block", block, "--halo", "1,0,0"]
    assert (
        _restore(tmp_path / "in.zarr", tmp_path / "out.zarr", tmp_path / "masks.zarr", *blockwise)
        == 0
    )
    monkeypatch.undo()

    whole = io.read_stack(tmp_path / "whole.tif")
    np.testing.assert_array_equal(io.read_stack(tmp_path / "out.zarr"), whole)
    np.testing.assert_array_equal(io.read_stack(tmp_path / "out_masks.zarr"), given)
    assert reads and max(np.prod(s) for s in reads) < given.size  # never the whole volume
    report = _report(tmp_path / "out.zarr")
    assert report["masks"] == {"source": "file", "path": str(tmp_path / "masks.zarr")}
    assert "detection" not in report and report["blocks"] == 3
    in_memory = _report(tmp_path / "whole.tif")["restored"]
    assert [(r["index"], r["sources"]) for r in report["restored"]] == [
        (r["index"], r["sources"]) for r in in_memory
    ]


def test_masks_without_missing_sections_leave_the_stack_as_it_is(simulated, tmp_path):
    deg, masks = simulated
    stack, given = io.read_stack(deg), io.read_stack(masks)
    tifffile.imwrite(tmp_path / "no_ms.tif", given & ~np.uint8(BITS["ms"]))
    assert _restore(deg, tmp_path / "out.tif", tmp_path / "no_ms.tif") == 0
    restored = io.read_stack(tmp_path / "out.tif")
    assert restored.dtype == stack.dtype and restored.tobytes() == stack.tobytes()
    report = _report(tmp_path / "out.tif")
    assert report["restored"] == [] and report["left_untouched"]
    assert report["masks"] == {"source": "file", "path": str(tmp_path / "no_ms.tif")}
