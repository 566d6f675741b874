"""The generic block runner, with a trivial task (negate each block's core; count the halo's
pixels): the grid, resuming, parts, refusals and outputs moved into place only when complete."""

import json

import numpy as np
import pytest
from emrestore.blocks import (
    BlockRunner,
    Output,
    Task,
    block_grid,
    check_chunked_outputs,
    check_part,
    records_folder,
    run_blocks,
)
from emrestore.io import open_volume, staging_path

zarr = pytest.importorskip("zarr", reason="zarr is not installed")

SHAPE, BLOCK, HALO = (10, 20, 20), (4, 8, 8), (1, 2, 2)
BLOCKS = 3 * 3 * 3


@pytest.fixture
def source(tmp_path):
    data = np.random.default_rng(0).integers(0, 256, SHAPE, dtype=np.uint8)
    zarr.open_array(
        str(tmp_path / "in.zarr"), mode="w", shape=SHAPE, chunks=(5, 10, 10), dtype=np.uint8
    )[:] = data
    return data


def _task(tmp_path, data, calls, *, arguments=None, fail_at=None):
    """Negates each core into ``neg.zarr``, writes the read window's size at the core into
    ``read.zarr``; ``calls`` collects the processed blocks' ids, ``fail_at`` interrupts a run."""

    def process(block):
        if len(calls) == fail_at:
            raise KeyboardInterrupt
        calls.append(block.id)
        window = data[block.read]
        core = 255 - data[block.core]
        return (core, np.full(core.shape, window.size, np.uint32)), {
            "block": block.id,
            "read": list(block.read_end),
        }

    outputs = [
        Output(str(tmp_path / "neg.zarr"), SHAPE, np.dtype(np.uint8), (4, 4, 4)),
        Output(str(tmp_path / "read.zarr"), SHAPE, np.dtype(np.uint32), (4, 4, 4)),
    ]
    return Task(
        name="negate",
        shape=SHAPE,
        block=BLOCK,
        halo=HALO,
        process=process,
        outputs=outputs,
        summary=tmp_path / "summary.json",
        summarize=lambda records: {"ids": [r["block"] for r in records]},
        arguments=arguments or {"op": "negate"},
    )


def _final_names_present(tmp_path):
    return [p for p in ("neg.zarr", "read.zarr", "summary.json") if (tmp_path / p).exists()]


def test_the_grid_covers_the_volume_exactly_once():
    grid = block_grid(SHAPE, BLOCK, HALO)
    cover = np.zeros(SHAPE, int)
    for b in grid:
        cover[b.core] += 1
        assert all(
            0 <= r <= o < e <= re <= n
            for r, o, e, re, n in zip(b.read_origin, b.origin, b.end, b.read_end, SHAPE)
        )
    assert (cover == 1).all() and len(grid) == BLOCKS
    assert [b.id for b in grid[:4]] == ["z0_y0_x0", "z0_y0_x8", "z0_y0_x16", "z0_y8_x0"]  # z-major
    last = grid[-1]
    assert (last.origin, last.end, last.read_origin, last.read_end) == (
        (8, 16, 16),
        (10, 20, 20),
        (7, 14, 14),
        (10, 20, 20),
    )  # smaller at the edge, halo clipped
    assert len({b.id for b in grid}) == BLOCKS


def test_a_run_writes_every_block_then_moves_the_outputs_into_place(tmp_path, source):
    calls = []
    done = run_blocks(_task(tmp_path, source, calls))
    assert len(calls) == BLOCKS and len(set(calls)) == BLOCKS
    assert (done.blocks, done.done, done.this_part, done.done_now) == (BLOCKS,) * 4
    assert done.summary == json.loads((tmp_path / "summary.json").read_text())
    assert done.summary["ids"] == [b.id for b in block_grid(SHAPE, BLOCK, HALO)]  # grid order
    np.testing.assert_array_equal(open_volume(tmp_path / "neg.zarr")[:], 255 - source)
    # The first block's core 4 x 8 x 8 read with its halo 1, 2, 2, clipped at the volume's start.
    assert open_volume(tmp_path / "read.zarr")[0, 0, 0] == 5 * 10 * 10
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "in.zarr",
        "neg.zarr",
        "read.zarr",
        "summary.json",
    ]


def test_a_rerun_skips_the_blocks_with_records(tmp_path, source):
    calls = []
    with pytest.raises(KeyboardInterrupt):
        run_blocks(_task(tmp_path, source, calls, fail_at=10))
    assert len(calls) == 10 and _final_names_present(tmp_path) == []
    assert len(list(records_folder(tmp_path / "summary.json").glob("z*.json"))) == 10
    again = []
    done = run_blocks(_task(tmp_path, source, again))
    assert len(again) == done.done_now == BLOCKS - 10 and not set(again) & set(calls)
    np.testing.assert_array_equal(open_volume(tmp_path / "neg.zarr")[:], 255 - source)


def test_parts_share_the_blocks_and_the_run_without_part_moves_the_outputs(tmp_path, source):
    first, second, last = [], [], []
    done = run_blocks(_task(tmp_path, source, first), part=(0, 2))
    assert (done.blocks, done.done, done.this_part, done.done_now, done.summary) == (
        BLOCKS,
        14,
        14,
        14,
        None,
    )
    assert _final_names_present(tmp_path) == []
    assert (tmp_path / staging_path("neg.zarr")).exists()
    resumed = run_blocks(_task(tmp_path, source, []), part=(0, 2))  # resumes: nothing to do
    assert resumed.done_now == 0
    done = run_blocks(_task(tmp_path, source, second), part=(1, 2))
    assert (done.done, done.this_part, done.done_now) == (BLOCKS, 13, 13)
    assert not set(first) & set(second) and len(first) + len(second) == BLOCKS
    assert _final_names_present(tmp_path) == []
    done = run_blocks(_task(tmp_path, source, last))
    assert last == [] and done.summary is not None
    np.testing.assert_array_equal(open_volume(tmp_path / "neg.zarr")[:], 255 - source)
    assert not (tmp_path / staging_path("neg.zarr")).exists()
    assert not records_folder(tmp_path / "summary.json").exists()


def test_a_run_with_other_arguments_is_refused_unless_it_starts_over(tmp_path, source):
    run_blocks(_task(tmp_path, source, []), part=(0, 3))
    other = {"op": "other"}
    for kw in ({}, {"part": (1, 3)}, {"part": (1, 3), "overwrite": True}):
        with pytest.raises(ValueError, match="unfinished run with other arguments"):
            run_blocks(_task(tmp_path, source, [], arguments=other), **kw)
    calls = []
    run_blocks(_task(tmp_path, source, calls, arguments=other), overwrite=True)  # starts over
    assert len(calls) == BLOCKS and _final_names_present(tmp_path) == [
        "neg.zarr",
        "read.zarr",
        "summary.json",
    ]


def test_the_loop_is_replaceable(tmp_path, source):
    """A scheduler takes ``todo()`` and runs each block with ``run_block``, in any order."""
    calls = []
    runner = BlockRunner(_task(tmp_path, source, calls)).open()
    try:
        for block in reversed(runner.todo()):
            runner.run_block(block)
    finally:
        runner.close()
    assert runner.finish(len(calls)).summary["ids"][0] == "z0_y0_x0"
    np.testing.assert_array_equal(open_volume(tmp_path / "neg.zarr")[:], 255 - source)


def test_parts_and_outputs_are_checked():
    check_part(None)
    check_part((1, 2))
    for part in ((2, 2), (-1, 2), (0, 0)):
        with pytest.raises(ValueError, match="part must be"):
            check_part(part)
    check_chunked_outputs(["a.zarr", "b.h5:x"], None)
    with pytest.raises(ValueError, match="zarr array OUT.zarr or an HDF5 dataset"):
        check_chunked_outputs(["a.tif"], None)
    with pytest.raises(ValueError, match="need zarr outputs"):
        check_chunked_outputs(["a.zarr", "b.h5"], (0, 2))
