"""emrestore's custom torch operators, backed by C++/CUDA kernels or the pure-PyTorch references."""

from ._extension import backend, build_info, fallback_reason
from .sepconv import sepconv

__all__ = ["sepconv", "build_info", "backend", "fallback_reason"]
