"""hough_lines / hough_peaks: scikit-image's accumulator exactly, weighted votes, the reference,
peak suppression that holds (also across the theta seam), thresholds, opcheck, errors."""

import itertools
import math

import numpy as np
import pytest
import torch
from emrestore import ops, reference
from skimage.draw import line
from skimage.transform import hough_line

needs_extension = pytest.mark.skipif(
    ops.backend != "extension", reason=f"compiled extension not loaded: {ops.fallback_reason}"
)
requires_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def edges(shape, density, seed):
    return np.random.default_rng(seed).uniform(size=shape) < density


def tables(theta):
    return torch.from_numpy(np.cos(theta)), torch.from_numpy(np.sin(theta))


@pytest.mark.parametrize(
    "shape,theta",
    [
        ((64, 64), None),
        ((37, 121), None),
        ((200, 90), np.random.default_rng(1).uniform(-4, 4, 33)),  # unsorted, beyond [-pi/2, pi/2)
        (
            (50, 70),
            np.linspace(0, np.pi / 2, 91),
        ),  # includes 0, pi/4 and pi/2 exactly as numpy has them
    ],
)
def test_binary_accumulator_equals_scikit_image(shape, theta):
    img = edges(shape, 0.05, seed=sum(shape))
    expected, angles, dists = hough_line(img, theta=theta)
    for image in (img, img.astype(np.uint8) * 7):  # any nonzero value is one vote
        acc, thetas, rhos = ops.hough_lines(image, theta)
        assert acc.dtype == torch.int32
        np.testing.assert_array_equal(acc.numpy(), expected.astype(np.int32))
        np.testing.assert_array_equal(thetas.numpy(), angles)
        np.testing.assert_array_equal(rhos.numpy(), dists)
    ref = reference.hough.hough_lines(torch.from_numpy(img)[None], *tables(angles))
    np.testing.assert_array_equal(ref[0].numpy(), expected.astype(np.int32))


def test_dense_images():
    img = edges((300, 300), 0.8, seed=7)  # 72k voting pixels, bins with hundreds of votes
    expected, _, _ = hough_line(img, theta=np.linspace(-np.pi / 2, np.pi / 2, 30, endpoint=False))
    acc, _, _ = ops.hough_lines(img, np.linspace(-np.pi / 2, np.pi / 2, 30, endpoint=False))
    np.testing.assert_array_equal(acc.numpy(), expected.astype(np.int32))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_weighted_votes_add_the_pixel_values(dtype):
    img = edges((48, 80), 0.1, 3)
    weights = torch.from_numpy(img * np.random.default_rng(0).uniform(0.1, 2.0, img.shape)).to(
        dtype
    )
    acc, thetas, _ = ops.hough_lines(weights)
    assert acc.dtype == dtype
    ref = reference.hough.hough_lines(weights[None], *tables(thetas.numpy()))[0]
    torch.testing.assert_close(acc, ref, rtol=1e-5 if dtype == torch.float32 else 1e-12, atol=1e-5)
    ones, _, _ = ops.hough_lines(torch.from_numpy(img).to(dtype))
    torch.testing.assert_close(ones, ops.hough_lines(img)[0].to(dtype))


def test_batch_equals_images_one_by_one():
    imgs = np.stack([edges((40, 56), 0.05, s) for s in range(3)])
    acc, _, _ = ops.hough_lines(imgs)
    for b in range(3):
        torch.testing.assert_close(acc[b], ops.hough_lines(imgs[b])[0])


def test_empty_and_blank_images():
    acc, thetas, rhos = ops.hough_lines(np.zeros((10, 12), bool))
    assert acc.shape == (2 * math.ceil(math.hypot(10, 12)) + 1, 180) and acc.sum() == 0
    assert ops.hough_lines(np.zeros((0, 10, 12), np.uint8))[0].shape[0] == 0
    assert len(ops.hough_peaks(acc, thetas, rhos)[0]) == 0


def draw_lines(shape, segments):
    img = np.zeros(shape, bool)
    for r0, c0, r1, c1 in segments:
        rr, cc = line(r0, c0, r1, c1)
        img[rr, cc] = True
    return img


def line_params(r0, c0, r1, c1):
    """(theta, rho) of the line through two pixels in the (x cos + y sin) convention, theta in
    [-pi/2, pi/2)."""
    theta = math.atan2(c1 - c0, -(r1 - r0))  # normal to the direction (dx, dy) = (c1-c0, r1-r0)
    theta = (theta + math.pi / 2) % math.pi - math.pi / 2
    return theta, c0 * math.cos(theta) + r0 * math.sin(theta)


def test_peaks_find_the_drawn_lines():
    segments = [(0, 10, 199, 150), (20, 0, 60, 299), (199, 40, 0, 260)]
    img = draw_lines((200, 300), segments) | edges((200, 300), 0.01, 0)
    acc, thetas, rhos = ops.hough_lines(img)
    votes, angles, dists = ops.hough_peaks(acc, thetas, rhos, num_peaks=3)
    assert len(votes) == 3 and (votes[:-1] >= votes[1:]).all()
    found = list(zip(angles.tolist(), dists.tolist()))
    for seg in segments:
        theta, rho = line_params(*seg)
        assert min(abs(a - theta) + abs(d - rho) / 100 for a, d in found) < 0.03, (seg, found)


def test_a_line_at_the_theta_seam_is_one_peak():
    # A horizontal line votes at theta = -pi/2 (rho = -y) and near theta = +pi/2 (rho = +y):
    # one line.
    img = draw_lines((120, 160), [(60, 0, 60, 159)])
    img[61, :80] = True  # a little thickness so that both ends of the theta axis hold strong cells
    acc, thetas, rhos = ops.hough_lines(img)
    votes, angles, dists = ops.hough_peaks(acc, thetas, rhos, num_peaks=5, threshold=40)
    assert len(votes) == 1, list(zip(angles.tolist(), dists.tolist()))


@pytest.mark.parametrize("seed", range(6))
def test_peaks_are_never_within_the_suppression_window(seed):
    rng = np.random.default_rng(seed)
    r_, t_ = 61, 30
    acc = torch.from_numpy(rng.integers(0, 50, (2, r_, t_)))
    thetas = torch.from_numpy(ops.default_thetas(t_))
    rhos = torch.arange(r_, dtype=torch.float64) - r_ // 2
    md, ma = int(rng.integers(0, 6)), int(rng.integers(0, 5))
    results = ops.hough_peaks(
        acc, thetas, rhos, num_peaks=40, min_distance=md, min_angle=ma, threshold=5
    )
    for b, (votes, angles, dists) in enumerate(results):
        ti = torch.round((angles - thetas[0]) / (thetas[1] - thetas[0])).long().tolist()
        ri = (dists + r_ // 2).long().tolist()
        assert (acc[b, ri, ti] == votes).all() and (votes >= 5).all()
        for (r1, t1), (r2, t2) in itertools.combinations(zip(ri, ti), 2):
            assert not reference.hough.conflict(r1, t1, r2, t2, r_, t_, md, ma, True)
    # The kernels and the pure-Python selection agree exactly.
    thr = torch.full((1, 1, 1), 5.0, dtype=torch.float64)
    expected = reference.hough.hough_peaks(acc, thr, 40, md, ma, True)
    if ops.backend == "extension":
        got = torch.ops.emrestore.hough_peaks(acc, thr, 40, md, ma, True)
        for g, e in zip(got, expected):
            torch.testing.assert_close(g, e)


def test_line_fraction_threshold_follows_the_line_length():
    shape = (200, 200)
    img = draw_lines(shape, [(100, 0, 100, 59)])  # 30% of a horizontal chord
    acc, thetas, rhos = ops.hough_lines(img)
    assert len(ops.hough_peaks(acc, thetas, rhos, line_fraction=0.5, image_shape=shape)[0]) == 0
    votes, angles, dists = ops.hough_peaks(acc, thetas, rhos, line_fraction=0.25, image_shape=shape)
    assert len(votes) == 1 and abs(abs(dists[0]) - 100) <= 1
    with pytest.raises(ValueError, match="image_shape"):
        ops.hough_peaks(acc, thetas, rhos, line_fraction=0.5)


def test_chord_length():
    thetas = torch.tensor([-math.pi / 2, 0.0, math.pi / 4], dtype=torch.float64)
    rhos = torch.tensor([-10.0, 10.0, 500.0], dtype=torch.float64)
    length = ops.chord_length(thetas, rhos, 50, 80)
    assert length[0, 0] == pytest.approx(79)  # the row y = 10, across x = 0..79
    assert length[1, 1] == pytest.approx(49)  # the column x = 10, across y = 0..49
    assert length[2, 2] == 0  # misses the image
    diag = ops.chord_length(
        torch.tensor([-math.pi / 4], dtype=torch.float64),
        torch.tensor([0.0], dtype=torch.float64),
        50,
        50,
    )
    assert diag[0, 0] == pytest.approx(49 * math.sqrt(2))


def test_bad_input_is_rejected():
    with pytest.raises(ValueError, match=r"\[H, W\] or \[B, H, W\]"):
        ops.hough_lines(np.zeros(5, bool))
    with pytest.raises(TypeError, match="int32"):
        ops.hough_lines(np.zeros((5, 5), np.int32))
    with pytest.raises(ValueError, match="NaN"):
        ops.hough_lines(np.full((5, 5), np.nan))
    with pytest.raises(ValueError, match="theta"):
        ops.hough_lines(np.zeros((5, 5), bool), theta=np.zeros((2, 2)))
    acc, thetas, rhos = ops.hough_lines(np.zeros((5, 5), bool))
    with pytest.raises(ValueError, match="must match the accumulator"):
        ops.hough_peaks(acc, thetas[:-1], rhos)


@needs_extension
def test_kernel_checks_name_what_they_expect():
    c, s = tables(ops.default_thetas(4))
    with pytest.raises(ValueError, match=r"\[B, H, W\]"):
        torch.ops.emrestore.hough_lines(torch.zeros(4, 4, dtype=torch.bool), c, s)
    with pytest.raises(TypeError, match="float64"):
        torch.ops.emrestore.hough_lines(
            torch.zeros(1, 4, 4, dtype=torch.bool), c.float(), s.float()
        )
    with pytest.raises(ValueError, match="broadcast"):
        torch.ops.emrestore.hough_peaks(
            torch.zeros(1, 5, 4, dtype=torch.long),
            torch.zeros(1, 3, 1, dtype=torch.float64),
            3,
            1,
            1,
            False,
        )


@needs_extension
def test_opcheck():
    img = torch.from_numpy(edges((20, 24), 0.1, 0))
    c, s = tables(ops.default_thetas(12))
    for image in (
        img[None],
        img[None].to(torch.uint8),
        (img[None] * torch.rand(1, 20, 24)).double(),
    ):
        torch.library.opcheck(torch.ops.emrestore.hough_lines, (image, c, s))
    acc = torch.ops.emrestore.hough_lines(img[None], c, s)
    torch.library.opcheck(
        torch.ops.emrestore.hough_peaks,
        (acc, torch.full((1, 1, 1), 2.0, dtype=torch.float64), 4, 2, 2, True),
    )


@needs_extension
def test_compiles_in_a_graph():
    c, s = tables(ops.default_thetas(16))

    def votes(image):
        return torch.ops.emrestore.hough_lines(image > 0.5, c, s).sum(1)

    image = torch.rand(2, 30, 40)
    torch.testing.assert_close(
        torch.compile(votes, fullgraph=True, backend="aot_eager")(image), votes(image)
    )


@requires_cuda
@needs_extension
@pytest.mark.parametrize("dtype", [torch.bool, torch.float32, torch.float64])
def test_cuda_matches_cpu(dtype):
    img = torch.from_numpy(edges((3, 300, 410), 0.05, 0))
    img = img if dtype == torch.bool else img * torch.rand(img.shape, dtype=dtype)
    acc, thetas, rhos = ops.hough_lines(img)
    acc_cuda, _, _ = ops.hough_lines(img.cuda())
    torch.testing.assert_close(acc_cuda.cpu(), acc, rtol=1e-5, atol=1e-4)
    cpu = ops.hough_peaks(acc, thetas, rhos, num_peaks=8, threshold=3)
    cuda = ops.hough_peaks(acc.cuda(), thetas, rhos, num_peaks=8, threshold=3)
    for (_v1, a1, d1), (_v2, a2, d2) in zip(cpu, cuda):
        torch.testing.assert_close(a2.cpu(), a1)
        torch.testing.assert_close(d2.cpu(), d1)


@requires_cuda
@needs_extension
def test_cuda_large_image_uses_global_accumulation():
    # float64 votes over 33943 rho bins: 265 kB, more shared memory than a block may have.
    img = torch.zeros(1, 12000, 12000, dtype=torch.float64)
    g = torch.Generator().manual_seed(0)
    ys, xs = torch.randint(0, 12000, (2, 5000), generator=g)
    img[0, ys, xs] = torch.rand(5000, generator=g, dtype=torch.float64)
    c, s = tables(ops.default_thetas(30))
    torch.testing.assert_close(
        torch.ops.emrestore.hough_lines(img.cuda(), c.cuda(), s.cuda()).cpu(),
        torch.ops.emrestore.hough_lines(img, c, s),
    )
