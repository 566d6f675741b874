"""Block-wise restoration: its memory follows the block, not the volume, and its time the halo.

A phantom volume of 64 sections (320 x 320, uint8, memory-mapped .npy), five of them missing,
restored in memory and block by block (blocks of 8 sections, halo 4). Beyond the transients of
one section's detection (about 13 MiB here), the peak of Python-traced allocations (numpy's
arrays; not the network's torch buffers, the same in both) grows with the window (16 sections)
block by block and with the volume in memory: the two peaks must differ by more than the 48
sections outside a window. Timed, the two give the halo's cost (about (block + 2 halo) / block).

Run:
pytest benchmarks/test_bench_blockwise.py --benchmark-enable --benchmark-columns=median,rounds -s
"""

import tracemalloc

import numpy as np
import pytest
from emrestore import restore
from emrestore.blockwise import restore_volume
from emrestore.io import open_volume
from emrestore.models import InterpolationConfig, SepConvInterpolator
from emrestore.phantom import make_phantom
from emrestore.simulate import simulate_ms

SHAPE, BLOCK, HALO = (64, 320, 320), (8, 320, 320), (4, 0, 0)


@pytest.fixture(scope="module")
def volume(tmp_path_factory):
    stack = make_phantom(SHAPE, seed=3).raw
    for z in (5, 20, 21, 40, 57):
        stack[z] = simulate_ms(stack, z, seed=z, mode="blank").image
    path = tmp_path_factory.mktemp("blockwise") / "in.npy"
    np.save(path, stack)
    return path


@pytest.fixture(scope="module")
def model():
    return SepConvInterpolator(
        InterpolationConfig(kernel_size=5, widths=(8, 16), head_width=8)
    ).eval()


def _in_memory(path, model):
    return restore(open_volume(path)[:], model=model, tile=None)


def _blocks(path, model, out):
    return restore_volume(path, out, block=BLOCK, halo=HALO, model=model, tile=None, overwrite=True)


def _peak(fn, *args):
    tracemalloc.start()
    try:
        result = fn(*args)
        return tracemalloc.get_traced_memory()[1], result
    finally:
        tracemalloc.stop()


def test_memory_follows_the_block_not_the_volume(volume, model, tmp_path):
    restore(
        open_volume(volume)[:8], model=model, tile=None
    )  # lazy imports and caches: not measured
    whole, expected = _peak(_in_memory, volume, model)
    blocks, _ = _peak(_blocks, volume, model, tmp_path / "out.zarr")
    section = SHAPE[1] * SHAPE[2]
    print(
        f"\npeak traced memory: in memory {whole / 2**20:.1f} MiB, "
        f"block by block {blocks / 2**20:.1f} MiB "
        f"(volume {np.prod(SHAPE) / 2**20:.1f} MiB)"
    )
    # In memory, the restored copy alone holds every section outside a block's window once more.
    assert whole - blocks > (SHAPE[0] - (BLOCK[0] + 2 * HALO[0])) * section
    np.testing.assert_array_equal(open_volume(tmp_path / "out.zarr")[:], expected.stack)


@pytest.mark.parametrize("how", ["in_memory", "blocks"])
def test_time(benchmark, volume, model, tmp_path, how):
    if benchmark.disabled:
        pytest.skip("the memory test above runs both once; timed runs only")
    if how == "in_memory":
        benchmark.pedantic(_in_memory, args=(volume, model), rounds=3)
    else:
        benchmark.pedantic(_blocks, args=(volume, model, tmp_path / "out.zarr"), rounds=3)
