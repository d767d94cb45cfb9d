"""Anomaly map and image score, paper Sec. III-D2, Eq. (6)-(8).

    M_k(h, w) = 1 - cos(F_D^k(h, w), F_E^k(h, w))      (Eq. 6, cosine over channels)
    M = sum_k Resize(M_k)                               (Eq. 7, bilinear to the input size)
    score = max_{h, w} M(h, w)                          (Eq. 8)

Table IV's pixel-comparison models replace Eq. (6)-(7) by the per-pixel squared error of the
reconstruction, averaged over channels (``pixel_error_map``); Eq. (8) stays the score, so only
the comparison changes.

Beyond the paper (``distance="cosine+mse"``, ``ModelConfig.map_distance``): Eq. 6's cosine sees
only the direction of a feature vector, so a lesion that changes how strongly features respond
without changing their direction (a homogeneous bright mass) leaves it blind. The option scores
each stage with Eq. 4's own per-pixel loss instead, alpha (1 - cos) + (1 - alpha) MSE over
channels, which the decoder was trained to keep small on normal images; it is meaningful on
features of a common scale (``feature_scale="rms"``). The paper's map is the default.

The paper applies no smoothing; ``sigma > 0`` adds RD4AD's Gaussian filter (sigma = 4 there)
as an option (DESIGN 3.5), truncated at 4 sigma like scipy.ndimage.gaussian_filter.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor
from torchvision.transforms.functional import gaussian_blur

from ..config import MAP_DISTANCES, MapDistance

DISTANCES = MAP_DISTANCES  # "cosine" (Eq. 6), "cosine+mse"


def stage_maps(enc: Sequence[Tensor], dec: Sequence[Tensor], distance: str = "cosine",
               alpha: float = 0.7) -> list[Tensor]:
    """One (B, H_k, W_k) map per stage: M_k = 1 - cos over channels (Eq. 6), or for ``"cosine+mse"``
    alpha (1 - cos) + (1 - alpha) * mean over channels of (F_E^k - F_D^k)^2 (Eq. 4 per pixel, shifted by alpha)."""
    MapDistance.check(distance)
    maps = []
    for fe, fd in zip(enc, dec):
        m = 1.0 - F.cosine_similarity(fe, fd, dim=1)
        if distance == "cosine+mse":
            m = alpha * m + (1.0 - alpha) * (fe - fd).pow(2).mean(dim=1)
        maps.append(m)
    return maps


def smooth(maps: Tensor, sigma: float) -> Tensor:
    """Gaussian smoothing of (B, H, W) maps; sigma = 0 returns them unchanged."""
    if sigma <= 0:
        return maps
    radius = int(4.0 * sigma + 0.5)
    return gaussian_blur(maps.unsqueeze(1), kernel_size=2 * radius + 1, sigma=sigma).squeeze(1)


def anomaly_map(enc: Sequence[Tensor], dec: Sequence[Tensor], size: tuple[int, int], sigma: float = 0.0,
                distance: str = "cosine", alpha: float = 0.7) -> Tensor:
    """M of Eq. (7): per-stage maps (``stage_maps``) resized to ``size`` and summed, shape (B, H, W)."""
    total = 0
    for m in stage_maps(enc, dec, distance, alpha):
        total = total + F.interpolate(m.unsqueeze(1), size=size, mode="bilinear", align_corners=False).squeeze(1)
    return smooth(total, sigma)


def pixel_error_map(recon: Tensor, x: Tensor) -> Tensor:
    """(B, H, W) squared error of a (B, 3, H, W) reconstruction, averaged over channels (Table IV, without FC)."""
    assert recon.shape == x.shape, f"reconstruction {tuple(recon.shape)} and input {tuple(x.shape)} differ"
    return (recon - x).pow(2).mean(dim=1)


def image_score(maps: Tensor) -> Tensor:
    """Eq. (8): the maximum of each (H, W) map, shape (B,)."""
    return maps.flatten(1).amax(dim=1)
