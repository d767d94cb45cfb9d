"""The methods by name: Hetero-AE, the eight Table I baselines, and PatchCore beyond the paper (DESIGN 9).

The registry (``hetero_ae.methods.registry``) holds the table and the ``AnomalyModel`` interface
and imports no implementation; this module imports each method's module, which registers its
class, as timm's ``models/__init__`` does. Helpers shared by some methods (``dcgan``, ``ssim``)
register nothing. The names are ``config.METHOD_NAMES``, which the command line offers without
importing torch.
"""

from __future__ import annotations

from ..config import METHOD_NAMES, ModelConfig, check_choice, check_image_size
from . import ae, fanogan, ganomaly, hetero_ae, mkd, patchcore, rd4ad, salad, stfpm, vae  # noqa: F401  (registers them)
from .registry import METHODS, AnomalyModel


def available_methods() -> list[str]:
    """Every registered method's name, sorted."""
    return sorted(METHODS)


def method_class(name: str) -> type[AnomalyModel]:
    """The class registered as ``name``; ConfigError listing the names for an unknown one."""
    check_choice("method", name, METHOD_NAMES)
    return METHODS[name]


def build_model(cfg: ModelConfig) -> AnomalyModel:
    """A freshly initialised model of ``cfg.method`` (``hetero_ae.training.seed.build_seeded`` seeds first).

    ConfigError when ``cfg.image_size`` does not suit the model (``config.check_image_size`` with its
    ``size_multiple``), naming the sizes that do.
    """
    check_model_config(cfg)
    return method_class(cfg.method).from_config(cfg)


def check_model_config(cfg: ModelConfig) -> ModelConfig:
    """``cfg``, or ConfigError when its image size does not suit its method (``AnomalyModel.size_rule``),
    naming the sizes that do; cheap, for checking options before any work starts."""
    what = f"{cfg.method} with the {cfg.decoder} decoder" if cfg.method == "hetero-ae" else cfg.method
    check_image_size(cfg.image_size, what=what, **method_class(cfg.method).size_rule(cfg))
    return cfg
