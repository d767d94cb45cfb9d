"""The methods by name: Hetero-AE, the eight Table I baselines, and PatchCore beyond the paper (DESIGN 9).

The registry (``hetero_ae.methods.registry``) holds the table and the ``AnomalyModel`` interface
and imports no implementation; this module imports every module of this package, and each
method's module registers its class where it is defined (``@register("name")``), as timm's models
do. Helpers shared by some methods (``dcgan``, ``ssim``) register nothing. Adding a method is
adding its module: no list names it here, and ``config.METHOD_NAMES`` (what the command line
offers without importing torch) reads the same decorators from the modules' source.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

from ..config import ModelConfig, check_choice, check_image_size
from ..errors import ConfigError
from .registry import METHODS, AnomalyModel, read_hyper_parameters

for _module in pkgutil.iter_modules(__path__):  # each method's module registers its class
    importlib.import_module(f"{__name__}.{_module.name}")


def table_order() -> list[str]:
    """The registered methods in the paper's Table I order (``paper_row``), those beyond the paper after
    them by name."""
    return sorted(METHODS, key=lambda m: (METHODS[m].paper_row is None, METHODS[m].paper_row or 0, m))


def in_paper(name: str) -> bool:
    """Whether method ``name`` has a row in the paper's Table I (``paper_row``); False for one beyond the
    paper (PatchCore) and for a name that is not registered."""
    return name in METHODS and METHODS[name].paper_row is not None


def available_methods() -> list[str]:
    """Every registered method's name, sorted."""
    return sorted(METHODS)


def method_class(name: str) -> type[AnomalyModel]:
    """The class registered as ``name``; ConfigError listing the names for an unknown one."""
    check_choice("method", name, tuple(sorted(METHODS)))
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
    naming the sizes that do, when its ``params`` are not the method's ``hyper_parameters``, or when it
    sets ``ModelConfig.map_sigma`` for a method that reads its smoothing elsewhere (``with_map_sigma``);
    cheap, for checking options before any work starts."""
    cls = method_class(cfg.method)
    what = f"{cfg.method} with the {cfg.decoder} decoder" if cfg.method == "hetero-ae" else cfg.method
    check_image_size(cfg.image_size, what=what, **cls.size_rule(cfg))
    if cls.hyper_parameters is not None:
        read_hyper_parameters(cls.hyper_parameters, cfg.method, cfg.params)
    if cfg.map_sigma and cls.smoothing_setting() != "model":
        raise ConfigError(_no_smoothing(cfg.method) if cls.smoothing_setting() is None else
                          f"map_sigma: {cfg.method} reads its smoothing from its hyper-parameters; set it with "
                          "methods.with_map_sigma (the command line's --map-sigma and a profile's map_sigma do)")
    return cfg


def smoothing_methods() -> list[str]:
    """The registered methods whose anomaly maps take a Gaussian smoothing (``with_map_sigma``)."""
    return [m for m in sorted(METHODS) if METHODS[m].smoothing_setting() is not None]


def _no_smoothing(method: str) -> str:
    return f"map_sigma: {method} makes no smoothed anomaly map (it applies to {', '.join(smoothing_methods())})"


def with_map_sigma(method: str, sigma: float | None, fields: dict[str, Any]) -> dict[str, Any]:
    """``fields`` (``ModelConfig`` keyword arguments for ``method``) with its maps' Gaussian smoothing set to
    ``sigma`` (None: the method's own, its paper's), wherever the method reads it: ``ModelConfig.map_sigma``
    for Hetero-AE (the paper: none), the hyper-parameter ``map_sigma`` for the others that smooth (RD4AD,
    MKD and PatchCore: 4, their papers'; STFPM: none). The one place the command line's ``--map-sigma`` and a
    profile's ``map_sigma`` are decided.

    ConfigError naming ``map_sigma`` for a method that makes no smoothed map (listing those that do).
    """
    if sigma is None:
        return dict(fields)
    where = method_class(method).smoothing_setting()
    if where is None:
        raise ConfigError(_no_smoothing(method))
    if where == "model":
        return {**fields, "map_sigma": float(sigma)}
    return {**fields, "params": {**fields.get("params", {}), "map_sigma": float(sigma)}}
