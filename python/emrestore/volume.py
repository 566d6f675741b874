"""Volumes larger than memory: a lazy view [Z, H, W] of a stack in any supported format, read a
block at a time, and chunked outputs (zarr, HDF5) written a block at a time.

Paths name a zarr array by its folder (``vol.zarr``, or ``vol.zarr/raw`` inside a group) and an
HDF5 dataset by ``file.h5:name`` (``file.h5`` alone when the file holds one 3-D dataset). TIFF
stacks are read page by page, ``.npy`` files memory-mapped and folders of sections one file per
section, so no reader loads more than the block asked for.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

ZARR_SUFFIX = ".zarr"
HDF5_SUFFIXES = (".h5", ".hdf5", ".hdf")
HDF5_DEFAULT_DATASET = "data"
DTYPES = (np.uint8, np.uint16, np.float32, np.float64)  # of images; label volumes may hold any integers


def split_path(path) -> tuple[Path, str | None]:
    """(file, dataset) of an HDF5 path ``file.h5:name``; (path, None) for everything else."""
    text = str(path)
    lower = text.lower()
    for suffix in HDF5_SUFFIXES:
        at = lower.rfind(suffix + ":")
        if at >= 0:
            key = text[at + len(suffix) + 1:].strip("/")
            return Path(text[:at + len(suffix)]), key or None
    return Path(text), None


def path_format(path) -> str:
    """"zarr", "hdf5", "npy", "tif" or "folder" (a folder of sections, or a new folder to write)."""
    file, _ = split_path(path)
    if any(part.lower().endswith(ZARR_SUFFIX) for part in file.parts):
        return "zarr"
    suffix = file.suffix.lower()
    if suffix in HDF5_SUFFIXES:
        return "hdf5"
    if suffix == ".npy":
        return "npy"
    if suffix in (".tif", ".tiff"):
        return "tif"
    return "folder"


def beside(path, tag: str, suffix: str | None = None) -> Path:
    """``path`` with ``tag`` appended to its file's stem, keeping its suffix (and an HDF5 path's
    dataset) unless ``suffix`` is given: ``out.zarr`` -> ``out_masks.zarr``, ``out_report.json``."""
    file, key = split_path(path)
    keep = file.suffix if file.suffix.lower() in (".tif", ".tiff", ".npy", ZARR_SUFFIX) + HDF5_SUFFIXES else ""
    named = file.with_name(file.name[: len(file.name) - len(keep)] + tag + (keep if suffix is None else suffix))
    return Path(f"{named}:{key}") if key and suffix is None else named


def is_chunked(path) -> bool:
    """Whether ``path`` names a format written block by block (zarr, HDF5)."""
    return path_format(path) in ("zarr", "hdf5")


class Volume:
    """A read-only stack [Z, H, W] read a block at a time: ``volume[z0:z1, y0:y1, x0:x1]`` (any
    basic indexing) returns a numpy array of that block only."""

    def __init__(self, array, source: str, *, flat: bool = False, keep=None):
        self._array, self._flat, self._keep = array, flat, keep  # keep: an open file to hold on to
        self.source = source
        shape = tuple(int(n) for n in array.shape)
        self.shape = (1,) + shape if flat else shape
        self.dtype = np.dtype(array.dtype)
        if len(self.shape) != 3:
            raise ValueError(f"expected a grayscale stack [Z, H, W] in {source}; got shape {self.shape}")
        if 0 in self.shape:
            raise ValueError(f"cannot read stack {source}: it holds no image data (shape {self.shape})")

    ndim = 3

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index) -> np.ndarray:
        if self._flat:
            index = index if isinstance(index, tuple) else (index,)
            z, rest = index[0], index[1:]
            block = np.asarray(self._array[rest] if rest else self._array[...])[None]
            return block[z]
        try:
            return np.asarray(self._array[index])
        except Exception as err:  # damaged chunks or pages raise whatever their codec raises
            raise ValueError(f"cannot read {index} of {self.source}: {err}") from err

    def __array__(self, dtype=None, copy=None):
        data = self[:]
        return data if dtype is None else data.astype(dtype)


class _PerSection:
    """Sections read one at a time by ``read(z)`` as a lazy array: indexing reads only the sections
    it names (a folder's files, a TIFF's pages)."""

    def __init__(self, count: int, first: np.ndarray, read, name):
        self.read, self.first, self.name = read, first, name
        self.shape, self.dtype = (count,) + first.shape, first.dtype

    def __getitem__(self, index):
        index = index if isinstance(index, tuple) else (index,)
        z, rest = index[0], index[1:]
        picked = range(self.shape[0])[z]
        single = isinstance(picked, int)
        out = []
        for i in [picked] if single else picked:
            section = self.read(i)
            if section.shape != self.first.shape or section.dtype != self.first.dtype:
                raise ValueError(f"section {self.name(i)} is {section.shape} {section.dtype}; expected "
                                 f"{self.first.shape} {self.first.dtype} like {self.name(0)}")
            out.append(section[rest] if rest else section)
        if single:
            return out[0]
        return np.stack(out) if out else np.empty((0,) + self.first[rest].shape, self.dtype)


def _only_3d(names_and_arrays, source: str, what: str):
    candidates = [(name, a) for name, a in names_and_arrays if len(a.shape) == 3]
    if len(candidates) != 1:
        listed = ", ".join(f"{name} {tuple(a.shape)}" for name, a in names_and_arrays) or "none"
        raise ValueError(f"{source}: name the {what} to read ({'exactly one 3-D one is needed' if candidates else 'no 3-D one found'}); "
                         f"it holds: {listed}")
    return candidates[0]


def open_volume(path) -> Volume:
    """The stack at ``path`` as a lazy ``Volume`` (see the module's note on paths)."""
    file, key = split_path(path)
    kind = path_format(path)
    if not file.exists():
        raise FileNotFoundError(f"no such stack: {file}")
    source = str(path)
    if kind == "zarr":
        import zarr

        try:
            node = zarr.open(str(file), mode="r")
        except Exception as err:
            raise ValueError(f"cannot read zarr stack {file}: {err}") from err
        if not hasattr(node, "shape"):  # a group: take its one 3-D array
            name, node = _only_3d(list(node.arrays()), source, "array (vol.zarr/NAME)")
            source = f"{file}/{name}"
        return Volume(node, source)
    if kind == "hdf5":
        import h5py

        try:
            handle = h5py.File(file, "r")
        except Exception as err:
            raise ValueError(f"cannot read HDF5 file {file}: {err}") from err
        if key is None:
            found = []
            handle.visititems(lambda name, obj: found.append((name, obj)) if isinstance(obj, h5py.Dataset) else None)
            key, _ = _only_3d(found, source, "dataset (file.h5:NAME)")
        if key not in handle or not isinstance(handle[key], h5py.Dataset):
            raise ValueError(f"{file} has no dataset {key!r}")
        return Volume(handle[key], f"{file}:{key}", keep=handle)
    if kind == "npy":
        try:
            array = np.load(file, mmap_mode="r", allow_pickle=False)
        except Exception as err:
            raise ValueError(f"cannot read .npy stack {file}: {err}") from err
        return Volume(array, source, flat=array.ndim == 2)
    if kind == "tif":
        import tifffile

        try:
            tif = tifffile.TiffFile(file)
            series = tif.series[0]
            if len(series.shape) == 3 and len(series.pages) == series.shape[0]:  # a page per section
                pages = series.pages
                return Volume(_PerSection(len(pages), pages[0].asarray(), lambda z: pages[z].asarray(),
                                          lambda z: f"page {z} of {file}"), source, keep=tif)
            array = series.asarray()  # sections not stored page by page: read whole
            tif.close()
        except Exception as err:
            raise ValueError(f"cannot read TIFF stack {file}: {err}") from err
        return Volume(array, source, flat=array.ndim == 2)
    if file.is_dir():
        from .io import _read_section, section_files

        files = section_files(file)
        if not files:
            raise ValueError(f"no PNG or TIFF sections in folder {file}")
        return Volume(_PerSection(len(files), _read_section(files[0]), lambda z: _read_section(files[z]),
                                  lambda z: files[z].name), source)
    raise ValueError(f"unsupported stack format {file.suffix!r} ({file}); expected zarr, HDF5, a multi-page "
                     f"TIFF, a .npy file or a folder of PNG/TIFF sections")


def staging_path(path) -> str:
    """Where a chunked output is written until complete: ``.STEM.partial.SUFFIX`` beside it."""
    file, key = split_path(path)
    staged = file.with_name(f".{file.stem}.partial{file.suffix}")
    return f"{staged}:{key}" if key else str(staged)


class ChunkedOutput:
    """A zarr array or HDF5 dataset [Z, H, W] written a block at a time. ``open`` creates it, or
    reopens one left by an interrupted run after checking that it has this shape, dtype and chunks."""

    def __init__(self, path, shape, dtype, chunks):
        self.path = str(path)
        self.file, key = split_path(path)
        self.format = path_format(path)
        if self.format not in ("zarr", "hdf5"):
            raise ValueError(f"block-wise output must be zarr (OUT.zarr) or HDF5 (OUT.h5[:NAME]); got {path}")
        shape, chunks, dtype = tuple(int(n) for n in shape), tuple(int(n) for n in chunks), np.dtype(dtype)
        self._handle = None
        if self.format == "zarr":
            import zarr

            # "a" creates it or opens what another job made meanwhile; it never clears written chunks
            self.array = zarr.open_array(str(self.file), mode="a", shape=shape, chunks=chunks, dtype=dtype,
                                         fill_value=0)
            found_chunks = tuple(self.array.chunks)
        else:
            import h5py

            self.key = key or HDF5_DEFAULT_DATASET
            self._handle = h5py.File(self.file, "a")
            if self.key in self._handle:
                self.array = self._handle[self.key]
            else:
                self.array = self._handle.create_dataset(self.key, shape=shape, dtype=dtype, chunks=chunks)
            found_chunks = tuple(self.array.chunks or ())
        found = (tuple(self.array.shape), np.dtype(self.array.dtype), found_chunks)
        if found != (shape, dtype, chunks):
            self.close()
            raise ValueError(f"{self.file} holds an array {found[0]} {found[1]} in chunks {found[2]}; this run "
                             f"writes {shape} {dtype} in chunks {chunks} (pass --overwrite to start over)")

    def write(self, origin, block: np.ndarray) -> None:
        z, y, x = origin
        self.array[z:z + block.shape[0], y:y + block.shape[1], x:x + block.shape[2]] = block
        if self._handle is not None:
            self._handle.flush()

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


def remove(path) -> None:
    """Deletes the file or folder behind ``path`` (an HDF5 path's whole file), if any."""
    file, _ = split_path(path)
    if file.is_dir():
        shutil.rmtree(file)
    elif file.exists():
        file.unlink()
