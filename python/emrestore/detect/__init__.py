"""Artifact detection on real stacks, with no trained model.

Available: missing sections (``detect_missing``: whole sections blank, constant or noise; partial
losses). Folds and precipitates follow (the Hough transform they build on is ``emrestore.ops.hough_lines``).
"""

from .ms import MissingSection, detect_missing

__all__ = ["MissingSection", "detect_missing"]
