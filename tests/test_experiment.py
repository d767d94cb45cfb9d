from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from hetero_ae.cli import main
from hetero_ae.data.synthetic import make_synthetic
from hetero_ae.errors import UserError
from hetero_ae.experiment.profiles import load_profile
from hetero_ae.experiment.runs import run_experiment, run_folder
from hetero_ae.experiment.specs import run_spec


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    make_synthetic(root / "synthetic", size=64, seed=0, preset="smoke", workers=2)
    return root


@pytest.fixture(scope="module")
def smoke():
    return load_profile("smoke")


def test_a_run_is_trained_once_then_served_from_the_cache(data_root, smoke, tmp_path):
    spec = run_spec(smoke, "synth-covid19", "hetero-ae", seed=0)
    first = run_experiment(spec, results=tmp_path, root=data_root, progress=False)
    assert not first.cached and (first.folder / "checkpoint.pt").is_file()
    again = run_experiment(spec, results=tmp_path, root=data_root, progress=False)
    assert again.cached and again.metrics == first.metrics


def test_metrics_hold_both_thresholds_per_class_auc_and_pixel_metrics(data_root, smoke, tmp_path, capsys):
    run = run_experiment(run_spec(smoke, "synth-oct", "hetero-ae", seed=0), results=tmp_path, root=data_root,
                         progress=False)
    m = run.metrics
    for threshold in ("best_f1", "normal_q95"):
        assert set(m[threshold]) >= {"auc", "f1", "acc", "sen", "spe", "threshold"}
    assert set(m["per_class_auc"]) == {"CNV", "DME", "DRUSEN"}
    assert set(m["pixel"]) == {"pixel_auroc", "aupro", "best_dice"}
    assert m["held_out_normals"] == "val split"
    # the run folder keeps its held-out normals' raw scores, as `hetero-ae train` does: `score` decides with them
    from hetero_ae.evaluation.metrics import normal_quantile_threshold
    from hetero_ae.training.run_folder import read_val_scores

    held = read_val_scores(run.folder)
    assert held and normal_quantile_threshold(np.asarray(held)) == pytest.approx(m["normal_q95"]["threshold"])
    images = next((data_root / "synthetic" / "synth-oct").glob("*/test/DME"))
    assert main(["score", "--checkpoint", str(run.folder / "checkpoint.pt"), "--images", str(images),
                 "--out", str(tmp_path / "scored")]) == 0
    assert "decision at" in capsys.readouterr().out


def test_a_run_cached_before_folders_kept_held_out_scores_still_gives_a_decision(data_root, smoke, tmp_path, capsys,
                                                                                 monkeypatch):
    """A cached run without val_scores.json (as the runs committed before it existed): `score` takes its held-out
    normals again as the run took them (10 % of the training normals, its seed), scores them and decides."""
    from hetero_ae.training.run_folder import VAL_SCORES, read_val_scores

    run = run_experiment(run_spec(smoke, "synth-brain-mri", "ae", seed=0), results=tmp_path, root=data_root,
                         progress=False)
    kept = read_val_scores(run.folder)
    (run.folder / VAL_SCORES).unlink()
    images = data_root / "synthetic" / "synth-brain-mri" / "Testing" / "glioma"
    monkeypatch.setenv("HETERO_AE_DATA", str(tmp_path / "elsewhere"))  # the data are not there: scored, no decision
    assert main(["score", "--checkpoint", str(run.folder / "checkpoint.pt"), "--images", str(images),
                 "--out", str(tmp_path / "no-data")]) == 0
    out, err = capsys.readouterr()
    assert "no decision" in out and "synth-brain-mri as run" in err and not (run.folder / VAL_SCORES).exists()
    monkeypatch.setenv("HETERO_AE_DATA", str(data_root))
    assert main(["score", "--checkpoint", str(run.folder / "checkpoint.pt"), "--images", str(images),
                 "--out", str(tmp_path / "scored")]) == 0
    out, err = capsys.readouterr()
    assert "decision at" in out and "held-out normal image(s)" in err
    assert read_val_scores(run.folder) == pytest.approx(kept, rel=1e-5)
    rows = (tmp_path / "scored" / "scores.csv").read_text().splitlines()
    assert rows[0].split(",")[-1] == "decision"


def test_without_a_val_split_training_normals_are_held_out(data_root, smoke, tmp_path):
    res = run_experiment(run_spec(smoke, "synth-brain-mri", "hetero-ae", seed=0), results=tmp_path, root=data_root,
                         progress=False)
    config = json.loads((res.folder / "config.json").read_text())
    assert config["train_images"] + config["val_images"] == 24 and config["val_images"] == 2


def test_under_torchrun_a_process_other_than_rank_0_trains_and_writes_nothing(data_root, smoke, tmp_path, monkeypatch):
    monkeypatch.setenv("RANK", "1")  # what torchrun sets in the second process (hetero_ae.training.distributed)
    res = run_experiment(run_spec(smoke, "synth-oct", "ae", seed=0), results=tmp_path, root=data_root, progress=False)
    assert res.metrics == {} and not res.folder.exists()


def test_other_data_or_config_gets_another_folder(data_root, smoke, tmp_path):
    a = run_spec(smoke, "synth-oct", "hetero-ae", seed=0)
    b = run_spec(smoke, "synth-oct", "hetero-ae", seed=1)
    assert run_folder(a, tmp_path, data_root) != run_folder(b, tmp_path, data_root)
    assert run_folder(a, tmp_path, data_root) == run_folder(run_spec(smoke, "synth-oct", "hetero-ae", 0), tmp_path,
                                                            data_root)


def test_unknown_method_or_profile_is_a_clear_error(smoke):
    with pytest.raises(UserError, match="unknown method"):
        run_spec(smoke, "synth-oct", "padim", seed=0)
    with pytest.raises(UserError, match="no profile 'huge'"):
        load_profile("huge")


def test_a_profile_is_typed_and_a_bad_setting_is_named_with_its_file(tmp_path, monkeypatch):
    import yaml

    settings = yaml.safe_load(open("profiles/smoke.yaml"))
    for change, message in [({"epochs": 3}, "unknown setting"), ({"image_size": "64"}, "image_size must be an int"),
                            ({"seeds": [0, "one"]}, "seeds must be a list of int"),
                            ({"method_settings": []}, "method_settings must be a mapping"),
                            ({"second_size": settings["image_size"]}, "second_size must differ from image_size"),
                            ({"second_size": 8}, "second_size must be a size in pixels"),
                            ({"second_rule": {"patience": 1}}, "second_rule must differ from the profile's rule"),
                            ({"second_rule": {"epochs": 9}}, "second_rule must be a mapping of patience"),
                            ({"second_rule": {"patience": 2.5}}, "second_rule must be a mapping of patience"),
                            ({"second_rule": {"min_delta": -0.1}}, "second_rule must be a mapping of patience")]:
        bad = tmp_path / "bad.yaml"
        bad.write_text(yaml.safe_dump({**settings, **change}))
        with pytest.raises(UserError, match=message) as e:
            load_profile(str(bad))
        assert str(bad) in str(e.value)
    monkeypatch.chdir(tmp_path)  # the repository's profiles are found from anywhere
    p = load_profile("smoke")
    assert p.image_size == 64 and p.seeds == (0, 1) and p.method_seed_list("rd4ad") == [0]


def test_cli_run_prints_one_table_row(data_root, tmp_path, capsys):
    assert main(["run", "--dataset", "synth-covid19", "--method", "hetero-ae", "--profile", "smoke",
                 "--data-root", str(data_root), "--results", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "| hetero-ae" in out and "pixel AUROC" in out


def test_runs_trained_side_by_side_equal_runs_trained_one_after_another(data_root, smoke, tmp_path):
    import numpy as np
    import pandas as pd

    from hetero_ae.experiment.runs import run_experiments

    specs = [run_spec(smoke, "synth-covid19", "hetero-ae", seed=0), run_spec(smoke, "synth-oct", "ae", seed=0)]
    done = []
    side = run_experiments(specs, jobs=2, results=tmp_path / "a", root=data_root,
                           on_done=lambda spec, folder, cached: done.append((spec.model.method, cached)))
    alone = run_experiments(specs, jobs=1, results=tmp_path / "b", root=data_root)
    assert sorted(done) == [("ae", False), ("hetero-ae", False)]
    assert [r.spec for r in side] == specs and not any(r.cached for r in side)
    for a, b in zip(side, alone):
        sa, sb = (pd.read_csv(r.folder / "scores.csv") for r in (a, b))
        assert sa["path"].tolist() == sb["path"].tolist()
        np.testing.assert_allclose(sa["score"], sb["score"], rtol=1e-3, atol=1e-5)  # one thread against several
    again = run_experiments(specs, jobs=2, results=tmp_path / "a", root=data_root)
    assert all(r.cached for r in again) and [r.metrics for r in again] == [r.metrics for r in side]


def test_run_profile_refuses_a_number_of_jobs_below_one(capsys):
    assert main(["run-profile", "--profile", "smoke", "--jobs", "0"]) == 2
    assert "--jobs must be 1 or more" in capsys.readouterr().err


@pytest.mark.parametrize("given, expected", [([], 2), (["--jobs", "1"], 1)])
def test_run_profile_trains_the_profiles_train_jobs_at_a_time_unless_told(tmp_path, monkeypatch, given, expected):
    profile = tmp_path / "two.yaml"
    profile.write_text(Path("profiles/smoke.yaml").read_text() + "\ntrain_jobs: 2\n")
    seen = []
    monkeypatch.setattr("hetero_ae.experiment.runs.run_experiments", lambda specs, **kw: seen.append(kw["jobs"]) or [])
    assert main(["run-profile", "--profile", str(profile), "--datasets", "synth-oct", "--methods", "ae",
                 "--data-root", str(tmp_path / "data"), "--results", str(tmp_path / "results"), *given]) == 0
    assert seen == [expected]


def test_a_method_may_run_at_its_own_image_size(smoke):
    profile = replace(smoke, method_settings={**smoke.method_settings,
                                              "ae": {**smoke.method_settings["ae"], "image_size": 96}})
    assert run_spec(profile, "synth-oct", "ae", seed=0).model.image_size == 96
    assert run_spec(profile, "synth-oct", "hetero-ae", seed=0).model.image_size == smoke.image_size


def test_a_profile_at_another_size_reads_synthetic_data_generated_at_that_size_from_their_own_folder(
        data_root, smoke, tmp_path):
    from hetero_ae.experiment.plan import plan_runs
    from hetero_ae.experiment.specs import spec_root

    profile = replace(smoke, method_settings={**smoke.method_settings,
                                              "ae": {**smoke.method_settings["ae"], "image_size": 96}})
    assert profile.at_size(smoke.image_size) is profile
    big = profile.at_size(128)
    assert big.image_size == 128 and big.data_subdir == "128px" and "image_size" not in big.method_settings["ae"]
    spec = run_spec(big, "synth-covid19", "hetero-ae", seed=0)
    assert spec.data_subdir == "128px" and spec.model.image_size == 128
    assert "data_subdir" not in json.dumps(spec.key_dict())  # the data's identity keys it, not the folder's name
    assert run_spec(big, "covid19", "hetero-ae", seed=0).data_subdir is None  # real data serve every size
    assert spec_root(spec, data_root) == data_root / "128px" and spec_root(run_spec(smoke, "synth-oct", "ae", 0),
                                                                           data_root) == data_root
    make_synthetic(data_root / "128px" / "synthetic", size=128, seed=0, preset="smoke", workers=2)
    assert plan_runs([spec], results=tmp_path, root=data_root).missing
    spec = replace(spec, train=replace(spec.train, epochs=1))
    run = run_experiment(spec, results=tmp_path, root=data_root, progress=False)
    config = json.loads((run.folder / "config.json").read_text())
    assert config["data"]["key"]["synthetic"]["size"] == 128  # trained on the data generated at 128 px
    assert plan_runs([spec], results=tmp_path, root=data_root).cached[0].folder == run.folder


def test_run_profile_at_another_size_plans_only_the_chosen_runs_on_data_generated_at_that_size(tmp_path, capsys):
    root = tmp_path / "data"
    args = ["run-profile", "--profile", "smoke", "--size", "128", "--notebook", "table1_comparison",
            "--datasets", "synth-covid19", "--methods", "hetero-ae", "--data-root", str(root),
            "--results", str(tmp_path / "results")]
    assert main([*args, "--check"]) == 1  # nothing is cached: every run is missing
    out = capsys.readouterr().out
    seeds = load_profile("smoke").method_seed_list("hetero-ae")
    assert out.count("missing: hetero-ae") == len(seeds) and out.count("on synth-covid19, seed") == len(seeds)
    assert "128 px" in out and "synth-oct" not in out
    stamp = json.loads((root / "128px" / "synthetic" / "synthetic.json").read_text())
    assert stamp["size"] == 128 and not (root / "synthetic").exists()  # the profile's own size is not generated


def test_run_profile_keeps_the_weights_of_the_runs_the_figures_draw_and_of_no_other(tmp_path):
    import torch

    from hetero_ae.experiment.runs import keep_run_weights
    from hetero_ae.training.checkpoint import CHECKPOINT, WEIGHTS, read_checkpoint

    results = tmp_path / "results"
    assert main(["run-profile", "--profile", "smoke", "--notebook", "table1_comparison", "--datasets", "synth-covid19",
                 "--methods", "hetero-ae", "vae", "--data-root", str(tmp_path / "data"), "--results", str(results),
                 "--jobs", "1"]) == 0
    runs = {(json.loads((f / "config.json").read_text())["model"]["method"],
             json.loads((f / "config.json").read_text())["train"]["seed"]): f
            for f in (results / "runs").glob("*/synth-covid19/*")}
    assert sorted(runs) == [("hetero-ae", 0), ("hetero-ae", 1), ("vae", 0)]
    # Hetero-AE's first seed is Fig. 4's and Fig. 5's; its second seed and VAE (not in Fig. 4) are no figure's
    assert [k for k, f in sorted(runs.items()) if (f / WEIGHTS).is_file()] == [("hetero-ae", 0)]
    kept, ckpt = (read_checkpoint(runs["hetero-ae", 0] / name) for name in (WEIGHTS, CHECKPOINT))
    assert kept["optimizers"] == [] and kept["model"].keys() == ckpt["model"].keys()
    assert all(torch.equal(kept["model"][k], ckpt["model"][k]) for k in ckpt["model"])
    assert not keep_run_weights(runs["hetero-ae", 0])  # written once
    assert keep_run_weights(runs["hetero-ae", 1]) and (runs["hetero-ae", 1] / WEIGHTS).is_file()


def test_the_runs_whose_weights_are_kept_are_those_fig4_and_fig5_load(smoke):
    from hetero_ae.report.heatmaps import figure_methods
    from hetero_ae.report.table_runs import figure_specs, weights_specs

    datasets = ["synth-brain-mri", "synth-covid19"]  # Fig. 4 draws brain MRI at the second size, COVID-19 at its own
    kept = {json.dumps(s.key_dict(), sort_keys=True) for s in weights_specs(smoke, datasets)}
    fig4 = figure_specs(smoke, datasets, figure_methods(smoke.methods))
    fig5 = [run_spec(replace(smoke, seeds=smoke.seeds[:1], method_seeds={}), d, "hetero-ae", smoke.seeds[0])
            for d in datasets]  # fig5_tsne's run on any tsne_dataset
    assert kept == {json.dumps(s.key_dict(), sort_keys=True) for s in fig4 + fig5}
    sizes = {(s.dataset, s.model.method, s.model.image_size) for s in weights_specs(smoke, datasets)}
    assert ("synth-brain-mri", "hetero-ae", smoke.second_size) in sizes  # Fig. 4's
    assert ("synth-brain-mri", "hetero-ae", smoke.image_size) in sizes  # Fig. 5's
    assert not any(s.train.seed != smoke.seeds[0] or s.model.method == "vae" for s in weights_specs(smoke, datasets))


def test_runs_the_filter_leaves_out_train_first_in_this_process(data_root, smoke, tmp_path, monkeypatch):
    import concurrent.futures

    from hetero_ae.experiment.runs import run_experiments

    specs = [run_spec(smoke, "synth-covid19", "hetero-ae", seed=0), run_spec(smoke, "synth-oct", "ae", seed=0)]
    done = []
    out = run_experiments(specs, jobs=2, results=tmp_path / "mixed", root=data_root,
                          side_by_side=lambda spec: spec.model.method == "hetero-ae",
                          on_done=lambda spec, folder, cached: done.append(spec.model.method))
    assert done == ["ae", "hetero-ae"] and [r.spec for r in out] == specs and not any(r.cached for r in out)

    def no_pool(*args, **kwargs):
        raise AssertionError("a worker process was started")

    monkeypatch.setattr(concurrent.futures, "ProcessPoolExecutor", no_pool)
    again = run_experiments(specs, jobs=2, results=tmp_path / "alone", root=data_root, side_by_side=lambda spec: False)
    assert [r.spec for r in again] == specs and not any(r.cached for r in again)


def test_a_run_that_changes_only_the_map_scores_its_twins_weights_without_training(data_root, smoke, tmp_path,
                                                                                   monkeypatch):
    import numpy as np
    import pandas as pd

    from hetero_ae.experiment import runs
    from hetero_ae.experiment.runs import rescored, run_experiments, trained_model, training_twin

    paper = run_spec(smoke, "synth-covid19", "hetero-ae", seed=0)
    magnitude = run_spec(smoke, "synth-covid19", "hetero-ae", seed=0, map_distance="cosine+mse")
    assert training_twin(paper) is None and training_twin(magnitude) == paper
    trained = []
    real_train = runs.train
    monkeypatch.setattr(runs, "train", lambda *a, **k: trained.append(a[0]) or real_train(*a, **k))
    a, b = run_experiments([magnitude, paper], jobs=1, results=tmp_path, root=data_root)
    assert trained == [paper.model]  # one training; the rescoring run trains nothing
    assert not (a.folder / "checkpoint.pt").exists() and a.metrics["training"]["weights_from"] == b.folder.name
    assert a.metrics["train_seconds"] == b.metrics["train_seconds"]
    assert (a.folder / "history.json").read_text() == (b.folder / "history.json").read_text()
    model = rescored(trained_model(b, root=data_root), magnitude.model)
    assert model.map_distance == "cosine+mse"
    from hetero_ae.data.datasets import load_split
    from hetero_ae.evaluation.predict import predict

    test = load_split("synth-covid19", "test", paper.model.image_size, root=data_root)
    raw = predict(model, test.images, normalize=False)[1]
    np.testing.assert_allclose(pd.read_csv(a.folder / "scores.csv")["score"], model.normalize_scores(raw),
                               rtol=1e-4, atol=1e-6)
    assert a.metrics["best_f1"]["auc"] != b.metrics["best_f1"]["auc"]  # the other map scores otherwise
    assert trained_model(a, root=data_root).map_distance == "cosine+mse"
    pooled = run_experiments([magnitude, paper], jobs=2, results=tmp_path / "pool", root=data_root)
    assert pooled[0].metrics["training"]["weights_from"] == pooled[1].folder.name  # scored after its twin trained
    assert not (pooled[0].folder / "checkpoint.pt").exists()


def test_a_figure_keeps_a_runs_weights_which_give_its_model_without_training(data_root, smoke, tmp_path,
                                                                            monkeypatch):
    """weights.pt (trained state, no optimiser) is what the committed results keep for Fig. 4 and 5."""
    import torch

    from hetero_ae.experiment import runs

    res = runs.run_experiment(run_spec(smoke, "synth-oct", "ae", seed=0), results=tmp_path, root=data_root,
                              progress=False)
    x = torch.randn(2, 3, res.spec.model.image_size, res.spec.model.image_size)
    first = runs.trained_model(res, root=data_root, keep_weights=True).anomaly_map(x)
    weights, ckpt = res.folder / "weights.pt", res.folder / "checkpoint.pt"
    assert weights.is_file() and weights.stat().st_size < ckpt.stat().st_size
    ckpt.unlink()  # a fresh clone: no checkpoint
    monkeypatch.setattr(runs, "train", lambda *a, **k: pytest.fail("trained although its weights are there"))
    again = runs.trained_model(res, root=data_root)
    torch.testing.assert_close(again.anomaly_map(x), first)
    assert not res.retrained


def test_a_figure_that_must_train_a_run_again_says_so_and_shows_its_progress(data_root, smoke, tmp_path, capsys):
    from hetero_ae.experiment import runs

    res = runs.run_experiment(run_spec(smoke, "synth-oct", "ae", seed=0), results=tmp_path, root=data_root,
                              progress=False)
    (res.folder / "checkpoint.pt").unlink()  # no checkpoint and no weights.pt: only the record
    capsys.readouterr()
    runs.trained_model(res, root=data_root)
    err = capsys.readouterr().err
    assert res.retrained
    assert "ae on synth-oct, seed 0, 64 px: its weights are not on disk; training it again" in err
    assert "epoch" in err.lower()  # the epoch bar


def test_a_second_rule_lists_table_is_runs_under_both_rules_and_keeps_fixed_schedules(smoke, tmp_path):
    from hetero_ae.experiment.specs import ensure_profile_data
    from hetero_ae.report.table_runs import notebook_specs, rule_specs

    second = smoke.under_rule({"patience": 4, "min_delta": 0.01})
    assert (second.patience, second.min_delta, second.second_rule) == (4, 0.01, None)
    assert second.rule_label() == "patience 4, min_delta 0.01, caps +3" and smoke.rule_label() == "patience 1, min_delta 0"
    assert second.method_settings["rd4ad"]["epochs"] == smoke.method_settings["rd4ad"]["epochs"] + 3  # room to fire
    assert smoke.under_rule({"min_delta": 0.01}).method_settings == smoke.method_settings  # no rise, same caps
    specs = rule_specs(smoke)
    assert list(specs) == ["patience 1, min_delta 0", "patience 2, min_delta 0, caps +1"]
    first, again = specs.values()
    assert [(s.model.method, s.train.seed) for s in first] == [(s.model.method, s.train.seed) for s in again]
    assert {s.dataset for s in first} == set(smoke.second_rule_datasets)
    assert {s.model.method for s in first} == set(smoke.second_rule_methods)  # the profile's methods, every seed
    for a, b in zip(first, again):
        if a.model.method == "f-anogan":  # two phases over every epoch: one run under both rules
            assert a == b
        else:
            assert replace(a, train=replace(a.train, patience=2, epochs=a.train.epochs + 1)) == b
    assert rule_specs(replace(smoke, second_rule=None)) == {}
    assert rule_specs(smoke, datasets=["synth-oct"]) == {}  # none of its second-rule datasets given: nothing to read
    assert rule_specs(replace(smoke, second_rule_methods=("padim",))) == {}
    root = tmp_path / "data"  # its own data: a clean checkout has no data/smoke
    ensure_profile_data(smoke, root, smoke.second_rule_datasets)
    listed = notebook_specs(smoke, ["table1_sensitivity"], root, verbose=False)
    assert len(listed) == len(first) + sum(s.model.method != "f-anogan" for s in again)  # shared runs once


def test_a_second_rule_is_checked_against_the_methods_own_rules(tmp_path):
    import yaml

    settings = yaml.safe_load(open("profiles/smoke.yaml"))
    settings["second_rule"] = {"min_delta": "1e-3"}  # YAML 1.1 reads 1e-3 as text, as for the profile's own
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(settings))
    assert load_profile(str(path)).second_rule == {"min_delta": 0.001}
    own = {**settings["method_settings"], "rd4ad": {**settings["method_settings"]["rd4ad"], "patience": 9}}
    path.write_text(yaml.safe_dump({**settings, "method_settings": own}))
    with pytest.raises(UserError, match=r"\['rd4ad'\] set their own patience or min_delta"):
        load_profile(str(path))
    path.write_text(yaml.safe_dump({**settings, "rule_note": "caps +9"}))
    with pytest.raises(UserError, match="unknown setting"):  # derived, never read from a file
        load_profile(str(path))


def test_a_second_size_lists_table_is_runs_at_both_sizes_and_its_data_are_generated_beside(smoke, tmp_path):
    from hetero_ae.experiment.specs import ensure_profile_data
    from hetero_ae.report.table_runs import notebook_specs, sizes_specs

    assert smoke.second_size == 128 and smoke.at_size(128).second_size is None
    specs = sizes_specs(smoke)
    assert list(specs) == [smoke.image_size, 128]
    for size, size_specs in specs.items():
        assert {s.model.image_size for s in size_specs} == {size}
        assert {s.dataset for s in size_specs} == set(smoke.second_size_datasets)
        assert [s.model.method for s in size_specs] == [m for m in ("rd4ad", "hetero-ae") for _ in
                                                        smoke.method_seed_list(m)]  # the paper's order, every seed
    assert {s.data_subdir for s in specs[128]} == {"128px"} and {s.data_subdir for s in specs[smoke.image_size]} == {None}
    assert sizes_specs(replace(smoke, second_size=None)) == {}
    only_ae = sizes_specs(replace(smoke, methods=("hetero-ae",)))  # those of the profile's methods only
    assert {s.model.method for size_specs in only_ae.values() for s in size_specs} == {"hetero-ae"}
    root = tmp_path / "data"
    ensure_profile_data(smoke, root, smoke.datasets)
    assert (root / "synthetic").is_dir() and (root / "128px" / "synthetic").is_dir()
    listed = notebook_specs(smoke, ["table1_sizes"], root, verbose=False)
    assert len(listed) == sum(map(len, specs.values()))


def test_fig4_draws_the_second_size_run_where_table_i_has_one(smoke):
    from hetero_ae.report.table_runs import figure_specs

    drawn = {(s.dataset, s.model.method): s for s in figure_specs(smoke, ["synth-oct", "synth-brain-mri"],
                                                                    ["ae", "hetero-ae"])}
    assert smoke.second_size_datasets == ("synth-brain-mri",) and "ae" not in smoke.second_size_methods
    assert drawn["synth-brain-mri", "hetero-ae"] == run_spec(smoke.at_size(128), "synth-brain-mri", "hetero-ae", 0)
    assert drawn["synth-oct", "hetero-ae"] == run_spec(smoke, "synth-oct", "hetero-ae", 0)
    assert drawn["synth-brain-mri", "ae"] == run_spec(smoke, "synth-brain-mri", "ae", 0)
    assert {s.train.seed for s in drawn.values()} == {0}
    no_second = figure_specs(replace(smoke, second_size=None), ["synth-brain-mri"], ["hetero-ae"])
    assert no_second == [run_spec(smoke, "synth-brain-mri", "hetero-ae", 0)]
