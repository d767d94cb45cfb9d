"""Tables II-IV (paper Sec. IV-E): the ablation notebooks' shared steps, one call each.

Each of ``table2_heterogeneous``, ``table3_hctn`` and ``table4_feature_comparison`` runs the
same steps on its own rows (``experiment.variants``) and writes its artefacts under its own
name: the table beside the paper's (``<name>``), pixel AUROC (``<name>_pixel_auroc``), the
training curves (``<name>_curves``, ``<name>_convergence``), the verdict on the paper's claim
(``<name>_verdict``) and parameters and FLOPs (``<name>_complexity``). What differs between the
tables is data (``ABLATIONS``): the rows, the metrics the paper printed, the claim, and the
complexity columns. The notebooks keep their prose and any table-specific cell.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import pandas as pd

from ..experiment.runs import RunResult
from ..experiment.variants import Variant
from . import curves, first_screen, verdicts
from .complexity import variant_complexity
from .aggregation import METRICS, ablation_rows, ablation_table
from .formatting import UNCONVERGED_NOTE, cell, mark_unconverged, markdown_by_dataset, show, table_notes
from .notebook_setup import setup
from .output import save_figure, save_table
from .run_log import record_runs
from .table_runs import NOTEBOOK_VARIANTS, variant_runs


@dataclass(frozen=True)
class Ablation:
    """What one ablation table reports: its paper number, the metrics the paper printed for it, and
    the complexity columns it shows (the paper's Table II has FLOPs, Table III parameters only)."""

    table: str
    metrics: tuple[str, ...]
    complexity_columns: tuple[str, ...]


COMPLEXITY_HEADERS = {"label": "row", "params_m": "params (M)", "paper_params_m": "paper params (M)",
                      "gflops": "GFLOPs", "paper_gflops": "paper GFLOPs"}
_COST = ("label", "encoder", "decoder", "params_m", "paper_params_m")
ABLATIONS = {
    "table2_heterogeneous": Ablation("II", ("AUC", "F1", "ACC"), (*_COST, "gflops", "paper_gflops")),
    "table3_hctn": Ablation("III", tuple(METRICS), _COST),
    "table4_feature_comparison": Ablation("IV", tuple(METRICS), _COST),
}


class AblationReport:
    """One ablation notebook's runs (cached) and the artefacts it writes under ``results_dir``."""

    def __init__(self, notebook: str, profile: str, *, results_dir: str = "results", **overrides: Any) -> None:
        """Read the profile (``notebook_setup.setup``; ``overrides``: the notebook's parameters, None for the
        profile's), then train or load every run of the notebook's rows on the profile's ablation
        datasets, and record which runs it used."""
        self.notebook, self.ablation = notebook, ABLATIONS[notebook]
        self.variants: tuple[Variant, ...] = NOTEBOOK_VARIANTS[notebook]
        self.cfg, self.datasets = setup(profile, "ablation_datasets", **overrides)
        self.results_dir = results_dir
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

    def pixel_auroc(self) -> str:
        """Pixel AUROC (%, mean ± std over seeds) per row and dataset, which the paper does not report, as
        Markdown; saved as ``<notebook>_pixel_auroc``."""
        rows = self.rows.assign(cell=[mark_unconverged(cell(m, s), bool(c)) for m, s, c in zip(
            self.rows["pixel AUROC mean"], self.rows["pixel AUROC std"], self.rows["converged"])])
        wide = rows.pivot(index="label", columns="dataset", values="cell").reindex(
            list(dict.fromkeys(rows["label"]))).rename_axis(None, axis=1).reset_index()
        text = wide.to_markdown(index=False) + "\n\n" + UNCONVERGED_NOTE
        save_table(wide, self.tables, f"{self.notebook}_pixel_auroc", markdown=text)
        return text

    def convergence(self) -> Any:
        """Every run's curves (``<notebook>_curves``) and how it ended (``<notebook>_convergence``), shown
        as a table."""
        labels = [f"{v.label} · {r.spec.dataset}" for v, r in self.pairs]
        save_figure(curves.plot_curves(self.runs, labels=labels, ncols=3), self.figures, f"{self.notebook}_curves")
        return show(save_table(curves.convergence_table(self.runs, labels), self.tables, f"{self.notebook}_convergence"))

    @cached_property
    def claims(self) -> list[verdicts.Verdict]:
        """The verdicts on the paper's claim for this table (``verdicts.ablation_verdicts``)."""
        images: dict[tuple[str, str], list] = {}
        for v, r in self.pairs:
            images.setdefault((r.spec.dataset, v.key), []).append(verdicts.ImageScores.of(r))
        return verdicts.ablation_verdicts(ablation_rows(self.pairs), self.ablation.table, images=images)

    def first_screen(self) -> str:
        """What ran (per row: encoder, size, seeds) and the verdicts, as Markdown (``report.first_screen``)."""
        labels = {id(r): v.label for v, r in self.pairs}
        what = first_screen.what_ran(self.runs, self.cfg.profile, label=lambda r: labels[id(r)])
        return first_screen.glance(self.notebook, what, self.claims, results_dir=self.results_dir,
                                   verdicts_anchor="verdicts")

    def verdict(self) -> str:
        """The verdicts as a table (``claims``); saved as ``<notebook>_verdict``."""
        text = verdicts.verdict_markdown(self.claims)
        save_table(verdicts.verdict_table(self.claims), self.tables, f"{self.notebook}_verdict", markdown=text)
        return text

    def complexity(self, image_size: int | None = None) -> Any:
        """Parameters (and FLOPs) of each row's paper configuration at ``image_size`` (default: the
        profile's ``complexity_size``), beside the paper's, under a heading that names the size; saved as
        ``<notebook>_complexity``."""
        size = image_size or self.cfg.complexity_size
        cost = pd.DataFrame(variant_complexity(self.variants, image_size=size))[list(self.ablation.complexity_columns)]
        save_table(cost, self.tables, f"{self.notebook}_complexity")
        return show(cost.rename(columns=COMPLEXITY_HEADERS), floatfmt=".2f",
                    note=f"Parameters (M) and FLOPs (G) at {size} px; the paper's at 256 px.")
