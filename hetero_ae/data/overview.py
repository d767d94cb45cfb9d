"""What the data overview notebook shows: counts per split and class, a gallery with masks,
and the global-intensity check of the synthetic data (DESIGN 5)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import DataError
from .datasets import data_root, load_split
from .stats import global_stat_auc
from .synthetic import GENERATOR_VERSION, make_synthetic

# Paper Sec. IV-A (and the published releases where the paper gives only totals).
PAPER_COUNTS = {
    "oct": "train 26,315 normal; test 250 normal + 750 abnormal",
    "chest-xray": "train 5,232 (all classes); test 234 normal + 390 pneumonia",
    "brain-mri": "7,022 images in four classes",
    "covid19": "train 251, test 66 (all classes)",
}


def ensure_synthetic(root: str | Path | None, size: int, seed: int, preset: str, *, replace: bool = True) -> Path:
    """Generate the synthetic benchmark under <root>/synthetic unless it is there with these settings
    (with ``replace=False``: unless any benchmark is there, which is then left as it is).

    Raises DataError when ``root`` is itself a benchmark folder (it holds ``synthetic.json``):
    a copy generated under it would then be read in place of the benchmark that is there, as
    happened once with ``data/design/synthetic`` for ``data/design``.
    """
    root = data_root(root)
    if (root / "synthetic.json").is_file():
        raise DataError(f"data root {root} is itself a synthetic benchmark (it holds synthetic.json); "
                        f"pass its parent folder, {root.parent}")
    out = root / "synthetic"
    stamp = out / "synthetic.json"
    want = {"generator_version": GENERATOR_VERSION, "size": size, "seed": seed, "preset": preset}
    if not stamp.is_file() or replace and {k: json.loads(stamp.read_text()).get(k) for k in want} != want:
        make_synthetic(out, size=size, seed=seed, preset=preset)
    return out


Root = str | Path | None | Mapping[str, str | Path | None]  # a data root, or one per dataset name


def _root(root: Root, name: str) -> str | Path | None:
    return root[name] if isinstance(root, Mapping) else root


def split_counts(names: list[str], size: int, root: Root = None) -> pd.DataFrame:
    """One row per (dataset, split, class) with the number of images the loader reads (``root``: the
    data root, or a mapping from dataset name to its root, as ``experiment.specs.profile_root`` gives)."""
    rows = []
    for name in names:
        for split in ("train", "val", "test"):
            try:
                data = load_split(name, split, size, root=_root(root, name))
            except DataError as e:
                rows.append({"dataset": name, "split": split, "class": f"missing: {str(e).splitlines()[0]}", "images": 0})
                break
            if data is None:
                continue
            for cls, n in pd.Series(data.classes).value_counts().sort_index().items():
                rows.append({"dataset": name, "split": split, "class": cls, "images": int(n)})
    return pd.DataFrame(rows)


def global_stat_table(names: list[str], size: int, root: Root = None) -> pd.DataFrame:
    """AUC of the (mean, std) intensity detector per dataset: near 0.5 means no global give-away."""
    rows = []
    for name in names:
        train, test = (load_split(name, split, size, root=_root(root, name)) for split in ("train", "test"))
        rows.append({"dataset": name, "mean/std detector AUC": global_stat_auc(train.images, test.images, test.labels)})
    return pd.DataFrame(rows)


def gallery(names: list[str], size: int, per_class: int = 2, root: Root = None):
    """A figure: one row per dataset, ``per_class`` test images of each class, lesion masks outlined."""
    import matplotlib.pyplot as plt

    sets = {n: load_split(n, "test", size, root=_root(root, n)) for n in names}
    ncols = max(per_class * len(set(d.classes)) for d in sets.values())
    fig, axes = plt.subplots(len(names), ncols, figsize=(1.6 * ncols, 1.8 * len(names)), squeeze=False)
    for row, (name, data) in zip(axes, sets.items()):
        picks = [i for c in sorted(set(data.classes), key=lambda c: (data.labels[data.classes.index(c)], c))
                 for i in [j for j, k in enumerate(data.classes) if k == c][:per_class]]
        for ax in row:
            ax.axis("off")
        for ax, i in zip(row, picks):
            ax.imshow(data.images[i], cmap="gray")
            if data.masks is not None and data.masks[i].any():
                ax.contour(np.asarray(data.masks[i]), levels=[0.5], colors="red", linewidths=0.8)
            ax.set_title(f"{data.classes[i]}", fontsize=7)
        row[0].text(-0.1, 0.5, name, transform=row[0].transAxes, rotation=90, va="center", ha="right", fontsize=8)
    fig.tight_layout()
    return fig
