"""What the notebooks put in their tables: runs of a profile, mean +- std over seeds, the paper beside ours.

Table I (paper Sec. IV-C) and Tables II-IV (Sec. IV-E) report AUC, F1, ACC, SEN and SPE in %;
the paper gives mean +- std over 5 seeds for Hetero-AE and a t-test of Hetero-AE against MKD
on SEN (Sec. IV-C). Here every method is run over the profile's seeds, each run is cached
(``experiment.run_experiment``), and a table cell is the mean +- sample std (ddof 1) over
seeds; with one seed the std is left out. The t-test is Welch's (unequal variances,
``scipy.stats.ttest_ind(equal_var=False)``): the paper does not say which t-test it ran.

Every notebook records which runs it used and whether each came from the cache
(``record_runs``), so ``run_all.sh`` can show that a second run retrains nothing.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm  # a text bar: JupyterLab shows it in place, and it needs no widget library

from ..data.datasets import DATASETS, FolderDataset
from ..data.datasets import data_root as resolve_data_root  # "data_root" names the notebooks' parameter here
from ..data.overview import ensure_synthetic
from ..errors import DataError
from ..experiment.plan import plan_runs
from ..experiment.profiles import Profile, load_profile
from ..experiment.runs import RunResult, run_experiment, summary
from ..experiment.specs import RunSpec, profile_root, run_spec
from ..experiment.variants import TABLE_II, TABLE_III, TABLE_IV, Variant, variant
from ..io import atomic_write, write_text
from ..model.encoder import resolve_backbone
from ..training.runtime import compile_backend

METRICS = ["AUC", "F1", "ACC", "SEN", "SPE"]
THRESHOLDS = ("best_f1", "normal_q95")
METHOD_NAMES = {"ae": "AE", "vae": "VAE", "ganomaly": "GANomaly", "f-anogan": "f-AnoGAN", "salad": "SALAD",
                "stfpm": "STFPM", "mkd": "MKD", "rd4ad": "RD4AD", "hetero-ae": "Hetero-AE"}
PAPER_ORDER = list(METHOD_NAMES)  # Table I's row order
NOTEBOOK_VARIANTS = {"table2_heterogeneous": TABLE_II, "table3_hctn": TABLE_III,
                     "table4_feature_comparison": TABLE_IV, "fig6_boxplots": TABLE_III}  # ablation rows per notebook
TABLE_NOTEBOOKS = ("table1_comparison", *NOTEBOOK_VARIANTS)  # the notebooks whose runs notebook_specs lists
UNCONVERGED_MARK = "†"
DEGENERATE_MARK = "‡"
THRESHOLD_NOTES = {
    "best_f1": ("F1, ACC, SEN and SPE at the threshold that maximises F1 on the test labels themselves (the paper's "
                f"choice): chosen on the test set, not a deployable threshold. {DEGENERATE_MARK} at that threshold "
                "a run called every test image anomalous (or every one normal): its F1, ACC, SEN and SPE say nothing."),
    "normal_q95": ("F1, ACC, SEN and SPE at the 95th percentile of held-out normal images' scores: chosen without "
                   f"a test label. {DEGENERATE_MARK} a run called every test image one class at that threshold."),
}
UNCONVERGED_NOTE = (f"{UNCONVERGED_MARK} from a run that did not converge: its held-out loss was still falling over "
                    "its last fifth of epochs (a line through them slopes down, one-sided p < 0.05, by at least 1 % "
                    "of the run's whole fall), whatever stopped it.")
PAPER_DATASETS = {"oct": "retinal OCT", "chest-xray": "chest X-ray", "brain-mri": "brain MRI", "covid19": "COVID-19"}


def paper_dataset(name: str) -> str | None:
    """The paper's dataset a dataset stands for (``synth-oct`` -> ``oct``), None for others (MedMNIST)."""
    ds = DATASETS.get(name)
    return ds.layout if isinstance(ds, FolderDataset) else None


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
    unless None (so that a notebook opened in JupyterLab runs with its profile as it is).
    ``which``: the profile's list of datasets the notebook reports on (``datasets``, or
    ``ablation_datasets`` for Tables II-IV and Fig. 6). ``data_root`` is resolved once
    (``data.datasets.data_root``: a ``data_root`` override, else ``$HETERO_AE_DATA``, else the
    profile's); synthetic datasets are generated first if absent (``data.overview.ensure_synthetic``);
    real ones that are missing are skipped with a message saying where they go.
    """
    at_project_root()
    cfg = load_profile(profile)
    given = {k: v for k, v in overrides.items() if v is not None}
    root = str(resolve_data_root(given.pop("data_root", None), cfg.data_root))
    cfg = replace(cfg, **{k: tuple(v) if isinstance(v, list) else v for k, v in given.items()}, data_root=root)
    datasets = list(getattr(cfg, which))
    if any(isinstance(DATASETS.get(d), FolderDataset) and DATASETS[d].folder.startswith("synthetic/") for d in datasets):
        ensure_synthetic(root, cfg.image_size, cfg.synthetic_seed, cfg.synthetic_preset)
    present = present_datasets(datasets, root)
    if not present:
        raise DataError(f"none of {datasets} is under {root}; data/README.md says where each dataset goes")
    return cfg, present


def table1_specs(profile: Profile, datasets: Iterable[str], methods: Iterable[str]) -> list[RunSpec]:
    """The run of every (dataset, method, seed) of Table I, each method over its seeds
    (``Profile.method_seed_list``)."""
    methods = list(methods)
    return [run_spec(profile, dataset, method, seed) for dataset in datasets for method in methods
            for seed in profile.method_seed_list(method)]


def run_specs(profile: Profile, specs: Iterable[RunSpec], *, results: str | Path = "results") -> list[RunResult]:
    """The cached result of each spec, run on the profile's device with its ``torch_compile`` setting.

    When some must train, it first says how many, why and for about how long
    (``experiment.plan``), then shows a progress bar over them and over each run's epochs.
    """
    specs = list(specs)
    plan = plan_runs(specs, results=results, root=profile.data_root, device=profile.device)
    if not plan.missing:
        return plan.cached
    print("\n".join(plan.lines(f"{len(plan.missing)} run(s) to train")), flush=True)
    backend = compile_backend(profile.torch_compile)
    out = []
    with tqdm(total=len(plan.missing), desc="runs trained", unit="run") as bar:
        for spec in specs:
            res = run_experiment(spec, results=results, root=profile.data_root, device=profile.device,
                                 progress=True, compile=backend)
            out.append(res)
            if not res.cached:
                bar.update()
    return out


def run_all(profile: Profile, datasets: Iterable[str], methods: Iterable[str], *,
            results: str | Path = "results") -> list[RunResult]:
    """The cached result of every (dataset, method, seed) of ``methods`` (``table1_specs``)."""
    return run_specs(profile, table1_specs(profile, datasets, methods), results=results)


def variant_overrides(v: Variant) -> tuple[dict[str, str], str]:
    """A variant's ModelConfig fields on this machine, and the encoder it really runs with.

    A row built on an ImageNet backbone whose weights are not here (ResNet-18 offline) runs
    with the offline EfficientNet-Lite0 instead (DESIGN 4); the tables print the encoder used.
    """
    o = v.overrides()
    if o["encoder_weights"] == "imagenet":
        o["encoder"] = resolve_backbone(o["encoder"])
    return o, o["encoder"]


def variant_specs(cfg: Profile, variants: Iterable[Variant], datasets: Iterable[str],
                  seeds: Iterable[int]) -> list[tuple[Variant, RunSpec]]:
    """The runs of ablation rows (Tables II-IV, Fig. 6): Hetero-AE with each variant's parts.

    Rows that resolve to the same configuration (HCTN in Tables II-IV; ResNet rows that fall
    back to EfficientNet-Lite0) share one run through the cache. A profile's
    ``ablation_settings`` (e.g. fewer epochs on a CPU) go over its Hetero-AE settings here.
    """
    if cfg.ablation_settings:
        settings = cfg.method_settings
        cfg = replace(cfg, method_settings={**settings, "hetero-ae": {**settings["hetero-ae"], **cfg.ablation_settings}})
    variants, seeds = list(variants), list(seeds)
    return [(v, run_spec(cfg, dataset, "hetero-ae", seed, **variant_overrides(v)[0]))
            for dataset in datasets for v in variants for seed in seeds]


def variant_runs(cfg: Profile, variants: Iterable[Variant], datasets: Iterable[str], *,
                 results: str | Path = "results") -> list[tuple[Variant, RunResult]]:
    """The cached runs of ablation rows (``variant_specs``, over the profile's ``ablation_seeds``), each with its variant."""
    pairs = variant_specs(cfg, variants, datasets, cfg.ablation_seeds)
    runs = run_specs(cfg, [spec for _, spec in pairs], results=results)
    return [(v, r) for (v, _), r in zip(pairs, runs, strict=True)]


def notebook_specs(profile: Profile, notebooks: Iterable[str] | None = None,
                   root: str | Path | None = None, *, verbose: bool = True) -> list[RunSpec]:
    """Every run the table notebooks (``TABLE_NOTEBOOKS``) of a profile ask for, or those of ``notebooks``, once each.

    Table I's (``table1_comparison``; Fig. 4 and Fig. 5 use some of them) and the ablations'
    (Tables II-IV and Fig. 6), on the profile's datasets that are on disk: what ``hetero-ae
    run-profile`` trains ahead of the notebooks, so that they find every run in the cache.
    """
    wanted = set(TABLE_NOTEBOOKS if notebooks is None else notebooks)  # other notebooks: no runs of their own
    specs: list[RunSpec] = []
    if "table1_comparison" in wanted:
        methods = [m for m in PAPER_ORDER if m in profile.methods]
        present = [d for d in profile.datasets if present_datasets([d], profile_root(profile, d, root), verbose=verbose)]
        specs += table1_specs(profile, present, methods)
    ablations = [variants_ for name, variants_ in NOTEBOOK_VARIANTS.items() if name in wanted]
    if ablations:
        datasets = present_datasets(profile.ablation_datasets, root, verbose=verbose)
        for variants_ in ablations:
            specs += [spec for _, spec in variant_specs(profile, variants_, datasets, profile.ablation_seeds)]
    unique: dict[str, RunSpec] = {}  # runs shared by several tables once, in first-asked order
    for spec in specs:
        unique.setdefault(json.dumps(spec.key_dict(), sort_keys=True), spec)
    return list(unique.values())


def record_runs(results_dir: str | Path, notebook: str, runs: Iterable[RunResult]) -> pd.DataFrame:
    """Write ``<results>/logs/<notebook>.runs.csv``: every run a notebook used, and whether it was cached."""
    rows = [{"notebook": notebook, "method": r.spec.model.method, "dataset": r.spec.dataset,
             "seed": r.spec.train.seed, "cached": r.cached and not r.retrained, "train_seconds": r.metrics.get("train_seconds"),
             "folder": str(r.folder)} for r in runs]
    path = Path(results_dir, "logs", f"{notebook}.runs.csv")
    frame = pd.DataFrame(rows)
    write_text(path, frame.to_csv(index=False))
    trained = int((~frame["cached"].astype(bool)).sum())
    print(f"{notebook}: {len(frame)} runs, {len(frame) - trained} from the cache, {trained} trained now")
    return frame


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


def mark_unconverged(text: str, converged: bool) -> str:
    """``text`` (a table cell) with ``UNCONVERGED_MARK`` appended when it comes from a run that did not converge."""
    return text if converged else f"{text}{UNCONVERGED_MARK}"


def cell(mean: float, std: float, digits: int = 1) -> str:
    """'85.2 ± 1.3', or '85.2' when the std is undefined (one seed)."""
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "-"
    if std is None or (isinstance(std, float) and math.isnan(std)):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def beside(ours: str, paper: float) -> str:
    """'ours (paper)', or ours alone where the paper printed nothing."""
    return ours if pd.isna(paper) else f"{ours} ({paper:.1f})"


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


def display_table(agg: pd.DataFrame, metrics: list[str] = METRICS, row: str = "method",
                  names: dict[str, str] | None = None) -> pd.DataFrame:
    """Cells 'ours mean ± std (paper)' per metric, one row per ``row`` value, for Markdown; a cell from a
    run that did not converge carries ``UNCONVERGED_MARK``, a threshold metric where some seed's
    threshold was degenerate ``DEGENERATE_MARK``."""
    rows = []
    for _, r in agg.iterrows():
        d = {"": (names or {}).get(r[row], r[row])}
        for extra in ("encoder", "px", "seeds"):
            if extra in r:
                d[extra] = r[extra]
        for m in metrics:
            text = mark_unconverged(cell(r[f"{m} mean"], r[f"{m} std"]), bool(r.get("converged", True)))
            if m != "AUC" and bool(r.get("degenerate", False)):
                text += DEGENERATE_MARK
            d[m] = beside(text, r.get(f"{m} paper", np.nan))
        rows.append(d)
    return pd.DataFrame(rows)


def markdown_by_dataset(agg: pd.DataFrame, metrics: list[str] = METRICS, row: str = "method",
                        names: dict[str, str] | None = None, note: str = "") -> str:
    """One Markdown table per dataset (cells 'ours mean ± std (paper)'), each under a heading."""
    parts = []
    for dataset, g in agg.groupby("dataset", sort=False):
        stands = paper_dataset(dataset)
        head = f"### {dataset}" + (f" (stands for the paper's {PAPER_DATASETS[stands]})" if stands and stands != dataset
                                   else "")
        parts += [head, "", display_table(g, metrics, row, names).to_markdown(index=False), ""]
    return "\n".join(parts + ([note] if note else [])).rstrip()


def table_notes(threshold: str = "best_f1") -> str:
    """What a table's marks and threshold mean: ``UNCONVERGED_NOTE`` and the threshold's note."""
    return f"{UNCONVERGED_NOTE}\n\n{THRESHOLD_NOTES[threshold]}"


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


def metric_grid(agg: pd.DataFrame, metric: str = "AUC", names: dict[str, str] | None = None) -> pd.DataFrame:
    """One metric as a method x dataset grid of 'ours mean ± std (paper)' cells (the README's Table I)."""
    paper = agg.get(f"{metric} paper", pd.Series(np.nan, index=agg.index))
    converged = agg.get("converged", pd.Series(True, index=agg.index))
    grid = agg.assign(cell=[beside(mark_unconverged(cell(m, s), bool(c)), p) for m, s, p, c
                            in zip(agg[f"{metric} mean"], agg[f"{metric} std"], paper, converged)])
    grid = grid.pivot(index="method", columns="dataset", values="cell")
    grid = grid.reindex([m for m in PAPER_ORDER if m in grid.index] + [m for m in grid.index if m not in PAPER_ORDER])
    grid = grid[list(dict.fromkeys(agg["dataset"]))]
    grid.index = [(names or METHOD_NAMES).get(m, m) for m in grid.index]
    return grid.rename_axis(metric).reset_index()


def welch_test(a: np.ndarray, b: np.ndarray, alternative: str = "two-sided") -> tuple[float, float] | None:
    """Welch's t-test of samples ``a`` against ``b`` (scipy): (t, p), or None when undefined (fewer
    than two values in a group, or no spread in either). ``alternative``: "two-sided", "greater" (a > b), "less"."""
    from scipy.stats import ttest_ind

    a, b = np.asarray(a, float), np.asarray(b, float)
    if len(a) < 2 or len(b) < 2 or (a.std() == 0 and b.std() == 0):
        return None
    with warnings.catch_warnings():  # seeds that agree to many digits: scipy warns, callers say so
        warnings.filterwarnings("ignore", "Precision loss", RuntimeWarning)
        out = ttest_ind(a, b, equal_var=False, alternative=alternative)
    return float(out.statistic), float(out.pvalue)


def welch(frame: pd.DataFrame, a: str, b: str, metric: str, by: str = "dataset") -> pd.DataFrame:
    """Welch's t-test (two-sided) of method ``a`` against ``b`` on ``metric`` per ``by`` group (seeds as samples)."""
    rows = []
    for key, g in frame.groupby(by, sort=False):
        x, y = g.loc[g["method"] == a, metric].to_numpy(), g.loc[g["method"] == b, metric].to_numpy()
        enough = len(x) > 1 and len(y) > 1
        test = welch_test(x, y)
        t, p = test if test else (np.nan, np.nan)
        note = ("" if test else "no spread: every seed of both gave the same value" if enough
                else "needs two or more seeds of each")
        rows.append({by: key, "metric": metric, f"{a} mean": x.mean() if len(x) else np.nan,
                     f"{b} mean": y.mean() if len(y) else np.nan, f"n {a}": len(x), f"n {b}": len(y),
                     "t": float(t), "p": float(p), "note": note})
    return pd.DataFrame(rows)


def per_class(runs: Iterable[RunResult]) -> pd.DataFrame:
    """AUC (%) of normal against each anomalous sub-class: mean ± std over seeds, one row per method and class."""
    rows = [{"method": r.spec.model.method, "dataset": r.spec.dataset, "class": str(c), "AUC": 100 * v}
            for r in runs for c, v in r.metrics["per_class_auc"].items()]
    return mean_std(pd.DataFrame(rows), ["dataset", "class", "method"], ["AUC"])


def save_table(frame: pd.DataFrame, tables: str | Path, name: str, markdown: str | None = None) -> pd.DataFrame:
    """``<tables>/<name>.csv`` and ``.md`` (``markdown`` if given, else the frame as a Markdown table)."""
    write_text(Path(tables, f"{name}.csv"), frame.to_csv(index=False))
    write_text(Path(tables, f"{name}.md"), (markdown if markdown is not None
                                            else frame.to_markdown(index=False, floatfmt=".2f")) + "\n")
    return frame


def show(frame: pd.DataFrame, floatfmt: str = ".1f", note: str = "") -> Any:
    """``frame`` for a notebook's output: a Markdown table without the 0..n index, numbers at
    ``floatfmt``, missing cells (NaN, None) as '-', and ``note`` under it."""
    from IPython.display import Markdown

    cells = pd.DataFrame({c: [("-" if pd.isna(v) else format(v, floatfmt) if isinstance(v, float) else str(v))
                              for v in frame[c]] for c in frame.columns})
    align = tuple("right" if pd.api.types.is_numeric_dtype(frame[c]) and not pd.api.types.is_bool_dtype(frame[c])
                  else "left" for c in frame.columns)
    text = cells.to_markdown(index=False, disable_numparse=True, colalign=align)
    return Markdown(text + (f"\n\n{note}" if note else ""))


def save_figure(fig: Any, figures: str | Path, name: str) -> None:
    """``<figures>/<name>.png`` (150 dpi) and ``.pdf``, written atomically; the PDF without its creation
    date, so that the same figure gives the same bytes."""
    for ext, metadata in (("png", None), ("pdf", {"CreationDate": None})):
        atomic_write(Path(figures, f"{name}.{ext}"), lambda tmp, ext=ext, metadata=metadata: fig.savefig(
            tmp, format=ext, dpi=150, bbox_inches="tight", metadata=metadata))
