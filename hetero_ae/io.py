"""Atomic file writes, and one writer per output folder.

- ``atomic_write``: write to a temporary file beside the target, then rename, so that a killed
  process leaves either the previous file or the new one, never half of it.
- ``check_writable``: a folder that cannot be written is refused before any work, by name;
  ``remove_partial_writes``: the temporary files of ``atomic_write`` calls a kill cut short.
- ``exclusive``: an exclusive lock on an output folder (``flock`` on the folder itself, so no
  lock file is left behind) for as long as a command writes into it; a second process that
  wants to write there is refused with a message instead of interleaving its output. The
  kernel drops the lock when the process ends, however it ends.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .errors import UserError

_UMASK = os.umask(0)
os.umask(_UMASK)


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_path)`` and move the result onto ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the file the mode open() would
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_text(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda p: p.write_text(text))


def write_json(path: str | Path, data: Any) -> Path:
    return write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def file_digest(path: str | Path) -> str:
    """The sha256 of a file's bytes, hex, read in 1 MiB pieces."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


_TEMPORARY = re.compile(r"\..+\.[A-Za-z0-9_]{8}\.tmp")  # what atomic_write's mkstemp names


def remove_partial_writes(folder: str | Path) -> list[Path]:
    """Remove the temporary files that ``atomic_write`` calls left in ``folder`` when their process was
    killed (``.NAME.XXXXXXXX.tmp``); the removed paths. Call it only while holding ``exclusive(folder)``."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    stale = sorted(p for p in folder.iterdir() if _TEMPORARY.fullmatch(p.name) and p.is_file())
    for p in stale:
        p.unlink(missing_ok=True)
    return stale


def check_writable(path: str | Path, option: str) -> None:
    """A UserError naming ``option`` and the folder unless the folder ``path`` can be made (where it is
    missing) and written into: its nearest existing folder is read-only, or it (or a folder above it) is a file."""
    path = Path(path)
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise UserError(f"{option} {path}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UserError(f"{option} {path}: the folder {existing} is read-only (no permission to write there)")


@contextmanager
def exclusive(folder: str | Path) -> Iterator[Path]:
    """Hold an exclusive lock on ``folder`` (made if missing) for the duration; yields it.

    Raises UserError, naming the folder, when another process holds it. A folder this call made
    is removed again when the block fails and leaves it empty, so a failed command leaves nothing
    behind.
    """
    folder = Path(folder)
    made = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UserError(f"{folder} is being written by another hetero-ae process; wait for it to finish, "
                            "or choose another output folder") from None
        try:
            yield folder
        except BaseException:
            if made and folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
            raise
    finally:
        os.close(fd)
