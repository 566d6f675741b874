"""Chunked outputs: a zarr array or HDF5 dataset written a block at a time."""

from __future__ import annotations

import numpy as np

from .atomic import move_into_place
from .paths import HDF5_DEFAULT_DATASET, path_format, split_path


class ChunkedOutput:
    """A zarr array or HDF5 dataset [Z, H, W] written a block at a time. ``open`` creates it, or
    reopens one left by an interrupted run after checking that it has this shape, dtype and
    chunks."""

    def __init__(self, path, shape, dtype, chunks):
        self.path = str(path)
        self.file, key = split_path(path)
        self.format = path_format(path)
        if self.format not in ("zarr", "hdf5"):
            raise ValueError(
                f"block-wise output must be zarr (OUT.zarr) or HDF5 (OUT.h5[:NAME]); got {path}"
            )
        shape, chunks, dtype = (
            tuple(int(n) for n in shape),
            tuple(int(n) for n in chunks),
            np.dtype(dtype),
        )
        self._handle = None
        if self.format == "zarr":
            import zarr

            # "a" creates it or opens what another job made meanwhile; it never clears
            # written chunks
            self.array = zarr.open_array(
                str(self.file), mode="a", shape=shape, chunks=chunks, dtype=dtype, fill_value=0
            )
            found_chunks = tuple(self.array.chunks)
        else:
            import h5py

            self.key = key or HDF5_DEFAULT_DATASET
            self._handle = h5py.File(self.file, "a")
            if self.key in self._handle:
                self.array = self._handle[self.key]
            else:
                self.array = self._handle.create_dataset(
                    self.key, shape=shape, dtype=dtype, chunks=chunks
                )
            found_chunks = tuple(self.array.chunks or ())
        found = (tuple(self.array.shape), np.dtype(self.array.dtype), found_chunks)
        if found != (shape, dtype, chunks):
            self.close()
            raise ValueError(
                f"{self.file} holds an array {found[0]} {found[1]} in chunks {found[2]}; this run "
                f"writes {shape} {dtype} in chunks {chunks} (pass --overwrite to start over)"
            )

    def write(self, origin, block: np.ndarray) -> None:
        z, y, x = origin
        self.array[z : z + block.shape[0], y : y + block.shape[1], x : x + block.shape[2]] = block
        if self._handle is not None:
            self._handle.flush()

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


def publish(staged, final) -> None:
    """Moves a complete chunked output from its staging name (``staging_path``) to ``final``: a
    zarr array or a new HDF5 file by renaming, replacing what was there; into an HDF5 file that
    exists, by copying the dataset in (``replace_dataset``), so that the file's other datasets
    stay as they are."""
    staged_file, staged_key = split_path(staged)
    final_file, final_key = split_path(final)
    if path_format(final) == "hdf5" and final_file.is_file():
        import h5py

        with h5py.File(staged_file, "r") as source:
            dataset = source[staged_key or HDF5_DEFAULT_DATASET]
            replace_dataset(
                final_file, final_key or HDF5_DEFAULT_DATASET, lambda f, n: f.copy(dataset, n)
            )
        staged_file.unlink()
        return
    move_into_place(staged_file, final_file)


def replace_dataset(file, key: str, write) -> None:
    """Writes the dataset ``key`` of an existing HDF5 file, leaving its other datasets as they
    are: ``write(handle, name)`` makes it under a staging name, which replaces ``key`` only once
    complete (a failed write leaves ``key`` as it was)."""
    import h5py

    staged = f"{key}.partial"
    with h5py.File(file, "a") as handle:
        if staged in handle:
            del handle[staged]
        try:
            write(handle, staged)
        except BaseException:
            if staged in handle:
                del handle[staged]
            raise
        if key in handle:
            del handle[key]
        handle.move(staged, key)
