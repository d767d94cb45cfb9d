"""What Fig. 6 of the paper shows: per-image feature distances of three decoders, as boxplots.

Fig. 6 (Sec. IV-E1): boxplots of the per-image feature distance between encoder and decoder
on normal and abnormal images, for the decoders of Table III: E(CNN)-D(CNN),
E(CNN)-D(Transformer) and E(CNN)-D(CNN+Transformer). The paper names the distance "the
multi-stage feature distance between the encoder and decoder" without a formula, so both
per-image reductions of the Eq. 7 map (the summed per-stage 1 - cosine maps) are shown:
``feature_distance``, its mean over pixels (``scores.csv``, ``methods/hetero_ae.py``), and
``score``, its maximum, which is Eq. 8's image score. The summary table gives the separation
the figure shows as medians, their ratio and an AUC, per distance.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from ..experiment.runs import RunResult
from ..experiment.variants import Variant

FIG6_LABELS = {"cnn": "E(CNN)-D(CNN)", "transformer": "E(CNN)-D(Transformer)",
               "hctn": "E(CNN)-D(CNN+Transformer)"}  # Table III's keys as Fig. 6 names them
DISTANCES = {"feature_distance": "mean of the Eq. 7 map",
             "score": "max of the Eq. 7 map (Eq. 8 image score)"}  # column -> what it is


def feature_distances(pairs: Iterable[tuple[Variant, RunResult]],
                      labels: Mapping[str, str] = FIG6_LABELS) -> pd.DataFrame:
    """Fig. 6's data: one row per (run, test image) with dataset, variant, encoder, seed, label and
    the two distances of ``DISTANCES`` (``feature_distance``, ``score``).

    Raises ValueError for a run whose ``scores.csv`` has no ``feature_distance`` (pixel comparison).
    """
    frames = []
    for v, r in pairs:
        scores = pd.DataFrame(r.scores())
        if "feature_distance" not in scores:
            raise ValueError(f"{r.folder}/scores.csv has no feature_distance column ({v.key} compares no features)")
        frames.append(pd.DataFrame({
            "dataset": r.spec.dataset, "key": v.key, "variant": labels.get(v.key, v.label),
            "encoder": r.spec.model.encoder, "decoder": v.decoder, "seed": r.spec.train.seed,
            "label": scores["label"].astype(int), "class": scores["class"],
            "feature_distance": scores["feature_distance"].astype(float),
            "score": scores["score"].astype(float)}))
    frame = pd.concat(frames, ignore_index=True)
    frame["image"] = np.where(frame["label"] == 1, "abnormal", "normal")
    return frame


def distance_summary(frame: pd.DataFrame, by: list[str], distance: str = "feature_distance") -> pd.DataFrame:
    """Per ``by`` group: median ``distance`` of normal and abnormal images, their ratio, and its AUC.

    The AUC is sklearn's ``roc_auc_score`` of the label against the distance alone: how well
    the distance Fig. 6 plots separates abnormal from normal images.
    """
    from sklearn.metrics import roc_auc_score

    rows = []
    for key, g in frame.groupby(by, sort=False):
        normal = g.loc[g["label"] == 0, distance]
        abnormal = g.loc[g["label"] == 1, distance]
        both = normal.size and abnormal.size
        rows.append({**dict(zip(by, key if isinstance(key, tuple) else (key,))), "distance": DISTANCES.get(distance,
                                                                                                             distance),
                     "n normal": int(normal.size), "n abnormal": int(abnormal.size),
                     "median normal": float(normal.median()), "median abnormal": float(abnormal.median()),
                     "ratio abnormal/normal": float(abnormal.median() / normal.median()) if both else np.nan,
                     "AUC": float(roc_auc_score(g["label"], g[distance])) if both else np.nan})
    return pd.DataFrame(rows)


def boxplot_figure(frame: pd.DataFrame, order: list[str], distances: Mapping[str, str] = DISTANCES, *,
                   panel: tuple[float, float] = (4.2, 3.4)) -> Any:
    """Fig. 6: a row of panels per distance and a column per dataset; x the decoder variant, hue normal/abnormal.

    Seeds are pooled (each image counted once per seed); under each decoder is the AUC of the
    pooled distance (``distance_summary``). The x axis names the encoder that ran.
    """
    import matplotlib.pyplot as plt
    import seaborn as sns

    datasets = list(dict.fromkeys(frame["dataset"]))
    fig, axes = plt.subplots(len(distances), len(datasets), figsize=(panel[0] * len(datasets),
                                                                     panel[1] * len(distances)),
                             squeeze=False, layout="constrained")
    letters = iter("abcdefghijklmnop")
    for row, (column, meaning) in zip(axes, distances.items()):
        for ax, dataset in zip(row, datasets):
            g = frame[frame["dataset"] == dataset]
            present = [o for o in order if o in set(g["variant"])]
            auc = distance_summary(g, ["variant"], column).set_index("variant")["AUC"]
            with warnings.catch_warnings():  # seaborn 0.13 hands matplotlib its deprecated `vert`; none of ours
                warnings.filterwarnings("ignore", message="vert: bool", category=DeprecationWarning)
                sns.boxplot(data=g, x="variant", y=column, hue="image", order=present,
                            hue_order=["normal", "abnormal"], fliersize=2, linewidth=0.8, ax=ax)
            ax.set_title(f"({next(letters)}) {dataset}: {meaning}", fontsize=9)
            ticks = [v.replace("-D(", "-\nD(") + f"\nAUC {auc[v]:.2f}" for v in present]
            ax.set_xticks(range(len(present)), ticks, fontsize=8)
            ax.set_xlabel(f"encoder E(CNN) = {', '.join(sorted(set(g['encoder'])))}", fontsize=8)
            ax.set_ylabel(f"feature distance ({meaning.split(' (')[0]})", fontsize=8)
            ax.tick_params(axis="y", labelsize=8)
            ax.legend(title=None, fontsize=8)
    return fig
