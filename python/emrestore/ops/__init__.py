"""emrestore's custom torch operators, backed by C++/CUDA kernels or the pure-PyTorch references."""

from ._extension import backend, build_info, fallback_reason
from .sepconv import sepconv
from .warp import warp

__all__ = ["sepconv", "warp", "build_info", "backend", "fallback_reason"]
