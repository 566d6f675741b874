"""Restoration models. The interpolation network fills missing sections from their neighbours."""

from .checkpoint import DEFAULT_MODEL, load_model, pick_device, save_model
from .interpolation import InterpolationConfig, SepConvInterpolator, parameter_count
from .losses import LOSSES, SSIM_WEIGHT, membrane_loss, membrane_map, ssim, training_loss
from .sampling import TRAIN_FLOW_VIEWS, TripletSampler, split_triplets, triplets
from .settings import KEEP_TOLERANCE_DB, FitConfig
from .tiling import interpolate
from .training import FitResult, fit

__all__ = [
    "DEFAULT_MODEL",
    "KEEP_TOLERANCE_DB",
    "LOSSES",
    "SSIM_WEIGHT",
    "TRAIN_FLOW_VIEWS",
    "FitConfig",
    "FitResult",
    "InterpolationConfig",
    "SepConvInterpolator",
    "TripletSampler",
    "fit",
    "interpolate",
    "load_model",
    "membrane_loss",
    "membrane_map",
    "parameter_count",
    "pick_device",
    "save_model",
    "split_triplets",
    "ssim",
    "training_loss",
    "triplets",
]
