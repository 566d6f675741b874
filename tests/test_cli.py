import json

import pytest
from emrestore import cli, ops


def test_info_prints_build_info(capsys):
    assert cli.main(["info"]) == 0
    assert json.loads(capsys.readouterr().out) == ops.build_info()


def _phantom_tif(path):
    import tifffile
    from emrestore.phantom import make_phantom

    stack = make_phantom((12, 96, 128), seed=0).raw
    tifffile.imwrite(path, stack)
    return stack


def test_simulate_writes_stack_masks_and_manifest(tmp_path, capsys):
    import hashlib

    import numpy as np
    from emrestore import io

    clean = _phantom_tif(tmp_path / "clean.tif")
    digest = hashlib.sha256((tmp_path / "clean.tif").read_bytes()).hexdigest()
    rates = ["--ms", "0.2", "--sff", "0.2", "--sp", "0.2", "--seed", "4", "--quiet"]
    args = [
        "simulate",
        str(tmp_path / "clean.tif"),
        str(tmp_path / "deg.tif"),
        *rates,
        "--flows",
        str(tmp_path / "flows.npz"),
    ]
    assert cli.main(args) == 0
    assert "-> " in capsys.readouterr().out
    assert hashlib.sha256((tmp_path / "clean.tif").read_bytes()).hexdigest() == digest
    degraded, masks = io.read_stack(tmp_path / "deg.tif"), io.read_stack(tmp_path / "deg_masks.tif")
    manifest = json.loads((tmp_path / "deg.json").read_text())
    listed = {s["index"] for s in manifest["sections"]}
    assert all(n in (2, 3) for n in manifest["counts"].values())  # 0.2 x 12 sections, rounded
    changed = {z for z in range(len(clean)) if (degraded[z] != clean[z]).any()}
    assert changed == listed == {z for z in range(len(clean)) if masks[z].any()}
    flows = np.load(tmp_path / "flows.npz")
    sff = {
        s["index"] for s in manifest["sections"] if any(a["kind"] == "sff" for a in s["artifacts"])
    }
    assert {int(k.split("_")[-1]) for k in flows.files} == sff

    # Deterministic: the same seed gives the same stack; existing outputs are not replaced silently.
    again = tmp_path / "again.tif"
    assert cli.main(["simulate", str(tmp_path / "clean.tif"), str(again), *rates]) == 0
    np.testing.assert_array_equal(io.read_stack(again), degraded)
    with pytest.raises(SystemExit, match="--overwrite"):
        cli.main(args)
    with pytest.raises(SystemExit, match="overwrite the input"):
        cli.main(
            ["simulate", str(tmp_path / "clean.tif"), str(tmp_path / "clean.tif"), "--overwrite"]
        )


def test_simulate_folder_keeps_section_names(tmp_path):
    import numpy as np
    from emrestore import io

    stack = np.random.default_rng(0).integers(0, 255, (6, 40, 40), dtype=np.uint8)
    names = [f"z{i:03d}" for i in range(6)]
    io.write_stack(tmp_path / "in", stack, names=names)
    assert (
        cli.main(
            ["simulate", str(tmp_path / "in"), str(tmp_path / "out"), "--ms", "0.5", "--quiet"]
        )
        == 0
    )
    assert [p.name for p in io.section_files(tmp_path / "out")] == [n + ".png" for n in names]
    assert io.read_stack(tmp_path / "out_masks").shape == stack.shape
    assert json.loads((tmp_path / "out.json").read_text())["section_names"] == names


def test_a_missing_package_is_a_message_not_a_traceback(tmp_path, monkeypatch):
    import sys

    import numpy as np
    from emrestore import io

    io.write_stack(tmp_path / "in.tif", np.zeros((3, 16, 16), np.uint8))
    monkeypatch.setitem(sys.modules, "zarr", None)  # as on an image that lacks zarr
    with pytest.raises(SystemExit, match="the package 'zarr' is needed .*pip install zarr"):
        cli.main(["detect", str(tmp_path / "in.tif"), "-o", str(tmp_path / "m.zarr"), "--quiet"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.tif"]
