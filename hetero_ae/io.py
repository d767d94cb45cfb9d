"""Atomic file writes, and one writer per output folder.

- ``atomic_write``: write to a temporary file beside the target, then rename, so that a killed
  process leaves either the previous file or the new one, never half of it.
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
