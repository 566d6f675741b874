"""Stack paths: which format a path names, HDF5 ``file.h5:dataset`` paths, and the names of
outputs written beside another (masks, reports, staging copies)."""

from __future__ import annotations

from pathlib import Path

ZARR_SUFFIX = ".zarr"
HDF5_SUFFIXES = (".h5", ".hdf5", ".hdf")
HDF5_DEFAULT_DATASET = "data"
TIFF_SUFFIXES = (".tif", ".tiff")
SECTION_SUFFIXES = (".png",) + TIFF_SUFFIXES
STACK_SUFFIXES = TIFF_SUFFIXES + (".npy",)


def split_path(path) -> tuple[Path, str | None]:
    """(file, dataset) of an HDF5 path ``file.h5:name``; (path, None) for everything else."""
    text = str(path)
    lower = text.lower()
    for suffix in HDF5_SUFFIXES:
        at = lower.rfind(suffix + ":")
        if at >= 0:
            key = text[at + len(suffix) + 1 :].strip("/")
            return Path(text[: at + len(suffix)]), key or None
    return Path(text), None


def path_format(path) -> str:
    """ "zarr", "hdf5", "npy", "tif" or "folder" (a folder of sections, or a new folder to
    write)."""
    file, _ = split_path(path)
    if any(part.lower().endswith(ZARR_SUFFIX) for part in file.parts):
        return "zarr"
    suffix = file.suffix.lower()
    if suffix in HDF5_SUFFIXES:
        return "hdf5"
    if suffix == ".npy":
        return "npy"
    if suffix in TIFF_SUFFIXES:
        return "tif"
    return "folder"


def is_chunked(path) -> bool:
    """Whether ``path`` names a format written block by block (zarr, HDF5)."""
    return path_format(path) in ("zarr", "hdf5")


def beside(path, tag: str, suffix: str | None = None) -> Path:
    """``path`` with ``tag`` appended to its file's stem, keeping its suffix (and an HDF5 path's
    dataset) unless ``suffix`` is given: ``out.zarr`` -> ``out_masks.zarr``, ``out_report.json``."""
    file, key = split_path(path)
    kept = STACK_SUFFIXES + (ZARR_SUFFIX,) + HDF5_SUFFIXES
    keep = file.suffix if file.suffix.lower() in kept else ""
    stem = file.name[: len(file.name) - len(keep)]
    named = file.with_name(stem + tag + (keep if suffix is None else suffix))
    return Path(f"{named}:{key}") if key and suffix is None else named


def staging_path(path) -> str:
    """Where a chunked output is written until complete: ``.STEM.partial.SUFFIX`` beside it."""
    file, key = split_path(path)
    staged = file.with_name(f".{file.stem}.partial{file.suffix}")
    return f"{staged}:{key}" if key else str(staged)
