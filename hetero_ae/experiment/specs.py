"""What one run is (``RunSpec``: dataset, model configuration, training configuration) and the
run a profile asks for (``run_spec``), whose key names its folder in the cache (``experiment.runs``)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import ModelConfig, TrainConfig, key_dict, to_dict
from ..data.datasets import data_root, is_synthetic
from ..data.overview import ensure_synthetic
from ..errors import UserError
from ..methods import method_class, with_map_sigma
from ..model.encoder import resolve_backbone
from .profiles import Profile


@dataclass(frozen=True)
class RunSpec:
    dataset: str
    model: ModelConfig
    train: TrainConfig
    val_fraction: float = 0.1  # only used when the dataset has no val split
    # Where its data are under the data root (``spec_root``): synthetic data generated at another size
    # than the profile's live in a folder of their own. Not keyed: the data's identity is.
    data_subdir: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"dataset": self.dataset, "model": to_dict(self.model), "train": to_dict(self.train),
                "val_fraction": self.val_fraction}

    def key_dict(self) -> dict[str, Any]:
        """What the cache key hashes (``config.key_dict``: new fields only when set)."""
        return {**self.as_dict(), "model": key_dict(self.model), "train": key_dict(self.train)}



def spec_root(spec: RunSpec, root: str | Path | None) -> str | Path | None:
    """The data root of ``spec``: ``root`` (None: ``data.datasets.data_root``'s default), or its
    ``data_subdir`` under it."""
    return root if spec.data_subdir is None else data_root(root) / spec.data_subdir


def profile_root(profile: Profile, dataset: str, root: str | Path | None) -> str | Path | None:
    """Where ``profile``'s data of ``dataset`` are: under ``root``, in the profile's ``data_subdir`` for
    synthetic data generated at another size (``Profile.at_size``)."""
    return data_root(root) / profile.data_subdir if profile.data_subdir and is_synthetic(dataset) else root


def ensure_profile_data(profile: Profile, root: str | Path | None, datasets: Iterable[str], *,
                        replace: bool = True) -> None:
    """Generate the synthetic benchmark ``profile`` reads (its size, seed and preset, in its folder)
    when one of ``datasets`` is synthetic and it is not there yet (``data.overview.ensure_synthetic``);
    and, for a profile with a ``second_size``, the one its second-size runs of ``datasets`` read, in theirs."""
    synthetic = [d for d in datasets if is_synthetic(d)]
    if synthetic:
        ensure_synthetic(profile_root(profile, synthetic[0], root), profile.image_size, profile.synthetic_seed,
                         profile.synthetic_preset, replace=replace)
    second = [d for d in profile.second_size_datasets if d in datasets]
    if profile.second_size is not None and second:
        ensure_profile_data(profile.at_size(profile.second_size), root, second, replace=replace)


def backbone(method: str, setting: str = "auto") -> str:
    """The encoder a method runs with: the named one, or for "auto" its paper backbone if available."""
    if setting != "auto":
        return setting
    paper = method_class(method).paper_backbone
    return resolve_backbone(paper) if paper else "none"


def run_spec(profile: Profile, dataset: str, method: str, seed: int, **model_overrides: Any) -> RunSpec:
    """The run a profile asks for: ``method`` on ``dataset`` with ``seed``.

    ``model_overrides`` set ``ModelConfig`` fields over the profile's, the encoder included
    (e.g. a named ablation variant's ``overrides()``, ``hetero_ae.experiment.variants``).
    """
    method_class(method)  # ConfigError naming the methods for an unknown one
    s = dict(profile.method_settings.get(method, {}))
    fields = {f.name for f in dataclasses.fields(ModelConfig)} - {"method", "encoder", "image_size", "params"}
    model_fields = {k: s.pop(k) for k in list(s) if k in fields}
    overrides = dict(model_overrides)
    encoder = overrides.pop("encoder", s.pop("encoder", "auto"))  # a variant's encoder wins over the profile's
    s.pop("encoder", None)
    fields_ = {**model_fields, **overrides}
    sigma = fields_.pop("map_sigma", None)  # every smoothing method's, wherever it reads it (with_map_sigma)
    encoder = backbone(method, encoder)
    model = ModelConfig(**with_map_sigma(method, sigma, dict(
        method=method, encoder=encoder, image_size=int(s.pop("image_size", profile.image_size)),
        params=dict(s.pop("params", {})), **fields_)))
    fit_only = not method_class(method).trains_weights  # one fit: no epochs, learning rate or stopping rule
    rule_keys = {"epochs", "lr", "patience", "min_delta", "keep", "lr_patience", "lr_factor"}
    if fit_only and rule_keys & set(s):
        raise UserError(f"profile {profile.profile}: {method} learns no weight (one fit); it takes none of "
                        f"{sorted(rule_keys & set(s))}")
    if fit_only:
        train = TrainConfig(epochs=0, batch_size=int(s.pop("batch_size")), lr=0.0, seed=seed,
                            precision=str(s.pop("precision", profile.precision)))
    else:
        train = TrainConfig(epochs=int(s.pop("epochs")), batch_size=int(s.pop("batch_size")), lr=float(s.pop("lr")),
                            seed=seed, precision=str(s.pop("precision", profile.precision)),
                            patience=int(s.pop("patience", profile.patience)),
                            min_delta=float(s.pop("min_delta", profile.min_delta)), keep=str(s.pop("keep", profile.keep)),
                            lr_patience=int(s.pop("lr_patience", profile.lr_patience)),
                            lr_factor=float(s.pop("lr_factor", profile.lr_factor)))
    if s:
        raise UserError(f"profile {profile.profile}: unknown settings for {method}: {sorted(s)}")
    return RunSpec(dataset, model, train, val_fraction=profile.val_fraction,
                   data_subdir=profile.data_subdir if is_synthetic(dataset) else None)


def run_name(spec: RunSpec, *, rule: bool = False) -> str:
    """'hetero-ae (decoder cnn) on synth-oct, seed 1, 128 px': the method, its model fields off their
    defaults (an ablation row's parts), the dataset, the seed and the input size; with ``rule``, then
    its stopping rule ('patience 30, up to 450 epochs'; '120 epochs' for a method whose schedule needs
    every epoch, as f-AnoGAN's; 'one fit' for one that learns no weight), which tells apart a profile's
    runs under its ``second_rule``."""
    defaults = {f.name: f.default for f in dataclasses.fields(ModelConfig)}
    parts = [f"{k} {v}" for k, v in key_dict(spec.model).items()
             if k not in ("method", "encoder", "image_size", "params") and v != defaults.get(k)]
    method = f"{spec.model.method} ({', '.join(parts)})" if parts else spec.model.method
    name = f"{method} on {spec.dataset}, seed {spec.train.seed}, {spec.model.image_size} px"
    if not rule:
        return name
    t, cls = spec.train, method_class(spec.model.method)
    if not t.epochs or not cls.trains_weights:
        return f"{name}, one fit"
    ruled = t.patience and cls.stops_early  # as training.loop: f-AnoGAN's phases need every epoch
    return f"{name}, patience {t.patience}, up to {t.epochs} epochs" if ruled else f"{name}, {t.epochs} epochs"
