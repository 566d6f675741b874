"""Lazy volumes: blocks read from every format without loading the rest; clear errors."""

import numpy as np
import pytest
import tifffile
from emrestore import io, restore_volume
from emrestore.io import ChunkedOutput, open_volume, split_path

h5py = pytest.importorskip("h5py", reason="h5py is not installed")
zarr = pytest.importorskip("zarr", reason="zarr is not installed")


@pytest.fixture
def stack():
    return np.random.default_rng(1).integers(0, 65535, (6, 40, 48), dtype=np.uint16)


def _write_every_format(tmp_path, stack):
    zarr.open_array(
        tmp_path / "a.zarr", mode="w", shape=stack.shape, chunks=(2, 16, 16), dtype=stack.dtype
    )[:] = stack
    zarr.open_group(tmp_path / "g.zarr", mode="w")
    zarr.open_array(tmp_path / "g.zarr" / "raw", mode="w", shape=stack.shape, dtype=stack.dtype)[
        :
    ] = stack
    zarr.open_array(tmp_path / "g.zarr" / "thumbnail", mode="w", shape=(8, 8), dtype=stack.dtype)
    with h5py.File(tmp_path / "one.h5", "w") as f:
        f.create_dataset("deep/raw", data=stack, chunks=(1, 20, 24))
        f.create_dataset("scale", data=np.ones(3))
    with h5py.File(tmp_path / "two.h5", "w") as f:
        f["raw"], f["labels"] = stack, stack
    np.save(tmp_path / "s.npy", stack)
    tifffile.imwrite(tmp_path / "s.tif", stack)
    io.write_stack(tmp_path / "folder", stack)
    return [
        "a.zarr",
        "g.zarr",
        "g.zarr/raw",
        "one.h5",
        "two.h5:raw",
        "two.h5:/labels",
        "s.npy",
        "s.tif",
        "folder",
    ]


def test_every_format_reads_blocks(tmp_path, stack):
    for name in _write_every_format(tmp_path, stack):
        volume = open_volume(tmp_path / name)
        assert volume.shape == stack.shape and volume.dtype == stack.dtype, name
        np.testing.assert_array_equal(volume[1:4, 5:30, 7:41], stack[1:4, 5:30, 7:41], err_msg=name)
        np.testing.assert_array_equal(volume[2], stack[2], err_msg=name)
        np.testing.assert_array_equal(io.read_stack(tmp_path / name), stack, err_msg=name)


def test_a_folder_reads_only_the_sections_asked_for(tmp_path, stack):
    io.write_stack(tmp_path / "folder", stack)
    (tmp_path / "folder" / "0005.png").write_bytes(b"not a png")  # damaged, but outside the block
    np.testing.assert_array_equal(open_volume(tmp_path / "folder")[1:3], stack[1:3])
    with pytest.raises(ValueError, match="0005.png"):
        open_volume(tmp_path / "folder")[4:6]


def test_volume_errors_name_what_was_expected(tmp_path, stack):
    _write_every_format(tmp_path, stack)
    with pytest.raises(ValueError, match=r"two\.h5: name the dataset .*labels \(6, 40, 48\), raw"):
        open_volume(tmp_path / "two.h5")
    with pytest.raises(ValueError, match="no dataset 'nothing'"):
        open_volume(f"{tmp_path / 'two.h5'}:nothing")
    with pytest.raises(FileNotFoundError, match="no such stack"):
        open_volume(tmp_path / "none.zarr")
    zarr.open_array(tmp_path / "4d.zarr", mode="w", shape=(2, 2, 8, 8), dtype="uint8")
    with pytest.raises(ValueError, match=r"expected a grayscale stack \[Z, H, W\].*\(2, 2, 8, 8\)"):
        open_volume(tmp_path / "4d.zarr")
    zarr.open_array(tmp_path / "labels.zarr", mode="w", shape=(3, 8, 8), dtype="uint64")
    assert (
        open_volume(tmp_path / "labels.zarr").dtype == np.uint64
    )  # label volumes read as they are...
    with pytest.raises(
        TypeError, match="uint8, uint16, float32 or float64 sections in .*got uint64"
    ):
        restore_volume(
            tmp_path / "labels.zarr", tmp_path / "out.zarr"
        )  # ...but are no images to restore
    assert not (tmp_path / "out.zarr").exists()
    (tmp_path / "a.zarr" / "zarr.json").write_text("{ damaged")
    with pytest.raises(ValueError, match="cannot read zarr stack"):
        open_volume(tmp_path / "a.zarr")
    (tmp_path / "bad.h5").write_bytes(b"not hdf5")
    with pytest.raises(ValueError, match="cannot read HDF5 file"):
        open_volume(tmp_path / "bad.h5")


def test_chunked_output_reopens_only_a_matching_array(tmp_path):
    out = ChunkedOutput(tmp_path / "o.zarr", (4, 16, 16), np.uint8, (2, 16, 16))
    out.write((2, 0, 0), np.full((2, 16, 16), 7, np.uint8))
    again = ChunkedOutput(tmp_path / "o.zarr", (4, 16, 16), np.uint8, (2, 16, 16))  # a resumed run
    assert again.array[3, 0, 0] == 7 and again.array[0, 0, 0] == 0
    with pytest.raises(
        ValueError, match=r"holds an array \(4, 16, 16\) uint8 .*writes \(5, 16, 16\)"
    ):
        ChunkedOutput(tmp_path / "o.zarr", (5, 16, 16), np.uint8, (2, 16, 16))
    with pytest.raises(ValueError, match="zarr .* or HDF5"):
        ChunkedOutput(tmp_path / "o.tif", (4, 16, 16), np.uint8, (2, 16, 16))
    assert split_path("x/v.h5:/a/b") == (split_path("x/v.h5")[0], "a/b")
