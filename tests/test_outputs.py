"""Output safety: an output replaces only what emrestore itself writes, never the input, a
folder's other files, another dataset of an HDF5 file or another array of a zarr group; unknown
output formats are refused."""

import hashlib

import numpy as np
import pytest
from emrestore import cli, io

h5py = pytest.importorskip("h5py", reason="h5py is not installed")
zarr = pytest.importorskip("zarr", reason="zarr is not installed")


@pytest.fixture
def stack():
    return np.random.default_rng(2).integers(0, 255, (4, 24, 32), dtype=np.uint8)


def _digest(folder):
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_overwrite_never_replaces_a_folder_with_other_files(tmp_path, stack):
    out = tmp_path / "results"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    io.write_stack(out / "keep.tif", stack)
    before = _digest(tmp_path)
    with pytest.raises(ValueError, match=r"did not write \(keep.tif, notes.txt\)"):
        io.write_stack(out, stack, overwrite=True)
    assert _digest(tmp_path) == before


def test_overwrite_replaces_a_folder_of_its_own_sections(tmp_path, stack):
    io.write_stack(tmp_path / "f", stack)
    io.write_stack(tmp_path / "f", stack[:2], overwrite=True)
    assert sorted(p.name for p in (tmp_path / "f").iterdir()) == ["0000.png", "0001.png"]
    names = ["a", "b", "c", "d"]
    io.write_stack(tmp_path / "n", stack, names=names)
    io.write_stack(tmp_path / "n", stack, names=names, overwrite=True)
    np.testing.assert_array_equal(io.read_stack(tmp_path / "n"), stack)


def test_a_file_output_never_replaces_a_folder(tmp_path, stack):
    (tmp_path / "x.tif").mkdir()
    (tmp_path / "x.tif" / "inside.txt").write_text("mine")
    with pytest.raises(ValueError, match="is a folder"):
        io.write_stack(tmp_path / "x.tif", stack, overwrite=True)
    assert (tmp_path / "x.tif" / "inside.txt").read_text() == "mine"


def test_hdf5_overwrite_keeps_the_other_datasets(tmp_path, stack):
    path = tmp_path / "v.h5"
    with h5py.File(path, "w") as f:
        f["raw"] = stack
        f["labels"] = stack + 1
    io.write_stack(f"{path}:new", stack[::-1])  # a new dataset: nothing is replaced
    with pytest.raises(FileExistsError, match="overwrite"):
        io.write_stack(f"{path}:new", stack)
    io.write_stack(f"{path}:new", stack[:2], overwrite=True)
    with h5py.File(path, "r") as f:
        assert sorted(f) == ["labels", "new", "raw"]
        np.testing.assert_array_equal(f["raw"][:], stack)
        np.testing.assert_array_equal(f["labels"][:], stack + 1)
        np.testing.assert_array_equal(f["new"][:], stack[:2])


def test_zarr_groups_are_not_replaced_by_an_array(tmp_path, stack):
    group = zarr.open_group(tmp_path / "g.zarr", mode="w")
    group.create_array("raw", shape=stack.shape, dtype=stack.dtype)[:] = stack
    with pytest.raises(ValueError, match=r"zarr group \(raw\).*g.zarr/NAME"):
        io.write_stack(tmp_path / "g.zarr", stack, overwrite=True)
    io.write_stack(tmp_path / "g.zarr" / "restored", stack[::-1])
    np.testing.assert_array_equal(io.read_stack(tmp_path / "g.zarr" / "raw"), stack)
    np.testing.assert_array_equal(io.read_stack(tmp_path / "g.zarr" / "restored"), stack[::-1])


@pytest.mark.parametrize("name", ["out.jpg", "out.xyz", "out.tif.bak"])
def test_unknown_output_formats_are_refused(tmp_path, stack, name):
    with pytest.raises(ValueError, match=r"unknown format .*writes a multi-page TIFF"):
        io.write_stack(tmp_path / name, stack)
    assert list(tmp_path.iterdir()) == []


def test_check_outputs_refuses_a_folder_holding_the_input(tmp_path, stack):
    data = tmp_path / "data"
    io.write_stack(data / "stack.tif", stack)
    with pytest.raises(ValueError, match="holds the input"):
        io.check_outputs(data / "stack.tif", [data], overwrite=True)


def test_cli_overwrite_into_the_input_folder_loses_nothing(tmp_path, stack):
    data = tmp_path / "data"
    io.write_stack(data / "stack.tif", stack)
    (data / "notes.txt").write_text("mine")
    before = _digest(tmp_path)
    for command in (
        ["restore", str(data / "stack.tif"), "-o", str(data)],
        ["detect", str(data / "stack.tif"), "-o", str(data)],
        ["simulate", str(data / "stack.tif"), str(data)],
    ):
        with pytest.raises(SystemExit, match="holds the input"):
            cli.main([*command, "--overwrite", "--quiet"])
        assert _digest(tmp_path) == before, command


@pytest.mark.parametrize("name", ["out.jpg", "out.xyz", "outnoext"])
def test_cli_refuses_outputs_it_cannot_name(tmp_path, stack, name):
    io.write_stack(tmp_path / "in.tif", stack)
    with pytest.raises(SystemExit, match="unknown format|no extension"):
        cli.main(["detect", str(tmp_path / "in.tif"), "-o", str(tmp_path / name), "--quiet"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.tif"]


def test_cli_folder_outputs_by_a_trailing_separator_or_an_input_folder(tmp_path, stack):
    io.write_stack(tmp_path / "in.tif", stack)
    assert (
        cli.main(["detect", str(tmp_path / "in.tif"), "-o", f"{tmp_path / 'masks'}/", "--quiet"])
        == 0
    )
    assert io.read_stack(tmp_path / "masks").shape == stack.shape
    names = [f"s{i}" for i in range(len(stack))]
    io.write_stack(tmp_path / "sections", stack, names=names)
    for _ in range(2):  # the second run replaces the folder's own sections
        assert (
            cli.main(
                [
                    "detect",
                    str(tmp_path / "sections"),
                    "-o",
                    str(tmp_path / "m2"),
                    "--overwrite",
                    "--quiet",
                ]
            )
            == 0
        )
    assert [p.stem for p in io.section_files(tmp_path / "m2")] == names


def test_a_rerun_with_overwrite_replaces_its_own_outputs(tmp_path, stack):
    # The reports and manifests (.json) are files emrestore writes: --overwrite replaces them.
    volume = np.concatenate([stack] * 2)
    io.write_stack(tmp_path / "in.tif", volume)
    for command in (
        ["restore", str(tmp_path / "in.tif"), "-o", str(tmp_path / "r.tif"), "--tile", "0"],
        ["restore", str(tmp_path / "in.tif"), "-o", str(tmp_path / "z.zarr"), "--tile", "0"],
        ["simulate", str(tmp_path / "in.tif"), str(tmp_path / "s.tif"), "--ms", "0.3"],
        [
            "detect",
            str(tmp_path / "in.tif"),
            "-o",
            str(tmp_path / "m.tif"),
            "--report",
            str(tmp_path / "d.json"),
        ],
    ):
        assert cli.main([*command, "--quiet"]) == 0
        with pytest.raises(SystemExit, match="--overwrite"):
            cli.main([*command, "--quiet"])
        assert cli.main([*command, "--quiet", "--overwrite"]) == 0, command
    (tmp_path / "x.json").mkdir()  # a folder where a report goes is not replaced
    with pytest.raises(SystemExit, match="x.json is a folder"):
        cli.main(
            [
                "detect",
                str(tmp_path / "in.tif"),
                "-o",
                str(tmp_path / "m.tif"),
                "--report",
                str(tmp_path / "x.json"),
                "--overwrite",
                "--quiet",
            ]
        )


def test_a_failed_dataset_write_leaves_the_old_one(tmp_path, stack):
    from emrestore.io.chunked import replace_dataset

    path = tmp_path / "v.h5"
    with h5py.File(path, "w") as f:
        f["restored"], f["raw"] = stack, stack + 1

    def failing(handle, name):
        handle.create_dataset(name, data=stack[:1])
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        replace_dataset(path, "restored", failing)
    with h5py.File(path, "r") as f:
        assert sorted(f) == ["raw", "restored"]
        np.testing.assert_array_equal(f["restored"][:], stack)
