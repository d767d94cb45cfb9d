"""What every encoder is: four feature maps at strides 4, 8, 16, 32 (paper Sec. III-B1), frozen,
fine-tuned or trained from scratch, and how its weights are read from a file and fingerprinted.

The concrete encoders (``encoder.py``: torchvision's and EfficientNet-Lite0; ``hybrid_encoder.py``:
the ablation encoders of Tables II and IV) subclass ``Encoder``; ``state_digest`` is also what a
checkpoint records of a model's frozen part (``hetero_ae.training.checkpoint``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor, nn

from ..errors import UserError


def state_digest(state: Mapping[str, Tensor]) -> str:
    """A short sha256 of tensors by name: equal exactly when the names and the bytes are equal."""
    h = hashlib.sha256()
    for name in sorted(state):
        h.update(name.encode())
        h.update(state[name].detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


class WeightsNotFoundError(UserError, FileNotFoundError):
    """Pretrained weights were asked for but are not on this machine."""


class Encoder(nn.Module):
    """A CNN returning four feature maps at strides 4, 8, 16, 32.

    ``mode``: "frozen" (no gradients, BatchNorm in eval), "finetune" (trainable, BatchNorm
    statistics frozen; EDC) or "scratch" (an ordinary trainable network, e.g. a student).
    Subclasses set ``channels`` and implement ``features`` (the four maps) and ``classify``
    (ImageNet logits, for the weight check).
    """

    channels: tuple[int, int, int, int]
    strides: tuple[int, int, int, int] = (4, 8, 16, 32)
    size_multiple: int = 32  # the input sizes it takes are multiples of this (its total stride)
    takes_embedding_size: bool = False  # whether its constructor takes ``embedding_size`` (MSTB-based encoders)
    MODES = ("frozen", "finetune", "scratch")

    def __init__(self, *, mode: str = "frozen") -> None:
        super().__init__()
        if mode not in self.MODES:
            raise ValueError(f"encoder mode must be one of {self.MODES}, got {mode!r}")
        self.mode = mode

    @property
    def finetune(self) -> bool:
        return self.mode == "finetune"

    def freeze(self) -> "Encoder":
        for p in self.parameters():
            p.requires_grad_(self.mode != "frozen")
        return self.train(False)

    def train(self, mode: bool = True) -> "Encoder":
        # Frozen and fine-tuned encoders keep BatchNorm in eval mode; a scratch network trains normally.
        super().train(mode and self.mode == "scratch")
        return self

    def features(self, x: Tensor, stages: int = 4) -> list[Tensor]:
        """The first ``stages`` of the four maps, computing no more of the network than they need."""
        raise NotImplementedError

    def classify(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def forward(self, x: Tensor, stages: int = 4) -> list[Tensor]:
        """(B, 3, H, W) -> the first ``stages`` feature maps (B, C_k, H / s_k, W / s_k), k = 1..stages."""
        assert x.ndim == 4 and x.shape[1] == 3, f"expected (B, 3, H, W), got {tuple(x.shape)}"
        assert x.shape[-1] % 32 == 0 and x.shape[-2] % 32 == 0, (
            f"image size must be a multiple of 32, got {tuple(x.shape[-2:])}"
        )
        assert 1 <= stages <= 4, f"an encoder has stages 1 to 4, got {stages}"
        feats = self.features(x, stages)
        assert [f.shape[1] for f in feats] == list(self.channels[:stages])
        return feats

    def digest(self) -> str:
        """A short hash of the weights (the checkpoint check of a frozen encoder uses the same hash)."""
        return state_digest(self.state_dict())


def existing_file(path: str) -> Path:
    """``path`` (``~`` expanded) when it is a file, else WeightsNotFoundError."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise WeightsNotFoundError(f"encoder weights file not found: {p}")
    return p


def load_state(path: Path) -> dict[str, Tensor]:
    """A state dict saved by torch (or a checkpoint holding one under ``state_dict``), on the CPU."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    return state
