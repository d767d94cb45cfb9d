"""A reverse ResNet: residual stages that double the resolution, for decoders built from a channel list.

RD4AD's student decoder [39] (Deng & Li, CVPR 2022; official code ``models/de_resnet.py``) is a
ResNet run backwards: the first block of each stage upsamples by 2 with a 2x2 transposed
convolution of stride 2, both in its residual branch (where a ResNet block has its stride-2
3x3 convolution) and in its shortcut (transposed convolution + BatchNorm); the other blocks of
the stage keep the size. Blocks are ResNet "basic" (two 3x3 convolutions; ResNet-18/34) or
"bottleneck" (1x1, 3x3, 1x1; ResNet-50 family) blocks. Here every width comes from the
encoder's channel list, so the same decoder fits any four-level encoder: a bottleneck's inner
width is ``width_ratio`` times its output channels (0.25 for ResNet-50, 0.5 for Wide-ResNet-50-2).

``ResBlock`` also downsamples (stride-2 3x3 convolution, 1x1 stride-2 shortcut), as RD4AD's
one-class bottleneck needs.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

BLOCK_KINDS = ("basic", "bottleneck")
RESAMPLE = ("same", "down", "up")


def _conv(cin: int, cout: int, kernel: int, resample: str) -> nn.Module:
    """A convolution that keeps the size, halves it (stride 2) or doubles it (2x2 transposed, stride 2)."""
    if resample == "up":
        return nn.ConvTranspose2d(cin, cout, kernel_size=2, stride=2, bias=False)
    return nn.Conv2d(cin, cout, kernel, stride=2 if resample == "down" else 1, padding=kernel // 2, bias=False)


class ResBlock(nn.Module):
    """A ResNet basic or bottleneck block whose output has ``cout`` channels at the resampled size."""

    def __init__(self, cin: int, cout: int, *, kind: str = "basic", resample: str = "same",
                 width_ratio: float = 0.5, relu_out: bool = True) -> None:
        super().__init__()
        if kind not in BLOCK_KINDS or resample not in RESAMPLE:
            raise ValueError(f"block kind must be one of {BLOCK_KINDS} and resample one of {RESAMPLE}, "
                             f"got {kind!r}, {resample!r}")
        if kind == "basic":
            layers = [_conv(cin, cout, 3, resample), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                      _conv(cout, cout, 3, "same"), nn.BatchNorm2d(cout)]
        else:
            width = max(1, round(cout * width_ratio))
            layers = [_conv(cin, width, 1, "same"), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
                      _conv(width, width, 3, resample), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
                      _conv(width, cout, 1, "same"), nn.BatchNorm2d(cout)]
        self.branch = nn.Sequential(*layers)
        same = resample == "same" and cin == cout
        self.shortcut = nn.Identity() if same else nn.Sequential(_conv(cin, cout, 1, resample), nn.BatchNorm2d(cout))
        self.act = nn.ReLU(inplace=True) if relu_out else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.branch(x) + self.shortcut(x))


def res_stage(cin: int, cout: int, n: int, *, resample: str, relu_out: bool = True, **block: object) -> nn.Sequential:
    """``n`` blocks; the first resamples; ``relu_out`` applies to the stage's last block only."""
    if n < 1:
        raise ValueError(f"a stage needs at least one block, got {n}")
    return nn.Sequential(*(
        ResBlock(cin if i == 0 else cout, cout, resample=resample if i == 0 else "same",
                 relu_out=relu_out or i < n - 1, **block)
        for i in range(n)
    ))


def init_resnet_(module: nn.Module) -> nn.Module:
    """torchvision's ResNet initialisation (the official RD4AD code's): Kaiming-normal (fan-out) convolutions."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    return module


class ReverseResNetDecoder(nn.Module):
    """Decodes a stride-32 map with C_4 channels into [F^1, F^2, F^3] (finest first).

    Args:
        channels: the encoder's four channel counts (C_1, C_2, C_3, C_4).
        blocks: blocks per stage in decoding order, i.e. for the stages giving F^3, F^2, F^1
            (RD4AD: 2, 2, 2 for ResNet-18; 3, 4, 6 for Wide-ResNet-50-2).
        kind: "basic" or "bottleneck" blocks.
        width_ratio: a bottleneck's inner width over its output channels.
        relu_out: end each output in a ReLU (official RD4AD); off for encoders with signed features.
    """

    def __init__(self, channels: Sequence[int], blocks: Sequence[int] = (2, 2, 2), *, kind: str = "basic",
                 width_ratio: float = 0.5, relu_out: bool = True) -> None:
        super().__init__()
        channels, blocks = [int(c) for c in channels], [int(b) for b in blocks]
        if len(channels) != 4 or len(blocks) != 3:
            raise ValueError(f"need 4 channel counts and 3 block counts, got {channels} and {blocks}")
        outs = channels[2::-1]  # C_3, C_2, C_1
        ins = [channels[3], *outs[:-1]]
        self.stages = nn.ModuleList(
            res_stage(cin, cout, n, resample="up", relu_out=relu_out, kind=kind, width_ratio=width_ratio)
            for cin, cout, n in zip(ins, outs, blocks)
        )
        self.channels = tuple(channels)
        init_resnet_(self)

    def forward(self, z: Tensor) -> list[Tensor]:
        feats = []
        for stage in self.stages:
            z = stage(z)
            feats.append(z)
        return feats[::-1]
