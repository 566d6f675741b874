"""Stacks as lazy volumes: a read-only view [Z, H, W] of a stack in any supported format, read a
block at a time, so that no reader loads more than the block asked for.

Paths name a zarr array by its folder (``vol.zarr``, or ``vol.zarr/raw`` inside a group) and an
HDF5 dataset by ``file.h5:name`` (``file.h5`` alone when the file holds one 3-D dataset). TIFF
stacks are read page by page, ``.npy`` files memory-mapped and folders of sections one file per
section.
"""

from __future__ import annotations

import numpy as np

from .paths import path_format, split_path
from .sections import read_section, section_files


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
            raise ValueError(
                f"expected a grayscale stack [Z, H, W] in {source}; got shape {self.shape}"
            )
        if 0 in self.shape:
            raise ValueError(
                f"cannot read stack {source}: it holds no image data (shape {self.shape})"
            )

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
                raise ValueError(
                    f"section {self.name(i)} is {section.shape} {section.dtype}; expected "
                    f"{self.first.shape} {self.first.dtype} like {self.name(0)}"
                )
            out.append(section[rest] if rest else section)
        if single:
            return out[0]
        return np.stack(out) if out else np.empty((0,) + self.first[rest].shape, self.dtype)


def _only_3d(names_and_arrays, source: str, what: str):
    candidates = [(name, a) for name, a in names_and_arrays if len(a.shape) == 3]
    if len(candidates) != 1:
        listed = ", ".join(f"{name} {tuple(a.shape)}" for name, a in names_and_arrays) or "none"
        raise ValueError(
            f"{source}: name the {what} to read "
            f"({'exactly one 3-D one is needed' if candidates else 'no 3-D one found'}); "
            f"it holds: {listed}"
        )
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
            handle.visititems(
                lambda name, obj: (
                    found.append((name, obj)) if isinstance(obj, h5py.Dataset) else None
                )
            )
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
            if (
                len(series.shape) == 3 and len(series.pages) == series.shape[0]
            ):  # a page per section
                pages = series.pages
                return Volume(
                    _PerSection(
                        len(pages),
                        pages[0].asarray(),
                        lambda z: pages[z].asarray(),
                        lambda z: f"page {z} of {file}",
                    ),
                    source,
                    keep=tif,
                )
            array = series.asarray()  # sections not stored page by page: read whole
            tif.close()
        except Exception as err:
            raise ValueError(f"cannot read TIFF stack {file}: {err}") from err
        return Volume(array, source, flat=array.ndim == 2)
    if file.is_dir():
        files = section_files(file)
        if not files:
            raise ValueError(f"no PNG or TIFF sections in folder {file}")
        return Volume(
            _PerSection(
                len(files),
                read_section(files[0]),
                lambda z: read_section(files[z]),
                lambda z: files[z].name,
            ),
            source,
        )
    raise ValueError(
        f"unsupported stack format {file.suffix!r} ({file}); expected zarr, HDF5, a multi-page "
        f"TIFF, a .npy file or a folder of PNG/TIFF sections"
    )
