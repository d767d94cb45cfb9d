"""How the tables read: cells 'ours mean ± std (paper)', their marks and notes, method names, Markdown.

A cell is the mean ± sample std over seeds, the std left out with one seed (``cell``), with the
paper's value beside it where the paper printed one (``beside``). A cell from a run that did not
converge carries ``UNCONVERGED_MARK``, a threshold metric where a run called every test image one
class ``DEGENERATE_MARK``; ``table_notes`` says what they mean under a table. ``show`` puts a
table in a notebook's output.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import pandas as pd

from ..methods import METHODS, table_order
from .aggregation import METRICS, PAPER_DATASETS, paper_dataset

class DisplayNames(Mapping[str, str]):
    """Each registered method's name as the report writes it (``AnomalyModel.display_name``), in Table I's
    order (``table_order``): read from the registry when asked, so a method registered later is named too."""

    def __getitem__(self, method: str) -> str:
        return METHODS[method].display_name

    def __iter__(self) -> Iterator[str]:
        return iter(table_order())

    def __len__(self) -> int:
        return len(METHODS)


METHOD_NAMES = DisplayNames()
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


def metric_grid(agg: pd.DataFrame, metric: str = "AUC", names: dict[str, str] | None = None) -> pd.DataFrame:
    """One metric as a method x dataset grid of 'ours mean ± std (paper)' cells (the README's Table I)."""
    paper = agg.get(f"{metric} paper", pd.Series(np.nan, index=agg.index))
    converged = agg.get("converged", pd.Series(True, index=agg.index))
    grid = agg.assign(cell=[beside(mark_unconverged(cell(m, s), bool(c)), p) for m, s, p, c
                            in zip(agg[f"{metric} mean"], agg[f"{metric} std"], paper, converged)])
    grid = grid.pivot(index="method", columns="dataset", values="cell")
    order = table_order()
    grid = grid.reindex([m for m in order if m in grid.index] + [m for m in grid.index if m not in order])
    grid = grid[list(dict.fromkeys(agg["dataset"]))]
    grid.index = [(names or METHOD_NAMES).get(m, m) for m in grid.index]
    return grid.rename_axis(metric).reset_index()


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
