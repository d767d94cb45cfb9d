"""Hand-checked losses, scores and training phases of the AE, VAE, GANomaly and f-AnoGAN baselines."""

from __future__ import annotations

import math
from dataclasses import asdict

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter
from skimage.metrics import structural_similarity
from torch import Tensor, nn

from hetero_ae import ModelConfig, build_model
from hetero_ae.evaluation.predict import predict
from hetero_ae.methods.ae import AE, ssim
from hetero_ae.methods.fanogan import FAnoGAN, encoder_epochs, gradient_penalty, izif_score
from hetero_ae.methods.ganomaly import GANomaly, discriminator_loss
from hetero_ae.methods.vae import VAE, kl_divergence, negative_elbo

SIZE = 32
TINY = {"latent_dim": 8, "base_channels": 4, "max_channels": 16}


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny tensors: one thread avoids OpenMP spin-waiting on a busy machine (restored afterwards)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tiny(cls: type, **extra) -> nn.Module:
    """``cls`` with its paper hyper-parameters (``cls.hyper_parameters``), but ``TINY`` widths and ``extra``."""
    torch.manual_seed(0)
    return cls(SIZE, **{**asdict(cls.hyper_parameters()), **TINY, **extra})


def snapshot(module: nn.Module) -> dict[str, Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def same(module: nn.Module, snap: dict[str, Tensor]) -> bool:
    return all(torch.equal(v, snap[k]) for k, v in module.state_dict().items())


# --- AE ---------------------------------------------------------------------------------------

def test_ssim_matches_skimage_per_channel():
    rng = np.random.default_rng(0)
    a = gaussian_filter(rng.random((3, 32, 32)), (0, 1.5, 1.5))
    b = np.clip(a + rng.normal(0, 0.05, a.shape), 0, 1)
    ours = ssim(torch.tensor(a)[None], torch.tensor(b)[None])[0].numpy()
    p = 5  # skimage's mean SSIM ignores the (window - 1) / 2 border, where padding conventions differ
    for c in range(3):
        mean, full = structural_similarity(a[c], b[c], gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                           data_range=1.0, full=True)
        np.testing.assert_allclose(ours[c, p:-p, p:-p], full[p:-p, p:-p], atol=1e-10)
        assert ours[c, p:-p, p:-p].mean() == pytest.approx(mean, abs=1e-10)


def test_ssim_is_one_for_identical_images_and_differentiable():
    x = torch.rand(1, 3, 16, 16, dtype=torch.float64, requires_grad=True)
    torch.testing.assert_close(ssim(x.detach(), x.detach()), torch.ones(1, 3, 16, 16, dtype=torch.float64))
    (1 - ssim(x, torch.rand(1, 3, 16, 16, dtype=torch.float64)).mean()).backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_ae_l2_loss_map_and_mean_score_by_hand():
    model = tiny(AE)
    model.reconstruct = lambda x: x + 0.5
    x = torch.randn(2, 3, SIZE, SIZE)
    assert model.loss(x).item() == pytest.approx(0.25)
    maps, scores = model.predict(x)
    torch.testing.assert_close(maps, torch.full((2, SIZE, SIZE), 0.25))
    torch.testing.assert_close(scores, torch.full((2,), 0.25))


def test_ae_ssim_loss_is_zero_for_a_perfect_reconstruction():
    model = tiny(AE, loss="ssim")
    model.reconstruct = lambda x: x.clone()
    x = torch.randn(2, 3, SIZE, SIZE)
    assert model.loss(x).item() == pytest.approx(0.0, abs=1e-5)
    assert model.predict(x)[0].abs().max().item() < 1e-5


def test_ae_rejects_an_unknown_loss():
    with pytest.raises(ValueError, match="loss"):
        build_model(ModelConfig(method="ae", image_size=64, params={"loss": "l1"}))


# --- VAE --------------------------------------------------------------------------------------

def test_vae_kl_and_negative_elbo_by_hand():
    mu, logvar = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, math.log(2.0)]])
    kl = 1.0 - 0.5 * math.log(2.0)  # -1/2 [(1 + 0 - 1 - 1) + (1 + ln 2 - 0 - 2)]
    assert kl_divergence(mu, logvar).item() == pytest.approx(kl)
    x, x_hat = torch.zeros(1, 2, 2, 2), torch.full((1, 2, 2, 2), 0.5)  # squared error summed: 8 * 0.25 = 2
    assert negative_elbo(x, x_hat, mu, logvar, kl_weight=2.0).item() == pytest.approx(2.0 + 2.0 * kl)


def test_vae_scores_the_reconstruction_at_the_posterior_mean():
    model = tiny(VAE).eval()
    x = torch.randn(3, 3, SIZE, SIZE)
    with torch.no_grad():
        maps, scores = model.predict(x)
        x_hat = model.decoder(model.encode(x)[0])
        torch.testing.assert_close(model.predict(x)[1], scores)  # no sampling at test time
    torch.testing.assert_close(scores, (x - x_hat).pow(2).mean(dim=(1, 2, 3)))
    torch.testing.assert_close(maps, (x - x_hat).pow(2).mean(dim=1))


# --- GANomaly ---------------------------------------------------------------------------------

class FeatureTimesTwo(nn.Module):
    """A stand-in discriminator: features(x) = (logit, 2 x)."""

    def features(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return x.flatten(1).mean(1, keepdim=True), 2 * x


def test_ganomaly_generator_loss_combines_the_official_terms_and_weights():
    model = tiny(GANomaly)
    model.discriminator = FeatureTimesTwo()
    x, x_hat = torch.zeros(1, 3, 4, 4), torch.full((1, 3, 4, 4), 0.5)
    z, z_hat = torch.zeros(1, 3), torch.tensor([[1.0, 2.0, 2.0]])
    total, terms = model.generator_loss(x, x_hat, z, z_hat)
    assert terms["adv"].item() == pytest.approx(1.0)  # mean (2 * 0.5 - 0)^2
    assert terms["con"].item() == pytest.approx(0.5)  # mean |0.5 - 0|
    assert terms["enc"].item() == pytest.approx(3.0)  # (1 + 4 + 4) / 3
    assert total.item() == pytest.approx(1 * 1.0 + 50 * 0.5 + 1 * 3.0)


def test_ganomaly_discriminator_loss_by_hand():
    assert discriminator_loss(torch.zeros(4, 1), torch.zeros(4, 1)).item() == pytest.approx(math.log(2.0))
    assert discriminator_loss(torch.full((4, 1), 30.0), torch.full((4, 1), -30.0)).item() < 1e-5


@pytest.mark.parametrize("threshold, reinitialised", [(1e9, True), (0.0, False)])
def test_ganomaly_reinitialises_the_discriminator_below_the_threshold(threshold, reinitialised):
    model = tiny(GANomaly, d_reinit_threshold=threshold)
    first = model.discriminator.body[0]
    with torch.no_grad():
        first.weight.fill_(5.0)
    model.train().training_step(torch.randn(2, 3, SIZE, SIZE), model.configure_optimizers(1e-4))
    assert (first.weight.abs().max().item() < 1.0) == reinitialised


def test_ganomaly_normalised_scores_do_not_depend_on_batch_order_or_size():
    model = tiny(GANomaly)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (7, SIZE, SIZE, 3), dtype=np.uint8)
    images[:3] = images[:3] // 8  # darker images: a spread of scores
    _, scores = predict(model, images, batch_size=4)
    perm = rng.permutation(7)
    _, permuted = predict(model, images[perm], batch_size=2)
    np.testing.assert_allclose(permuted, scores[perm], atol=1e-4)
    assert scores.min() == 0.0 and scores.max() == 1.0
    np.testing.assert_array_equal(model.normalize_scores(np.full(3, 2.0)), np.zeros(3))


# --- f-AnoGAN ---------------------------------------------------------------------------------

@pytest.mark.parametrize("norm, penalty", [(1.0, 0.0), (2.0, 10.0)])
def test_gradient_penalty_of_a_linear_critic(norm, penalty):
    torch.manual_seed(0)
    w = torch.randn(3, 8, 8, dtype=torch.float64)
    w = norm * w / w.norm()  # |grad f| = norm everywhere

    def critic(t: Tensor) -> Tensor:
        return (t * w).flatten(1).sum(1, keepdim=True)

    real, fake = torch.randn(5, 3, 8, 8, dtype=torch.float64), torch.randn(5, 3, 8, 8, dtype=torch.float64)
    assert gradient_penalty(critic, real, fake, weight=10.0).item() == pytest.approx(penalty, abs=1e-10)


def test_izif_score_by_hand():
    x, x_rec = torch.zeros(2, 3, 4, 4), torch.ones(2, 3, 4, 4)
    feat, feat_rec = torch.zeros(2, 5, 2, 2), torch.full((2, 5, 2, 2), 2.0)
    torch.testing.assert_close(izif_score(x, x_rec, feat, feat_rec, kappa=0.5), torch.full((2,), 1.0 + 0.5 * 4.0))


@pytest.mark.parametrize("epochs, fraction, expected", [(1, 0.3, 0), (2, 0.3, 1), (2, 0.0, 1), (2, 1.0, 1),
                                                        (10, 0.3, 3), (10, 1.0, 9)])
def test_both_phases_get_an_epoch(epochs, fraction, expected):
    assert encoder_epochs(epochs, fraction) == expected


def test_fanogan_encoder_phase_trains_only_the_encoder():
    model = tiny(FAnoGAN).train()
    opts = model.configure_optimizers(1e-3)
    model.on_epoch_start(1, 2)
    assert model.phase == "encoder" and not model.generator.training and model.encoder.training
    g, d, e = snapshot(model.generator), snapshot(model.critic), snapshot(model.encoder)
    model.training_step(torch.randn(4, 3, SIZE, SIZE), opts)
    assert same(model.generator, g) and same(model.critic, d) and not same(model.encoder, e)


def test_fanogan_gan_phase_steps_the_generator_every_n_critic_steps():
    model = tiny(FAnoGAN, n_critic=2).train()
    opts = model.configure_optimizers(1e-3)
    model.on_epoch_start(0, 2)
    assert model.phase == "gan" and model.generator.training
    g, d, e = snapshot(model.generator), snapshot(model.critic), snapshot(model.encoder)
    stats = model.training_step(torch.randn(4, 3, SIZE, SIZE), opts)
    assert "loss_g" not in stats and not same(model.critic, d) and same(model.encoder, e)
    assert all(torch.equal(p, g[k]) for k, p in model.generator.named_parameters())
    assert "loss_g" in model.training_step(torch.randn(4, 3, SIZE, SIZE), opts)
    assert not all(torch.equal(p, g[k]) for k, p in model.generator.named_parameters())


def test_fanogan_non_finite_loss_raises():
    model = tiny(FAnoGAN).train()
    model.on_epoch_start(1, 2)
    with pytest.raises(FloatingPointError):
        model.training_step(torch.full((2, 3, SIZE, SIZE), float("nan")), model.configure_optimizers(1e-3))
