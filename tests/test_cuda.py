"""The CUDA kernels against the CPU kernels and the references, on a GPU (skipped without one).

Each op family's own test file compares its CUDA forward with the CPU; this file covers what they
leave out: opcheck on CUDA for every op, gradients of warp and fold_warp, sizes that span many
blocks, non-contiguous and empty inputs, torch.compile with the inductor backend, and the
interpolation network and the restore pipeline end to end on the GPU.
"""

import numpy as np
import pytest
import torch
from emrestore import ops, reference

pytestmark = [
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
    pytest.mark.skipif(
        ops.backend != "extension" or not ops.build_info()["cuda"],
        reason="needs the extension built with CUDA kernels",
    ),
]


def softmax_kernels(b, k, h, w, dtype=torch.float32, device="cuda"):
    return torch.rand(b, k, h, w, dtype=dtype, device=device).softmax(1)


def rel_err(got, want):
    got, want = got.double().cpu(), want.double().cpu()
    assert torch.isfinite(got).all()
    return ((got - want).norm() / want.norm().clamp_min(1e-300)).item()  # 0 when both are 0


def fold_geometry(batch, size, dtype=torch.float32):
    t = torch.linspace(0, 1, 6, dtype=torch.float64)
    line = torch.stack([size * (0.1 + 0.8 * t), size * (0.5 + 0.1 * torch.sin(3 * t))], -1)
    vertices = line[None, None].repeat(batch, 1, 1, 1)
    profile = torch.tensor([0, 3, 5, 6, 4, 0.0], dtype=torch.float64)
    profile = torch.stack([profile, 2 * profile], -1)[None, None].repeat(batch, 1, 1, 1)
    params = torch.tensor([[[0.08, 1.0, 0.6, 0.35, 2.0]]], dtype=torch.float64).repeat(batch, 1, 1)
    return [g.to(dtype) for g in (vertices, profile, params)]


@pytest.mark.parametrize("padding", ["replicate", "reflect", "zeros"])
def test_opcheck_every_op_on_cuda(padding):
    x = torch.rand(2, 2, 17, 19, device="cuda", requires_grad=True)
    v, h = (softmax_kernels(2, 5, 17, 19).requires_grad_() for _ in range(2))
    torch.library.opcheck(torch.ops.emrestore.sepconv.default, (x, v, h, padding))
    flow = (torch.randn(2, 2, 17, 19, device="cuda") * 3).requires_grad_()
    torch.library.opcheck(torch.ops.emrestore.warp.default, (x, flow, "bilinear", "border"))
    geometry = [g.cuda() for g in fold_geometry(2, 17)]
    torch.library.opcheck(torch.ops.emrestore.fold_warp.default, (x, *geometry))
    thetas = torch.from_numpy(ops.default_thetas(30))
    c, s = thetas.cos().cuda(), thetas.sin().cuda()
    torch.library.opcheck(torch.ops.emrestore.hough_lines.default, ((x[:, 0] > 0.7).detach(), c, s))


@pytest.mark.parametrize(
    "b,c,h,w,k", [(1, 1, 512, 512, 51), (8, 1, 128, 128, 25), (2, 3, 70, 301, 4)]
)
def test_sepconv_large_matches_reference(b, c, h, w, k):
    """Sizes of the benchmarks (many blocks, K up to 51, an even K) against the shifted-sum loop in
    float64 on the same GPU."""
    x = torch.rand(b, c, h, w, device="cuda", dtype=torch.float64, requires_grad=True)
    v, hz = (softmax_kernels(b, k, h, w, torch.float64).requires_grad_() for _ in range(2))
    g = torch.rand(b, c, h, w, device="cuda", dtype=torch.float64)
    want = reference.sepconv_loop(x, v, hz)
    want_grads = torch.autograd.grad(want, (x, v, hz), g)
    args = [t.detach().float().requires_grad_() for t in (x, v, hz)]
    got = ops.sepconv(*args)
    got_grads = torch.autograd.grad(got, args, g.float())
    assert rel_err(got, want) < 1e-5
    for gg, wg in zip(got_grads, want_grads):
        assert rel_err(gg, wg) < 1e-5


@pytest.mark.parametrize("dtype,tol", [(torch.float16, 2e-3), (torch.bfloat16, 1e-2)])
def test_sepconv_half_precision_accumulates_in_float32(dtype, tol):
    """K = 51 sums 2601 products per pixel: float32 accumulation keeps the error at the level of
    the inputs' own rounding."""
    x = torch.rand(1, 1, 96, 96, device="cuda")
    v, h = softmax_kernels(1, 51, 96, 96), softmax_kernels(1, 51, 96, 96)
    xs, vs, hs = (t.to(dtype) for t in (x, v, h))
    want = reference.sepconv_loop(*(t.double() for t in (xs, vs, hs)))
    out = ops.sepconv(xs, vs, hs)
    assert out.dtype == dtype
    assert rel_err(out, want) < tol


def test_non_contiguous_and_empty_inputs():
    x = torch.rand(2, 1, 40, 60, device="cuda").transpose(2, 3)
    v = softmax_kernels(2, 7, 60, 40)
    h = softmax_kernels(2, 7, 40, 60).transpose(2, 3)
    assert not x.is_contiguous() and not h.is_contiguous()
    torch.testing.assert_close(ops.sepconv(x, v, h), ops.sepconv(x.contiguous(), v, h.contiguous()))
    torch.testing.assert_close(
        ops.sepconv(x, v, h).cpu(), ops.sepconv(x.cpu(), v.cpu(), h.cpu()), rtol=1e-5, atol=1e-5
    )
    flow = torch.randn(2, 40, 60, 2, device="cuda").permute(0, 3, 2, 1)
    torch.testing.assert_close(ops.warp(x, flow), ops.warp(x.contiguous(), flow.contiguous()))
    empty = torch.rand(0, 1, 8, 8, device="cuda")
    assert ops.sepconv(empty, softmax_kernels(0, 3, 8, 8), softmax_kernels(0, 3, 8, 8)).shape == (
        0,
        1,
        8,
        8,
    )
    assert ops.warp(empty, torch.zeros(0, 2, 8, 8, device="cuda")).shape == (0, 1, 8, 8)


@pytest.mark.parametrize("mode", ["bilinear", "bicubic", "nearest"])
def test_warp_gradients_match_cpu_on_large_input(mode):
    """A flow field over a 1000 x 1000 image: thousands of blocks, and image-gradient gathers that
    cross block boundaries."""
    x = torch.rand(1, 2, 1000, 1000, dtype=torch.float64)
    flow = torch.randn(1, 2, 1000, 1000, dtype=torch.float64) * 6
    g = torch.rand(1, 2, 1000, 1000, dtype=torch.float64)

    def run(device):
        a, f = x.to(device).requires_grad_(), flow.to(device).requires_grad_()
        out = ops.warp(a, f, mode, "border")
        return (out, *torch.autograd.grad(out, (a, f), g.to(device)))

    for got, want in zip(run("cuda"), run("cpu")):
        assert rel_err(got, want) < 1e-10


def test_fold_warp_forward_and_image_gradient_match_cpu():
    x = torch.rand(2, 1, 300, 300, dtype=torch.float64)
    g = torch.rand(2, 1, 300, 300, dtype=torch.float64)
    geometry = fold_geometry(2, 300, torch.float64)

    def run(device):
        a = x.to(device).requires_grad_()
        out = ops.fold_warp(a, *(t.to(device) for t in geometry))
        return out, torch.autograd.grad(out, a, g.to(device))[0]

    for got, want in zip(run("cuda"), run("cpu")):
        assert rel_err(got, want) < 1e-10
    flow, opacity, level = ops.fold_field(*(t.cuda() for t in geometry), 300, 300)
    for got, want in zip((flow, opacity, level), ops.fold_field(*geometry, 300, 300)):
        assert rel_err(got, want) < 1e-10


def test_torch_compile_inductor_on_cuda():
    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.head = torch.nn.Conv2d(2, 2 * 5 + 2, 3, padding=1)

        def forward(self, a, b):
            out = self.head(torch.cat([a, b], 1))
            v, h, flow = out[:, :5].softmax(1), out[:, 5:10].softmax(1), out[:, 10:]
            return ops.sepconv(ops.warp(a, flow), v, h)

    torch._dynamo.reset()
    net = Net().cuda()
    a, b = torch.rand(2, 2, 1, 32, 32, device="cuda").unbind(0)
    compiled = torch.compile(net, fullgraph=True)
    torch.testing.assert_close(compiled(a, b), net(a, b), rtol=1e-4, atol=1e-4)
    compiled(a, b).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())


def test_interpolation_network_on_cuda_matches_cpu():
    from emrestore.models import InterpolationConfig, SepConvInterpolator, interpolate

    torch.manual_seed(0)
    model = SepConvInterpolator(InterpolationConfig()).eval()
    rng = np.random.default_rng(0)
    before, after = rng.integers(0, 256, (2, 300, 260), dtype=np.uint8)
    on_cpu = interpolate(model, before, after, 0.5, tile=128, device="cpu")
    on_gpu = interpolate(model, before, after, 0.5, tile=128, device="cuda")
    assert on_gpu.shape == (300, 260)
    np.testing.assert_allclose(on_gpu, on_cpu, atol=2e-3)


def test_restore_on_cuda_detects_and_fills_like_cpu():
    from emrestore import restore
    from emrestore.phantom import make_phantom
    from emrestore.simulate import simulate_ms

    clean = make_phantom((6, 320, 320), seed=12).raw
    degraded = clean.copy()
    degraded[3] = simulate_ms(clean, 3, seed=3, mode="blank").image
    on_gpu = restore(degraded, device="cuda", tile=128)
    on_cpu = restore(degraded, device="cpu", tile=128)
    assert [r["index"] for r in on_gpu.report["restored"]] == [3]
    np.testing.assert_array_equal(on_gpu.masks, on_cpu.masks)
    assert np.abs(on_gpu.stack.astype(int) - on_cpu.stack.astype(int)).max() <= 1
    untouched = np.arange(6) != 3
    np.testing.assert_array_equal(on_gpu.stack[untouched], degraded[untouched])
    err = np.abs(on_gpu.stack[3].astype(float) - clean[3]).mean()
    assert err < 0.5 * np.abs(degraded[3].astype(float) - clean[3]).mean()


def test_hough_peaks_take_the_tables_hough_lines_returns_on_cuda():
    rng = np.random.default_rng(0)
    img = rng.random((300, 400)) < 0.01
    img[150, :] = True  # one full horizontal line
    acc, thetas, rhos = ops.hough_lines(torch.from_numpy(img).cuda())
    assert acc.is_cuda and thetas.is_cuda and rhos.is_cuda
    votes, angles, dists = ops.hough_peaks(acc, thetas, rhos, num_peaks=3)
    want = ops.hough_peaks(*ops.hough_lines(img), num_peaks=3)
    for got, ref in zip((votes, angles, dists), want):
        torch.testing.assert_close(got.cpu(), ref)
    assert abs(abs(float(angles[0])) - np.pi / 2) < 1e-9 and abs(abs(float(dists[0])) - 150) < 1
