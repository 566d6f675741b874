"""Loads the compiled operators, or explains once why the pure-PyTorch references stand in.

EMRESTORE_BACKEND selects: ``auto`` (default: the extension when importable, else the references
with one warning), ``extension`` (the extension or an ImportError) or ``reference`` (always the
references; the benchmarks use it for their baselines).
"""

from __future__ import annotations

import os
import warnings

import torch

BACKENDS = ("auto", "extension", "reference")

requested = os.environ.get("EMRESTORE_BACKEND", "auto").strip().lower() or "auto"
if requested not in BACKENDS:
    raise ValueError(f"EMRESTORE_BACKEND must be one of {BACKENDS}; got {requested!r}")

_C = None
fallback_reason: str | None = None
if requested == "reference":
    fallback_reason = "EMRESTORE_BACKEND=reference"
else:
    try:
        from .. import _C  # noqa: F811  (registers torch.ops.emrestore.*)
    except ImportError as exc:
        if requested == "extension":
            raise ImportError(
                "EMRESTORE_BACKEND=extension but emrestore's compiled extension failed to "
                f"import: {exc}"
            ) from exc
        fallback_reason = f"the compiled extension emrestore._C failed to import ({exc})"
        warnings.warn(
            f"emrestore: {fallback_reason}; using the slow pure-PyTorch reference operators. "
            "Rebuild with 'pip install --no-build-isolation .' against the installed torch.",
            RuntimeWarning,
            stacklevel=2,
        )

available = _C is not None
backend = "extension" if available else "reference"


def build_info() -> dict:
    """What this installation runs: package and torch versions, CUDA kernels and architectures,
    OpenMP and the CPU thread count, and which backend the operators use."""
    from ..version import __version__

    info = {
        "version": __version__,
        "backend": backend,
        "fallback_reason": fallback_reason,
        "torch_version": None,
        "torch_version_runtime": torch.__version__,
        "cuda": False,
        "cuda_requested": None,
        "cuda_version": None,
        "cuda_archs": [],
        "openmp": "OpenMP" in torch.__config__.parallel_info(),
        "num_threads": torch.get_num_threads(),
        "cpu_flags": None,
    }
    if available:
        built = dict(_C.build_info())
        archs = built.pop("cuda_archs")
        info.update(built)
        info["version"] = __version__
        info["cuda_archs"] = [a for a in archs.split(";") if a]
        info["num_threads"] = torch.get_num_threads()
    return info
