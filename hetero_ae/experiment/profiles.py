"""Profiles (``profiles/<name>.yaml``): one file of settings per scale of experiment (DESIGN 7).

- ``smoke``: tiny images and a few steps; the whole of ``./run_all.sh`` in minutes (CI).
- ``cpu`` (default): the embedded synthetic data on a 2-core machine in about an hour.
- ``paper``: the paper's protocol (256 px, batch 200, Adam 1e-4, 200 epochs, alpha 0.7,
  5 seeds) on the real datasets, on GPUs.

The same file is a papermill parameter file for the notebooks and what ``hetero-ae run``
and ``hetero-ae compare`` read. Per-method settings live under ``method_settings``:
``epochs``, ``batch_size``, ``lr``, ``encoder`` ("auto" = the method's paper backbone when
its ImageNet weights are available, else the offline EfficientNet-Lite0), ``params`` (the
method's own hyper-parameters), ``precision`` (over the profile's) and any other
``ModelConfig`` field (``decoder``, ``upsample``, ``alpha``, ``map_sigma``, ...).

Convergence (``hetero_ae.training.stopping``): ``patience`` and ``min_delta`` (per method, or for the
whole profile) stop a run on its held-out normals' loss; ``epochs`` is then the cap.

How runs execute (``hetero_ae.training.runtime``): ``precision`` (``fp32``, the default and the
paper's, or ``bf16``; part of each run's configuration) and ``torch_compile`` (``false``, the
default, ``true`` for inductor, or a torch.compile backend; not part of the cache key).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import yaml

from ..config import ModelConfig, TrainConfig
from ..errors import UserError
from ..methods import method_class
from ..methods.hetero_ae import resolve_feature_scale
from ..model.encoder import resolve_backbone
from .runs import RunSpec

PROFILE_DIRS = (Path("profiles"), Path(__file__).resolve().parents[1] / "profiles")


def profile_path(name: str) -> Path:
    if name.endswith((".yaml", ".yml")) and Path(name).is_file():
        return Path(name)
    for folder in PROFILE_DIRS:
        if (folder / f"{name}.yaml").is_file():
            return folder / f"{name}.yaml"
    raise UserError(f"no profile {name!r} (looked for {name}.yaml in {', '.join(map(str, PROFILE_DIRS))})")


def load_profile(name: str) -> dict[str, Any]:
    return yaml.safe_load(profile_path(name).read_text())


def backbone(method: str, setting: str = "auto") -> str:
    """The encoder a method runs with: the named one, or for "auto" its paper backbone if available."""
    if setting != "auto":
        return setting
    paper = method_class(method).paper_backbone
    return resolve_backbone(paper) if paper else "none"


def run_spec(profile: dict[str, Any], dataset: str, method: str, seed: int, **model_overrides: Any) -> RunSpec:
    """The run a profile asks for: ``method`` on ``dataset`` with ``seed``.

    ``model_overrides`` set ``ModelConfig`` fields over the profile's, the encoder included
    (e.g. a named ablation variant's ``overrides()``, ``hetero_ae.experiment.variants``).
    """
    method_class(method)  # ConfigError naming the methods for an unknown one
    s = dict(profile.get("method_settings", {}).get(method, {}))
    fields = {f.name for f in dataclasses.fields(ModelConfig)} - {"method", "encoder", "image_size", "params"}
    model_fields = {k: s.pop(k) for k in list(s) if k in fields}
    overrides = dict(model_overrides)
    encoder = overrides.pop("encoder", s.pop("encoder", "auto"))  # a variant's encoder wins over the profile's
    s.pop("encoder", None)
    fields_ = {**model_fields, **overrides}
    encoder = backbone(method, encoder)
    if method == "hetero-ae" and fields_.get("feature_scale") == "auto":  # resolved before it is keyed
        fields_["feature_scale"] = resolve_feature_scale("auto", encoder)
    model = ModelConfig(method=method, encoder=encoder, image_size=int(s.pop("image_size", profile["image_size"])),
                        params=dict(s.pop("params", {})), **fields_)
    train = TrainConfig(epochs=int(s.pop("epochs")), batch_size=int(s.pop("batch_size")), lr=float(s.pop("lr")),
                        seed=seed, precision=str(s.pop("precision", profile.get("precision", "fp32"))),
                        patience=int(s.pop("patience", profile.get("patience", 0))),
                        min_delta=float(s.pop("min_delta", profile.get("min_delta", 0.0))))
    if s:
        raise UserError(f"profile {profile.get('profile')}: unknown settings for {method}: {sorted(s)}")
    return RunSpec(dataset, model, train, val_fraction=float(profile.get("val_fraction", 0.1)))
