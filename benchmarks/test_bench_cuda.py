"""The CUDA kernels against the pure-PyTorch references on the same GPU (pytest-benchmark; skipped
without one). Each timed call ends with a device synchronisation, so the host clock measures the
GPU work; inputs are random, drawn once per test.

Run: pytest benchmarks/test_bench_cuda.py --benchmark-enable --benchmark-columns=median,iqr,rounds
"""

import numpy as np
import pytest
import torch
from emrestore import ops, reference
from test_bench_fold import three_curved_folds

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

SEPCONV_CASES = {
    "1x1x512x512-K51": (1, 1, 512, 512, 51),
    "8x1x128x128-K25": (8, 1, 128, 128, 25),
    "8x1x512x512-K51": (8, 1, 512, 512, 51),
}


def synced(fn):
    def run(*args, **kwargs):
        out = fn(*args, **kwargs)
        torch.cuda.synchronize()
        return out

    return run


def skip_unavailable(impl):
    if impl == "extension" and not (ops.backend == "extension" and ops.build_info()["cuda"]):
        pytest.skip("extension not built with CUDA kernels")


def record(benchmark, key, amount):
    if benchmark.stats:  # None when run untimed (--benchmark-disable)
        benchmark.extra_info[key] = round(amount / benchmark.stats.stats.median / 1e9, 1)


def rounds(benchmark, fast):
    return {
        "rounds": (30 if fast else 5) if benchmark.enabled else 1,
        "warmup_rounds": 3 if fast else 1,
    }


SEPCONV = {
    "extension": ops.sepconv,
    "reference-loop": reference.sepconv_loop,
    "reference-unfold": reference.sepconv_unfold,
}


def sepconv_inputs(case, dtype=torch.float32, grad=False):
    b, c, h, w, k = SEPCONV_CASES[case]
    x = torch.rand(b, c, h, w, device="cuda", dtype=dtype)
    v, hz = (torch.rand(b, k, h, w, device="cuda").softmax(1).to(dtype) for _ in range(2))
    return [t.requires_grad_(grad) for t in (x, v, hz)], 2 * k * k * b * c * h * w


@pytest.mark.parametrize("case", SEPCONV_CASES)
@pytest.mark.parametrize("impl", SEPCONV)
def test_sepconv_forward(benchmark, case, impl):
    skip_unavailable(impl)
    if impl == "reference-unfold" and case == "8x1x512x512-K51":
        pytest.skip("the unfold variant would need 21 GB")
    benchmark.group = f"sepconv forward {case}"
    args, flops = sepconv_inputs(case)
    with torch.no_grad():
        benchmark.pedantic(
            synced(SEPCONV[impl]), args=args, **rounds(benchmark, impl == "extension")
        )
    record(benchmark, "gflops", flops)


@pytest.mark.parametrize("case", ["1x1x512x512-K51", "8x1x512x512-K51"])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["fp16", "bf16"])
def test_sepconv_forward_half(benchmark, case, dtype):
    skip_unavailable("extension")
    benchmark.group = f"sepconv forward {case}"
    args, flops = sepconv_inputs(case, dtype)
    with torch.no_grad():
        benchmark.pedantic(synced(ops.sepconv), args=args, **rounds(benchmark, True))
    record(benchmark, "gflops", flops)


@pytest.mark.parametrize("case", SEPCONV_CASES)
@pytest.mark.parametrize("impl", ["extension", "reference-loop"])
def test_sepconv_forward_backward(benchmark, case, impl):
    skip_unavailable(impl)
    benchmark.group = f"sepconv forward+backward {case}"
    args, flops = sepconv_inputs(case, grad=True)
    fn = SEPCONV[impl]

    def step():
        out = fn(*args)
        return torch.autograd.grad(out, args, torch.ones_like(out))

    benchmark.pedantic(synced(step), **rounds(benchmark, impl == "extension"))
    record(benchmark, "gflops_forward_equiv", flops)


WARP = {"extension": ops.warp, "grid_sample": reference.warp_grid_sample}


@pytest.mark.parametrize("case", ["bilinear-border", "bicubic-border"])
@pytest.mark.parametrize("impl", WARP)
def test_warp_forward_4096(benchmark, case, impl):
    skip_unavailable(impl)
    benchmark.group = f"warp forward 4096 {case}"
    mode, padding = case.split("-")
    x = torch.rand(1, 1, 4096, 4096, device="cuda")
    flow = torch.randn(1, 2, 4096, 4096, device="cuda") * 5
    with torch.no_grad():
        benchmark.pedantic(
            synced(WARP[impl]), args=(x, flow, mode, padding), **rounds(benchmark, True)
        )
    record(benchmark, "gbytes_per_s_min_traffic", 4 * x.numel() * 4)  # flow 2, image 1, out 1


@pytest.mark.parametrize("impl", WARP)
def test_warp_forward_backward_4096(benchmark, impl):
    skip_unavailable(impl)
    benchmark.group = "warp forward+backward 4096 bilinear-border"
    x = torch.rand(1, 1, 4096, 4096, device="cuda", requires_grad=True)
    flow = (torch.randn(1, 2, 4096, 4096, device="cuda") * 5).requires_grad_()

    def step():
        out = WARP[impl](x, flow, "bilinear", "border")
        return torch.autograd.grad(out, (x, flow), torch.ones_like(out))

    benchmark.pedantic(synced(step), **rounds(benchmark, True))


@pytest.mark.parametrize("impl", {"extension": 0, "pytorch": 0})
def test_fold_warp_4096_three_curved_folds(benchmark, impl):
    skip_unavailable(impl)
    benchmark.group = "fold_warp 4096, 3 curved folds"
    fn = ops.fold_warp if impl == "extension" else reference.fold.fold_warp
    x = torch.rand(1, 1, 4096, 4096, device="cuda")
    with torch.no_grad():
        geometry = [g.cuda() for g in three_curved_folds(4096)]
        benchmark.pedantic(synced(fn), args=(x, *geometry), **rounds(benchmark, True))


@pytest.fixture(scope="module")
def edge_image():
    """4096 x 4096, 1% edge pixels on eight long lines and scattered noise."""
    from skimage.draw import line

    rng = np.random.default_rng(0)
    img = (rng.random((4096, 4096)) < 0.01).astype(np.uint8)
    for _ in range(8):
        img[line(*rng.integers(0, 4096, 4))] = 1
    return torch.from_numpy(img).cuda()


@pytest.mark.parametrize("impl", ["extension", "fallback"])
def test_hough_accumulate_and_peaks_4096(benchmark, edge_image, impl):
    skip_unavailable(impl)
    benchmark.group = "hough accumulate+peaks 4096, 1% edges"
    thetas = ops.default_thetas()
    c, s = (torch.from_numpy(f(thetas)).cuda() for f in (np.cos, np.sin))

    def run():
        if impl == "extension":
            acc, th, rh = ops.hough_lines(edge_image)
            return ops.hough_peaks(acc, th, rh, num_peaks=10)
        acc = reference.hough.hough_lines(edge_image[None], c, s)
        return reference.hough.hough_peaks(
            acc, 0.5 * acc.amax().double().view(1, 1, 1), 10, 9, 10, True
        )

    benchmark.pedantic(synced(run), **rounds(benchmark, impl == "extension"))


@pytest.mark.parametrize("tile", [512, 0], ids=["tile512", "whole"])
def test_interpolation_inference_2048(benchmark, tile):
    from emrestore.models import InterpolationConfig, SepConvInterpolator, interpolate

    benchmark.group = "interpolation network, one 2048 x 2048 section"
    model = SepConvInterpolator(InterpolationConfig()).eval().cuda()
    a, b = np.random.default_rng(0).integers(0, 256, (2, 2048, 2048), dtype=np.uint8)
    out = benchmark.pedantic(
        interpolate,
        args=(model, a, b, 0.5),
        kwargs={"tile": tile, "device": "cuda"},
        **rounds(benchmark, False),
    )
    assert out.shape == (2048, 2048)
    if benchmark.stats:
        benchmark.extra_info["megapixels_per_s"] = round(
            2048 * 2048 / benchmark.stats.stats.median / 1e6, 2
        )


def test_training_step_batch32_256(benchmark):
    from emrestore.models import InterpolationConfig, SepConvInterpolator
    from emrestore.models import training_loss as _loss

    benchmark.group = "training step, batch 32 x 256 x 256"
    model = SepConvInterpolator(InterpolationConfig()).train().cuda()
    optimizer = torch.optim.AdamW(model.parameters())
    frames, ts = torch.rand(32, 3, 256, 256, device="cuda"), torch.rand(32, device="cuda")

    def step():
        loss = _loss(model(frames[:, :1], frames[:, 2:], ts), frames[:, 1:2], "l1")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss

    loss = benchmark.pedantic(synced(step), **rounds(benchmark, False))
    assert torch.isfinite(loss)
    if benchmark.stats:
        benchmark.extra_info["samples_per_second"] = round(32 / benchmark.stats.stats.median, 1)
