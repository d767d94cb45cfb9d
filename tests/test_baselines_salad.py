"""SALAD [9]: its SSIM, centre constraint, rotation pretext task, checkpointed centre and training step."""

from __future__ import annotations

from dataclasses import fields

import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from hetero_ae import ModelConfig, TrainConfig, build_model
from hetero_ae.data.images import ImageSet, to_batch
from hetero_ae.methods.salad import SALADParams, center_loss, rotate_batch
from hetero_ae.methods.ssim import ssim as ssim_map
from hetero_ae.training.checkpoint import load_model
from hetero_ae.training.loop import train

SIZE = 64  # the smallest image size ModelConfig accepts
SMALL = {"latent_dim": 8, "base_channels": 4, "max_channels": 16}


def small_config(**params) -> ModelConfig:
    return ModelConfig(method="salad", encoder_weights="none", image_size=SIZE, params={**SMALL, **params})


def test_paper_params_hold_the_smoke_keys():
    assert set(SMALL) <= {f.name for f in fields(SALADParams)}


def test_ssim_matches_skimage_away_from_the_border():
    rng = np.random.default_rng(0)
    a = rng.random((24, 24))
    b = np.clip(a + rng.normal(0, 0.1, a.shape), 0, 1)
    expected = structural_similarity(a, b, data_range=1.0, gaussian_weights=True, sigma=1.5,
                                     use_sample_covariance=False)
    m = ssim_map(torch.tensor(a, dtype=torch.float64)[None, None], torch.tensor(b, dtype=torch.float64)[None, None])
    assert m.shape == (1, 1, 24, 24)
    assert m[0, 0, 5:-5, 5:-5].mean().item() == pytest.approx(expected, abs=1e-6)  # skimage crops 5 px
    same = ssim_map(torch.tensor(a)[None, None], torch.tensor(a)[None, None])
    torch.testing.assert_close(same, torch.ones_like(same))


def test_center_loss_by_hand():
    z = torch.tensor([[1.0, 0.0], [0.0, 3.0]])
    # squared distances to (0, 1): (1, 1) and (0, 4); per-code means 1 and 2; batch mean 1.5
    assert center_loss(z, torch.tensor([0.0, 1.0])).item() == pytest.approx(1.5)


def test_rotation_labels_and_images_by_hand():
    x = torch.arange(4.0).view(1, 1, 2, 2).repeat(5, 1, 1, 1)  # [[0, 1], [2, 3]]
    rotated, labels = rotate_batch(x)
    assert labels.tolist() == [0, 1, 2, 3, 0]
    assert rotated[0, 0].tolist() == [[0, 1], [2, 3]]
    assert rotated[1, 0].tolist() == [[1, 3], [0, 2]]  # 90 degrees counter-clockwise
    assert rotated[2, 0].tolist() == [[3, 2], [1, 0]]
    assert rotated[3, 0].tolist() == [[2, 0], [3, 1]]
    assert torch.equal(rotated[4], x[4])


def test_rotation_loss_is_chance_level_for_a_uniform_head():
    model = build_model(small_config())
    head = model.rotation_head[1]
    torch.nn.init.zeros_(head.weight)
    torch.nn.init.zeros_(head.bias)
    x = torch.randn(4, 3, SIZE, SIZE)
    _, terms, *_ = model.generator_pass(x)
    assert terms["rotation"].item() == pytest.approx(np.log(4.0))


def test_one_step_sets_the_center_and_trains_every_network():
    torch.manual_seed(0)
    model = build_model(small_config()).train()
    opts = model.configure_optimizers(1e-3)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(4, 3, SIZE, SIZE)
    stats = model.training_step(x, opts)
    assert np.isfinite(stats["loss"]) and np.isfinite(stats["d_loss"])
    after = model.state_dict()
    for name in ("encoder.body.0.weight", "generator.body.0.weight", "discriminator.body.0.weight",
                 "rotation_head.1.weight"):
        assert not torch.equal(before[name], after[name]), name
    assert before["center"].abs().sum() == 0 and after["center"].abs().sum() > 0
    assert model.steps.item() == 1


def test_non_finite_loss_raises():
    model = build_model(small_config()).train()
    x = torch.full((2, 3, SIZE, SIZE), float("nan"))
    with pytest.raises(FloatingPointError):
        model.training_step(x, model.configure_optimizers(1e-3))


def test_center_and_score_scales_survive_a_checkpoint(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (4, SIZE, SIZE, 3), dtype=np.uint8)
    data = ImageSet(images, [f"n{i}" for i in range(4)], np.zeros(4, dtype=np.int64))
    model, _ = train(small_config(), TrainConfig(epochs=1, batch_size=4, seed=0), data, tmp_path, progress=False)
    loaded, _ = load_model(tmp_path / "checkpoint.pt")
    assert model.center.abs().sum() > 0
    for name in ("center", "score_ref", "steps"):
        torch.testing.assert_close(getattr(loaded, name), getattr(model, name))
    with torch.no_grad():
        maps, scores = loaded.predict(to_batch(images[:2]))
    assert maps.shape == (2, SIZE, SIZE) and torch.isfinite(scores).all()
