"""How runs execute (``hetero_ae.training.runtime``): bf16 autocast, torch.compile, the batch loader, threads.

bf16 is checked for what it must do (forward passes in bfloat16, backward and weights in
float32, predictions back in float32 and close to float32's) on the CPU, where torch's
autocast supports bfloat16 too; compilation with the ``aot_eager`` backend, which traces the
same graphs as inductor (forward and backward) without its minutes of C++ compilation on two
cores.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from hetero_ae import ModelConfig, TrainConfig
from hetero_ae.config import from_dict, key_dict, to_dict
from hetero_ae.data.batches import ArrayImages, batch_loader
from hetero_ae.data.images import ImageSet, to_batch
from hetero_ae.errors import ConfigError
from hetero_ae.evaluation.predict import predict
from hetero_ae.experiment.specs import RunSpec
from hetero_ae.methods import build_model
from hetero_ae.model.precision import running_in
from hetero_ae.training import runtime
from hetero_ae.training.checkpoint import load_model, trained_precision
from hetero_ae.training.loop import train
from hetero_ae.training.seed import build_seeded

MODEL = ModelConfig(encoder="resnet18", encoder_weights="none", image_size=64)
TRAIN = TrainConfig(epochs=1, batch_size=4, lr=1e-3, seed=3)
SMALL = {"latent_dim": 16, "base_channels": 8, "max_channels": 32}


@pytest.fixture(scope="module")
def images() -> ImageSet:
    arr = np.random.default_rng(2).integers(0, 255, (9, 64, 64, 3), dtype=np.uint8)
    return ImageSet(arr, [f"i{i}" for i in range(9)], np.full(9, -1))


def test_precision_is_keyed_only_when_set_so_earlier_runs_keep_their_folders():
    fp32, bf16 = TrainConfig(), TrainConfig(precision="bf16")
    assert "precision" not in key_dict(fp32) and key_dict(bf16)["precision"] == "bf16"
    assert key_dict(fp32) == {k: v for k, v in to_dict(fp32).items() if k not in TrainConfig.KEY_SINCE}
    a, b = RunSpec("synth-oct", MODEL, fp32), RunSpec("synth-oct", MODEL, bf16)
    assert a.key_dict() != b.key_dict() and a.as_dict()["train"]["precision"] == "fp32"
    old = {k: v for k, v in to_dict(fp32).items() if k != "precision"}  # a checkpoint written before the field
    assert from_dict(TrainConfig, old) == fp32
    with pytest.raises(ConfigError, match="precision"):
        TrainConfig(precision="fp16")


def test_compile_settings():
    assert runtime.compile_backend(False) is None and runtime.compile_backend(None) is None
    assert runtime.compile_backend(True) == "inductor" and runtime.compile_backend("aot_eager") == "aot_eager"
    with pytest.raises(ConfigError, match="backend"):
        runtime.compile_backend("fastest")


def test_workers_and_threads_are_sized_to_the_machine(monkeypatch):
    assert runtime.loader_workers("cpu") == 0 and runtime.loader_workers("cpu", 3) == 3
    assert 0 <= runtime.loader_workers("cuda") <= 4
    with pytest.raises(ConfigError):
        runtime.loader_workers("cpu", -1)
    cores = runtime.cpu_threads()
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    assert runtime.cpu_threads() == max(1, cores // 2) and runtime.cpu_threads(5) == 5


def test_the_batch_loader_leaves_torchs_random_state_alone(images):
    """Stochastic methods (VAE, SALAD, f-AnoGAN) draw from torch's RNG: iterating batches must not move it."""
    torch.manual_seed(0)
    before = torch.get_rng_state()
    for workers in (0, 1):
        list(batch_loader(ArrayImages(images.images), [np.array([0, 1]), np.array([2])], workers=workers))
    assert torch.equal(torch.get_rng_state(), before)


def test_the_batch_loader_gives_the_same_batches_in_order_with_or_without_workers(images):
    batches = [np.array([3, 1]), np.array([0, 2, 8]), np.array([5])]
    direct = [images.images[b] for b in batches]
    for workers in (0, 2):
        got = [b.images.numpy() for b in batch_loader(ArrayImages(images.images), batches, workers=workers)]
        assert len(got) == 3 and all(np.array_equal(g, d) for g, d in zip(got, direct))


def test_training_with_loader_workers_gives_the_same_weights(images, tmp_path):
    a, _ = train(MODEL, TRAIN, images, tmp_path / "a", progress=False, workers=0)
    b, _ = train(MODEL, TRAIN, images, tmp_path / "b", progress=False, workers=2)
    assert all(torch.equal(v, b.state_dict()[k]) for k, v in a.state_dict().items())


def watch(model: nn.Module, monkeypatch) -> dict[str, set]:
    """Record the output dtypes of every convolution and linear layer, and whether autocast was on in backward passes."""
    seen: dict[str, set] = {"forward": set(), "backward_autocast": set()}
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            m.register_forward_hook(lambda _m, _i, out: seen["forward"].add(out.dtype))
    for name in ("backward", "grad"):  # loss.backward() and WGAN-GP's autograd.grad
        def patched(*args, _real=getattr(torch.autograd, name), **kwargs):
            seen["backward_autocast"].add(torch.is_autocast_enabled("cpu"))
            return _real(*args, **kwargs)

        monkeypatch.setattr(torch.autograd, name, patched)
    return seen


@pytest.mark.parametrize("method, params, epoch", [
    ("hetero-ae", {}, 0), ("ganomaly", SMALL, 0), ("f-anogan", {**SMALL, "n_critic": 1}, 0),
    ("f-anogan", {**SMALL, "n_critic": 1}, 1), ("salad", SMALL, 0),
])
def test_bf16_runs_forward_passes_in_bfloat16_and_backward_outside_autocast(method, params, epoch, monkeypatch):
    torch.manual_seed(0)
    model = build_model(ModelConfig(method=method, encoder="resnet18", encoder_weights="none", image_size=64,
                                    params=params))
    optimizers = model.configure_optimizers(1e-4)
    model.train()
    model.on_epoch_start(epoch, 2)  # f-AnoGAN: its GAN phase, then its encoder phase
    before = {k: v.clone() for k, v in model.named_parameters() if v.requires_grad}
    seen = watch(model, monkeypatch)
    x = torch.randn(4, 3, 64, 64)
    with running_in(model, "bf16") as forward:
        stats = model.training_step(x, optimizers, forward=forward)
        assert torch.bfloat16 in seen["forward"] and seen["backward_autocast"] == {False}
        assert np.isfinite(stats["loss"])
        model.eval()
        with torch.no_grad(), forward():
            assert model.loss(x).dtype == torch.float32  # the networks' outputs are compared in float32
            maps, scores = model.predict(x)
    assert maps.dtype == scores.dtype == torch.float32
    assert not any(m._forward_hooks for m in model.children())  # the model leaves as it came
    params = dict(model.named_parameters())
    assert all(params[k].dtype == torch.float32 for k in before)
    assert any(not torch.equal(params[k], v) for k, v in before.items())


def test_fp32_stays_float32(monkeypatch):
    model = build_seeded(MODEL, 0)
    seen = watch(model, monkeypatch)
    model.training_step(torch.randn(2, 3, 64, 64), model.configure_optimizers(1e-4))
    assert seen["forward"] == {torch.float32}


def test_a_bf16_run_predicts_in_bf16_and_returns_float32_maps_close_to_float32s(images, tmp_path):
    cfg = TrainConfig(epochs=1, batch_size=4, lr=1e-3, seed=3, precision="bf16")
    model, history = train(MODEL, cfg, images, tmp_path / "run", progress=False)
    assert np.isfinite(history[0]["loss"])
    loaded, ckpt = load_model(tmp_path / "run" / "checkpoint.pt")
    assert trained_precision(ckpt) == "bf16"
    maps, scores = predict(loaded, images.images, precision="bf16")
    assert maps.dtype == np.float32 and np.isfinite(maps).all()
    maps32, scores32 = predict(loaded, images.images, precision="fp32")
    assert np.corrcoef(maps.ravel(), maps32.ravel())[0, 1] > 0.99  # bfloat16 networks, float32 comparison
    assert np.allclose(scores, scores32, rtol=0.05)
    # the cosine of Eq. 6 is taken in float32: a map keeps its resolution, not bfloat16's 8 bits
    assert len(np.unique(maps[0])) > 0.5 * len(np.unique(maps32[0]))


def gradients(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    model.zero_grad(set_to_none=True)
    loss = model.loss(x)
    loss.backward()
    return loss.detach(), {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}


def test_compiled_training_computes_what_eager_does_and_leaves_the_model_as_it_came(images, tmp_path):
    eager, h_eager = train(MODEL, TRAIN, images, tmp_path / "eager", progress=False)
    model, h_comp = train(MODEL, TRAIN, images, tmp_path / "compiled", progress=False, compile="aot_eager")
    # Adam turns float rounding in near-zero gradients into steps of ~lr, so weights after training are
    # not compared; the loss over the epoch and one step's gradients are.
    assert np.isclose(h_comp[0]["loss"], h_eager[0]["loss"], rtol=1e-3)
    assert "loss" not in model.__dict__ and "predict_with_distance" not in model.__dict__
    x = to_batch(images.images[:4])
    model.train()
    loss, grads = gradients(model, x)
    with runtime.compiled(model, "aot_eager") as m:
        c_loss, c_grads = gradients(m, x)
        m.eval()
        with torch.no_grad():
            c_maps = m.predict_with_distance(x)[0]
    torch.testing.assert_close(c_loss, loss, rtol=1e-5, atol=1e-6)
    assert c_grads.keys() == grads.keys()
    for k, g in grads.items():
        torch.testing.assert_close(c_grads[k], g, rtol=1e-3, atol=1e-6, msg=k)
    with torch.no_grad():
        torch.testing.assert_close(c_maps, model.predict_with_distance(x)[0], rtol=1e-4, atol=1e-5)


def test_the_cli_trains_in_bf16_and_records_how_it_ran(images, tmp_path, image_folders):
    from hetero_ae.cli import main

    out = tmp_path / "run"
    assert main(["train", "--data", str(image_folders["train"]), "--out", str(out), "--encoder-weights", "none",
                 "--image-size", "64", "--epochs", "1", "--batch-size", "4", "--precision", "bf16",
                 "--workers", "0"]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["train"]["precision"] == "bf16" and config["compile"] is None and config["device"] == "cpu"
    scored = tmp_path / "scored"
    assert main(["score", "--checkpoint", str(out / "checkpoint.pt"), "--images", str(image_folders["train"]),
                 "--out", str(scored), "--workers", "0"]) == 0
    assert json.loads((scored / "score.json").read_text())["precision"] == "bf16"
    assert main(["score", "--checkpoint", str(out / "checkpoint.pt"), "--images", str(image_folders["train"]),
                 "--out", str(scored), "--workers", "0", "--resume", "--precision", "fp32"]) == 2
