import numpy as np
import pytest
from emrestore import metrics
from emrestore.alignment import align_pair, optical_flow
from scipy import ndimage


def _texture(size=160, seed=0):
    base = ndimage.gaussian_filter(np.random.default_rng(seed).uniform(0, 1, (size, size)), 3)
    return ((base - base.min()) / (base.max() - base.min())).astype(np.float32)


def _shifted(dx: int, dy: int = 0, crop=20):
    """Three sections of one texture moving by (dx, dy) px per section."""
    base = _texture()
    return [np.roll(base, (k * dy, k * dx), axis=(0, 1))[crop:-crop, crop:-crop] for k in range(3)]


def test_optical_flow_recovers_a_translation():
    a, b, _ = _shifted(3, 2)
    f = optical_flow(a, b)  # a(p) ~ b(p + f(p))
    inner = f[20:-20, 20:-20]
    assert f.shape == a.shape + (2,) and f.dtype == np.float32
    assert np.median(inner[..., 0]) == pytest.approx(3, abs=0.3)
    assert np.median(inner[..., 1]) == pytest.approx(2, abs=0.3)


def test_align_pair_brings_both_neighbours_onto_the_middle():
    a, mid, b = _shifted(4, -3)
    before = [x.copy() for x in (a, b)]
    wa, wb = align_pair(a, b, 0.5)
    inner = (slice(16, -16), slice(16, -16))
    for raw, warped in ((a, wa), (b, wb)):
        assert metrics.psnr(warped[inner], mid[inner]) > metrics.psnr(raw[inner], mid[inner]) + 10
    np.testing.assert_array_equal(a, before[0])
    np.testing.assert_array_equal(b, before[1])


def test_align_pair_at_the_ends_returns_the_neighbour_it_sits_on():
    a, _, b = _shifted(4)
    wa, _ = align_pair(a, b, 0.0)
    np.testing.assert_allclose(wa, a, atol=1e-6)


def test_alignment_rejects_bad_input():
    with pytest.raises(ValueError, match="one shape"):
        optical_flow(np.zeros((8, 8), np.float32), np.zeros((8, 9), np.float32))
    with pytest.raises(ValueError, match=r"t must lie in \[0, 1\]"):
        align_pair(np.zeros((8, 8), np.float32), np.zeros((8, 8), np.float32), 1.5)


def test_alignment_is_safe_from_several_threads():
    """fit aligns batches in a worker thread while validation aligns in the main one."""
    from concurrent.futures import ThreadPoolExecutor

    pairs = [_shifted(d)[::2] for d in (2, 3, 4, 5)] * 4
    expected = [align_pair(a, b, 0.5) for a, b in pairs]
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda p: align_pair(p[0], p[1], 0.5), pairs))
    for (ea, eb), (ga, gb) in zip(expected, got):
        np.testing.assert_array_equal(ga, ea)
        np.testing.assert_array_equal(gb, eb)
