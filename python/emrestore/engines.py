"""Engines that run a ``Task``'s blocks elsewhere than ``BlockRunner.run``'s loop: Dask distributed.

``run_task_dask(task, remote, scheduler=...)`` runs the blocks of ``task`` that have no record
(this job's ``part`` of them) as Dask tasks, one per block: a worker processes the block and
commits it (its core into the staged outputs, then its record) as ``BlockRunner.run_block`` does.
This process claims the records folder beforehand (``BlockRunner.open``) and, once every block has
a record, moves the outputs into place (``BlockRunner.finish``), once.

Nothing unpicklable travels (an open file, a lazy volume): ``task`` stays here for its grid,
outputs, records and summary, and the workers get ``remote``, a picklable description and a
module-level function that builds the task from it on the worker (opening the input, loading a
model). A worker builds it once per run and keeps it for every block it gets.

Faults: a block whose process raises is retried ``retries`` times; one whose worker dies is handed
to another worker by Dask (up to ``distributed.scheduler.allowed-failures`` deaths, 3 by default).
Each try leaves a marker in the records folder, so that each block's record counts its
``attempts``. A block that still fails is named, with its error, once the others are done. A run
stopped midway (Ctrl-C, an ``on_block`` callback that raises, a killed client) leaves the records
of the blocks done: a rerun does the rest. (A cluster the run joined rather than started keeps
running the blocks it had begun: they finish and leave their records, which a rerun skips.)

Several workers write at once, so the outputs must be zarr arrays: an HDF5 file takes one writer.
"""

from __future__ import annotations

import os
import re
import sys
import threading
import time
import uuid
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from .blocks import Block, BlockRunner, BlocksDone, Task
from .io import path_format

# A scheduler's address: tcp://HOST:PORT (tls, ws, wss, ucx too; HOST an IPv6 address in []).
ADDRESS = re.compile(r"^(tcp|tls|ws|wss|ucx)://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):\d{1,5}$")
GiB = 2**30


@dataclass(frozen=True)
class Remote:
    """What the workers get: ``build(description)`` returns the ``Task`` (a module-level function,
    pickled by name; ``description``, anything picklable, by value)."""

    build: Callable[[Any], Task]
    description: Any


def check_shared_outputs(paths) -> None:
    """Refuses outputs that several workers cannot write at once: HDF5 files take one writer."""
    if "hdf5" in (path_format(p) for p in paths):
        raise ValueError(
            "a scheduler (workers writing at once) needs zarr outputs: HDF5 files take one "
            "writer; write OUT.zarr, or run without a scheduler"
        )


def check_scheduler(scheduler) -> None:
    """Refuses a scheduler that is not "local", an address or a ``distributed.Client``."""
    if isinstance(scheduler, str):
        if scheduler == "local" or ADDRESS.match(scheduler):
            return
    else:
        from distributed import Client

        if isinstance(scheduler, Client):
            return
    raise ValueError(
        f"scheduler must be 'local', a Dask scheduler's address (tcp://HOST:PORT) or a "
        f"distributed.Client; got {scheduler!r}"
    )


def check_engine(scheduler, workers: int | None = None, outputs=()) -> None:
    """The one check of an engine's arguments: ``scheduler`` None (this process's loop),
    "local", an address or a Client; ``workers`` only with "local"; with a scheduler, ``outputs``
    that workers can write at once (``check_shared_outputs``)."""
    if workers is not None and scheduler != "local":
        raise ValueError("workers sizes a local cluster: it needs scheduler='local'")
    if scheduler is not None:
        check_scheduler(scheduler)
        check_shared_outputs(outputs)


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def local_workers(workers: int | None = None, memory_per_worker: int | None = None) -> int:
    """The worker processes of a local cluster: ``workers``, or by default one per core, fewer
    where the memory does not hold ``memory_per_worker`` bytes for each."""
    if workers is not None:
        if int(workers) < 1:
            raise ValueError(f"workers must be >= 1; got {workers}")
        return int(workers)
    count = _cores()
    if memory_per_worker:
        import psutil

        count = min(count, int(psutil.virtual_memory().total // memory_per_worker))
    return max(1, count)


@contextmanager
def connect(scheduler, *, workers: int | None = None, memory_per_worker: int | None = None):
    """A ``distributed.Client``: ``scheduler`` itself if it is one; for "local", one of a
    ``LocalCluster`` of ``local_workers(workers, memory_per_worker)`` processes with a thread each,
    closed on exit; for an address, one joined to that cluster, closed on exit."""
    from distributed import Client, LocalCluster

    check_engine(scheduler, workers)
    if isinstance(scheduler, Client):
        yield scheduler
    elif scheduler == "local":
        count = local_workers(workers, memory_per_worker)
        with (
            LocalCluster(
                n_workers=count, processes=True, threads_per_worker=1, dashboard_address=":0"
            ) as cluster,
            Client(cluster) as client,
        ):
            yield client
    else:
        with Client(scheduler) as client:
            yield client


def dashboard(client) -> str | None:
    """The address of the cluster's dashboard, where it serves one (it needs bokeh)."""
    try:
        info = client.scheduler_info()
        if "dashboard" not in info.get("services", {}):
            return None
        return client.dashboard_link
    except Exception:
        return None


# --- on the workers ------------------------------------------------------------------------------

_lock = threading.Lock()
_runners: dict[str, BlockRunner] = {}  # the run this worker process is building blocks of
BUILDS: dict[str, int] = {}  # how often each run's task was built in this process


def _set_threads(threads: int | None) -> None:
    """Torch's and OpenCV's threads in this (worker) process."""
    if threads is None:
        return
    import torch

    torch.set_num_threads(threads)
    try:
        import cv2

        cv2.setNumThreads(threads)
    except ImportError:
        pass


def _runner(run_id: str, threads: int | None) -> BlockRunner:
    """This process's runner of the run ``run_id``: the task built from the run's ``Remote``
    (published on the scheduler under the run's id) and its outputs opened once, on the run's
    first block here; an earlier run's are dropped."""
    with _lock:
        runner = _runners.get(run_id)
        if runner is None:
            from distributed import get_client

            for old in _runners.values():
                old.close()
            _runners.clear()
            _set_threads(threads)
            remote = get_client().get_dataset(run_id)
            runner = BlockRunner(remote.build(remote.description)).open_outputs()
            _runners[run_id] = runner
            BUILDS[run_id] = BUILDS.get(run_id, 0) + 1
        return runner


def _forget(run_id: str) -> None:
    """Frees a finished run's task (its model, its volume) in this worker process."""
    with _lock:
        runner = _runners.pop(run_id, None)
        if runner is not None:
            runner.close()


def _attempt(task: Task, block: Block) -> int:
    """Marks a try of ``block`` in the records folder; returns its number (1 for the first)."""
    n = 1
    while True:
        try:
            with (task.records / f"{block.id}.try{n}").open("x"):
                return n
        except FileExistsError:
            n += 1


def _worker_address() -> str:
    try:
        from distributed import get_worker

        return get_worker().address
    except (ImportError, ValueError):
        return "local"


def _run_block(run_id: str, threads: int | None, block: Block) -> dict:
    """A Dask task: processes ``block`` and commits it; returns its record."""
    runner = _runner(run_id, threads)
    attempts = _attempt(runner.task, block)
    start = time.perf_counter()
    arrays, record = runner.task.process(block)
    seconds = round(time.perf_counter() - start, 3)
    record = dict(record, seconds=seconds, worker=_worker_address(), attempts=attempts)
    runner.commit(block, arrays, record)
    return record


def _cores_here() -> int:
    return _cores()


def threads_per_block(client) -> int:
    """Torch threads for each block: the cores of the busiest host over the Dask threads of the
    workers on it (1 for a cluster of single-threaded workers, one per core)."""
    workers = client.scheduler_info()["workers"]
    if not workers:
        return 1
    cores = client.run(_cores_here)
    per_host: dict[str, list[int]] = {}
    for address, info in workers.items():
        host = per_host.setdefault(info.get("host", address), [0, 0])
        host[0] = cores.get(address, 1)
        host[1] += int(info.get("nthreads", 1))
    return max(1, min(c // max(1, n) for c, n in per_host.values()))


# --- in this process -----------------------------------------------------------------------------


class BlocksFailed(RuntimeError):
    """Blocks that still failed after their retries: ``failed`` maps their ids to the errors."""

    def __init__(self, failed: dict[str, BaseException], count: int, records):
        self.failed = failed
        named = "; ".join(f"{b}: {type(e).__name__}: {e}" for b, e in sorted(failed.items()))
        super().__init__(
            f"{len(failed)} of {count} block(s) failed after their retries ({named}); the others "
            f"are done and recorded in {records}: rerun to retry the failed ones"
        )


def run_task_dask(
    task: Task,
    remote: Remote,
    *,
    scheduler,
    workers: int | None = None,
    part: tuple[int, int] | None = None,
    overwrite: bool = False,
    progress: bool = False,
    on_block: Callable[[str, dict], None] | None = None,
    retries: int = 2,
    memory_per_worker: int | None = None,
    threads: int | None = None,
) -> BlocksDone:
    """Runs ``task``'s blocks without a record (this job's ``part`` of them) on Dask, each on a
    worker that rebuilds the task from ``remote``; the run without ``part`` that finds every block
    done moves the outputs into place and writes the summary, here.

    ``scheduler``: "local" (a ``LocalCluster`` of ``workers`` processes, by default one per core,
    fewer where the memory does not hold ``memory_per_worker`` bytes each), a scheduler's address
    or a ``distributed.Client``. ``progress``: a progress bar over the blocks as they finish, and
    the dashboard's address on stderr. ``on_block(block_id, record)``: called here as each block
    finishes; raising from it stops the run (a rerun resumes). ``retries``: of a block whose
    process raises. ``threads``: torch's threads per block on the workers (default:
    ``threads_per_block``)."""
    check_engine(scheduler, workers, [o.path for o in task.outputs])
    runner = BlockRunner(task, part=part, overwrite=overwrite).open()
    runner.close()  # the workers write the blocks; this process only claims and finishes
    todo = runner.todo()
    if todo:
        with connect(scheduler, workers=workers, memory_per_worker=memory_per_worker) as client:
            link = dashboard(client)
            if progress and link:
                print(f"{task.name}: Dask dashboard at {link}", file=sys.stderr)
            _run_on(client, task, remote, todo, progress, on_block, retries, threads)
    return runner.finish(len(todo))


def _run_on(client, task, remote, todo, progress, on_block, retries, threads) -> None:
    from distributed import as_completed

    run_id = f"{task.name}-{uuid.uuid4().hex[:12]}"
    threads = threads or threads_per_block(client)
    # The description kept by the scheduler, not by a worker: no block depends on a worker that
    # holds it (Dask would send every block there), and none is lost with a worker.
    client.publish_dataset(**{run_id: remote})
    futures = {
        client.submit(
            _run_block,
            run_id,
            threads,
            block,
            key=f"{run_id}-{block.id}",
            retries=retries,
        ): block
        for block in todo
    }
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(todo), desc=f"{task.name} blocks", unit="block")
    failed: dict[str, BaseException] = {}
    try:
        for future in as_completed(futures):
            block = futures[future]
            if future.status == "finished":
                record = future.result()
                if on_block is not None:
                    on_block(block.id, record)
            elif future.status == "error":
                failed[block.id] = future.exception()
            else:  # cancelled from elsewhere, or lost with its cluster
                failed[block.id] = RuntimeError(f"the block's task was {future.status}")
            if bar is not None:
                bar.update()
    except BaseException:
        client.cancel(list(futures))
        raise
    finally:
        if bar is not None:
            bar.close()
        try:
            client.unpublish_dataset(run_id)
            client.run(_forget, run_id)
        except Exception:  # a cluster going down: nothing to free
            pass
    if failed:
        raise BlocksFailed(failed, len(todo), task.records)
