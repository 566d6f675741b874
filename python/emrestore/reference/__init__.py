"""Pure-PyTorch references of emrestore's operators: fallback, test oracle and benchmark baseline."""

from .sepconv import sepconv_loop, sepconv_unfold, pad_input

__all__ = ["sepconv_loop", "sepconv_unfold", "pad_input"]
