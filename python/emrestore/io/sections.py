"""Folders of sections: one PNG or TIFF image per section, in natural order (2 before 10)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from .paths import SECTION_SUFFIXES, TIFF_SUFFIXES, path_format


def _natural_key(path: Path):
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", path.name)]


def section_files(folder) -> list[Path]:
    """The section images of a folder (PNG/TIFF), in natural order (2 before 10)."""
    files = [
        p for p in Path(folder).iterdir() if p.is_file() and p.suffix.lower() in SECTION_SUFFIXES
    ]
    return sorted(files, key=_natural_key)


def read_section(path: Path) -> np.ndarray:
    """One grayscale section [H, W] from a PNG or TIFF file."""
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


def write_sections(folder: Path, stack: np.ndarray, stems: list[str], section_format: str) -> None:
    """Writes each section of ``stack`` as ``folder/STEM.png`` or ``.tif`` (``folder`` exists)."""
    for stem, section in zip(stems, stack):
        name = folder / f"{stem}.{section_format}"
        if section_format == "png":
            import cv2

            if not cv2.imwrite(str(name), np.ascontiguousarray(section)):
                raise OSError(f"could not write {name}")
        else:
            import tifffile

            tifffile.imwrite(name, section, photometric="minisblack")


def sections_like(src) -> tuple[list[str] | None, str]:
    """How to write outputs that mirror the input ``src``: for a folder of sections, their names
    and the section format ("tif" unless they are PNG); for a stack file, no names and "png"."""
    src = Path(src)
    if path_format(src) != "folder" or not src.is_dir():
        return None, "png"
    files = section_files(src)
    return [f.stem for f in files], "png" if files and files[0].suffix.lower() == ".png" else "tif"
