"""RD4AD [39]: H. Deng, X. Li, "Anomaly Detection via Reverse Distillation from One-Class Embedding",
CVPR 2022. Official code: github.com/hq-deng/RD4AD (``main.py``, ``test.py``, ``resnet.py``,
``de_resnet.py``).

A frozen teacher pretrained on ImageNet (Wide-ResNet-50-2 in the paper) gives F^1..F^3; a trainable
one-class bottleneck embedding (OCBE) condenses them; a reverse student decoder rebuilds
F^3, F^2, F^1 from it. Following the official code:

- OCBE, multi-scale feature fusion: F^1 -> stride-2 3x3 conv-BN-ReLU (C_1 -> C_2) -> stride-2 3x3
  conv-BN-ReLU (C_2 -> C_3); F^2 -> stride-2 3x3 conv-BN-ReLU (C_2 -> C_3); both concatenated with F^3
  (3 C_3 channels), then a residual stage whose first block has stride 2 (the paper's "4th residual
  block of ResNet as OCE"): 3 bottleneck blocks for Wide-ResNet-50 (2 basic blocks for ResNet-18),
  giving a C_4-channel embedding at level 4's resolution;
- student: ``ReverseResNetDecoder`` with 3, 4, 6 bottleneck blocks (inner width half the output
  channels, as in Wide-ResNet-50-2) for the stages giving F^3, F^2, F^1;
- loss = sum_k mean over the batch of 1 - cos(flatten(t_k), flatten(s_k)) (the cosine of the whole
  flattened map per sample, ``loss_fucntion`` in main.py);
- map = sum_k Resize(1 - cos(t_k(h, w), s_k(h, w))) (per-pixel cosine over channels, bilinear to the
  input) Gaussian-smoothed with sigma 4; score = the map's maximum (``evaluation`` in test.py);
- Adam with betas (0.5, 0.999) on the OCBE and the decoder (lr 0.005 is the trainer's).

Departures: the widths come from the teacher's channel list, so the same code runs on any
four-level encoder (the block kind, bottleneck width ratio and block counts are parameters with
the Wide-ResNet-50 values); the official ``BN_layer`` also builds an unused 1x1 convolution
(``conv4``), left out. The official map resizes with ``align_corners=True``; we use the
package's shared map (``align_corners=False``, Gaussian truncated at 4 sigma as scipy's). The
student's outputs end in a ReLU, as in the official decoder, only when the teacher's features do
(ResNets, VGG); for a teacher with signed features (EfficientNet-Lite0, the offline fallback)
each stage's last block is linear so the student can match them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..config import ModelConfig, ends_in_relu
from ..model.anomaly_map import anomaly_map
from ..model.encoder import Encoder, build_encoder
from ..model.reverse_resnet import ReverseResNetDecoder, init_resnet_, res_stage
from .registry import AnomalyModel, read_hyper_parameters, register


@dataclass(frozen=True)
class RD4ADParams:
    """RD4AD's hyper-parameters (``ModelConfig.params``); the defaults are the official code's for Wide-ResNet-50-2."""

    block: str = "bottleneck"  # official resnet.py / de_resnet.py for wide_resnet50_2 (Bottleneck); or "basic"
    width_ratio: float = 0.5  # Wide-ResNet-50-2: width_per_group 128, inner width = output channels / 2
    ocbe_blocks: int = 3  # official resnet.py: BN_layer(AttnBottleneck, 3)
    decoder_blocks: tuple[int, int, int] = (3, 4, 6)  # official de_resnet.py: de_wide_resnet50_2 layers [3, 4, 6]
    adam_betas: tuple[float, float] = (0.5, 0.999)  # official main.py
    map_sigma: float = 4.0  # official test.py: gaussian_filter(anomaly_map, sigma=4)


def conv_bn_relu_down(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU(inplace=True))


class OCBE(nn.Module):
    """One-class bottleneck embedding: [F^1, F^2, F^3] -> a C_4-channel map at level 4's resolution."""

    def __init__(self, channels: Sequence[int], *, blocks: int = 3, kind: str = "bottleneck",
                 width_ratio: float = 0.5) -> None:
        super().__init__()
        c1, c2, c3, c4 = (int(c) for c in channels)
        self.down1 = nn.Sequential(conv_bn_relu_down(c1, c2), conv_bn_relu_down(c2, c3))
        self.down2 = conv_bn_relu_down(c2, c3)
        self.embed = res_stage(3 * c3, c4, int(blocks), resample="down", kind=kind, width_ratio=width_ratio)
        init_resnet_(self)

    def forward(self, feats: Sequence[Tensor]) -> Tensor:
        f1, f2, f3 = feats[:3]
        return self.embed(torch.cat([self.down1(f1), self.down2(f2), f3], dim=1))


def flattened_cosine_loss(teacher: Sequence[Tensor], student: Sequence[Tensor]) -> Tensor:
    """sum_k mean over the batch of 1 - cos(flatten(t_k), flatten(s_k)) (official ``loss_fucntion``)."""
    return sum((1.0 - F.cosine_similarity(t.flatten(1), s.flatten(1), dim=1)).mean()
               for t, s in zip(teacher, student, strict=True))


@register("rd4ad", display_name="RD4AD", paper="Deng & Li, CVPR 2022", paper_row=8)
class RD4AD(AnomalyModel):
    paper_backbone = "wide-resnet50"  # paper Sec. 4.1 and official main.py (wide_resnet50_2)
    frozen_network = "teacher"
    hyper_parameters = RD4ADParams

    def __init__(self, teacher: Encoder, bottleneck: OCBE, student: ReverseResNetDecoder, *,
                 adam_betas: Sequence[float] = RD4ADParams.adam_betas,
                 map_sigma: float = RD4ADParams.map_sigma) -> None:
        super().__init__()
        self.teacher, self.bottleneck, self.student = teacher, bottleneck, student
        self.adam_betas, self.map_sigma = tuple(adam_betas), map_sigma

    @classmethod
    def from_config(cls, cfg: ModelConfig) -> "RD4AD":
        p = read_hyper_parameters(RD4ADParams, cfg.method, cfg.params)
        teacher = build_encoder(cfg.encoder, weights=cfg.encoder_weights)
        block = {"kind": p.block, "width_ratio": p.width_ratio}
        bottleneck = OCBE(teacher.channels, blocks=p.ocbe_blocks, **block)
        student = ReverseResNetDecoder(teacher.channels, p.decoder_blocks, relu_out=ends_in_relu(cfg.encoder),
                                       **block)
        return cls(teacher, bottleneck, student, adam_betas=p.adam_betas, map_sigma=p.map_sigma)

    def frozen_features(self, x: Tensor) -> list[Tensor]:
        """The teacher's F^1..F^3 only (what a feature cache stores); its fourth stage, which RD4AD never
        compares (Wide-ResNet-50-2's layer4: 42 M of its 69 M parameters), is not computed."""
        with torch.no_grad():
            return list(self.teacher(x, stages=3))

    def features(self, x: Tensor, frozen: list[Tensor] | None = None) -> tuple[list[Tensor], list[Tensor]]:
        """([F^1, F^2, F^3] of the teacher, the same three rebuilt by the student); ``frozen``: the teacher's."""
        t = (self.frozen_features(x) if frozen is None else frozen)[:3]
        return t, self.student(self.bottleneck(t))

    def loss(self, x: Tensor, frozen: list[Tensor] | None = None) -> Tensor:
        return flattened_cosine_loss(*self.features(x, frozen))

    def frozen_prefixes(self) -> tuple[str, ...]:
        return ("teacher.",)

    def configure_optimizers(self, lr: float) -> list[torch.optim.Optimizer]:
        return [torch.optim.Adam(self.parameter_groups(lr), lr=lr, betas=self.adam_betas)]

    def anomaly_map(self, x: Tensor) -> Tensor:
        return anomaly_map(*self.features(x), size=tuple(x.shape[-2:]), sigma=self.map_sigma)
