"""The interpolation network with the default architecture (K = 21, widths 16-32-64-96):
inference sections/s at 1024 x 1024 (the optical-flow alignment included: of the pair, or also
against the sections beyond it, as ``restore`` aligns an interior section; each flow once, or
averaged over the eight views of the default ``flow_views``; with and without the neighbours'
detail put back), training samples/s
(batch 8, 128 x 128 crops; drawing a batch, alignment included, separately), peak memory,
and the share of training time spent in the ``sepconv`` op (it must not be the bottleneck).

Run: pytest benchmarks/test_bench_models.py --benchmark-enable --benchmark-columns=median,rounds -s
"""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from emrestore.models import (
    InterpolationConfig,
    SepConvInterpolator,
    TripletSampler,
    interpolate,
    training_loss,
)

SIDE = 1024


@pytest.fixture(scope="module")
def models():
    return {
        views: SepConvInterpolator(InterpolationConfig(flow_views=views)).eval() for views in (1, 8)
    }


@pytest.fixture(scope="module")
def pair():
    """The two neighbours, then the sections beyond them."""
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (4, SIDE, SIDE), dtype=np.uint8)


@pytest.mark.parametrize("views", [1, 8], ids=["views1", "views8"])
@pytest.mark.parametrize("outer", [False, True], ids=["pair", "outer"])
@pytest.mark.parametrize("tile", [512, 0], ids=["tile512", "whole"])
def test_inference_1024(benchmark, models, pair, tile, outer, views):
    model = models[views]
    kwargs = {
        "tile": tile,
        **({"outer": (pair[2], pair[3]), "outer_gaps": (0.5, 0.5)} if outer else {}),
    }
    out = benchmark.pedantic(
        interpolate, args=(model, pair[0], pair[1], 0.5), kwargs=kwargs, rounds=3, warmup_rounds=1
    )
    assert out.shape == (SIDE, SIDE)
    if benchmark.stats is not None:
        benchmark.extra_info["sections_per_second"] = 1 / benchmark.stats.stats.median


@pytest.mark.parametrize("detail", [0.0, 0.3], ids=["no_detail", "detail"])
def test_inference_detail_1024(benchmark, models, pair, detail):
    """The default restore path (tiles of 512, eight views, the sections beyond) without and with
    the neighbours' detail put back (its own pair of flows and three Gaussian filters)."""
    kwargs = {"tile": 512, "outer": (pair[2], pair[3]), "outer_gaps": (0.5, 0.5), "detail": detail}
    out = benchmark.pedantic(
        interpolate,
        args=(models[8], pair[0], pair[1], 0.5),
        kwargs=kwargs,
        rounds=3,
        warmup_rounds=1,
    )
    assert out.shape == (SIDE, SIDE)


def _train_step(model, optimizer, frames, ts):
    pred = model(frames[:, :1], frames[:, 2:], ts)
    loss = training_loss(pred, frames[:, 1:2], "l1")
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss


def test_training_step(benchmark):
    model = SepConvInterpolator(InterpolationConfig()).train()
    optimizer = torch.optim.AdamW(model.parameters())
    frames, ts = torch.rand(8, 3, 128, 128), torch.rand(8)
    loss = benchmark.pedantic(
        _train_step, args=(model, optimizer, frames, ts), rounds=5, warmup_rounds=1
    )
    assert torch.isfinite(loss)
    if benchmark.stats is not None:
        benchmark.extra_info["samples_per_second"] = 8 / benchmark.stats.stats.median


@pytest.mark.parametrize("align", ["outer", "pair", "plain"])
def test_training_batch(benchmark, align):
    """Drawing one batch (crops of 3 sections, augmentation, and the optical-flow alignment of the
    outer two: against each other, and with ``outer`` also against the sections beyond them, as
    ``fit`` draws for a default model); ``fit`` draws it in a thread while the previous batch
    trains."""
    from emrestore.phantom import make_phantom

    stack = make_phantom((6, 512, 512), seed=0).raw
    usable = np.ones(len(stack), bool) if align == "outer" else None
    sampler = TripletSampler(
        stack, [(z - 1, z, z + 1) for z in range(1, 5)], 128, align=align != "plain", outer=usable
    )
    frames, _ = benchmark.pedantic(sampler.batch, args=(8, 0), rounds=5, warmup_rounds=1)
    assert frames.shape == (8, 3, 128, 128)


def test_sepconv_is_not_the_training_bottleneck():
    """Profiled training steps: the op (forward and backward) takes a minor share of the time."""
    model = SepConvInterpolator(InterpolationConfig()).train()
    optimizer = torch.optim.AdamW(model.parameters())
    frames, ts = torch.rand(8, 3, 128, 128), torch.rand(8)
    _train_step(model, optimizer, frames, ts)
    with torch.profiler.profile() as prof:
        for _ in range(2):
            _train_step(model, optimizer, frames, ts)
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    op = sum(e.self_cpu_time_total for e in events if e.key.startswith("emrestore::sepconv"))
    share = op / total
    print(f"\nsepconv share of a training step: {share:.1%}")
    assert 0 < share < 0.25


PEAK = """
import json, resource, numpy as np, torch
from emrestore.models import InterpolationConfig, SepConvInterpolator, interpolate
model = SepConvInterpolator(InterpolationConfig()).eval()
pair = np.random.default_rng(0).integers(0, 256, (2, {side}, {side}), dtype=np.uint8)
# kB, now
base = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmRSS"))
interpolate(model, pair[0], pair[1], 0.5, tile={tile})
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({{"base_mib": base / 1024, "peak_mib": peak}}))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
@pytest.mark.parametrize("tile", [512, 0])
def test_peak_memory_1024(tile):
    """Peak resident memory of one 1024 x 1024 inference in a fresh process, tiled and whole."""
    out = subprocess.run(
        [sys.executable, "-c", PEAK.format(side=SIDE, tile=tile)],
        capture_output=True,
        text=True,
        check=True,
    )
    mem = json.loads(out.stdout.strip().splitlines()[-1])
    print(
        f"\ntile {tile or 'whole'}: peak {mem['peak_mib']:.0f} MiB "
        f"({mem['peak_mib'] - mem['base_mib']:.0f} MiB above the loaded model)"
    )
    assert mem["peak_mib"] >= mem["base_mib"] > 0
