"""Hough transform, accumulate + peaks at 2048 x 2048 with about 46k edge pixels and 180 angles:
emrestore's kernels against OpenCV's HoughLines, scikit-image's hough_line + hough_line_peaks, and
emrestore's pure-PyTorch fallback (pytest-benchmark).

Run: pytest benchmarks/test_bench_hough.py --benchmark-enable --benchmark-columns=median,rounds
"""

import cv2
import numpy as np
import pytest
import torch
from emrestore import ops, reference
from skimage.draw import line
from skimage.transform import hough_line, hough_line_peaks

PEAKS = 10


@pytest.fixture(scope="module")
def edge_image():
    """Eight long lines plus scattered edge pixels: 46k nonzero pixels in all."""
    rng = np.random.default_rng(0)
    img = np.zeros((2048, 2048), np.uint8)
    for _ in range(8):
        r0, c0, r1, c1 = rng.integers(0, 2048, 4)
        img[line(r0, c0, r1, c1)] = 1
    while img.sum() < 46_000:
        n = 46_000 - int(img.sum())
        img[rng.integers(0, 2048, n), rng.integers(0, 2048, n)] = 1
    return img


def run_emrestore(img):
    acc, thetas, rhos = ops.hough_lines(torch.from_numpy(img))
    return ops.hough_peaks(acc, thetas, rhos, num_peaks=PEAKS)


def run_reference(img):
    thetas = ops.default_thetas()
    acc = reference.hough.hough_lines(
        torch.from_numpy(img)[None],
        torch.from_numpy(np.cos(thetas)),
        torch.from_numpy(np.sin(thetas)),
    )
    threshold = 0.5 * acc.amax().double().view(1, 1, 1)
    return reference.hough.hough_peaks(acc, threshold, PEAKS, 9, 10, True)


def run_skimage(img):
    acc, thetas, rhos = hough_line(img)
    return hough_line_peaks(acc, thetas, rhos, num_peaks=PEAKS)


def run_opencv(img):
    # OpenCV returns every local maximum above its vote threshold, sorted: its accumulate + peaks.
    return cv2.HoughLines(img, 1, np.pi / 180, 200)


IMPLS = {
    "emrestore": run_emrestore,
    "opencv": run_opencv,
    "scikit-image": run_skimage,
    "fallback": run_reference,
}


@pytest.mark.parametrize("impl", IMPLS)
def test_hough_accumulate_and_peaks(benchmark, edge_image, impl):
    if impl == "emrestore" and ops.backend != "extension":
        pytest.skip(f"compiled extension not loaded: {ops.fallback_reason}")
    assert int(edge_image.sum()) == 46_000
    result = benchmark.pedantic(
        IMPLS[impl], args=(edge_image,), rounds=7 if impl != "fallback" else 3, warmup_rounds=1
    )
    assert result is not None
