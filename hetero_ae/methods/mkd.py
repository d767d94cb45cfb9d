"""MKD [20]: M. Salehi, N. Sadjadi, S. Baselizadeh, M. H. Rohban, H. R. Rabiee, "Multiresolution
Knowledge Distillation for Anomaly Detection", CVPR 2021. Official code:
github.com/Niousha12/Knowledge_Distillation_AD (``models/network.py``, ``loss_functions.py``,
``test_functions.py``, ``configs/config.yaml``).

A frozen source network pretrained on ImageNet (VGG-16 in the paper) is cloned by a smaller
network trained to match its activations at several resolutions. Following the official code:

- matched activations: the outputs of VGG-16's 2nd to 5th max-pooling (strides 4 to 32), i.e.
  the source encoder's four levels;
- cloner: the official configuration "B", VGG-like 3x3 conv-BN-ReLU blocks, 2, 2, 3, 3, 3 per stage,
  each stage closed by a 2x2 max-pool; hidden widths 16 (``cloner_width``); the last convolution of
  every stage has no BatchNorm, and in a matched stage it produces the source's channels; no
  biases; Xavier-uniform initialisation. Built here from the source's ``.channels`` and ``.strides``;
- loss = sum_l L_dir^l + lamda * sum_l L_val^l with L_val^l the mean squared difference and
  L_dir^l = mean over the batch of 1 - cos(vec(a_s^l), vec(a_c^l)) over the flattened layer, on all
  four levels. The paper writes L_val + lambda * L_dir; the official code weights the MSE term and
  we follow it, with lamda = 0.01 (the config's value for every dataset but MVTec AD, which
  includes the medical ones; 0.5 for MVTec AD);
- image score = the same per-image loss on the last three levels (the official detection test
  skips the first matched level); Adam with PyTorch's defaults (lr from the trainer).

Departures: the paper localises with gradients of the loss w.r.t. the input (vanilla,
SmoothGrad, guided back-propagation); we use the documented alternative of feature distances,
cheaper and deterministic: per level and pixel 1 - cos over channels plus lamda times the squared
error normalised by the channel count (the per-pixel share of L_val), resized to the input
(bilinear), summed over the scoring levels and Gaussian-smoothed with ``map_sigma`` = 4 (the
sigma the official code smooths its gradient maps with). A cloner output ends in a ReLU only
when the source's features do (VGG, ResNets); for a source with signed features
(EfficientNet-Lite0, the offline fallback) the last convolution is linear so it can match them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..config import ModelConfig, ends_in_relu
from ..model.anomaly_map import smooth
from ..model.encoder import Encoder, build_encoder
from .registry import AnomalyModel, read_hyper_parameters, register


@dataclass(frozen=True)
class MKDParams:
    """MKD's hyper-parameters (``ModelConfig.params``); the defaults are the official code's."""

    lamda: float = 0.01  # weight of L_val; official config.yaml ("mvtec: 0.5, Others: 0.01")
    cloner_width: int = 16  # official cfg "B": hidden widths 16
    cloner_convs: tuple[int, ...] = (2, 2, 3, 3, 3)  # official cfg "B": convolutions per stage (VGG-16's pattern)
    score_levels: tuple[int, ...] = (2, 3, 4)  # official detection_test: output_pred[6], [9], [12] (pool3..pool5)
    adam_betas: tuple[float, float] = (0.9, 0.999)  # official train.py: torch.optim.Adam defaults
    weight_decay: float = 0.0  # official train.py
    map_sigma: float = 4.0  # official test_functions.py: gaussian_filter(..., sigma=4)


class Cloner(nn.Module):
    """A narrow VGG-like network returning maps with the source's channels at the source's strides."""

    def __init__(self, channels: Sequence[int], strides: Sequence[int], *, width: int = 16,
                 convs: Sequence[int] = (2, 2, 3, 3, 3), relu_out: bool = True) -> None:
        super().__init__()
        levels = [int(math.log2(s)) for s in strides]
        if any(2**n != s for n, s in zip(levels, strides)) or len(convs) != levels[-1] or min(convs) < 1:
            raise ValueError(f"cloner_convs needs one positive count per halving up to stride {strides[-1]}, "
                             f"got {list(convs)}")
        taps = dict(zip(levels, channels))
        stages, cin = [], 3
        for stage, n in enumerate(convs, start=1):
            layers: list[nn.Module] = []
            for i in range(n):
                last = i == n - 1
                cout = taps.get(stage, width) if last else width
                layers.append(nn.Conv2d(cin, cout, 3, padding=1, bias=False))
                nn.init.xavier_uniform_(layers[-1].weight)
                if not last:
                    layers.append(nn.BatchNorm2d(cout))
                if not last or relu_out or stage not in taps:
                    layers.append(nn.ReLU(inplace=True))
                cin = cout
            stages.append(nn.Sequential(*layers, nn.MaxPool2d(2)))
        self.stages = nn.ModuleList(stages)
        self.taps = frozenset(taps)

    def forward(self, x: Tensor) -> list[Tensor]:
        feats = []
        for stage, block in enumerate(self.stages, start=1):
            x = block(x)
            if stage in self.taps:
                feats.append(x)
        return feats


def value_loss(a_s: Tensor, a_c: Tensor) -> Tensor:
    """L_val per image: the mean squared difference over a layer, shape (B,)."""
    return (a_s - a_c).pow(2).flatten(1).mean(dim=1)


def direction_loss(a_s: Tensor, a_c: Tensor) -> Tensor:
    """L_dir per image: 1 - cos of the flattened layers, shape (B,)."""
    return 1.0 - F.cosine_similarity(a_s.flatten(1), a_c.flatten(1), dim=1)


def mkd_per_image(source: Sequence[Tensor], cloner: Sequence[Tensor], lamda: float) -> Tensor:
    """sum_l L_dir^l + lamda * L_val^l for every image, shape (B,)."""
    return sum(direction_loss(s, c) + lamda * value_loss(s, c) for s, c in zip(source, cloner, strict=True))


def mkd_map(source: Sequence[Tensor], cloner: Sequence[Tensor], lamda: float, size: tuple[int, int]) -> Tensor:
    """sum_l Resize(1 - cos + lamda * squared error / C) per pixel, shape (B, *size)."""
    total = 0
    for s, c in zip(source, cloner, strict=True):
        m = 1.0 - F.cosine_similarity(s, c, dim=1) + lamda * (s - c).pow(2).mean(dim=1)
        total = total + F.interpolate(m.unsqueeze(1), size=size, mode="bilinear", align_corners=False).squeeze(1)
    return total


@register("mkd", display_name="MKD", paper="Salehi et al., CVPR 2021", paper_row=7)
class MKD(AnomalyModel):
    paper_backbone = "vgg16"  # paper Sec. 3 and official models/network.py
    frozen_network = "source"
    hyper_parameters = MKDParams

    def __init__(self, source: Encoder, cloner: Cloner, *, lamda: float = MKDParams.lamda,
                 score_levels: Sequence[int] = MKDParams.score_levels,
                 adam_betas: Sequence[float] = MKDParams.adam_betas, weight_decay: float = MKDParams.weight_decay,
                 map_sigma: float = MKDParams.map_sigma) -> None:
        super().__init__()
        self.source, self.cloner = source, cloner
        self.score_idx = [int(k) - 1 for k in score_levels]
        if not self.score_idx or not set(self.score_idx) <= set(range(len(source.channels))):
            raise ValueError(f"score_levels must name levels 1..{len(source.channels)}, got {list(score_levels)}")
        self.lamda, self.adam_betas = lamda, tuple(adam_betas)
        self.weight_decay, self.map_sigma = weight_decay, map_sigma

    @classmethod
    def from_config(cls, cfg: ModelConfig) -> "MKD":
        p = read_hyper_parameters(MKDParams, cfg.method, cfg.params)
        source = build_encoder(cfg.encoder, weights=cfg.encoder_weights)
        cloner = Cloner(source.channels, source.strides, width=p.cloner_width, convs=p.cloner_convs,
                        relu_out=ends_in_relu(cfg.encoder))
        return cls(source, cloner, lamda=p.lamda, score_levels=p.score_levels, adam_betas=p.adam_betas,
                   weight_decay=p.weight_decay, map_sigma=p.map_sigma)

    def features(self, x: Tensor, frozen: list[Tensor] | None = None) -> tuple[list[Tensor], list[Tensor]]:
        """(source, cloner) activations at the four levels; ``frozen``: the source's, computed earlier."""
        src = self.frozen_features(x) if frozen is None else frozen
        return src, self.cloner(x)

    def loss(self, x: Tensor, frozen: list[Tensor] | None = None) -> Tensor:
        return mkd_per_image(*self.features(x, frozen), self.lamda).mean()

    def frozen_prefixes(self) -> tuple[str, ...]:
        return ("source.",)

    def configure_optimizers(self, lr: float) -> list[torch.optim.Optimizer]:
        return [torch.optim.Adam(self.parameter_groups(lr), lr=lr, betas=self.adam_betas,
                                 weight_decay=self.weight_decay)]

    def _scored(self, x: Tensor) -> tuple[list[Tensor], list[Tensor]]:
        src, cln = self.features(x)
        return [src[i] for i in self.score_idx], [cln[i] for i in self.score_idx]

    def anomaly_map(self, x: Tensor) -> Tensor:
        return smooth(mkd_map(*self._scored(x), self.lamda, size=tuple(x.shape[-2:])), self.map_sigma)

    def predict(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Maps as ``anomaly_map``; score = the per-image distillation loss on the scoring levels (official)."""
        src, cln = self._scored(x)
        maps = smooth(mkd_map(src, cln, self.lamda, size=tuple(x.shape[-2:])), self.map_sigma)
        return maps, mkd_per_image(src, cln, self.lamda)
