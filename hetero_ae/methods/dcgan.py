"""DCGAN-style convolutional encoder and decoder shared by the reconstruction baselines.

AE [42], VAE [43], GANomaly [21], f-AnoGAN [3] and SALAD [9] all build on the DCGAN
architecture (Radford et al., ICLR 2016): stride-2 4x4 convolutions halve the image down
to 4x4 and a final 4x4 convolution maps it to a vector; the decoder mirrors this with
transposed convolutions. Channels double at every halving, from ``base`` up to ``max_ch``.
Images are ImageNet-normalised, so the decoder's output is linear (no tanh).
"""

from __future__ import annotations

import math

from torch import Tensor, nn

from ..config import IMAGE_SIZES, check_image_size
from ..model.precision import as_float32
from .registry import AnomalyModel


class DCGANMethod(AnomalyModel):
    """A method built on these networks (AE, VAE, GANomaly, f-AnoGAN, SALAD): they halve the image
    down to 4 x 4, so it takes powers of two (``AnomalyModel.size_rule``)."""

    size_power_of_two = True


def _levels(size: int) -> int:
    check_image_size(size, power_of_two=True, multiple=8, sizes=(8, IMAGE_SIZES[1]),
                     what="the DCGAN-style networks (AE, VAE, GANomaly, f-AnoGAN, SALAD)")
    n = math.log2(size / 4)
    return int(n)


def _norm(kind: str, ch: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(ch)
    if kind == "layer":  # WGAN-GP critics must not use batch norm; a per-sample norm instead
        return nn.GroupNorm(1, ch)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"norm must be 'batch', 'layer' or 'none', got {kind!r}")


class ConvEncoder(nn.Module):
    """Image (B, C, S, S) -> vector (B, out_dim); ``features`` also returns the last 4x4 map."""

    def __init__(self, size: int, out_dim: int, *, in_ch: int = 3, base: int = 32, max_ch: int = 256,
                 norm: str = "batch") -> None:
        super().__init__()
        layers: list[nn.Module] = []
        ch = in_ch
        for i in range(_levels(size)):
            out = min(base * 2**i, max_ch)
            layers += [nn.Conv2d(ch, out, 4, 2, 1, bias=False), _norm(norm if i else "none", out), nn.LeakyReLU(0.2, True)]
            ch = out
        self.body = nn.Sequential(*layers)
        self.head = nn.Conv2d(ch, out_dim, 4, 1, 0)
        self.feature_channels = ch

    def features(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(vector, last 4x4 map); float32 under autocast, as a network's forward gives (``model.precision.as_float32``)."""
        f = self.body(x)
        return as_float32((self.head(f).flatten(1), f))

    def forward(self, x: Tensor) -> Tensor:
        return self.features(x)[0]


class ConvDecoder(nn.Module):
    """Vector (B, in_dim) -> image (B, out_ch, S, S)."""

    def __init__(self, size: int, in_dim: int, *, out_ch: int = 3, base: int = 32, max_ch: int = 256) -> None:
        super().__init__()
        n = _levels(size)
        chs = [min(base * 2**i, max_ch) for i in reversed(range(n))]
        layers: list[nn.Module] = [nn.ConvTranspose2d(in_dim, chs[0], 4, 1, 0, bias=False), nn.BatchNorm2d(chs[0]),
                                   nn.ReLU(True)]
        for cin, cout in zip(chs, chs[1:]):
            layers += [nn.ConvTranspose2d(cin, cout, 4, 2, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(True)]
        layers.append(nn.ConvTranspose2d(chs[-1], out_ch, 4, 2, 1))
        self.body = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        return self.body(z.view(z.shape[0], -1, 1, 1))
