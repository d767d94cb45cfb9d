"""Datasets by name: the four real ones, their synthetic stand-ins and MedMNIST, with a disk cache.

``load_split(name, split, size)`` returns an ``ImageSet``: the normal training images
(``split="train"``), held-out normal images (``"val"``, where the release has them) or the
whole test split (``"test"``, with each image's sub-class and, where present, its mask).

Decoded, resized images are cached once per (dataset, split, size) as uint8 ``.npy``
arrays read back memory-mapped (in ``cache_root``: the data root's ``.cache`` when it is
writable), so an epoch never decodes a file twice. The cache key
hashes the file list with sizes and modification times, so a changed dataset is decoded
again; cache files are written atomically.

The data root is the argument, else the ``HETERO_AE_DATA`` environment variable, else
``data/`` (DESIGN 9: one resolver).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from ..config import check_choice
from ..errors import DataError
from ..io import atomic_write, write_json
from .images import ImageSet, read_images
from .layouts import Entry, get_layout, list_split

DATA_ENV = "HETERO_AE_DATA"
CACHE_ENV = "HETERO_AE_CACHE"
CACHE_VERSION = 3  # 2: 16-bit colour PNGs read with every bit (data.images); 3: EXIF orientation applied


def data_root(root: str | Path | None = None, profile_root: str | Path | None = None) -> Path:
    """The one rule: ``root`` when given, else ``$HETERO_AE_DATA``, else a profile's ``data_root``, else data/."""
    return Path(root or os.environ.get(DATA_ENV) or profile_root or "data")


def is_synthetic(name: str) -> bool:
    """Whether dataset ``name`` is one of the generated synthetic benchmarks (``data.synthetic``)."""
    ds = DATASETS.get(name)
    return isinstance(ds, FolderDataset) and ds.folder.startswith("synthetic/")


def cache_root(root: Path) -> Path:
    """Where decoded images of datasets under ``root`` are cached: ``$HETERO_AE_CACHE``, else
    ``root/.cache`` where ``root`` is writable, else a ``hetero-ae`` folder in the user's cache folder
    (``$XDG_CACHE_HOME``, else ``.cache`` in the home folder), so that a read-only dataset mount can be read."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    if os.access(root, os.W_OK):
        return root / ".cache"
    user = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return user / "hetero-ae" / hashlib.sha256(os.fsencode(root.resolve())).hexdigest()[:12]


@dataclass(frozen=True)
class FolderDataset:
    """A dataset in one of the published layouts, at ``folder`` under the data root."""

    layout: str
    folder: str

    def entries(self, root: Path, split: str) -> list[Entry]:
        return list_split(get_layout(self.layout), root / self.folder, split, normal_only=split != "test")


@dataclass(frozen=True)
class MedMNISTDataset:
    """A MedMNIST ``.npz`` (keys train_images, train_labels, ...); ``normal`` is the normal label."""

    name: str
    normal: int
    class_names: tuple[str, ...]


DATASETS: dict[str, FolderDataset | MedMNISTDataset] = {
    "oct": FolderDataset("oct", "oct"),
    "chest-xray": FolderDataset("chest-xray", "chest-xray"),
    "brain-mri": FolderDataset("brain-mri", "brain-mri"),
    "covid19": FolderDataset("covid19", "covid19"),
    "synth-oct": FolderDataset("oct", "synthetic/synth-oct"),
    "synth-chest-xray": FolderDataset("chest-xray", "synthetic/synth-chest-xray"),
    "synth-brain-mri": FolderDataset("brain-mri", "synthetic/synth-brain-mri"),
    "synth-covid19": FolderDataset("covid19", "synthetic/synth-covid19"),
    "octmnist": MedMNISTDataset("octmnist", 3, ("CNV", "DME", "DRUSEN", "NORMAL")),
    "pneumoniamnist": MedMNISTDataset("pneumoniamnist", 0, ("NORMAL", "PNEUMONIA")),
}


def get_dataset(name: str) -> FolderDataset | MedMNISTDataset:
    check_choice("dataset", name, tuple(sorted(DATASETS)))
    return DATASETS[name]


def load_split(name: str, split: str, size: int, *, root: str | Path | None = None, strict: bool = False,
               cache: bool = True) -> ImageSet | None:
    """Images of one split at ``size`` px; None for a ``val`` split the release does not have."""
    ds, root = get_dataset(name), data_root(root)
    if isinstance(ds, MedMNISTDataset):
        data = _load_medmnist(ds, root, split, size)
    else:
        entries = ds.entries(root, split)
        if not entries:
            if split == "val":
                return None
            raise DataError(f"{name}: the {split} split has no {'images' if split == 'test' else 'normal images'}")
        data = _cached(name, split, size, entries, root, strict) if cache else _decode(entries, size, strict)
    _check(name, split, data)
    return data


def _check(name: str, split: str, data: ImageSet) -> None:
    if split != "test":
        if not len(data):
            raise DataError(f"{name}: the normal class of the {split} split is empty")
        return
    present = set(np.unique(data.labels).tolist())
    if present != {0, 1}:
        only = "normal" if present == {0} else "anomalous"
        raise DataError(f"{name}: the test split holds only {only} images, so AUC is undefined")


def _decode(entries: list[Entry], size: int, strict: bool) -> ImageSet:
    data = read_images([e.path for e in entries], size, [e.label for e in entries], strict=strict)
    read = set(data.paths)
    kept = [e for e in entries if str(e.path) in read]
    data.classes = [e.cls for e in kept]
    if any(e.mask is not None for e in entries):
        data.masks = np.stack([_load_mask(e.mask, size) for e in kept])
    return data


def _load_mask(path: Path | None, size: int) -> np.ndarray:
    if path is None:
        return np.zeros((size, size), np.uint8)
    with Image.open(path) as m:  # upright as its image is (data.images.load_image)
        m = ImageOps.exif_transpose(m).convert("L").resize((size, size), Image.Resampling.NEAREST)
        return (np.asarray(m) > 127).astype(np.uint8)


def _cache_key(entries: list[Entry], size: int, strict: bool) -> str:
    h = hashlib.sha256(f"v{CACHE_VERSION}|{size}|{strict}".encode())
    for e in entries:
        for p in (e.path, e.mask):
            if p is not None:
                st = p.stat()
                h.update(f"{p}|{st.st_size}|{st.st_mtime_ns}|{e.label}|{e.cls}\n".encode("utf-8", "surrogateescape"))
    return h.hexdigest()[:16]


def _save_npy(path: Path, array: np.ndarray) -> None:
    def write(tmp: Path) -> None:
        with tmp.open("wb") as f:
            np.save(f, array)

    atomic_write(path, write)


def _cached(name: str, split: str, size: int, entries: list[Entry], root: Path, strict: bool) -> ImageSet:
    base = cache_root(root) / name / f"{split}-{size}-{_cache_key(entries, size, strict)}"
    meta_file = base.with_suffix(".json")
    if not meta_file.is_file():
        data = _decode(entries, size, strict)
        _save_npy(base.with_suffix(".images.npy"), data.images)
        if data.masks is not None:
            _save_npy(base.with_suffix(".masks.npy"), data.masks)
        write_json(meta_file, {"paths": data.paths, "labels": data.labels.tolist(), "classes": data.classes,
                               "skipped": data.skipped, "masks": data.masks is not None})
    meta = json.loads(meta_file.read_text())
    images = np.load(base.with_suffix(".images.npy"), mmap_mode="r")
    masks = np.load(base.with_suffix(".masks.npy"), mmap_mode="r") if meta["masks"] else None
    return ImageSet(images, meta["paths"], np.asarray(meta["labels"], dtype=np.int64), meta["skipped"],
                    meta["classes"], masks)


def find_npz(ds: MedMNISTDataset, root: Path, size: int) -> Path:
    names = [f"{ds.name}_{s}.npz" for s in (size, 224, 128, 64) if s > 28] + [f"{ds.name}.npz"]
    for folder in (root / "medmnist", root):
        for n in names:
            if (folder / n).is_file():
                return folder / n
    raise DataError(f"no MedMNIST file for {ds.name} under {root / 'medmnist'} or {root} (looked for {names})")


def _load_medmnist(ds: MedMNISTDataset, root: Path, split: str, size: int) -> ImageSet:
    path = find_npz(ds, root, size)
    with np.load(path) as z:
        if f"{split}_images" not in z:
            raise DataError(f"{path} has no '{split}_images' array (keys: {sorted(z.files)})")
        raw, labels = z[f"{split}_images"], z[f"{split}_labels"].reshape(-1).astype(np.int64)
    binary = (labels != ds.normal).astype(np.int64)
    keep = np.arange(len(raw)) if split == "test" else np.flatnonzero(binary == 0)
    images = np.stack([_resize_array(raw[i], size) for i in keep]) if len(keep) else np.zeros((0, size, size, 3), np.uint8)
    return ImageSet(images, [f"{path.name}:{split}:{i}" for i in keep], binary[keep], [],
                    [ds.class_names[labels[i]] for i in keep])


def _resize_array(a: np.ndarray, size: int) -> np.ndarray:
    img = Image.fromarray(a.astype(np.uint8)).convert("RGB")
    return np.asarray(img.resize((size, size), Image.Resampling.BILINEAR) if img.size != (size, size) else img)
