"""A trivial detector, to show a benchmark is not solved by global intensity statistics.

It scores each test image by the Mahalanobis distance of its (mean, standard deviation) of
intensity to those of the normal training images. A synthetic benchmark on which this gets
a high AUC would reward methods for noticing brightness, not lesions (DESIGN 5).
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_auc_score


def intensity_stats(images: np.ndarray) -> np.ndarray:
    """(N, 2): mean and standard deviation of each image's grey level."""
    flat = np.asarray(images, dtype=np.float64).reshape(len(images), -1)
    return np.stack([flat.mean(1), flat.std(1)], axis=1)


def global_stat_scores(train_images: np.ndarray, test_images: np.ndarray) -> np.ndarray:
    ref = intensity_stats(train_images)
    cov_inv = np.linalg.pinv(np.cov(ref, rowvar=False))
    d = intensity_stats(test_images) - ref.mean(0)
    return np.sqrt(np.einsum("ni,ij,nj->n", d, cov_inv, d))


def global_stat_auc(train_images: np.ndarray, test_images: np.ndarray, labels: np.ndarray) -> float:
    """Image AUC of the (mean, std) Mahalanobis detector."""
    return float(roc_auc_score(labels, global_stat_scores(train_images, test_images)))
