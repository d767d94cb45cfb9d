"""Structural similarity (SSIM) for the reconstruction baselines (Wang et al., IEEE TIP 2004).

A differentiable per-pixel, per-channel SSIM map with a Gaussian window (11 x 11, sigma 1.5,
as Wang et al. and the SSIM auto-encoder of Bergmann et al. [42]), reflect padding so the
map keeps the image size, on images in [0, 1] (``to_unit_range`` undoes the ImageNet
normalisation of the inputs).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ..data.images import IMAGENET_MEAN, IMAGENET_STD


def gaussian_kernel(size: int, sigma: float) -> Tensor:
    """Normalised 1-D Gaussian of ``size`` taps."""
    g = torch.exp(-((torch.arange(size, dtype=torch.float64) - (size - 1) / 2) ** 2) / (2 * sigma**2))
    return g / g.sum()


def ssim(x: Tensor, y: Tensor, *, window: int = 11, sigma: float = 1.5, data_range: float = 1.0,
         k1: float = 0.01, k2: float = 0.03) -> Tensor:
    """Differentiable per-channel SSIM map (B, C, H, W) with a Gaussian window (Wang et al. 2004)."""
    c, pad = x.shape[1], window // 2
    g = gaussian_kernel(window, sigma).to(x)
    kh, kv = g.view(1, 1, 1, -1).repeat(c, 1, 1, 1), g.view(1, 1, -1, 1).repeat(c, 1, 1, 1)

    def blur(t: Tensor) -> Tensor:
        return F.conv2d(F.conv2d(F.pad(t, (pad,) * 4, mode="reflect"), kh, groups=c), kv, groups=c)

    mx, my = blur(x), blur(y)
    vx, vy, cov = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    return ((2 * mx * my + c1) * (2 * cov + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))


def to_unit_range(x: Tensor) -> Tensor:
    """Undo ImageNet normalisation: pixel values in [0, 1]."""
    mean = torch.tensor(IMAGENET_MEAN, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    return x * std + mean
