"""The published folder layouts of the paper's four datasets (Sec. IV-A), one registry.

| key          | layout read                                                    | normal   |
|--------------|----------------------------------------------------------------|----------|
| oct          | CellData/OCT/{train,test}/{CNV,DME,DRUSEN,NORMAL} (Mendeley v3) | NORMAL   |
|              | or "OCT2017 /{train,val,test}/..." (Kaggle; the trailing space is real, |  |
|              | and Windows drops it: "OCT2017/" is read too)                   |          |
| chest-xray   | chest_xray/{train,val,test}/{NORMAL,PNEUMONIA}                  | NORMAL   |
| brain-mri    | Training/ and Testing/ with glioma, meningioma, notumor, pituitary | notumor |
| covid19      | Covid19-dataset/{train,test}/{Covid,Normal,Viral Pneumonia}     | Normal   |

Training uses the normal class of the training split only; the test split is read whole,
keeping every image's sub-class. A ``val`` split, where a release has one, gives held-out
normal images for a threshold fixed without test labels. Lesion masks, where they exist
(the synthetic data), lie in a sibling ``masks/`` tree that mirrors the image tree.

The dataset folder is found under the root the user names, directly or one folder deeper
(archives often unpack into an extra folder); a missing layout is an error that prints the
expected tree and what was found.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..config import check_choice
from ..errors import DataError
from .images import ANOMALOUS_DIRS, IMAGE_SUFFIXES, NORMAL_DIRS, ImageSet, list_images, path_text, read_images

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Release:
    """One published release: where its split folders lie relative to the dataset root."""

    top: str  # folder holding the split folders ("" = the dataset root itself)
    splits: dict[str, str]  # split -> folder name


@dataclass(frozen=True)
class Layout:
    key: str
    normal: str
    anomalous: tuple[str, ...]
    releases: tuple[Release, ...]
    citation: str

    @property
    def classes(self) -> tuple[str, ...]:
        return (self.normal, *self.anomalous)

    def tree(self) -> str:
        lines = []
        for r in self.releases:
            top = f"{r.top}/" if r.top else ""
            for split, folder in r.splits.items():
                lines.append(f"  {top}{folder}/{{{','.join(self.classes)}}}/*.png|jpeg  ({split})")
        return "\n".join(lines)


LAYOUTS: dict[str, Layout] = {
    layout.key: layout
    for layout in (
        Layout("oct", "NORMAL", ("CNV", "DME", "DRUSEN"),
               (Release("CellData/OCT", {"train": "train", "test": "test"}),
                Release("OCT2017 ", {"train": "train", "val": "val", "test": "test"}),
                Release("OCT2017", {"train": "train", "val": "val", "test": "test"})),  # as Windows unpacks it
               "Kermany et al., Cell 2018 (Mendeley data v3 / Kaggle OCT2017)"),
        Layout("chest-xray", "NORMAL", ("PNEUMONIA",),
               (Release("chest_xray", {"train": "train", "val": "val", "test": "test"}),),
               "Kermany et al., Cell 2018 (Kaggle chest_xray)"),
        Layout("brain-mri", "notumor", ("glioma", "meningioma", "pituitary"),
               (Release("", {"train": "Training", "test": "Testing"}),),
               "Kaggle Brain Tumor MRI dataset (Cheng 2017 and others)"),
        Layout("covid19", "Normal", ("Covid", "Viral Pneumonia"),
               (Release("Covid19-dataset", {"train": "train", "test": "test"}),),
               "Kaggle COVID-19 image dataset (Cohen et al. 2020)"),
    )
}


@dataclass(frozen=True)
class Entry:
    path: Path
    label: int  # 0 normal, 1 anomalous
    cls: str
    mask: Path | None


def get_layout(key: str) -> Layout:
    check_choice("dataset layout", key, tuple(sorted(LAYOUTS)))
    return LAYOUTS[key]


def _candidates(root: Path) -> list[Path]:
    return [root, *sorted(p for p in root.iterdir() if p.is_dir())] if root.is_dir() else []


def find_release(layout: Layout, root: str | Path) -> tuple[Path, Release]:
    """The folder holding the split folders, and which release it is."""
    root = Path(root)
    for base in _candidates(root):
        for release in layout.releases:
            top = base / release.top if release.top else base
            if (top / release.splits["train"]).is_dir() or (top / release.splits["test"]).is_dir():
                return top, release
    found = sorted(p.name for p in root.iterdir())[:20] if root.is_dir() else None
    raise DataError(
        f"no {layout.key} dataset under {root} ({'folder does not exist' if found is None else f'found: {found}'}); "
        f"expected one of these layouts:\n{layout.tree()}"
    )


def _mask_for(image: Path, dataset_root: Path) -> Path | None:
    rel = image.relative_to(dataset_root)
    for suffix in (image.suffix, ".png"):
        candidate = (dataset_root / "masks" / rel).with_suffix(suffix)
        if candidate.is_file():
            return candidate
    return None


def list_split(layout: Layout, root: str | Path, split: str, *, normal_only: bool = False) -> list[Entry]:
    """Entries of one split (train, val or test), sorted by class then file name."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    top, release = find_release(layout, root)
    if split not in release.splits:
        return []
    folder = top / release.splits[split]
    if not folder.is_dir():
        raise DataError(f"{layout.key}: split folder {folder} is missing; expected:\n{layout.tree()}")
    dataset_root = _dataset_root(top, release)
    classes = (layout.normal,) if normal_only else layout.classes
    entries: list[Entry] = []
    for cls in classes:
        cdir = folder / cls
        if not cdir.is_dir():
            present = sorted(p.name for p in folder.iterdir() if p.is_dir())
            raise DataError(f"{layout.key}: class folder {cdir} is missing (found {present}); expected:\n{layout.tree()}")
        files = sorted(p for p in cdir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        label = 0 if cls == layout.normal else 1
        entries += [Entry(p, label, cls, _mask_for(p, dataset_root) if label else None) for p in files]
    return entries


def _dataset_root(top: Path, release: Release) -> Path:
    """The folder that a sibling masks/ tree mirrors: the one above the release's top folders."""
    depth = len(Path(release.top).parts) if release.top else 0
    root = top
    for _ in range(depth):
        root = root.parent
    return root


def read_labelled_folder(folder: str | Path, size: int, *, normal_class: str | None = None,
                         strict: bool = False) -> ImageSet:
    """A labelled test folder: one sub-folder of images per class, each image keeping its class.

    Which classes are read: with ``normal_class``, that sub-folder as normal and every other as
    anomalous; else ``normal/`` against ``anomalous/`` (or ``abnormal/``); else the classes of the
    known layout the folder holds (e.g. the Kaggle brain MRI ``Testing/`` with glioma, meningioma,
    notumor, pituitary; notumor normal). Other sub-folders are not read in the last two cases. A class
    folder, or a folder inside one, may be a symbolic link (``list_images``). Raises DataError for a
    file, and naming what was found otherwise.
    """
    folder = Path(folder)
    if folder.is_file():
        raise DataError(f"{path_text(folder)} is a file, not a folder with one sub-folder of images per class")
    if not folder.is_dir():
        raise DataError(f"test folder not found: {path_text(folder)}")
    subdirs = {p.name: p for p in sorted(folder.iterdir()) if p.is_dir()}
    lower = {name.lower(): name for name in subdirs}
    if normal_class is not None:
        if normal_class not in subdirs:
            raise DataError(f"{path_text(folder)} has no sub-folder {normal_class!r} for --normal-class "
                            f"(found: {sorted(subdirs) or 'no sub-folders'})")
        normal, anomalous = normal_class, [n for n in subdirs if n != normal_class]
    elif any(n in lower for n in NORMAL_DIRS) and any(n in lower for n in ANOMALOUS_DIRS):
        normal = next(lower[n] for n in NORMAL_DIRS if n in lower)
        anomalous = [lower[n] for n in ANOMALOUS_DIRS if n in lower]
    else:
        known = [lay for lay in LAYOUTS.values() if set(lay.classes) <= set(subdirs)]
        if not known:
            raise DataError(f"{path_text(folder)} must hold 'normal/' and 'anomalous/' sub-folders, or the classes of "
                            f"a known dataset ({'; '.join(', '.join(lay.classes) for lay in LAYOUTS.values())}), or "
                            f"name its normal class with --normal-class (found: {sorted(subdirs) or 'no sub-folders'})")
        normal, anomalous = known[0].normal, list(known[0].anomalous)
    if not anomalous:
        raise DataError(f"{path_text(folder)}: no anomalous class beside {normal!r} (found: {sorted(subdirs)})")
    groups = [(normal, 0), *((name, 1) for name in anomalous)]
    paths, labels, classes = [], [], []
    for name, label in groups:
        files = list_images(subdirs[name])
        paths += files
        labels += [label] * len(files)
        classes += ["normal" if label == 0 and name.lower() in NORMAL_DIRS else
                    "anomalous" if name.lower() in ANOMALOUS_DIRS else name] * len(files)
    data = read_images(paths, size, labels, strict=strict)
    by_path = dict(zip(map(str, paths), classes))
    data.classes = [by_path[p] for p in data.paths]
    return data
