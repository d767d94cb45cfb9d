"""Tests of hetero_ae.evaluation.metrics (paper Sec. IV-B2 image metrics, pixel metrics)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, f1_score, roc_auc_score

from hetero_ae.evaluation.metrics import (
    MetricError,
    best_f1_threshold,
    check_labels,
    confusion_metrics,
    image_metrics,
    normal_quantile_threshold,
    pixel_metrics,
)


@pytest.fixture
def random_image_data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, size=80)
    scores = np.round(rng.normal(size=80) + labels, 1)  # rounding makes ties
    return labels, scores


def brute_force_max_f1(labels: np.ndarray, scores: np.ndarray) -> float:
    best = 0.0
    for t in np.unique(scores):
        pred = scores >= t
        tp = np.sum(pred & (labels == 1))
        fp = np.sum(pred & (labels == 0))
        fn = np.sum(~pred & (labels == 1))
        best = max(best, 2 * tp / (2 * tp + fp + fn))
    return best


def test_confusion_metrics_hand_example() -> None:
    labels = [1, 1, 1, 0, 0, 0, 0, 1]
    preds = [1, 1, 0, 0, 0, 1, 0, 1]
    # Confusion matrix:        pred 1   pred 0
    #   label 1 (anomalous)    TP = 3   FN = 1
    #   label 0 (normal)       FP = 1   TN = 3
    # F1 = 6 / (6 + 1 + 1) = 0.75, ACC = 6 / 8 = 0.75, SEN = 3 / 4, SPE = 3 / 4
    out = confusion_metrics(labels, preds)
    assert (out["tp"], out["tn"], out["fp"], out["fn"]) == (3, 3, 1, 1)
    assert out["f1"] == pytest.approx(0.75)
    assert out["acc"] == pytest.approx(0.75)
    assert out["sen"] == pytest.approx(0.75)
    assert out["spe"] == pytest.approx(0.75)


def test_confusion_metrics_asymmetric_example() -> None:
    labels = [1, 1, 0, 0, 0]
    preds = [1, 0, 1, 1, 0]
    # TP = 1, FN = 1, FP = 2, TN = 1
    # F1 = 2 / (2 + 1 + 2) = 0.4, ACC = 2 / 5 = 0.4, SEN = 1 / 2, SPE = 1 / 3
    out = confusion_metrics(labels, preds)
    assert out["f1"] == pytest.approx(0.4)
    assert out["acc"] == pytest.approx(0.4)
    assert out["sen"] == pytest.approx(0.5)
    assert out["spe"] == pytest.approx(1 / 3)


def test_confusion_metrics_zero_denominator_gives_zero() -> None:
    out = confusion_metrics([0, 0, 0], [0, 0, 0])
    assert out["sen"] == 0.0
    assert out["f1"] == 0.0
    assert out["spe"] == 1.0


def test_image_auc_ap_match_sklearn(random_image_data: tuple[np.ndarray, np.ndarray]) -> None:
    labels, scores = random_image_data
    out = image_metrics(labels, scores)
    assert out["auc"] == pytest.approx(roc_auc_score(labels, scores))
    assert out["ap"] == pytest.approx(average_precision_score(labels, scores))


def test_best_f1_threshold_reaches_brute_force_max(random_image_data: tuple[np.ndarray, np.ndarray]) -> None:
    labels, scores = random_image_data
    t = best_f1_threshold(labels, scores)
    expected = brute_force_max_f1(labels, scores)
    assert f1_score(labels, scores >= t) == pytest.approx(expected)
    assert image_metrics(labels, scores)["f1"] == pytest.approx(expected)


def test_image_metrics_uses_given_threshold() -> None:
    labels = [0, 0, 1, 1]
    scores = [0.1, 0.6, 0.5, 0.9]
    out = image_metrics(labels, scores, threshold=0.55)
    # predictions 0, 1, 0, 1: TP = 1, FN = 1, FP = 1, TN = 1
    assert out["threshold"] == 0.55
    assert out["sen"] == pytest.approx(0.5)
    assert out["spe"] == pytest.approx(0.5)
    assert out["auc"] == pytest.approx(0.75)


def test_normal_quantile_threshold_hand_example() -> None:
    # sorted 0, 1, ..., 10; the 0.95 quantile sits at position 0.95 * 10 = 9.5
    scores = [10, 3, 7, 0, 5, 1, 9, 2, 8, 4, 6]
    assert normal_quantile_threshold(scores, q=0.95) == pytest.approx(9.5)
    assert normal_quantile_threshold(scores, q=0.5) == pytest.approx(5.0)


def test_normal_quantile_threshold_rejects_bad_q_and_empty() -> None:
    with pytest.raises(MetricError):
        normal_quantile_threshold([1.0, 2.0], q=1.0)
    with pytest.raises(MetricError):
        normal_quantile_threshold([])


def test_single_class_labels_raise() -> None:
    with pytest.raises(MetricError, match="AUC is undefined"):
        image_metrics([0, 0, 0], [0.1, 0.2, 0.3])


def test_non_binary_labels_raise() -> None:
    with pytest.raises(MetricError):
        check_labels([0, 1, 2])


def test_nan_score_raises() -> None:
    with pytest.raises(MetricError, match="1 non-finite"):
        image_metrics([0, 1, 1], [0.1, np.nan, 0.3])


@pytest.fixture
def pixel_data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    masks = np.zeros((3, 16, 16), dtype=np.uint8)
    masks[0, 2:6, 3:9] = 1
    masks[1, 10:14, 10:12] = 1
    masks[2, 0:3, 0:3] = 1
    maps = rng.random(masks.shape) + masks
    return masks, maps


def test_pixel_auroc_matches_sklearn(pixel_data: tuple[np.ndarray, np.ndarray]) -> None:
    masks, maps = pixel_data
    expected = roc_auc_score(masks.ravel(), maps.ravel())
    assert pixel_metrics(masks, maps)["pixel_auroc"] == pytest.approx(expected)


def test_perfect_map_gives_aupro_and_dice_one(pixel_data: tuple[np.ndarray, np.ndarray]) -> None:
    masks, _ = pixel_data
    out = pixel_metrics(masks, masks.astype(float))
    assert out["aupro"] == pytest.approx(1.0)
    assert out["best_dice"] == pytest.approx(1.0)


def test_aupro_hand_case_two_regions() -> None:
    # One 10x10 image: region A (2x2 = 4 px) scores 1.0; region B (1x3 = 3 px) scores 0.5,
    # as do 31 of the 93 normal pixels; the other normal pixels score 0.
    # PRO/FPR curve: (0, 0) -> (0, 0.5) [A alone, no false positive] -> (1/3, 1) -> (1, 1).
    # At FPR 0.3: PRO = 0.5 + 0.5 * 0.3 / (1/3) = 0.95; area = 0.3 * (0.5 + 0.95) / 2 = 0.2175;
    # normalised by 0.3: 0.725. (Pooled pixels would weigh A 4/7; PRO weighs regions equally.)
    mask = np.zeros((10, 10), dtype=np.uint8)
    mask[0:2, 0:2] = 1
    mask[5, 4:7] = 1
    amap = np.where(mask == 1, 0.5, 0.0)
    amap[0:2, 0:2] = 1.0
    normal_idx = np.flatnonzero(mask.ravel() == 0)[:31]
    amap.ravel()[normal_idx] = 0.5
    out = pixel_metrics(mask[None], amap[None])
    assert out["aupro"] == pytest.approx(0.725)


def test_aupro_low_for_constant_and_random_maps(pixel_data: tuple[np.ndarray, np.ndarray]) -> None:
    masks, _ = pixel_data
    constant = np.full(masks.shape, 0.3)
    noise = np.random.default_rng(2).random(masks.shape)
    assert pixel_metrics(masks, constant)["aupro"] == pytest.approx(0.15)
    assert pixel_metrics(masks, noise)["aupro"] < 0.3


def test_best_dice_hand_example() -> None:
    mask = np.array([[[1, 1, 0], [0, 0, 0]]])
    amap = np.array([[[0.9, 0.4, 0.6], [0.1, 0.2, 0.3]]])
    # Thresholds and Dice 2|P & G| / (|P| + |G|), |G| = 2:
    #   t in (0.6, 0.9]: P = {0.9}            -> 2 * 1 / (1 + 2) = 0.667
    #   t in (0.4, 0.6]: P = {0.9, 0.6}       -> 2 * 1 / (2 + 2) = 0.5
    #   t in (0.3, 0.4]: P = {0.9, 0.6, 0.4}  -> 2 * 2 / (3 + 2) = 0.8  (best)
    #   t in (0.2, 0.3]: P adds 0.3           -> 2 * 2 / (4 + 2) = 0.667
    assert pixel_metrics(mask, amap)["best_dice"] == pytest.approx(0.8)


def test_pixel_metrics_reject_masks_without_positives() -> None:
    masks = np.zeros((2, 8, 8))
    with pytest.raises(MetricError, match="no anomalous pixel"):
        pixel_metrics(masks, np.random.default_rng(3).random(masks.shape))


def test_pixel_metrics_reject_shape_mismatch() -> None:
    with pytest.raises(MetricError, match="shape"):
        pixel_metrics(np.ones((1, 4, 4)), np.ones((1, 4, 5)))
