"""Scoring images and computing the paper's image-level metrics (Sec. III-D2, IV-B2).

Two thresholds are reported (DESIGN 3.8): the paper's, chosen on the test set itself to
maximise F1 (``best_f1``), and one a clinic could use, fixed from held-out normal images
only as the 95th percentile of their scores (``normal_q95``).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from tqdm.auto import tqdm

from .data.images import to_batch
from .metrics import image_metrics, normal_quantile_threshold
from .registry import AnomalyModel


def batched_maps(
    model: AnomalyModel, images: np.ndarray, *, batch_size: int = 32, device: str = "cpu", progress: bool = False
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield (maps (b, H, W) float32, scores (b,)) batch by batch, in input order."""
    model.eval()
    with torch.inference_mode():
        for i in tqdm(range(0, len(images), batch_size), desc="scoring", disable=not progress, leave=False):
            maps, scores = model.predict(to_batch(images[i : i + batch_size]).to(device))
            yield maps.float().cpu().numpy(), scores.float().cpu().numpy()


def predict(
    model: AnomalyModel, images: np.ndarray, *, batch_size: int = 32, device: str = "cpu", progress: bool = False,
    normalize: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Anomaly maps (N, H, W) and image scores (N,) of a uint8 image array.

    The method's score normalisation is applied once over all N scores (``normalize=False``
    returns the raw scores, e.g. to normalise other images by the test set's range).
    """
    parts = list(batched_maps(model, images, batch_size=batch_size, device=device, progress=progress))
    scores = np.concatenate([s for _, s in parts])
    return np.concatenate([m for m, _ in parts]), model.normalize_scores(scores) if normalize else scores


def evaluate_scores(labels: np.ndarray, scores: np.ndarray, normal_val_scores: np.ndarray | None = None) -> dict:
    """Image metrics at the best-F1 threshold and, given normal validation scores, at their 95th percentile."""
    out = {"best_f1": image_metrics(labels, scores)}
    if normal_val_scores is not None and len(normal_val_scores):
        out["normal_q95"] = image_metrics(labels, scores, threshold=normal_quantile_threshold(normal_val_scores, 0.95))
    return out
