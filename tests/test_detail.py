import numpy as np
import pytest
import torch
from emrestore import metrics
from emrestore.models import InterpolationConfig, SepConvInterpolator, interpolate
from emrestore.models.detail import add_detail, detail_source
from emrestore.phantom import make_phantom
from scipy import ndimage


def _section(seed=2, size=96):
    return make_phantom((3, size, size), seed=seed).raw[1].astype(np.float32) / 255


def test_no_detail_is_the_prediction_itself():
    c = _section()
    pred = ndimage.gaussian_filter(c, 2)
    np.testing.assert_array_equal(add_detail(pred, c, amount=0.0, sigma=4), pred)


def test_the_sources_detail_sharpens_a_blurred_prediction():
    # The source is the section itself: its detail, put back into its blurred self, restores it.
    c = _section()
    pred = ndimage.gaussian_filter(c, 2)
    half, full = (metrics.psnr(add_detail(pred, c, amount=a, sigma=4), c) for a in (0.5, 1.0))
    before = metrics.psnr(pred, c)
    assert before + 3 < half < full and full > before + 10
    out = add_detail(pred, c, amount=0.5, sigma=4)
    assert out.dtype == np.float32 and 0 <= out.min() and out.max() <= 1


def test_coarse_content_stays_the_predictions():
    rng = np.random.default_rng(0)
    source = np.clip(0.5 + 0.45 * ndimage.gaussian_filter(rng.standard_normal((128, 128)), 1), 0, 1)
    pred = np.full((128, 128), 0.5, np.float32)
    out = add_detail(pred, source.astype(np.float32), amount=1.0, sigma=2)
    fine = np.abs(out - pred).mean()
    coarse = np.abs(ndimage.gaussian_filter(out, 16) - ndimage.gaussian_filter(pred, 16)).mean()
    assert fine > 0.02 and coarse < fine / 10


def test_detail_share_defaults_to_the_config_and_is_zero_without_alignment():
    config = InterpolationConfig(detail=0.2)
    assert (
        config.detail_share() == 0.2
        and config.detail_share(0.7) == 0.7
        and config.detail_share(0) == 0.0
    )
    assert InterpolationConfig(detail=0.2, align="none").detail_share(0.7) == 0.0
    with pytest.raises(ValueError, match=r"detail must lie in \[0, 1\]; got -0.5"):
        config.detail_share(-0.5)


def test_add_detail_rejects_bad_arguments():
    x = np.zeros((8, 8), np.float32)
    with pytest.raises(ValueError, match=r"amount must lie in \[0, 1\]; got 1.5"):
        add_detail(x, x, amount=1.5, sigma=4)
    with pytest.raises(ValueError, match="sigma must be > 0 pixels; got 0"):
        add_detail(x, x, amount=0.3, sigma=0)
    with pytest.raises(ValueError, match=r"two sections \[H, W\] of one shape"):
        add_detail(x, np.zeros((8, 9), np.float32), amount=0.3, sigma=4)
    with pytest.raises(ValueError, match=r"detail must lie in \[0, 1\]"):
        InterpolationConfig(detail=-0.1)
    with pytest.raises(ValueError, match="detail_sigma must be > 0"):
        InterpolationConfig(detail_sigma=0)


def _model(**config):
    """Random head weights: kernels differ from pixel to pixel, so the prediction is no plain
    blend."""
    torch.manual_seed(0)
    model = SepConvInterpolator(
        InterpolationConfig(kernel_size=5, widths=(8, 16), head_width=8, **config)
    )
    torch.nn.init.normal_(model.head[-1].weight, std=0.3)
    return model.eval()


def test_interpolate_puts_back_the_models_share_of_detail():
    stack = make_phantom((3, 64, 64), seed=3).raw
    model = _model()
    plain = interpolate(model, stack[0], stack[2], 0.5, tile=None, detail=0.0)
    default = interpolate(model, stack[0], stack[2], 0.5, tile=None)
    assert np.abs(default - plain).max() > 0.02
    same = _model(detail=0.0)
    same.load_state_dict(model.state_dict())
    np.testing.assert_array_equal(interpolate(same, stack[0], stack[2], 0.5, tile=None), plain)
    np.testing.assert_allclose(
        interpolate(same, stack[0], stack[2], 0.5, tile=None, detail=model.config.detail),
        default,
        atol=1e-6,
    )
    np.testing.assert_allclose(
        interpolate(model, stack[0], stack[2], 0.5, tile=24), default, atol=1e-5
    )
    a, b = (stack[i].astype(np.float32) / 255 for i in (0, 2))
    source, sigma = detail_source(a, b, 0.5), model.config.detail_sigma
    np.testing.assert_allclose(
        default, add_detail(plain, source, amount=model.config.detail, sigma=sigma), atol=1e-6
    )
    tta = interpolate(
        model, stack[0], stack[2], 0.5, tile=None, tta=True, detail=0.0
    )  # detail once, after the mean
    np.testing.assert_allclose(
        interpolate(model, stack[0], stack[2], 0.5, tile=None, tta=True),
        add_detail(tta, source, amount=model.config.detail, sigma=sigma),
        atol=1e-6,
    )
    with pytest.raises(ValueError, match=r"detail must lie in \[0, 1\]; got 2"):
        interpolate(model, stack[0], stack[2], 0.5, detail=2)


def test_models_that_do_not_align_put_back_no_detail():
    stack = make_phantom((3, 64, 64), seed=3).raw
    model = _model(align="none")
    np.testing.assert_array_equal(
        interpolate(model, stack[0], stack[2], 0.5, tile=None, detail=1.0),
        interpolate(model, stack[0], stack[2], 0.5, tile=None, detail=0.0),
    )
