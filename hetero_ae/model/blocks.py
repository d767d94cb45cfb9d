"""Branch blocks for the Table II decoders of the heterogeneous framework (paper Sec. IV-E1).

Table II pairs a ResNet encoder with decoders built from Swin [24] (Liu et al., ICCV 2021),
PVT [49] (Wang et al., ICCV 2021) and CMT [50] (Guo et al., CVPR 2022) blocks, and shows a
homogeneous EfficientNet [48] (Tan & Le, ICML 2019) pair. The paper does not describe
these decoders. To make the comparison controlled, every one keeps the HCTN skeleton
(``decoder.HybridStage``: two 1x1 split convolutions, two branches, concat, 1x1 fuse, 2x
upsample; the same stage channels, heads and p2) and swaps only the blocks: a branch is
two blocks of one kind, and both branches of a stage have that kind.

Choices (the cited papers' defaults unless said otherwise):
- heads: the stage's (2, 4, 8); where they do not divide the width, the largest divisor of
  the width not above them (``fit_heads``). With ResNet-18 the head size is 32 everywhere;
- every Transformer block is pre-norm, MLP ratio 4 with GELU;
- Swin: window 8 (not 7) because the decoder grids are powers of two, so 8 tiles them
  without padding; the window shrinks to min(8, H, W); other grids are zero-padded to a
  multiple of it and padded tokens are masked out as keys. The second block of a branch is
  shifted by window/2 with the cyclic-shift mask, unless one window covers the grid
  (Swin's rule). Relative position bias table of (2*8-1)^2 entries per head;
- PVT (v1: plain MLP, no convolution in the block, true to "without convolutions"):
  spatial-reduction ratio = the stage's p2, so the K/V length HW/p2^2 equals that of the
  MSTB's p2 branch; the grid is zero-padded to a multiple of the ratio when needed. As PVT
  v1 adds an absolute position embedding at each stage's entry, a branch starts with one,
  interpolated to the grid like the MSTB's;
- CMT: LPU (3x3 depthwise, residual), LMHSA with its K/V reduced by a k x k depthwise
  convolution of stride k = p2 then LayerNorm, IRFFN with expansion 4 (CMT-S). CMT's
  relative position bias is a table tied to the 224 px grid; here it is a per-head table
  over the offset between the query's k x k cell and the key's cell, clamped to +-7 cells,
  so one model serves every grid;
- EfficientNet: MBConv with expansion 4, the hidden width of every other kind's MLP/FFN
  (EfficientNet's 6 makes the decoder 1.4x HCTN's parameters), 3x3 depthwise (the HCTN
  convolution block's kernel), SiLU, squeeze-excitation reducing to a quarter of the
  block's input width, linear 1x1 projection with BN, identity residual.

With ResNet-18 channels the decoders hold 4.7 M (swin), 8.1 M (pvt: each SR convolution has
p2^2 C^2 weights), 4.8 M (cmt) and 4.1 M (efficientnet) parameters against HCTN's 4.2 M.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .attention import PositionEmbedding

WINDOW = 8  # Swin window size
CMT_SPAN = 8  # CMT relative bias: offsets up to +-(CMT_SPAN - 1) cells
MLP_RATIO = 4
MBCONV_EXPAND = 4


def fit_heads(dim: int, heads: int) -> int:
    """The largest divisor of ``dim`` that is at most ``heads``."""
    return max(h for h in range(1, min(heads, dim) + 1) if dim % h == 0)


def mlp(dim: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(dim, MLP_RATIO * dim), nn.GELU(), nn.Linear(MLP_RATIO * dim, dim))


def to_tokens(x: Tensor) -> Tensor:
    return x.flatten(2).transpose(1, 2)  # (B, C, H, W) -> (B, HW, C)


def to_map(t: Tensor, h: int, w: int) -> Tensor:
    return t.transpose(1, 2).reshape(t.shape[0], -1, h, w)


def _coords(h: int, w: int, device: torch.device) -> tuple[Tensor, Tensor]:
    ys, xs = torch.meshgrid(torch.arange(h, device=device), torch.arange(w, device=device), indexing="ij")
    return ys.flatten(), xs.flatten()


class RelativeBias(nn.Module):
    """A learnable bias per head and relative offset (dy, dx), |dy|, |dx| < span (Swin's table).

    Queries on an (h, w) grid are placed at their ``stride`` x ``stride`` cell, keys on the
    (hk, wk) grid of cells; offsets beyond the table are clamped to its edge.
    """

    def __init__(self, heads: int, span: int) -> None:
        super().__init__()
        self.span = span
        self.table = nn.Parameter(nn.init.trunc_normal_(torch.empty(heads, (2 * span - 1) ** 2), std=0.02))

    def forward(self, q_grid: tuple[int, int], k_grid: tuple[int, int], stride: int = 1) -> Tensor:
        qy, qx = _coords(*q_grid, self.table.device)
        ky, kx = _coords(*k_grid, self.table.device)
        s = self.span - 1
        dy = (qy[:, None] // stride - ky[None]).clamp(-s, s) + s
        dx = (qx[:, None] // stride - kx[None]).clamp(-s, s) + s
        return self.table[:, dy * (2 * s + 1) + dx]  # (heads, Nq, Nk)


def to_windows(t: Tensor, ws: int) -> Tensor:
    """(B, Hp, Wp, C) -> (B, nW, ws*ws, C), windows in row-major order."""
    b, hp, wp, c = t.shape
    return t.view(b, hp // ws, ws, wp // ws, ws, c).transpose(2, 3).reshape(b, -1, ws * ws, c)


def from_windows(t: Tensor, ws: int, hp: int, wp: int) -> Tensor:
    b, c = t.shape[0], t.shape[-1]
    return t.view(b, hp // ws, wp // ws, ws, ws, c).transpose(2, 3).reshape(b, hp, wp, c)


def window_mask(h: int, w: int, ws: int, shift: int, device: torch.device) -> Tensor:
    """(nW, N, N) additive mask for the shifted (by ``-shift``) and padded grid.

    A token may attend to a token of its window only when both come from the same side of
    each cyclic-shift seam, and a real token never attends to a padding token.
    """
    hp, wp = h + (-h % ws), w + (-w % ws)
    ys, xs = torch.arange(hp, device=device), torch.arange(wp, device=device)
    region = 2 * (ys >= hp - shift).long()[:, None] + (xs >= wp - shift).long()[None]  # wrapped around?
    valid = (((ys + shift) % hp < h)[:, None] & ((xs + shift) % wp < w)[None]).long()
    region, valid = (to_windows(m[None, ..., None], ws)[0, ..., 0] for m in (region, valid))
    allowed = (region[:, :, None] == region[:, None, :]) & ((valid[:, None, :] == 1) | (valid[:, :, None] == 0))
    return torch.zeros(allowed.shape, device=device).masked_fill(~allowed, float("-inf"))


class WindowAttention(nn.Module):
    """Multi-head self-attention inside each window, with relative position bias and a mask."""

    def __init__(self, dim: int, heads: int, window: int) -> None:
        super().__init__()
        self.heads = fit_heads(dim, heads)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.bias = RelativeBias(self.heads, window)

    def forward(self, t: Tensor, mask: Tensor, ws: int) -> Tensor:
        b, nw, n, c = t.shape
        assert n == ws * ws, f"windows hold {n} tokens, expected {ws}x{ws}"
        q, k, v = self.qkv(t).view(b, nw, n, 3, self.heads, c // self.heads).permute(3, 0, 1, 4, 2, 5)
        bias = self.bias((ws, ws), (ws, ws)) + mask[:, None]  # (nW, heads, N, N)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.to(q.dtype))  # (B, nW, heads, N, d)
        return self.proj(out.transpose(2, 3).reshape(b, nw, n, c))


class SwinBlock(nn.Module):
    """Swin Transformer block: (shifted) window MSA + MLP, pre-norm, on a (B, C, H, W) map."""

    def __init__(self, dim: int, heads: int, window: int = WINDOW, shift: bool = False) -> None:
        super().__init__()
        self.window, self.shift = window, shift
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, heads, window)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = mlp(dim)

    def geometry(self, h: int, w: int) -> tuple[int, int]:
        """(window size, shift) used on an h x w grid."""
        ws = min(self.window, h, w)
        single = h + (-h % ws) == ws and w + (-w % ws) == ws
        return ws, ws // 2 if self.shift and not single else 0

    def forward(self, x: Tensor) -> Tensor:
        _, _, h, w = x.shape
        ws, s = self.geometry(h, w)
        hp, wp = h + (-h % ws), w + (-w % ws)
        t = x.permute(0, 2, 3, 1)  # (B, H, W, C)
        y = F.pad(self.norm1(t), (0, 0, 0, wp - w, 0, hp - h))
        y = torch.roll(y, (-s, -s), dims=(1, 2))
        y = self.attn(to_windows(y, ws), window_mask(h, w, ws, s, x.device), ws)
        y = torch.roll(from_windows(y, ws, hp, wp), (s, s), dims=(1, 2))
        t = t + y[:, :h, :w]
        t = t + self.mlp(self.norm2(t))
        return t.permute(0, 3, 1, 2).contiguous()


class ReducedAttention(nn.Module):
    """MHSA whose keys/values come from the map reduced by a ``ratio`` x ``ratio`` stride-``ratio``
    convolution and a LayerNorm: PVT's spatial-reduction attention (full convolution) or
    CMT's LMHSA (depthwise convolution, plus a relative position bias)."""

    def __init__(self, dim: int, heads: int, ratio: int, *, depthwise: bool = False, span: int = 0) -> None:
        super().__init__()
        self.heads, self.ratio = fit_heads(dim, heads), ratio
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)
        groups = dim if depthwise else 1
        self.reduce = nn.Conv2d(dim, dim, ratio, stride=ratio, groups=groups) if ratio > 1 else nn.Identity()
        self.norm = nn.LayerNorm(dim) if ratio > 1 else nn.Identity()
        self.bias = RelativeBias(self.heads, span) if span else None

    def forward(self, t: Tensor, h: int, w: int) -> Tensor:
        b, n, c = t.shape
        assert n == h * w, f"{n} tokens do not fill a {h}x{w} grid"
        r, d = self.ratio, c // self.heads
        q = self.q(t).view(b, n, self.heads, d).transpose(1, 2)
        m = self.reduce(F.pad(to_map(t, h, w), (0, -w % r, 0, -h % r)))  # zero-pad to a multiple of r
        k, v = self.kv(self.norm(to_tokens(m))).view(b, -1, 2, self.heads, d).permute(2, 0, 3, 1, 4)
        bias = None if self.bias is None else self.bias((h, w), m.shape[-2:], r).to(q.dtype)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


class PVTBlock(nn.Module):
    """PVT (v1) block: spatial-reduction attention + MLP, pre-norm, on a (B, C, H, W) map."""

    def __init__(self, dim: int, heads: int, sr_ratio: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = ReducedAttention(dim, heads, sr_ratio)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = mlp(dim)

    def forward(self, x: Tensor) -> Tensor:
        _, _, h, w = x.shape
        t = to_tokens(x)
        t = t + self.attn(self.norm1(t), h, w)
        t = t + self.mlp(self.norm2(t))
        return to_map(t, h, w)


class IRFFN(nn.Module):
    """CMT's inverted residual FFN: 1x1 expand, 3x3 depthwise with a shortcut, 1x1 project."""

    def __init__(self, dim: int, ratio: int = MLP_RATIO) -> None:
        super().__init__()
        hidden = ratio * dim
        self.expand = nn.Sequential(nn.Conv2d(dim, hidden, 1), nn.GELU(), nn.BatchNorm2d(hidden))
        self.dw = nn.Sequential(nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden), nn.GELU(),
                                nn.BatchNorm2d(hidden))
        self.project = nn.Sequential(nn.Conv2d(hidden, dim, 1), nn.BatchNorm2d(dim))

    def forward(self, x: Tensor) -> Tensor:
        y = self.expand(x)
        return self.project(y + self.dw(y))


class CMTBlock(nn.Module):
    """CMT block: LPU, lightweight MHSA (K/V reduced by a depthwise stride-k conv), IRFFN."""

    def __init__(self, dim: int, heads: int, sr_ratio: int) -> None:
        super().__init__()
        self.lpu = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)
        self.norm1 = nn.LayerNorm(dim)
        self.attn = ReducedAttention(dim, heads, sr_ratio, depthwise=True, span=CMT_SPAN)
        self.norm2 = nn.LayerNorm(dim)
        self.ffn = IRFFN(dim)

    def forward(self, x: Tensor) -> Tensor:
        _, _, h, w = x.shape
        t = to_tokens(x + self.lpu(x))
        t = t + self.attn(self.norm1(t), h, w)
        t = t + to_tokens(self.ffn(to_map(self.norm2(t), h, w)))
        return to_map(t, h, w)


class SqueezeExcite(nn.Module):
    """Channel gate: global average pool, 1x1 reduce, SiLU, 1x1 expand, sigmoid; scales x."""

    def __init__(self, dim: int, reduced: int) -> None:
        super().__init__()
        self.reduce = nn.Conv2d(dim, reduced, 1)
        self.expand = nn.Conv2d(reduced, dim, 1)

    def gate(self, x: Tensor) -> Tensor:
        return torch.sigmoid(self.expand(F.silu(self.reduce(x.mean((2, 3), keepdim=True)))))  # (B, C, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        return x * self.gate(x)


class MBConvBlock(nn.Module):
    """EfficientNet's MBConv (stride 1): expand, depthwise, SE, linear project, residual."""

    def __init__(self, dim: int, expand: int = MBCONV_EXPAND, kernel: int = 3) -> None:
        super().__init__()
        hidden = expand * dim
        self.expand = nn.Sequential(nn.Conv2d(dim, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.SiLU())
        self.dw = nn.Sequential(nn.Conv2d(hidden, hidden, kernel, padding=kernel // 2, groups=hidden, bias=False),
                                nn.BatchNorm2d(hidden), nn.SiLU())
        self.se = SqueezeExcite(hidden, max(1, dim // 4))
        self.project = nn.Sequential(nn.Conv2d(hidden, dim, 1, bias=False), nn.BatchNorm2d(dim))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.project(self.se(self.dw(self.expand(x))))


def swin_branch(dim: int, heads: int, p2: int, grid: int) -> nn.Module:
    return nn.Sequential(SwinBlock(dim, heads, shift=False), SwinBlock(dim, heads, shift=True))


def pvt_branch(dim: int, heads: int, p2: int, grid: int) -> nn.Module:
    return nn.Sequential(PositionEmbedding(dim, grid), PVTBlock(dim, heads, p2), PVTBlock(dim, heads, p2))


def cmt_branch(dim: int, heads: int, p2: int, grid: int) -> nn.Module:
    return nn.Sequential(CMTBlock(dim, heads, p2), CMTBlock(dim, heads, p2))


def mbconv_branch(dim: int, heads: int, p2: int, grid: int) -> nn.Module:
    return nn.Sequential(MBConvBlock(dim), MBConvBlock(dim))
