"""What Fig. 4 of the paper shows: anomaly heatmaps of four methods, and their pixel metrics.

Fig. 4 (Sec. IV-D1): for each dataset an input image, its ground truth and the heatmaps of
AE, SALAD, MKD and Hetero-AE (red = more likely anomalous). The paper does not say which
images it shows nor how it scales the maps; here the example is the anomalous test image
with the largest lesion mask (the first anomalous ones where there are no masks), and each
method's maps are scaled by that method's range over the whole test set of the dataset, so
that a hot spot means "as anomalous as anything this method sees", not "the maximum of this
one image" (which would make every map look equally confident). A profile's methods beyond the
paper (PatchCore) get a column after the paper's four, named as not in the paper.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..data.datasets import load_split
from ..evaluation.predict import predict
from ..experiment.runs import RunResult, trained_model
from ..experiment.specs import spec_root
from ..methods import in_paper
from .formatting import UNCONVERGED_MARK

PAPER_METHODS = ("ae", "salad", "mkd", "hetero-ae")  # Fig. 4's rows, in the paper's order


def figure_methods(profile_methods: Iterable[str]) -> list[str]:
    """Fig. 4's methods: the paper's four, then those of ``profile_methods`` beyond the paper."""
    return [*PAPER_METHODS, *(m for m in profile_methods if not in_paper(m) and m not in PAPER_METHODS)]


PIXEL_METRICS = {"pixel_auroc": "pixel AUROC", "aupro": "AUPRO"}
CMAP = "jet"  # the paper's colours: blue normal, red anomalous


def pick_examples(labels: np.ndarray, masks: np.ndarray | None, n: int = 1) -> list[int]:
    """Indices of ``n`` anomalous test images to show (Fig. 4): the largest lesion masks first.

    Ties, and datasets without masks, fall back to test-set order (the first anomalous images).
    """
    anomalous = np.flatnonzero(np.asarray(labels) == 1)
    if masks is None:
        return anomalous[:n].tolist()
    area = np.asarray(masks).reshape(len(masks), -1).sum(axis=1)[anomalous]
    return anomalous[np.argsort(-area, kind="stable")][:n].tolist()


def normalise_maps(maps: np.ndarray, reference: np.ndarray | None = None) -> np.ndarray:
    """``maps`` scaled to [0, 1] by the min and max of ``reference`` (default: ``maps`` itself), clipped.

    Fig. 4 passes a method's maps over the whole test set as the reference. A constant
    reference gives all zeros.
    """
    maps = np.asarray(maps, dtype=np.float64)
    ref = maps if reference is None else np.asarray(reference, dtype=np.float64)
    lo, hi = float(ref.min()), float(ref.max())
    if hi <= lo:
        return np.zeros_like(maps)
    return np.clip((maps - lo) / (hi - lo), 0.0, 1.0)


def grey(image: np.ndarray) -> np.ndarray:
    """An (H, W) or (H, W, C) uint8 image as (H, W) floats in [0, 1] (channels averaged)."""
    a = np.asarray(image, dtype=np.float64)
    return (a.mean(axis=-1) if a.ndim == 3 else a) / 255.0


@dataclass
class HeatmapColumn:
    """One column of Fig. 4: an image, its mask (None where the dataset has none) and each method's map in [0, 1]."""

    title: str
    image: np.ndarray
    mask: np.ndarray | None
    maps: dict[str, np.ndarray] = field(default_factory=dict)  # method label -> (H, W) map in [0, 1]
    unconverged: set[str] = field(default_factory=set)  # labels whose run fails the convergence test (marked †)
    sizes: dict[str, int] = field(default_factory=dict)  # method label -> its run's input size (px)

    @property
    def mixed_sizes(self) -> bool:
        """Whether this column's maps come from runs at more than one input size (each panel then says its own)."""
        return len(set(self.sizes.values())) > 1


def resized_maps(maps: np.ndarray, size: int) -> np.ndarray:
    """Anomaly maps (n, h, w) resized to (n, size, size), bilinear (``torch.nn.functional.interpolate``)."""
    if maps.shape[-2:] == (size, size):
        return maps
    import torch
    import torch.nn.functional as F

    out = F.interpolate(torch.from_numpy(maps)[:, None], size=(size, size), mode="bilinear", align_corners=False)
    return out[:, 0].numpy()


def heatmap_columns(runs: Iterable[RunResult], *, examples: int = 1, root: str | Path | None = None,
                    device: str = "cpu", names: Mapping[str, str] | None = None) -> list[HeatmapColumn]:
    """Fig. 4's columns: per dataset, ``examples`` test images (``pick_examples``) and every run's maps of them.

    Each run's model scores the whole test set at its own input size (``evaluate.predict``; a
    run without its checkpoint is retrained, ``experiment.trained_model``); its maps are
    resized (bilinear) to the largest input size of the dataset's runs, at which the images are
    shown, and scaled by its range over that set (``normalise_maps``).
    """
    by_dataset: dict[str, list[RunResult]] = {}
    for r in runs:
        by_dataset.setdefault(r.spec.dataset, []).append(r)
    columns = []
    for dataset, group in by_dataset.items():
        largest = max(group, key=lambda r: r.spec.model.image_size)
        size = largest.spec.model.image_size
        test = load_split(dataset, "test", size, root=spec_root(largest.spec, root))
        picks = pick_examples(test.labels, test.masks, examples)
        cols = [HeatmapColumn(f"{dataset}\n{test.classes[i]}", np.asarray(test.images[i]),
                              None if test.masks is None else np.asarray(test.masks[i])) for i in picks]
        for r in group:
            own = r.spec.model.image_size
            images = test.images if own == size else load_split(dataset, "test", own, root=spec_root(r.spec, root)).images
            maps, _ = predict(trained_model(r, root=root, device=device, keep_weights=True), images, device=device,
                               precision=r.spec.train.precision)
            maps = resized_maps(np.asarray(maps, dtype=np.float32), size)
            label = (names or {}).get(r.spec.model.method, r.spec.model.method)
            for col, scaled in zip(cols, normalise_maps(maps[picks], maps)):
                col.maps[label] = scaled
                col.sizes[label] = own
                if not r.converged:
                    col.unconverged.add(label)
        columns += cols
    return columns


def heatmap_figure(columns: list[HeatmapColumn], methods: list[str], *, alpha: float = 0.5,
                   panel: float = 1.7) -> Any:
    """Fig. 4: rows input, ground truth, then one heatmap row per method label; one column per example.

    Ground truth is the mask's outline (red) on the image, or "no mask"; heatmaps are ``CMAP``
    overlays on the grey image with the mask outlined in white, and share one colour bar. In a column
    whose runs differ in input size (``HeatmapColumn.mixed_sizes``) each heatmap says its run's size.
    """
    import matplotlib.pyplot as plt
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    rows = ["Input", "Ground truth", *methods]
    fig, axes = plt.subplots(len(rows), len(columns), figsize=(panel * len(columns) + 1.0, panel * len(rows)),
                             squeeze=False, layout="constrained")
    for j, col in enumerate(columns):
        img, outlined = grey(col.image), col.mask is not None and bool(np.asarray(col.mask).any())
        for i, row in enumerate(rows):
            ax = axes[i, j]
            ax.imshow(img, cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if row == "Ground truth":
                if outlined:
                    ax.contour(np.asarray(col.mask), levels=[0.5], colors="red", linewidths=1.0)
                else:
                    ax.text(0.5, 0.5, "no mask", transform=ax.transAxes, ha="center", va="center", color="white",
                            fontsize=9, bbox={"facecolor": "black", "alpha": 0.6, "edgecolor": "none"})
            elif row in col.maps:
                ax.imshow(col.maps[row], cmap=CMAP, vmin=0, vmax=1, alpha=alpha)
                if outlined:
                    ax.contour(np.asarray(col.mask), levels=[0.5], colors="white", linewidths=0.6)
                if col.mixed_sizes:
                    ax.text(0.04, 0.04, f"{col.sizes[row]} px", transform=ax.transAxes, ha="left", va="bottom",
                            color="white", fontsize=7, bbox={"facecolor": "black", "alpha": 0.5, "edgecolor": "none"})
                if row in col.unconverged:
                    ax.text(0.96, 0.96, UNCONVERGED_MARK, transform=ax.transAxes, ha="right", va="top", color="white",
                            fontsize=11, fontweight="bold")
            elif row != "Input":
                ax.text(0.5, 0.5, "not run", transform=ax.transAxes, ha="center", va="center", color="white")
            if j == 0:
                ax.set_ylabel(row, fontsize=9)
        axes[0, j].set_title(col.title, fontsize=8)
    bar = fig.colorbar(ScalarMappable(Normalize(0, 1), CMAP), ax=axes[2:, :], shrink=0.8, aspect=30)
    bar.set_label("anomaly map, scaled to the method's\nrange over the test set", fontsize=8)
    bar.ax.tick_params(labelsize=7)
    if any(col.unconverged for col in columns):
        fig.supxlabel(f"{UNCONVERGED_MARK} from a run whose held-out loss was still falling over its last fifth of epochs",
                      fontsize=8)
    return fig


def pixel_metric_table(runs: Iterable[RunResult], names: Mapping[str, str] | None = None) -> pd.DataFrame:
    """Pixel AUROC and AUPRO (%) per method (rows) and dataset (columns), mean over seeds, from ``metrics["pixel"]``.

    Datasets without masks have no pixel metrics and no columns. The paper reports none. ``input size``
    gives each method's run size, per dataset where they differ (a profile's second size). The last
    column names the datasets on which a method's run failed the convergence test ("-": none).
    """
    rows = [{"method": r.spec.model.method, "encoder": r.spec.model.encoder, "dataset": r.spec.dataset,
             "px": r.spec.model.image_size, "converged": r.converged, **{label: 100 * r.metrics["pixel"][key] for key, label in PIXEL_METRICS.items()}}
            for r in runs if "pixel" in r.metrics]
    if not rows:
        return pd.DataFrame({"method": [], "encoder": []})
    long = pd.DataFrame(rows)
    methods, datasets = list(dict.fromkeys(long["method"])), list(dict.fromkeys(long["dataset"]))
    mean = long.groupby(["method", "dataset"])[list(PIXEL_METRICS.values())].mean()
    encoders = long.groupby("method")["encoder"].agg(lambda e: ", ".join(dict.fromkeys(e)))
    sizes = long.groupby("method")["px"].agg(lambda p: ", ".join(dict.fromkeys(
        f"{size} px" + ("" if len(set(p)) == 1 else f" ({', '.join(long.loc[p.index][p == size]['dataset'])})")
        for size in p)))
    wide = pd.DataFrame({"method": [(names or {}).get(m, m) for m in methods], "encoder": encoders[methods].tolist(),
                         "input size": sizes[methods].tolist()})
    for d in datasets:
        for label in PIXEL_METRICS.values():
            wide[f"{d} {label}"] = [mean[label].get((m, d), np.nan) for m in methods]
    falling = long[~long["converged"]].groupby("method")["dataset"].agg(lambda d: ", ".join(dict.fromkeys(d)))
    wide[f"still falling {UNCONVERGED_MARK}"] = [falling.get(m, "-") for m in methods]
    return wide
