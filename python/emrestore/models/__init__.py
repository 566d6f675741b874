"""Restoration models. The interpolation network fills missing sections from their neighbours."""

from .checkpoint import DEFAULT_MODEL, load_model, pick_device, save_model
from .interpolation import InterpolationConfig, SepConvInterpolator, parameter_count
from .tiling import interpolate
from .training import FitResult, fit

__all__ = ["DEFAULT_MODEL", "FitResult", "InterpolationConfig", "SepConvInterpolator", "fit", "interpolate",
           "load_model", "parameter_count", "pick_device", "save_model"]
