"""Moved to ``emrestore.io``; this name stays until every caller imports from there."""

from .conventions import SUPPORTED_DTYPES as DTYPES  # noqa: F401
from .io import (  # noqa: F401
    ChunkedOutput,
    Volume,
    beside,
    is_chunked,
    open_volume,
    path_format,
    remove,
    split_path,
    staging_path,
)
