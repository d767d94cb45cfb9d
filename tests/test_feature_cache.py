"""Frozen features computed once (hetero_ae.training.feature_cache) and the stopping rule inside training."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hetero_ae import ModelConfig, TrainConfig
from hetero_ae.data.images import ImageSet, to_batch
from hetero_ae.errors import ConfigError
from hetero_ae.training.checkpoint import read_checkpoint
from hetero_ae.training.feature_cache import FeatureCache
from hetero_ae.training.loop import train
from hetero_ae.training.seed import build_seeded

SIZE = 64
MODEL = ModelConfig(encoder="efficientnet-lite0", encoder_weights="none", image_size=SIZE, feature_scale="rms")


@pytest.fixture(scope="module")
def images() -> ImageSet:
    arr = np.random.default_rng(3).integers(0, 255, (12, SIZE, SIZE, 3), dtype=np.uint8)
    return ImageSet(arr, [f"i{i}" for i in range(12)], np.zeros(12, dtype=int))


@pytest.fixture(scope="module")
def held_out() -> ImageSet:
    arr = np.random.default_rng(4).integers(0, 255, (4, SIZE, SIZE, 3), dtype=np.uint8)
    return ImageSet(arr, [f"v{i}" for i in range(4)], np.zeros(4, dtype=int))


def trained(model) -> dict[str, torch.Tensor]:
    return {k: v for k, v in model.state_dict().items() if not k.startswith("encoder.")}


@pytest.mark.parametrize("budget", [2**30, 0], ids=["memory", "memory-map"])
def test_cached_batches_equal_the_frozen_network(images, tmp_path, budget):
    model = build_seeded(MODEL, 0).eval()
    cache = FeatureCache.build(model, images.images, batch_size=5, budget_bytes=budget, spill_dir=tmp_path)
    assert cache.on_disk == (budget == 0)
    idx = np.array([1, 6, 11])
    expected = model.frozen_features(to_batch(images.images[idx]))
    for got, want in zip(cache.batch(idx), expected, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    folder = cache.folder
    cache.close()
    assert folder is None or not folder.exists()


@pytest.mark.parametrize("method,cfg", [
    ("hetero-ae", MODEL),
    ("rd4ad", ModelConfig(method="rd4ad", encoder="efficientnet-lite0", encoder_weights="none", image_size=SIZE)),
    ("stfpm", ModelConfig(method="stfpm", encoder="efficientnet-lite0", encoder_weights="none", image_size=SIZE)),
])
def test_training_on_cached_features_equals_running_the_encoder(images, held_out, tmp_path, method, cfg):
    tc = TrainConfig(epochs=2, batch_size=4, lr=1e-3, seed=1)
    cached, h1 = train(cfg, tc, images, tmp_path / "cached", val=held_out, progress=False)
    plain, h2 = train(cfg, tc, images, tmp_path / "plain", val=held_out, progress=False, cache_features=False)
    assert h1.feature_cache.startswith("train 12 images") and h2.feature_cache == "off"
    for a, b in zip(h1, h2, strict=True):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-4, abs=1e-5)
        assert a["val_loss"] == pytest.approx(b["val_loss"], rel=1e-4, abs=1e-5)
    # Weights are not compared one by one: Adam turns float noise in exactly-zero gradients (the key
    # biases of attention, invariant under softmax) into full-size steps, in both paths alike.
    with torch.no_grad():
        x = to_batch(held_out.images)
        torch.testing.assert_close(cached.anomaly_map(x), plain.anomaly_map(x), rtol=1e-4, atol=1e-4)


def test_a_memory_mapped_cache_trains_like_one_in_memory(images, tmp_path):
    tc = TrainConfig(epochs=1, batch_size=4, lr=1e-3, seed=1)
    a, _ = train(MODEL, tc, images, tmp_path / "mem", progress=False)
    b, hb = train(MODEL, tc, images, tmp_path / "disk", progress=False, cache_budget=0)
    assert "memory-mapped" in hb.feature_cache
    assert not list((tmp_path / "disk").glob(".feature-cache-*")), "the memory maps are deleted after training"
    for k, v in trained(a).items():  # the same bytes, read from disk instead of memory
        assert torch.equal(v, trained(b)[k]), k


def test_feature_scale_is_the_rms_of_each_stage_over_the_training_images(images, tmp_path):
    model, _ = train(MODEL, TrainConfig(epochs=1, batch_size=4, lr=1e-3), images, tmp_path, progress=False)
    feats = model.frozen_features(to_batch(images.images))
    expected = torch.stack([f.pow(2).mean().sqrt() for f in feats[:3]])
    torch.testing.assert_close(model.feature_scale, expected, rtol=1e-5, atol=0)
    assert read_checkpoint(tmp_path / "checkpoint.pt")["model"]["feature_scale"].shape == (3,)


def test_the_stopping_rule_stops_at_a_plateau_and_keeps_the_best_epoch(images, held_out, tmp_path):
    # lr so small that the held-out loss cannot improve by 1 %: best = epoch 1, stop after 2 more
    tc = TrainConfig(epochs=20, batch_size=4, lr=1e-9, seed=0, patience=2, min_delta=0.01)
    model, history = train(MODEL, tc, images, tmp_path, val=held_out, progress=False)
    assert len(history) == 3
    assert history.stop["stop_reason"] == "plateau" and history.stop["best_epoch"] == 1
    assert history.stop["kept"] == "best" and history.stop["converged"]
    assert {"loss", "cos", "mse", "val_loss", "val_cos", "val_mse"} <= set(history[0])
    ckpt = read_checkpoint(tmp_path / "checkpoint.pt")
    assert ckpt["stop"] == history.stop and ckpt["best"] is None
    # resuming a finished run trains nothing more and returns the kept weights
    again, h2 = train(MODEL, tc, images, tmp_path, val=held_out, resume=True, progress=False)
    assert len(h2) == 3 and h2.stop == history.stop
    for k, v in trained(model).items():
        assert torch.equal(v, trained(again)[k]), k


def test_kept_weights_are_those_of_the_best_held_out_epoch(images, held_out, tmp_path, monkeypatch):
    losses = iter([-1.0, -3.0, -2.0, -2.5])  # epoch 2 is best; patience 2 stops after epoch 4
    from hetero_ae.training import loop as train_module

    snapshots = []
    real = train_module._Loop._held_out_loss

    def scripted(self, val):
        real(self, val)
        snapshots.append({k: v.clone() for k, v in trained(self.model).items()})
        return {"loss": next(losses)}

    monkeypatch.setattr(train_module._Loop, "_held_out_loss", scripted)
    tc = TrainConfig(epochs=10, batch_size=4, lr=1e-3, seed=0, patience=2)
    model, history = train(MODEL, tc, images, tmp_path, val=held_out, progress=False)
    assert history.stop["best_epoch"] == 2 and len(history) == 4
    for k, v in trained(model).items():
        assert torch.equal(v, snapshots[1][k]), k


def test_the_stopping_rule_needs_held_out_images(images, tmp_path):
    with pytest.raises(ConfigError, match="held-out"):
        train(MODEL, TrainConfig(epochs=2, batch_size=4, patience=2), images, tmp_path, progress=False)


def test_the_held_out_pass_leaves_the_training_random_state_alone(images, held_out, tmp_path):
    vae = ModelConfig(method="vae", image_size=SIZE, params={"latent_dim": 8, "base_channels": 4, "max_channels": 8})
    tc = TrainConfig(epochs=2, batch_size=4, lr=1e-3, seed=2)
    a, _ = train(vae, tc, images, tmp_path / "a", progress=False)
    b, _ = train(vae, tc, images, tmp_path / "b", val=held_out, progress=False)
    for k, v in a.state_dict().items():
        assert torch.equal(v, b.state_dict()[k]), k


def test_stfpm_caches_only_the_teacher_levels_it_compares(images):
    cfg = ModelConfig(method="stfpm", encoder="efficientnet-lite0", encoder_weights="none", image_size=SIZE)
    model = build_seeded(cfg, 0)
    assert len(model.frozen_features(to_batch(images.images[:2]))) == len(model.level_weights) == 3


def test_memory_maps_left_by_a_killed_run_are_removed_when_it_restarts(images, tmp_path):
    stale = tmp_path / ".feature-cache-r0-killed"
    stale.mkdir(parents=True)
    (stale / "level0.npy").write_bytes(b"left over")
    train(MODEL, TrainConfig(epochs=1, batch_size=4), images, tmp_path, progress=False, cache_budget=0)
    assert not list(tmp_path.glob(".feature-cache-*"))


def test_a_checkpoint_written_before_the_stopping_rule_counts_as_finished_at_its_epochs():
    from hetero_ae.training.loop import finished

    assert finished({"epoch": 10, "train_config": {"epochs": 10}})
    assert not finished({"epoch": 9, "train_config": {"epochs": 10}})
    assert not finished({"epoch": 10, "train_config": {"epochs": 10}, "stop": None})
