"""Whole stacks in memory: ``read_stack`` reads every section of a lazy volume, ``write_stack``
writes a stack atomically in the format its path names."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .atomic import atomic_path
from .chunked import ChunkedOutput, replace_dataset
from .outputs import check_output_name, check_replaceable, exists
from .paths import HDF5_DEFAULT_DATASET, STACK_SUFFIXES, is_chunked, path_format, split_path
from .sections import write_sections
from .volume import open_volume


def read_stack(path) -> np.ndarray:
    """Reads a stack [Z, H, W] from a multi-page TIFF, a folder of PNG/TIFF sections, a .npy file,
    a zarr array or an HDF5 dataset. A single 2-D image is a stack of one section."""
    # A writable array of its own: not a view of a memory map or of a one-section file.
    return np.require(open_volume(path)[:], requirements=["W", "O"])


def write_stack(
    path,
    stack: np.ndarray,
    *,
    overwrite: bool = False,
    section_format: str = "png",
    names: list[str] | None = None,
) -> Path:
    """Writes a stack [Z, H, W] atomically: a .tif/.tiff path gets a multi-page TIFF, .npy a numpy
    file, .zarr a zarr array, .h5[:NAME] an HDF5 dataset, any other path a folder of sections named
    ``names`` (file stems, e.g. the input's) or ``0000`` ``0001`` ... with ``section_format`` "png"
    or "tif". Refuses to replace an existing target unless ``overwrite``."""
    stack = np.asarray(stack)
    if stack.ndim != 3:
        raise ValueError(f"expected a stack [Z, H, W] to write; got shape {stack.shape}")
    check_output_name(path, folder=True)
    file, key = split_path(path)
    if exists(path) and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True (--overwrite) to replace it")
    check_replaceable(path, names)
    chunks = (1,) + tuple(min(n, 1024) for n in stack.shape[1:])
    if path_format(path) == "hdf5" and file.exists():
        replace_dataset(
            file,
            key or HDF5_DEFAULT_DATASET,
            lambda handle, name: handle.create_dataset(name, data=stack, chunks=chunks),
        )
        return file
    if is_chunked(path):
        with atomic_path(file) as tmp:
            out = ChunkedOutput(f"{tmp}:{key}" if key else tmp, stack.shape, stack.dtype, chunks)
            try:
                out.write((0, 0, 0), stack)
            finally:
                out.close()
        return file
    if file.suffix.lower() in STACK_SUFFIXES:
        with atomic_path(file) as tmp:
            if file.suffix.lower() == ".npy":
                np.save(tmp, stack)
            else:
                import tifffile

                tifffile.imwrite(tmp, stack, photometric="minisblack")
        return file
    if section_format not in ("png", "tif"):
        raise ValueError(f"section_format must be 'png' or 'tif'; got {section_format!r}")
    if section_format == "png" and stack.dtype not in (np.uint8, np.uint16):
        raise ValueError(
            f"PNG sections hold uint8 or uint16; got {stack.dtype} (write a .tif instead)"
        )
    if names is not None and (len(names) != len(stack) or len(set(names)) != len(names)):
        raise ValueError(f"names must be {len(stack)} distinct file stems; got {len(names)}")
    digits = max(4, len(str(len(stack) - 1)))
    stems = names if names is not None else [f"{z:0{digits}d}" for z in range(len(stack))]
    with atomic_path(file) as tmp:
        tmp.mkdir()
        write_sections(tmp, stack, stems, section_format)
    return file
