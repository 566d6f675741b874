"""Stack I/O: round trips for every format, natural section order, clear errors, atomic writes."""

import numpy as np
import pytest
import tifffile
from emrestore import io


@pytest.fixture
def stack():
    return np.random.default_rng(0).integers(0, 256, (5, 24, 32), dtype=np.uint8)


@pytest.mark.parametrize(
    "name", ["s.tif", "s.tiff", "s.npy", "folder", "s.zarr", "s.h5", "s.h5:raw"]
)
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_round_trip(tmp_path, stack, name, dtype):
    data = stack.astype(dtype) * (3 if dtype == np.uint16 else 1)
    fmt = "tif" if dtype == np.float32 else "png"
    io.write_stack(tmp_path / name, data, section_format=fmt)
    back = io.read_stack(tmp_path / name)
    assert back.dtype == data.dtype
    np.testing.assert_array_equal(back, data)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        name.split(":")[0]
    ]  # no staging left behind


def test_folder_sections_are_read_in_natural_order(tmp_path, stack):
    names = [f"sec{z * 5}" for z in range(5)]  # sec0 sec5 sec10 sec15 sec20: 10 sorts after 5
    io.write_stack(tmp_path / "f", stack, names=names)
    np.testing.assert_array_equal(io.read_stack(tmp_path / "f"), stack)
    assert [p.stem for p in io.section_files(tmp_path / "f")] == names


def test_a_single_image_is_a_stack_of_one(tmp_path, stack):
    tifffile.imwrite(tmp_path / "one.tif", stack[0])
    assert io.read_stack(tmp_path / "one.tif").shape == (1, 24, 32)


def test_read_errors_name_the_problem(tmp_path, stack):
    with pytest.raises(FileNotFoundError, match="no such stack"):
        io.read_stack(tmp_path / "missing.tif")
    (tmp_path / "corrupt.tif").write_bytes(b"II*\x00 this is not a tiff")
    with pytest.raises(ValueError, match="cannot read"):
        io.read_stack(tmp_path / "corrupt.tif")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no PNG or TIFF sections"):
        io.read_stack(tmp_path / "empty")
    io.write_stack(tmp_path / "mixed", stack)
    tifffile.imwrite(tmp_path / "mixed" / "9999.tif", np.zeros((10, 10), np.uint8))
    with pytest.raises(ValueError, match=r"9999.tif is \(10, 10\)"):
        io.read_stack(tmp_path / "mixed")
    tifffile.imwrite(tmp_path / "rgb.tif", np.zeros((2, 8, 8, 3), np.uint8))
    with pytest.raises(ValueError, match=r"grayscale stack \[Z, H, W\]"):
        io.read_stack(tmp_path / "rgb.tif")
    (tmp_path / "x.zip").write_bytes(b"")
    with pytest.raises(ValueError, match="unsupported stack format"):
        io.read_stack(tmp_path / "x.zip")


def test_write_refuses_to_replace_unless_asked(tmp_path, stack):
    io.write_stack(tmp_path / "s.tif", stack)
    with pytest.raises(FileExistsError, match="overwrite"):
        io.write_stack(tmp_path / "s.tif", stack[:2])
    io.write_stack(tmp_path / "s.tif", stack[:2], overwrite=True)
    assert io.read_stack(tmp_path / "s.tif").shape[0] == 2
    io.write_stack(tmp_path / "f", stack)
    io.write_stack(tmp_path / "f", stack[:3], overwrite=True)
    assert io.read_stack(tmp_path / "f").shape[0] == 3


def test_failed_write_leaves_nothing_behind(tmp_path, stack, monkeypatch):
    import cv2

    calls = []

    def failing_imwrite(name, image):
        calls.append(name)
        return len(calls) < 3  # the third section fails

    monkeypatch.setattr(cv2, "imwrite", failing_imwrite)
    with pytest.raises(OSError, match="could not write"):
        io.write_stack(tmp_path / "f", stack)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="PNG sections hold uint8 or uint16"):
        io.write_stack(tmp_path / "g", stack.astype(np.float32))
    assert list(tmp_path.iterdir()) == []
