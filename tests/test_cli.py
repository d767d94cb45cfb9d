from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from conftest import blob_image, write_png

from hetero_ae.cli import main
from hetero_ae.methods import available_methods

FAST = ["--encoder", "resnet18", "--encoder-weights", "none", "--image-size", "64", "--epochs", "1",
        "--batch-size", "5", "--threads", "2"]


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("hetero-ae: error:") and "\n" not in err, err
    return err


@pytest.fixture()
def run(image_folders, tmp_path):
    out = tmp_path / "run"
    assert main(["train", "--data", str(image_folders["train"]), "--out", str(out), *FAST]) == 0
    return out


def test_train_evaluate_score_end_to_end(run, image_folders, tmp_path):
    assert {"checkpoint.pt", "config.json", "history.json", "val_scores.json"} <= {p.name for p in run.iterdir()}
    assert main(["evaluate", "--checkpoint", str(run / "checkpoint.pt"), "--data", str(image_folders["test"])]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert set(metrics["best_f1"]) >= {"auc", "ap", "f1", "acc", "sen", "spe", "threshold"}
    assert "normal_q95" in metrics and metrics["n_normal"] == metrics["n_anomalous"] == 4
    out = tmp_path / "scores"
    assert main(["score", "--checkpoint", str(run / "checkpoint.pt"), "--images", str(image_folders["test"]),
                 "--out", str(out), "--heatmaps"]) == 0
    rows = list(csv.DictReader((out / "scores.csv").open()))
    assert len(rows) == 8 and {r["label"] for r in rows} == {"0", "1"}
    assert len(list((out / "heatmaps").glob("*.png"))) == 8
    # one scoring path and one layout: evaluate and score write the same rows for the same images
    evaluated = list(csv.DictReader((run / "scores.csv").open()))
    assert list(evaluated[0]) == list(rows[0]) == ["path", "class", "label", "score", "feature_distance", "decision"]
    assert sorted(tuple(r.values()) for r in evaluated) == sorted(tuple(r.values()) for r in rows)


def test_a_trained_folder_records_its_run_in_the_schema_experiments_use(run, image_folders):
    config = json.loads((run / "config.json").read_text())
    assert {"dataset", "model", "train", "val_fraction", "held_out_normals", "train_images", "val_images",
            "processes", "device", "compile"} <= set(config)
    assert config["dataset"] == str(image_folders["train"]) and config["held_out_normals"].endswith("training normals")


@pytest.mark.parametrize("command", ["train", "evaluate", "score"])
def test_every_subcommand_has_help(command, capsys):
    with pytest.raises(SystemExit) as e:
        main([command, "--help"])
    assert e.value.code == 0 and "--" in capsys.readouterr().out


def test_train_help_lists_every_registered_method(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = capsys.readouterr().out
    assert all(m in out for m in available_methods())


def test_missing_folder_is_a_one_line_error(tmp_path, capsys):
    assert main(["train", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "o"), *FAST]) == 2
    assert "not found" in one_line_error(capsys)
    assert not (tmp_path / "o").exists()


def test_empty_folder_is_a_one_line_error(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["train", "--data", str(tmp_path / "empty"), "--out", str(tmp_path / "o"), *FAST]) == 2
    assert "no image files" in one_line_error(capsys)


def test_unreadable_image_is_skipped_and_named_or_fails_with_strict(image_folders, tmp_path, capsys):
    good = write_png(tmp_path / "ok.png", blob_image(np.random.default_rng(0)))
    bad = image_folders["train"] / "broken.png"
    bad.write_bytes(good.read_bytes()[:200])  # a truncated PNG
    capsys.readouterr()
    assert main(["train", "--data", str(image_folders["train"]), "--out", str(tmp_path / "a"), *FAST]) == 0
    notes = [line for line in capsys.readouterr().err.splitlines() if "broken.png" in line]
    assert len(notes) == 1 and notes[0].startswith(f"hetero-ae: skipped unreadable image {bad}: ")  # one line
    assert json.loads((tmp_path / "a" / "config.json").read_text())["skipped"] == [str(bad)]
    capsys.readouterr()
    assert main(["train", "--data", str(image_folders["train"]), "--out", str(tmp_path / "b"), "--strict", *FAST]) == 2
    assert "broken.png" in one_line_error(capsys)


def test_checkpoint_of_another_model_is_a_one_line_error(image_folders, tmp_path, capsys):
    other = tmp_path / "other.pt"
    torch.save({"state_dict": {"w": torch.zeros(1)}}, other)
    assert main(["score", "--checkpoint", str(other), "--images", str(image_folders["test"]),
                 "--out", str(tmp_path / "s")]) == 2
    assert "not a hetero-ae checkpoint" in one_line_error(capsys)
    assert not (tmp_path / "s").exists()


def test_training_into_an_existing_run_changes_nothing_without_resume(run, image_folders, capsys):
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    capsys.readouterr()
    assert main(["train", "--data", str(image_folders["train"]), "--out", str(run), *FAST]) == 2
    assert "--resume" in one_line_error(capsys)
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before


def test_method_hyper_parameters_from_the_command_line(image_folders, tmp_path, capsys):
    args = ["train", "--data", str(image_folders["train"]), "--method", "ae", "--image-size", "64", "--epochs", "1",
            "--batch-size", "5"]
    assert main([*args, "--out", str(tmp_path / "a"), "--param", "latent_dim=8", "--param", "base_channels=8"]) == 0
    assert json.loads((tmp_path / "a" / "config.json").read_text())["model"]["params"] == {"latent_dim": 8,
                                                                                           "base_channels": 8}
    capsys.readouterr()
    assert main([*args, "--out", str(tmp_path / "b"), "--param", "no_such_knob=1"]) == 2
    assert "no_such_knob" in one_line_error(capsys)
    assert not (tmp_path / "b").exists()


def test_map_sigma_sets_the_smoothing_of_every_method_that_smooths_and_refuses_the_others(image_folders, tmp_path,
                                                                                          capsys):
    """One --map-sigma: Hetero-AE's ModelConfig field, RD4AD's (MKD's, STFPM's, PatchCore's) hyper-parameter;
    a method that makes no smoothed map refuses it in one line instead of ignoring it."""
    from hetero_ae.methods import build_model, smoothing_methods

    assert set(smoothing_methods()) >= {"hetero-ae", "rd4ad", "mkd", "stfpm", "patchcore"}
    assert not {"ae", "vae", "ganomaly", "f-anogan", "salad"} & set(smoothing_methods())
    common = ["train", "--data", str(image_folders["train"]), "--image-size", "64", "--epochs", "1",
              "--batch-size", "5", "--encoder", "efficientnet-lite0", "--encoder-weights", "none"]
    assert main([*common, "--method", "rd4ad", "--map-sigma", "2", "--out", str(tmp_path / "rd4ad")]) == 0
    record = json.loads((tmp_path / "rd4ad" / "config.json").read_text())["model"]
    assert record["params"] == {"map_sigma": 2.0} and record["map_sigma"] == 0.0
    from hetero_ae.config import ModelConfig, from_dict

    assert build_model(from_dict(ModelConfig, record)).map_sigma == 2.0
    assert main([*common, "--method", "hetero-ae", "--map-sigma", "3", "--out", str(tmp_path / "ours")]) == 0
    assert json.loads((tmp_path / "ours" / "config.json").read_text())["model"]["map_sigma"] == 3.0
    capsys.readouterr()
    assert main([*common, "--method", "ae", "--map-sigma", "2", "--out", str(tmp_path / "ae")]) == 2
    error = one_line_error(capsys)
    assert "--map-sigma" in error and "ae makes no smoothed anomaly map" in error and "rd4ad" in error
    assert not (tmp_path / "ae").exists()


def test_a_profile_map_sigma_goes_where_its_method_reads_it():
    from dataclasses import replace

    from hetero_ae.errors import ConfigError
    from hetero_ae.experiment.profiles import load_profile
    from hetero_ae.experiment.specs import run_spec

    smoke = load_profile("smoke")
    settings = {m: dict(s) for m, s in smoke.method_settings.items()}
    settings["mkd"]["map_sigma"] = 1.5
    settings["hetero-ae"]["map_sigma"] = 2.0
    profile = replace(smoke, method_settings=settings)
    assert run_spec(profile, "synth-oct", "mkd", 0).model.params["map_sigma"] == 1.5
    assert run_spec(profile, "synth-oct", "hetero-ae", 0).model.map_sigma == 2.0
    assert run_spec(smoke, "synth-oct", "mkd", 0) == run_spec(smoke, "synth-oct", "mkd", 0)  # unset: keys unchanged
    assert "map_sigma" not in run_spec(smoke, "synth-oct", "mkd", 0).model.params
    settings["vae"]["map_sigma"] = 1.0
    with pytest.raises(ConfigError, match="vae makes no smoothed anomaly map"):
        run_spec(replace(smoke, method_settings=settings), "synth-oct", "vae", 0)
