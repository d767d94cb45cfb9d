"""Training curves and convergence: did each run's held-out loss settle before its numbers were taken?

The paper trains every model for a fixed 200 epochs (Sec. IV-B1) and shows no training
curves. Here a run records one ``history.json`` row per epoch (training ``loss``, held-out
normal ``val_loss`` when it had held-out images, optional per-term keys) and, in
``metrics.json``'s ``training``, why it stopped: ``plateau`` (the rule fired), ``cap`` (the epoch
cap came first) or ``fixed`` (no early stopping); runs from before that record have stop reason
``unknown``. Whether a run converged is one test for every run, whatever stopped it
(``RunResult.converged``, ``training.stopping.still_falling``): its held-out loss no longer falls
over its last fifth of epochs. A table cell, figure or verdict that uses a run that did not
converge carries ``UNCONVERGED_MARK`` (``mark_unconverged``), explained by ``UNCONVERGED_NOTE``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import pandas as pd

from ..training.run_folder import read_history
from .formatting import METHOD_NAMES, UNCONVERGED_MARK, UNCONVERGED_NOTE, mark_unconverged  # noqa: F401 (re-exported)

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from ..experiment.runs import RunResult

STOP_TEXT = {"cap": "cap reached", "fixed": "fixed epochs", "unknown": "no stopping record",
             "fit": "one fit, no epochs (learns no weight)"}


def run_label(result: RunResult) -> str:
    """A run group's default name: 'Hetero-AE · synth-oct' (method and dataset; seeds are overlaid)."""
    method = result.spec.model.method
    return f"{METHOD_NAMES.get(method, method)} · {result.spec.dataset}"


def _history(result: RunResult) -> list[dict[str, Any]]:
    return read_history(result.folder)


def load_history(result: RunResult, label: str | None = None) -> pd.DataFrame:
    """One row per epoch: epoch (1-based), loss, val_loss (if recorded), seconds, per-term keys,
    then method, dataset, seed and label (``run_label`` unless given)."""
    frame = pd.DataFrame(_history(result))
    return frame.assign(method=result.spec.model.method, dataset=result.spec.dataset,
                        seed=result.spec.train.seed, label=label or run_label(result))


def convergence_row(result: RunResult, label: str | None = None) -> dict[str, Any]:
    """method, dataset, seed, label, epochs_run, cap, best_epoch, stop_reason, kept, converged.

    How it stopped is ``metrics["training"]``'s record (a run without one, from before it, ran
    its configured epochs and kept the last: stop_reason ``unknown``); ``converged`` is the one
    test of every run (``RunResult.converged``).
    """
    t = result.metrics.get("training") or {}
    row = {"method": result.spec.model.method, "dataset": result.spec.dataset, "seed": result.spec.train.seed,
           "label": label or run_label(result)}
    if "stop_reason" not in t:
        return {**row, "epochs_run": len(_history(result)), "cap": result.spec.train.epochs, "best_epoch": None,
                "stop_reason": "unknown", "kept": "last", "converged": result.converged}
    return {**row, "epochs_run": int(t["epochs_run"]), "cap": int(t["cap"]), "best_epoch": t.get("best_epoch"),
            "stop_reason": t["stop_reason"], "kept": t.get("kept", "last"), "converged": result.converged}


def convergence_table(results: Iterable[RunResult], labels: Sequence[str] | None = None) -> pd.DataFrame:
    """``convergence_row`` of every run, in order (best_epoch <NA> where unknown).

    ``labels`` (one per run) name the groups; default ``run_label``.
    """
    results = list(results)
    labels = list(labels) if labels is not None else [None] * len(results)
    frame = pd.DataFrame([convergence_row(r, lab) for r, lab in zip(results, labels, strict=True)])
    return frame.astype({"best_epoch": "Int64"}) if len(frame) else frame


def all_converged(results: Iterable[RunResult]) -> bool:
    """Whether every run (e.g. the seeds behind one table cell) converged."""
    return all(convergence_row(r)["converged"] for r in results)


def stop_note(rows: pd.DataFrame) -> str:
    """A panel's stopping summary over its seeds, one line per kind of stop, e.g.
    'plateau at epoch 34, 41' and 'cap reached (not converged): 1 of 3'."""
    parts = []
    plateau = rows.loc[rows["stop_reason"] == "plateau", "epochs_run"]
    if len(plateau):
        parts.append("plateau at epoch " + ", ".join(str(int(e)) for e in plateau))
    for reason, text in STOP_TEXT.items():
        n = int((rows["stop_reason"] == reason).sum())
        if n:
            parts.append(text if n == len(rows) else f"{text}: {n} of {len(rows)}")
    falling = int((~rows["converged"].astype(bool)).sum())
    if falling:
        parts.append(f"not converged: {falling} of {len(rows)}")
    return "\n".join(parts)


def kept_epoch(row: dict[str, Any] | pd.Series) -> int:
    """The epoch whose weights the run kept: its best epoch when it kept the best, else its last."""
    best = row["best_epoch"]
    return int(best) if row["kept"] == "best" and best is not None and not pd.isna(best) else int(row["epochs_run"])


def _seed_colours(seeds: Iterable[int]) -> dict[int, Any]:
    import seaborn as sns

    seeds = sorted(set(seeds))
    return dict(zip(seeds, sns.color_palette("tab10", max(len(seeds), 1))))


def _draw_run(ax: Any, history: pd.DataFrame, row: pd.Series, colour: Any) -> None:
    """Training loss solid, held-out loss dashed, a dot at the kept epoch, a vertical line at the stop."""
    seed = int(row["seed"])
    ax.plot(history["epoch"], history["loss"], "-", color=colour, lw=1.2, label=f"training loss, seed {seed}")
    has_val = "val_loss" in history and history["val_loss"].notna().any()
    if has_val:
        ax.plot(history["epoch"], history["val_loss"], "--", color=colour, lw=1.2, label=f"held-out loss, seed {seed}")
    kept = history[history["epoch"] == kept_epoch(row)]
    if len(kept):
        ax.scatter(kept["epoch"], kept["val_loss" if has_val else "loss"], s=22, color=colour, zorder=3,
                   label=f"kept epoch, seed {seed}")
    ax.axvline(int(row["epochs_run"]), color=colour, ls=":", lw=0.9, label=f"stop, seed {seed}")


def _legend(fig: Figure, colours: dict[int, Any]) -> None:
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=c, lw=2, label=f"seed {s}") for s, c in colours.items()]
    handles += [Line2D([], [], color="k", ls="-", label="training loss"),
                Line2D([], [], color="k", ls="--", label="held-out loss"),
                Line2D([], [], color="k", ls="", marker="o", label="kept epoch"),
                Line2D([], [], color="k", ls=":", label="stop epoch")]
    fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 8), fontsize=8, frameon=False)


def plot_curves(results: Sequence[RunResult], *, labels: Sequence[str] | None = None, ncols: int = 4,
                panel: tuple[float, float] = (3.6, 2.6)) -> Figure:
    """Small multiples of loss (y, the run's own units, linear) against epoch (x), one panel per group.

    A group is one ``labels`` value (one per run; default ``run_label``: method x dataset)
    with its seeds overlaid, one colour per seed throughout. Axes are not shared: losses of
    different methods differ in scale. Each title gives the group and ``stop_note``. A run of a
    method that learns no weight (stop reason ``fit``, PatchCore) has no curve and no panel.
    """
    import matplotlib.pyplot as plt

    table = convergence_table(results, labels)
    table = table[table["stop_reason"] != "fit"] if len(table) else table
    groups = list(dict.fromkeys(table["label"]))
    ncols = max(1, min(ncols, len(groups)))
    nrows = max(1, -(-len(groups) // ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(panel[0] * ncols, panel[1] * nrows + 0.5), squeeze=False,
                             layout="constrained")
    colours = _seed_colours(table["seed"])
    flat = list(axes.flat)
    for ax, group in zip(flat, groups):
        members = table[table["label"] == group]
        for i, row in members.iterrows():
            _draw_run(ax, load_history(results[i], group), row, colours[int(row["seed"])])
        ax.set_title(f"{group}\n{stop_note(members)}", fontsize=8)
        ax.set_xlabel("epoch", fontsize=8)
        ax.set_ylabel("loss", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in flat[len(groups):]:
        fig.delaxes(ax)
    _legend(fig, colours)
    return fig
