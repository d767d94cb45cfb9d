"""STFPM [38]: G. Wang, S. Han, E. Ding, D. Huang, "Student-Teacher Feature Pyramid Matching for
Anomaly Detection", BMVC 2021. Official code: github.com/gdwang08/STFPM (``main.py``).

A teacher pretrained on ImageNet (ResNet-18 in the paper) is frozen; the student has the same
architecture, randomly initialised, and learns to reproduce the teacher's first three feature
levels (ResNet's layer1..layer3, strides 4, 8, 16) on normal images. At every level and pixel
both feature vectors are L2-normalised over channels.

- loss = sum_l alpha_l * 1/(h_l w_l) * sum_{i,j} ||t_hat(i,j) - s_hat(i,j)||^2, alpha_l = 1, averaged
  over the batch. The paper writes a per-pixel 1/2 in front of the squared distance; the official
  code (where the learning rate 0.4 was tuned) has none, and we follow the code.
- map = prod_l Upsample(1/2 ||t_hat - s_hat||^2) (the paper's per-level map, bilinear to the input,
  multiplied across levels); no smoothing; score = the map's maximum (the official code's
  image score, ``scores.max(-1).max(-1)``).
- SGD with momentum 0.9 and weight decay 1e-4 (lr 0.4 is the trainer's, from the profile).

Departures: the official test code multiplies the level maps at the stride-4 resolution (64x64)
and then resizes the product to the image; we resize every level to the input first, as the
paper's equation does (the two differ only by interpolation). The student is
``build_encoder(cfg.encoder, weights="none", mode="scratch")``: the teacher's architecture with
its own random initialisation and ordinary BatchNorm training; its fourth level is computed but
unused (its weights get no gradient, as in the official code, which keeps ResNet's layer4 too).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from ..config import ModelConfig
from ..model.anomaly_map import smooth
from ..model.encoder import Encoder, build_encoder
from .registry import AnomalyModel, read_hyper_parameters, register


@dataclass(frozen=True)
class STFPMParams:
    """STFPM's hyper-parameters (``ModelConfig.params``); the defaults are the paper's and official code's."""

    # alpha_l = 1 for layer1..layer3 (paper Eq. 3, official code); one weight per compared level, 1 to 4
    level_weights: tuple[float, ...] = (1.0, 1.0, 1.0)
    momentum: float = 0.9  # official code: SGD(lr=0.4, momentum=0.9, weight_decay=1e-4)
    weight_decay: float = 1e-4  # official code
    map_sigma: float = 0.0  # neither paper nor official code smooths the map


def normalized_distance(t: Tensor, s: Tensor) -> Tensor:
    """||t_hat - s_hat||^2 per pixel, with features L2-normalised over channels: (B, H, W)."""
    return (F.normalize(t, dim=1) - F.normalize(s, dim=1)).pow(2).sum(dim=1)


def stfpm_loss(teacher: Sequence[Tensor], student: Sequence[Tensor], weights: Sequence[float]) -> Tensor:
    """sum_l alpha_l * mean over batch and pixels of ||t_hat - s_hat||^2 (official code)."""
    return sum(w * normalized_distance(t, s).mean() for w, t, s in zip(weights, teacher, student, strict=True))


def stfpm_map(teacher: Sequence[Tensor], student: Sequence[Tensor], size: tuple[int, int]) -> Tensor:
    """prod_l Upsample(1/2 ||t_hat - s_hat||^2), shape (B, *size)."""
    total = 1.0
    for t, s in zip(teacher, student, strict=True):
        m = 0.5 * normalized_distance(t, s).unsqueeze(1)
        total = total * F.interpolate(m, size=size, mode="bilinear", align_corners=False).squeeze(1)
    return total


@register("stfpm", display_name="STFPM", paper="Wang et al., BMVC 2021", paper_row=6)
class STFPM(AnomalyModel):
    paper_backbone = "resnet18"  # paper Sec. 4.1 and official code (ResNet18_MS3)
    frozen_network = "teacher"
    hyper_parameters = STFPMParams

    def __init__(self, teacher: Encoder, student: Encoder, *,
                 level_weights: Sequence[float] = STFPMParams.level_weights, momentum: float = STFPMParams.momentum,
                 weight_decay: float = STFPMParams.weight_decay, map_sigma: float = STFPMParams.map_sigma) -> None:
        super().__init__()
        if type(student) is not type(teacher):
            raise ValueError(f"STFPM's student must be the teacher's architecture, got {type(student).__name__}")
        if not 1 <= len(level_weights) <= 4:
            raise ValueError(f"level_weights must weight 1 to 4 levels, got {list(level_weights)}")
        self.teacher, self.student = teacher, student
        self.level_weights = tuple(float(w) for w in level_weights)
        self.momentum, self.weight_decay, self.map_sigma = momentum, weight_decay, map_sigma
        self.leaves_parameters_unused = len(self.level_weights) < 4  # the student's unused deeper levels

    @classmethod
    def from_config(cls, cfg: ModelConfig) -> "STFPM":
        p = read_hyper_parameters(STFPMParams, cfg.method, cfg.params)
        teacher = build_encoder(cfg.encoder, weights=cfg.encoder_weights)
        student = build_encoder(cfg.encoder, weights="none", mode="scratch")
        return cls(teacher, student, level_weights=p.level_weights, momentum=p.momentum,
                   weight_decay=p.weight_decay, map_sigma=p.map_sigma)

    def frozen_features(self, x: Tensor) -> list[Tensor]:
        """The teacher's compared levels only (what a feature cache stores)."""
        return super().frozen_features(x)[: len(self.level_weights)]

    def features(self, x: Tensor, frozen: list[Tensor] | None = None) -> tuple[list[Tensor], list[Tensor]]:
        """(teacher, student) features of the compared levels; ``frozen``: the teacher's, computed earlier."""
        n = len(self.level_weights)
        t = (self.frozen_features(x) if frozen is None else frozen)[:n]
        return t, self.student(x)[:n]

    def loss(self, x: Tensor, frozen: list[Tensor] | None = None) -> Tensor:
        return stfpm_loss(*self.features(x, frozen), self.level_weights)

    def frozen_prefixes(self) -> tuple[str, ...]:
        return ("teacher.",)

    def configure_optimizers(self, lr: float) -> list[torch.optim.Optimizer]:
        return [torch.optim.SGD(self.parameter_groups(lr), lr=lr, momentum=self.momentum,
                                weight_decay=self.weight_decay)]

    def anomaly_map(self, x: Tensor) -> Tensor:
        return smooth(stfpm_map(*self.features(x), size=tuple(x.shape[-2:])), self.map_sigma)
