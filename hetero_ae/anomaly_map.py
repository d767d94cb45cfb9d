"""Anomaly map and image score, paper Sec. III-D2, Eq. (6)-(8).

    M_k(h, w) = 1 - cos(F_D^k(h, w), F_E^k(h, w))      (Eq. 6, cosine over channels)
    M = sum_k Resize(M_k)                               (Eq. 7, bilinear to the input size)
    score = max_{h, w} M(h, w)                          (Eq. 8)

Table IV's pixel-comparison models replace Eq. (6)-(7) by the per-pixel squared error of the
reconstruction, averaged over channels (``pixel_error_map``); Eq. (8) stays the score, so only
the comparison changes.

The paper applies no smoothing; ``sigma > 0`` adds RD4AD's Gaussian filter (sigma = 4 there)
as an option (DESIGN 3.5), truncated at 4 sigma like scipy.ndimage.gaussian_filter.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor
from torchvision.transforms.functional import gaussian_blur


def stage_maps(enc: Sequence[Tensor], dec: Sequence[Tensor]) -> list[Tensor]:
    """M_k = 1 - cos over channels, one (B, H_k, W_k) map per stage (Eq. 6)."""
    return [1.0 - F.cosine_similarity(fe, fd, dim=1) for fe, fd in zip(enc, dec)]


def smooth(maps: Tensor, sigma: float) -> Tensor:
    """Gaussian smoothing of (B, H, W) maps; sigma = 0 returns them unchanged."""
    if sigma <= 0:
        return maps
    radius = int(4.0 * sigma + 0.5)
    return gaussian_blur(maps.unsqueeze(1), kernel_size=2 * radius + 1, sigma=sigma).squeeze(1)


def anomaly_map(enc: Sequence[Tensor], dec: Sequence[Tensor], size: tuple[int, int], sigma: float = 0.0) -> Tensor:
    """M of Eq. (7): per-stage maps resized to ``size`` and summed, shape (B, H, W)."""
    total = 0
    for m in stage_maps(enc, dec):
        total = total + F.interpolate(m.unsqueeze(1), size=size, mode="bilinear", align_corners=False).squeeze(1)
    return smooth(total, sigma)


def pixel_error_map(recon: Tensor, x: Tensor) -> Tensor:
    """(B, H, W) squared error of a (B, 3, H, W) reconstruction, averaged over channels (Table IV, without FC)."""
    assert recon.shape == x.shape, f"reconstruction {tuple(recon.shape)} and input {tuple(x.shape)} differ"
    return (recon - x).pow(2).mean(dim=1)


def image_score(maps: Tensor) -> Tensor:
    """Eq. (8): the maximum of each (H, W) map, shape (B,)."""
    return maps.flatten(1).amax(dim=1)
