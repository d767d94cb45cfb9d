"""A notebook's start: the repository as the working folder, the profile read once, the datasets on disk.

Papermill passes a notebook only its profile's name (``experiment.profiles``); the notebook's
other parameters are None by default and ``setup`` reads each as the profile's setting, so that a
notebook opened in JupyterLab runs with its profile as it is. ``present_datasets`` says which
datasets are on disk, and where the missing ones go (data/README.md).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml

from ..data.datasets import DATASETS, FolderDataset
from ..data.datasets import data_root as resolve_data_root  # "data_root" names the notebooks' parameter here
from ..errors import ConfigError, DataError
from ..experiment.profiles import Profile, load_profile
from ..experiment.specs import ensure_profile_data, profile_root


def present_datasets(names: Iterable[str], root: str | Path | None = None, *, verbose: bool = True) -> list[str]:
    """The datasets of ``names`` whose training and test images are on disk; prints where the others go."""
    present, root = [], resolve_data_root(root)
    for name in names:
        if name not in DATASETS:
            raise DataError(f"unknown dataset {name!r}; choose from {sorted(DATASETS)}")
        ds = DATASETS[name]
        where = root / (ds.folder if isinstance(ds, FolderDataset) else "medmnist")
        try:
            ok = bool(ds.entries(root, "train")) and bool(ds.entries(root, "test")) if isinstance(ds, FolderDataset) \
                else where.is_dir()
        except (DataError, OSError):
            ok = False
        if ok:
            present.append(name)
        elif verbose:
            print(f"skipping {name}: not found at {where} (data/README.md says where each dataset goes)")
    return present


def at_project_root() -> Path:
    """Make the repository the working folder when a notebook runs from ``notebooks/`` (JupyterLab
    starts a kernel in its notebook's folder), so that ``results/``, ``data/`` and ``profiles/``
    resolve as under ``./run_all.sh``; the working folder."""
    here = Path.cwd()
    if here.name == "notebooks" and (here.parent / "run_all.sh").is_file():
        os.chdir(here.parent)
    return Path.cwd()


def setup(profile: str, which: str = "datasets", **overrides: Any) -> tuple[Profile, list[str]]:
    """A notebook's start: its profile, read once, and the datasets of it that are on disk.

    It runs from the repository (``at_project_root``).

    ``profile``: a profile's name or YAML file (``experiment.profiles.load_profile``);
    ``overrides``: the notebook's parameters, each over the profile's setting of that name
    unless None (so that a notebook opened in JupyterLab runs with its profile as it is); an
    ``image_size`` other than the profile's reads the profile at that size (``Profile.at_size``,
    as ``run-profile --size``): every method at it, its synthetic data generated in their own
    folder, ``<data root>/<size>px``, and its runs those that ``run-profile --size`` trains.
    ``which``: the profile's list of datasets the notebook reports on (``datasets``, or
    ``ablation_datasets`` for Tables II-IV and Fig. 6). ``data_root`` is resolved once
    (``data.datasets.data_root``: a ``data_root`` override, else ``$HETERO_AE_DATA``, else the
    profile's); synthetic datasets are generated first if absent (``experiment.specs.ensure_profile_data``,
    which also generates those of the profile's ``second_size``);
    real ones that are missing are skipped with a message saying where they go. A list setting
    may come as a string, as papermill's ``-p datasets synth-oct`` passes it (``_as_setting``).
    """
    at_project_root()
    cfg = load_profile(profile)
    given = {k: v for k, v in overrides.items() if v is not None}
    root = str(resolve_data_root(given.pop("data_root", None), cfg.data_root))
    size = given.pop("image_size", None)
    cfg = replace(cfg, **{k: _as_setting(k, getattr(cfg, k, None), v) for k, v in given.items()}, data_root=root)
    if size is not None:
        cfg = cfg.at_size(int(size))
    datasets = list(getattr(cfg, which))
    ensure_profile_data(cfg, root, datasets)
    present = [d for d in datasets if present_datasets([d], profile_root(cfg, d, root))]  # at another size: its folder
    if not present:
        raise DataError(f"none of {datasets} is under {root}; data/README.md says where each dataset goes")
    return cfg, present


def _as_setting(name: str, current: Any, value: Any) -> Any:
    """A notebook parameter as the profile's setting ``name`` holds it: a list as a tuple, and for a
    list setting a string too, read as YAML ('[synth-oct, oct]') or as names split on commas and
    spaces ('synth-oct', 'synth-oct,oct'): papermill's ``-p`` passes every list as a string.
    ConfigError naming the parameter when a string is neither."""
    if isinstance(current, tuple) and isinstance(value, str):
        try:
            value = yaml.safe_load(value) if value.lstrip().startswith("[") else value.replace(",", " ").split()
        except yaml.YAMLError as exc:
            raise ConfigError(f"parameter {name}: {value!r} is not a list ({exc.problem})") from None
    return tuple(value) if isinstance(value, list) else value
