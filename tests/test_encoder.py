from __future__ import annotations

import pytest
import torch

from hetero_ae.errors import ConfigError
from hetero_ae.model.encoder import IMAGENET_MEAN, IMAGENET_STD, WeightsNotFoundError, build_encoder


def imagenet_input(image, size: int = 224) -> torch.Tensor:
    x = torch.from_numpy(image).permute(2, 0, 1).float().unsqueeze(0) / 255.0
    x = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return (x - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)


def test_efficientnet_lite0_weights_classify_the_cat():
    from skimage.data import chelsea

    enc = build_encoder("efficientnet-lite0")
    with torch.no_grad():
        top1 = enc.classify(imagenet_input(chelsea())).argmax(1).item()
    assert 281 <= top1 <= 285, f"top-1 class {top1} is not an ImageNet cat class"


@pytest.mark.parametrize("name", ["resnet18", "efficientnet-lite0", "vgg16", "wide-resnet50"])
@pytest.mark.parametrize("size", [64, 128])
def test_four_levels_at_strides_4_8_16_32(name, size):
    enc = build_encoder(name, weights="none")
    feats = enc(torch.zeros(1, 3, size, size))
    assert [f.shape[1] for f in feats] == list(enc.channels)
    assert [f.shape[-1] for f in feats] == [size // s for s in (4, 8, 16, 32)]


def test_resnet18_loads_weights_from_the_hub_cache(resnet18_weights):
    enc = build_encoder("resnet18")
    expected = torch.load(resnet18_weights, weights_only=True)
    assert torch.equal(enc.net.conv1.weight, expected["conv1.weight"])
    assert torch.equal(enc.net.layer4[1].bn2.running_var, expected["layer4.1.bn2.running_var"])


def test_resnet18_loads_a_named_weights_file(resnet18_weights, tmp_path):
    named = tmp_path / "mine.pth"
    resnet18_weights.rename(named)
    enc = build_encoder("resnet18", weights=str(named))
    assert torch.equal(enc.net.conv1.weight, torch.load(named, weights_only=True)["conv1.weight"])


def test_resnet18_without_weights_says_how_to_get_them(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "empty-hub"))
    with pytest.raises(WeightsNotFoundError, match="efficientnet-lite0.*weights='none'"):
        build_encoder("resnet18")


def test_unknown_encoder_names_the_choices():
    with pytest.raises(ConfigError, match="efficientnet-lite0"):
        build_encoder("vit-b16")


def test_frozen_encoder_has_no_trainable_parameters_and_stays_in_eval_mode():
    enc = build_encoder("resnet18", weights="none")
    enc.train()
    assert not enc.training and not any(m.training for m in enc.modules())
    assert not any(p.requires_grad for p in enc.parameters())


def test_finetuned_encoder_trains_but_keeps_batchnorm_frozen():
    enc = build_encoder("resnet18", weights="none", finetune=True)
    enc.train()
    assert all(p.requires_grad for p in enc.parameters())
    assert not any(m.training for m in enc.modules() if isinstance(m, torch.nn.BatchNorm2d))


def test_a_scratch_encoder_trains_batchnorm_like_any_network():
    enc = build_encoder("resnet18", weights="none", mode="scratch").train()
    assert enc.training and all(m.training for m in enc.modules())
    assert all(p.requires_grad for p in enc.parameters())


def test_backbone_falls_back_to_the_offline_encoder_without_weights(tmp_path, monkeypatch):
    from hetero_ae.model.encoder import resolve_backbone

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "empty-hub"))
    assert resolve_backbone("wide-resnet50") == "efficientnet-lite0"
    assert resolve_backbone("efficientnet-lite0") == "efficientnet-lite0"


def test_backbone_auto_never_tries_a_download(tmp_path, monkeypatch, capsys):
    from hetero_ae.model import encoder

    monkeypatch.delenv("HETERO_AE_NO_DOWNLOAD", raising=False)  # downloads allowed, yet none is tried
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "empty-hub"))

    def no_network(*args, **kwargs):
        raise AssertionError("encoder auto tried to fetch weights")

    monkeypatch.setattr(encoder.TorchvisionEncoder, "resolve_weights", classmethod(no_network))
    assert encoder.resolve_backbone("resnet18") == "efficientnet-lite0"
    assert "download" not in capsys.readouterr().err


def test_backbone_is_the_papers_when_its_weights_are_cached(resnet18_weights):
    from hetero_ae.model.encoder import resolve_backbone

    assert resolve_backbone("resnet18") == "resnet18"


@pytest.mark.parametrize("name", ["resnet18", "efficientnet-lite0", "vgg16", "wide-resnet50", "hybrid", "transformer"])
def test_the_first_stages_alone_are_the_full_forwards_first_maps(name):
    enc = build_encoder(name, weights="none")
    x = torch.randn(1, 3, 64, 64)
    full = enc(x)
    for stages in (1, 2, 3):
        part = enc(x, stages=stages)
        assert len(part) == stages and all(torch.equal(a, b) for a, b in zip(part, full))


def test_rd4ads_teacher_stops_after_its_third_stage(monkeypatch):
    """The fourth stage, which RD4AD never compares, is not run (Wide-ResNet-50-2's layer4 is most of the teacher)."""
    from hetero_ae.config import ModelConfig
    from hetero_ae.methods.rd4ad import RD4AD

    model = RD4AD.from_config(ModelConfig(method="rd4ad", encoder="resnet18", encoder_weights="none", image_size=64))
    calls = []
    model.teacher.net.layer4.register_forward_hook(lambda *a: calls.append("layer4"))
    x = torch.randn(2, 3, 64, 64)
    feats = model.frozen_features(x)
    assert calls == [] and [f.shape[1] for f in feats] == list(model.teacher.channels[:3])
    assert all(torch.equal(a, b) for a, b in zip(feats, model.teacher(x)[:3]))
