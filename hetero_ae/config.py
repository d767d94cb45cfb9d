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

import ast
import dataclasses
import numbers
import re
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from .errors import ConfigError

T = TypeVar("T")


class Choice(StrEnum):
    """A setting with a fixed set of values; a value is stored as its plain string (configs, keys, JSON)."""

    @classmethod
    def check(cls, value: Any) -> str:
        """``value`` as a plain string when it names one of the choices, else ConfigError listing them."""
        try:
            return cls(value).value
        except ValueError:
            name = re.sub(r"(?<!^)(?=[A-Z])", "_", cls.__name__).lower()
            raise ConfigError(f"unknown {name} {value!r}; choose one of {', '.join(cls)}") from None


class Precision(Choice):
    """Of forward passes (``hetero_ae.model.precision``)."""

    FP32 = "fp32"  # float32, the paper's
    BF16 = "bf16"  # bfloat16 autocast


class Comparison(Choice):
    """What Hetero-AE's decoder is trained to match (Table IV)."""

    FEATURE = "feature"  # the encoder's features (Eq. 4-8), the paper's
    PIXEL = "pixel"  # the image, through a head on F_D^1


class Upsample(Choice):
    """Where each decoder stage upsamples."""

    LAST = "last"  # after its blocks (the paper's text)
    FIRST = "first"  # before them


class FeatureScale(Choice):
    """Of the compared features in Eq. 4 (``hetero_ae.methods.hetero_ae``; DESIGN 3.9)."""

    RAW = "raw"  # the paper's
    RMS = "rms"  # divided per stage by their RMS over the training normals
    AUTO = "auto"  # rms for encoders with signed features, raw for ReLU ones


class MapDistance(Choice):
    """Hetero-AE's per-stage anomaly map (``hetero_ae.model.anomaly_map``)."""

    COSINE = "cosine"  # Eq. 6, the paper's
    COSINE_MSE = "cosine+mse"  # beyond the paper: Eq. 4's per-pixel loss


PRECISIONS, COMPARISONS, UPSAMPLES = tuple(Precision), tuple(Comparison), tuple(Upsample)
FEATURE_SCALES, MAP_DISTANCES = tuple(FeatureScale), tuple(MapDistance)
# The names a configuration may use, kept here in the lowest layer so that the command line offers
# them without importing torch; the registries that implement them must hold exactly these
# (tests/test_config.py).


def registered_methods(folder: Path = Path(__file__).parent / "methods") -> tuple[str, ...]:
    """The names the method modules register (``@register("name")`` on a class in
    ``hetero_ae/methods/*.py``), read from their source with ``ast``: adding a method is adding its
    module, and listing the names imports no torch. Sorted."""
    names = []
    for path in sorted(folder.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ClassDef):
                names += [d.args[0].value for d in node.decorator_list
                          if isinstance(d, ast.Call) and getattr(d.func, "id", None) == "register"
                          and d.args and isinstance(d.args[0], ast.Constant)]
    return tuple(sorted(names))


METHOD_NAMES = registered_methods()


def add_method_name(name: str) -> None:
    """Make ``name`` a method configurations may use: called by ``methods.registry.register`` for a class
    registered from a module outside ``hetero_ae/methods`` (a plug-in, a test), which the source
    scan does not see."""
    global METHOD_NAMES
    if name not in METHOD_NAMES:
        METHOD_NAMES = tuple(sorted((*METHOD_NAMES, name)))
ENCODER_NAMES = ("resnet18", "wide-resnet50", "vgg16", "efficientnet-lite0", "hybrid", "transformer")
NO_ENCODER = "none"  # the encoder of a method that has none (the reconstruction baselines)
# Encoders whose feature maps follow a ReLU (ResNet stages, VGG max-pools of ReLUs): a student ending in a
# ReLU (RD4AD's, MKD's) can match them, and Hetero-AE compares them raw; EfficientNet-Lite0's linear MBConv
# outputs, the hybrid's and the Transformer's are signed (DESIGN 3.9).
POST_RELU_ENCODERS = frozenset({"resnet18", "wide-resnet50", "vgg16"})


def ends_in_relu(encoder: str) -> bool:
    """Whether ``encoder``'s four feature maps follow a ReLU (``POST_RELU_ENCODERS``)."""
    return encoder in POST_RELU_ENCODERS


def resolve_feature_scale(setting: str, encoder: str) -> str:
    """``setting``, with "auto" resolved: "rms" for encoders with signed features, "raw" for ReLU ones."""
    if setting != FeatureScale.AUTO:
        return setting
    return FeatureScale.RAW if ends_in_relu(encoder) else FeatureScale.RMS
DECODER_NAMES = ("hctn", "cnn", "transformer", "swin", "pvt", "cmt", "efficientnet", "resnet")
IMAGE_SIZES = (64, 1024)  # the smallest and largest input sizes, in px
EMBEDDING_SIZE = 256  # the paper's input size: where MSTB's position embeddings are stored (``ModelConfig``)


def check_image_size(size: int, *, multiple: int = 32, power_of_two: bool = False, what: str = "the encoders",
                     sizes: tuple[int, int] = IMAGE_SIZES) -> int:
    """``size``, or ConfigError naming the sizes that work: within ``sizes`` (a configuration's:
    ``IMAGE_SIZES``), a multiple of ``multiple`` and, with ``power_of_two``, a power of two.

    The one image-size check: every part that constrains the size says its rule through it (the
    encoders' stride 32 here, MSTB's patch grids in ``model.decoder``, the DCGAN-style networks'
    doublings in ``methods.dcgan``), and ``methods.build_model`` applies a method's before building it.
    """
    lo, hi = sizes
    ok = [s for s in range(lo, hi + 1) if s % multiple == 0 and (not power_of_two or s & (s - 1) == 0)]
    if isinstance(size, bool) or not isinstance(size, int) or size not in ok:
        shown = ", ".join(map(str, ok[:6])) + (", ..." if len(ok) > 6 else "")
        rule = "a power of two" if power_of_two else f"a multiple of {multiple}"
        raise ConfigError(f"image size {size!r} does not suit {what}: it must be {rule} in [{lo}, {hi}] ({shown})")
    return size


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
    # The input size at which MSTB's position embeddings are stored, and from which they are
    # interpolated to the grids of image_size (the paper trains at 256 px and says no more).
    embedding_size: int = EMBEDDING_SIZE

    KEY_SINCE: ClassVar[tuple[str, ...]] = ("feature_scale", "map_distance", "embedding_size")
    # How a trained model turns features into maps, not how it trains: runs that differ only in
    # these share one training (``trained_as``; ``experiment.run_experiment``).
    SCORING_FIELDS: ClassVar[tuple[str, ...]] = ("map_sigma", "map_distance")

    def trained_as(self) -> "ModelConfig":
        """This configuration with the scoring fields at their defaults: the one whose weights it uses."""
        defaults = {f.name: f.default for f in dataclasses.fields(self) if f.name in self.SCORING_FIELDS}
        return dataclasses.replace(self, **defaults)

    def __post_init__(self) -> None:
        check_image_size(self.image_size)
        check_image_size(self.embedding_size, what="the position embeddings' reference size")
        check_choice("method", self.method, METHOD_NAMES)
        check_choice("encoder", self.encoder, (*ENCODER_NAMES, NO_ENCODER))
        check_choice("decoder", self.decoder, DECODER_NAMES)
        Upsample.check(self.upsample)
        Comparison.check(self.comparison)
        FeatureScale.check(self.feature_scale)
        # "auto" is decided here, once, from the encoder, before the configuration is keyed or built
        object.__setattr__(self, "feature_scale", str(resolve_feature_scale(self.feature_scale, self.encoder)))
        MapDistance.check(self.map_distance)
        if not 0.0 <= self.alpha <= 1.0:
            raise ConfigError(f"alpha (Eq. 4's weight of the cosine term) must lie in [0, 1], got {self.alpha}")
        if self.map_sigma < 0 or self.encoder_lr_scale <= 0:
            raise ConfigError(f"map_sigma must be 0 or more and encoder_lr_scale above 0, got {self.map_sigma} and "
                              f"{self.encoder_lr_scale}")


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
    # Which weights a run with the rule keeps: "best", the epoch that last beat min_delta (what runs
    # before this setting kept), or "lowest", the epoch with the lowest held-out loss, whatever min_delta.
    keep: str = "best"
    # The learning rate on the plateau (hetero_ae.training.stopping): multiplied by lr_factor after every
    # lr_patience epochs without a held-out improvement, short of patience; 0 = a constant rate.
    lr_patience: int = 0
    lr_factor: float = 0.1

    KEY_SINCE: ClassVar[tuple[str, ...]] = ("precision", "patience", "min_delta", "keep", "lr_patience", "lr_factor")
    KEEP: ClassVar[tuple[str, ...]] = ("best", "lowest")

    def __post_init__(self) -> None:
        if (self.epochs, self.lr) == (0, 0.0):  # a method that learns no weight (AnomalyModel.trains_weights)
            pass
        elif isinstance(self.epochs, bool) or not isinstance(self.epochs, int) or self.epochs < 1:
            raise ConfigError(f"epochs must be a whole number of at least 1, got {self.epochs!r}")
        elif not self.lr > 0:
            raise ConfigError(f"lr must be above 0, got {self.lr}")
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ConfigError(f"batch_size must be a whole number of at least 1, got {self.batch_size!r}")
        for name in ("seed", "num_threads"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
                raise ConfigError(f"{name} must be a whole number of 0 or more, got {value!r}")
        if self.patience < 0 or self.min_delta < 0:
            raise ConfigError(f"patience and min_delta must be 0 or more, got {self.patience} and {self.min_delta}")
        Precision.check(self.precision)
        check_choice("keep", self.keep, self.KEEP)
        if isinstance(self.lr_patience, bool) or not isinstance(self.lr_patience, int) or self.lr_patience < 0:
            raise ConfigError(f"lr_patience must be a whole number of 0 or more, got {self.lr_patience!r}")
        if self.lr_patience and not 0 < self.lr_patience < self.patience:
            raise ConfigError(f"lr_patience ({self.lr_patience}) must be below patience ({self.patience}): "
                              "the rate is lowered on the way to the rule's stop, which needs the rule on")
        if not 0 < self.lr_factor < 1:
            raise ConfigError(f"lr_factor must be between 0 and 1, got {self.lr_factor}")


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
