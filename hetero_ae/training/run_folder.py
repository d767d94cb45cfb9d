"""A run folder's records: ``config.json`` (what was trained, on what, how) and ``history.json`` (its curves).

One schema for every run, whether ``hetero-ae train`` made it on a folder of images or an
experiment made it on a named dataset (``hetero_ae.experiment.runs``):

- ``dataset``: the dataset's name, or the image folder's path;
- ``model`` and ``train``: the ``ModelConfig`` and ``TrainConfig``, every field;
- ``val_fraction``, ``held_out_normals`` (where the held-out normals came from: a val split or
  a fraction of the training normals), ``train_images`` and ``val_images``;
- ``device``, ``compile`` and ``processes``: how it ran (not part of what it computes);
- anything a caller adds (``skipped`` unreadable images, ``training``: how the run ended,
  ``weights_from``: the run whose weights a rescoring run uses).

The checkpoint (``checkpoint.pt``, ``training.checkpoint``) sits beside them, and ``val_scores.json``:
the raw image scores of the held-out normals (paths and scores), from which ``score`` and ``export``
take their decision threshold, whichever way the run was made; writes are atomic.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..config import ModelConfig, TrainConfig, to_dict
from ..io import write_json
from . import distributed

CONFIG = "config.json"
HISTORY = "history.json"
VAL_SCORES = "val_scores.json"


def held_out_description(fraction: float, n_held_out: int) -> str:
    """Where held-out normals split off the training normals came from, as ``config.json`` says it."""
    return "none" if n_held_out == 0 else f"{fraction:.0%} of the training normals"


def write_run_config(folder: str | Path, *, dataset: str, model: ModelConfig, train: TrainConfig, val_fraction: float,
                     held_out_normals: str, train_images: int, val_images: int, device: str, compile: str | None,
                     **extra: Any) -> Path:
    """``folder/config.json`` in the one schema (module docstring)."""
    return write_json(Path(folder) / CONFIG, {
        "dataset": dataset, "model": to_dict(model), "train": to_dict(train), "val_fraction": val_fraction,
        "held_out_normals": held_out_normals, "train_images": train_images, "val_images": val_images,
        "processes": distributed.world_size(), "device": device, "compile": compile, **extra})


def read_run_config(folder: str | Path) -> dict[str, Any]:
    return json.loads((Path(folder) / CONFIG).read_text())


def read_history(folder: str | Path) -> list[dict[str, float]]:
    return json.loads((Path(folder) / HISTORY).read_text())


def write_history(folder: str | Path, history: list[dict[str, float]]) -> Path:
    """``folder/history.json``: one entry per epoch (loss terms, held-out ``val_`` terms, seconds)."""
    return write_json(Path(folder) / HISTORY, list(history))


def write_val_scores(folder: str | Path, paths: list[str], scores: Any) -> Path:
    """``folder/val_scores.json``: the held-out normals' paths and raw image scores (before any
    test-set normalisation), one per image."""
    return write_json(Path(folder) / VAL_SCORES, {"paths": list(paths), "scores": [float(s) for s in scores]})


def read_val_scores(folder: str | Path) -> list[float] | None:
    """The held-out normals' raw scores of a run folder, or None when it has none."""
    path = Path(folder) / VAL_SCORES
    return json.loads(path.read_text())["scores"] if path.is_file() else None
