"""The throughput benchmark runs end to end on a tiny set and records what it measured (no timing asserted)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def load_benchmark(file: str, name: str | None = None):
    """The module ``benchmarks/FILE.py``, loaded under ``name`` (the benchmarks are scripts, not a package)."""
    spec = importlib.util.spec_from_file_location(name or file, ROOT / "benchmarks" / f"{file}.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    return bench


def test_throughput_benchmark_writes_training_and_scoring_figures_beside_the_floor(tmp_path):
    bench = load_benchmark("throughput")
    out = tmp_path / "benchmarks.json"
    (out).write_text(json.dumps({"cuda": {"kept": True}}))
    bench.main(["--size", "64", "--train-images", "12", "--score-images", "10", "--batch-size", "4",
                "--epochs", "2", "--score-workers", "0", "--out", str(out)])
    results = json.loads(out.read_text())
    assert results["cuda"] == {"kept": True}  # another device's figures stay
    cpu = results["cpu"]
    assert set(cpu["variants"]) == {"fp32", "bf16"} and cpu["image_size"] == 64 and cpu["peak_memory_mb"] > 0
    for name, v in cpu["variants"].items():
        assert v["precision"] == name and v["compile"] is None
        assert v["train"]["images"] == 12 and v["score"]["images"] == 10
        for part in ("train", "score"):
            assert v[part]["images_per_second"] > 0 and v[part]["encoder_forward_images_per_second"] > 0
        assert len(v["train"]["epochs"]) == 2 and all(e["memory_mb"] > 0 for e in v["train"]["epochs"])
    onnx = cpu["variants"]["fp32"]["score_onnxruntime"]  # exported and scored in the same run, fp32 only
    assert onnx["images"] == 10 and onnx["images_per_second"] > 0 and "score_onnxruntime" not in cpu["variants"]["bf16"]
    assert set(onnx["max_abs_diff_from_pytorch"]) == {"anomaly_map", "score", "feature_distance"}


def test_convergence_benchmark_records_cached_and_uncached_epochs_and_a_stopped_run(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("convergence", ROOT / "benchmarks" / "convergence.py")
    bench = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "convergence", bench)  # the generating processes find its functions
    spec.loader.exec_module(bench)
    out = tmp_path / "benchmarks.json"
    args = ["--size", "64", "--epoch-images", "8", "--train-images", "16", "--test-images", "12", "--batch-size", "4",
            "--batch-size-converge", "8", "--cap", "3", "--out", str(out), "--data-cache", str(tmp_path / "data")]
    bench.main(args)
    entry = json.loads(out.read_text())["convergence"]["cpu"]
    assert [e["encoder"] for e in entry["epoch"]] == ["resnet18", "efficientnet-lite0"]
    for e in entry["epoch"]:
        assert e["cached_epoch_seconds"] > 0 and e["uncached_epoch_seconds"] > 0 and e["cache"].startswith("train 8")
    (run,) = entry["converge"]
    assert run["train_images"] == 16 and run["held_out_images"] == 2 and 1 <= run["epochs"] <= 3
    assert run["stop_reason"] in ("plateau", "cap") and 0 <= run["test_auc"] <= 100 and run["peak_memory_mb"] > 0
    generated = sorted((tmp_path / "data").glob("*.npy"))
    assert len(generated) == 5  # the epoch timing's set and its held-out set (one size here), normals, held-out, test
    mtimes = [p.stat().st_mtime_ns for p in generated]
    bench.main([*args, "--skip-epochs"])
    assert [p.stat().st_mtime_ns for p in sorted((tmp_path / "data").glob("*.npy"))] == mtimes, "read, not rewritten"


def test_side_by_side_benchmark_times_both_ways_and_keeps_other_entries(tmp_path):
    bench = load_benchmark("side_by_side")
    out = tmp_path / "benchmarks.json"
    earlier = {"epochs": 9, "sequential_seconds": 1.0, "side_by_side_seconds": 2.0, "speed_up": 0.5}
    out.write_text(json.dumps({"convergence": {"kept": True}, "side_by_side": {"cpu": {"methods": {"mkd": earlier}}}}))
    entry = bench.main(["--profile", "smoke", "--methods", "ae", "--epochs", "1", "--datasets", "synth-oct",
                        "synth-covid19", "--data-root", str(tmp_path / "data"), "--out", str(out)])
    results = json.loads(out.read_text())
    assert results["convergence"] == {"kept": True}
    assert results["side_by_side"]["cpu"] == {**entry, "methods": {"mkd": earlier, **entry["methods"]}}
    run = entry["methods"]["ae"]
    assert run["epochs"] == 1 and run["sequential_seconds"] > 0 and run["side_by_side_seconds"] > 0
    assert run["speed_up"] == pytest.approx(run["sequential_seconds"] / run["side_by_side_seconds"], rel=0.01)


def _stopping_rule():
    bench = load_benchmark("stopping_rule")
    return bench


def test_a_rule_replayed_on_a_curve_stops_and_keeps_where_training_would():
    bench = _stopping_rule()
    curve = [5.0, 4.0, 3.5, 3.49, 3.48, 3.6, 3.7, 3.47, 3.8, 3.9, 4.0]
    assert bench.replay(curve, 2, 0.0) == (7, 5)  # epochs 6 and 7 do not beat epoch 5: stop at 7, keep 5
    assert bench.replay(curve, 3, 0.0) == (11, 8)  # epoch 8 does: three more, stop at 11, keep 8
    assert bench.replay(curve, 3, 0.01) == (6, 5)  # 3.49 and 3.48 beat 3.5 by under 1 %: counted from epoch 3
    assert bench.replay(curve, 20, 0.0) == (11, 8)  # never fires: the end, keeping the lowest


def test_the_stopping_rule_study_records_curves_aucs_and_every_rule_and_resumes(tmp_path, capsys):
    bench = _stopping_rule()
    out = tmp_path / "study.json"
    args = ["--preset", "smoke", "--size", "64", "--cap", "4", "--methods", "ae", "--datasets", "synth-covid19",
            "--design-root", str(tmp_path / "data"), "--out", str(out)]
    assert bench.main(args) == 0
    study = json.loads(out.read_text())
    run = study["runs"]["synth-covid19/ae"]
    assert run["done"] and [e["epoch"] for e in run["epochs"]] == [1, 2, 3, 4]
    curve = [e["val_loss"] for e in run["epochs"]]
    lowest = curve.index(min(curve)) + 1
    assert str(lowest) in run["auc"] and all(0 <= v <= 100 for v in run["auc"].values())
    rules = study["replay"]["rules"]
    assert len(rules) == len(bench.PATIENCES) * len(bench.MIN_DELTAS)
    assert all(r["runs"][0]["kept"] == bench.replay(curve, r["patience"], r["min_delta"])[1] for r in rules)
    assert study["data"]["synth-covid19"]["key"]["synthetic"]["seed"] == 1  # the design benchmark, not the reported
    assert not (tmp_path / "data" / ".stopping-rule-runs" / "synth-covid19-ae").exists()  # snapshots cleaned up
    capsys.readouterr()
    assert bench.main(args) == 0  # a finished run is not trained again
    assert "training" not in capsys.readouterr().err
    assert bench.main([*args[:5], "5", *args[6:]]) == 0  # a longer cap than the run had: it trains again, longer
    assert "training 5 epochs" in capsys.readouterr().err
    assert len(json.loads(out.read_text())["runs"]["synth-covid19/ae"]["epochs"]) == 5


def test_the_rule_is_chosen_on_runs_whose_long_curve_converged_and_the_others_are_named():
    bench = _stopping_rule()
    flat = [10.0, 6.0, 4.0, 3.0, 2.6, 2.5] + [2.5 + 0.02 * ((-1) ** i) for i in range(34)]  # flat after epoch 6
    falling = [10.0 - 0.2 * i for i in range(40)]  # still falling at its end
    runs = {name: {"epochs": [{"val_loss": v, "seconds": 1.0} for v in curve],
                   "auc": {str(e): 80.0 for e in range(1, 41)}}
            for name, curve in (("d/hetero-ae", flat), ("d/mkd", falling), ("d/f-anogan", falling))}
    out = bench.replay_all(runs, tolerance=1.0)
    assert out["still_falling_at_the_long_cap"] == ["d/f-anogan", "d/mkd"]
    rows = {r["run"]: r for r in out["rules"][0]["runs"]}
    assert rows["d/hetero-ae"]["chooses"] and not rows["d/mkd"]["chooses"] and not rows["d/f-anogan"]["chooses"]
    choice = out["choice"]  # the cheapest acceptable rule on the converged run alone
    acceptable = [r for r in out["rules"] if r["acceptable"]]
    assert choice["seconds"] == min(r["seconds"] for r in acceptable)
    assert not choice["fallback"] and choice["failures"] == []


def test_where_no_rule_passes_on_every_run_the_one_failing_fewest_is_chosen_and_says_so():
    bench = _stopping_rule()
    # the lowest held-out loss comes late (epoch 50) after a flat stretch longer than every candidate patience:
    # each rule stops before it and keeps an epoch whose AUC is 5 points lower, so all fail this one run
    late = [10.0, 6.0, 4.0, 3.0, 2.6, 2.5] + [2.5 + 0.01 * ((-1) ** i) for i in range(43)] + [2.0] * 21
    flat = [10.0, 6.0, 4.0, 3.0, 2.6, 2.5] + [2.5 + 0.02 * ((-1) ** i) for i in range(64)]
    auc = {str(e): (85.0 if e >= 50 else 80.0) for e in range(1, 71)}
    runs = {"d/ganomaly": {"epochs": [{"val_loss": v, "seconds": 1.0} for v in late], "auc": auc},
            "d/hetero-ae": {"epochs": [{"val_loss": v, "seconds": 1.0} for v in flat],
                            "auc": {str(e): 80.0 for e in range(1, 71)}}}
    out = bench.replay_all(runs, tolerance=1.0)
    assert not any(r["acceptable"] for r in out["rules"])
    choice = out["choice"]
    fewest = min(len(r["failures"]) for r in out["rules"])
    assert choice["fallback"] and len(choice["failures"]) == fewest == 1 and choice["failures"] == ["d/ganomaly"]
    assert choice["seconds"] == min(r["seconds"] for r in out["rules"] if len(r["failures"]) == fewest)


def _recipes(monkeypatch):
    spec = importlib.util.spec_from_file_location("recipes", ROOT / "benchmarks" / "recipes.py")
    bench = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "recipes", bench)
    spec.loader.exec_module(bench)
    return bench


def test_the_recipe_study_trains_before_and_candidates_replays_patiences_and_chooses_within_tolerance(
        tmp_path, monkeypatch, capsys):
    bench = _recipes(monkeypatch)
    monkeypatch.setattr(bench, "RECIPES", {"ae": {bench.PROFILE: {"constant": True}, "plateau": {}}})
    out = tmp_path / "recipes.json"
    args = ["--preset", "smoke", "--sizes", "64", "--cap", "4", "--methods", "ae", "--dataset", "synth-covid19",
            "--design-root", str(tmp_path / "data"), "--out", str(out)]
    assert bench.main(args) == 0
    entry = json.loads(out.read_text())["methods"]["64/ae"]
    before, run = entry["before"], entry["candidates"]["plateau"]
    own = entry["candidates"][bench.PROFILE]  # the profile's recipe without a rule, the reference
    assert own["done"] and len(own["epochs"]) == 4 and own["lr_patience"] == 0
    assert before["done"] and before["stop"] <= 4 and 0 <= before["auc"] <= 100 and before["seconds"] > 0
    assert len(before["epoch_seconds"]) == before["stop"] and before["median_seconds"] == bench.median_seconds(
        before["setup_seconds"], before["epoch_seconds"], before["stop"])
    assert run["done"] and run["lr"] == before["lr"] and run["cap"] == 4
    curve = [e["val_loss"] for e in run["epochs"]]
    rows = bench.replays(run)
    assert [r["patience"] for r in rows] == list(bench.PATIENCES)
    assert all(r["kept"] == curve.index(min(curve)) + 1 and r["auc"] == run["auc"][str(r["kept"])] for r in rows)
    assert run["replays"] == rows and before["median_minutes"] == round(before["median_seconds"] / 60, 1)  # citable
    assert bench.median_seconds(2.0, [1.0, 9.0, 1.5], 4) == 8.0  # a busy epoch (9 s) does not count: 2 + 4 x 1.5
    # a candidate is chosen only if it converges within the tolerance of before's AUC
    ok = {**run, "epochs": [{"val_loss": v, "seconds": 1.0} for v in [5.0, 4.0] + [3.0] * 30], "cap": 100,
          "auc": {"3": before["auc"] - 0.5}}
    assert bench.choose(before, {"ok": ok}, tolerance=1.0) == "ok"
    assert bench.choose(before, {"ok": ok}, tolerance=0.4) is None
    reference = {**ok, "auc": {"3": before["auc"] + 5.0}}  # the profile recipe under the same rule: held to it
    assert bench.choose(before, {"ok": ok, bench.PROFILE: reference}, tolerance=1.0) == bench.PROFILE
    falling = {**ok, "epochs": [{"val_loss": 10.0 - 0.1 * i, "seconds": 1.0} for i in range(40)],
               "auc": {"40": before["auc"]}, "cap": 40}
    assert bench.choose(before, {"falling": falling}, tolerance=1.0) is None
    capsys.readouterr()
    assert bench.main(args) == 0  # finished runs are not trained again
    assert "before (" not in capsys.readouterr().err


def test_contenders_are_the_baselines_within_the_margin_on_some_dataset_or_still_falling():
    bench = _stopping_rule()
    flat = [10.0, 6.0, 4.0, 3.0] + [2.5] * 20
    falling = [10.0 - 0.2 * i for i in range(24)]

    def run(curve, auc):
        return {"epochs": [{"val_loss": v} for v in curve], "auc": {str(int(np.argmin(curve)) + 1): auc}}

    runs = {"a/hetero-ae": run(flat, 80.0), "a/rd4ad": run(flat, 75.0), "a/ae": run(flat, 74.9),
            "a/mkd": run(falling, 50.0), "a/hetero-ae:cnn": run(flat, 79.0),
            "b/hetero-ae": run(flat, 60.0), "b/ae": run(flat, 56.0)}
    out = bench.contenders(runs, margin=5.0)
    assert out["contenders"] == ["ae", "mkd", "rd4ad"]  # ae within 5 on b only; mkd a lower bound; not the decoder
    assert out["evidence"]["a"]["ae"] == {"auc": 74.9, "still_falling": False, "behind": 5.1, "contends": False}
    assert out["evidence"]["b"]["ae"]["contends"] and "contends" not in out["evidence"]["a"]["hetero-ae:cnn"]


def test_a_plateau_schedule_run_is_long_under_the_rule_and_only_min_delta_zero_replays_on_it():
    from dataclasses import replace

    from hetero_ae.experiment.profiles import load_profile
    from hetero_ae.experiment.specs import run_spec

    bench = _stopping_rule()
    spec = run_spec(load_profile("smoke"), "synth-oct", "ae", 0)
    assert bench.long_config(spec, 9).patience == 0 and bench.long_config(spec, 9).epochs == 9
    plateau = replace(spec, train=replace(spec.train, patience=15, lr_patience=5))
    cfg = bench.long_config(plateau, 9)
    assert (cfg.patience, cfg.min_delta, cfg.lr_patience, cfg.keep) == (max(bench.PATIENCES), 0.0, 5, "lowest")
    flat = [10.0, 6.0, 4.0, 3.0, 2.6, 2.5] + [2.5 + 0.02 * ((-1) ** i) for i in range(94)]
    runs = {"d/hetero-ae": {"epochs": [{"val_loss": v, "seconds": 1.0} for v in flat], "lr_patience": 5,
                            "rule_patience": max(bench.PATIENCES), "auc": {str(e): 80.0 for e in range(1, 101)}}}
    rules = bench.replay_all(runs, tolerance=1.0)["rules"]
    assert all(r["acceptable"] == (r["min_delta"] == 0.0) for r in rules)
    older = {"d/hetero-ae": {k: v for k, v in runs["d/hetero-ae"].items() if k != "rule_patience"}}  # ended by patience 30
    rules = bench.replay_all(older, tolerance=1.0)["rules"]
    assert all(r["acceptable"] == (r["min_delta"] == 0.0 and r["patience"] <= 30) for r in rules)
    assert bench.same_recipe(runs["d/hetero-ae"] | {"lr": cfg.lr, "batch_size": cfg.batch_size}, cfg)
    assert not bench.same_recipe(older["d/hetero-ae"] | {"lr": cfg.lr, "batch_size": cfg.batch_size}, cfg)
    short = {"d/hetero-ae": {**runs["d/hetero-ae"], "epochs": runs["d/hetero-ae"]["epochs"][:40]}}
    unstopped = [r for r in bench.replay_all(short, tolerance=1.0)["rules"] if r["patience"] >= 40]
    assert unstopped and all(not r["acceptable"] and not r["runs"][0]["fired"] for r in unstopped)  # the run ends first


def test_the_profile_recipe_reuses_the_rule_studys_long_run_of_the_same_run_only(tmp_path, monkeypatch):
    from hetero_ae.experiment.profiles import load_profile
    from hetero_ae.experiment.specs import run_name, run_spec

    bench = _recipes(monkeypatch)
    spec = run_spec(load_profile("smoke"), "synth-oct", "ae", 0)
    record = {"run": run_name(spec), "cap": 8, "done": True, "lr": spec.train.lr, "epochs": []}
    study = tmp_path / "rule.json"
    study.write_text(json.dumps({"runs": {"synth-oct/ae": record}}))
    assert bench.reused_long_run(study, "synth-oct", spec, 8)["reused_from"] == str(study)
    assert bench.reused_long_run(study, "synth-oct", spec, 9) is None  # another cap
    study.write_text(json.dumps({"runs": {"synth-oct/ae": {**record, "lr": 1.0}}}))
    assert bench.reused_long_run(study, "synth-oct", spec, 8) is None  # another recipe under the same name
    assert bench.reused_long_run(tmp_path / "none.json", "synth-oct", spec, 8) is None


def test_the_rule_studys_long_runs_take_the_chosen_recipe_and_a_run_of_another_recipe_trains_again():
    from hetero_ae.experiment.profiles import load_profile
    from hetero_ae.experiment.specs import run_spec

    bench = _stopping_rule()
    spec = run_spec(load_profile("smoke"), "synth-oct", "ae", 0)
    plateau = {"lr": 3 * spec.train.lr, "batch_size": 32, "lr_patience": 5}
    recipes = {"methods": {"64/ae": {"chosen": "plateau, lr x3", "candidates": {"plateau, lr x3": plateau}},
                           "64/vae": {"chosen": None, "candidates": {}}}}
    chosen = bench.with_chosen_recipe(spec, recipes, 64)
    assert (chosen.train.lr, chosen.train.batch_size, chosen.train.lr_patience) == (3 * spec.train.lr, 32, 5)
    assert bench.with_chosen_recipe(spec, recipes, 128) == spec  # chosen at another size only
    assert bench.with_chosen_recipe(spec, {}, 64) == spec
    cfg = bench.long_config(chosen, 9)
    assert bench.same_recipe({"lr": chosen.train.lr, "batch_size": 32, "lr_patience": 5, "rule_patience": 60}, cfg)
    assert not bench.same_recipe({"lr": chosen.train.lr, "batch_size": 32, "lr_patience": 5}, cfg)  # ended at 30
    assert not bench.same_recipe({}, cfg)  # a long run recorded before the recipe was chosen trains again
    assert bench.same_recipe({}, bench.long_config(spec, 9))
    assert not bench.same_recipe({"lr": 1.0}, bench.long_config(spec, 9))


def test_a_replayed_rules_time_is_the_median_epoch_times_the_epochs_so_a_busy_spell_does_not_decide():
    bench = _stopping_rule()
    curve = [10.0, 6.0, 4.0, 3.0] + [3.0] * 20
    seconds = [1.0] * len(curve)
    seconds[1] = 50.0  # one epoch slowed by something else on the machine
    runs = {"d/ae": {"epochs": [{"val_loss": v, "seconds": s} for v, s in zip(curve, seconds)],
                     "auc": {str(e): 60.0 for e in range(1, len(curve) + 1)}}}
    rows = {(r["patience"], r["min_delta"]): r["runs"][0] for r in bench.replay_all(runs, tolerance=1.0)["rules"]}
    assert rows[(5, 0.0)]["stop"] == 9 and rows[(5, 0.0)]["seconds"] == 9.0


def test_a_methods_cap_is_a_margin_over_where_the_rule_stops_it_and_unknown_where_it_never_fired():
    bench = _stopping_rule()
    flat = [10.0, 6.0, 4.0, 3.0] + [3.0] * 40  # lowest at epoch 4: patience 5 stops at 9
    falling = [10.0 - 0.1 * i for i in range(44)]  # never plateaus within its long run
    runs = {"a/ae": {"epochs": [{"val_loss": v} for v in flat]},
            "b/ae": {"epochs": [{"val_loss": v} for v in flat[:2] + [5.0] * 3 + flat[2:]]},  # stops at 12
            "a/stfpm": {"epochs": [{"val_loss": v} for v in falling]},
            "a/f-anogan": {"epochs": [{"val_loss": v} for v in flat]}}
    out = bench.caps(runs, {"patience": 5, "min_delta": 0.0}, margin=1.5)
    assert out["caps"] == {"ae": 20, "stfpm": None}  # 1.5 x 12 = 18 -> 20; fixed schedules have none
    assert bench.fires(flat[:9], 5, 0.0) and not bench.fires(flat[:8], 5, 0.0)  # the rule fires on the last epoch
    assert bench.caps(runs, None) == {}


def test_the_patchcore_benchmark_reports_its_fit_bank_and_scoring_per_set_and_keeps_other_entries(tmp_path):
    bench = load_benchmark("patchcore", "patchcore_bench")
    out = tmp_path / "benchmarks.json"
    out.write_text(json.dumps({"cpu": {"kept": True}}))
    assert bench.main(["--profile", "smoke", "--datasets", "synth-oct", "--paper-images", "6", "--paper-size", "64",
                       "--paper-test-images", "3", "--out", str(out)]) == 0
    results = json.loads(out.read_text())
    assert results["cpu"] == {"kept": True}
    sets = results["patchcore"]["sets"]
    assert set(sets) == {"synth-oct at 64 px", "6 synthetic brain slices at 64 px"}
    paper = sets["6 synthetic brain slices at 64 px"]
    assert paper["patches"] == 6 * 8 * 8 and paper["bank_entries"] == round(0.1 * paper["patches"])  # H/8 grid, 10 %
    assert all(s["fit_seconds"] >= s["coreset_seconds"] >= 0 and s["score_images_per_second"] > 0 for s in sets.values())
    assert not sets["synth-oct at 64 px"]["coreset_projected"]  # the profile's sets: the whole coreset
    assert paper["coreset_projected"] is False and paper["coreset_picks_timed"] == paper["bank_entries"]  # 38 picks < 2000
    assert bench.main(["--profile", "smoke", "--datasets", "synth-oct", "--paper-images", "6", "--paper-size", "64",
                       "--paper-test-images", "3", "--paper-timed-picks", "5", "--out", str(out)]) == 0
    projected = json.loads(out.read_text())["patchcore"]["sets"]["6 synthetic brain slices at 64 px"]
    assert projected["coreset_projected"] and projected["coreset_picks_timed"] == 5
    assert projected["bank_entries"] == paper["bank_entries"] and projected["coreset_seconds"] >= 0


def test_a_coreset_time_projected_from_its_first_picks_is_linear_in_the_picks(monkeypatch):
    import torch

    bench = load_benchmark("patchcore", "patchcore_bench")
    clock = iter([0.0, 3.0, 3.0 + 3.0 + 49 * 2.0])  # 1 pick (projection + pick): 3 s; 50 picks: 2 s per further pick
    monkeypatch.setattr(bench.time, "perf_counter", lambda: next(clock))
    assert bench.coreset_time(torch.randn(300, 32), 1000, 50, seed=0, project_to=8) == 3.0 + 2.0 * 999
    with pytest.raises(ValueError, match="at least 2 timed picks"):
        bench.coreset_time(torch.randn(300, 32), 1000, 1, seed=0, project_to=8)


def test_the_rd4ad_epoch_benchmark_times_ours_and_says_why_anomalib_was_not_timed(tmp_path):
    bench = load_benchmark("rd4ad_epoch")
    out = tmp_path / "benchmarks.json"
    out.write_text(json.dumps({"cpu": {"kept": True}}))
    tiny = ["--images", "4", "--size", "64", "--batch-size", "2", "--epochs", "2", "--threads", "1"]
    found = bench.main([*tiny, "--out", str(out)])
    results = json.loads(out.read_text())
    assert results["cpu"] == {"kept": True} and results["rd4ad_epoch"] == found
    here = found["here"]
    assert len(here["epoch_seconds"]) == 2 and all(s > 0 for s in here["epoch_seconds"]) and here["setup_seconds"] > 0
    assert "anomalib" not in found and "speed_up" not in found  # no interpreter with anomalib given
    # the official OCBE (three wide bottlenecks on 3 x 1024 channels): more than anomalib's 39.2 M
    assert here["parameters"]["bottleneck"] > 39_222_272 and here["parameters"]["teacher (F^1..F^3)"] < 25_000_000
    with pytest.raises(SystemExit, match="anomalib's worker failed in .*No module named 'anomalib'"):
        bench.main([*tiny, "--anomalib-python", sys.executable])  # this interpreter has no anomalib


def test_the_rd4ad_epoch_benchmark_counts_a_steps_operations_forward_and_backward_and_keeps_the_timings(tmp_path):
    import torch
    from torch import nn

    bench = load_benchmark("rd4ad_epoch")
    conv, x = nn.Conv2d(3, 4, 3, padding=1, bias=False), torch.randn(1, 3, 8, 8)
    assert bench.counted(lambda: conv(x)) == 2 * 3 * 4 * 9 * 8 * 8  # a multiply-add is two operations
    assert bench.counted(lambda: conv(x.requires_grad_()).sum().backward()) == 3 * 2 * 3 * 4 * 9 * 8 * 8  # + 2 grads
    out = tmp_path / "benchmarks.json"
    out.write_text(json.dumps({"rd4ad_epoch": {"here": {"epoch_seconds": [5.0]}}}))
    found = bench.main(["--flops", "--size", "64", "--out", str(out)])
    here = found["here"]
    assert here["cache_gflop_per_image"] > 0 and here["step_gflop_per_image"] > 0 and "ceiling" not in found
    assert json.loads(out.read_text())["rd4ad_epoch"] == {"here": {"epoch_seconds": [5.0]}, "flops": found}
    with pytest.raises(SystemExit, match="anomalib's worker failed in .*No module named 'anomalib'"):
        bench.main(["--flops", "--size", "64", "--anomalib-python", sys.executable])
