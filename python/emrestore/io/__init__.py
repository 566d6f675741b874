"""Reading and writing section stacks: multi-page TIFF, folders of PNG/TIFF sections, .npy, zarr
and HDF5 (``file.h5:dataset``).

``open_volume`` gives a lazy view read a block at a time (volumes larger than memory);
``read_stack`` reads a whole stack into memory and ``write_stack`` writes one; ``ChunkedOutput``
writes zarr/HDF5 a block at a time. Every writer goes through ``atomic_path``, so an output under
its final name is always complete.
"""

from .atomic import atomic_path, move_into_place, remove, write_json
from .chunked import ChunkedOutput, publish
from .outputs import (
    check_folder_outputs,
    check_new,
    check_output_name,
    check_outputs,
    check_replaceable,
    exists,
    names_folder,
)
from .paths import (
    HDF5_SUFFIXES,
    SECTION_SUFFIXES,
    STACK_SUFFIXES,
    TIFF_SUFFIXES,
    ZARR_SUFFIX,
    beside,
    is_chunked,
    path_format,
    split_path,
    staging_path,
)
from .sections import read_section, section_files, sections_like
from .stacks import read_stack, write_stack
from .volume import Volume, open_volume

__all__ = [
    "HDF5_SUFFIXES",
    "SECTION_SUFFIXES",
    "STACK_SUFFIXES",
    "TIFF_SUFFIXES",
    "ZARR_SUFFIX",
    "ChunkedOutput",
    "Volume",
    "atomic_path",
    "beside",
    "check_folder_outputs",
    "check_new",
    "check_output_name",
    "check_outputs",
    "check_replaceable",
    "exists",
    "is_chunked",
    "move_into_place",
    "names_folder",
    "open_volume",
    "path_format",
    "publish",
    "read_section",
    "read_stack",
    "remove",
    "section_files",
    "sections_like",
    "split_path",
    "staging_path",
    "write_json",
    "write_stack",
]
