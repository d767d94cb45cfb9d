"""From runs to the tables' numbers: one row per run, mean +- std over seeds, the paper's values beside ours.

Table I (paper Sec. IV-C) and Tables II-IV (Sec. IV-E) report AUC, F1, ACC, SEN and SPE in %;
the paper gives mean +- std over 5 seeds for Hetero-AE. Here a table's number is the mean +-
sample std (ddof 1) over the profile's seeds (``mean_std``); with one seed the std is NaN, and
the table cell leaves it out (``formatting.cell``). F1, ACC, SEN and SPE are taken at each of
``THRESHOLDS`` (``experiment.runs.summary``).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from ..data.datasets import DATASETS, FolderDataset
from ..experiment.runs import RunResult, summary
from ..experiment.variants import Variant, variant

METRICS = ["AUC", "F1", "ACC", "SEN", "SPE"]
THRESHOLDS = ("best_f1", "normal_q95")
PAPER_DATASETS = {"oct": "retinal OCT", "chest-xray": "chest X-ray", "brain-mri": "brain MRI", "covid19": "COVID-19"}


def paper_dataset(name: str) -> str | None:
    """The paper's dataset a dataset stands for (``synth-oct`` -> ``oct``), None for others (MedMNIST)."""
    ds = DATASETS.get(name)
    return ds.layout if isinstance(ds, FolderDataset) else None


def long_table(runs: Iterable[RunResult], thresholds: Iterable[str] = THRESHOLDS) -> pd.DataFrame:
    """One row per (run, threshold): method, dataset, encoder, seed, threshold, the five metrics in %."""
    return pd.DataFrame([summary(r, t) for r in runs for t in thresholds])


def mean_std(frame: pd.DataFrame, by: list[str], metrics: list[str] = METRICS) -> pd.DataFrame:
    """Mean, sample std (NaN with one seed) and number of seeds of ``metrics`` per group; with a
    ``converged`` column, whether every run of the group converged."""
    g = frame.groupby(by, sort=False)[metrics]
    out = g.mean().add_suffix(" mean").join(g.std(ddof=1).add_suffix(" std"))
    out["seeds"] = g.size()
    if "converged" in frame:
        out["converged"] = frame.groupby(by, sort=False)["converged"].all()
    if "degenerate" in frame:
        out["degenerate"] = frame.groupby(by, sort=False)["degenerate"].any()
    return out.reset_index()


def with_paper(agg: pd.DataFrame, paper: pd.DataFrame, metrics: list[str] = METRICS) -> pd.DataFrame:
    """``agg`` (mean_std by method and dataset) with, per metric, the paper's value beside ours
    (``<metric> paper``). No difference: the default data are synthetic stand-ins of the paper's, so
    ours minus the paper's would subtract numbers of two different test sets.

    ``paper`` is long: dataset (the paper's name), metric (lower case), method, value, std.
    """
    out = agg.copy()
    out["paper dataset"] = out["dataset"].map(paper_dataset)
    p = paper.pivot_table(index=["dataset", "method"], columns="metric", values="value")
    for m in metrics:
        key = list(zip(out["paper dataset"], out["method"]))
        out[f"{m} paper"] = [p[m.lower()].get(k, np.nan) if m.lower() in p else np.nan for k in key]
    return out


def ablation_rows(pairs: Iterable[tuple[Variant, RunResult]]) -> pd.DataFrame:
    """Tables II-IV, one row per run at the paper's threshold: dataset, variant, seed, converged, metrics in %."""
    rows = []
    for v, r in pairs:
        s = summary(r, "best_f1")
        rows.append({"dataset": r.spec.dataset, "table": v.table, "key": v.key, "label": v.label, "group": v.group,
                     "encoder": s["encoder"], "decoder": v.decoder, "comparison": v.comparison, "seed": s["seed"],
                     "epochs": s["epochs"], "converged": s["converged"], "degenerate": s["degenerate"],
                     **{m: s[m] for m in [*METRICS, "pixel AUROC"]}})
    return pd.DataFrame(rows)


def ablation_table(pairs: Iterable[tuple[Variant, RunResult]], metrics: list[str] = METRICS) -> pd.DataFrame:
    """Tables II-IV: mean ± std over seeds per (dataset, variant) at the paper's threshold, the paper beside."""
    frame = ablation_rows(pairs)
    agg = mean_std(frame, ["dataset", "table", "key", "label", "group", "encoder", "decoder", "comparison"],
                   [*METRICS, "pixel AUROC"])
    for m in metrics:
        agg[f"{m} paper"] = [variant(t, k).paper.get(paper_dataset(d) or "", {}).get(m.lower(), np.nan)
                             for d, t, k in zip(agg["dataset"], agg["table"], agg["key"])]
    return agg


def per_class(runs: Iterable[RunResult]) -> pd.DataFrame:
    """AUC (%) of normal against each anomalous sub-class: mean ± std over seeds, one row per method and class."""
    rows = [{"method": r.spec.model.method, "dataset": r.spec.dataset, "class": str(c), "AUC": 100 * v}
            for r in runs for c, v in r.metrics["per_class_auc"].items()]
    return mean_std(pd.DataFrame(rows), ["dataset", "class", "method"], ["AUC"])
