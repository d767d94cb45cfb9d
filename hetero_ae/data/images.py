"""Reading images of any common format into a uint8 array at the run's size.

Grayscale, RGB, RGBA, palette and 16-bit (grayscale, grayscale with alpha, or colour)
PNG/JPEG/TIFF/BMP files all load: images are turned upright as a viewer shows them (their EXIF
orientation, as a phone or PACS export sets it, applied by ``ImageOps.exif_transpose``), converted
to 8-bit RGB (grayscale repeated to three channels; more than 8 bits per pixel min-max stretched
per image, the same for grayscale and colour; alpha composited on black) and resized to size x size
with PIL's antialiased bilinear filter, which stretches a non-square image to the square rather
than cropping or padding it. A file that cannot be decoded, or whose values are NaN or infinite,
is reported by path on one line and skipped and counted, or fails the run with ``strict=True``;
an image past Pillow's decompression-bomb limit is read with one line of ours, and one past twice
that limit is such an unreadable file.

Folders are searched recursively, following symbolic links to folders (a link that leads back to
a folder above it is an error naming it); files of other formats (DICOM, NIfTI, ...) are not
read, and are named and counted on one line.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import ExifTags, Image, ImageOps
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


def _png_16bit(path: str | Path) -> np.ndarray:
    """A 16-bit-per-channel colour, or grayscale-with-alpha, PNG as (H, W, 3) float values, alpha
    composited on black (grayscale repeated to three channels).

    Pillow keeps only the high byte of each such channel, which shows 12-bit data stored in 16
    bits as black, and cannot convert 16-bit grayscale with alpha at all; pypng reads every bit.
    """
    import png

    width, height, rows, info = png.Reader(filename=os.fspath(path)).asDirect()
    a = np.vstack([np.asarray(r, dtype=np.float64) for r in rows]).reshape(height, width, info["planes"])
    if info["alpha"]:
        a = a[..., :-1] * (a[..., -1:] / (2 ** info["bitdepth"] - 1))
    return np.repeat(a, 3, axis=2) if a.shape[2] == 1 else a


def _is_png_16bit(img: Image.Image) -> bool:
    """Whether Pillow would read ``img`` as 8 bits or not at all: a PNG of 16-bit colour or grayscale with alpha."""
    return img.format == "PNG" and img.mode in ("RGB", "RGBA", "LA") and str(img.tile[0][3]).endswith(";16B")


def _upright(rgb: Image.Image, source: Image.Image) -> Image.Image:
    """``rgb`` (decoded from ``source``) turned as a viewer shows ``source``: its EXIF orientation applied."""
    orientation = source.getexif().get(ExifTags.Base.Orientation, 1)
    if orientation == 1:
        return rgb
    rgb.getexif()[ExifTags.Base.Orientation] = orientation
    return ImageOps.exif_transpose(rgb)


def _note_large(path: str | Path, img: Image.Image) -> None:
    """One line on stderr for an image past Pillow's decompression-bomb limit (Pillow's own warning is muted)."""
    limit = Image.MAX_IMAGE_PIXELS
    pixels = img.size[0] * img.size[1]
    if limit and pixels > limit:
        tqdm.write(f"hetero-ae: note: {path_text(path)} has {pixels / 1e6:.1f} megapixels, more than Pillow's "
                   f"decompression-bomb limit ({limit / 1e6:.1f}); decoding it anyway", file=sys.stderr)


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
    """(size, size, 3) uint8 array, upright; raises UnreadableImage naming the file, whatever the decoder
    raised (Pillow's DecompressionBombError for an image past twice its pixel limit included)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # said once, in our words
            with Image.open(path) as img:
                _note_large(path, img)
                if _is_png_16bit(img):
                    rgb = Image.fromarray(stretch_to_uint8(_png_16bit(path)), mode="RGB")
                else:
                    img.load()
                    rgb = to_rgb8(img)
                rgb = _upright(rgb, img)
    except Exception as e:  # noqa: BLE001 - any decoder failure is this file's: named, then skipped or fatal
        raise UnreadableImage(f"cannot read image {path_text(path)}: {e}") from e
    if rgb.size != (size, size):
        rgb = rgb.resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(rgb, dtype=np.uint8)


def files_under(folder: Path, skip: Callable[[Path], bool] | None = None) -> list[Path]:
    """Every file under ``folder``, following symbolic links to folders, except in folders that ``skip`` names.

    Raises DataError naming a link that leads back to a folder above it (a loop) and a folder that
    cannot be read.
    """
    files: list[Path] = []
    todo: list[tuple[Path, frozenset]] = [(folder, frozenset())]
    while todo:
        here, above = todo.pop()
        try:
            st = here.stat()
            if (st.st_dev, st.st_ino) in above:
                raise DataError(f"symbolic link loop: {path_text(here)} leads back to {path_text(here.resolve())}, "
                                f"a folder that holds it, under {path_text(folder)}")
            above = above | {(st.st_dev, st.st_ino)}
            with os.scandir(here) as entries:
                for entry in entries:
                    path = here / entry.name
                    if entry.is_dir():  # follows a link
                        if skip is None or not skip(path):
                            todo.append((path, above))
                    elif entry.is_file():
                        files.append(path)
        except OSError as e:
            raise DataError(f"cannot read folder {path_text(here)}: {e.strerror}") from e
    return files


def _kind(path: Path) -> str:
    """A file's format as its name gives it: ``.dcm``, ``.nii.gz``, or ``no suffix``."""
    suffixes = [s.lower() for s in path.suffixes[-2:]]
    if len(suffixes) == 2 and suffixes[1] in (".gz", ".bz2", ".xz"):
        return "".join(suffixes)
    return suffixes[-1] if suffixes else "no suffix"


def note_not_images(folder: Path, others: list[Path]) -> None:
    """One line on stderr counting the files under ``folder`` that are not images this reads, by format
    (hidden files, such as ``.DS_Store``, are not counted)."""
    others = sorted(p for p in others if not p.name.startswith("."))
    if others:
        kinds = Counter(_kind(p) for p in others)
        tqdm.write(f"hetero-ae: skipped {len(others)} file(s) under {path_text(folder)} that are not images this "
                   f"reads: {', '.join(f'{n} {k}' for k, n in sorted(kinds.items()))} (first: {path_text(others[0])})",
                   file=sys.stderr)


def list_images(folder: str | Path, skip: Callable[[Path], bool] | None = None) -> list[Path]:
    """Image files under ``folder`` (recursive through links, sorted; not in the folders ``skip`` names);
    the other files are counted on one line (``note_not_images``).

    Raises DataError for a missing folder, a file, a link loop, or a folder without images.
    """
    folder = Path(folder)
    if folder.is_file():
        raise DataError(f"{path_text(folder)} is a file, not a folder of images")
    if not folder.is_dir():
        raise DataError(f"image folder not found: {path_text(folder)}")
    found = files_under(folder, skip)
    files = sorted(p for p in found if p.suffix.lower() in IMAGE_SUFFIXES)
    note_not_images(folder, [p for p in found if p.suffix.lower() not in IMAGE_SUFFIXES])
    if not files:
        raise DataError(f"no image files ({', '.join(sorted(IMAGE_SUFFIXES))}) under {path_text(folder)}")
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
