import numpy as np
import pytest
from emrestore import metrics
from emrestore.alignment import VIEWS, align_pair, optical_flow, symmetric_flow
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


def test_every_view_of_a_translation_maps_back_to_it():
    from emrestore.alignment import dihedral, dihedral_views, undo_dihedral

    a, b, _ = _shifted(3, 2)
    inner = (slice(20, -20), slice(20, -20))
    for k, mirror, back in dihedral_views(8):
        f = (
            undo_dihedral(optical_flow(dihedral(a, k, mirror), dihedral(b, k, mirror)), k, mirror)
            @ back
        )
        np.testing.assert_allclose(np.median(f[inner].reshape(-1, 2), 0), (3, 2), atol=0.3)
    for views in VIEWS:
        f = symmetric_flow(a, b, views)
        assert f.shape == a.shape + (2,) and f.dtype == np.float32
        np.testing.assert_allclose(np.median(f[inner].reshape(-1, 2), 0), (3, 2), atol=0.3)


def test_symmetric_flow_turns_and_mirrors_with_the_sections():
    """Averaged over all eight views, the flow of a turned or mirrored pair is the turned or
    mirrored flow (its vectors turned too): no direction is preferred."""
    a, b = _texture(seed=1)[:120, :96], _texture(seed=2)[:120, :96]
    f = symmetric_flow(a, b, 8)
    turned = symmetric_flow(np.ascontiguousarray(np.rot90(a)), np.ascontiguousarray(np.rot90(b)), 8)
    # np.rot90 moves (x, y) to (y, -x)
    np.testing.assert_allclose(
        turned, np.stack([np.rot90(f[..., 1]), -np.rot90(f[..., 0])], -1), atol=1e-4
    )
    mirrored = symmetric_flow(np.ascontiguousarray(a[:, ::-1]), np.ascontiguousarray(b[:, ::-1]), 8)
    np.testing.assert_allclose(mirrored, np.stack([-f[:, ::-1, 0], f[:, ::-1, 1]], -1), atol=1e-4)
    assert np.abs(f).max() > 1  # not a trivial zero flow


def test_one_view_is_the_plain_flow_and_bad_views_are_refused():
    a, b, _ = _shifted(2)
    np.testing.assert_array_equal(symmetric_flow(a, b, 1), optical_flow(a, b))
    np.testing.assert_array_equal(align_pair(a, b, 0.5, views=1)[0], align_pair(a, b, 0.5)[0])
    for bad in (0, 3, 16):
        with pytest.raises(ValueError, match=r"views must be one of \(1, 2, 4, 8\); got"):
            symmetric_flow(a, b, bad)
        with pytest.raises(ValueError, match="views must be one of"):
            align_pair(a, b, 0.5, views=bad)


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


def _moving(dx: int, positions, crop=20, seed=0):
    """Sections of one texture at these z positions, moving by dx px per unit of z."""
    base = _texture(seed=seed)
    return [np.roll(base, int(round(k * dx)), axis=1)[crop:-crop, crop:-crop] for k in positions]


def test_velocity_weights_the_two_estimates_by_inverse_distance(monkeypatch):
    import emrestore.alignment as al

    fields = {
        "other": np.full((4, 4, 2), 6.0, np.float32),
        "outer": np.full((4, 4, 2), -2.0, np.float32),
    }
    monkeypatch.setattr(al, "optical_flow", lambda a, b: fields[b])
    np.testing.assert_allclose(al.velocity("near", "other"), 6.0)
    # Outer at half the distance: estimates 6 (direct) and 2 / 0.5 = 4, weighted 1 : 2.
    np.testing.assert_allclose(al.velocity("near", "other", "outer", 0.5), (6 + 2 * 4) / 3)
    np.testing.assert_allclose(al.velocity("near", "other", "outer", 1.0), (6 + 2) / 2)
    with pytest.raises(ValueError, match="outer_gap must be > 0"):
        al.velocity("near", "other", "outer", 0.0)


def test_outer_sections_recover_linear_motion():
    # Sections at z = -1, 0, [1], 2, 3 of a texture moving 2 px per z: the outer ones lie half a gap
    # beyond the pair, and the combined motion is the true one.
    outer_a, a, mid, b, outer_b = _moving(2, [-1, 0, 1, 2, 3])
    inner = (slice(16, -16), slice(16, -16))
    wa, wb = align_pair(a, b, 0.5, outer=(outer_a, outer_b), outer_gaps=(0.5, 0.5))
    for warped in (wa, wb):
        assert metrics.psnr(warped[inner], mid[inner]) > 35


def test_outer_sections_rescue_a_pair_whose_direct_flow_fails():
    # The far neighbour is half replaced by unrelated texture: the direct flow misreads the motion
    # there, while the outer section, a clean half gap away, still shows it.
    outer_a, a, mid, b = _moving(3, [-1, 0, 1, 2])
    b = b.copy()
    b[:, : b.shape[1] // 2] = _texture(seed=7)[20:-20, 20:-20][:, : b.shape[1] // 2]
    inner = (slice(16, -16), slice(16, -16))
    plain, _ = align_pair(a, b, 0.5)
    helped, _ = align_pair(a, b, 0.5, outer=(outer_a, None), outer_gaps=(0.5, 1.0))
    assert metrics.psnr(helped[inner], mid[inner]) > metrics.psnr(plain[inner], mid[inner]) + 3


def test_outer_indices_take_the_nearest_usable_sections_within_the_gap():
    from emrestore.alignment import outer_gaps, outer_indices

    usable = np.ones(12, bool)
    assert outer_indices(usable, 4, 6) == (3, 7)
    usable[[3, 7, 8]] = False
    assert outer_indices(usable, 4, 6) == (2, None)  # 9 lies 3 past 6, farther than the gap of 2
    assert outer_gaps(4, 6, (2, None)) == (1.0, 1.0)
    assert outer_gaps(3, 7, (2, 9)) == (0.25, 0.5)
    assert outer_indices(np.ones(30, bool), 10, 20, step=5) == (5, 25)
    assert outer_indices(np.ones(3, bool), 0, 2) == (None, None)


def test_align_pair_rejects_an_outer_section_of_another_shape():
    a = np.zeros((8, 8), np.float32)
    with pytest.raises(ValueError, match=r"outer\[1\] must have the pair's shape"):
        align_pair(a, a, 0.5, outer=(None, np.zeros((8, 9), np.float32)))


def test_flow_does_not_depend_on_the_sections_seen_before():
    from emrestore.phantom import make_phantom

    stack = make_phantom((2, 160, 160), seed=3).raw
    before = optical_flow(stack[0], stack[1])
    tiny = np.random.default_rng(0).integers(0, 255, (13, 13), dtype=np.uint8)
    optical_flow(tiny, np.roll(tiny, 1, 0))  # a small image once changed how later flows came out
    np.testing.assert_array_equal(optical_flow(stack[0], stack[1]), before)
