"""A frozen network's features of a fixed image set, computed once per run (DESIGN 3.10).

With a frozen encoder (or distillation teacher) and no augmentation, which is the paper's
setting (Sec. IV-B1 names no augmentation), F_E^k of a training image is the same in every
epoch. ``FeatureCache.build`` computes the frozen network's maps of every image once, in the
model's precision, and ``batch`` hands back those of a batch, so that training runs only what
learns. The result equals the uncached path to float rounding (``tests/test_feature_cache.py``).

Storage: one array (N, C_k, H_k, W_k) per level, in the features' dtype (float32), on the training device while the
total stays within ``budget_bytes``; above it, ``.npy`` memory maps in a temporary folder
under ``spill_dir`` (deleted by ``close``), read batch by batch. ``describe`` says which and
how large, and the run records it.
"""

from __future__ import annotations

import shutil
import tempfile
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..data.images import to_batch
from ..methods.registry import AnomalyModel
from ..model.precision import Forward

DEFAULT_BUDGET_BYTES = 4 * 2**30  # 4 GiB: every cpu-profile run, and 1,595 ResNet-18 images at 256 px (3.1 GB)


class FeatureCache:
    """Per level, the frozen features of N images: in memory (tensors) or on disk (memory maps)."""

    def __init__(self, levels: list[Tensor] | list[np.ndarray], folder: Path | None = None) -> None:
        self.levels, self.folder = levels, folder

    @classmethod
    def build(cls, model: AnomalyModel, images: np.ndarray, *, device: str = "cpu", batch_size: int = 32,
              budget_bytes: int = DEFAULT_BUDGET_BYTES, spill_dir: str | Path | None = None,
              prefix: str = ".feature-cache-", forward: Forward = nullcontext) -> "FeatureCache":
        """The frozen features of ``images`` (N, H, W, 3) uint8, in input order.

        ``forward``: the context of the run's precision (``model.precision.running_in``).
        Raises ValueError for an empty image set or a model without a cacheable frozen network.
        """
        if not len(images):
            raise ValueError("no images to compute features of")
        if not model.caches_features:
            raise ValueError(f"{model.method_name}: its features are not fixed during training (no cache)")
        was_training = model.training
        model.eval()
        first = cls._compute(model, images[:batch_size], device, forward)
        per_image = sum(f[0].numel() * f.element_size() for f in first)
        total = per_image * len(images)
        on_disk = total > budget_bytes
        folder = Path(tempfile.mkdtemp(prefix=prefix, dir=spill_dir)) if on_disk else None
        try:
            levels = [cls._allocate(f, len(images), folder, k) for k, f in enumerate(first)]
            cls._store(levels, 0, first)
            for i in range(batch_size, len(images), batch_size):
                cls._store(levels, i, cls._compute(model, images[i : i + batch_size], device, forward))
        except BaseException:
            if folder is not None:
                shutil.rmtree(folder, ignore_errors=True)
            raise
        finally:
            model.train(was_training)
        return cls(levels, folder)

    @classmethod
    def bytes_needed(cls, model: AnomalyModel, image: np.ndarray, device: str = "cpu",
                     forward: Forward = nullcontext) -> int:
        """Bytes the frozen features of one image (``image``: (1, H, W, 3) uint8) take."""
        was_training = model.training
        model.eval()
        try:
            return sum(f[0].numel() * f.element_size() for f in cls._compute(model, image, device, forward))
        finally:
            model.train(was_training)

    @staticmethod
    def _compute(model: AnomalyModel, images: np.ndarray, device: str, forward: Forward) -> list[Tensor]:
        with torch.no_grad(), forward():  # a bf16 model's networks hand on float32 (model.precision)
            return [f.contiguous() for f in model.frozen_features(to_batch(images).to(device))]

    @staticmethod
    def _allocate(like: Tensor, n: int, folder: Path | None, k: int) -> Tensor | np.ndarray:
        """Room for ``n`` maps shaped and typed like the batch ``like``: on its device, or a memory map."""
        shape = (n, *like.shape[1:])
        if folder is None:
            return torch.empty(shape, dtype=like.dtype, device=like.device)
        dtype = torch.empty(0, dtype=like.dtype).numpy().dtype
        return np.lib.format.open_memmap(folder / f"level{k}.npy", mode="w+", dtype=dtype, shape=shape)

    @staticmethod
    def _store(levels: list, start: int, feats: list[Tensor]) -> None:
        for level, f in zip(levels, feats, strict=True):
            if isinstance(level, np.ndarray):
                level[start : start + len(f)] = f.cpu().numpy()
            else:
                level[start : start + len(f)] = f

    def __len__(self) -> int:
        return len(self.levels[0])

    @property
    def nbytes(self) -> int:
        return sum(int(level.nbytes) for level in self.levels)

    @property
    def on_disk(self) -> bool:
        return self.folder is not None

    def describe(self) -> str:
        where = "memory-mapped on disk" if self.on_disk else f"in {self.levels[0].device.type} memory"
        return f"{len(self)} images, {self.nbytes / 2**20:.0f} MiB, {where}"

    def batch(self, idx: np.ndarray, device: str = "cpu") -> list[Tensor]:
        """The features of images ``idx`` (sorted reads suit the memory maps), one tensor per level, on ``device``."""
        if self.on_disk:
            return [torch.from_numpy(np.ascontiguousarray(level[idx])).to(device, non_blocking=True)
                    for level in self.levels]
        index = torch.as_tensor(idx, dtype=torch.long, device=self.levels[0].device)
        return [level.index_select(0, index).to(device, non_blocking=True) for level in self.levels]

    def batches(self, batch_size: int, device: str = "cpu"):
        """Every image's features in order, ``batch_size`` at a time."""
        for i in range(0, len(self), batch_size):
            yield self.batch(np.arange(i, min(i + batch_size, len(self))), device)

    def close(self) -> None:
        """Drop the arrays and delete the memory maps' folder, if any."""
        self.levels = []
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None
