"""emrestore's custom torch operators, backed by C++/CUDA kernels or the pure-PyTorch references."""

from ._extension import backend, build_info, fallback_reason
from .fold import fold_field, fold_warp, paper_fold
from .hough import chord_length, default_thetas, hough_lines, hough_peaks
from .sepconv import sepconv
from .warp import warp

__all__ = [
    "sepconv",
    "warp",
    "fold_warp",
    "fold_field",
    "paper_fold",
    "hough_lines",
    "hough_peaks",
    "chord_length",
    "default_thetas",
    "build_info",
    "backend",
    "fallback_reason",
]
