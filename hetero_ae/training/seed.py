"""Seeding, so that a model built from (config, seed) is the same model every time."""

from __future__ import annotations

import random

import numpy as np
import torch

from ..config import ModelConfig
from ..methods import build_model
from ..methods.registry import AnomalyModel


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def build_seeded(cfg: ModelConfig, seed: int) -> AnomalyModel:
    """Seed, then build: randomly initialised parts (and a random encoder) are reproducible."""
    seed_everything(seed)
    return build_model(cfg)
