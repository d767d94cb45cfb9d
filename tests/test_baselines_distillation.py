"""The knowledge-distillation baselines STFPM, MKD and RD4AD: losses on hand-made features, frozen
teachers, student architectures and the reverse ResNet decoder's shapes."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from hetero_ae import ModelConfig, TrainConfig, build_model
from hetero_ae.methods import mkd, rd4ad, stfpm
from hetero_ae.methods.registry import METHODS
from hetero_ae.model.anomaly_map import image_score
from hetero_ae.model.encoder import ENCODERS, build_encoder
from hetero_ae.model.reverse_resnet import ReverseResNetDecoder
from hetero_ae.training.checkpoint import read_checkpoint, save_checkpoint

SIZE = 64
TEACHERS = {"stfpm": "teacher", "mkd": "source", "rd4ad": "teacher"}


def small_config(method: str, encoder: str = "efficientnet-lite0", **params) -> ModelConfig:
    return ModelConfig(method=method, encoder=encoder, encoder_weights="none", image_size=SIZE, params=params)


def constant_map(*vector: float, size: int = 2) -> torch.Tensor:
    """A (1, C, size, size) feature map holding the same channel vector at every pixel."""
    return torch.tensor(vector, dtype=torch.float32).view(1, -1, 1, 1).expand(1, len(vector), size, size).clone()


def test_paper_backbones_are_registered_encoders():
    expected = {"stfpm": "resnet18", "mkd": "vgg16", "rd4ad": "wide-resnet50"}
    for method, name in expected.items():
        assert METHODS[method].paper_backbone == name and name in ENCODERS


def test_stfpm_loss_and_map_on_normalised_features():
    # level 1: orthogonal unit directions (any lengths): ||t_hat - s_hat||^2 = 2;
    # level 2: 45 degrees apart: 2 - 2 cos 45 = 2 - sqrt(2).
    teacher = [constant_map(3.0, 0.0), constant_map(1.0, 0.0)]
    student = [constant_map(0.0, 5.0), constant_map(2.0, 2.0)]
    d2 = 2 - math.sqrt(2)
    loss = stfpm.stfpm_loss(teacher, student, (1.0, 1.0))
    assert loss.item() == pytest.approx(2 + d2, abs=1e-6)
    assert stfpm.stfpm_loss(teacher, student, (0.5, 2.0)).item() == pytest.approx(1 + 2 * d2, abs=1e-6)
    amap = stfpm.stfpm_map(teacher, student, size=(8, 8))
    assert amap.shape == (1, 8, 8)
    torch.testing.assert_close(amap, torch.full((1, 8, 8), (0.5 * 2) * (0.5 * d2)))


def test_mkd_value_and_direction_losses_on_hand_tensors():
    a_s = constant_map(1.0, 0.0)
    parallel, orthogonal = constant_map(2.0, 0.0), constant_map(0.0, 1.0)
    assert mkd.value_loss(a_s, parallel).item() == pytest.approx(0.5)  # (1^2 + 0^2) / 2 channels
    assert mkd.direction_loss(a_s, parallel).item() == pytest.approx(0.0, abs=1e-6)
    assert mkd.value_loss(a_s, orthogonal).item() == pytest.approx(1.0)
    assert mkd.direction_loss(a_s, orthogonal).item() == pytest.approx(1.0)
    total = mkd.mkd_per_image([a_s, a_s], [parallel, orthogonal], lamda=0.1)
    assert total.shape == (1,) and total.item() == pytest.approx((0 + 0.1 * 0.5) + (1 + 0.1 * 1.0))
    amap = mkd.mkd_map([a_s], [orthogonal], lamda=0.1, size=(4, 4))
    torch.testing.assert_close(amap, torch.full((1, 4, 4), 1 + 0.1 * 1.0))


def test_rd4ad_loss_is_the_cosine_of_the_flattened_map():
    # Every pixel's channel vector is parallel between teacher and student, so the per-pixel
    # cosine (Hetero-AE's, and RD4AD's map) is 1 everywhere, but the flattened maps differ.
    t = torch.tensor([[1.0, 0.0], [0.0, 1.0]]).view(1, 2, 1, 2)  # pixel 0: (1, 0), pixel 1: (0, 1)
    s = torch.tensor([[2.0, 0.0], [0.0, 1.0]]).view(1, 2, 1, 2)  # pixel 0: (2, 0), pixel 1: (0, 1)
    per_pixel = 1 - F.cosine_similarity(t, s, dim=1)
    assert per_pixel.abs().max().item() < 1e-6
    expected = 1 - 3 / math.sqrt(2 * 5)  # <(1,0,0,1), (2,0,0,1)> / (|.| |.|)
    assert rd4ad.flattened_cosine_loss([t], [s]).item() == pytest.approx(expected, abs=1e-6)
    assert rd4ad.flattened_cosine_loss([t, t], [s, t]).item() == pytest.approx(expected, abs=1e-6)


def _teacher_snapshot(model: nn.Module, prefix: str) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items() if k.startswith(prefix)}


@pytest.mark.parametrize("method", sorted(TEACHERS))
def test_teacher_stays_frozen_and_out_of_the_checkpoint(method, tmp_path):
    torch.manual_seed(0)
    model = build_model(small_config(method))
    prefix = TEACHERS[method] + "."
    assert model.frozen_prefixes() == (prefix,)
    before = _teacher_snapshot(model, prefix)
    assert any("running_mean" in k for k in before)
    trainable_before = {k: v.clone() for k, v in model.named_parameters() if v.requires_grad}
    assert trainable_before and not any(k.startswith(prefix) for k in trainable_before)
    opts = model.configure_optimizers(0.01)
    model.train()
    assert not getattr(model, TEACHERS[method]).training
    for _ in range(2):
        model.training_step(torch.randn(4, 3, SIZE, SIZE), opts)
    after = _teacher_snapshot(model, prefix)
    for k in before:
        torch.testing.assert_close(after[k], before[k], rtol=0, atol=0)
    assert any(not torch.equal(v, trainable_before[k]) for k, v in model.named_parameters() if v.requires_grad)

    cfg = small_config(method)
    save_checkpoint(tmp_path / "c.pt", model, opts, cfg, TrainConfig(epochs=1), epoch=1, history=[])
    stored = read_checkpoint(tmp_path / "c.pt")["model"]
    assert stored and not any(k.startswith(prefix) for k in stored)


def optimiser_kind(model) -> tuple:
    (opt,) = model.configure_optimizers(0.4)
    g = opt.param_groups[0]
    return type(opt), g["momentum"], g["weight_decay"]


def test_stfpm_student_is_the_teacher_architecture_randomly_initialised():
    torch.manual_seed(0)
    model = build_model(small_config("stfpm", encoder="resnet18"))
    t, s = model.teacher.state_dict(), model.student.state_dict()
    assert type(model.student) is type(model.teacher)
    assert {k: v.shape for k, v in t.items()} == {k: v.shape for k, v in s.items()}
    assert model.student.mode == "scratch" and model.teacher.mode == "frozen"
    assert not torch.equal(t["net.conv1.weight"], s["net.conv1.weight"])
    assert optimiser_kind(model) == (torch.optim.SGD, 0.9, 1e-4)


@pytest.mark.parametrize("encoder", ["efficientnet-lite0", "resnet18", "vgg16"])
def test_mkd_cloner_is_smaller_than_its_source_and_matches_its_shapes(encoder):
    source = build_encoder(encoder, weights="none")
    cloner = mkd.Cloner(source.channels, source.strides)
    assert sum(p.numel() for p in cloner.parameters()) < sum(p.numel() for p in source.parameters()) / 10
    x = torch.randn(1, 3, SIZE, SIZE)
    with torch.no_grad():
        assert [f.shape for f in cloner(x)] == [f.shape for f in source(x)]


def test_mkd_scores_images_by_their_distillation_loss():
    torch.manual_seed(0)
    model = build_model(small_config("mkd", cloner_width=8)).eval()
    x = torch.randn(2, 3, SIZE, SIZE)
    with torch.no_grad():
        maps, scores = model.predict(x)
        src, cln = model.features(x)
        expected = mkd.mkd_per_image(src[1:], cln[1:], model.lamda)  # levels 2..4, as the official test
    assert maps.shape == (2, SIZE, SIZE)
    torch.testing.assert_close(scores, expected)


@pytest.mark.parametrize("method", ["stfpm", "rd4ad"])
def test_score_is_the_map_maximum(method):
    torch.manual_seed(0)
    model = build_model(small_config(method)).eval()
    with torch.no_grad():
        maps, scores = model.predict(torch.randn(2, 3, SIZE, SIZE))
    torch.testing.assert_close(scores, image_score(maps))


def test_rd4ad_bottleneck_and_student_follow_the_teacher():
    torch.manual_seed(0)
    model = build_model(small_config("rd4ad", encoder="resnet18", block="basic", ocbe_blocks=2,
                                     decoder_blocks=(2, 2, 2))).eval()
    x = torch.randn(1, 3, SIZE, SIZE)
    with torch.no_grad():
        feats = model.teacher(x)
        emb = model.bottleneck(feats[:3])
        assert emb.shape == feats[3].shape  # C_4 channels at level 4's resolution
        assert [f.shape for f in model.student(emb)] == [f.shape for f in feats[:3]]
    assert isinstance(model.student.stages[0][-1].act, nn.ReLU)  # ResNet features are post-ReLU
    signed = build_model(small_config("rd4ad"))
    assert isinstance(signed.student.stages[0][-1].act, nn.Identity)  # EfficientNet's are signed
    (opt,) = model.configure_optimizers(0.005)
    assert isinstance(opt, torch.optim.Adam) and opt.param_groups[0]["betas"] == (0.5, 0.999)


@pytest.mark.parametrize(("channels", "kind", "blocks"), [
    ((64, 128, 256, 512), "basic", (2, 2, 2)),  # ResNet-18
    ((256, 512, 1024, 2048), "bottleneck", (3, 4, 6)),  # Wide-ResNet-50-2, RD4AD's decoder
])
def test_reverse_resnet_decoder_shapes(channels, kind, blocks):
    torch.manual_seed(0)
    decoder = ReverseResNetDecoder(channels, blocks, kind=kind, width_ratio=0.5).eval()
    for size in (64, 256):
        with torch.no_grad():
            out = decoder(torch.randn(1, channels[3], size // 32, size // 32))
        assert [tuple(f.shape) for f in out] == [(1, c, size // s, size // s) for c, s in zip(channels[:3], (4, 8, 16))]


def test_bad_structure_parameters_are_clear_errors():
    with pytest.raises(ValueError, match="cloner_convs"):
        build_model(small_config("mkd", cloner_convs=(2, 2, 3)))
    with pytest.raises(ValueError, match="block"):
        ReverseResNetDecoder((8, 16, 32, 64), (1, 1))
