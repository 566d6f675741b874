"""warp: compiled operator against grid_sample(align_corners=True), gradients, opcheck, compile."""

import pytest
import torch
from emrestore import ops, reference
from hypothesis import given, settings
from hypothesis import strategies as st

needs_extension = pytest.mark.skipif(
    ops.backend != "extension", reason=f"compiled extension not loaded: {ops.fallback_reason}"
)
requires_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
MODES = ("bilinear", "bicubic", "nearest")
PADDINGS = ("border", "zeros", "reflection")


def make(b, c, hin, win, h, w, scale=4.0, dtype=torch.float64, device="cpu", grad=False):
    x = torch.randn(b, c, hin, win, dtype=dtype, device=device)
    f = torch.randn(b, 2, h, w, dtype=dtype, device=device) * scale
    return x.requires_grad_(grad), f.requires_grad_(grad)


def value_and_grads(fn, x, f, mode, padding):
    out = fn(x, f, mode, padding)
    g = torch.randn(out.shape, generator=torch.Generator().manual_seed(3), dtype=out.dtype).to(
        out.device
    )
    return out, torch.autograd.grad(out, (x, f), g, allow_unused=True)


@needs_extension
@settings(max_examples=40, deadline=None)
@given(
    # grid_sample's normalised grid collapses an axis of size 1 to its one pixel whatever the flow,
    # so there is no equivalent grid to compare with: see test_single_pixel_axis_follows_the_flow.
    b=st.integers(1, 2),
    c=st.integers(1, 3),
    hin=st.integers(2, 12),
    win=st.integers(2, 12),
    h=st.integers(1, 12),
    w=st.integers(1, 12),
    scale=st.sampled_from([0.3, 3.0, 20.0]),
    mode=st.sampled_from(MODES),
    padding=st.sampled_from(PADDINGS),
)
def test_matches_grid_sample_with_gradients(b, c, hin, win, h, w, scale, mode, padding):
    x, f = make(b, c, hin, win, h, w, scale, grad=True)
    out, (gx, gf) = value_and_grads(ops.warp, x, f, mode, padding)
    ref, (rx, rf) = value_and_grads(reference.warp_grid_sample, x, f, mode, padding)
    torch.testing.assert_close(out, ref, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(gx, rx, rtol=1e-9, atol=1e-9)
    if mode == "nearest":
        assert rf is None or not rf.any()
        assert not gf.any()
    else:
        torch.testing.assert_close(gf, rf, rtol=1e-8, atol=1e-8)


@needs_extension
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("padding", PADDINGS)
def test_float32_within_1e5_of_grid_sample(mode, padding):
    x, f = make(2, 2, 64, 80, 64, 80, scale=10.0, dtype=torch.float32)
    x = torch.rand_like(x)
    torch.testing.assert_close(
        ops.warp(x, f, mode, padding),
        reference.warp_grid_sample(x, f, mode, padding),
        rtol=0,
        atol=1e-5,
    )


def test_zero_flow_is_identity_and_integer_flow_shifts():
    x = torch.arange(20.0, dtype=torch.float64).view(1, 1, 4, 5)
    zero = torch.zeros(1, 2, 4, 5, dtype=torch.float64)
    for mode in MODES:
        assert torch.equal(ops.warp(x, zero, mode), x)
    shift = zero.clone()
    shift[:, 0] = 1.0  # sample one column to the right
    out = ops.warp(x, shift, "bilinear", "border")
    assert out[0, 0, :, :4].tolist() == x[0, 0, :, 1:].tolist()
    assert out[0, 0, :, 4].tolist() == x[0, 0, :, 4].tolist()  # border clamps


@needs_extension
def test_single_pixel_axis_follows_the_flow():
    x = torch.full((1, 1, 1, 1), 2.0, dtype=torch.float64)
    f = torch.tensor([0.25, 0.0], dtype=torch.float64).view(1, 2, 1, 1)
    assert ops.warp(x, f, "bilinear", "zeros").item() == pytest.approx(1.5)  # 3/4 of the pixel
    assert ops.warp(x, f, "bilinear", "border").item() == pytest.approx(2.0)


@needs_extension
@pytest.mark.parametrize("mode", ["bilinear", "bicubic"])
def test_gradcheck(mode):
    x, f = make(1, 2, 5, 6, 5, 6, scale=2.0, grad=True)
    f.data += 0.123  # keep samples away from integer coordinates, where bilinear is not smooth
    assert torch.autograd.gradcheck(lambda a, b: ops.warp(a, b, mode, "zeros"), (x, f))


@needs_extension
@pytest.mark.parametrize("mode", MODES)
def test_opcheck(mode):
    x, f = make(2, 3, 7, 8, 6, 9, grad=True)
    torch.library.opcheck(torch.ops.emrestore.warp.default, (x, f, mode, "reflection"))
    go = torch.randn(2, 3, 6, 9, dtype=torch.float64)
    torch.library.opcheck(
        torch.ops.emrestore.warp_backward.default,
        (go, x.detach(), f.detach(), mode, "border", [True, True]),
    )


@needs_extension
def test_torch_compile_fullgraph():
    def unfold(img, flow):
        return ops.warp(img, flow * 0.5, "bilinear", "border").relu()

    torch._dynamo.reset()
    x, f = make(1, 1, 16, 16, 16, 16, dtype=torch.float32)
    compiled = torch.compile(unfold, fullgraph=True, backend="aot_eager")
    torch.testing.assert_close(compiled(x, f), unfold(x, f))


def test_inputs_not_modified_and_empty_batch():
    x, f = make(1, 2, 6, 6, 6, 6)
    before = (x.clone(), f.clone())
    ops.warp(x, f, "bicubic", "reflection")
    assert torch.equal(x, before[0]) and torch.equal(f, before[1])
    xe, fe = make(0, 2, 6, 6, 6, 6, grad=True)
    out = ops.warp(xe, fe)
    assert out.shape == (0, 2, 6, 6)
    out.sum().backward()
    assert xe.grad.shape == xe.shape


@pytest.mark.parametrize(
    "xs, fs, kwargs, err, match",
    [
        (
            (1, 1, 4, 4),
            (1, 3, 4, 4),
            {},
            ValueError,
            r"flow must be \[1, 2, H, W\].*got shape \[1, 3, 4, 4\]",
        ),
        ((2, 1, 4, 4), (1, 2, 4, 4), {}, ValueError, r"flow must be \[2, 2, H, W\]"),
        (
            (1, 4, 4),
            (1, 2, 4, 4),
            {},
            ValueError,
            r"input must be \[B, C, H, W\]; got shape \[1, 4, 4\]",
        ),
        ((1, 1, 4, 4), (1, 2, 4, 4), {"mode": "area"}, ValueError, "mode must be"),
        ((1, 1, 4, 4), (1, 2, 4, 4), {"padding": "circular"}, ValueError, "padding must be"),
    ],
)
def test_bad_input_errors(xs, fs, kwargs, err, match):
    with pytest.raises(err, match=match):
        ops.warp(torch.randn(*xs), torch.randn(*fs), **kwargs)


def test_dtype_mismatch_is_named():
    with pytest.raises(TypeError, match="float64"):
        ops.warp(torch.randn(1, 1, 4, 4), torch.randn(1, 2, 4, 4, dtype=torch.float64))


@requires_cuda
@needs_extension
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("padding", PADDINGS)
def test_cuda_matches_grid_sample(mode, padding):
    x, f = make(2, 3, 33, 40, 31, 42, scale=5.0, dtype=torch.float32, device="cuda", grad=True)
    out, (gx, gf) = value_and_grads(ops.warp, x, f, mode, padding)
    ref, (rx, rf) = value_and_grads(reference.warp_grid_sample, x, f, mode, padding)
    # float32: grid_sample's own round trip through normalised coordinates shifts a sample by up to
    # ~1e-5 pixel, which bicubic weights turn into ~1e-5 in the value.
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(gx, rx, rtol=1e-4, atol=1e-4)
    if mode != "nearest":
        torch.testing.assert_close(gf, rf, rtol=1e-3, atol=1e-3)
