"""emrestore: restoration of serial-section electron microscopy volumes.

The hot paths are custom torch operators (``emrestore.ops``) with C++ CPU and CUDA kernels; each has
a pure-PyTorch reference (``emrestore.reference``) used as fallback, test oracle and benchmark
baseline.
"""

from . import ops  # loads the compiled operators, or selects the fallback
from .version import __version__

__all__ = ["fit", "ops", "restore", "restore_volume", "__version__"]


def __getattr__(name):
    # The workflow entry points load on first use, so `import emrestore.ops` stays light.
    if name == "fit":
        from .models import fit

        return fit
    if name == "restore":
        from .restoration import restore

        return restore
    if name == "restore_volume":
        from .blockwise import restore_volume

        return restore_volume
    raise AttributeError(f"module 'emrestore' has no attribute {name!r}")
