"""Checkpoints: what is trained, the optimiser state and the run's configuration.

A checkpoint holds only tensors, numbers, strings, lists and dicts, so it loads with
``torch.load(weights_only=True)``. Parts a method keeps frozen (a pretrained encoder)
are not stored: they are rebuilt from the configuration and checked against the digest
recorded at training time, so a checkpoint cannot silently run on other encoder weights.
Writes are atomic (temporary file, then rename).
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import torch

from ..config import ModelConfig, TrainConfig, from_dict, to_dict
from ..errors import CheckpointError
from ..io import atomic_write
from ..methods.registry import AnomalyModel
from ..model.backbone import state_digest

FORMAT = "hetero-ae-checkpoint/1"
CHECKPOINT = "checkpoint.pt"  # the whole state of a run, every epoch (not committed)
WEIGHTS = "weights.pt"  # a finished run's trained weights alone (small: committed for the figures)


def _split_state(model: AnomalyModel) -> tuple[dict[str, torch.Tensor], str]:
    prefixes = model.frozen_prefixes()
    state = model.state_dict()
    frozen = {k: v for k, v in state.items() if prefixes and k.startswith(prefixes)}
    return {k: v for k, v in state.items() if k not in frozen}, state_digest(frozen)


def save_checkpoint(
    path: str | Path,
    model: AnomalyModel,
    optimizers: list[torch.optim.Optimizer],
    model_cfg: ModelConfig,
    train_cfg: TrainConfig,
    *,
    epoch: int,
    history: list[dict[str, float]],
    stopping: dict[str, Any] | None = None,
    best: dict[str, torch.Tensor] | None = None,
    stop: dict[str, Any] | None = None,
    feature_cache: str = "off",
) -> Path:
    """Write the run's state after ``epoch`` atomically.

    ``stopping``: the stopping rule's state; ``best``: the trained state of the best held-out
    epoch so far (while the run goes on); ``stop``: how the run ended, once it has (the model
    state is then the kept weights, and a resumed run returns them at once).
    """
    trained, digest = _split_state(model)
    payload = {
        "format": FORMAT,
        "model_config": to_dict(model_cfg),
        "train_config": to_dict(train_cfg),
        "epoch": epoch,
        "history": history,
        "stopping": stopping,
        "best": best,
        "stop": stop,
        "feature_cache": feature_cache,
        "model": {k: v.detach().cpu() for k, v in trained.items()},
        "frozen_digest": digest,
        "optimizers": [opt.state_dict() for opt in optimizers],
        "rng_state": torch.get_rng_state(),  # stochastic methods (sampling, GAN noise) resume exactly
    }
    return atomic_write(path, lambda p: torch.save(payload, p))


def save_weights(ckpt: dict[str, Any], path: str | Path) -> Path:
    """A finished checkpoint's trained weights and configuration, without the optimiser state that
    only resuming needs (a third of the size for Adam); ``load_model`` reads it like a checkpoint."""
    return atomic_write(path, lambda p: torch.save({**ckpt, "optimizers": [], "best": None}, p))


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path} is empty (0 bytes): not a checkpoint")
    if path.suffix.lower() == ".onnx":
        raise CheckpointError(f"{path} is an ONNX model, not a checkpoint: score with it by 'hetero-ae score --onnx'")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:  # torch's message suggests weights_only=False: wrong for a file that may be hostile
        raise CheckpointError(f"{path} holds objects other than tensors, numbers and strings (loading it could run "
                              "code), so it is refused: it is not a hetero-ae checkpoint") from None
    except Exception as e:  # truncated or corrupt file, another format
        reason = str(e).strip().splitlines()[0].split(". ")[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"{path} is not a readable checkpoint (damaged, or not written by hetero-ae: "
                              f"{reason})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a hetero-ae checkpoint (expected format {FORMAT!r})")
    return ckpt


def restore_model(model: AnomalyModel, ckpt: dict[str, Any], path: str | Path = "checkpoint") -> None:
    """Load the trained state onto ``model`` (built from the same config), checking the frozen parts."""
    _, digest = _split_state(model)
    if digest != ckpt["frozen_digest"]:
        raise CheckpointError(
            f"{path}: the frozen part of the model (encoder weights) differs from the one it was trained with"
        )
    missing, unexpected = model.load_state_dict(ckpt["model"], strict=False)
    prefixes = model.frozen_prefixes()
    missing = [k for k in missing if not (prefixes and k.startswith(prefixes))]
    if missing or unexpected:
        raise CheckpointError(f"{path} does not fit this model: missing {missing[:5]}, unexpected {unexpected[:5]}")


def load_model(path: str | Path) -> tuple[AnomalyModel, dict[str, Any]]:
    """Rebuild the model a checkpoint was trained as, in eval mode, and the checkpoint.

    The precision it was trained in (``trained_precision``) is the one to predict in.
    """
    ckpt = read_checkpoint(path)
    try:
        cfg = from_dict(ModelConfig, ckpt["model_config"])
        train_cfg = from_dict(TrainConfig, ckpt["train_config"])
    except (KeyError, ValueError, TypeError) as e:
        raise CheckpointError(f"{path}: unreadable configuration: {e}") from e
    from .seed import build_seeded

    model = build_seeded(cfg, train_cfg.seed)
    restore_model(model, ckpt, path)
    return model.eval(), ckpt


def trained_precision(ckpt: dict[str, Any]) -> str:
    """The precision a checkpoint's model was trained in ("fp32" for checkpoints older than the setting)."""
    return str(ckpt["train_config"].get("precision", "fp32"))
