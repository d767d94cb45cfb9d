"""Scoring images and computing the paper's image-level metrics (Sec. III-D2, IV-B2).

Two thresholds are reported (DESIGN 3.8): the paper's, chosen on the test set itself to
maximise F1 (``best_f1``), and one a clinic could use, fixed from held-out normal images
only as the 95th percentile of their scores (``normal_q95``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm  # plain text bars: no widget warnings in notebooks and their HTML

from .data.images import to_batch
from .metrics import image_metrics, normal_quantile_threshold
from .registry import AnomalyModel


def batched_predictions(
    model: AnomalyModel, images: np.ndarray, *, batch_size: int = 32, device: str = "cpu", progress: bool = False
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray | None]]:
    """Yield (maps (b, H, W) float32, scores (b,), feature distances (b,) or None) batch by batch, in input order.

    The distance is the method's ``feature_distance`` (Fig. 6), computed in the same forward
    pass as the maps; None for methods that define none. The forward pass runs in the model's
    ``precision`` (bf16 autocast for a model trained so); what is yielded is float32.
    """
    model.eval()
    with torch.inference_mode(), model.autocast():
        for i in tqdm(range(0, len(images), batch_size), desc="scoring", disable=not progress, leave=False):
            maps, scores, distance = model.predict_with_distance(to_batch(images[i : i + batch_size]).to(device))
            yield (maps.float().cpu().numpy(), scores.float().cpu().numpy(),
                   None if distance is None else distance.float().cpu().numpy())


@dataclass
class Predictions:
    """Everything one pass over a set of images gives: maps, raw scores and, where defined, feature distances."""

    maps: np.ndarray  # (N, H, W)
    scores: np.ndarray  # (N,), before the method's score normalisation
    feature_distance: np.ndarray | None  # (N,), or None when the method defines none


def predict_all(
    model: AnomalyModel, images: np.ndarray, *, batch_size: int = 32, device: str = "cpu", progress: bool = False
) -> Predictions:
    """Maps, raw scores and feature distances of a uint8 image array, in one pass."""
    parts = list(batched_predictions(model, images, batch_size=batch_size, device=device, progress=progress))
    distances = [d for _, _, d in parts]
    return Predictions(
        maps=np.concatenate([m for m, _, _ in parts]),
        scores=np.concatenate([s for _, s, _ in parts]),
        feature_distance=None if any(d is None for d in distances) else np.concatenate(distances),
    )


def predict(
    model: AnomalyModel, images: np.ndarray, *, batch_size: int = 32, device: str = "cpu", progress: bool = False,
    normalize: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Anomaly maps (N, H, W) and image scores (N,) of a uint8 image array.

    The method's score normalisation is applied once over all N scores (``normalize=False``
    returns the raw scores, e.g. to normalise other images by the test set's range).
    """
    out = predict_all(model, images, batch_size=batch_size, device=device, progress=progress)
    return out.maps, model.normalize_scores(out.scores) if normalize else out.scores


def evaluate_scores(labels: np.ndarray, scores: np.ndarray, normal_val_scores: np.ndarray | None = None) -> dict:
    """Image metrics at the best-F1 threshold and, given normal validation scores, at their 95th percentile."""
    out = {"best_f1": image_metrics(labels, scores)}
    if normal_val_scores is not None and len(normal_val_scores):
        out["normal_q95"] = image_metrics(labels, scores, threshold=normal_quantile_threshold(normal_val_scores, 0.95))
    return out
