"""From a trained model and images to anomaly maps, image scores and the paper's metrics (Sec. III-D2, IV-B2).

One path for every caller (``hetero-ae run``, ``evaluate``, ``score``, the notebooks):

- ``predict_batches``: the model over the batches of ``data.batches.batch_loader``, in the
  precision the model was trained in; per batch, its maps, raw image scores and, where the
  method defines one, its ``feature_distance`` (Fig. 6), all from one forward pass;
- ``predict_all``: the same over a decoded image array, gathered;
- ``evaluate``: the one function from (model, labelled test images, held-out normals) to
  maps, scores, the held-out normals' scores and the metrics; ``save_evaluation`` writes what
  it found (``scores.csv`` through ``evaluation.scores``, and ``metrics.json``).

Two thresholds are reported (DESIGN 3.8): the paper's, chosen on the test set itself to
maximise F1 (``best_f1``), and one a clinic could use, fixed from held-out normal images
only as the 95th percentile of their scores (``normal_q95``). A method's score normalisation
(GANomaly's min-max) is applied once over the whole test set, never per batch, and puts the
held-out normals on the test set's scale.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm  # plain text bars: no widget warnings in notebooks and their HTML

from ..data.batches import ArrayImages, Batch, batch_loader, in_order
from ..data.images import ImageSet, to_batch
from ..io import write_json
from ..methods.registry import AnomalyModel
from ..model.precision import running_in
from .metrics import image_metrics, normal_quantile_threshold, pixel_metrics
from .scores import write_scores


def predict_batches(model: AnomalyModel, batches: Iterable[Batch], *, device: str = "cpu", precision: str = "fp32",
                    ) -> Iterator[tuple[Batch, np.ndarray, np.ndarray, np.ndarray | None]]:
    """(batch, maps (k, H, W), raw scores (k,), feature distances (k,) or None) for each batch, float32.

    The forward pass runs in ``precision`` (``hetero_ae.model.precision``: the one the model
    was trained in, for the numbers it was evaluated with) and without gradients; an empty batch (every file
    in it unreadable) yields empty arrays.
    """
    model.to(device).eval()
    with running_in(model, precision) as forward, torch.inference_mode():
        for batch in batches:
            if not batch.index:
                yield empty_prediction(batch)
                continue
            with forward():
                maps, scores, distance = model.predict_with_distance(
                    to_batch(batch.images.to(device, non_blocking=True)))
            yield (batch, maps.float().cpu().numpy(), scores.float().cpu().numpy(),
                   None if distance is None else distance.float().cpu().numpy())


def empty_prediction(batch: Batch) -> tuple[Batch, np.ndarray, np.ndarray, None]:
    """What a prediction path yields for a batch whose every file was unreadable: empty arrays."""
    return batch, np.empty((0, *batch.images.shape[1:3]), np.float32), np.empty(0, np.float32), None


@dataclass
class Predictions:
    """Everything one pass over a set of images gives: maps, raw scores and, where defined, feature distances."""

    maps: np.ndarray  # (N, H, W) float32
    scores: np.ndarray  # (N,), before the method's score normalisation
    feature_distance: np.ndarray | None  # (N,), or None when the method defines none


def predict_all(model: AnomalyModel, images: np.ndarray, *, batch_size: int = 32, device: str = "cpu",
                progress: bool = False, precision: str = "fp32") -> Predictions:
    """Maps, raw scores and feature distances of a uint8 image array (N, H, W, 3), in one pass, in input order."""
    loader = batch_loader(ArrayImages(images), in_order(len(images), batch_size), device=device)
    parts = list(predict_batches(model, tqdm(loader, desc="scoring", disable=not progress, leave=False),
                                 device=device, precision=precision))
    distances = [d for *_, d in parts]
    return Predictions(maps=np.concatenate([m for _, m, _, _ in parts]),
                       scores=np.concatenate([s for _, _, s, _ in parts]),
                       feature_distance=None if any(d is None for d in distances) else np.concatenate(distances))


def predict(model: AnomalyModel, images: np.ndarray, *, batch_size: int = 32, device: str = "cpu",
            progress: bool = False, normalize: bool = True, precision: str = "fp32") -> tuple[np.ndarray, np.ndarray]:
    """Anomaly maps (N, H, W) and image scores (N,) of a uint8 image array.

    The method's score normalisation is applied once over all N scores (``normalize=False``
    returns the raw scores).
    """
    out = predict_all(model, images, batch_size=batch_size, device=device, progress=progress, precision=precision)
    return out.maps, model.normalize_scores(out.scores) if normalize else out.scores


def evaluate_scores(labels: np.ndarray, scores: np.ndarray, normal_val_scores: np.ndarray | None = None) -> dict:
    """Image metrics at the best-F1 threshold and, given normal validation scores, at their 95th percentile."""
    out = {"best_f1": image_metrics(labels, scores)}
    if normal_val_scores is not None and len(normal_val_scores):
        out["normal_q95"] = image_metrics(labels, scores, threshold=normal_quantile_threshold(normal_val_scores, 0.95))
    return out


def per_class_auc(labels: np.ndarray, classes: list[str], scores: np.ndarray) -> dict[str, float]:
    """AUC of the normal images against each anomalous sub-class alone."""
    from sklearn.metrics import roc_auc_score

    cls = np.asarray(classes)
    normal = labels == 0
    return {c: float(roc_auc_score(labels[normal | (cls == c)], scores[normal | (cls == c)]))
            for c in sorted(set(cls[labels == 1]))}


@dataclass(frozen=True)
class Threshold:
    """A decision threshold fixed without test labels (DESIGN 3.8): the ``quantile`` of the scores of
    ``n_normals`` held-out normal images; an image scoring at or above it is anomalous."""

    value: float
    quantile: float
    n_normals: int

    @classmethod
    def from_normals(cls, normal_scores: np.ndarray, quantile: float = 0.95) -> "Threshold":
        return cls(normal_quantile_threshold(normal_scores, quantile), quantile, len(normal_scores))

    def decide(self, scores: np.ndarray) -> list[str]:
        """``anomalous`` or ``normal`` per score."""
        return ["anomalous" if s >= self.value else "normal" for s in np.asarray(scores)]

    def as_dict(self) -> dict[str, Any]:
        return {"value": self.value, "rule": f"the {self.quantile:.0%} quantile of the scores of {self.n_normals} "
                                             "held-out normal images (no test label)"}


@dataclass
class Evaluation:
    """What ``evaluate`` found: the test set's predictions, its normalised scores, the held-out
    normals' scores on the same scale (or None), the threshold they fix (or None), the metrics, and the
    held-out normals' raw scores (or None)."""

    predictions: Predictions
    scores: np.ndarray
    held_out_scores: np.ndarray | None
    metrics: dict[str, Any]
    raw_held_out_scores: np.ndarray | None = None  # before normalisation: what a single image's score is compared with

    @property
    def threshold(self) -> Threshold | None:
        held = self.held_out_scores
        return None if held is None or not len(held) else Threshold.from_normals(held)


def evaluate(model: AnomalyModel, test: ImageSet, *, held_out: ImageSet | np.ndarray | None = None,
             precision: str = "fp32", device: str = "cpu", batch_size: int = 32,
             progress: bool = False) -> Evaluation:
    """Score ``test`` (labelled) with ``model`` and compute its metrics.

    ``held_out``: normal images never trained on (their raw scores fix the ``normal_q95``
    threshold without test labels), or their raw scores computed earlier, or None. Metrics:
    ``best_f1`` and ``normal_q95`` (AUC, AP, F1, ACC, SEN, SPE, threshold), ``per_class_auc``,
    ``pixel`` (pixel AUROC, AUPRO, best Dice) where ``test`` has masks, and
    ``test_images_per_second``. Raises MetricError for a test set without both classes.
    """
    t0 = time.perf_counter()
    pred = predict_all(model, test.images, batch_size=batch_size, device=device, progress=progress,
                       precision=precision)
    seconds = time.perf_counter() - t0
    raw_held = (predict_all(model, held_out.images, batch_size=batch_size, device=device, precision=precision).scores
                if isinstance(held_out, ImageSet) else held_out)
    scores = model.normalize_scores(pred.scores)
    held = None if raw_held is None else model.normalize_scores(np.asarray(raw_held), pred.scores)
    metrics: dict[str, Any] = {
        **evaluate_scores(test.labels, scores, held),
        "per_class_auc": per_class_auc(test.labels, test.classes, scores),
        "test_images_per_second": len(test) / seconds,
        "n_test": len(test),
    }
    if test.masks is not None:
        metrics["pixel"] = pixel_metrics(np.asarray(test.masks), pred.maps)
    return Evaluation(pred, scores, held, metrics, None if raw_held is None else np.asarray(raw_held))


def save_evaluation(folder: str | Path, test: ImageSet, ev: Evaluation, **extra: Any) -> dict[str, Any]:
    """Write ``folder/scores.csv`` (one row per test image, ``evaluation.scores``) and then
    ``folder/metrics.json`` (``ev.metrics`` with ``extra`` over them), atomically; the metrics."""
    columns: dict[str, Any] = ({} if ev.predictions.feature_distance is None
                               else {"feature_distance": ev.predictions.feature_distance})
    threshold = ev.threshold
    if threshold is not None:
        columns["decision"] = threshold.decide(ev.scores)
    write_scores(folder, test.paths, test.classes, test.labels, ev.scores, columns)
    metrics = {**ev.metrics, **extra}
    write_json(Path(folder) / "metrics.json", metrics)
    return metrics
