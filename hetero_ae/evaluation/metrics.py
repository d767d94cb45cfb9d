"""Evaluation metrics, paper Sec. III-D2 and IV-B2.

Image level (Sec. IV-B2), with label 1 = anomalous (positive) and 0 = normal:

    F1  = 2TP / (2TP + FN + FP)
    ACC = (TP + TN) / (TP + TN + FP + FN)
    SEN = TP / (TP + FN)
    SPE = TN / (TN + FP)

plus the threshold-free AUC (ROC) and AP. An image is predicted anomalous when
``score >= threshold``. The paper states that "the thresholds used to calculate the
evaluation metrics are chosen based on the best F1-score" (Sec. III-D2, IV-B2), that is on
the test set itself: ``best_f1_threshold``. The design's alternative, usable in a clinic, is
a threshold fixed on held-out normal images only, e.g. the 95th percentile of the scores of
normal validation images: ``normal_quantile_threshold``.

Pixel level (for data sets with masks): pixel AUROC, AUPRO (MVTec AD's per-region overlap
integrated up to a false positive rate of 0.3 and normalised to [0, 1]) and the best Dice.

All values are fractions in [0, 1]; the notebooks multiply by 100.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from skimage.measure import label as label_regions
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score

from ..errors import UserError


class MetricError(UserError, ValueError):
    """Invalid input to a metric."""


def _binary(values: ArrayLike, name: str) -> np.ndarray:
    """1-D, non-empty int array holding only 0 and 1."""
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise MetricError(f"{name} must be 1-D, got shape {arr.shape}")
    if arr.size == 0:
        raise MetricError(f"{name} are empty")
    bad = ~np.isin(arr, (0, 1))
    if bad.any():
        found = np.unique(arr[bad])[:5].tolist()
        raise MetricError(f"{name} must be 0 (normal) or 1 (anomalous); found {found}")
    return arr.astype(np.int64)


def check_labels(labels: ArrayLike) -> np.ndarray:
    """Validated image labels: 1-D int 0/1 array holding both classes."""
    arr = _binary(labels, "labels")
    present = np.unique(arr)
    if present.size < 2:
        raise MetricError(
            f"test labels hold only class {int(present[0])}: AUC is undefined; "
            "the test set needs both normal (0) and anomalous (1) images"
        )
    return arr


def check_scores(scores: ArrayLike, n: int | None = None) -> np.ndarray:
    """Validated scores: 1-D finite float array, of length ``n`` when given."""
    arr = np.asarray(scores, dtype=np.float64)
    if arr.ndim != 1:
        raise MetricError(f"scores must be 1-D, got shape {arr.shape}")
    if arr.size == 0:
        raise MetricError("scores are empty")
    if n is not None and arr.size != n:
        raise MetricError(f"got {arr.size} scores for {n} labels")
    bad = int((~np.isfinite(arr)).sum())
    if bad:
        raise MetricError(f"scores hold {bad} non-finite value(s) (NaN or inf) out of {arr.size}")
    return arr


def _ratio(num: float, den: float) -> float:
    """num / den, or 0.0 when den is 0."""
    return float(num) / float(den) if den else 0.0


def confusion_metrics(labels: ArrayLike, preds: ArrayLike) -> dict[str, float]:
    """F1, ACC, SEN, SPE (Sec. IV-B2) and the confusion counts tp, tn, fp, fn (as ints)."""
    y = _binary(labels, "labels")
    p = _binary(preds, "preds")
    if y.size != p.size:
        raise MetricError(f"got {p.size} predictions for {y.size} labels")
    tp = int(np.sum((y == 1) & (p == 1)))
    tn = int(np.sum((y == 0) & (p == 0)))
    fp = int(np.sum((y == 0) & (p == 1)))
    fn = int(np.sum((y == 1) & (p == 0)))
    return {
        "f1": _ratio(2 * tp, 2 * tp + fn + fp),
        "acc": _ratio(tp + tn, y.size),
        "sen": _ratio(tp, tp + fn),
        "spe": _ratio(tn, tn + fp),
        "tp": tp,
        "tn": tn,
        "fp": fp,
        "fn": fn,
    }


def best_f1_threshold(labels: ArrayLike, scores: ArrayLike) -> float:
    """Threshold maximising F1 under ``score >= threshold`` (the paper's test-set choice).

    Candidates are the distinct scores (sklearn's precision-recall curve). On ties the
    lowest threshold with the highest F1 is returned.
    """
    y = check_labels(labels)
    s = check_scores(scores, y.size)
    precision, recall, thresholds = precision_recall_curve(y, s)
    precision, recall = precision[:-1], recall[:-1]
    den = precision + recall
    f1 = np.divide(2 * precision * recall, den, out=np.zeros_like(den), where=den > 0)
    return float(thresholds[int(np.argmax(f1))])


def normal_quantile_threshold(normal_scores: ArrayLike, q: float = 0.95) -> float:
    """The q-quantile (linear) of the scores of held-out normal images."""
    if not 0.0 < q < 1.0:
        raise MetricError(f"q must lie in (0, 1), got {q}")
    s = check_scores(normal_scores)
    return float(np.quantile(s, q))


def image_metrics(labels: ArrayLike, scores: ArrayLike, threshold: float | None = None) -> dict[str, float]:
    """AUC, AP and F1/ACC/SEN/SPE at ``threshold`` (best-F1 on these scores when None)."""
    y = check_labels(labels)
    s = check_scores(scores, y.size)
    if threshold is None:
        threshold = best_f1_threshold(y, s)
    elif not np.isfinite(threshold):
        raise MetricError(f"threshold must be finite, got {threshold}")
    at = confusion_metrics(y, (s >= threshold).astype(np.int64))
    return {
        "auc": float(roc_auc_score(y, s)),
        "ap": float(average_precision_score(y, s)),
        "threshold": float(threshold),
        **{k: at[k] for k in ("f1", "acc", "sen", "spe")},
    }


def _check_pixels(masks: ArrayLike, maps: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Validated (N, H, W) boolean masks with both classes and finite float maps."""
    m = np.asarray(masks)
    a = np.asarray(maps)
    if a.dtype.kind != "f":
        a = a.astype(np.float64)
    if m.ndim != 3 or m.shape != a.shape:
        raise MetricError(f"masks and maps must share an (N, H, W) shape, got {m.shape} and {a.shape}")
    if not np.isin(m, (0, 1)).all():
        raise MetricError("masks must be binary (0 = normal pixel, 1 = anomalous pixel)")
    m = m.astype(bool)
    if not m.any():
        raise MetricError("masks hold no anomalous pixel: pixel metrics are undefined")
    if m.all():
        raise MetricError("masks hold no normal pixel: pixel metrics are undefined")
    bad = int((~np.isfinite(a)).sum())
    if bad:
        raise MetricError(f"maps hold {bad} non-finite value(s) (NaN or inf)")
    return m, a


def _region_ids(masks: np.ndarray) -> np.ndarray:
    """Region id (1..R) of each anomalous pixel, in ``masks[masks]`` order.

    Regions are 8-connected and labelled per image.
    """
    ids = []
    offset = 0
    for mask in masks:
        if not mask.any():
            continue
        lab = label_regions(mask, connectivity=2)
        ids.append(lab[mask] + offset)
        offset += int(lab.max())
    return np.concatenate(ids)


def _count_at_least(sorted_values: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Number of values >= each threshold, from the values sorted ascending."""
    return sorted_values.size - np.searchsorted(sorted_values, thresholds, side="left")


def _auroc(pos_sorted: np.ndarray, neg_sorted: np.ndarray) -> float:
    """P(positive > negative) + P(tie) / 2, i.e. sklearn's roc_auc_score, from sorted scores."""
    below = np.searchsorted(neg_sorted, pos_sorted, side="left").sum(dtype=np.int64)
    at_or_below = np.searchsorted(neg_sorted, pos_sorted, side="right").sum(dtype=np.int64)
    return float(below + at_or_below) / (2.0 * pos_sorted.size * neg_sorted.size)


def _pro(regions: np.ndarray, values: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Mean over regions of the fraction of the region's pixels >= each threshold."""
    sizes = np.bincount(regions)
    weights = 1.0 / (sizes[regions] * np.count_nonzero(sizes))
    bins = np.searchsorted(thresholds, values, side="right")
    hist = np.bincount(bins, weights=weights, minlength=thresholds.size + 1)
    return np.cumsum(hist[::-1])[::-1][1:]


def _normalised_partial_area(x: np.ndarray, y: np.ndarray, x_max: float) -> float:
    """Trapezoid area under y(x) on [0, x_max], interpolated at x_max, divided by x_max.

    ``x`` is non-decreasing from 0 to 1.
    """
    keep = x <= x_max
    xs, ys = x[keep], y[keep]
    area = float(np.sum(np.diff(xs) * (ys[1:] + ys[:-1]) / 2.0))
    last = int(np.flatnonzero(keep)[-1])
    if x[last] < x_max:
        nxt = last + 1
        y_max = y[last] + (y[nxt] - y[last]) * (x_max - x[last]) / (x[nxt] - x[last])
        area += 0.5 * (y[last] + y_max) * (x_max - x[last])
    return float(area / x_max)


def _aupro(pro: np.ndarray, fpr: np.ndarray, max_fpr: float) -> float:
    """MVTec AD AUPRO: the curve runs from (0, 0) through the thresholds (highest first) to (1, 1)."""
    x = np.clip(np.concatenate(([0.0], fpr[::-1], [1.0])), 0.0, 1.0)
    y = np.clip(np.concatenate(([0.0], pro[::-1], [1.0])), 0.0, 1.0)
    return _normalised_partial_area(x, y, max_fpr)


def pixel_metrics(
    masks: ArrayLike, maps: ArrayLike, max_fpr: float = 0.3, num_thresholds: int = 200
) -> dict[str, float]:
    """Pixel AUROC, AUPRO (up to ``max_fpr``, normalised) and best Dice of (N, H, W) maps.

    Pixel AUROC is exact (equal to sklearn's roc_auc_score on the flattened arrays). AUPRO
    and Dice use ``num_thresholds`` thresholds evenly spaced over the map range, in the maps'
    dtype; a pixel is predicted anomalous when its value >= the threshold. Dice is pooled
    over all pixels of the set.
    """
    if not 0.0 < max_fpr <= 1.0:
        raise MetricError(f"max_fpr must lie in (0, 1], got {max_fpr}")
    if num_thresholds < 2:
        raise MetricError(f"num_thresholds must be at least 2, got {num_thresholds}")
    m, a = _check_pixels(masks, maps)
    pos_values, neg_values = a[m], a[~m]
    pos_sorted, neg_sorted = np.sort(pos_values), np.sort(neg_values)
    thresholds = np.linspace(float(a.min()), float(a.max()), num_thresholds).astype(a.dtype)
    tp = _count_at_least(pos_sorted, thresholds)
    fp = _count_at_least(neg_sorted, thresholds)
    pro = _pro(_region_ids(m), pos_values, thresholds)
    return {
        "pixel_auroc": _auroc(pos_sorted, neg_sorted),
        "aupro": _aupro(pro, fp / neg_sorted.size, max_fpr),
        "best_dice": float(np.max(2.0 * tp / (tp + fp + pos_sorted.size))),
    }
