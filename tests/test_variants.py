"""The ablation variants of Tables II-IV: every one builds by name, runs, trains; the pixel comparison
reconstructs; the feature distance of Fig. 6 is the map's mean and reaches scores.csv; the hybrid and
Transformer encoders; the paper's numbers as transcribed."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from hetero_ae import ModelConfig, TrainConfig, build_model
from hetero_ae.data.images import ImageSet, to_batch
from hetero_ae.data.synthetic import make_synthetic
from hetero_ae.errors import ConfigError
from hetero_ae.evaluation.predict import predict_all
from hetero_ae.experiment.profiles import load_profile
from hetero_ae.experiment.runs import run_experiment
from hetero_ae.experiment.specs import run_spec
from hetero_ae.experiment.variants import TABLE_II, TABLE_III, TABLE_IV, TABLES, distinct_variants, variant
from hetero_ae.model.encoder import build_encoder
from hetero_ae.training.checkpoint import load_model
from hetero_ae.training.loop import train
from hetero_ae.training.seed import build_seeded

SIZE = 64
DISTINCT = distinct_variants()
PIXEL = [v for v in TABLE_IV if v.comparison == "pixel"]


def ids(variants):
    return [f"{v.table}:{v.key}" for v in variants]


def build(v, size: int = SIZE, seed: int = 0):
    """A variant without downloads: encoder weights "none" (ResNet-18 included), seeded."""
    return build_seeded(v.model_config(encoder_weights="none", image_size=size), seed)


@pytest.fixture(scope="module")
def normal_images() -> ImageSet:
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 255, (8, SIZE, SIZE, 3), dtype=np.uint8)
    return ImageSet(arr, [f"n{i}" for i in range(8)], np.zeros(8, dtype=np.int64))


@pytest.mark.parametrize("v", DISTINCT, ids=ids(DISTINCT))
@pytest.mark.parametrize("size,batch", [(SIZE, 2), (256, 1)])
def test_every_variant_runs_forward_and_backward(v, size, batch):
    model = build(v, size).train()
    x = torch.randn(batch, 3, size, size)
    enc, dec = model.features(x)
    assert [d.shape for d in dec] == [e.shape for e in enc]  # F_D^1..3 with the encoder's channels
    model.loss(x).backward()
    trained = [p for n, p in model.named_parameters() if not n.startswith("encoder.")]
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in trained)
    assert all(p.grad is None for p in model.encoder.parameters())  # frozen
    model.eval()
    with torch.no_grad():
        maps, scores = model.predict(x)
    assert maps.shape == (batch, size, size) and scores.shape == (batch,)


@pytest.mark.parametrize("v", DISTINCT, ids=ids(DISTINCT))
def test_every_variant_trains_a_few_steps(v, normal_images, tmp_path):
    cfg = v.model_config(encoder_weights="none", image_size=SIZE)
    model, history = train(cfg, TrainConfig(epochs=1, batch_size=4), normal_images, tmp_path, progress=False)
    assert len(history) == 1 and np.isfinite(history[0]["loss"])
    assert np.isfinite(predict_all(model, normal_images.images[:2]).scores).all()


def test_table3_variants_have_decoders_within_a_factor_1_5_in_parameters():
    counts = [sum(p.numel() for p in build(v).decoder.parameters()) for v in TABLE_III]
    assert max(counts) / min(counts) <= 1.5, counts


def smooth_images(n: int) -> torch.Tensor:
    """Smooth grey patterns an auto-encoder can learn to reconstruct in a few steps."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:SIZE, :SIZE] / SIZE
    imgs = [np.clip(128 + 90 * np.sin(3 * xx + p) * np.cos(2 * yy + q), 0, 255) for p, q in rng.uniform(0, 3, (n, 2))]
    return to_batch(np.repeat(np.stack(imgs)[..., None], 3, axis=-1).astype(np.uint8))


@pytest.mark.parametrize("v", PIXEL, ids=ids(PIXEL))
def test_pixel_comparison_reconstructs_the_input(v):
    model = build(v).train()
    x = smooth_images(2)
    assert model.reconstruct(x).shape == x.shape
    optimizers = model.configure_optimizers(1e-3)
    losses = [model.training_step(x, optimizers)["loss"] for _ in range(30)]
    assert losses[-1] < 0.8 * losses[0], losses


def test_pixel_map_is_the_channel_mean_of_the_squared_error():
    model = build(variant("IV", "hetero-ae-pixel")).eval()
    x = torch.randn(2, 3, SIZE, SIZE)
    with torch.no_grad():
        expected = (model.reconstruct(x) - x).pow(2).mean(dim=1)
        maps, scores, distance = model.predict_with_distance(x)
    torch.testing.assert_close(maps, expected)
    torch.testing.assert_close(scores, expected.flatten(1).amax(dim=1))  # Eq. 8 unchanged
    assert distance is None and model.feature_distance(x) is None  # no features compared


def test_only_the_pixel_comparison_adds_an_image_head():
    assert build(variant("IV", "hetero-ae-feature")).head is None
    assert build(variant("IV", "hetero-ae-pixel")).head is not None


def test_unknown_comparison_names_the_choices():
    with pytest.raises(ConfigError, match="feature"):
        build_model(ModelConfig(encoder_weights="none", image_size=SIZE, comparison="latent"))


def test_feature_distance_is_the_mean_of_the_summed_stage_maps():
    model = build(variant("III", "hctn")).eval()
    x = torch.randn(3, 3, SIZE, SIZE)
    with torch.no_grad():
        enc, dec = model.features(x)
        total = sum(F.interpolate((1 - F.cosine_similarity(e, d, dim=1)).unsqueeze(1), size=(SIZE, SIZE),
                                  mode="bilinear", align_corners=False).squeeze(1) for e, d in zip(enc, dec))
        torch.testing.assert_close(model.feature_distance(x), total.mean(dim=(1, 2)))
        torch.testing.assert_close(model.feature_distance(x), model.anomaly_map(x).mean(dim=(1, 2)))


def test_methods_without_features_have_no_feature_distance():
    model = build_model(ModelConfig(method="ae", image_size=SIZE, params={"latent_dim": 16, "base_channels": 8}))
    assert model.feature_distance(torch.randn(1, 3, SIZE, SIZE)) is None


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    make_synthetic(root / "synthetic", size=SIZE, seed=0, preset="smoke", workers=2)
    return root


def test_feature_distance_is_a_column_of_scores_csv(data_root, tmp_path):
    spec = run_spec(load_profile("smoke"), "synth-brain-mri", "hetero-ae", seed=0, decoder="cnn")
    res = run_experiment(spec, results=tmp_path, root=data_root, progress=False)
    rows = list(csv.DictReader((res.folder / "scores.csv").open()))
    assert list(rows[0]) == ["path", "class", "label", "score", "feature_distance", "decision"]
    distances = np.array([float(r["feature_distance"]) for r in rows])
    assert len(rows) == res.metrics["n_test"] and np.isfinite(distances).all() and (distances >= 0).all()


def test_a_variants_overrides_set_the_run_including_its_encoder():
    v = variant("II", "hybrid-hybrid")
    model = run_spec(load_profile("smoke"), "synth-brain-mri", "hetero-ae", seed=0, **v.overrides()).model
    assert (model.encoder, model.encoder_weights, model.decoder) == ("hybrid", "none", "hctn")


@pytest.mark.parametrize("name", ["hybrid", "transformer"])
def test_ablation_encoders_give_four_frozen_levels_of_resnet18_shape(name):
    enc = build_encoder(name, weights="none")
    feats = enc(torch.zeros(1, 3, SIZE, SIZE))
    assert enc.channels == (64, 128, 256, 512)
    assert [(f.shape[1], f.shape[-1]) for f in feats] == [(c, SIZE // s) for c, s in zip(enc.channels, (4, 8, 16, 32))]
    enc.train()
    assert not enc.training and not any(p.requires_grad for p in enc.parameters())


@pytest.mark.parametrize("name", ["hybrid", "transformer"])
def test_ablation_encoders_have_no_imagenet_weights(name):
    with pytest.raises(ConfigError, match="no pretrained weights exist.*encoder_weights='none'"):
        build_encoder(name, weights="imagenet")


def test_a_random_encoder_is_drawn_from_the_seed_and_its_checkpoint_reloads(normal_images, tmp_path):
    v = variant("II", "hybrid-hybrid")
    assert build(v, seed=0).encoder.digest() == build(v, seed=0).encoder.digest() != build(v, seed=1).encoder.digest()
    model, _ = train(v.model_config(image_size=SIZE), TrainConfig(epochs=1, batch_size=4, seed=3), normal_images,
                     tmp_path, progress=False)
    loaded, _ = load_model(tmp_path / "checkpoint.pt")
    x = torch.randn(1, 3, SIZE, SIZE)
    with torch.no_grad():
        torch.testing.assert_close(loaded.predict(x)[0], model.predict(x)[0])


def test_variant_tables_hold_every_pair_the_paper_lists():
    assert [v.label for v in TABLE_II] == [
        "ResNet / ResNet (CNN)", "Efficientnet / Efficientnet (CNN)", "CNN+Trans / CNN+Trans",
        "ResNet / Swin (Transformer)", "ResNet / PVT (Transformer)", "ResNet / CMT (Hybrid)",
        "ResNet / Our HCTN (Hybrid)"]
    assert [v.decoder for v in TABLE_III] == ["cnn", "transformer", "hctn"]
    paper_rows = [v for v in TABLE_IV if v.paper]
    assert [(v.encoder, v.decoder, v.comparison) for v in paper_rows] == [
        (e, d, c) for e, d in (("resnet18", "resnet"), ("transformer", "transformer"), ("resnet18", "hctn"))
        for c in ("pixel", "feature")]
    (beyond,) = [v for v in TABLE_IV if not v.paper]  # our row beyond the paper: HCTN with the magnitude-aware map
    assert (beyond.key, beyond.map_distance) == ("hetero-ae-magnitude", "cosine+mse")
    assert all(v.map_distance == "cosine" for v in paper_rows)
    assert all(v.encoder_weights == "none" for rows in TABLES.values() for v in rows
               if v.encoder in ("hybrid", "transformer"))


def test_paper_numbers_as_printed():
    hctn = variant("II", "resnet-hctn")
    assert hctn.paper["brain-mri"]["auc"] == 99.20 and (hctn.paper_params_m, hctn.paper_gflops) == (17, 33)
    assert variant("II", "resnet-swin").paper["chest-xray"] == {"auc": 86.20, "f1": 84.61, "acc": 79.00}
    assert variant("III", "cnn").paper["chest-xray"]["auc"] == 85.54
    assert variant("III", "transformer").paper_params_m == 16.74
    assert variant("IV", "ed-transformer-pixel").paper["brain-mri"]["auc"] == 89.89
    assert variant("IV", "hetero-ae-pixel").paper["chest-xray"]["spe"] == 60.25
    # Table IV's rows with feature comparison repeat Table II's (E-D (ResNet)) and III's (HCTN) numbers.
    assert variant("IV", "ed-resnet-feature").paper["brain-mri"]["auc"] == variant("II", "resnet-resnet").paper[
        "brain-mri"]["auc"]
    assert variant("IV", "hetero-ae-feature").paper == variant("III", "hctn").paper
