"""Reading images of any common format into a uint8 array at the run's size.

Grayscale, RGB, RGBA, palette and 16-bit (grayscale or colour) PNG/JPEG/TIFF/BMP files all
load: images are converted to 8-bit RGB (grayscale repeated to three channels; more than 8 bits
per pixel min-max stretched per image, the same for grayscale and colour; alpha composited on
black) and resized to size x size with PIL's antialiased bilinear filter, which stretches a
non-square image to the square rather than cropping or padding it. A file that cannot be decoded,
or whose values are NaN or infinite, is reported by path on one line and skipped and counted,
or fails the run with ``strict=True``.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm  # its write keeps a line apart from a progress bar

from ..errors import DataError

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp"})
# ImageNet's per-channel mean and std (RGB, on [0, 1]): every pretrained encoder here expects its
# input normalised by them, so ``to_batch`` applies them and the pixel-space baselines undo them.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class UnreadableImage(DataError):
    pass


def stretch_to_uint8(a: np.ndarray) -> np.ndarray:
    """Values of more than 8 bits, min-max stretched per image to 0..255 (a viewer's auto window);
    ValueError for NaN or infinite values, which no viewer can show."""
    a = np.asarray(a, dtype=np.float64)
    if not np.isfinite(a).all():
        raise ValueError(f"{int((~np.isfinite(a)).sum())} pixel(s) are NaN or infinite")
    lo, hi = float(a.min()), float(a.max())
    a = (a - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros_like(a)
    return np.round(a).astype(np.uint8)


def _png_16bit_colour(path: str | Path) -> np.ndarray:
    """A 16-bit-per-channel colour PNG as (H, W, 3) float values, alpha composited on black.

    Pillow keeps only the high byte of each such channel, which shows 12-bit data stored in 16
    bits as black; pypng reads every bit.
    """
    import png

    width, height, rows, info = png.Reader(filename=os.fspath(path)).asDirect()
    a = np.vstack([np.asarray(r, dtype=np.float64) for r in rows]).reshape(height, width, info["planes"])
    if info["alpha"]:
        a = a[..., :-1] * (a[..., -1:] / (2 ** info["bitdepth"] - 1))
    return a


def to_rgb8(img: Image.Image) -> Image.Image:
    """Any PIL image as 8-bit RGB: more than 8 bits per pixel stretched (``stretch_to_uint8``),
    grayscale repeated to three channels, alpha composited on black."""
    if img.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        img = Image.fromarray(stretch_to_uint8(np.asarray(img)), mode="L")
    if img.mode == "RGBA" or img.mode == "LA" or (img.mode == "P" and "transparency" in img.info):
        img = img.convert("RGBA")
        background = Image.new("RGBA", img.size, (0, 0, 0, 255))
        img = Image.alpha_composite(background, img)
    return img.convert("RGB")


def path_text(path: str | Path) -> str:
    """A path as text that any UTF-8 file or terminal can hold: the bytes of a name that is not
    valid UTF-8 (an old Windows zip's ``caf\xe9.png``) appear as ``\\xNN`` escapes."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def load_image(path: str | Path, size: int) -> np.ndarray:
    """(size, size, 3) uint8 array; raises UnreadableImage naming the file, whatever the decoder raised."""
    try:
        with Image.open(path) as img:
            if img.format == "PNG" and img.mode in ("RGB", "RGBA") and str(img.tile[0][3]).endswith(";16B"):
                rgb = Image.fromarray(stretch_to_uint8(_png_16bit_colour(path)), mode="RGB")
            else:
                img.load()
                rgb = to_rgb8(img)
    except Exception as e:  # noqa: BLE001 - any decoder failure is this file's: named, then skipped or fatal
        raise UnreadableImage(f"cannot read image {path_text(path)}: {e}") from e
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


def note_skipped(path: str | Path, reason: str) -> None:
    """One line on stderr naming an image the run goes on without, and why (above any progress bar)."""
    tqdm.write(f"hetero-ae: skipped unreadable image {path_text(path)}: {reason}", file=sys.stderr)


def read_images(paths: list[Path], size: int, labels: list[int] | None = None, *, strict: bool = False) -> ImageSet:
    """Decode ``paths``; an unreadable file is skipped, named on one line (``note_skipped``) and
    counted in ``ImageSet.skipped``, or, with ``strict``, raises UnreadableImage."""
    arrays, kept, kept_labels, skipped = [], [], [], []
    labels = labels if labels is not None else [-1] * len(paths)
    for path, label in zip(paths, labels):
        try:
            arrays.append(load_image(path, size))
        except UnreadableImage as e:
            if strict:
                raise
            note_skipped(path, str(e.__cause__))
            skipped.append(path_text(path))
            continue
        kept.append(str(path))
        kept_labels.append(label)
    if not arrays:
        raise DataError(f"none of the {len(paths)} image(s) could be read")
    return ImageSet(np.stack(arrays), kept, np.asarray(kept_labels, dtype=np.int64), skipped)


NORMAL_DIRS = ("normal",)
ANOMALOUS_DIRS = ("anomalous", "abnormal")


def label_of(path: str | Path) -> tuple[str, int | None]:
    """(class, label) of an image from its parent folders, as ``read_labelled_folder`` gives them:
    ('normal', 0) under a folder named normal, ('anomalous', 1) under anomalous or abnormal,
    else ('', None)."""
    parts = {p.lower() for p in Path(path).parts[:-1]}
    if parts & set(NORMAL_DIRS):
        return "normal", 0
    if parts & set(ANOMALOUS_DIRS):
        return "anomalous", 1
    return "", None


def read_normal_folder(folder: str | Path, size: int, *, strict: bool = False) -> ImageSet:
    """The normal training images under ``folder``; DataError when some lie under a folder whose
    name says they are anomalous (``anomalous/``, ``abnormal/``), as ``evaluate`` and ``score`` read them."""
    paths = list_images(folder)
    anomalous = [p for p in paths if label_of(p.relative_to(folder))[1] == 1]
    if anomalous:
        raise DataError(f"{path_text(folder)} holds {len(anomalous)} image(s) under a folder named anomalous or "
                        f"abnormal (e.g. {path_text(anomalous[0])}): train on normal images only; point --data at "
                        "the folder that holds them")
    return read_images(paths, size, strict=strict)


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
