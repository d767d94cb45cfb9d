"""The heterogeneous auto-encoder: CNN encoder + HCTN decoder (paper Sec. III-A/B, Fig. 2).

Training compares F_E^k with F_D^k for k = 1..3 through the feature-comparison loss
(Eq. 4-5); testing turns the same comparison into an anomaly map (Eq. 6-7) and its
maximum into the image score (Eq. 8).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..anomaly_map import anomaly_map
from ..config import ModelConfig
from ..loss import feature_comparison_loss
from ..registry import AnomalyModel, merge_params, register
from .decoder import HybridDecoder
from .encoder import Encoder, build_encoder


@register("hetero-ae")
class HeteroAE(AnomalyModel):
    paper_backbone = "resnet18"

    def __init__(self, encoder: Encoder, decoder: HybridDecoder, *, alpha: float = 0.7,
                 map_sigma: float = 0.0, encoder_lr_scale: float = 0.1) -> None:
        super().__init__()
        self.encoder, self.decoder = encoder, decoder
        self.alpha, self.map_sigma, self.encoder_lr_scale = alpha, map_sigma, encoder_lr_scale

    @classmethod
    def from_config(cls, cfg: ModelConfig) -> "HeteroAE":
        merge_params(cfg.method, {}, cfg.params)  # every Hetero-AE setting is a named ModelConfig field
        enc = build_encoder(cfg.encoder, weights=cfg.encoder_weights, finetune=cfg.finetune_encoder)
        dec = HybridDecoder(enc.channels, kind=cfg.decoder, strides=enc.strides)
        return cls(enc, dec, alpha=cfg.alpha, map_sigma=cfg.map_sigma, encoder_lr_scale=cfg.encoder_lr_scale)

    def features(self, x: Tensor) -> tuple[list[Tensor], list[Tensor]]:
        """([F_E^1, F_E^2, F_E^3], [F_D^1, F_D^2, F_D^3])."""
        if self.encoder.finetune and torch.is_grad_enabled():
            fe = self.encoder(x)
            targets = [f.detach() for f in fe[:3]]  # EDC: the encoder learns only through F_E^4
        else:
            with torch.no_grad():
                fe = self.encoder(x)
            targets = fe[:3]
        return targets, self.decoder(fe[3])

    def loss(self, x: Tensor) -> Tensor:
        enc, dec = self.features(x)
        return feature_comparison_loss(enc, dec, self.alpha)

    def frozen_prefixes(self) -> tuple[str, ...]:
        return () if self.encoder.finetune else ("encoder.",)

    def parameter_groups(self, lr: float) -> list[dict]:
        groups = [{"params": list(self.decoder.parameters()), "lr": lr}]
        if self.encoder.finetune:
            groups.append({"params": list(self.encoder.parameters()), "lr": lr * self.encoder_lr_scale})
        return groups

    def anomaly_map(self, x: Tensor) -> Tensor:
        enc, dec = self.features(x)
        return anomaly_map(enc, dec, size=tuple(x.shape[-2:]), sigma=self.map_sigma)
