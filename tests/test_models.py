import dataclasses
import json

import numpy as np
import pytest
import torch
from emrestore import baselines, metrics
from emrestore.alignment import align_pair
from emrestore.models import (
    KEEP_TOLERANCE_DB,
    TRAIN_FLOW_VIEWS,
    FitConfig,
    InterpolationConfig,
    SepConvInterpolator,
    TripletSampler,
    fit,
    interpolate,
    load_model,
    membrane_loss,
    membrane_map,
    save_model,
    split_triplets,
    ssim,
    training_loss,
    triplets,
)
from emrestore.models.detail import detail_source
from emrestore.phantom import make_phantom
from scipy import ndimage

TINY = InterpolationConfig(kernel_size=5, widths=(8, 16), head_width=8)


@pytest.fixture(scope="module")
def phantom():
    return make_phantom((8, 64, 64), seed=5, cell_diameter=40).raw


def _random_model(config=TINY, seed=0):
    """Random head weights, so kernels differ from pixel to pixel (a fresh model's are uniform)."""
    torch.manual_seed(seed)
    model = SepConvInterpolator(config)
    torch.nn.init.normal_(model.head[-1].weight, std=0.3)
    return model.eval()


def test_untrained_model_blends_the_neighbours_by_position():
    model = SepConvInterpolator(InterpolationConfig(kernel_size=1, widths=(8, 16)))
    a, b = torch.full((1, 1, 32, 32), 0.2), torch.full((1, 1, 32, 32), 0.8)
    for t in (0.25, 0.5, 2 / 3):
        out = model(a, b, torch.tensor([t]))
        assert torch.allclose(out, torch.full_like(out, 0.2 * (1 - t) + 0.8 * t), atol=1e-5)


def _moving_texture(dx=4, size=120):
    """Three uint8 sections of one texture moving by dx px per section."""
    base = ndimage.gaussian_filter(
        np.random.default_rng(1).uniform(0, 1, (size + 40, size + 40)), 3
    )
    base = (base - base.min()) / (base.max() - base.min()) * 255
    return np.stack([np.roll(base, k * dx, axis=1)[20:-20, 20:-20] for k in range(3)]).astype(
        np.uint8
    )


def test_untrained_flow_guided_model_equals_the_flow_baseline():
    stack = _moving_texture()
    # the baseline measures each flow once: so does a model with one view
    model = SepConvInterpolator(
        InterpolationConfig(kernel_size=1, widths=(8, 16), align="flow", flow_views=1)
    ).eval()
    masks = np.zeros(stack.shape, np.uint8)
    masks[1] = 1
    out = interpolate(
        model, stack[0], stack[2], 0.5, tile=None, detail=0.0
    )  # the blend, no detail put back
    np.testing.assert_allclose(
        out * 255, baselines.flow(stack, masks)[1], atol=0.51
    )  # the baseline rounds


def test_detail_source_is_the_pair_aligned_as_the_flow_baseline_aligns_it():
    stack = _moving_texture()
    masks = np.zeros(stack.shape, np.uint8)
    masks[1] = 1
    a, b = (stack[i].astype(np.float32) / 255 for i in (0, 2))
    source = detail_source(a, b, 0.5)
    np.testing.assert_allclose(
        source * 255, baselines.flow(stack, masks)[1], atol=0.51
    )  # the baseline rounds
    np.testing.assert_allclose(
        detail_source(a, b, 0.25, aligned=True), 0.75 * a + 0.25 * b, atol=1e-6
    )


def test_prealigned_neighbours_skip_the_flow():
    stack = _moving_texture().astype(np.float32) / 255
    model = _random_model(
        InterpolationConfig(kernel_size=5, widths=(8, 16), head_width=8, align="flow")
    )
    before, after = align_pair(stack[0], stack[2], 0.4, views=model.config.flow_views)
    # detail=0: the detail's source would be the given pair, not the pair aligned by its own flow
    expected = interpolate(model, stack[0], stack[2], 0.4, tile=None, detail=0.0)
    np.testing.assert_allclose(
        interpolate(model, before, after, 0.4, tile=None, aligned=True, detail=0.0),
        expected,
        atol=1e-6,
    )
    assert (
        np.abs(
            interpolate(model, stack[0], stack[2], 0.4, tile=None, aligned=True, detail=0.0)
            - expected
        ).max()
        > 0.01
    )


def test_sampler_aligns_the_outer_sections_to_the_middle():
    stack = _moving_texture()
    crops = {}
    for align in (False, True):
        sampler = TripletSampler(stack, [(0, 1, 2)], 64, augment=False, align=align)
        frames, ts = sampler.batch(2, seed=0)
        assert frames.shape == (2, 3, 64, 64) and torch.equal(ts, torch.tensor([0.5, 0.5]))
        crops[align] = frames.numpy()
    error = {k: float(np.abs(v[:, [0, 2]] - v[:, 1:2]).mean()) for k, v in crops.items()}
    assert error[True] < 0.25 * error[False], error


def _moving_five(dx=3, size=120):
    """Five uint8 sections at z = -1, 0, 1, 2, 3 of one texture moving by dx px per z, the middle
    three of them _moving_texture's: the pair (0, 2) with an outer section half a gap beyond
    each."""
    base = ndimage.gaussian_filter(
        np.random.default_rng(1).uniform(0, 1, (size + 40, size + 40)), 3
    )
    base = (base - base.min()) / (base.max() - base.min()) * 255
    return np.stack([np.roll(base, k * dx, axis=1)[20:-20, 20:-20] for k in range(-1, 4)]).astype(
        np.uint8
    )


def test_sampler_aligns_with_the_outer_sections():
    stack = _moving_five()
    usable = np.ones(5, bool)
    raw = float(np.abs(stack[1].astype(float) - stack[2]).mean() / 255)
    sampler = TripletSampler(
        stack, [(1, 2, 3)], 64, augment=False, align=True, outer=usable, drop_outer=0.0
    )
    assert sampler.outers == [(0, 4)]
    frames, _ = sampler.batch(2, seed=0)
    plain, _ = TripletSampler(stack, [(1, 2, 3)], 64, augment=False, align=True).batch(2, seed=0)
    assert not torch.equal(frames, plain)  # the outer sections took part...
    for f in (frames, plain):  # ...and the motion they show is the pair's
        assert float((f[:, [0, 2]] - f[:, 1:2]).abs().mean()) < 0.05 * raw
    dropped = TripletSampler(
        stack, [(1, 2, 3)], 64, augment=False, align=True, outer=usable, drop_outer=1.0
    )
    assert torch.equal(dropped.batch(2, seed=0)[0], plain)
    # Order swaps and turns carry the outer sections along with their neighbours.
    turned, _ = TripletSampler(
        stack, [(1, 2, 3)], 64, augment=True, align=True, outer=usable, drop_outer=0.0
    ).batch(8, 3)
    assert float((turned[:, [0, 2]] - turned[:, 1:2]).abs().mean()) < 0.05 * raw


def test_interpolate_uses_the_outer_sections_only_where_the_model_asks():
    stack = _moving_five().astype(np.float32) / 255
    outer_a, a, mid, b, outer_b = stack
    # detail=0: with it, the aligned pair given would also be the detail's source
    config = dict(kernel_size=5, widths=(8, 16), head_width=8, align="flow", detail=0.0)
    model = _random_model(InterpolationConfig(**config))
    kwargs = dict(tile=None, outer=(outer_a, outer_b), outer_gaps=(0.5, 0.5))
    with_outer = interpolate(model, a, b, 0.5, **kwargs)
    wa, wb = align_pair(
        a, b, 0.5, outer=(outer_a, outer_b), outer_gaps=(0.5, 0.5), views=model.config.flow_views
    )
    np.testing.assert_allclose(
        with_outer, interpolate(model, wa, wb, 0.5, tile=None, aligned=True), atol=1e-6
    )
    assert np.abs(with_outer - interpolate(model, a, b, 0.5, tile=None)).max() > 1e-3
    np.testing.assert_allclose(
        interpolate(model, a, b, 0.5, **{**kwargs, "tile": 24}), with_outer, atol=1e-5
    )
    # Read the other way round with the outer sections swapped, the 16 passes are the same ones.
    tta = interpolate(model, a, b, 0.5, tta=True, **kwargs)
    np.testing.assert_allclose(
        interpolate(
            model, b, a, 0.5, tile=None, tta=True, outer=(outer_b, outer_a), outer_gaps=(0.5, 0.5)
        ),
        tta,
        atol=1e-5,
    )
    two_section = _random_model(InterpolationConfig(**config, outer_flow=False))
    np.testing.assert_array_equal(
        interpolate(two_section, a, b, 0.5, **kwargs),
        interpolate(two_section, a, b, 0.5, tile=None),
    )
    with pytest.raises(ValueError, match=r"outer\[0\] must have the neighbours' shape"):
        interpolate(model, a, b, 0.5, outer=(a[:8], None))


def test_config_alignment_choice_and_old_checkpoints():
    assert InterpolationConfig().align == "flow"
    assert InterpolationConfig().outer_flow
    assert not InterpolationConfig.from_dict(
        {"kernel_size": 5, "widths": [8, 16], "align": "flow"}
    ).outer_flow
    assert not InterpolationConfig.from_dict(
        InterpolationConfig(outer_flow=False).to_dict()
    ).outer_flow
    assert InterpolationConfig.from_dict(InterpolationConfig().to_dict()).outer_flow
    assert (
        InterpolationConfig.from_dict(InterpolationConfig(align="none").to_dict()).align == "none"
    )
    assert (
        InterpolationConfig.from_dict({"kernel_size": 5, "widths": [8, 16]}).align == "none"
    )  # before flow
    with pytest.raises(ValueError, match="align must be one of"):
        InterpolationConfig(align="optical")
    assert InterpolationConfig().flow_views == 8
    assert (
        InterpolationConfig.from_dict(InterpolationConfig(flow_views=2).to_dict()).flow_views == 2
    )
    assert (
        InterpolationConfig.from_dict(
            {"kernel_size": 5, "widths": [8, 16], "align": "flow"}
        ).flow_views
        == 1
    )
    with pytest.raises(ValueError, match=r"flow_views must be one of \(1, 2, 4, 8\); got 3"):
        InterpolationConfig(flow_views=3)


def test_flow_guided_models_align_with_their_flow_views():
    stack = make_phantom((3, 64, 64), seed=3).raw
    a, b = (stack[i].astype(np.float32) / 255 for i in (0, 2))
    outs = []
    for views in (1, 8):
        model = _random_model(InterpolationConfig(kernel_size=5, widths=(8, 16), flow_views=views))
        wa, wb = align_pair(a, b, 0.5, views=views)
        outs.append(interpolate(model, a, b, 0.5, tile=None, detail=0.0))
        np.testing.assert_allclose(
            outs[-1],
            interpolate(model, wa, wb, 0.5, tile=None, aligned=True, detail=0.0),
            atol=1e-6,
        )
    assert np.abs(outs[0] - outs[1]).max() > 1e-3  # the averaged flow is another flow


def test_tta_with_eight_views_aligns_once_and_equals_aligning_every_pass(monkeypatch):
    from emrestore.models import tiling

    stack = make_phantom((5, 64, 64), seed=4).raw
    secs = [stack[i].astype(np.float32) / 255 for i in range(5)]
    model = _random_model(InterpolationConfig(kernel_size=5, widths=(8, 16), flow_views=8))
    kwargs = dict(tile=None, tta=True, outer=(secs[0], secs[4]), outer_gaps=(0.5, 0.5))
    calls = []
    monkeypatch.setattr(
        tiling, "align_pair", lambda *a, **k: calls.append(1) or align_pair(*a, **k)
    )
    fast = interpolate(model, secs[1], secs[3], 0.5, **kwargs)
    assert len(calls) == 1
    monkeypatch.setattr(tiling, "ALL_VIEWS", None)  # the general path: every pass aligns anew
    slow = interpolate(model, secs[1], secs[3], 0.5, **kwargs)
    assert len(calls) == 17
    np.testing.assert_allclose(fast, slow, atol=1e-4)


def test_output_is_a_convex_combination_of_neighbour_pixels():
    model = _random_model()
    a, b = torch.rand(2, 1, 32, 32), torch.rand(2, 1, 32, 32)
    v1, h1, v2, h2 = model.kernels(a, b, torch.tensor([0.3, 0.6]))
    total = v1.sum(1) * h1.sum(1) + v2.sum(1) * h2.sum(1)
    assert torch.allclose(total, torch.ones_like(total), atol=1e-5)
    assert min(k.min() for k in (v1, h1, v2, h2)) >= 0
    out = model(a, b, torch.tensor([0.3, 0.6]))
    assert out.min() >= min(a.min(), b.min()) - 1e-6 and out.max() <= max(a.max(), b.max()) + 1e-6


def test_receptive_radius_bounds_the_dependence():
    """Changing input pixels just beyond the radius leaves the centre output pixel as it was."""
    model = _random_model(InterpolationConfig(kernel_size=5, widths=(4, 4, 4), head_width=4))
    r = model.config.receptive_radius
    size = 2 * r + 16
    a, b = torch.rand(1, 1, size, size), torch.rand(1, 1, size, size)
    c = size // 2
    ref = model(a, b, torch.tensor([0.5]))[0, 0, c, c]
    a2 = a.clone()
    a2[..., : c - r, :] = 0
    a2[..., c + r + 1 :, :] = 0
    a2[..., :, : c - r] = 0
    a2[..., :, c + r + 1 :] = 0
    assert torch.allclose(model(a2, b, torch.tensor([0.5]))[0, 0, c, c], ref, atol=1e-6)
    a3 = a2.clone()
    a3[..., c - r + 2 : c + r - 1, c] += 0.5  # inside the radius: it must matter
    assert not torch.allclose(model(a3, b, torch.tensor([0.5]))[0, 0, c, c], ref)


@pytest.mark.parametrize("align", ["flow", "none"])
@pytest.mark.parametrize("tile", [16, 40, 64])
def test_tiled_inference_equals_whole_section(tile, align):
    model = _random_model(
        InterpolationConfig(kernel_size=5, widths=(8, 16), head_width=8, align=align)
    )
    rng = np.random.default_rng(0)
    a, b = rng.random((90, 77)).astype(np.float32), rng.random((90, 77)).astype(np.float32)
    whole = interpolate(model, a, b, 0.4, tile=None)
    tiled = interpolate(model, a, b, 0.4, tile=tile)
    assert whole.shape == (90, 77)
    np.testing.assert_allclose(tiled, whole, atol=1e-5)


def test_test_time_augmentation_is_equivariant_and_order_free():
    # The self-ensemble covers every rotation, mirror image and order: rotating or mirroring the
    # input pair, or reading it the other way round, gives the same section (rotated or mirrored).
    # A transform undone wrongly breaks this; a single pass does not have the property. (A
    # flow-guided model aligns the pair first, and optical flow is only nearly equivariant.)
    model = _random_model(
        InterpolationConfig(kernel_size=5, widths=(8, 16), head_width=8, align="none")
    )
    rng = np.random.default_rng(1)
    a, b = rng.random((40, 56)).astype(np.float32), rng.random((40, 56)).astype(np.float32)
    out = interpolate(model, a, b, 0.3, tile=None, tta=True)
    assert out.shape == (40, 56) and out.dtype == np.float32
    turned = interpolate(model, np.rot90(a), np.rot90(b), 0.3, tile=None, tta=True)
    np.testing.assert_allclose(turned, np.rot90(out), atol=1e-5)
    mirrored = interpolate(model, a[::-1], b[::-1], 0.3, tile=None, tta=True)
    np.testing.assert_allclose(mirrored, out[::-1], atol=1e-5)
    swapped = interpolate(model, b, a, 0.7, tile=None, tta=True)
    np.testing.assert_allclose(swapped, out, atol=1e-5)
    np.testing.assert_allclose(interpolate(model, a, b, 0.3, tile=24, tta=True), out, atol=1e-5)
    single = interpolate(model, np.rot90(a), np.rot90(b), 0.3, tile=None)
    assert np.abs(single - np.rot90(interpolate(model, a, b, 0.3, tile=None))).max() > 1e-3
    flow_guided = _random_model(
        InterpolationConfig(kernel_size=5, widths=(8, 16), head_width=8, align="flow")
    )
    assert interpolate(flow_guided, a, b, 0.3, tile=None, tta=True).shape == (40, 56)


def test_interpolate_rejects_bad_input():
    model = _random_model()
    with pytest.raises(ValueError, match="differ in shape"):
        interpolate(model, np.zeros((8, 8), np.uint8), np.zeros((8, 9), np.uint8))
    with pytest.raises(ValueError, match=r"2-D sections \[H, W\]"):
        interpolate(model, np.zeros((2, 8, 8)), np.zeros((2, 8, 8)))
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        interpolate(model, np.zeros((8, 8)), np.zeros((8, 8)), t=1.0)
    with pytest.raises(ValueError, match="NaN"):
        interpolate(model, np.full((8, 8), np.nan, np.float32), np.zeros((8, 8), np.float32))
    with pytest.raises(ValueError, match="multiples of"):
        model(torch.zeros(1, 1, 9, 9), torch.zeros(1, 1, 9, 9), torch.tensor([0.5]))


def test_triplets_skip_excluded_sections_and_cover_runs():
    clean = np.array([1, 1, 0, 1, 1, 1], bool)
    trips = triplets(clean, max_gap=3)
    assert all(clean[a] and clean[z] and clean[b] for a, z, b in trips)
    assert (1, 3, 4) in trips and (0, 1, 3) in trips  # across the excluded section 2
    assert all(1 <= z - a <= 3 and 1 <= b - z <= 3 for a, z, b in trips)


def test_z_step_triplets_start_at_every_offset_and_keep_validation_apart():
    clean = np.ones(40, bool)
    clean[17] = False
    trips = triplets(clean, max_gap=2, z_step=3)
    assert all(
        (z - a) % 3 == 0 and (b - z) % 3 == 0 and 3 <= z - a <= 6 and 3 <= b - z <= 6
        for a, z, b in trips
    )
    assert {z % 3 for _, z, _ in trips} == {0, 1, 2}  # every offset, not every third section only
    assert not any(17 in t for t in trips)
    train, val = split_triplets(trips, val_fraction=0.1, z_step=3)
    targets = {z for _, z, _ in val}
    assert targets and all(z - a == 3 and b - z == 3 for a, z, b in val)
    # the sections between a validation target and its neighbours are near copies of it: not
    # trained on
    assert all(abs(z - v) >= 3 for _, z, _ in train for v in targets)
    assert triplets(clean, max_gap=2) == triplets(clean, max_gap=2, z_step=1)


def test_batches_depend_on_the_seed_not_on_the_threads(phantom, tmp_path):
    kw = {
        "minutes": None,
        "iterations": 4,
        "config": TINY,
        "batch_size": 2,
        "crop": 32,
        "detect": False,
        "progress": False,
        "z_step": 2,
        "device": "cpu",  # bit-identical training steps; a GPU's may differ from run to run
    }
    one = fit(phantom, tmp_path / "one", workers=1, **kw)
    three = fit(phantom, tmp_path / "three", workers=3, **kw)
    assert one.record["z_step"] == 2
    for key, value in one.model.state_dict().items():
        assert torch.equal(value, three.model.state_dict()[key]), key
    with pytest.raises(ValueError, match="z_step must be a positive integer"):
        fit(
            phantom,
            tmp_path / "bad",
            minutes=None,
            iterations=1,
            z_step=0,
            detect=False,
            progress=False,
        )


def test_ssim_loss_term_is_the_metric_and_differentiable(phantom):
    """The training SSIM equals the evaluation metric's (scikit-image); "mse+ssim" adds a
    differentiable penalty for a blurred prediction and is zero for a perfect one."""
    clean = phantom[3] / 255.0
    noisy = np.clip(clean + np.random.default_rng(0).normal(0, 0.1, clean.shape), 0, 1)

    def as_t(a):
        return torch.tensor(a, dtype=torch.float64)[None, None]

    assert float(ssim(as_t(noisy), as_t(clean))) == pytest.approx(
        metrics.ssim(noisy, clean), abs=1e-6
    )
    pred = as_t(ndimage.gaussian_filter(clean, 3)).float().requires_grad_()
    target = as_t(clean).float()
    value = training_loss(pred, target, "mse+ssim")
    value.backward()
    assert value > torch.nn.functional.mse_loss(pred, target) and pred.grad.abs().sum() > 0
    assert float(training_loss(target, target, "mse+ssim")) == pytest.approx(0, abs=1e-6)
    with torch.no_grad():
        heavier = training_loss(pred, target, "mse+ssim", ssim_weight=1.5)
        mse = torch.nn.functional.mse_loss(pred, target)
        assert float(heavier - mse) == pytest.approx(3 * float(value.detach() - mse), rel=1e-5)
        assert float(training_loss(pred, target, "mse+ssim", ssim_weight=0.0)) == pytest.approx(
            float(mse)
        )


def test_membrane_term_follows_the_segmentations_membranes(phantom):
    """The soft membrane mask is the darkest quarter of the blurred section, as the harness's
    segmentation finds it; the term is zero for a perfect or merely brighter prediction, positive
    and differentiable for a blurred or shifted one, and adds weight x itself to any loss."""
    clean = phantom[3] / 255.0

    def as_t(a):
        return torch.tensor(a, dtype=torch.float32)[None, None]

    target = as_t(clean)
    scale = torch.full((1,), 0.01)
    soft = membrane_map(target, scale)[0, 0].numpy()
    smooth = ndimage.gaussian_filter(clean, 2.0)[6:-6, 6:-6]  # the term blurs inside the image only
    assert np.mean((soft > 0.5) == (smooth < np.quantile(smooth, 0.25))) > 0.99
    assert float(membrane_loss(target, target)) == 0
    assert float(membrane_loss(target + 0.1, target)) == pytest.approx(0, abs=1e-3)
    for wrong in (ndimage.gaussian_filter(clean, 3), np.roll(clean, 3, axis=1)):
        pred = as_t(wrong).requires_grad_()
        value = membrane_loss(pred, target)
        value.backward()
        assert float(value.detach()) > 0.02
        assert torch.isfinite(pred.grad).all() and pred.grad.abs().sum() > 0
    with torch.no_grad():
        pred = as_t(ndimage.gaussian_filter(clean, 3))
        for kind in ("l1+grad", "mse+ssim"):
            added = training_loss(pred, target, kind, membrane_weight=2.0) - training_loss(
                pred, target, kind
            )
            assert float(added) == pytest.approx(2 * float(membrane_loss(pred, target)), rel=1e-5)


def test_tiny_model_overfits_a_tiny_triplet_set(phantom, tmp_path):
    """On one triplet, unaugmented, the network must get far closer to the middle than the blend.
    It reads the pair aligned as in training, by one flow (``TRAIN_FLOW_VIEWS``)."""
    stack = phantom[:3]
    config = dataclasses.replace(TINY, flow_views=TRAIN_FLOW_VIEWS)
    result = fit(
        stack,
        tmp_path / "m",
        minutes=None,
        iterations=250,
        config=config,
        batch_size=4,
        crop=64,
        lr=3e-3,
        detect=False,
        val_fraction=0,
        max_gap=1,
        augment=False,
        progress=False,
        loss="mse",
    )
    out = interpolate(result.model, stack[0], stack[2], 0.5, detail=0.0)  # the network's own output
    blend = (stack[0].astype(np.float32) + stack[2]) / 2
    fitted, baseline = (
        metrics.psnr(out, stack[1] / 255.0),
        metrics.psnr(blend / 255.0, stack[1] / 255.0),
    )
    assert fitted > baseline + 2.5, (fitted, baseline)


def test_checkpoint_round_trip_and_resume(phantom, tmp_path):
    folder = tmp_path / "m"
    first = fit(
        phantom,
        folder,
        minutes=None,
        iterations=3,
        config=TINY,
        batch_size=2,
        crop=32,
        detect=False,
        progress=False,
    )
    assert {p.name for p in folder.iterdir()} == {
        "model.safetensors",
        "last.safetensors",
        "best.safetensors",
        "config.json",
        "optimizer.pt",
    }
    loaded, config = load_model(folder)
    assert config["model"]["kernel_size"] == 5 and config["training"]["iterations"] == 3
    for key, value in first.model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key].cpu(), value.cpu()), key
    again = fit(
        phantom,
        folder,
        minutes=None,
        iterations=2,
        detect=False,
        progress=False,
        crop=32,
        resume=True,
    )
    assert again.record["iterations"] == 5
    assert json.loads((folder / "config.json").read_text())["training"]["iterations"] == 5
    last = load_model(folder, last=True)[0].state_dict()  # trained on from the first fit's weights
    assert any(not torch.equal(loaded.state_dict()[k], v) for k, v in last.items())
    with pytest.raises(ValueError, match="not both"):
        load_model(folder, last=True, best=True)


def _state(folder, **which):
    return load_model(folder, **which)[0].state_dict()


def _same(a, b):
    return all(torch.equal(v.cpu(), b[k].cpu()) for k, v in a.items())


def test_fit_keeps_the_last_weights_unless_they_validate_far_worse(phantom, tmp_path):
    folder = tmp_path / "m"
    first = fit(
        phantom,
        folder,
        minutes=None,
        iterations=3,
        config=TINY,
        batch_size=2,
        crop=32,
        detect=False,
        progress=False,
    )
    best = first.record["best"]
    assert best["iteration"] == 3 and best["val_psnr"] == max(
        h["val_psnr"] for h in first.record["history"]
    )
    assert all(np.isfinite(h["val_voi"]) for h in first.record["history"])  # logged beside PSNR
    assert first.record["kept"] == {
        "weights": "last",
        "iteration": 3,
        "val_psnr": first.record["val_psnr"],
    }
    assert _same(_state(folder), _state(folder, last=True)) and _same(
        _state(folder), _state(folder, best=True)
    )
    # Two more steps at a sane rate: the last weights validate close to the best and are kept.
    fit(
        phantom,
        folder,
        minutes=None,
        iterations=2,
        detect=False,
        progress=False,
        crop=32,
        resume=True,
        lr=1e-4,
    )
    record = json.loads((folder / "config.json").read_text())["training"]
    assert record["iterations"] == 5 and record["kept"]["weights"] == "last"
    assert record["val_psnr"] >= record["best"]["val_psnr"] - KEEP_TOLERANCE_DB
    assert _same(_state(folder), _state(folder, last=True))
    # A step size that wrecks the network: the last weights validate far below the best, so the
    # best-validated ones are kept.
    before = record["best"]
    again = fit(
        phantom,
        folder,
        minutes=None,
        iterations=3,
        detect=False,
        progress=False,
        crop=32,
        resume=True,
        lr=50.0,
    )
    assert (
        again.record["val_psnr"] < before["val_psnr"] - KEEP_TOLERANCE_DB
        and again.record["best"] == before
    )
    assert again.record["kept"] == {"weights": "best", **before}
    shipped = _state(folder)
    assert _same(shipped, _state(folder, best=True)) and _same(again.model.state_dict(), shipped)
    assert not _same(shipped, _state(folder, last=True))
    # keep="best": the best-validated weights whatever the last ones score.
    other = fit(
        phantom,
        tmp_path / "b",
        minutes=None,
        iterations=4,
        config=TINY,
        batch_size=2,
        crop=32,
        detect=False,
        progress=False,
        keep="best",
    )
    assert (
        other.record["kept"]["weights"] == "best"
        and other.record["kept"]["iteration"] == other.record["best"]["iteration"]
    )
    assert _same(_state(tmp_path / "b"), _state(tmp_path / "b", best=True))


def test_a_diverged_fit_goes_on_from_its_best_weights(phantom, tmp_path):
    """A step size that wrecks the network sends validation far below its best: the fit goes back
    to the best weights with half the step size and says so, rather than train on a dead network."""
    folder = tmp_path / "m"
    first = fit(
        phantom,
        folder,
        minutes=None,
        iterations=3,
        config=TINY,
        batch_size=2,
        crop=32,
        detect=False,
        progress=False,
    )
    assert "restarts" not in first.record and first.record["clip_norm"] is None
    again = fit(
        phantom,
        folder,
        minutes=None,
        iterations=4,
        detect=False,
        progress=False,
        crop=32,
        resume=True,
        lr=50.0,
        clip_norm=None,
        val_minutes=0,
    )
    restarts = again.record["restarts"]
    assert restarts and restarts[0]["from"] == 3 and restarts[0]["lr"] == 25.0
    assert all(r["val_psnr"] < first.record["best"]["val_psnr"] - 1 for r in restarts)
    assert [r["lr"] for r in restarts] == [50.0 / 2 ** (i + 1) for i in range(len(restarts))]


def test_load_model_rejects_missing_and_corrupt_folders(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a model folder"):
        load_model(tmp_path)
    save_model(SepConvInterpolator(TINY), tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"not weights")
    with pytest.raises(ValueError, match="corrupt weights"):
        load_model(tmp_path)
    (tmp_path / "config.json").write_text("{")
    with pytest.raises(ValueError, match="corrupt config"):
        load_model(tmp_path)


def test_fit_rejects_bad_input(tmp_path):
    with pytest.raises(ValueError, match=r"stack \[Z, H, W\]"):
        fit(np.zeros((8, 8), np.uint8), tmp_path, iterations=1)
    with pytest.raises(ValueError, match="at least 3 sections"):
        fit(np.zeros((2, 8, 8), np.uint8), tmp_path, iterations=1)
    with pytest.raises(TypeError, match="uint8, uint16"):
        fit(np.zeros((4, 8, 8), np.int64), tmp_path, iterations=1)
    with pytest.raises(ValueError, match="no clean section"):
        fit(np.zeros((4, 8, 8), np.uint8), tmp_path, iterations=1, exclude=[0, 1, 0, 1])
    for weight in (-0.5, float("nan")):
        with pytest.raises(ValueError, match="ssim_weight must be a finite number >= 0"):
            fit(
                np.zeros((4, 8, 8), np.uint8),
                tmp_path,
                iterations=1,
                loss="mse+ssim",
                ssim_weight=weight,
            )
        with pytest.raises(ValueError, match="membrane_weight must be a finite number >= 0"):
            fit(np.zeros((4, 8, 8), np.uint8), tmp_path, iterations=1, membrane_weight=weight)
    with pytest.raises(ValueError, match="keep must be one of"):
        fit(np.zeros((4, 8, 8), np.uint8), tmp_path, iterations=1, keep="first")


def test_fit_config_defaults_and_checks():
    """FitConfig holds fit's former keyword defaults and makes fit's checks, with its messages."""
    assert dataclasses.asdict(FitConfig()) == {
        "minutes": 30.0,
        "iterations": None,
        "batch_size": 8,
        "crop": 128,
        "lr": 2e-3,
        "weight_decay": 1e-4,
        "loss": "l1+grad",
        "ssim_weight": 0.5,
        "membrane_weight": 0.0,
        "max_gap": 3,
        "z_step": 1,
        "detect": True,
        "augment": True,
        "val_fraction": 0.1,
        "val_size": 512,
        "val_minutes": 0.5,
        "checkpoint_minutes": 2.0,
        "clip_norm": None,
        "keep": "last",
        "seed": 0,
        "workers": None,
    }
    bad = [
        ({"loss": "l2"}, "loss must be one of"),
        ({"keep": "first"}, "keep must be one of"),
        ({"minutes": None}, "give a budget"),
        ({"z_step": 0}, "z_step must be a positive integer"),
        ({"z_step": 1.5}, "z_step must be a positive integer"),
    ]
    for name in ("ssim_weight", "membrane_weight"):
        bad += [({name: w}, f"{name} must be a finite number >= 0") for w in (-1.0, float("inf"))]
    for fields, message in bad:
        with pytest.raises(ValueError, match=f"^fit: {message}"):
            FitConfig(**fields)
    with pytest.raises(ValueError, match="give a budget"):  # overrides are checked too
        FitConfig.resolve(FitConfig(iterations=5), minutes=None, iterations=None)


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"minutes": float("nan")}, "minutes must be a finite number > 0"),
        ({"minutes": 0}, "minutes must be a finite number > 0"),
        ({"minutes": -1}, "minutes must be a finite number > 0"),
        ({"iterations": 0}, "iterations must be an integer >= 1"),
        ({"batch_size": 0}, "batch_size must be an integer >= 1"),
        ({"crop": 0}, "crop must be an integer >= 1"),
        ({"max_gap": 0}, "max_gap must be an integer >= 1"),
        ({"workers": 0}, "workers must be an integer >= 1"),
        ({"seed": -1}, "seed must be an integer >= 0"),
        ({"lr": 0.0}, "lr must be a finite number > 0"),
        ({"lr": float("inf")}, "lr must be a finite number > 0"),
        ({"clip_norm": 0.0}, "clip_norm must be a finite number > 0"),
        ({"val_fraction": 1.0}, r"val_fraction must be in \[0, 1\)"),
    ],
)
def test_fit_config_refuses_budgets_and_sizes_that_cannot_train(fields, message):
    # Each of these ran without end, saved an untrained model or failed deep inside the loop.
    with pytest.raises(ValueError, match=f"^fit: {message}"):
        FitConfig(**fields)


def test_fit_overrides_replace_settings_and_unknown_names_raise(phantom, tmp_path):
    settings = FitConfig(minutes=None, iterations=2, batch_size=2, crop=32, detect=False)
    assert FitConfig.resolve(settings) is settings
    assert FitConfig.resolve(settings, seed=3) == dataclasses.replace(settings, seed=3)
    assert FitConfig.resolve(None, iterations=4) == FitConfig(iterations=4)
    with pytest.raises(TypeError, match=r"unknown setting\(s\) 'bogus'.*minutes, iterations"):
        fit(phantom, tmp_path / "x", settings, bogus=1, progress=False)
    with pytest.raises(TypeError, match="'bogus'"):
        fit(phantom, tmp_path / "x", minutes=None, iterations=1, bogus=1, progress=False)
    assert not (tmp_path / "x").exists()
    # Settings plus overrides train exactly as the same keywords alone.
    given = fit(phantom, tmp_path / "a", settings, config=TINY, seed=3, progress=False)
    plain = fit(
        phantom,
        tmp_path / "b",
        minutes=None,
        iterations=2,
        batch_size=2,
        crop=32,
        detect=False,
        seed=3,
        config=TINY,
        progress=False,
    )
    assert _same(given.model.state_dict(), plain.model.state_dict())


def test_fit_saves_its_settings_and_folders_without_them_load(phantom, tmp_path):
    folder = tmp_path / "m"
    settings = FitConfig(minutes=None, iterations=2, batch_size=2, crop=32, detect=False, seed=2)
    fit(phantom, folder, settings, config=TINY, loss="mse+ssim", progress=False)
    config = json.loads((folder / "config.json").read_text())
    assert config["fit"] == dataclasses.asdict(dataclasses.replace(settings, loss="mse+ssim"))
    assert FitConfig(**config["fit"]) == dataclasses.replace(settings, loss="mse+ssim")
    assert config["training"]["loss"] == "mse+ssim" and config["training"]["crop"] == 32
    # A folder from before the settings were saved loads, and resumes.
    del config["fit"]
    (folder / "config.json").write_text(json.dumps(config))
    _, old = load_model(folder)
    assert "fit" not in old and old["training"]["iterations"] == 2
    again = fit(phantom, folder, settings, resume=True, progress=False)
    assert again.record["iterations"] == 4
    assert json.loads((folder / "config.json").read_text())["fit"] == dataclasses.asdict(settings)
    assert FitConfig(batch_size=np.int64(2), detect=np.bool_(False)).to_dict()["batch_size"] == 2
    save_model(SepConvInterpolator(TINY), tmp_path / "plain")  # not from fit: no settings
    assert "fit" not in load_model(tmp_path / "plain")[1]
    assert "model" in load_model()[1]  # the shipped folder


def test_shipped_model_loads():
    model, config = load_model()
    assert config["training"]["iterations"] > 0
    assert model.source == "default"


def test_weights_with_nan_are_refused_on_load_and_in_inference(tmp_path):
    from emrestore.models import DEFAULT_MODEL
    from safetensors.torch import load_file, save_file

    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "config.json").write_bytes((DEFAULT_MODEL / "config.json").read_bytes())
    state = load_file(str(DEFAULT_MODEL / "model.safetensors"))
    name = next(k for k, v in state.items() if v.is_floating_point() and v.numel() > 1)
    state[name] = state[name].clone()
    state[name].view(-1)[0] = float("nan")
    save_file(state, str(folder / "model.safetensors"))
    with pytest.raises(ValueError, match=f"corrupt weights \\(NaN or infinite values in {name}"):
        load_model(folder)
    # Weights damaged in memory: the section is refused, not written as zeros.
    model, _ = load_model()
    with torch.no_grad():
        next(model.parameters()).fill_(float("nan"))
    a = np.random.default_rng(0).random((64, 64), dtype=np.float32)
    with pytest.raises(ValueError, match="gave NaN or infinite values"):
        interpolate(model, a, a, 0.5, tile=None)
