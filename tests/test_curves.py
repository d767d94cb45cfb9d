"""Training curves and convergence (hetero_ae.report.curves): fake run folders, no training."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import matplotlib
import numpy as np
import pandas as pd

from hetero_ae.experiment.runs import RunResult
from hetero_ae.report import curves

matplotlib.use("Agg")


def fake_run(tmp_path: Path, method: str = "hetero-ae", dataset: str = "synth-oct", seed: int = 0, *,
             losses: list[float], val: list[float] | None = None, training: dict | None = None,
             cap: int = 10) -> RunResult:
    """A finished run folder with history.json (val_loss when ``val``) and metrics with ``training`` when given."""
    folder = tmp_path / method / dataset / str(seed)
    folder.mkdir(parents=True)
    history = [{"epoch": i + 1, "loss": loss, "seconds": 1.0} for i, loss in enumerate(losses)]
    for row, v in zip(history, val or []):
        row["val_loss"] = v
    (folder / "history.json").write_text(json.dumps(history))
    spec = SimpleNamespace(dataset=dataset, model=SimpleNamespace(method=method),
                           train=SimpleNamespace(seed=seed, epochs=cap))
    return RunResult(spec, folder, {} if training is None else {"training": training}, cached=True)


def plateau(epochs_run: int, best: int, cap: int = 10) -> dict:
    return {"epochs_run": epochs_run, "cap": cap, "best_epoch": best, "stop_reason": "plateau", "kept": "best",
            "converged": True, "patience": 2, "min_delta": 0.0}


def capped(cap: int = 10) -> dict:
    return {"epochs_run": cap, "cap": cap, "best_epoch": cap, "stop_reason": "cap", "kept": "best",
            "converged": False, "patience": 2, "min_delta": 0.0}


def test_load_history_keeps_each_epoch_and_adds_the_run(tmp_path: Path):
    run = fake_run(tmp_path, seed=3, losses=[3.0, 2.0, 1.5], val=[3.5, 2.5, 2.4])
    frame = curves.load_history(run)
    assert frame["epoch"].tolist() == [1, 2, 3] and frame["val_loss"].tolist() == [3.5, 2.5, 2.4]
    assert set(frame["seed"]) == {3} and set(frame["method"]) == {"hetero-ae"}
    assert set(frame["label"]) == {"Hetero-AE · synth-oct"}


FLAT = [3.0, 2.0, 1.8, 1.75, 1.74, 1.75, 1.74, 1.75, 1.74, 1.75]  # falls, then flat over its last fifth
FALLING = [3.0 - 0.2 * i for i in range(10)]  # still falling at the end


def test_convergence_row_reads_the_training_record_and_tests_the_curve(tmp_path: Path):
    run = fake_run(tmp_path, losses=FLAT, val=FLAT, training=plateau(10, 5))
    row = curves.convergence_row(run)
    assert (row["epochs_run"], row["cap"], row["best_epoch"], row["stop_reason"], row["converged"]) == \
        (10, 10, 5, "plateau", True)
    falling = fake_run(tmp_path, seed=1, losses=FALLING, val=FALLING, training=plateau(10, 10))
    assert not curves.convergence_row(falling)["converged"]  # the rule fired, the curve says otherwise


def test_convergence_table_treats_an_old_run_as_not_converged(tmp_path: Path):
    old = fake_run(tmp_path, "mkd", losses=[4.0, 3.0, 2.5, 2.0], cap=4)
    new = fake_run(tmp_path, seed=1, losses=FLAT, val=FLAT, training=plateau(10, 5))
    table = curves.convergence_table([old, new]).set_index("method")
    assert table.loc["mkd", "epochs_run"] == 4 and table.loc["mkd", "cap"] == 4
    assert pd.isna(table.loc["mkd", "best_epoch"]) and table.loc["mkd", "stop_reason"] == "unknown"
    assert not table.loc["mkd", "converged"] and table.loc["hetero-ae", "converged"]


def test_convergence_row_without_a_stopping_record_in_training_is_unknown(tmp_path: Path):
    run = fake_run(tmp_path, losses=[2.0, 1.0], training={"feature_cache": "off"})
    row = curves.convergence_row(run)
    assert (row["epochs_run"], row["stop_reason"], row["converged"]) == (2, "unknown", False)


def test_all_converged_is_false_when_one_seed_is_still_falling(tmp_path: Path):
    a = fake_run(tmp_path, seed=0, losses=FLAT, val=FLAT, training=capped())  # capped, but flat: converged
    b = fake_run(tmp_path, seed=1, losses=FALLING, val=FALLING, training=capped())
    assert curves.all_converged([a]) and not curves.all_converged([a, b])


def test_mark_unconverged_marks_only_unconverged_cells():
    assert curves.mark_unconverged("85.2 ± 1.3", True) == "85.2 ± 1.3"
    assert curves.mark_unconverged("85.2 ± 1.3", False) == "85.2 ± 1.3" + curves.UNCONVERGED_MARK
    assert curves.UNCONVERGED_NOTE.startswith(curves.UNCONVERGED_MARK)


def test_stop_note_lists_plateau_epochs_and_counts_capped_seeds(tmp_path: Path):
    runs = [fake_run(tmp_path, seed=0, losses=FLAT, val=FLAT, training=plateau(10, 5)),
            fake_run(tmp_path, seed=1, losses=FLAT, val=FLAT, training=plateau(7, 5)),
            fake_run(tmp_path, seed=2, losses=FALLING, val=FALLING, training=capped())]
    note = curves.stop_note(curves.convergence_table(runs))
    assert note == "plateau at epoch 10, 7\ncap reached: 1 of 3\nnot converged: 1 of 3"


def test_plot_curves_draws_one_panel_per_group(tmp_path: Path):
    runs = [fake_run(tmp_path, m, d, s, losses=[2.0, 1.0]) for m in ("ae", "mkd", "hetero-ae")
            for d in ("synth-oct", "synth-brain-mri") for s in (0, 1) if (m, d) != ("ae", "synth-brain-mri")]
    fig = curves.plot_curves(runs, ncols=4)
    assert len(fig.axes) == 5  # 5 method x dataset groups on a 2 x 4 grid; the 3 spare panels removed
    assert {len([ln for ln in ax.lines if ln.get_label().startswith("training")]) for ax in fig.axes} == {2}


def test_a_method_that_learns_no_weight_has_no_panel_and_its_row_says_one_fit(tmp_path: Path):
    fit = {"epochs_run": 0, "cap": 0, "best_epoch": None, "stop_reason": "fit", "kept": "fitted", "converged": True}
    patchcore = fake_run(tmp_path, "patchcore", losses=[], training=fit)
    runs = [fake_run(tmp_path, "ae", losses=[2.0, 1.0], training=plateau(2, 2)), patchcore]
    fig = curves.plot_curves(runs)
    assert [ax.get_title().splitlines()[0] for ax in fig.axes] == ["AE · synth-oct"]
    row = curves.convergence_table([patchcore]).iloc[0]
    assert row["stop_reason"] == "fit" and bool(row["converged"])
    assert curves.stop_note(curves.convergence_table([patchcore])) == "one fit, no epochs (learns no weight)"
    assert len(curves.plot_curves([patchcore]).axes) == 0


def _line(ax, label: str):
    (line,) = [ln for ln in ax.lines if ln.get_label() == label]
    return line


def test_plot_curves_lines_carry_the_training_and_held_out_losses(tmp_path: Path):
    run = fake_run(tmp_path, seed=2, losses=[3.0, 2.0, 1.8, 1.7], val=[3.2, 2.1, 2.0, 2.05], training=plateau(4, 3))
    ax = curves.plot_curves([run]).axes[0]
    assert np.allclose(_line(ax, "held-out loss, seed 2").get_ydata(), [3.2, 2.1, 2.0, 2.05])
    assert np.allclose(_line(ax, "training loss, seed 2").get_ydata(), [3.0, 2.0, 1.8, 1.7])
    assert _line(ax, "held-out loss, seed 2").get_linestyle() == "--"


def test_plot_curves_marks_the_kept_epoch_and_the_stop(tmp_path: Path):
    run = fake_run(tmp_path, losses=[3.0, 2.0, 1.8, 1.7], val=[3.2, 2.1, 2.0, 2.05], training=plateau(4, 3))
    ax = curves.plot_curves([run]).axes[0]
    (dot,) = ax.collections
    assert dot.get_offsets().tolist() == [[3.0, 2.0]]  # epoch 3 on the held-out curve
    assert list(_line(ax, "stop, seed 0").get_xdata()) == [4, 4]
    assert "plateau at epoch 4" in ax.get_title()


def test_plot_curves_without_held_out_loss_draws_the_training_curve_only(tmp_path: Path):
    run = fake_run(tmp_path, losses=[3.0, 2.0, 1.5], cap=3)
    ax = curves.plot_curves([run]).axes[0]
    assert [ln.get_label() for ln in ax.lines] == ["training loss, seed 0", "stop, seed 0"]
    assert ax.collections[0].get_offsets().tolist() == [[3.0, 1.5]]  # kept the last epoch
    assert ax.get_title().endswith("no stopping record\nnot converged: 1 of 1")  # no held-out curve to test


def test_plot_curves_says_when_the_cap_came_first_and_whether_the_curve_converged(tmp_path: Path):
    flat = fake_run(tmp_path, losses=FLAT, val=FLAT, training=capped())
    assert curves.plot_curves([flat]).axes[0].get_title().endswith("cap reached")
    falling = fake_run(tmp_path, seed=1, losses=FALLING, val=FALLING, training=capped())
    assert curves.plot_curves([falling]).axes[0].get_title().endswith("cap reached\nnot converged: 1 of 1")


def test_plot_curves_groups_by_the_given_labels(tmp_path: Path):
    runs = [fake_run(tmp_path, seed=s, losses=[2.0, 1.0]) for s in range(3)]
    fig = curves.plot_curves(runs, labels=["CNN+CNN", "CNN+CNN", "HCTN"])
    assert [ax.get_title().split("\n")[0] for ax in fig.axes] == ["CNN+CNN", "HCTN"]


def test_summary_marks_a_threshold_that_calls_every_image_one_class(tmp_path: Path):
    from hetero_ae.experiment.runs import summary

    run = fake_run(tmp_path, losses=FLAT, val=FLAT, training=plateau(10, 5))
    run.spec.model.image_size = 64
    at = {"auc": 0.7, "f1": 0.8, "acc": 0.6}
    run.metrics.update(train_seconds=1.0, best_f1={**at, "sen": 1.0, "spe": 0.0}, normal_q95={**at, "sen": 0.7, "spe": 0.9})
    assert summary(run, "best_f1")["degenerate"] and not summary(run, "normal_q95")["degenerate"]
    assert summary(run)["converged"]
