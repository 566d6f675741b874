"""sepconv: compiled operator against the pure-PyTorch reference, gradients, opcheck,
torch.compile."""

import math

import pytest
import torch
from emrestore import ops, reference
from hypothesis import given, settings
from hypothesis import strategies as st

requires_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

needs_extension = pytest.mark.skipif(
    ops.backend != "extension", reason=f"compiled extension not loaded: {ops.fallback_reason}"
)
PADDINGS = ("replicate", "reflect", "zeros", "none")


def make_args(b, c, h, w, k, padding, dtype=torch.float64, device="cpu", grad=False):
    extra = k - 1 if padding == "none" else 0
    x = torch.randn(b, c, h + extra, w + extra, dtype=dtype, device=device)
    v = torch.randn(b, k, h, w, dtype=dtype, device=device)
    hz = torch.randn(b, k, h, w, dtype=dtype, device=device)
    return [t.requires_grad_(grad) for t in (x, v, hz)]


def grads(fn, args, padding, seed=1):
    out = fn(*args, padding)
    # Drawn in float64 whatever the output's dtype: the same gradient for every dtype compared.
    g = torch.randn(out.shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    g = g.to(out.device, out.dtype)
    return out, torch.autograd.grad(out, args, g)


@needs_extension
@settings(max_examples=40, deadline=None)
@given(
    b=st.integers(0, 2),
    c=st.integers(1, 3),
    h=st.integers(1, 40),
    w=st.integers(1, 70),
    k=st.integers(1, 12),
    padding=st.sampled_from(PADDINGS),
)
def test_forward_and_gradients_match_reference(b, c, h, w, k, padding):
    args = make_args(b, c, h, w, k, padding, grad=True)
    out, g = grads(ops.sepconv, args, padding)
    # The unfold/einsum reference, differentiated by autograd, is the independent oracle.
    ref_out, ref_g = grads(reference.sepconv_unfold, args, padding)
    torch.testing.assert_close(out, ref_out, rtol=1e-10, atol=1e-10)
    for got, want in zip(g, ref_g):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)


@needs_extension
@pytest.mark.parametrize("k", [51, 24])
def test_float32_large_kernels_match_reference(k):
    # W spans several SIMD blocks plus a tail, so vector and per-pixel paths both run.
    x, v, h = make_args(2, 2, 37, 83, k, "replicate", dtype=torch.float32)
    v, h = v.softmax(1), h.softmax(1)  # normalised kernels, as the interpolation network predicts
    torch.testing.assert_close(
        ops.sepconv(x, v, h), reference.sepconv_loop(x, v, h), rtol=1e-5, atol=1e-5
    )


@pytest.mark.parametrize("padding", PADDINGS)
def test_loop_reference_and_its_backward_match_autograd_oracle(padding):
    args = make_args(2, 2, 9, 11, 5, padding, grad=True)
    out, g = grads(reference.sepconv_loop, args, padding)
    ref_out, ref_g = grads(reference.sepconv_unfold, args, padding)
    torch.testing.assert_close(out, ref_out)
    for got, want in zip(g, ref_g):
        torch.testing.assert_close(got, want)


def test_identity_kernel_reproduces_input():
    # A delta at the window centre (tap K//2) copies the input: checks the padding
    # offset convention.
    for k in (1, 4, 5):
        x = torch.randn(1, 2, 6, 7, dtype=torch.float64)
        delta = torch.zeros(1, k, 6, 7, dtype=torch.float64)
        delta[:, k // 2] = 1
        torch.testing.assert_close(ops.sepconv(x, delta, delta.clone()), x)


def test_shift_kernel_reads_replicated_border():
    x = torch.arange(5.0, dtype=torch.float64).view(1, 1, 1, 5)
    k = 3
    v = torch.zeros(1, k, 1, 5, dtype=torch.float64)
    v[:, 1] = 1
    h = torch.zeros(1, k, 1, 5, dtype=torch.float64)
    h[:, 2] = 1  # reads x + 1
    assert ops.sepconv(x, v, h, "replicate").flatten().tolist() == [1, 2, 3, 4, 4]
    assert ops.sepconv(x, v, h, "zeros").flatten().tolist() == [1, 2, 3, 4, 0]
    assert ops.sepconv(x, v, h, "reflect").flatten().tolist() == [1, 2, 3, 4, 3]


def test_reflect_wider_than_image_matches_numpy_convention():
    args = make_args(1, 1, 2, 3, 9, "reflect")
    torch.testing.assert_close(
        ops.sepconv(*args, "reflect"), reference.sepconv_loop(*args, "reflect")
    )


@needs_extension
def test_gradcheck_float64():
    for padding in PADDINGS:
        args = make_args(1, 2, 5, 6, 3, padding, grad=True)
        assert torch.autograd.gradcheck(lambda *a, padding=padding: ops.sepconv(*a, padding), args)


@needs_extension
def test_only_requested_gradients_are_computed():
    x, v, h = make_args(1, 1, 4, 5, 3, "replicate")
    v.requires_grad_()
    out = ops.sepconv(x, v, h)
    (gv,) = torch.autograd.grad(out.sum(), [v])
    assert gv.shape == v.shape and x.grad is None


@needs_extension
def test_non_contiguous_inputs():
    x, v, h = make_args(2, 3, 12, 20, 5, "zeros")
    xt = x.transpose(2, 3).contiguous().transpose(2, 3)
    vt = v.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2)
    hs = torch.randn(2, 5, 12, 40, dtype=torch.float64)[..., ::2]
    assert not (xt.is_contiguous() or vt.is_contiguous() or hs.is_contiguous())
    torch.testing.assert_close(
        ops.sepconv(xt, vt, hs, "zeros"), reference.sepconv_loop(x, v, hs, "zeros")
    )


def test_inputs_are_not_modified():
    x, v, h = make_args(1, 1, 8, 9, 4, "reflect")
    before = [t.clone() for t in (x, v, h)]
    ops.sepconv(x, v, h, "reflect")
    for t, b in zip((x, v, h), before):
        assert torch.equal(t, b)


def test_empty_batch():
    x, v, h = make_args(0, 1, 8, 9, 3, "replicate", grad=True)
    out = ops.sepconv(x, v, h)
    assert out.shape == (0, 1, 8, 9)
    out.sum().backward()
    assert x.grad.shape == x.shape


@pytest.mark.parametrize(
    "shapes, padding, match",
    [
        (
            ((1, 1, 8, 8), (1, 3, 8), (1, 3, 8)),
            "replicate",
            r"vertical must be \[B, K, H, W\]; got shape \[1, 3, 8\]",
        ),
        (
            ((1, 1, 8, 8), (1, 3, 8, 8), (1, 5, 8, 8)),
            "replicate",
            r"shape of vertical \[1, 3, 8, 8\]; got \[1, 5, 8, 8\]",
        ),
        (
            ((1, 1, 8, 9), (1, 3, 8, 8), (1, 3, 8, 8)),
            "replicate",
            r"must be \[1, C, 8, 8\]; got shape \[1, 1, 8, 9\]",
        ),
        (
            ((1, 1, 8, 8), (1, 3, 8, 8), (1, 3, 8, 8)),
            "none",
            r"must be \[1, C, 10, 10\]; got shape \[1, 1, 8, 8\]",
        ),
        (
            ((2, 1, 8, 8), (1, 3, 8, 8), (1, 3, 8, 8)),
            "zeros",
            r"must be \[1, C, 8, 8\]; got shape \[2, 1, 8, 8\]",
        ),
        (
            ((1, 8, 8), (1, 3, 8, 8), (1, 3, 8, 8)),
            "zeros",
            r"input must be \[B, C, H, W\]; got shape \[1, 8, 8\]",
        ),
        (((1, 1, 8, 8), (1, 3, 8, 8), (1, 3, 8, 8)), "circular", r"padding must be one of"),
    ],
)
def test_bad_shapes_name_expected_and_given(shapes, padding, match):
    tensors = [torch.randn(*s) for s in shapes]
    with pytest.raises(ValueError, match=match):
        ops.sepconv(*tensors, padding)


def test_bad_dtype_is_named():
    x = torch.randn(1, 1, 4, 4)
    v = torch.randn(1, 3, 4, 4, dtype=torch.float64)
    with pytest.raises(TypeError, match="float64"):
        ops.sepconv(x, v, v)
    xi = torch.ones(1, 1, 4, 4, dtype=torch.int32)
    with pytest.raises(TypeError, match="int32"):
        ops.sepconv(xi, xi.expand(1, 3, 4, 4), xi.expand(1, 3, 4, 4))


@needs_extension
def test_half_precision_is_rejected_on_cpu():
    x, v, h = (t.half() for t in make_args(1, 1, 4, 4, 3, "zeros"))
    with pytest.raises(TypeError, match="float32 or float64"):
        ops.sepconv(x, v, h, "zeros")


@needs_extension
@pytest.mark.parametrize("padding", PADDINGS)
def test_opcheck(padding):
    args = make_args(2, 2, 6, 7, 3, padding, grad=True)
    torch.library.opcheck(torch.ops.emrestore.sepconv.default, (*args, padding))
    go = torch.randn(2, 2, 6, 7, dtype=torch.float64)
    torch.library.opcheck(
        torch.ops.emrestore.sepconv_backward.default,
        (go, *[a.detach() for a in args], padding, [True, False, True]),
    )


@needs_extension
@pytest.mark.parametrize("backend", ["aot_eager", "inductor"])
def test_torch_compile_fullgraph(backend):
    class Interp(torch.nn.Module):
        def __init__(self, k):
            super().__init__()
            self.head = torch.nn.Conv2d(2, 4 * k, 3, padding=1)

        def forward(self, a, b):
            v1, h1, v2, h2 = self.head(torch.cat([a, b], 1)).chunk(4, 1)
            return ops.sepconv(a, v1, h1) + ops.sepconv(b, v2, h2)

    torch._dynamo.reset()
    model = Interp(5)
    a, b = torch.randn(2, 1, 1, 16, 16).unbind(0)
    compiled = torch.compile(model, fullgraph=True, backend=backend)
    torch.testing.assert_close(compiled(a, b), model(a, b), rtol=1e-5, atol=1e-5)
    compiled(a, b).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


@requires_cuda
@needs_extension
@pytest.mark.parametrize(
    "dtype,tol",
    [(torch.float64, 1e-10), (torch.float32, 1e-4), (torch.float16, 3e-2), (torch.bfloat16, 1e-1)],
)
@pytest.mark.parametrize("padding", PADDINGS)
def test_cuda_matches_cpu(dtype, tol, padding):
    args = make_args(2, 3, 33, 45, 7, padding, dtype=torch.float64, grad=True)
    ref, ref_g = grads(ops.sepconv, args, padding)
    cuda_args = [a.detach().to("cuda", dtype).requires_grad_() for a in args]
    out, g = grads(ops.sepconv, cuda_args, padding)
    torch.testing.assert_close(out.double().cpu(), ref, rtol=tol, atol=tol * math.sqrt(49))
    for got, want in zip(g, ref_g):
        torch.testing.assert_close(got.double().cpu(), want, rtol=tol, atol=tol * 49)


@requires_cuda
@needs_extension
def test_cuda_opcheck_and_device_mismatch():
    args = make_args(1, 2, 9, 10, 5, "reflect", dtype=torch.float32, device="cuda", grad=True)
    torch.library.opcheck(torch.ops.emrestore.sepconv.default, (*args, "reflect"))
    with pytest.raises(ValueError, match="one device"):
        ops.sepconv(args[0].detach().cpu(), args[1], args[2], "reflect")


@needs_extension
def test_backward_checks_gradient_shape():
    x, v, h = make_args(1, 1, 4, 4, 3, "zeros")
    with pytest.raises(
        ValueError, match=r"grad_output must be \[1, 1, 4, 4\]; got shape \[1, 1, 3, 3\]"
    ):
        torch.ops.emrestore.sepconv_backward(
            torch.zeros(1, 1, 3, 3, dtype=x.dtype), x, v, h, "zeros", [True, True, True]
        )
