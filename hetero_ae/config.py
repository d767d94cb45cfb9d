"""Run configuration: frozen dataclasses for the model and its training (DESIGN 7).

``ModelConfig.params`` holds a method's own hyper-parameters (latent size, loss weights,
optimiser): each method documents its keys and their values in its source paper, and the
profiles (``profiles/*.yaml``) set them. Defaults are the paper's protocol where it gives one (Sec. IV-B1: 256 px, batch 200,
Adam with learning rate 1e-4, 200 epochs, alpha = 0.7). A checkpoint stores both as plain
dicts; ``from_dict`` rejects keys it does not know rather than silently dropping them.

Convergence (DESIGN 3.10): ``TrainConfig.patience`` and ``min_delta`` stop a run when the
loss of its held-out normal images no longer improves (``hetero_ae.training.stopping``); ``epochs`` is
then a cap. The paper trains a fixed 200 epochs (patience 0, the default).

A run's cache key hashes ``key_dict`` of both: every field, except that fields added after
results were first cached (``KEY_SINCE``) are left out while they hold their default, so that
the runs cached before them keep their folders.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from .errors import ConfigError

T = TypeVar("T")
PRECISIONS = ("fp32", "bf16")  # float32, or bfloat16 autocast (hetero_ae.training.runtime)
# The names a configuration may use, kept here in the lowest layer so that the command line offers
# them without importing torch; the registries that implement them must hold exactly these
# (tests/test_config.py).
METHOD_NAMES = ("hetero-ae", "ae", "vae", "ganomaly", "f-anogan", "salad", "stfpm", "mkd", "rd4ad")
ENCODER_NAMES = ("resnet18", "wide-resnet50", "vgg16", "efficientnet-lite0", "hybrid", "transformer")
NO_ENCODER = "none"  # the encoder of a method that has none (the reconstruction baselines)
DECODER_NAMES = ("hctn", "cnn", "transformer", "swin", "pvt", "cmt", "efficientnet", "resnet")
COMPARISONS = ("feature", "pixel")  # what Hetero-AE's decoder is trained to match (Table IV)
UPSAMPLES = ("last", "first")  # where each decoder stage upsamples
FEATURE_SCALES = ("raw", "rms", "auto")  # of the compared features in Eq. 4 (hetero_ae.methods.hetero_ae)
MAP_DISTANCES = ("cosine", "cosine+mse")  # per-stage anomaly map (hetero_ae.model.anomaly_map)


@dataclass(frozen=True)
class ModelConfig:
    method: str = "hetero-ae"
    encoder: str = "resnet18"
    encoder_weights: str = "imagenet"  # "imagenet", "none" (random) or a file path
    decoder: str = "hctn"  # a name of model.decoder.decoders(): hctn | cnn | transformer | resnet | ...
    upsample: str = "last"  # where each decoder stage upsamples: "last" (paper's text) or "first"
    image_size: int = 256
    alpha: float = 0.7  # Eq. (4)
    finetune_encoder: bool = False  # EDC-style fine-tuning (DESIGN 3.2)
    encoder_lr_scale: float = 0.1  # encoder lr = lr * scale when fine-tuning
    map_sigma: float = 0.0  # Gaussian smoothing of the anomaly map (0 = none, as the paper)
    comparison: str = "feature"  # what the decoder is trained to match: "feature" (Eq. 4-8) or "pixel" (Table IV)
    params: dict[str, Any] = field(default_factory=dict)  # method-specific hyper-parameters (profiles)
    # Eq. 4's features divided per stage by one constant: "raw" (the paper's), "rms" (their RMS over the
    # training normals), "auto" (rms for encoders with signed features, raw for ReLU ones; DESIGN 3.9)
    feature_scale: str = "raw"
    map_distance: str = "cosine"  # per-stage map: "cosine" (Eq. 6) or "cosine+mse" (beyond the paper; anomaly_map)

    KEY_SINCE: ClassVar[tuple[str, ...]] = ("feature_scale", "map_distance")
    # How a trained model turns features into maps, not how it trains: runs that differ only in
    # these share one training (``trained_as``; ``experiment.run_experiment``).
    SCORING_FIELDS: ClassVar[tuple[str, ...]] = ("map_sigma", "map_distance")

    def trained_as(self) -> "ModelConfig":
        """This configuration with the scoring fields at their defaults: the one whose weights it uses."""
        defaults = {f.name: f.default for f in dataclasses.fields(self) if f.name in self.SCORING_FIELDS}
        return dataclasses.replace(self, **defaults)

    def __post_init__(self) -> None:
        if self.image_size % 32 or not 64 <= self.image_size <= 1024:
            raise ConfigError(f"image_size must be a multiple of 32 in [64, 1024], got {self.image_size}")
        check_choice("method", self.method, METHOD_NAMES)
        check_choice("encoder", self.encoder, (*ENCODER_NAMES, NO_ENCODER))
        check_choice("decoder", self.decoder, DECODER_NAMES)
        check_choice("upsample", self.upsample, UPSAMPLES)
        check_choice("comparison", self.comparison, COMPARISONS)
        check_choice("feature_scale", self.feature_scale, FEATURE_SCALES)
        check_choice("map_distance", self.map_distance, MAP_DISTANCES)


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 200
    batch_size: int = 200
    lr: float = 1e-4
    seed: int = 0
    num_threads: int = 0  # torch CPU threads; 0 = one per core (shared among torchrun's processes)
    precision: str = "fp32"  # "fp32" (the paper's) or "bf16" autocast (hetero_ae.training.runtime)
    # The stopping rule on the held-out normals' loss (hetero_ae.training.stopping); epochs is then the cap.
    patience: int = 0  # epochs without improvement before stopping; 0 = no rule, train all epochs
    min_delta: float = 0.0  # an improvement must exceed min_delta * |best held-out loss|

    KEY_SINCE: ClassVar[tuple[str, ...]] = ("precision", "patience", "min_delta")

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.lr <= 0:
            raise ConfigError(f"epochs, batch_size and lr must be positive: {self}")
        if self.patience < 0 or self.min_delta < 0:
            raise ConfigError(f"patience and min_delta must be 0 or more, got {self.patience} and {self.min_delta}")
        check_choice("precision", self.precision, PRECISIONS)


def check_choice(name: str, value: Any, choices: tuple[str, ...]) -> Any:
    """``value``, or ConfigError naming ``name`` and its valid ``choices`` unless it is one of them."""
    if value not in choices:
        raise ConfigError(f"unknown {name} {value!r}; choose one of {', '.join(choices)}")
    return value


def to_dict(cfg: Any) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def key_dict(cfg: Any) -> dict[str, Any]:
    """``to_dict(cfg)`` without the ``KEY_SINCE`` fields that hold their defaults (the cache key's view)."""
    defaults = {f.name: f.default for f in dataclasses.fields(cfg)}
    return {k: v for k, v in to_dict(cfg).items() if not (k in getattr(cfg, "KEY_SINCE", ()) and v == defaults[k])}


def from_dict(cls: type[T], data: dict[str, Any]) -> T:
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - known
    if unknown:
        raise ConfigError(f"unknown {cls.__name__} keys {sorted(unknown)}; known: {sorted(known)}")
    return cls(**data)
