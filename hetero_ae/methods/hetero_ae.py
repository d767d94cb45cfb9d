"""The heterogeneous auto-encoder: CNN encoder + HCTN decoder (paper Sec. III-A/B, Fig. 2). The paper:
S. Lu et al., "Anomaly Detection for Medical Images Using Heterogeneous Auto-Encoder", IEEE TIP 2024.

Training compares F_E^k with F_D^k for k = 1..3 through the feature-comparison loss
(Eq. 4-5); testing turns the same comparison into an anomaly map (Eq. 6-7) and its
maximum into the image score (Eq. 8).

One class serves every encoder/decoder pair of the ablations (Tables II-IV; named in
``hetero_ae.experiment.variants``): the encoder and decoder come from their registries by name.

``comparison`` selects what the decoder is trained to match (Table IV, Sec. IV-E2):
- ``"feature"`` (the paper's Hetero-AE): the multi-stage feature comparison above;
- ``"pixel"`` ("without feature comparison"): F_D^1 goes through an ``ImageHead`` back to
  the input size; the loss is the pixel-wise MSE against the (ImageNet-normalised) input and
  the map is the per-pixel squared error averaged over channels. The score is still the
  map's maximum (Eq. 8): only the comparison changes. The paper does not describe its
  pixel-comparison head; ours is the smallest one that brings stride-4 features to pixels.

Feature scale (DESIGN 3.9; ``ModelConfig.feature_scale``). Eq. 4 adds a cosine, at most 1 in
size per stage, to an MSE whose size is the features' own. ResNet-18's compared features follow
a ReLU and are of order one; EfficientNet-Lite0's are signed with an RMS near 10, which makes the
loss MSE alone. ``"rms"`` divides each stage's encoder *and* decoder features by one constant,
the RMS of F_E^k over the training normals (``fit_statistics``, before the first epoch, stored
in the checkpoint as the buffer ``feature_scale``). The cosine is unchanged by it, so Eq. 6-8
are too; only the balance of Eq. 4 moves. ``"raw"`` is the paper's; ``"auto"`` picks rms for
encoders with signed features and raw for ReLU ones; ``ModelConfig`` decides it, once, from the
encoder (``config.resolve_feature_scale``, ``config.ends_in_relu``), so a model is never built with it.

The frozen encoder's features depend on the image alone, so training may compute them once per
run (``frozen_network = "encoder"``, ``hetero_ae.training.feature_cache``) and pass them as ``frozen``;
fine-tuning (``finetune_encoder``) always runs the encoder.

``map_distance`` (beyond the paper; ``hetero_ae.model.anomaly_map``): ``"cosine"`` is Eq. 6;
``"cosine+mse"`` adds the per-pixel MSE of the (scaled) features, which sees a change of
magnitude that keeps the direction.

``feature_distance`` (Fig. 6): the mean over pixels of the Eq. (7) map, i.e. of the summed,
resized per-stage maps (1 - cos, or the ``map_distance`` chosen) before the maximum and before
any optional smoothing. The
paper calls it "the distance calculated from the multi-stage feature distance" without a
formula; the mean is the reading that uses the whole map. Pixel-comparison models compare
no features and return None.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..config import Comparison, FeatureScale, MapDistance, ModelConfig, check_choice, ends_in_relu
from ..errors import ConfigError
from ..model.anomaly_map import anomaly_map, image_score, pixel_error_map, smooth
from ..model.decoder import build_decoder, conv_bn_relu, decoder_size_multiple
from ..model.encoder import ENCODERS, Encoder, build_encoder
from ..model.loss import feature_comparison_terms, pixel_loss
from .registry import AnomalyModel, read_hyper_parameters, register


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


@dataclass(frozen=True)
class HeteroAEParams:
    """None: every Hetero-AE setting is a named ``ModelConfig`` field (alpha, decoder, map_sigma, ...)."""


@register("hetero-ae", display_name="Hetero-AE", paper="Lu et al., IEEE TIP 2024", paper_row=9)
class HeteroAE(AnomalyModel):
    paper_backbone = "resnet18"
    map_sigma_in = "model"  # ModelConfig.map_sigma (0: the paper smooths nothing)
    config_fields = ("decoder", "upsample", "alpha", "finetune_encoder", "encoder_lr_scale", "map_sigma",
                     "comparison", "feature_scale", "map_distance", "embedding_size")
    frozen_network = "encoder"

    def __init__(self, encoder: Encoder, decoder: nn.Module, *, alpha: float = 0.7, map_sigma: float = 0.0,
                 encoder_lr_scale: float = 0.1, comparison: str = "feature", feature_scale: str = "raw",
                 map_distance: str = "cosine") -> None:
        super().__init__()
        Comparison.check(comparison)
        if FeatureScale.check(feature_scale) == FeatureScale.AUTO:
            raise ConfigError(f"feature_scale must be 'raw' or 'rms' (resolve 'auto' first), got {feature_scale!r}")
        self.encoder, self.decoder = encoder, decoder
        self.alpha, self.map_sigma, self.encoder_lr_scale = alpha, map_sigma, encoder_lr_scale
        MapDistance.check(map_distance)
        self.comparison, self.map_distance = comparison, map_distance
        rule = COMPARISONS[comparison]
        self.head = None if rule.head is None else rule.head(encoder.channels[0])
        if feature_scale == "rms":  # a buffer only then: raw models keep the state dict they always had
            self.register_buffer("feature_scale", torch.ones(3))

    @classmethod
    def from_config(cls, cfg: ModelConfig) -> "HeteroAE":
        read_hyper_parameters(HeteroAEParams, cfg.method, cfg.params)  # rejects any: its settings are ModelConfig's
        enc = build_encoder(cfg.encoder, weights=cfg.encoder_weights, finetune=cfg.finetune_encoder,
                            embedding_size=cfg.embedding_size)
        dec = build_decoder(cfg.decoder, enc.channels, strides=enc.strides, upsample=cfg.upsample,
                            relu_out=ends_in_relu(cfg.encoder), embedding_size=cfg.embedding_size)
        return cls(enc, dec, alpha=cfg.alpha, map_sigma=cfg.map_sigma, encoder_lr_scale=cfg.encoder_lr_scale,
                   comparison=cfg.comparison, feature_scale=cfg.feature_scale,
                   map_distance=cfg.map_distance)

    @classmethod
    def size_rule(cls, cfg: ModelConfig) -> dict[str, Any]:
        """Multiples of the encoder's and the decoder's rules (HCTN's MSTB patches: 64)."""
        check_choice("encoder", cfg.encoder, tuple(sorted(ENCODERS)))
        encoder = ENCODERS[cfg.encoder]
        return {"multiple": math.lcm(encoder.size_multiple, decoder_size_multiple(cfg.decoder, encoder.strides,
                                                                                 cfg.upsample))}

    @property
    def caches_features(self) -> bool:
        return not self.encoder.finetune

    def fit_statistics(self, frozen_batches: Iterable[list[Tensor]]) -> None:
        """``feature_scale`` = the RMS of each compared stage F_E^1..3 over all the batches (rms mode only)."""
        if "feature_scale" not in self._buffers:
            return
        sums, count = torch.zeros(3, dtype=torch.float64), torch.zeros(3, dtype=torch.float64)
        for fe in frozen_batches:
            for k in range(3):
                sums[k] += fe[k].double().pow(2).sum().cpu()
                count[k] += fe[k].numel()
        assert count.min() > 0, "fit_statistics needs at least one batch"
        self.feature_scale.copy_((sums / count).sqrt().clamp_min(1e-12).float())

    def features(self, x: Tensor, frozen: list[Tensor] | None = None) -> tuple[list[Tensor], list[Tensor]]:
        """([F_E^1, F_E^2, F_E^3], [F_D^1, F_D^2, F_D^3]), both divided by ``feature_scale`` in rms mode.

        ``frozen``: the encoder's four maps of ``x``, computed earlier (a frozen encoder only).
        """
        if frozen is not None:
            assert not self.encoder.finetune, "a fine-tuned encoder's features cannot be cached"
            fe, targets = frozen, frozen[:3]
        elif self.encoder.finetune and torch.is_grad_enabled():
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
        if "feature_scale" in self._buffers:
            targets = [t / s for t, s in zip(targets, self.feature_scale)]
            dec = [d / s for d, s in zip(dec, self.feature_scale)]
        return list(targets), list(dec)

    def reconstruct(self, x: Tensor, frozen: list[Tensor] | None = None) -> Tensor:
        """The image the pixel-comparison model rebuilds from F_D^1, shaped like ``x``."""
        assert self.head is not None, f"reconstruct() needs comparison='pixel', this model uses {self.comparison!r}"
        recon = self.head(self.features(x, frozen)[1][0])
        assert recon.shape == x.shape, f"reconstruction {tuple(recon.shape)} differs from input {tuple(x.shape)}"
        return recon

    def loss_terms(self, x: Tensor, frozen: list[Tensor] | None = None) -> dict[str, Tensor]:
        return COMPARISONS[self.comparison].loss(self, x, frozen)

    def loss(self, x: Tensor, frozen: list[Tensor] | None = None) -> Tensor:
        return self.loss_terms(x, frozen)["loss"]

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

    @property
    def has_feature_distance(self) -> bool:
        return COMPARISONS[self.comparison].compares_features

    def feature_distance(self, x: Tensor) -> Tensor | None:
        """Mean over pixels of the Eq. (7) map, (B,) (Fig. 6); None for the pixel comparison."""
        return self.predict_with_distance(x)[2]


@dataclass(frozen=True)
class ComparisonRule:
    """What the decoder's output is compared with (Table IV): loss, raw map, and the head it adds on F_D^1."""

    loss: Callable[[HeteroAE, Tensor, list[Tensor] | None], dict[str, Tensor]]  # loss terms, "loss" among them
    raw_map: Callable[[HeteroAE, Tensor], Tensor]
    head: Callable[[int], nn.Module] | None
    compares_features: bool  # whether raw_map is a feature distance (Fig. 6)


def _feature_loss(model: HeteroAE, x: Tensor, frozen: list[Tensor] | None) -> dict[str, Tensor]:
    enc, dec = model.features(x, frozen)
    return feature_comparison_terms(enc, dec, model.alpha)


def _feature_map(model: HeteroAE, x: Tensor) -> Tensor:
    enc, dec = model.features(x)
    return anomaly_map(enc, dec, size=tuple(x.shape[-2:]), distance=model.map_distance, alpha=model.alpha)


def _pixel_loss(model: HeteroAE, x: Tensor, frozen: list[Tensor] | None) -> dict[str, Tensor]:
    return {"loss": pixel_loss(model.reconstruct(x, frozen), x)}


def _pixel_map(model: HeteroAE, x: Tensor) -> Tensor:
    return pixel_error_map(model.reconstruct(x), x)


COMPARISONS: dict[str, ComparisonRule] = {
    "feature": ComparisonRule(loss=_feature_loss, raw_map=_feature_map, head=None, compares_features=True),
    "pixel": ComparisonRule(loss=_pixel_loss, raw_map=_pixel_map, head=ImageHead, compares_features=False),
}
