"""What a dataset is, for the run cache (DESIGN 7): a key that names it and a digest of its content.

A run's folder is named by its configuration and by its data's ``key``; its ``config.json``
records the whole identity (``record``), so that a cache miss, or a hit on other pixels, can be
explained (``differences``).

- A **synthetic** benchmark (written by ``make-data synthetic``; its ``synthetic.json`` says how)
  is named by what made it: the generator's version, seed, image size and preset. That name is
  the same on every machine, whatever its CPU, zlib or Pillow; its ``digest`` hashes the decoded
  pixels of every image and mask the runs read, so that re-encoding a PNG changes nothing, while
  a machine whose float maths rounds a pixel the other way is told so instead of silently
  retraining or silently reusing (``hetero_ae.data.synthetic`` says why this happened).
- Any other dataset (the real ones, MedMNIST, a copy of a benchmark without its ``synthetic.json``)
  is named by the sha256 of its files' bytes: other files, another key.

Digests are computed once per state of the files (their names, sizes and modification times)
and stored beside the decode cache (``datasets.cache_root``); later look-ups only list and stat
the files. Per-file digests are stored with them, so that a difference is named file by file.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..io import write_json
from .datasets import FolderDataset, MedMNISTDataset, cache_root, data_root, find_npz, get_dataset
from .synthetic import SPECS

IDENTITY_VERSION = 1  # of the stored digests' format: another version is computed again
_SYNTHETIC_NAMES = {s.name for s in SPECS}


@dataclass(frozen=True)
class DataIdentity:
    """``key``: what names the data in the run cache; ``digest``: sha256 (16 hex) of its content;
    ``files``: the per-file digests (path relative to the dataset's folder -> 16 hex)."""

    dataset: str
    kind: str  # "synthetic" or "files"
    key: dict[str, Any]
    digest: str
    files: dict[str, str] = field(repr=False, compare=False)

    def record(self) -> dict[str, Any]:
        """What ``config.json`` keeps under ``data``."""
        return {"kind": self.kind, "key": self.key, "digest": self.digest, "files": len(self.files)}

    def describe(self) -> str:
        """The key in words: 'synthetic, generator v1, seed 0, 128 px, preset default' or 'files sha256 ab12...'."""
        return describe_key(self.key)


def describe_key(key: dict[str, Any]) -> str:
    """A data key in words: 'synthetic, generator v1, seed 0, 128 px, preset default' or 'files with sha256 ab12...'."""
    if "synthetic" in key:
        k = key["synthetic"]
        return f"synthetic, generator v{k['generator_version']}, seed {k['seed']}, {k['size']} px, preset {k['preset']}"
    return f"files with sha256 {key.get('sha256', '?')}"


def _benchmark_of(ds: FolderDataset, dataset: str, root: Path) -> dict[str, Any] | None:
    """The ``synthetic.json`` of the benchmark that ``dataset`` belongs to, if it was generated here."""
    if dataset not in _SYNTHETIC_NAMES:
        return None
    stamp = (root / ds.folder).parent / "synthetic.json"
    if not stamp.is_file():
        return None
    made = json.loads(stamp.read_text())
    return made if "generator_version" in made and dataset in made.get("counts", {}) else None


def _files(ds: FolderDataset | MedMNISTDataset, root: Path) -> tuple[Path, list[Path]]:
    """The folder the data lies in and every file a run of it reads (images and masks of every split)."""
    if isinstance(ds, MedMNISTDataset):
        npz = find_npz(ds, root, 0)
        return npz.parent, [npz]
    files = [p for split in ("train", "val", "test") for e in ds.entries(root, split)
             for p in (e.path, e.mask) if p is not None]
    return root / ds.folder, files


def _rel(path: Path, base: Path) -> str:
    return path.relative_to(base).as_posix()


def pixel_digest(path: Path) -> str:
    """sha256 (16 hex) of an image's decoded pixels, mode and size: the same whatever the PNG encoder did."""
    with Image.open(path) as img:
        a = np.asarray(img)
        h = hashlib.sha256(f"{img.mode}|{a.shape}|{a.dtype.str}\n".encode())
    h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:16]


def file_digest(path: Path) -> str:
    """sha256 (16 hex) of a file's bytes."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def combined(files: dict[str, str]) -> str:
    """One digest (16 hex) of per-file digests, in path order."""
    return hashlib.sha256("".join(f"{k}\t{files[k]}\n" for k in sorted(files)).encode("utf-8", "surrogateescape")
                          ).hexdigest()[:16]


def _state(base: Path, files: list[Path], kind: str) -> str:
    h = hashlib.sha256(f"v{IDENTITY_VERSION}|{kind}\n".encode())
    for p in files:
        st = p.stat()
        h.update(f"{_rel(p, base)}|{st.st_size}|{st.st_mtime_ns}\n".encode("utf-8", "surrogateescape"))
    return h.hexdigest()[:16]


def data_identity(dataset: str, root: str | Path | None = None) -> DataIdentity:
    """The identity of ``dataset`` as it lies under the data root (``datasets.data_root``).

    Raises DataError (from the layouts) when the dataset is missing or misses a split or class.
    """
    ds, root = get_dataset(dataset), data_root(root)
    made = _benchmark_of(ds, dataset, root) if isinstance(ds, FolderDataset) else None
    kind = "synthetic" if made else "files"
    base, files = _files(ds, root)
    stored_at = cache_root(root) / "identity" / f"{dataset}.json"
    state = _state(base, files, kind)
    try:
        stored = json.loads(stored_at.read_text())
    except (OSError, ValueError):
        stored = {}
    if stored.get("state") == state:
        per_file = stored["files"]
    else:
        digest_of = pixel_digest if kind == "synthetic" else file_digest
        per_file = {_rel(p, base): digest_of(p) for p in files}
        write_json(stored_at, {"state": state, "files": per_file})
    digest = combined(per_file)
    if made:
        key = {"synthetic": {k: made[k] for k in ("generator_version", "seed", "size", "preset")}}
        return DataIdentity(dataset, kind, key, digest, per_file)
    return DataIdentity(dataset, kind, {"sha256": digest}, digest, per_file)


def differences(reference: dict[str, str], here: dict[str, str]) -> dict[str, list[str]]:
    """Files whose digest differs between two per-file digest maps, and files only on one side."""
    return {"differ": sorted(k for k in reference.keys() & here.keys() if reference[k] != here[k]),
            "missing": sorted(reference.keys() - here.keys()), "extra": sorted(here.keys() - reference.keys())}
