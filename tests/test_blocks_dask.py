"""Block-wise restoration on Dask distributed: the same result as the whole stack in memory,
through worker processes that load the model once each, through a worker killed midway and
through an interrupted client; HDF5 outputs and bad schedulers refused before any work."""

import json
import os
import sys

import cloudpickle
import distributed
import numpy as np
import pytest
from emrestore import cli, restore, restore_volume
from emrestore.blockwise import blocks_folder
from emrestore.engines import BlocksFailed
from emrestore.io import open_volume
from emrestore.models import InterpolationConfig, SepConvInterpolator, save_model
from emrestore.phantom import make_phantom
from emrestore.simulate import simulate_ms

zarr = pytest.importorskip("zarr", reason="zarr is not installed")

TINY = InterpolationConfig(kernel_size=5, widths=(8, 16), head_width=8)
# Blocks of four sections over whole sections: the blocks' result is the whole stack's, bit for bit.
KW = {"block": (4, 320, 320), "halo": (1, 0, 0), "tile": None}
MISSING = [2, 5, 6, 9]

# The faults below run on the workers, which cannot import this module: send it by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])


@pytest.fixture(scope="module")
def volume():
    clean = make_phantom((12, 320, 320), seed=12).raw
    degraded = clean.copy()
    for z, mode in {2: "blank", 5: "noise", 6: "constant", 9: "partial"}.items():
        degraded[z] = simulate_ms(clean, z, seed=z, mode=mode).image
    return degraded


@pytest.fixture(scope="module")
def model():
    return SepConvInterpolator(TINY).eval()


@pytest.fixture(scope="module")
def model_folder(model, tmp_path_factory):
    return save_model(model, tmp_path_factory.mktemp("model") / "tiny")


@pytest.fixture(scope="module")
def whole(volume, model):
    return restore(volume, model=model, tile=None)


@pytest.fixture(scope="module")
def client():
    """Two worker processes with a thread each, shared by the tests that join a cluster."""
    with (
        distributed.LocalCluster(
            n_workers=2, processes=True, threads_per_worker=1, dashboard_address=":0"
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        yield client


def _zarr(path, data, chunks=(3, 160, 160)):
    zarr.open_array(path, mode="w", shape=data.shape, chunks=chunks, dtype=data.dtype)[:] = data
    return path


def _same_as_whole(tmp_path, report, whole):
    np.testing.assert_array_equal(open_volume(tmp_path / "out.zarr")[:], whole.stack)
    np.testing.assert_array_equal(open_volume(tmp_path / "out_masks.zarr")[:], whole.masks)
    expected = {r["index"]: (r["sources"], r.get("motion_from")) for r in whole.report["restored"]}
    assert {
        r["index"]: (r["sources"], r.get("motion_from")) for r in report["restored"]
    } == expected
    assert sorted(expected) == MISSING


def _builds():
    from emrestore import engines

    return dict(engines.BUILDS)


def test_workers_restore_as_the_whole_stack_in_memory(
    tmp_path, volume, model_folder, whole, client
):
    src = _zarr(tmp_path / "in.zarr", volume)
    before = client.run(_builds)
    report = restore_volume(src, tmp_path / "out.zarr", model=model_folder, scheduler=client, **KW)
    _same_as_whole(tmp_path, report, whole)
    assert json.loads((tmp_path / "out_report.json").read_text()) == json.loads(json.dumps(report))
    runs = report["block_runs"]
    assert sorted(runs) == ["z0_y0_x0", "z4_y0_x0", "z8_y0_x0"]
    assert {b: r["sections"] for b, r in runs.items()} == {
        "z0_y0_x0": [2],
        "z4_y0_x0": [5, 6],
        "z8_y0_x0": [9],
    }
    workers = set(client.scheduler_info()["workers"])
    assert {r["worker"] for r in runs.values()} <= workers
    assert all(r["attempts"] == 1 and r["seconds"] > 0 for r in runs.values())
    # Each worker built the task (opened the volume, loaded the model) once for its blocks.
    new = {
        w: {run: n for run, n in b.items() if run not in before.get(w, {})}
        for w, b in client.run(_builds).items()
    }
    assert {w for w, b in new.items() if b} == {r["worker"] for r in runs.values()}
    assert all(n == 1 for b in new.values() for n in b.values())
    assert not blocks_folder(tmp_path / "out_report.json").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "in.zarr",
        "out.zarr",
        "out_masks.zarr",
        "out_report.json",
    ]


def _install_fault(block_id, marker, how):
    """On a worker: ``block_id`` dies with its worker (``how`` "exit") the first time any worker
    tries it (``marker`` absent), or raises every time (``how`` "raise")."""
    import emrestore.blockwise as bw

    original = getattr(bw, "_original_restore_block", bw._restore_block)
    bw._original_restore_block = original

    def faulty(block, **kw):
        if block.id == block_id:
            if how == "raise":
                raise ValueError(f"cannot read block {block.id}")
            if not os.path.exists(marker):
                with open(marker, "w"):
                    pass
                os._exit(1)
        return original(block, **kw)

    bw._restore_block = faulty


def _remove_fault():
    import emrestore.blockwise as bw

    if hasattr(bw, "_original_restore_block"):
        bw._restore_block = bw._original_restore_block
        del bw._original_restore_block


def test_a_killed_worker_costs_a_retry_not_the_result(tmp_path, volume, model, whole, client):
    src = _zarr(tmp_path / "in.zarr", volume)
    marker = tmp_path / "died"
    client.run(_install_fault, "z4_y0_x0", str(marker), "exit")
    try:
        # The model in memory only: its weights travel to the workers.
        report = restore_volume(src, tmp_path / "out.zarr", model=model, scheduler=client, **KW)
    finally:
        client.run(_remove_fault)
    assert marker.exists()  # a worker did die
    _same_as_whole(tmp_path, report, whole)
    attempts = {b: r["attempts"] for b, r in report["block_runs"].items()}
    assert attempts == {"z0_y0_x0": 1, "z4_y0_x0": 2, "z8_y0_x0": 1}
    client.wait_for_workers(2, timeout=60)  # the nanny restarts the dead one


def test_a_block_that_keeps_failing_is_named_and_the_rest_kept(tmp_path, volume, model, client):
    src = _zarr(tmp_path / "in.zarr", volume)
    client.run(_install_fault, "z8_y0_x0", "", "raise")
    try:
        with pytest.raises(BlocksFailed, match=r"1 of 3 block\(s\) failed .*z8_y0_x0: ValueError"):
            restore_volume(src, tmp_path / "out.zarr", model=model, scheduler=client, **KW)
    finally:
        client.run(_remove_fault)
    records = blocks_folder(tmp_path / "out_report.json")
    assert sorted(p.name for p in records.glob("z8*")) == ["z8_y0_x0.try1", "z8_y0_x0.try2"] + [
        "z8_y0_x0.try3"
    ]  # the first try and two retries; no record
    assert sorted(p.stem for p in records.glob("*.json")) == ["run", "z0_y0_x0", "z4_y0_x0"]
    assert not (tmp_path / "out.zarr").exists()


def test_an_interrupted_run_resumes_with_the_blocks_left(tmp_path, volume, model, whole, client):
    src = _zarr(tmp_path / "in.zarr", volume)
    kw = dict(KW, block=(2, 320, 320))  # six blocks
    ids = [f"z{z}_y0_x0" for z in range(0, 12, 2)]
    first = []

    def stop_after_two(block_id, record):
        first.append(block_id)
        if len(first) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):  # a local cluster of its own, closed on the way out
        restore_volume(
            src,
            tmp_path / "out.zarr",
            model=model,
            scheduler="local",
            workers=2,
            on_block=stop_after_two,
            **kw,
        )
    records = blocks_folder(tmp_path / "out_report.json")
    done = sorted(p.stem for p in records.glob("z*.json"))
    assert set(first) <= set(done) and 2 <= len(done) < len(ids)
    assert not (tmp_path / "out.zarr").exists()
    again = []
    report = restore_volume(
        src,
        tmp_path / "out.zarr",
        model=model,
        scheduler=client,
        on_block=lambda block_id, record: again.append(block_id),
        **kw,
    )
    print(f"interrupted after {len(done)} of {len(ids)} blocks; the rerun did {len(again)}")
    assert sorted(again) == sorted(set(ids) - set(done))  # only the blocks left
    assert sorted(report["block_runs"]) == sorted(ids)
    _same_as_whole(tmp_path, report, whole)


def test_cli_joins_a_cluster_and_refuses_what_workers_cannot_do(tmp_path, volume, client, capsys):
    src = _zarr(tmp_path / "in.zarr", volume)
    address = client.scheduler.address
    base = ["restore", str(src), "--quiet", "--tile", "0", "--block", "6,320,320"]
    assert cli.main(base + ["-o", str(tmp_path / "out.zarr"), "--scheduler", address]) == 0
    out = capsys.readouterr().out
    assert "restore: 2 block(s) on " in out
    assert "4 section(s) with missing pixels restored of 12, in 2 block(s)" in out
    report = json.loads((tmp_path / "out_report.json").read_text())
    assert sorted({r["index"] for r in report["restored"]}) == MISSING
    for args, message in [
        (["--scheduler", "tcp://nowhere"], "expected 'local' or a Dask scheduler's address"),
        (["--scheduler", "local", "--workers", "0"], "--workers: expected an integer >= 1"),
    ]:
        with pytest.raises(SystemExit) as exit_info:
            cli.main(base + ["-o", str(tmp_path / "o.zarr")] + args)
        assert exit_info.value.code == 2 and message in capsys.readouterr().err
    with pytest.raises(SystemExit, match="--workers N sizes a local cluster"):
        cli.main(base + ["-o", str(tmp_path / "o.zarr"), "--workers", "2"])
    with pytest.raises(SystemExit, match="needs zarr outputs: HDF5 files take one writer"):
        cli.main(base + ["-o", str(tmp_path / "o.h5"), "--scheduler", address])
    with pytest.raises(ValueError, match="workers sizes a local cluster"):
        restore_volume(src, tmp_path / "o.zarr", scheduler=address, workers=2)
    with pytest.raises(ValueError, match="scheduler must be 'local'"):
        restore_volume(src, tmp_path / "o.zarr", scheduler="nowhere")
    assert not any(p.name.startswith(("o.", ".o.", "o_")) for p in tmp_path.iterdir())
