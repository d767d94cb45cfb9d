"""The nine methods by name: the one module that imports every implementation (DESIGN 9).

The registry (``hetero_ae.registry``) holds the table and the ``AnomalyModel`` interface and
imports no implementation; importing ``hetero_ae.model`` (Hetero-AE) and ``hetero_ae.baselines``
(the eight Table I baselines) here registers them, as timm's ``models/__init__`` does. The
names are ``config.METHOD_NAMES``, which the command line offers without importing torch.
"""

from __future__ import annotations

from . import baselines, model  # noqa: F401  (importing registers the methods)
from .config import METHOD_NAMES, ModelConfig, check_choice
from .registry import METHODS, AnomalyModel


def available_methods() -> list[str]:
    """Every registered method's name, sorted."""
    return sorted(METHODS)


def method_class(name: str) -> type[AnomalyModel]:
    """The class registered as ``name``; ConfigError listing the names for an unknown one."""
    check_choice("method", name, METHOD_NAMES)
    return METHODS[name]


def build_model(cfg: ModelConfig) -> AnomalyModel:
    """A freshly initialised model of ``cfg.method`` (``hetero_ae.seed.build_seeded`` seeds first)."""
    return method_class(cfg.method).from_config(cfg)
