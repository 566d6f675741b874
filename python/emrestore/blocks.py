"""A block runner for volumes larger than memory, after daisy's split of Block and Task.

A ``Block`` is where to work: its write window (the core, which the blocks tile once) and its read
window (the core plus a halo, clipped to the volume). A ``Task`` is what to do: a ``process``
function from a block to the arrays written at its core and a JSON record, the chunked outputs
those arrays go to, and where the records go. ``BlockRunner`` does the rest, the same for any task:

- the records folder: a block with a record is done, and ``run.json`` in it holds the run's
  arguments, so that a rerun with the same ones resumes and one with others is refused;
- the outputs, written under staging names and moved to their own names only once every block is
  done, so that an output under its final name is always complete;
- ``part=(i, n)``: every n-th block from the i-th, so that n jobs share a volume;
- each block's data written before its record, so that a record vouches for the data.

The loop over blocks is ``BlockRunner.run``, a few lines: a scheduler (Dask, a cluster's array
jobs) replaces it by one that hands each block of ``todo()`` to ``run_block``, which processes and
commits it alone; ``emrestore.engines`` does so on Dask distributed, where each worker rebuilds the
task and opens the outputs (``open_outputs``) while the run's own runner claims the records folder
(``open``) and moves the outputs into place (``finish``).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import product
from pathlib import Path

import numpy as np

from .io import ChunkedOutput, path_format, publish, remove, split_path, staging_path, write_json

AXES = "zyx"  # blocks are 3-D: sections, rows, columns


@dataclass(frozen=True)
class Block:
    """One block: ``origin``/``end`` the write window (its core), ``read_origin``/``read_end``
    the read window (core plus halo, clipped to the volume); ends exclusive."""

    id: str
    origin: tuple[int, int, int]
    end: tuple[int, int, int]
    read_origin: tuple[int, int, int]
    read_end: tuple[int, int, int]

    @property
    def core(self) -> tuple[slice, ...]:
        """The write window as slices of the volume."""
        return tuple(slice(a, b) for a, b in zip(self.origin, self.end))

    @property
    def read(self) -> tuple[slice, ...]:
        """The read window as slices of the volume."""
        return tuple(slice(a, b) for a, b in zip(self.read_origin, self.read_end))


def block_id(origin) -> str:
    """``z0_y0_x0``: names a block's record file, unique within a grid."""
    return "_".join(f"{axis}{o}" for axis, o in zip(AXES, origin))


def block_grid(shape, block, halo=(0, 0, 0)) -> list[Block]:
    """Cuts ``shape`` into blocks of ``block`` (smaller at the far edges) read with ``halo``;
    z-major order, so that records and windows come out sorted as the volume is."""
    shape, block, halo = (tuple(int(v) for v in t) for t in (shape, block, halo))
    blocks = []
    for origin in product(*(range(0, n, b) for n, b in zip(shape, block))):
        end = tuple(min(o + b, n) for o, b, n in zip(origin, block, shape))
        read_origin = tuple(max(0, o - h) for o, h in zip(origin, halo))
        read_end = tuple(min(n, e + h) for e, h, n in zip(end, halo, shape))
        blocks.append(Block(block_id(origin), origin, end, read_origin, read_end))
    return blocks


def check_part(part) -> None:
    """Refuses a ``part`` that is not (i, n) with 0 <= i < n."""
    if part is not None:
        i, n = part
        if not (n >= 1 and 0 <= i < n):
            raise ValueError(f"part must be (i, n) with 0 <= i < n; got {part}")


def check_chunked_outputs(paths, part) -> None:
    """Refuses outputs a runner cannot stage: only zarr arrays and HDF5 datasets are written a
    block at a time, and only zarr takes several jobs at once."""
    for path in paths:
        fmt = path_format(path)
        named_zarr = fmt == "zarr" and split_path(path)[0].name.lower().endswith(".zarr")
        if not (fmt == "hdf5" or named_zarr):
            raise ValueError(
                f"block-wise output must be a zarr array OUT.zarr or an HDF5 dataset "
                f"OUT.h5[:NAME]; got {path}"
            )
    if part is not None and "hdf5" in (path_format(p) for p in paths):
        raise ValueError(
            "parts (several jobs writing at once) need zarr outputs: HDF5 files take one writer"
        )


def records_folder(summary) -> Path:
    """The folder of finished blocks' records beside the summary file ``summary``."""
    summary = Path(summary)
    return summary.with_name(f".{summary.name}.blocks")


@dataclass(frozen=True)
class Output:
    """A chunked output (zarr ``OUT.zarr`` or HDF5 ``OUT.h5[:NAME]``) under its final name; its
    chunks should tile the blocks, so that no two blocks write one chunk."""

    path: str
    shape: tuple[int, ...]
    dtype: np.dtype
    chunks: tuple[int, ...]


@dataclass
class Task:
    """What to do to each block of ``shape`` cut into ``block`` read with ``halo``.

    ``process(block)`` returns one array per output, written at the block's origin, and the
    block's JSON record. ``arguments`` (JSON) identify the run: a rerun with others is refused.
    ``summarize(records)``, with every record in grid order, gives the JSON written to ``summary``
    (and returned) once every block is done; the records lie beside it (``records_folder``).
    """

    name: str
    shape: tuple[int, int, int]
    block: tuple[int, int, int]
    halo: tuple[int, int, int]
    process: Callable[[Block], tuple[Sequence[np.ndarray], dict]]
    outputs: Sequence[Output]
    summary: Path
    summarize: Callable[[list[dict]], dict]
    arguments: dict

    @property
    def records(self) -> Path:
        return records_folder(self.summary)

    def blocks(self) -> list[Block]:
        return block_grid(self.shape, self.block, self.halo)

    def record_path(self, block: Block) -> Path:
        return self.records / f"{block.id}.json"

    def is_done(self, block: Block) -> bool:
        return self.record_path(block).exists()


@dataclass(frozen=True)
class BlocksDone:
    """What a run did: ``blocks`` in the grid, ``done`` of them with a record, ``this_part`` of
    them this job's share, ``done_now`` by this job; ``summary`` once every block is done and the
    outputs are in place (None with a part)."""

    blocks: int
    done: int
    this_part: int
    done_now: int
    summary: dict | None


class BlockRunner:
    """Runs a ``Task``'s blocks (this job's ``part`` of them) into staged outputs. The caller
    checks the final outputs beforehand (``io.check_outputs``): the last run replaces them."""

    def __init__(self, task: Task, *, part: tuple[int, int] | None = None, overwrite: bool = False):
        check_part(part)
        self.task, self.part, self.overwrite = task, part, overwrite
        self.grid = task.blocks()
        self.staged = [staging_path(o.path) for o in task.outputs]
        self.writers: list[ChunkedOutput] = []

    def open(self) -> BlockRunner:
        """Claims the records folder for this run and opens the staged outputs."""
        task, records = self.task, self.task.records
        run_file = records / "run.json"
        # A run with the same arguments goes on where an earlier one stopped (every part of one run
        # shares its staging); one with other arguments starts over, if allowed to.
        earlier = json.loads(run_file.read_text()) if run_file.exists() else None
        if earlier is not None and earlier != task.arguments:
            if not self.overwrite or self.part is not None:
                raise ValueError(
                    f"{records} belongs to an unfinished run with other arguments "
                    f"({earlier}); finish it with the same arguments, or start over "
                    f"with overwrite=True (--overwrite) and no part"
                )
            earlier = None
        if earlier is None:
            shutil.rmtree(records, ignore_errors=True)
            for path in self.staged:
                remove(path)
            records.mkdir(parents=True, exist_ok=True)
            write_json(run_file, task.arguments)
        return self.open_outputs()

    def open_outputs(self) -> BlockRunner:
        """Opens the staged outputs (creating them if need be) without claiming the records
        folder: what a worker does, once the run's ``open`` has claimed it."""
        task = self.task
        try:
            for output, path in zip(task.outputs, self.staged):
                self.writers.append(ChunkedOutput(path, output.shape, output.dtype, output.chunks))
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        for writer in self.writers:
            writer.close()
        self.writers = []

    def mine(self) -> list[Block]:
        """This job's share of the grid: every n-th block from the i-th."""
        if self.part is None:
            return list(self.grid)
        i, n = self.part
        return [b for k, b in enumerate(self.grid) if k % n == i]

    def todo(self) -> list[Block]:
        """This job's blocks without a record."""
        return [b for b in self.mine() if not self.task.is_done(b)]

    def run_block(self, block: Block) -> dict:
        """Processes one block and commits it; its arrays are freed on return. Returns its
        record."""
        arrays, record = self.task.process(block)
        self.commit(block, arrays, record)
        return record

    def commit(self, block: Block, arrays: Sequence[np.ndarray], record: dict) -> None:
        """Writes a block's arrays at its origin, then its record: a record vouches for its data."""
        for writer, array in zip(self.writers, arrays, strict=True):
            writer.write(block.origin, array)
        write_json(self.task.record_path(block), record)

    def run(
        self,
        blocks: Sequence[Block],
        progress: bool = False,
        on_block: Callable[[str, dict], None] | None = None,
    ) -> None:
        """The loop: one block after another, in this process; ``on_block(block_id, record)``
        after each (raising from it stops the loop)."""
        if progress:
            from tqdm.auto import tqdm

            blocks = tqdm(blocks, desc=f"{self.task.name} blocks", unit="block")
        for block in blocks:
            record = self.run_block(block)
            if on_block is not None:
                on_block(block.id, record)

    def finish(self, done_now: int) -> BlocksDone:
        """With a part, counts the blocks done. Without, checks that every block has a record,
        writes the summary, moves the staged outputs into place and removes the records."""
        task = self.task
        done = sum(task.is_done(b) for b in self.grid)
        count = len(self.grid)
        if self.part is not None:
            return BlocksDone(count, done, len(self.mine()), done_now, None)
        if done != count:  # another job's records vanished midway: don't move a hole into place
            missing, where = count - done, task.records
            raise RuntimeError(f"{missing} of {count} blocks have no record in {where}; rerun")
        records = [json.loads(task.record_path(b).read_text()) for b in self.grid]
        summary = task.summarize(records)
        for output, stage in zip(task.outputs, self.staged):
            publish(stage, output.path)
        write_json(task.summary, summary)  # before the records go: a crash here leaves them
        shutil.rmtree(task.records)
        return BlocksDone(count, done, len(self.mine()), done_now, summary)


def run_blocks(
    task: Task,
    *,
    part: tuple[int, int] | None = None,
    overwrite: bool = False,
    progress: bool = False,
    on_block: Callable[[str, dict], None] | None = None,
) -> BlocksDone:
    """Runs ``task``'s blocks without a record (this job's ``part`` of them); the run without
    ``part`` that finds every block done moves the outputs into place and writes the summary.
    ``on_block(block_id, record)`` after each block (raising from it stops the run)."""
    runner = BlockRunner(task, part=part, overwrite=overwrite).open()
    try:
        todo = runner.todo()
        runner.run(todo, progress, on_block)
    finally:
        runner.close()
    return runner.finish(len(todo))
