"""Feature-comparison loss, paper Sec. III-D1, Eq. (4)-(5).

For every stage k = 1..3 and pixel (h, w), with feature vectors taken over channels
(the paper's per-pixel form, not RD4AD's cosine of the flattened map; DESIGN 3.3):

    L^k(h, w) = -alpha * cos(F_E^k(h, w), F_D^k(h, w)) + (1 - alpha) * MSE(F_E^k(h, w), F_D^k(h, w))
    L_FC = sum_k  1 / (H_k W_k) * sum_{h, w} L^k(h, w)

MSE is the mean over channels of the squared difference at a pixel (DESIGN 3.4). The batch
is averaged (the paper is silent). alpha = 0.7 (Sec. IV-B1). The loss is linear in its two
parts, so ``feature_comparison_terms`` also returns them apart (the cosine part, at most
alpha per stage in size, and the MSE part, whose size is the features' own: DESIGN 3.9).

Table IV's "without feature comparison" models train on the pixel-wise comparison instead
(Sec. IV-E2): ``pixel_loss`` is the MSE between the reconstructed and the input image, both
ImageNet-normalised, averaged over pixels, channels and batch (the paper gives no formula).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor


def stage_terms(fe: Tensor, fd: Tensor) -> tuple[Tensor, Tensor]:
    """(mean cos, mean MSE) over pixels and batch for one (B, C, H, W) pair; cos and MSE over channels."""
    assert fe.shape == fd.shape, f"encoder {tuple(fe.shape)} and decoder {tuple(fd.shape)} features differ"
    cos = F.cosine_similarity(fe, fd, dim=1)  # (B, H, W)
    mse = (fe - fd).pow(2).mean(dim=1)  # (B, H, W)
    return cos.mean(), mse.mean()


def feature_comparison_terms(enc: Sequence[Tensor], dec: Sequence[Tensor], alpha: float = 0.7) -> dict[str, Tensor]:
    """L_FC of Eq. (5) and its two weighted parts: ``{"loss": cos + mse, "cos": -alpha * sum_k mean cos_k,
    "mse": (1 - alpha) * sum_k mean MSE_k}`` (every value a scalar; the history logs both parts)."""
    assert len(enc) == len(dec), f"{len(enc)} encoder stages vs {len(dec)} decoder stages"
    assert 0.0 <= alpha <= 1.0, f"alpha must lie in [0, 1], got {alpha}"
    parts = [stage_terms(fe, fd) for fe, fd in zip(enc, dec)]
    cos = -alpha * sum(c for c, _ in parts)
    mse = (1.0 - alpha) * sum(m for _, m in parts)
    return {"loss": cos + mse, "cos": cos, "mse": mse}


def pixel_loss(recon: Tensor, x: Tensor) -> Tensor:
    """Pixel-wise MSE between a reconstruction and its (B, 3, H, W) input (Table IV, without FC)."""
    assert recon.shape == x.shape, f"reconstruction {tuple(recon.shape)} and input {tuple(x.shape)} differ"
    return F.mse_loss(recon, x)
