"""Restoration metrics, as in the published protocol: PSNR and SSIM on intensities in [0, 1] (SSIM
with an 11-px Gaussian window, sigma 1.5, and the constants of the original MATLAB code, through
scikit-image), over the whole section and over the artifact mask; and the impact on segmentation:
variation of information (split, merge) and adapted Rand error of a fixed 2-D segmentation.

The segmentation (``segment``) is one documented pipeline applied identically to every method: a
boundary map from the Gaussian-smoothed section (sigma 2: membranes are dark), cell seeds at the
maxima of the distance to the thresholded membranes, seeded watershed on the boundary map.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from skimage.metrics import adapted_rand_error, structural_similarity, variation_of_information
from skimage.segmentation import watershed

from .conventions import to_unit as _to_unit


def to_unit(section) -> np.ndarray:
    """float64 in [0, 1]: integers by their dtype's range, floats as given (clipped)."""
    return _to_unit(section, np.float64, clip=True)


def _check(restored, clean, mask=None):
    if restored.shape != clean.shape or restored.ndim != 2:
        raise ValueError(
            "metrics: expected two sections [H, W] of one shape; "
            f"got {restored.shape} and {clean.shape}"
        )
    if mask is not None and mask.shape != clean.shape:
        raise ValueError(f"metrics: mask must be {clean.shape}; got {mask.shape}")


def psnr(restored, clean, mask=None) -> float:
    """PSNR in dB for intensities in [0, 1], over ``mask`` if given (inf when equal)."""
    _check(restored, clean, mask)
    diff = to_unit(restored) - to_unit(clean)
    if mask is not None:
        if not mask.any():
            return float("nan")
        diff = diff[mask]
    mse = float(np.mean(diff * diff))
    return float("inf") if mse == 0 else float(10 * np.log10(1.0 / mse))


def ssim(restored, clean, mask=None) -> float:
    """SSIM (Gaussian window sigma 1.5, 11 px; K1 0.01, K2 0.03), averaged over ``mask`` if
    given."""
    _check(restored, clean, mask)
    value, full = structural_similarity(
        to_unit(restored),
        to_unit(clean),
        data_range=1.0,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        full=True,
    )
    if mask is None:
        return float(value)
    return float(full[mask].mean()) if mask.any() else float("nan")


SEGMENT_SIGMA, MEMBRANE_QUANTILE = 2.0, 0.25  # blur, then the darkest quarter is membrane


def segment(
    section: np.ndarray,
    *,
    sigma: float = SEGMENT_SIGMA,
    membrane_quantile: float = MEMBRANE_QUANTILE,
    min_seed_distance: float = 4.0,
) -> np.ndarray:
    """The fixed 2-D segmentation used to compare methods: labels [H, W] (1..n)."""
    smooth = ndimage.gaussian_filter(to_unit(section), sigma)
    membranes = smooth < np.quantile(smooth, membrane_quantile)
    distance = ndimage.distance_transform_edt(~membranes)
    peaks = (distance == ndimage.maximum_filter(distance, size=9)) & (distance >= min_seed_distance)
    seeds, _ = ndimage.label(peaks)
    if seeds.max() == 0:
        return np.ones(section.shape, np.int32)
    return watershed(-smooth, seeds).astype(np.int32)


def segmentation_scores(restored, reference_labels) -> dict[str, float]:
    """VOI split and merge, and adapted Rand error, of ``segment(restored)`` against labels."""
    labels = segment(restored)
    split, merge = variation_of_information(reference_labels, labels)
    are, _, _ = adapted_rand_error(reference_labels, labels)
    return {
        "voi_split": float(split),
        "voi_merge": float(merge),
        "voi": float(split + merge),
        "arand": float(are),
    }


def section_scores(restored, clean, mask=None, labels=None, clean_labels=None) -> dict[str, float]:
    """PSNR and SSIM whole and masked; VOI and ARAND against the clean section's segmentation
    (``clean_labels`` if already computed: ``segment(clean)``) and, with ``labels``, against
    ground-truth labels."""
    scores = {"psnr": psnr(restored, clean), "ssim": ssim(restored, clean)}
    if mask is not None:
        scores.update(psnr_mask=psnr(restored, clean, mask), ssim_mask=ssim(restored, clean, mask))
    seg = segmentation_scores(restored, segment(clean) if clean_labels is None else clean_labels)
    scores.update({k: v for k, v in seg.items()})
    if labels is not None:
        scores.update({f"{k}_gt": v for k, v in segmentation_scores(restored, labels).items()})
    return scores
