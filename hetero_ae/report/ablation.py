"""Tables II-IV (paper Sec. IV-E): the ablation notebooks' shared steps, one call each.

Each of ``table2_heterogeneous``, ``table3_hctn`` and ``table4_feature_comparison`` runs the
same steps on its own rows (``experiment.variants``) and writes its artefacts under its own
name: the table beside the paper's (``<name>``), ours minus the paper's (``<name>_diff``), the
training curves (``<name>_curves``, ``<name>_convergence``), the verdict on the paper's claim
(``<name>_verdict``) and parameters and FLOPs (``<name>_complexity``). What differs between the
tables is data (``ABLATIONS``): the rows, the metrics the paper printed, the claim, and the
complexity columns. The notebooks keep their prose and any table-specific cell.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from ..experiment.runs import RunResult
from ..experiment.variants import Variant
from . import curves, verdicts
from .complexity import variant_complexity
from .tables import (
    METRICS,
    NOTEBOOK_VARIANTS,
    ablation_rows,
    ablation_table,
    markdown_by_dataset,
    record_runs,
    save_figure,
    save_table,
    setup,
    table_notes,
    variant_runs,
)


@dataclass(frozen=True)
class Ablation:
    """What one ablation table reports: its paper number, the metrics the paper printed for it, and
    the complexity columns it shows (the paper's Table II has FLOPs, Table III parameters only)."""

    table: str
    metrics: tuple[str, ...]
    complexity_columns: tuple[str, ...]


_COST = ("label", "encoder", "decoder", "params_m", "paper_params_m")
ABLATIONS = {
    "table2_heterogeneous": Ablation("II", ("AUC", "F1", "ACC"), (*_COST, "gflops", "paper_gflops")),
    "table3_hctn": Ablation("III", tuple(METRICS), _COST),
    "table4_feature_comparison": Ablation("IV", tuple(METRICS), _COST),
}


class AblationReport:
    """One ablation notebook's runs (cached) and the artefacts it writes under ``results_dir``."""

    def __init__(self, notebook: str, profile: str, *, results_dir: str = "results", **overrides: Any) -> None:
        """Read the profile (``tables.setup``; ``overrides``: the notebook's parameters, None for the
        profile's), then train or load every run of the notebook's rows on the profile's ablation
        datasets, and record which runs it used."""
        self.notebook, self.ablation = notebook, ABLATIONS[notebook]
        self.variants: tuple[Variant, ...] = NOTEBOOK_VARIANTS[notebook]
        self.cfg, self.datasets = setup(profile, "ablation_datasets", **overrides)
        self.tables, self.figures = Path(results_dir, "tables"), Path(results_dir, "figures")
        self.pairs: list[tuple[Variant, RunResult]] = variant_runs(self.cfg, self.variants, self.datasets,
                                                                   results=results_dir)
        record_runs(results_dir, notebook, self.runs)
        self.rows = ablation_table(self.pairs, list(self.ablation.metrics))

    @property
    def runs(self) -> list[RunResult]:
        return [r for _, r in self.pairs]

    def table(self) -> str:
        """The table, one per dataset, cells 'ours mean ± std (paper)'; saved as ``<notebook>``."""
        text = markdown_by_dataset(self.rows, list(self.ablation.metrics), row="label", note=table_notes("best_f1"))
        save_table(self.rows, self.tables, self.notebook, markdown=text)
        return text

    def diff(self) -> pd.DataFrame:
        """Ours minus the paper's (points) per metric, and pixel AUROC; saved as ``<notebook>_diff``."""
        values = [f"{m} diff" for m in self.ablation.metrics] + ["pixel AUROC mean"]
        diff = self.rows.pivot_table(index="label", columns="dataset", values=values, sort=False)
        save_table(diff.round(2).reset_index(), self.tables, f"{self.notebook}_diff")
        return diff

    def convergence(self) -> pd.DataFrame:
        """Every run's curves (``<notebook>_curves``) and how it ended (``<notebook>_convergence``)."""
        labels = [f"{v.label} · {r.spec.dataset}" for v, r in self.pairs]
        save_figure(curves.plot_curves(self.runs, labels=labels, ncols=3), self.figures, f"{self.notebook}_curves")
        return save_table(curves.convergence_table(self.runs, labels), self.tables, f"{self.notebook}_convergence")

    def verdict(self) -> str:
        """The verdict on the paper's claim for this table (``verdicts.ablation_verdicts``); saved as
        ``<notebook>_verdict``."""
        images: dict[tuple[str, str], list] = {}
        for v, r in self.pairs:
            images.setdefault((r.spec.dataset, v.key), []).append(verdicts.ImageScores.of(r))
        claims = verdicts.ablation_verdicts(ablation_rows(self.pairs), self.ablation.table, images=images)
        text = verdicts.verdict_markdown(claims)
        save_table(verdicts.verdict_table(claims), self.tables, f"{self.notebook}_verdict", markdown=text)
        return text

    def complexity(self, image_size: int | None = None) -> pd.DataFrame:
        """Parameters (and FLOPs) of each row's paper configuration at ``image_size`` (default: the
        profile's ``complexity_size``), beside the paper's; saved as ``<notebook>_complexity``."""
        size = image_size or self.cfg.complexity_size
        cost = pd.DataFrame(variant_complexity(self.variants, image_size=size))[list(self.ablation.complexity_columns)]
        return save_table(cost, self.tables, f"{self.notebook}_complexity")
