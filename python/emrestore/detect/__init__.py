"""Artifact detection on real stacks, with no trained model: missing sections (whole and partial),
support-film folds (dark-band response, weighted Hough transform, tracing) and staining
precipitates (dark compact blobs against the local background)."""

from .ms import MissingSection, detect_missing
from .sff import Fold, FoldDetection, band_response, detect_folds
from .sp import detect_precipitates
from .stack import StackDetection, detect_stack

__all__ = [
    "Fold",
    "FoldDetection",
    "MissingSection",
    "StackDetection",
    "band_response",
    "detect_folds",
    "detect_missing",
    "detect_precipitates",
    "detect_stack",
]
