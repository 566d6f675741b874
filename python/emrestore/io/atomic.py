"""Outputs that are complete or absent: every writer of emrestore writes to a temporary name
beside its target and moves the result into place only when it is complete, so a crash never
leaves a half-written file under the final name."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

from .paths import split_path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def move_into_place(source, target) -> None:
    """Moves the file or folder ``source`` to ``target``, replacing whatever is there. A file
    replacing a file is one atomic rename; a folder's old content is moved aside first and deleted
    only after the new one is in place."""
    source, target = Path(source), Path(target)
    if not target.exists() or (target.is_file() and source.is_file()):
        os.replace(source, target)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent))
    try:
        os.replace(target, old / target.name)
        os.replace(source, target)
    finally:
        shutil.rmtree(old, ignore_errors=True)


@contextmanager
def atomic_path(target):
    """Yields a fresh path, with ``target``'s own name, inside a temporary folder beside it; when
    the block ends without an error, whatever was written there (a file or a folder) replaces
    ``target`` (see ``move_into_place``); on an error it is deleted and ``target`` is untouched."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    os.chmod(work, 0o777 & ~_umask())  # mkdtemp makes 0700; what is written inside keeps umask's
    try:
        yield work / target.name
        move_into_place(work / target.name, target)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def write_json(path, data) -> None:
    """Writes JSON atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=1))


def remove(path) -> None:
    """Deletes the file or folder behind ``path`` (an HDF5 path's whole file), if any."""
    file, _ = split_path(path)
    if file.is_dir():
        shutil.rmtree(file)
    elif file.exists():
        file.unlink()
