"""The heterogeneous auto-encoder: CNN encoder + HCTN decoder (paper Sec. III-A/B, Fig. 2).

Training compares F_E^k with F_D^k for k = 1..3 through the feature-comparison loss
(Eq. 4-5); testing turns the same comparison into an anomaly map (Eq. 6-7) and its
maximum into the image score (Eq. 8).

One class serves every encoder/decoder pair of the ablations (Tables II-IV; named in
``hetero_ae.variants``): the encoder and decoder come from their registries by name.

``comparison`` selects what the decoder is trained to match (Table IV, Sec. IV-E2):
- ``"feature"`` (the paper's Hetero-AE): the multi-stage feature comparison above;
- ``"pixel"`` ("without feature comparison"): F_D^1 goes through an ``ImageHead`` back to
  the input size; the loss is the pixel-wise MSE against the (ImageNet-normalised) input and
  the map is the per-pixel squared error averaged over channels. The score is still the
  map's maximum (Eq. 8): only the comparison changes. The paper does not describe its
  pixel-comparison head; ours is the smallest one that brings stride-4 features to pixels.

``feature_distance`` (Fig. 6): the mean over pixels of the Eq. (7) map, i.e. of the summed,
resized per-stage 1 - cos maps before the maximum and before any optional smoothing. The
paper calls it "the distance calculated from the multi-stage feature distance" without a
formula; the mean is the reading that uses the whole map. Pixel-comparison models compare
no features and return None.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..anomaly_map import anomaly_map, image_score, pixel_error_map, smooth
from ..config import ModelConfig
from ..errors import ConfigError
from ..loss import feature_comparison_loss, pixel_loss
from ..registry import AnomalyModel, merge_params, register
from .decoder import build_decoder, conv_bn_relu
from .encoder import Encoder, build_encoder
from .reverse_resnet import ends_in_relu


class ImageHead(nn.Module):
    """F_D^1 (stride 4) -> a (B, 3, H, W) image, for the pixel comparison of Table IV.

    Two steps of (bilinear x2 upsampling, 3x3 Conv-BN-ReLU), halving the width each time
    (C_1 -> C_1/2 -> C_1/4, at least 8 channels), then a linear 1x1 convolution to 3 channels:
    the inputs are ImageNet-normalised, so the output must be signed and unbounded.
    """

    def __init__(self, cin: int) -> None:
        super().__init__()
        w1, w2 = max(cin // 2, 8), max(cin // 4, 8)
        self.steps = nn.ModuleList([conv_bn_relu(cin, w1, 3), conv_bn_relu(w1, w2, 3)])
        self.out = nn.Conv2d(w2, 3, kernel_size=1)

    def forward(self, f1: Tensor) -> Tensor:
        x = f1
        for step in self.steps:
            x = step(F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False))
        return self.out(x)


@register("hetero-ae")
class HeteroAE(AnomalyModel):
    paper_backbone = "resnet18"

    def __init__(self, encoder: Encoder, decoder: nn.Module, *, alpha: float = 0.7, map_sigma: float = 0.0,
                 encoder_lr_scale: float = 0.1, comparison: str = "feature") -> None:
        super().__init__()
        if comparison not in COMPARISONS:
            raise ConfigError(f"comparison must be one of {sorted(COMPARISONS)}, got {comparison!r}")
        self.encoder, self.decoder = encoder, decoder
        self.alpha, self.map_sigma, self.encoder_lr_scale = alpha, map_sigma, encoder_lr_scale
        self.comparison = comparison
        rule = COMPARISONS[comparison]
        self.head = None if rule.head is None else rule.head(encoder.channels[0])

    @classmethod
    def from_config(cls, cfg: ModelConfig) -> "HeteroAE":
        merge_params(cfg.method, {}, cfg.params)  # every Hetero-AE setting is a named ModelConfig field
        enc = build_encoder(cfg.encoder, weights=cfg.encoder_weights, finetune=cfg.finetune_encoder)
        dec = build_decoder(cfg.decoder, enc.channels, strides=enc.strides, upsample=cfg.upsample,
                            relu_out=ends_in_relu(cfg.encoder))
        return cls(enc, dec, alpha=cfg.alpha, map_sigma=cfg.map_sigma, encoder_lr_scale=cfg.encoder_lr_scale,
                   comparison=cfg.comparison)

    def features(self, x: Tensor) -> tuple[list[Tensor], list[Tensor]]:
        """([F_E^1, F_E^2, F_E^3], [F_D^1, F_D^2, F_D^3])."""
        if self.encoder.finetune and torch.is_grad_enabled():
            fe = self.encoder(x)
            targets = [f.detach() for f in fe[:3]]  # EDC: the encoder learns only through F_E^4
        else:
            with torch.no_grad():
                fe = self.encoder(x)
            targets = fe[:3]
        dec = self.decoder(fe[3])
        assert [d.shape for d in dec] == [t.shape for t in targets], (
            f"decoder outputs {[tuple(d.shape) for d in dec]} do not match encoder features "
            f"{[tuple(t.shape) for t in targets]}"
        )
        return targets, dec

    def reconstruct(self, x: Tensor) -> Tensor:
        """The image the pixel-comparison model rebuilds from F_D^1, shaped like ``x``."""
        assert self.head is not None, f"reconstruct() needs comparison='pixel', this model uses {self.comparison!r}"
        recon = self.head(self.features(x)[1][0])
        assert recon.shape == x.shape, f"reconstruction {tuple(recon.shape)} differs from input {tuple(x.shape)}"
        return recon

    def loss(self, x: Tensor) -> Tensor:
        return COMPARISONS[self.comparison].loss(self, x)

    def frozen_prefixes(self) -> tuple[str, ...]:
        return () if self.encoder.finetune else ("encoder.",)

    def parameter_groups(self, lr: float) -> list[dict]:
        trained = [p for name, p in self.named_parameters() if not name.startswith("encoder.")]
        groups = [{"params": trained, "lr": lr}]
        if self.encoder.finetune:
            groups.append({"params": list(self.encoder.parameters()), "lr": lr * self.encoder_lr_scale})
        return groups

    def raw_map(self, x: Tensor) -> Tensor:
        """(B, H, W) anomaly map before the optional smoothing: Eq. (7), or the pixel error."""
        return COMPARISONS[self.comparison].raw_map(self, x)

    def anomaly_map(self, x: Tensor) -> Tensor:
        return smooth(self.raw_map(x), self.map_sigma)

    def predict_with_distance(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor | None]:
        raw = self.raw_map(x)
        maps = smooth(raw, self.map_sigma)
        distance = raw.flatten(1).mean(dim=1) if COMPARISONS[self.comparison].compares_features else None
        return maps, image_score(maps), distance

    def feature_distance(self, x: Tensor) -> Tensor | None:
        """Mean over pixels of the Eq. (7) map, (B,) (Fig. 6); None for the pixel comparison."""
        return self.predict_with_distance(x)[2]


@dataclass(frozen=True)
class Comparison:
    """What the decoder's output is compared with (Table IV): loss, raw map, and the head it adds on F_D^1."""

    loss: Callable[[HeteroAE, Tensor], Tensor]
    raw_map: Callable[[HeteroAE, Tensor], Tensor]
    head: Callable[[int], nn.Module] | None
    compares_features: bool  # whether raw_map is a feature distance (Fig. 6)


def _feature_loss(model: HeteroAE, x: Tensor) -> Tensor:
    enc, dec = model.features(x)
    return feature_comparison_loss(enc, dec, model.alpha)


def _feature_map(model: HeteroAE, x: Tensor) -> Tensor:
    enc, dec = model.features(x)
    return anomaly_map(enc, dec, size=tuple(x.shape[-2:]))


def _pixel_loss(model: HeteroAE, x: Tensor) -> Tensor:
    return pixel_loss(model.reconstruct(x), x)


def _pixel_map(model: HeteroAE, x: Tensor) -> Tensor:
    return pixel_error_map(model.reconstruct(x), x)


COMPARISONS: dict[str, Comparison] = {
    "feature": Comparison(loss=_feature_loss, raw_map=_feature_map, head=None, compares_features=True),
    "pixel": Comparison(loss=_pixel_loss, raw_map=_pixel_map, head=ImageHead, compares_features=False),
}
