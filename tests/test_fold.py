"""fold_warp / fold_field: the published fold model, curved and partial folds, against the
pure-PyTorch reference, gradients, opcheck."""

import numpy as np
import pytest
import torch
from emrestore import ops, reference
from scipy import ndimage

needs_extension = pytest.mark.skipif(
    ops.backend != "extension", reason=f"compiled extension not loaded: {ops.fallback_reason}"
)
requires_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def curved_folds(batch=2, dtype=torch.float64):
    """Two curved partial folds with tapering bands, asymmetric sides and a soft grey band."""
    p = 6
    t = torch.linspace(0, 1, p)
    first = torch.stack([10 + 100 * t, 40 + 10 * torch.sin(3 * t)], -1)  # ends inside the section
    second = torch.stack([70 + 5 * torch.cos(2 * t), -20 + 120 * t], -1)  # crosses the section
    vertices = torch.stack([first, second])[None].repeat(batch, 1, 1, 1)
    half = torch.tensor([[0, 3, 5, 6, 4, 0], [4, 6, 8, 8, 7, 6]], dtype=torch.float64)
    amp = torch.tensor([[0, 6, 9, 9, 7, 0], [10, 12, 12, 12, 12, 10]], dtype=torch.float64)
    profile = torch.stack([half, amp], -1)[None].repeat(batch, 1, 1, 1)
    params = torch.tensor([[0.08, 1.0, 0.6, 0.35, 2.0], [0.05, 0.8, 1.0, 0.2, 0.0]])[None].repeat(
        batch, 1, 1
    )
    return vertices.to(dtype), profile.to(dtype), params.to(dtype)


def test_paper_preset_reproduces_the_published_profile():
    h, w, wl, wf, s = 96, 40, 6.0, 26.0, 0.1
    ramp = torch.arange(h, dtype=torch.float64).view(1, 1, h, 1).expand(1, 1, h, w).contiguous()
    centre = 47.0
    geometry = ops.paper_fold(
        h,
        w,
        point=(19.5, centre),
        angle=0.0,
        half_width=wl,
        fold_width=wf,
        slope=s,
        dtype=torch.float64,
    )
    out = ops.fold_warp(ramp, *geometry)[0, 0, :, w // 2]
    for y in range(h):
        d = y - centre
        if abs(d) < wl:
            assert out[y] == 0, f"band row {y} is not black"  # band of width 2 * w_l
            continue
        m = max(0.0, (wf - wl) - s * (abs(d) - wl))  # w_f - w_l at the edge, 0 at w_l + (w_f-w_l)/s
        src = min(max(y + np.sign(d) * m, 0), h - 1)  # sampled farther out: content moves in
        assert out[y].item() == pytest.approx(src, abs=1e-9), y
    # Far from the fold the section is untouched.
    assert out[0] == 0 and out[h - 1] == h - 1


def test_fold_field_is_the_flow_fold_warp_applies():
    x = torch.rand(2, 3, 90, 120, dtype=torch.float64)
    geometry = curved_folds()
    flow, alpha, level = ops.fold_field(*geometry, 90, 120)
    expected = (1 - alpha) * ops.warp(x, flow, "bilinear", "border") + alpha * level * x
    torch.testing.assert_close(ops.fold_warp(x, *geometry), expected)
    assert flow.abs().max() > 5 and ((alpha > 0) & (alpha < 1)).any()  # soft edges present


@needs_extension
def test_matches_pytorch_reference_with_gradient():
    x = torch.rand(2, 2, 90, 120, dtype=torch.float64, requires_grad=True)
    geometry = curved_folds()
    out, ref = ops.fold_warp(x, *geometry), reference.fold.fold_warp(x, *geometry)
    torch.testing.assert_close(out, ref)
    g = torch.randn_like(out)
    torch.testing.assert_close(torch.autograd.grad(out, x, g)[0], torch.autograd.grad(ref, x, g)[0])
    for got, want in zip(
        ops.fold_field(*geometry, 90, 120), reference.fold.fold_field(*geometry, 90, 120)
    ):
        torch.testing.assert_close(got, want)


def test_partial_fold_band_is_connected_and_ends_inside():
    vertices, profile, params = (t[:, :1] for t in curved_folds(batch=1))
    _, alpha, _ = ops.fold_field(vertices, profile, params, 90, 140)
    band = alpha[0, 0].numpy() > 0.5
    labels, count = ndimage.label(band)
    assert count == 1
    cols = np.nonzero(band.any(0))[0]
    assert 10 <= cols.min() and cols.max() <= 110  # the band tapers to nothing at both ends
    assert band[:, 60].sum() >= 8  # and is widest in the middle


def test_no_folds_is_identity():
    x = torch.rand(1, 1, 16, 16)
    empty = (torch.zeros(1, 0, 2, 2), torch.zeros(1, 0, 2, 2), torch.zeros(1, 0, 5))
    assert torch.equal(ops.fold_warp(x, *empty), x)


@needs_extension
def test_gradcheck_and_opcheck():
    x = torch.rand(1, 1, 24, 30, dtype=torch.float64, requires_grad=True)
    geometry = ops.paper_fold(
        24, 30, angle=0.4, half_width=2.0, fold_width=7.3, slope=0.2, dtype=torch.float64
    )
    assert torch.autograd.gradcheck(lambda a: ops.fold_warp(a, *geometry), (x,))
    torch.library.opcheck(torch.ops.emrestore.fold_warp.default, (x, *geometry))
    torch.library.opcheck(torch.ops.emrestore.fold_field.default, (*geometry, 24, 30))


@pytest.mark.parametrize(
    "shapes, match",
    [
        (((1, 1, 3, 2), (1, 1, 3, 2), (1, 1, 5)), None),
        (((1, 1, 1, 2), (1, 1, 1, 2), (1, 1, 5)), r"vertices must be \[1, F, P >= 2, 2\]"),
        (((1, 1, 3, 2), (1, 1, 3, 1), (1, 1, 5)), r"profile must be \[1, 1, 3, 2\]"),
        (((1, 1, 3, 2), (1, 1, 3, 2), (1, 1, 4)), r"params must be \[1, 1, 5\]"),
    ],
)
@needs_extension
def test_geometry_shapes_are_checked(shapes, match):
    x = torch.rand(1, 1, 8, 8)
    geometry = [torch.zeros(*s) for s in shapes]
    if match is None:
        assert ops.fold_warp(x, *geometry).shape == x.shape
    else:
        with pytest.raises(ValueError, match=match):
            ops.fold_warp(x, *geometry)


@requires_cuda
@needs_extension
def test_cuda_matches_cpu():
    x = torch.rand(2, 2, 90, 120)
    geometry = curved_folds(dtype=torch.float32)
    torch.testing.assert_close(
        ops.fold_warp(x.cuda(), *(g.cuda() for g in geometry)).cpu(),
        ops.fold_warp(x, *geometry),
        rtol=1e-4,
        atol=1e-4,
    )
