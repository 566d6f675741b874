"""Block-wise restoration on Dask distributed against the plain loop: blocks per second.

A phantom volume of 8 sections (160 x 160, uint8, zarr), two of them missing, restored in blocks
of two sections (four blocks, halo 2) by the serial loop in this process and on a ``LocalCluster``
of one and of two worker processes (a thread each), started and warmed up (the imports and first
calls of a restoration) beforehand, as this process is: the clusters' start is reported apart, not
timed. Torch's threads: the workers' are the cores over the workers (2 and 1 on 2 cores), the
loop's all the cores ("serial", to compare with one worker) or one ("serial-1thread", to compare
with two workers of a thread each). With one worker, the difference to the loop is the engine's
cost (submitting, each worker building the task once, records travelling back); with two, the
blocks share the cores. All give the same outputs.

Run:
pytest benchmarks/test_bench_blocks_dask.py --benchmark-enable --benchmark-columns=median,rounds -s
"""

import time

import distributed
import numpy as np
import pytest
import torch
from emrestore.blockwise import restore_volume
from emrestore.io import open_volume
from emrestore.models import InterpolationConfig, SepConvInterpolator
from emrestore.phantom import make_phantom
from emrestore.simulate import simulate_ms

zarr = pytest.importorskip("zarr", reason="zarr is not installed")

SHAPE, BLOCK, HALO = (8, 160, 160), (2, 160, 160), (2, 0, 0)
BLOCKS = SHAPE[0] // BLOCK[0]
HOW = ["serial", "serial-1thread", "dask-1", "dask-2"]
SECONDS: dict[str, float] = {}  # each way's last run, for the summary


@pytest.fixture(scope="module")
def volume(tmp_path_factory):
    stack = make_phantom(SHAPE, seed=3).raw
    for z in (2, 5):
        stack[z] = simulate_ms(stack, z, seed=z, mode="blank").image
    path = tmp_path_factory.mktemp("blocks_dask") / "in.zarr"
    zarr.open_array(str(path), mode="w", shape=SHAPE, chunks=(4, 128, 128), dtype=stack.dtype)[
        :
    ] = stack
    return path


@pytest.fixture(scope="module")
def model():
    return SepConvInterpolator(
        InterpolationConfig(kernel_size=5, widths=(8, 16), head_width=8)
    ).eval()


def _warm_up():
    """The imports and first calls of a restoration, in this process or a worker's."""
    from emrestore import restore

    stack = make_phantom((4, 96, 96), seed=1).raw
    stack[1] = 0
    model = SepConvInterpolator(InterpolationConfig(kernel_size=5, widths=(8, 16), head_width=8))
    restore(stack, model=model.eval(), tile=None)


@pytest.fixture(scope="module")
def clients():
    """A cluster per worker count, started on first use and closed with the module."""
    started: dict[int, tuple] = {}

    def get(workers):
        if workers not in started:
            start = time.perf_counter()
            cluster = distributed.LocalCluster(
                n_workers=workers, processes=True, threads_per_worker=1, dashboard_address=":0"
            )
            client = distributed.Client(cluster)
            client.wait_for_workers(workers)
            took = time.perf_counter() - start
            client.run(_warm_up)
            started[workers] = (cluster, client, took)
        return started[workers]

    yield get
    for cluster, client, _ in started.values():
        client.close()
        cluster.close()


def _run(volume, model, folder, scheduler):
    """One restoration into a new subfolder of ``folder`` (restore_volume's overwrite does not
    replace an earlier report); its seconds and output."""
    out = folder / f"run{len(list(folder.iterdir()))}" / "out.zarr"
    out.parent.mkdir()
    start = time.perf_counter()
    restore_volume(volume, out, block=BLOCK, halo=HALO, model=model, tile=None, scheduler=scheduler)
    return time.perf_counter() - start, out


@pytest.mark.parametrize("how", HOW)
def test_blocks_per_second(benchmark, volume, model, clients, tmp_path, how):
    scheduler, started, threads = None, None, torch.get_num_threads()
    if how.startswith("serial"):
        if how == "serial-1thread":
            torch.set_num_threads(1)
        _warm_up()
    else:
        _, scheduler, started = clients(int(how.split("-")[1]))
    runs = []
    try:
        benchmark.pedantic(
            lambda: runs.append(_run(volume, model, tmp_path, scheduler)),
            rounds=1 if benchmark.disabled else 3,
        )
    finally:
        torch.set_num_threads(threads)
    SECONDS[how], out = min(runs)
    line = f"\n{how}: {BLOCKS / SECONDS[how]:.2f} blocks/s ({SECONDS[how]:.1f} s for {BLOCKS})"
    print(line + (f"; cluster started in {started:.1f} s, not timed" if started else ""))
    restored = open_volume(out)[:]
    if how == "serial":
        SECONDS["output"] = restored
    elif "output" in SECONDS:
        np.testing.assert_array_equal(restored, SECONDS["output"])
    loop = {"dask-1": "serial", "dask-2": "serial-1thread"}.get(how)
    if loop in SECONDS:
        extra = SECONDS[how] - SECONDS[loop]
        print(
            f"{how} against the loop ({loop}): {extra:+.2f} s in all, {extra / BLOCKS:+.2f} s a "
            f"block ({100 * extra / SECONDS[loop]:+.0f}%), "
            f"speed-up {SECONDS[loop] / SECONDS[how]:.2f}"
        )
