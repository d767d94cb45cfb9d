"""Reading images of any common format into a uint8 array at the run's size.

Grayscale, RGB, RGBA, palette and 16-bit PNG/JPEG/TIFF/BMP files all load: images are
converted to 8-bit RGB (grayscale repeated to three channels; more than 8 bits per pixel
min-max scaled per image; alpha dropped) and resized to size x size with PIL's
antialiased bilinear filter. Unreadable files are reported by path and skipped and
counted, or fail the run with ``strict=True``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from ..errors import DataError

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp"})
# ImageNet's per-channel mean and std (RGB, on [0, 1]): every pretrained encoder here expects its
# input normalised by them, so ``to_batch`` applies them and the pixel-space baselines undo them.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class UnreadableImage(DataError):
    pass


def to_rgb8(img: Image.Image) -> Image.Image:
    """Any PIL image as 8-bit RGB."""
    if img.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        a = np.asarray(img, dtype=np.float64)
        lo, hi = float(a.min()), float(a.max())
        a = (a - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros_like(a)
        img = Image.fromarray(np.round(a).astype(np.uint8), mode="L")
    if img.mode == "RGBA" or img.mode == "LA" or (img.mode == "P" and "transparency" in img.info):
        img = img.convert("RGBA")
        background = Image.new("RGBA", img.size, (0, 0, 0, 255))
        img = Image.alpha_composite(background, img)
    return img.convert("RGB")


def load_image(path: str | Path, size: int) -> np.ndarray:
    """(size, size, 3) uint8 array; raises UnreadableImage naming the file."""
    try:
        with Image.open(path) as img:
            img.load()
            rgb = to_rgb8(img)
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as e:
        raise UnreadableImage(f"cannot read image {path}: {e}") from e
    if rgb.size != (size, size):
        rgb = rgb.resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(rgb, dtype=np.uint8)


def list_images(folder: str | Path) -> list[Path]:
    """Image files under ``folder`` (recursive, sorted); a clear error if there are none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"image folder not found: {folder}")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise DataError(f"no image files ({', '.join(sorted(IMAGE_SUFFIXES))}) under {folder}")
    return files


@dataclass
class ImageSet:
    """Decoded images (N, H, W, 3) uint8 with per-image labels (0 normal, 1 anomalous, -1 unknown).

    ``classes`` keeps each image's sub-class (e.g. CNV, DME, DRUSEN); ``masks`` (N, H, W) uint8
    holds lesion masks when the data set has them. ``images`` may be a read-only memory map.
    """

    images: np.ndarray
    paths: list[str]
    labels: np.ndarray
    skipped: list[str] = field(default_factory=list)
    classes: list[str] = field(default_factory=list)
    masks: np.ndarray | None = None

    def __post_init__(self) -> None:
        assert self.images.ndim == 4 and self.images.shape[-1] == 3, f"bad image array {self.images.shape}"
        assert len(self.images) == len(self.paths) == len(self.labels)
        if not self.classes:
            self.classes = ["normal" if y == 0 else "anomalous" if y == 1 else "" for y in self.labels]
        assert len(self.classes) == len(self.paths)
        assert self.masks is None or self.masks.shape == self.images.shape[:3], "masks must be (N, H, W)"

    def __len__(self) -> int:
        return len(self.paths)

    def subset(self, idx: np.ndarray) -> "ImageSet":
        idx = np.asarray(idx, dtype=np.int64)
        return ImageSet(
            self.images[idx], [self.paths[i] for i in idx], self.labels[idx], self.skipped,
            [self.classes[i] for i in idx], None if self.masks is None else self.masks[idx],
        )


def read_images(paths: list[Path], size: int, labels: list[int] | None = None, *, strict: bool = False) -> ImageSet:
    """Decode ``paths``; unreadable files are skipped with a warning naming each (or raise if strict)."""
    arrays, kept, kept_labels, skipped = [], [], [], []
    labels = labels if labels is not None else [-1] * len(paths)
    for path, label in zip(paths, labels):
        try:
            arrays.append(load_image(path, size))
        except UnreadableImage as e:
            if strict:
                raise
            warnings.warn(f"skipping unreadable image {path}: {e.__cause__}", stacklevel=2)
            skipped.append(str(path))
            continue
        kept.append(str(path))
        kept_labels.append(label)
    if skipped:
        warnings.warn(f"skipped {len(skipped)} unreadable image(s) of {len(paths)}", stacklevel=2)
    if not arrays:
        raise DataError(f"none of the {len(paths)} image(s) could be read")
    return ImageSet(np.stack(arrays), kept, np.asarray(kept_labels, dtype=np.int64), skipped)


def read_folder(folder: str | Path, size: int, *, strict: bool = False) -> ImageSet:
    """All images under ``folder``, unlabelled (e.g. normal training images or images to score)."""
    return read_images(list_images(folder), size, strict=strict)


NORMAL_DIRS = ("normal",)
ANOMALOUS_DIRS = ("anomalous", "abnormal")


def read_labelled_folder(folder: str | Path, size: int, *, strict: bool = False) -> ImageSet:
    """A test folder with ``normal/`` and ``anomalous/`` (or ``abnormal/``) sub-folders."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"test folder not found: {folder}")
    subdirs = {p.name.lower(): p for p in folder.iterdir() if p.is_dir()}
    normal = [subdirs[n] for n in NORMAL_DIRS if n in subdirs]
    anomalous = [subdirs[n] for n in ANOMALOUS_DIRS if n in subdirs]
    if not normal or not anomalous:
        raise DataError(
            f"{folder} must hold a 'normal/' and an 'anomalous/' sub-folder of images "
            f"(found: {sorted(subdirs) or 'no sub-folders'})"
        )
    normal_paths, anomalous_paths = list_images(normal[0]), list_images(anomalous[0])
    labels = [0] * len(normal_paths) + [1] * len(anomalous_paths)
    return read_images(normal_paths + anomalous_paths, size, labels, strict=strict)


_MEAN = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1) * 255.0
_STD = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1) * 255.0


def to_batch(images: np.ndarray | torch.Tensor) -> torch.Tensor:
    """(B, H, W, 3) uint8 -> ImageNet-normalised float (B, 3, H, W), channels-last in memory.

    A tensor is normalised on its own device (e.g. a uint8 batch already moved to the GPU).
    """
    if isinstance(images, torch.Tensor):
        x = images.permute(0, 3, 1, 2).float()
    else:
        x = torch.from_numpy(np.array(images)).permute(0, 3, 1, 2).float()  # a copy: images may be a read-only memmap
    return ((x - _MEAN.to(x.device)) / _STD.to(x.device)).contiguous(memory_format=torch.channels_last)
