"""Hybrid CNN-Transformer Network (HCTN), the Hetero-AE decoder: paper Sec. III-B2, Fig. 2(c).

The decoder takes the encoder's deepest map F_E^4 and produces F_D^3, F_D^2, F_D^1 with the
encoder's channels and resolutions. Each of its three stages is a hybrid CNN-Transformer
module: two 1x1 convolutions split the input into a convolution group and a Transformer
group; the convolution block (two 3x3 convolutions, stride 1) and the MSTB process them;
the results are concatenated, a 1x1 convolution sets the channel number, and an
upsampling layer doubles the scale. For ResNet-18 the stages have C = 256, 128, 64
channels, h = 8, 4, 2 heads and p2 = 2, 4, 8 (paper Sec. IV-B1, listed there from stage 1
to 3, i.e. from F_D^1 to F_D^3).

Decoder kinds (paper Table III, Fig. 6):
- ``hctn``: convolution block + MSTB (the paper's);
- ``cnn``: every MSTB replaced by a convolution block (CNN+CNN);
- ``transformer``: every convolution block replaced by an MSTB (Trans+Trans).

Other decoders (``decoders()``): ``resnet``, a mirrored ResNet-18 (RD4AD's reverse ResNet),
Table II's homogeneous "ResNet / ResNet (CNN)" pair.

Choices where the paper is silent (docs/reproduction-notes.md; DESIGN 3.7): the split
convolutions and the 3x3 convolutions are Conv-BN-ReLU; the fusing 1x1 convolution is
linear (no norm, no activation) so that F_D^k can match encoder features of any sign;
upsampling is bilinear. A stage processes at its input's resolution and upsamples last,
as the paper's text orders it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..config import EMBEDDING_SIZE, Upsample, check_choice
from .attention import MSTB
from .blocks import cmt_branch, mbconv_branch, pvt_branch, swin_branch
from .reverse_resnet import ReverseResNetDecoder


def conv_bn_relu(cin: int, cout: int, kernel: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, padding=kernel // 2, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class ConvBlock(nn.Sequential):
    """Two consecutive 3x3 convolutions with stride 1 (the HCTN module's CNN branch)."""

    def __init__(self, dim: int) -> None:
        super().__init__(conv_bn_relu(dim, dim, 3), conv_bn_relu(dim, dim, 3))


BranchFactory = Callable[[int, int, int, int], nn.Module]  # (dim, heads, p2, grid) -> block


def _conv_branch(dim: int, heads: int, p2: int, grid: int) -> nn.Module:
    return ConvBlock(dim)


def _mstb_branch(dim: int, heads: int, p2: int, grid: int) -> nn.Module:
    return MSTB(dim, heads=heads, p2=p2, grid=grid)


DECODER_KINDS: dict[str, tuple[BranchFactory, BranchFactory]] = {
    "hctn": (_conv_branch, _mstb_branch),
    "cnn": (_conv_branch, _conv_branch),
    "transformer": (_mstb_branch, _mstb_branch),
    "swin": (swin_branch, swin_branch),
    "pvt": (pvt_branch, pvt_branch),
    "cmt": (cmt_branch, cmt_branch),
    "efficientnet": (mbconv_branch, mbconv_branch),
}


class HybridBlock(nn.Module):
    """The hybrid CNN-Transformer module without resampling: split, two branches, concat, 1x1 conv.

    Two 1x1 Conv-BN-ReLU convolutions map the ``cin`` input channels to two groups of ``dim``
    channels, each group goes through its branch, and a linear 1x1 convolution fuses the
    concatenation back to ``dim`` channels. The decoder stages and the hybrid encoder's stages
    (``hybrid_encoder.py``) are both built on it.
    """

    def __init__(self, cin: int, dim: int, *, heads: int, p2: int, grid: int,
                 branches: tuple[BranchFactory, BranchFactory]) -> None:
        super().__init__()
        self.split = nn.ModuleList(conv_bn_relu(cin, dim, 1) for _ in branches)
        self.branches = nn.ModuleList(make(dim, heads, p2, grid) for make in branches)
        self.fuse = nn.Conv2d(2 * dim, dim, kernel_size=1)

    def forward(self, x: Tensor) -> Tensor:
        parts = [branch(split(x)) for split, branch in zip(self.split, self.branches)]
        return self.fuse(torch.cat(parts, dim=1))


class HybridStage(HybridBlock):
    """One decoder stage: a ``HybridBlock`` and a 2x upsampling.

    ``upsample="last"`` follows the paper's text (the module works at its input's resolution);
    ``"first"`` upsamples the input, so the branches work at the output's resolution.
    """

    def __init__(
        self, cin: int, dim: int, *, heads: int, p2: int, grid: int, branches: tuple[BranchFactory, BranchFactory],
        upsample: str = "last",
    ) -> None:
        Upsample.check(upsample)
        super().__init__(cin, dim, heads=heads, p2=p2, grid=grid, branches=branches)
        self.upsample_first = upsample == "first"

    def forward(self, x: Tensor) -> Tensor:
        if self.upsample_first:
            return super().forward(_up(x))
        return _up(super().forward(x))


def _up(x: Tensor) -> Tensor:
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)


P2 = (8, 4, 2)  # MSTB's larger patch size per decoder stage F_D^1..F_D^3 (the paper's)


class HybridDecoder(nn.Module):
    """Decodes F_E^4 into [F_D^1, F_D^2, F_D^3] (returned in that order, finest first).

    Args:
        channels: the encoder's four channel counts (C_1, C_2, C_3, C_4).
        kind: "hctn", "cnn" or "transformer".
        heads: heads per stage for F_D^1..F_D^3 (paper: 2, 4, 8).
        p2: larger patch size per stage for F_D^1..F_D^3 (paper: 8, 4, 2).
        strides: the encoder's strides, for the reference grids of the embeddings.
        embedding_size: the input size at which position embeddings are stored (``ModelConfig.embedding_size``).

    The input sizes it takes: ``decoder_size_multiple``.
    """

    def __init__(
        self,
        channels: Sequence[int],
        *,
        kind: str = "hctn",
        heads: Sequence[int] = (2, 4, 8),
        p2: Sequence[int] = P2,
        strides: Sequence[int] = (4, 8, 16, 32),
        upsample: str = "last",
        embedding_size: int = EMBEDDING_SIZE,
    ) -> None:
        super().__init__()
        check_choice("decoder kind", kind, tuple(sorted(DECODER_KINDS)))
        assert len(channels) == 4, f"expected four encoder channel counts, got {channels}"
        self.kind = kind
        stages = []
        for k in (2, 1, 0):  # produce F_D^3, then F_D^2, then F_D^1
            grid = embedding_size // strides[k if upsample == "first" else k + 1]  # the grid the branches see
            stages.append(
                HybridStage(channels[k + 1], channels[k], heads=heads[k], p2=p2[k], grid=grid,
                            branches=DECODER_KINDS[kind], upsample=upsample)
            )
        self.stages = nn.ModuleList(stages)

    def forward(self, f4: Tensor) -> list[Tensor]:
        outs = []
        x = f4
        for stage in self.stages:
            x = stage(x)
            outs.append(x)
        return outs[::-1]


def decoder_size_multiple(name: str, strides: Sequence[int] = (4, 8, 16, 32), upsample: str = "last") -> int:
    """The input sizes the decoder ``name`` takes (with the paper's heads and patch sizes) are multiples of this."""
    if name not in DECODER_KINDS:
        return 32
    return size_multiple(name, strides, P2, upsample)


def size_multiple(kind: str, strides: Sequence[int], p2: Sequence[int], upsample: str) -> int:
    """Input sizes a hybrid skeleton of ``kind`` takes are multiples of this: the encoder's stride
    (32), and where a stage holds an MSTB, its grid split into p2 x p2 patches (with the paper's
    p2 = 8, 4, 2 at strides 8, 16, 32: 64)."""
    if _mstb_branch not in DECODER_KINDS[kind]:
        return 32
    seen = [strides[k if upsample == "first" else k + 1] for k in range(3)]
    return math.lcm(32, *(s * p for s, p in zip(seen, p2)))


DecoderFactory = Callable[..., nn.Module]  # (channels, *, strides, upsample, relu_out, embedding_size) -> decoder


def _hybrid(kind: str) -> DecoderFactory:
    def make(channels: Sequence[int], *, strides: Sequence[int], upsample: str, relu_out: bool,
             embedding_size: int) -> nn.Module:
        # relu_out is not needed: the linear fusing 1x1 convolution matches features of either sign.
        return HybridDecoder(channels, kind=kind, strides=strides, upsample=upsample, embedding_size=embedding_size)

    return make


def _reverse_resnet(channels: Sequence[int], *, strides: Sequence[int], upsample: str, relu_out: bool,
                    embedding_size: int) -> nn.Module:
    """Table II's homogeneous "ResNet / ResNet (CNN)" decoder: a mirrored ResNet-18 as in RD4AD.

    Two basic blocks per stage (ResNet-18's layer counts, RD4AD's ``de_resnet18``); each stage
    upsamples in its first block by a stride-2 transposed convolution, so ``upsample`` (which
    places the hybrid stages' bilinear upsampling) does not apply. Outputs end in a ReLU only
    when the encoder's features do (``relu_out``).
    """
    return ReverseResNetDecoder(channels, blocks=(2, 2, 2), kind="basic", relu_out=relu_out)


def decoders() -> dict[str, DecoderFactory]:
    """Every decoder by name: the hybrid-skeleton kinds of ``DECODER_KINDS`` and the others.

    Each maps F_E^4 to [F_D^1, F_D^2, F_D^3] with the encoder's channels.
    """
    return {**{kind: _hybrid(kind) for kind in DECODER_KINDS}, "resnet": _reverse_resnet}


def build_decoder(name: str, channels: Sequence[int], *, strides: Sequence[int] = (4, 8, 16, 32),
                  upsample: str = "last", relu_out: bool = False, embedding_size: int = EMBEDDING_SIZE) -> nn.Module:
    """Build a decoder by name. ``relu_out``: whether the encoder's features follow a ReLU (non-negative);
    ``embedding_size``: where position embeddings are stored (``ModelConfig.embedding_size``).
    Which input sizes it takes: ``decoder_size_multiple``."""
    table = decoders()
    check_choice("decoder", name, tuple(sorted(table)))
    return table[name](channels, strides=strides, upsample=upsample, relu_out=relu_out, embedding_size=embedding_size)
