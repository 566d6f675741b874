"""Whole stacks in memory: ``read_stack`` reads every section of a lazy volume, ``write_stack``
writes a stack atomically in the format its path names, ``check_outputs`` refuses outputs that
would replace the input or each other."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .atomic import atomic_path
from .chunked import ChunkedOutput
from .paths import STACK_SUFFIXES, is_chunked, split_path
from .sections import write_sections
from .volume import open_volume


def read_stack(path) -> np.ndarray:
    """Reads a stack [Z, H, W] from a multi-page TIFF, a folder of PNG/TIFF sections, a .npy file,
    a zarr array or an HDF5 dataset. A single 2-D image is a stack of one section."""
    # A writable array of its own: not a view of a memory map or of a one-section file.
    return np.require(open_volume(path)[:], requirements=["W", "O"])


def write_stack(path, stack: np.ndarray, *, overwrite: bool = False, section_format: str = "png",
                names: list[str] | None = None) -> Path:
    """Writes a stack [Z, H, W] atomically: a .tif/.tiff path gets a multi-page TIFF, .npy a numpy
    file, .zarr a zarr array, .h5[:NAME] an HDF5 dataset, any other path a folder of sections named
    ``names`` (file stems, e.g. the input's) or ``0000`` ``0001`` ... with ``section_format`` "png"
    or "tif". Refuses to replace an existing target unless ``overwrite``."""
    stack = np.asarray(stack)
    if stack.ndim != 3:
        raise ValueError(f"expected a stack [Z, H, W] to write; got shape {stack.shape}")
    file = split_path(path)[0]
    if file.exists() and not overwrite:
        raise FileExistsError(f"{file} exists; pass overwrite=True (--overwrite) to replace it")
    if is_chunked(path):
        key = split_path(path)[1]
        with atomic_path(file) as tmp:
            chunks = (1,) + tuple(min(n, 1024) for n in stack.shape[1:])
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
        raise ValueError(f"PNG sections hold uint8 or uint16; got {stack.dtype} (write a .tif instead)")
    if names is not None and (len(names) != len(stack) or len(set(names)) != len(names)):
        raise ValueError(f"names must be {len(stack)} distinct file stems; got {len(names)}")
    digits = max(4, len(str(len(stack) - 1)))
    stems = names if names is not None else [f"{z:0{digits}d}" for z in range(len(stack))]
    with atomic_path(file) as tmp:
        tmp.mkdir()
        write_sections(tmp, stack, stems, section_format)
    return file


def check_outputs(src, targets, overwrite: bool) -> None:
    """Refuses outputs (any stack path, or a report) that would replace the input ``src``, that
    coincide, or that exist unless ``overwrite``."""
    src, files = split_path(src)[0], [split_path(t)[0] for t in targets]
    if src.exists() and any(f.resolve() == src.resolve() for f in files):
        raise ValueError(f"an output would overwrite the input {src}")
    if len({f.resolve() for f in files}) != len(files):
        raise ValueError(f"output paths must differ; got {[str(t) for t in targets]}")
    existing = [str(f) for f in files if f.exists()]
    if existing and not overwrite:
        raise FileExistsError(
            f"{', '.join(existing)} exist(s); pass --overwrite (overwrite=True) to replace"
        )
