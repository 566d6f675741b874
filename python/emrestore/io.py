"""Reading and writing section stacks: multi-page TIFF, folders of PNG/TIFF sections, .npy, zarr
and HDF5 (``file.h5:dataset``). These read and write whole stacks in memory; ``emrestore.volume``
reads blocks of larger ones.

Writes are atomic: the data goes to a temporary file or folder beside the target, which is renamed
into place only when complete, so a crash never leaves a half-written stack under the final name.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from pathlib import Path

import numpy as np

TIFF_SUFFIXES = (".tif", ".tiff")
SECTION_SUFFIXES = (".png", ".tif", ".tiff")
STACK_SUFFIXES = TIFF_SUFFIXES + (".npy",)


def _natural_key(path: Path):
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", path.name)]


def _read_section(path: Path) -> np.ndarray:
    if path.suffix.lower() in TIFF_SUFFIXES:
        import tifffile

        try:
            image = tifffile.imread(path)
        except Exception as err:  # tifffile raises several types for damaged files
            raise ValueError(f"cannot read TIFF section {path}: {err}") from err
    else:
        import cv2

        image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if image is None:
            raise ValueError(f"cannot read image section {path}: not a readable PNG")
    if image.ndim != 2:
        raise ValueError(f"expected a grayscale section [H, W] in {path}; got shape {image.shape}")
    return image


def section_files(folder: Path) -> list[Path]:
    """The section images of a folder (PNG/TIFF), in natural order (2 before 10)."""
    files = [p for p in Path(folder).iterdir() if p.is_file() and p.suffix.lower() in SECTION_SUFFIXES]
    return sorted(files, key=_natural_key)


def read_stack(path) -> np.ndarray:
    """Reads a stack [Z, H, W] from a multi-page TIFF, a folder of PNG/TIFF sections, a .npy file,
    a zarr array or an HDF5 dataset. A single 2-D image is a stack of one section."""
    from . import volume

    if volume.is_chunked(path):
        return volume.open_volume(path)[:]
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such stack: {path}")
    if path.is_dir():
        files = section_files(path)
        if not files:
            raise ValueError(f"no PNG or TIFF sections in folder {path}")
        first = _read_section(files[0])
        stack = np.empty((len(files),) + first.shape, first.dtype)
        stack[0] = first
        for z, f in enumerate(files[1:], 1):
            section = _read_section(f)
            if section.shape != first.shape or section.dtype != first.dtype:
                raise ValueError(f"section {f.name} is {section.shape} {section.dtype}; expected "
                                 f"{first.shape} {first.dtype} like {files[0].name}")
            stack[z] = section
        return stack
    suffix = path.suffix.lower()
    if suffix in TIFF_SUFFIXES:
        import tifffile

        try:
            stack = tifffile.imread(path)
        except Exception as err:
            raise ValueError(f"cannot read TIFF stack {path}: {err}") from err
    elif suffix == ".npy":
        try:
            stack = np.load(path, allow_pickle=False)
        except Exception as err:
            raise ValueError(f"cannot read .npy stack {path}: {err}") from err
    else:
        raise ValueError(f"unsupported stack format {path.suffix!r} ({path}); expected a multi-page "
                         f"TIFF, a .npy file, zarr, HDF5 or a folder of PNG/TIFF sections")
    if stack.size == 0:
        raise ValueError(f"cannot read stack {path}: it holds no image data (shape {stack.shape})")
    if stack.ndim == 2:
        stack = stack[None]
    if stack.ndim != 3:
        raise ValueError(f"expected a grayscale stack [Z, H, W] in {path}; got shape {stack.shape}")
    return stack


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_stack(path, stack: np.ndarray, *, overwrite: bool = False, section_format: str = "png",
                names: list[str] | None = None) -> Path:
    """Writes a stack [Z, H, W] atomically: a .tif/.tiff path gets a multi-page TIFF, .npy a numpy
    file, .zarr a zarr array, .h5[:NAME] an HDF5 dataset, any other path a folder of sections named
    ``names`` (file stems, e.g. the input's) or ``0000`` ``0001`` ... with ``section_format`` "png"
    or "tif". Refuses to replace an existing target unless ``overwrite``."""
    from . import volume

    stack = np.asarray(stack)
    if stack.ndim != 3:
        raise ValueError(f"expected a stack [Z, H, W] to write; got shape {stack.shape}")
    if volume.is_chunked(path):
        file = volume.split_path(path)[0]
        if file.exists() and not overwrite:
            raise FileExistsError(f"{file} exists; pass overwrite=True (--overwrite) to replace it")
        file.parent.mkdir(parents=True, exist_ok=True)
        staged = volume.staging_path(path)
        volume.remove(staged)
        try:
            chunks = (1,) + tuple(min(n, 1024) for n in stack.shape[1:])
            out = volume.ChunkedOutput(staged, stack.shape, stack.dtype, chunks)
            try:
                out.write((0, 0, 0), stack)
            finally:
                out.close()
            volume.remove(path)
            os.replace(volume.split_path(staged)[0], file)
        except BaseException:
            volume.remove(staged)
            raise
        return file
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True (--overwrite) to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix.lower()
    if suffix in STACK_SUFFIXES:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
        os.close(fd)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; give the usual permissions
        try:
            if suffix == ".npy":
                np.save(tmp, stack)
            else:
                import tifffile

                tifffile.imwrite(tmp, stack, photometric="minisblack")
            if path.is_dir():
                shutil.rmtree(path)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path
    if section_format not in ("png", "tif"):
        raise ValueError(f"section_format must be 'png' or 'tif'; got {section_format!r}")
    if section_format == "png" and stack.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"PNG sections hold uint8 or uint16; got {stack.dtype} (write a .tif instead)")
    if names is not None and (len(names) != len(stack) or len(set(names)) != len(names)):
        raise ValueError(f"names must be {len(stack)} distinct file stems; got {len(names)}")
    digits = max(4, len(str(len(stack) - 1)))
    stems = names if names is not None else [f"{z:0{digits}d}" for z in range(len(stack))]
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    os.chmod(tmp, 0o777 & ~_umask())
    try:
        for stem, section in zip(stems, stack):
            name = tmp / f"{stem}.{section_format}"
            if section_format == "png":
                import cv2

                if not cv2.imwrite(str(name), np.ascontiguousarray(section)):
                    raise OSError(f"could not write {name}")
            else:
                import tifffile

                tifffile.imwrite(name, section, photometric="minisblack")
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old) if old.is_dir() else old.unlink()
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def check_outputs(src, targets, overwrite: bool) -> None:
    """Refuses outputs (any stack path, or a report) that would replace the input ``src``, that
    coincide, or that exist unless ``overwrite``."""
    from .volume import split_path

    src, files = split_path(src)[0], [split_path(t)[0] for t in targets]
    if src.exists() and any(f.resolve() == src.resolve() for f in files):
        raise ValueError(f"an output would overwrite the input {src}")
    if len({f.resolve() for f in files}) != len(files):
        raise ValueError(f"output paths must differ; got {[str(t) for t in targets]}")
    existing = [str(f) for f in files if f.exists()]
    if existing and not overwrite:
        raise FileExistsError(f"{', '.join(existing)} exist(s); pass --overwrite (overwrite=True) to replace")


def write_json(path, data) -> None:
    """Writes JSON atomically (a temporary file beside it, renamed into place)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)


def stack_format(path) -> str:
    """"tif", "npy", "zarr", "hdf5" or "folder", as ``write_stack`` would write ``path``."""
    from .volume import path_format

    return path_format(path)
