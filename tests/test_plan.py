"""What a set of runs will cost before it starts (hetero_ae.experiment.plan), and who says it."""

from __future__ import annotations

import shutil
from dataclasses import replace

import pytest

from hetero_ae.data.synthetic import make_synthetic
from hetero_ae.experiment.plan import Plan, machine_seconds, plan_runs
from hetero_ae.experiment.specs import run_name
from hetero_ae.experiment.profiles import load_profile
from hetero_ae.experiment.runs import run_experiment
from hetero_ae.experiment.specs import run_spec
from hetero_ae.io import write_json


@pytest.fixture(scope="module")
def roots(tmp_path_factory):
    """The smoke benchmark generated with seed 0 and with seed 1."""
    out = {}
    for seed in (0, 1):
        out[seed] = tmp_path_factory.mktemp(f"seed{seed}")
        make_synthetic(out[seed] / "synthetic", size=64, seed=seed, preset="smoke", workers=2)
    return out


@pytest.fixture(scope="module")
def trained(roots, tmp_path_factory):
    """A results folder holding one AE run on seed-0 data, and a reference speed twice this machine's step."""
    results = tmp_path_factory.mktemp("results")
    spec = run_spec(load_profile("smoke"), "synth-covid19", "ae", seed=0)
    res = run_experiment(spec, results=results, root=roots[0], progress=False)
    write_json(results / "runs" / "speed.json", {"seconds": 2 * machine_seconds(), "device": "a slower machine"})
    return results, spec, res


def test_a_cached_run_is_counted_and_nothing_is_estimated(roots, trained):
    results, spec, res = trained
    plan = plan_runs([spec], results=results, root=roots[0])
    assert [r.folder for r in plan.cached] == [res.folder] and not plan.missing and plan.estimate is None
    assert plan.lines("check") == ["check: all 1 run(s) are in the cache; nothing to train"]


def test_a_miss_on_other_data_is_explained_and_timed_by_the_cached_run_scaled_to_this_machine(roots, trained):
    results, spec, res = trained
    plan = plan_runs([spec], results=results, root=roots[1])
    assert not plan.cached and [s for s, _ in plan.missing] == [spec]
    assert "seed 0" in plan.missing[0][1] and "seed 1" in plan.missing[0][1]
    assert 0.2 < plan.speed_ratio < 1.5  # this machine against a reference of twice its own step time
    assert plan.seconds[0] == pytest.approx(res.metrics["train_seconds"] * plan.speed_ratio)
    lines = plan.lines("check", every_run=True)
    assert lines[0].startswith("check: 1 of 1 run(s) are not in the cache and will train (about ")
    assert lines[1].startswith("  synth-covid19: 1 run(s): cached for synthetic") and "seed 1" in lines[1]
    assert lines[2].startswith("  missing: ae on synth-covid19, seed 0, 64 px, patience 1, up to 2 epochs (")


def test_a_new_configuration_is_timed_by_the_same_method_on_the_same_dataset(roots, trained):
    results, spec, res = trained
    other = replace(spec, train=replace(spec.train, seed=7))
    plan = plan_runs([other], results=results, root=roots[0])
    assert plan.missing[0][1] == "no run of this configuration in the cache"
    assert plan.seconds[0] == pytest.approx(res.metrics["train_seconds"] * plan.speed_ratio)


def test_without_any_cached_run_of_the_method_the_time_is_unknown(roots, tmp_path):
    spec = run_spec(load_profile("smoke"), "synth-oct", "vae", seed=0)
    plan = plan_runs([spec], results=tmp_path, root=roots[0])
    assert plan.seconds == {0: None} and plan.speed_ratio is None
    assert "time unknown" in plan.lines("x")[0]


def test_a_run_is_named_by_the_parts_that_make_it_differ():
    smoke = load_profile("smoke")
    spec = run_spec(smoke, "synth-oct", "hetero-ae", seed=2, decoder="cnn")
    assert run_name(spec) == f"hetero-ae (decoder cnn, feature_scale rms) on synth-oct, seed 2, {spec.model.image_size} px"


def test_with_its_rule_a_runs_name_tells_a_second_rule_run_from_its_first():
    study = load_profile("study")
    first = run_spec(study, "synth-oct", "stfpm", seed=0)
    second = run_spec(study.under_rule(study.second_rule), "synth-oct", "stfpm", seed=0)
    assert run_name(first) == run_name(second)  # the records of the design benchmarks keep their names
    assert run_name(first, rule=True) == "stfpm on synth-oct, seed 0, 128 px, patience 30, up to 120 epochs"
    assert run_name(second, rule=True) == "stfpm on synth-oct, seed 0, 128 px, patience 60, up to 150 epochs"
    assert run_name(run_spec(study, "synth-oct", "patchcore", seed=0), rule=True).endswith("128 px, one fit")
    fixed = replace(first, train=replace(first.train, patience=0))
    assert run_name(fixed, rule=True).endswith("128 px, 120 epochs")
    fanogan = run_spec(study, "synth-oct", "f-anogan", seed=0)  # trains every epoch, whatever the patience
    assert fanogan.train.patience == 30
    assert run_name(fanogan, rule=True) == "f-anogan on synth-oct, seed 0, 64 px, 120 epochs"


def test_a_method_timed_only_at_another_size_is_projected_by_its_pixels(roots, trained, tmp_path):
    results, spec, res = trained
    bigger = replace(spec, dataset="synth-oct", model=replace(spec.model, image_size=2 * spec.model.image_size))
    plan = plan_runs([bigger], results=results, root=roots[0])
    assert plan.seconds[0] == pytest.approx(4 * res.metrics["train_seconds"] * plan.speed_ratio)


def test_a_notebook_about_to_train_says_so_then_shows_progress(roots, trained, tmp_path, capsys):
    from hetero_ae.report.table_runs import run_specs

    results, spec, res = trained
    profile = replace(load_profile("smoke"), data_root=str(roots[0]))
    new = run_spec(profile, "synth-covid19", "ae", seed=3)
    mine = tmp_path / "results"
    shutil.copytree(results, mine)
    out = run_specs(profile, [spec, new], results=mine)
    captured = capsys.readouterr()
    assert [r.cached for r in out] == [True, False]
    assert "1 run(s) to train: 1 of 2 run(s) are not in the cache and will train (about " in captured.out
    assert "runs trained" in captured.err and "1/1" in captured.err  # the bar over the runs
    assert run_specs(profile, [spec, new], results=mine)[1].cached
    assert "to train" not in capsys.readouterr().out  # all cached: nothing said


def test_plans_of_empty_lists_say_nothing():
    assert Plan([], []).lines("x") == []


def test_a_run_scored_with_its_twins_weights_costs_no_training(roots, trained):
    results, _, _ = trained
    spec = run_spec(load_profile("smoke"), "synth-oct", "hetero-ae", seed=0, map_distance="cosine+mse")
    plan = plan_runs([spec], results=results, root=roots[0])
    assert plan.seconds == {0: 0.0}
    lines = plan.lines("x", every_run=True)
    assert "1 of them scored with another run's weights" in lines[0] and lines[-1].endswith("(its twin's weights)")
