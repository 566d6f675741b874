"""The rules that keep a user's data safe when emrestore writes: an output never replaces the
input or another output, replaces an existing file only when asked to (``overwrite``), and never
replaces what emrestore does not write itself — a folder's other files, another dataset of an
HDF5 file, another array of a zarr group."""

from __future__ import annotations

from pathlib import Path

from .paths import HDF5_DEFAULT_DATASET, path_format, split_path

WRITES = (
    "a multi-page TIFF (.tif, .tiff), a .npy file, a zarr array (.zarr, or .zarr/NAME in a "
    "group), an HDF5 dataset (.h5, .hdf5, .hdf; file.h5:NAME) or a folder of PNG/TIFF "
    "sections"
)


def names_folder(path) -> bool:
    """Whether an output path asks for a folder of sections by its spelling: it ends with a path
    separator, or it is an existing folder that is no zarr store."""
    text = str(path)
    if text.endswith(("/", "\\")):
        return True
    return path_format(text) == "folder" and Path(text).is_dir()


def check_output_name(path, *, folder: bool = False) -> None:
    """Refuses an output path whose format cannot be told: an unknown extension (``out.jpg``), or
    no extension at all unless it names a folder (``names_folder``) or ``folder`` allows a
    folder of sections (e.g. mirroring an input folder, or a library call that asks for one)."""
    if path_format(path) != "folder" or names_folder(path):
        return
    suffix = split_path(path)[0].suffix
    if suffix:
        raise ValueError(
            f"cannot write {path}: unknown format {suffix!r}; emrestore writes {WRITES}"
        )
    if not folder:
        raise ValueError(
            f"cannot tell what to write for {path}: it has no extension; name "
            f"{WRITES} (end a folder's path with '/')"
        )


def _zarr_node(file: Path):
    import zarr

    try:
        return zarr.open(str(file), mode="r")
    except Exception:  # not a zarr store at all
        return None


def exists(path) -> bool:
    """Whether the output ``path`` names exists: the file or folder, or for an HDF5 path the
    dataset inside the file (``file.h5`` alone: its default dataset)."""
    file, key = split_path(path)
    if path_format(path) == "hdf5" and file.is_file():
        import h5py

        try:
            with h5py.File(file, "r") as handle:
                return (key or HDF5_DEFAULT_DATASET) in handle
        except OSError:
            return True  # a file that is no HDF5: it exists, and check_replaceable refuses it
    return file.exists()


def _written_by_us(entry: Path, names) -> bool:
    """Whether a folder's entry looks like a section emrestore writes: ``0000.png``, ``0001.tif``
    ..., or one of the section ``names`` it was given."""
    if not entry.is_file() or entry.suffix.lower() not in (".png", ".tif"):
        return False
    return entry.stem.isdigit() or (names is not None and entry.stem in names)


def check_replaceable(path, names=None) -> None:
    """Refuses to replace an existing target that holds more than emrestore would write there: a
    folder in place of a file, a folder of sections holding anything but sections it wrote
    (numbered, or named as ``names``), a zarr group in place of an array, a file that is no
    zarr store or HDF5 file."""
    file, _ = split_path(path)
    if not file.exists():
        return
    kind = path_format(path)
    # A file's path: a stack file, or a report or manifest (.json) or the folds' flows (.npz).
    names_a_file = kind in ("tif", "npy") or (kind == "folder" and bool(file.suffix))
    if names_a_file:
        if file.is_dir():
            raise ValueError(
                f"{file} is a folder; emrestore replaces only files it writes: name another output"
            )
        return
    if kind == "folder" and not file.is_dir():
        raise ValueError(f"{file} exists and is not a folder of sections; name another output")
    if kind == "folder":
        names = None if names is None else set(names)
        others = sorted(p.name for p in file.iterdir() if not _written_by_us(p, names))
        if others:
            shown = ", ".join(others[:5]) + (
                f" and {len(others) - 5} more" if len(others) > 5 else ""
            )
            raise ValueError(
                f"{file} holds files emrestore did not write ({shown}); a folder output "
                f"is replaced only when it holds nothing but its sections: name a new "
                f"folder"
            )
        return
    if kind == "zarr":
        node = _zarr_node(file)
        if node is None:
            raise ValueError(f"{file} exists and is not a zarr store; name another output")
        if not hasattr(node, "shape"):
            names = sorted(name for name, _ in node.members())
            raise ValueError(
                f"{file} is a zarr group ({', '.join(names) or 'empty'}); name the "
                f"array to write inside it, e.g. {file}/NAME"
            )
        return
    if kind == "hdf5" and file.is_file():
        import h5py

        try:
            h5py.File(file, "r").close()
        except OSError:
            raise ValueError(
                f"{file} exists and is not an HDF5 file; name another output"
            ) from None


def check_outputs(src, targets, overwrite: bool, names=None) -> None:
    """Refuses outputs (stack paths, reports) that would replace the input ``src`` or lie around
    it, that coincide, that exist unless ``overwrite``, or that hold more than emrestore writes
    (``names``: the section names a folder output gets, see ``check_replaceable``)."""
    src_file = split_path(src)[0]
    files = [split_path(t) for t in targets]
    if src_file.exists():
        source = src_file.resolve()
        for target, (file, _) in zip(targets, files):
            if file.resolve() == source:
                raise ValueError(f"an output would overwrite the input {src_file}")
            if file.is_dir() and file.resolve() in source.parents:
                raise ValueError(f"the output {target} is a folder that holds the input {src_file}")
    resolved = {
        (f.resolve(), (key or HDF5_DEFAULT_DATASET) if path_format(f) == "hdf5" else key)
        for f, key in files
    }
    if len(resolved) != len(files):
        raise ValueError(f"output paths must differ; got {[str(t) for t in targets]}")
    check_new(targets, overwrite)
    for target in targets:
        check_replaceable(target, names)


def check_new(targets, overwrite: bool) -> None:
    """Refuses, unless ``overwrite``, outputs that exist already (``exists``)."""
    existing = [str(t) for t in targets if exists(t)]
    if existing and not overwrite:
        raise FileExistsError(
            f"{', '.join(existing)} exist(s); pass --overwrite (overwrite=True) to replace"
        )


def check_folder_outputs(folder, names, overwrite: bool) -> Path:
    """For a command that writes files of fixed ``names`` into ``folder`` (evaluate, demo):
    refuses a file where the folder goes and, unless ``overwrite``, any of them that exists.
    Returns the folder as a Path."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"{folder} is a file; the outputs go to a folder")
    check_new([folder / name for name in names], overwrite)
    return folder
