from __future__ import annotations

import numpy as np
import pytest
import torch

from hetero_ae import ModelConfig, TrainConfig
from hetero_ae.data.images import ImageSet
from hetero_ae.errors import TrainingDiverged, UserError
from hetero_ae.evaluation.predict import evaluate_scores, predict
from hetero_ae.training import loop as train_module
from hetero_ae.training.checkpoint import load_model, read_checkpoint
from hetero_ae.training.loop import train

MODEL = ModelConfig(encoder="resnet18", encoder_weights="none", image_size=64)
TRAIN = TrainConfig(epochs=2, batch_size=4, lr=1e-3, seed=7)


@pytest.fixture(scope="module")
def images() -> ImageSet:
    rng = np.random.default_rng(1)
    arr = rng.integers(0, 255, (10, 64, 64, 3), dtype=np.uint8)
    return ImageSet(arr, [f"i{i}" for i in range(10)], np.full(10, -1))


def trained_state(model) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def assert_same_state(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_same_seed_gives_identical_weights_and_metrics(images, tmp_path):
    m1, h1 = train(MODEL, TRAIN, images, tmp_path / "a", progress=False)
    m2, h2 = train(MODEL, TRAIN, images, tmp_path / "b", progress=False)
    assert [h["loss"] for h in h1] == [h["loss"] for h in h2]
    assert_same_state(trained_state(m1), trained_state(m2))
    labels = np.array([0] * 5 + [1] * 5)
    s1, s2 = predict(m1, images.images)[1], predict(m2, images.images)[1]
    assert evaluate_scores(labels, s1) == evaluate_scores(labels, s2)


def kill_after_epoch_1(cfg, images, folder, monkeypatch) -> None:
    """Train ``cfg`` into ``folder`` and stop it right after the first checkpoint, as a kill would."""
    real_save = train_module.save_checkpoint

    def save_then_die(*args, **kwargs):
        real_save(*args, **kwargs)
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(train_module, "save_checkpoint", save_then_die)
        with pytest.raises(KeyboardInterrupt):
            train(cfg, TRAIN, images, folder, progress=False)


def test_a_run_killed_after_epoch_1_and_resumed_ends_with_the_same_weights(images, tmp_path, monkeypatch):
    reference, _ = train(MODEL, TRAIN, images, tmp_path / "ref", progress=False)
    kill_after_epoch_1(MODEL, images, tmp_path / "run", monkeypatch)
    assert read_checkpoint(tmp_path / "run" / "checkpoint.pt")["epoch"] == 1
    resumed, history = train(MODEL, TRAIN, images, tmp_path / "run", resume=True, progress=False)
    assert [h["epoch"] for h in history] == [1, 2]
    assert_same_state(trained_state(reference), trained_state(resumed))


def test_an_existing_run_is_not_overwritten_without_resume(images, tmp_path):
    train(MODEL, TrainConfig(epochs=1, batch_size=5), images, tmp_path, progress=False)
    with pytest.raises(UserError, match="--resume"):
        train(MODEL, TrainConfig(epochs=1, batch_size=5), images, tmp_path, progress=False)


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(images, tmp_path, monkeypatch):
    from hetero_ae.methods.hetero_ae import HeteroAE

    real_terms, calls = HeteroAE.loss_terms, []

    def nan_in_epoch_2(self, x, frozen=None):  # 10 images, batch 5: the third call is epoch 2's first step
        calls.append(1)
        terms = real_terms(self, x, frozen)
        return {**terms, "loss": terms["loss"] * float("nan")} if len(calls) > 2 else terms

    monkeypatch.setattr(HeteroAE, "loss_terms", nan_in_epoch_2)
    with pytest.raises(TrainingDiverged, match="epoch 2, step 1.*last good checkpoint is kept"):
        train(MODEL, TrainConfig(epochs=2, batch_size=5), images, tmp_path, progress=False)
    assert read_checkpoint(tmp_path / "checkpoint.pt")["epoch"] == 1
    load_model(tmp_path / "checkpoint.pt")


def test_checkpoint_loads_with_weights_only_and_restores_the_model(images, tmp_path):
    model, _ = train(MODEL, TrainConfig(epochs=1, batch_size=5), images, tmp_path, progress=False)
    ckpt = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert not any(k.startswith("encoder.") for k in ckpt["model"]), "a frozen encoder is not stored"
    loaded, _ = load_model(tmp_path / "checkpoint.pt")
    x = torch.randn(2, 3, 64, 64)
    torch.testing.assert_close(loaded.anomaly_map(x), model.anomaly_map(x))


def test_a_stochastic_method_resumes_exactly_too(images, tmp_path, monkeypatch):
    vae = ModelConfig(method="vae", encoder="none", image_size=64, params={"latent_dim": 8, "base_channels": 8})
    reference, _ = train(vae, TRAIN, images, tmp_path / "ref", progress=False)
    kill_after_epoch_1(vae, images, tmp_path / "run", monkeypatch)
    resumed, _ = train(vae, TRAIN, images, tmp_path / "run", resume=True, progress=False)
    assert_same_state(trained_state(reference), trained_state(resumed))


def test_keep_lowest_returns_the_weights_of_the_lowest_held_out_epoch(images, tmp_path):
    """min_delta 5: no epoch after the first beats the rule, yet keep="lowest" returns the lowest epoch's weights."""
    from dataclasses import replace

    cfg = replace(TRAIN, epochs=3, patience=10, min_delta=5.0, keep="lowest")
    model, history = train(MODEL, cfg, images, tmp_path / "lowest", val=images, progress=False)
    val = [h["val_loss"] for h in history]
    lowest = int(np.argmin(val)) + 1
    assert lowest > 1 and history.stop["best_epoch"] == lowest and history.stop["best_val_loss"] == min(val)
    again, _ = train(MODEL, replace(TRAIN, epochs=lowest), images, tmp_path / "plain", progress=False)
    assert_same_state(trained_state(model), trained_state(again))  # training is deterministic per seed
    best, h = train(MODEL, replace(cfg, keep="best"), images, tmp_path / "best", val=images, progress=False)
    first, _ = train(MODEL, replace(TRAIN, epochs=1), images, tmp_path / "first", progress=False)
    assert h.stop["best_epoch"] == 1 and h.stop["keep"] == "best"  # the rule's best
    assert_same_state(trained_state(best), trained_state(first))


def test_lr_patience_lowers_the_optimisers_rate_on_the_plateau_and_a_resumed_run_ends_the_same(images, tmp_path):
    """min_delta 5: every epoch after the first is without improvement, so with lr_patience 1 the rate
    falls tenfold after epochs 2 and 3, and the rule stops at epoch 4 (patience 3)."""
    from dataclasses import replace

    cfg = replace(TRAIN, epochs=6, patience=3, min_delta=5.0, keep="lowest", lr_patience=1)
    model, history = train(MODEL, cfg, images, tmp_path / "run", val=images, progress=False)
    ckpt = read_checkpoint(tmp_path / "run" / "checkpoint.pt")
    assert history.stop["epochs_run"] == 4 and history.stop["lr_steps"] == 2
    assert [g["lr"] for g in ckpt["optimizers"][0]["param_groups"]] == pytest.approx([1e-5])


def test_a_run_killed_after_a_learning_rate_step_resumes_to_the_same_weights(images, tmp_path):
    from dataclasses import replace

    cfg = replace(TRAIN, epochs=6, patience=3, min_delta=5.0, keep="lowest", lr_patience=1)
    reference, _ = train(MODEL, cfg, images, tmp_path / "ref", val=images, progress=False)

    def kill(entry):
        if entry["epoch"] == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(MODEL, cfg, images, tmp_path / "run", val=images, progress=False, on_epoch_end=kill)
    resumed, history = train(MODEL, cfg, images, tmp_path / "run", val=images, resume=True, progress=False)
    assert history.stop["lr_steps"] == 2
    assert_same_state(trained_state(reference), trained_state(resumed))
