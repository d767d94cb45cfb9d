"""The one input pipeline: batches of uint8 images, in a given order, from an array or from files.

Training, evaluation and ``hetero-ae score`` all read images through ``batch_loader``. A
source hands out the images at a set of indices as one ``Batch``:

- ``ArrayImages``: a decoded (N, H, W, 3) uint8 array (an ``ImageSet``'s, possibly a memory
  map); every image is there, so a batch has no errors;
- ``ImageFiles``: files decoded at the run's size when their batch is asked for, so a folder
  of any size is read in bounded memory; a file that cannot be decoded is left out of the
  batch and reported in its ``errors`` (the caller skips it, or fails with ``--strict``).

``batch_loader`` runs ``workers`` processes ahead of the model (decoding or slicing the next
batches), copies batches to pinned memory on CUDA so that ``.to(device, non_blocking=True)``
overlaps computation, and moves them as uint8 (a quarter of float32's bytes);
``data.images.to_batch`` normalises them on the device.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from .images import UnreadableImage, load_image


@dataclass
class Batch:
    """Positions (in the source) of the images that were read, the images (k, H, W, 3) uint8, and
    (position, message) of each image that could not be."""

    index: list[int]
    images: torch.Tensor
    errors: list[tuple[int, str]]

    def pin_memory(self) -> "Batch":  # DataLoader(pin_memory=True) calls this on custom batch types
        return Batch(self.index, self.images.pin_memory(), self.errors)


class ArrayImages:
    """A decoded uint8 array (N, H, W, 3) as a batch source."""

    def __init__(self, images: np.ndarray) -> None:
        self.images = images

    def take(self, idx: np.ndarray) -> Batch:
        return Batch([int(i) for i in idx], torch.from_numpy(np.ascontiguousarray(self.images[idx])), [])


class ImageFiles:
    """Image files, decoded to (size, size, 3) uint8 when their batch is taken."""

    def __init__(self, paths: Sequence[Path], size: int) -> None:
        self.paths, self.size = list(paths), size

    def take(self, idx: np.ndarray) -> Batch:
        ok: list[tuple[int, np.ndarray]] = []
        errors: list[tuple[int, str]] = []
        for i in (int(i) for i in idx):
            try:
                ok.append((i, load_image(self.paths[i], self.size)))
            except UnreadableImage as e:  # reported by the main process: a worker's traceback is no message
                errors.append((i, str(e.__cause__ or e)))
        images = (torch.from_numpy(np.stack([a for _, a in ok])) if ok
                  else torch.empty((0, self.size, self.size, 3), dtype=torch.uint8))
        return Batch([i for i, _ in ok], images, errors)


def in_order(n: int, batch_size: int, start: int = 0) -> list[np.ndarray]:
    """Indices ``start..n-1`` in batches of ``batch_size`` (the last one shorter)."""
    return [np.arange(i, min(i + batch_size, n)) for i in range(start, n, batch_size)]


class _Batches(Dataset):
    def __init__(self, source: ArrayImages | ImageFiles, batches: Sequence[np.ndarray]) -> None:
        self.source, self.batches = source, batches

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, k: int) -> Batch:
        return self.source.take(self.batches[k])


def batch_loader(source: ArrayImages | ImageFiles, batches: Sequence[np.ndarray], *, device: str = "cpu",
                 workers: int = 0) -> DataLoader:
    """``source.take(batches[0])``, ``source.take(batches[1])``, ... in that order.

    ``workers`` processes prepare the batches ahead of the caller; on CUDA they come in pinned
    memory. Iterating it leaves torch's global random state as it was (stochastic methods draw
    from it). Raises ValueError for a negative ``workers``.
    """
    if workers < 0:
        raise ValueError(f"workers must be 0 or more, got {workers}")
    return DataLoader(
        _Batches(source, batches), batch_size=None, shuffle=False, num_workers=workers,
        pin_memory=torch.device(device).type == "cuda", prefetch_factor=2 if workers else None,
        generator=torch.Generator(),  # its own: a loader draws a base seed, which must not come from torch's RNG
    )
