"""Multi-scale Sparse Transformer Block (MSTB), paper Sec. III-C, Eq. (1)-(3), Fig. 3.

Queries come from the *local information*: the flattened full-resolution tokens of the
stage plus a learnable position embedding E_pos^local. Keys and values come from the
*regional information*: non-overlapping p x p patches projected back to C channels by the
matrix E (a p x p convolution with stride p) plus their own embedding E_pos^p, at two
scales p1 = p2 / 2 and p2. h/2 heads attend to the p1 tokens and h/2 to the p2 tokens
(d_head = C / h); the two multi-head outputs are concatenated into Z, which goes through
LayerNorm and an MLP.

Choices where the paper is silent (docs/reproduction-notes.md; DESIGN 3.6):
- pre-norm residual layout as in ViT/PVT: t = t + Proj(Z(LN(t), LN(region))), then
  t = t + MLP(LN(t)); an output projection W^O follows the concatenation;
- MLP ratio 4 with GELU;
- position embeddings are stored for a reference grid (the stage's grid at a 256 px input)
  and bicubically interpolated to the actual grid, so one model serves 64..256 px.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class PositionEmbedding(nn.Module):
    """A learnable (1, C, H, W) embedding, interpolated to the grid it is added to."""

    def __init__(self, dim: int, grid: int) -> None:
        super().__init__()
        self.pos = nn.Parameter(nn.init.trunc_normal_(torch.empty(1, dim, grid, grid), std=0.02))

    def forward(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        pos = self.pos
        if pos.shape[-2:] != (h, w):
            pos = F.interpolate(pos, size=(h, w), mode="bicubic", align_corners=False)
        return x + pos


class RegionEmbedding(nn.Module):
    """F_region^p = E(patches_p(F)) + E_pos^p: p x p patches projected to C channels."""

    def __init__(self, dim: int, patch: int, grid: int) -> None:
        super().__init__()
        self.patch = patch
        self.proj = nn.Conv2d(dim, dim, kernel_size=patch, stride=patch)
        self.pos = PositionEmbedding(dim, max(grid // patch, 1))

    def forward(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        assert h % self.patch == 0 and w % self.patch == 0, (
            f"feature map {h}x{w} is not divisible by the patch size {self.patch}"
        )
        return self.pos(self.proj(x)).flatten(2).transpose(1, 2)  # (B, N_p, C)


class RegionAttention(nn.Module):
    """MHA(F_local, F_region^p): ``heads`` heads of size d_head, Eq. (1)-(3)."""

    def __init__(self, dim: int, heads: int, head_dim: int) -> None:
        super().__init__()
        self.heads, self.head_dim = heads, head_dim
        self.q = nn.Linear(dim, heads * head_dim)
        self.kv = nn.Linear(dim, 2 * heads * head_dim)

    def forward(self, local: Tensor, region: Tensor) -> Tensor:
        b, n, _ = local.shape
        q = self.q(local).view(b, n, self.heads, self.head_dim).transpose(1, 2)
        k, v = self.kv(region).view(b, -1, 2, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v)  # softmax(QK^T / sqrt(d_head)) V
        return out.transpose(1, 2).reshape(b, n, self.heads * self.head_dim)


class MSTB(nn.Module):
    """Multi-scale Sparse Transformer Block on a (B, C, H, W) map; returns the same shape.

    Args:
        dim: channels C of the stage.
        heads: total heads h (h/2 per patch scale), d_head = C / h.
        p2: the larger patch size; p1 = p2 / 2 (the paper's p2/p1 = 2).
        grid: the stage's feature grid at the reference input (256 px) for the embeddings.
        mlp_ratio: hidden width of the MLP relative to C.
    """

    def __init__(self, dim: int, *, heads: int, p2: int, grid: int, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        assert heads % 2 == 0 and dim % heads == 0, f"heads={heads} must be even and divide dim={dim}"
        assert p2 % 2 == 0, f"p2={p2} must be even so that p1 = p2/2 is an integer"
        head_dim = dim // heads
        self.patches = (p2 // 2, p2)
        self.pos = PositionEmbedding(dim, grid)
        self.norm_q = nn.LayerNorm(dim)
        self.region = nn.ModuleList(RegionEmbedding(dim, p, grid) for p in self.patches)
        self.norm_kv = nn.ModuleList(nn.LayerNorm(dim) for _ in self.patches)
        self.attn = nn.ModuleList(RegionAttention(dim, heads // 2, head_dim) for _ in self.patches)
        self.proj = nn.Linear(dim, dim)
        self.norm_mlp = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def attend(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(F_local, W^O Z): the local tokens and the projected multi-scale attention, (B, HW, C)."""
        local = self.pos(x).flatten(2).transpose(1, 2)  # F_local: (B, HW, C)
        q = self.norm_q(local)
        z = [attn(q, norm(region(x))) for region, norm, attn in zip(self.region, self.norm_kv, self.attn)]
        return local, self.proj(torch.cat(z, dim=-1))  # Z = concat(MHA_p1, MHA_p2), Eq. (3)

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        local, z = self.attend(x)
        t = local + z
        t = t + self.mlp(self.norm_mlp(t))
        return t.transpose(1, 2).reshape(b, c, h, w)


class FullSelfAttention(nn.Module):
    """Standard multi-head self-attention over all HW tokens: the cost MSTB is measured against."""

    def __init__(self, dim: int, *, heads: int) -> None:
        super().__init__()
        assert dim % heads == 0, f"heads={heads} must divide dim={dim}"
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        t = x.flatten(2).transpose(1, 2)
        q, k, v = self.qkv(t).view(b, h * w, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, h * w, c)
        return self.proj(out)
