"""Pure-PyTorch references of emrestore's operators: fallback, test oracle and benchmark
baseline."""

from . import fold, hough
from .sepconv import pad_input, sepconv_loop, sepconv_unfold
from .warp import flow_to_grid, warp_grid_sample

__all__ = [
    "sepconv_loop",
    "sepconv_unfold",
    "pad_input",
    "warp_grid_sample",
    "flow_to_grid",
    "fold",
    "hough",
]
