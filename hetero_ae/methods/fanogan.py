"""f-AnoGAN [3]: T. Schlegl, P. Seeboeck, S. M. Waldstein, G. Langs, U. Schmidt-Erfurth, "f-AnoGAN:
fast unsupervised anomaly detection with generative adversarial networks", Medical Image Analysis
54:30-44, 2019; official code github.com/tSchlegl/f-AnoGAN (TensorFlow).

Two phases, as in the paper and the official code:
1. WGAN-GP (Gulrajani et al., 2017) on normal images: generator G(z), z ~ N(0, I) of size 128;
   critic D with layer norm; critic loss D(G(z)) - D(x) + 10 * (|grad D(x_mix)| - 1)^2 on random
   interpolates x_mix; generator loss -D(G(z)); one generator step per n_critic = 5 critic steps,
   each critic step on a new batch; Adam betas (0, 0.9) for both (``wgangp_64x64.py``).
2. izif encoder training, G and D frozen (``z_encoding_izif.py``): E maps x to z with loss
   MSE(x, G(E(x))) + kappa * MSE(f(x), f(G(E(x)))), f = the critic's last feature map, kappa = 1,
   optimiser RMSProp (TensorFlow's default decay 0.9); G runs in inference mode.
Score = the same izif quantity per image (image residual + kappa * feature residual, both means).
Map = per-pixel squared image residual averaged over channels (the paper's residual maps).

Departures, and why:
- both phases share the trainer's epochs: the last ``encoder_epochs_fraction`` of them train E,
  the rest train the WGAN, each phase getting at least one epoch when epochs >= 2 (with a single
  epoch only the WGAN trains). The paper trains each phase for its own number of iterations;
  one run with one epoch budget is what the Table I protocol gives every method;
- all three optimisers use the trainer's learning rate (official: 1e-4 for the WGAN, 5e-5 for E);
- networks are the shared DCGAN networks of ``dcgan.py`` (G = decoder, D = encoder with layer
  norm, E = encoder with batch norm), not the official residual networks, and G's output is
  linear instead of tanh because images are ImageNet-normalised;
- the critic/generator schedule counts critic steps in a buffer across epochs (a generator step
  after every n_critic-th), so resuming a run continues the same schedule.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import asdict, dataclass

import torch
from torch import Tensor

from ..config import ModelConfig
from ..model.precision import Forward
from .ae import squared_residual_map
from .dcgan import ConvDecoder, ConvEncoder, DCGANMethod
from .registry import finite, read_hyper_parameters, register


@dataclass(frozen=True)
class FAnoGANParams:
    """f-AnoGAN's hyper-parameters (``ModelConfig.params``); the defaults are the official code's."""

    latent_dim: int = 128  # official wgangp_64x64.py: ZDIM = 128, z ~ N(0, I) (RAND_SAMPLING = 'normal')
    base_channels: int = 64  # official: DIM = 64
    max_channels: int = 512  # official: 8 * DIM at the 4x4 level
    n_critic: int = 5  # official: CRITIC_ITERS = 5
    gp_weight: float = 10.0  # official: LAMBDA = 10
    kappa: float = 1.0  # official z_encoding_izif.py: train_enc_izi(kappa=1.0)
    # official wgangp_64x64.py: AdamOptimizer(beta1=0., beta2=0.9), as Gulrajani et al.
    adam_betas: tuple[float, float] = (0.0, 0.9)
    encoder_rmsprop_alpha: float = 0.9  # official izif encoder: tf.train.RMSPropOptimizer (default decay 0.9)
    encoder_epochs_fraction: float = 0.3  # our choice: the last 30% of the epochs train the encoder


def gradient_penalty(critic: Callable[[Tensor], Tensor], real: Tensor, fake: Tensor, *, weight: float = 10.0,
                     forward: Forward = nullcontext) -> Tensor:
    """WGAN-GP: weight * mean((|grad critic(x_mix)|_2 - 1)^2), x_mix uniform on the segments real-fake.

    The critic's forward runs in the ``forward`` context (the run's precision); the gradient
    of its output, a backward pass, outside it.
    """
    eps = torch.rand(real.shape[0], *([1] * (real.dim() - 1)), dtype=real.dtype, device=real.device)
    mix = (real + eps * (fake - real)).detach().requires_grad_(True)
    with forward():
        out = critic(mix).float().sum()
    (grad,) = torch.autograd.grad(out, mix, create_graph=True)
    return weight * (grad.flatten(1).norm(dim=1) - 1.0).pow(2).mean()


def izif_score(x: Tensor, x_rec: Tensor, feat: Tensor, feat_rec: Tensor, *, kappa: float = 1.0) -> Tensor:
    """Per-image MSE(x, x_rec) + kappa * MSE(f(x), f(x_rec)), shape (B,)."""
    return (x - x_rec).pow(2).flatten(1).mean(1) + kappa * (feat - feat_rec).pow(2).flatten(1).mean(1)


def encoder_epochs(epochs: int, fraction: float) -> int:
    """Epochs of phase 2: round(fraction * epochs), clamped so each phase gets >= 1 when epochs >= 2."""
    if epochs < 2:
        return 0
    return min(max(round(fraction * epochs), 1), epochs - 1)


@register("f-anogan", display_name="f-AnoGAN", paper="Schlegl et al., Medical Image Analysis 2019", paper_row=4)
class FAnoGAN(DCGANMethod):
    hyper_parameters = FAnoGANParams
    trains_under_ddp = False  # its own training_step: several optimisers, alternating updates
    stops_early = False  # its two phases split the epochs it is given: it trains them all (hetero_ae.training.stopping)

    def __init__(self, size: int, *, latent_dim: int, base_channels: int, max_channels: int, n_critic: int,
                 gp_weight: float, kappa: float, adam_betas: tuple[float, float], encoder_rmsprop_alpha: float,
                 encoder_epochs_fraction: float) -> None:
        super().__init__()
        if n_critic < 1 or not 0.0 <= encoder_epochs_fraction <= 1.0:
            raise ValueError("f-anogan: n_critic must be >= 1 and encoder_epochs_fraction in [0, 1]")
        self.generator = ConvDecoder(size, latent_dim, base=base_channels, max_ch=max_channels)
        self.critic = ConvEncoder(size, 1, base=base_channels, max_ch=max_channels, norm="layer")
        self.encoder = ConvEncoder(size, latent_dim, base=base_channels, max_ch=max_channels)
        self.register_buffer("critic_steps", torch.zeros((), dtype=torch.long))
        self.latent_dim, self.n_critic, self.gp_weight, self.kappa = latent_dim, n_critic, gp_weight, kappa
        self.adam_betas, self.rmsprop_alpha = tuple(adam_betas), encoder_rmsprop_alpha
        self.encoder_epochs_fraction = encoder_epochs_fraction
        self.phase = "gan"

    @classmethod
    def from_config(cls, cfg: ModelConfig) -> "FAnoGAN":
        return cls(cfg.image_size, **asdict(read_hyper_parameters(FAnoGANParams, cfg.method, cfg.params)))

    def configure_optimizers(self, lr: float) -> list[torch.optim.Optimizer]:
        """[G (Adam), D (Adam), E (RMSProp)]."""
        return [torch.optim.Adam(self.generator.parameters(), lr=lr, betas=self.adam_betas),
                torch.optim.Adam(self.critic.parameters(), lr=lr, betas=self.adam_betas),
                torch.optim.RMSprop(self.encoder.parameters(), lr=lr, alpha=self.rmsprop_alpha)]

    def on_epoch_start(self, epoch: int, epochs: int) -> None:
        """Phase 1 (WGAN-GP) first, phase 2 (izif encoder) for the last epochs."""
        last = epochs - encoder_epochs(epochs, self.encoder_epochs_fraction)
        self.phase = "encoder" if epoch >= last else "gan"
        frozen = self.phase == "encoder"
        self.generator.requires_grad_(not frozen)
        self.critic.requires_grad_(not frozen)
        self.train(self.training)

    def train(self, mode: bool = True) -> "FAnoGAN":
        """In the encoder phase G and D stay in inference mode (batch-norm statistics frozen)."""
        super().train(mode)
        if mode and self.phase == "encoder":
            self.generator.eval()
            self.critic.eval()
        return self

    def reconstruct(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(G(E(x)), f(x), f(G(E(x))))."""
        x_rec = self.generator(self.encoder(x))
        return x_rec, self.critic.features(x)[1], self.critic.features(x_rec)[1]

    def loss(self, x: Tensor) -> Tensor:
        """The izif encoder loss."""
        x_rec, feat, feat_rec = self.reconstruct(x)
        return izif_score(x, x_rec, feat.detach(), feat_rec, kappa=self.kappa).mean()

    def training_step(self, x: Tensor, optimizers: list[torch.optim.Optimizer], forward: Forward = nullcontext,
                      frozen: list[Tensor] | None = None) -> dict[str, float]:
        opt_g, opt_d, opt_e = optimizers
        if self.phase == "encoder":
            opt_e.zero_grad(set_to_none=True)
            with forward():
                loss = finite(self.loss(x), "encoder")
            loss.backward()
            opt_e.step()
            return {"loss": loss.item()}
        return self._gan_step(x, opt_g, opt_d, forward)

    def _sample(self, n: int, like: Tensor) -> Tensor:
        return torch.randn(n, self.latent_dim, dtype=like.dtype, device=like.device)

    def _gan_step(self, x: Tensor, opt_g: torch.optim.Optimizer, opt_d: torch.optim.Optimizer,
                  forward: Forward) -> dict[str, float]:
        """One critic step on this batch; a generator step after every n_critic-th critic step."""
        with torch.no_grad(), forward():
            fake = self.generator(self._sample(x.shape[0], x))
        opt_d.zero_grad(set_to_none=True)
        with forward():
            wasserstein = self.critic(x).mean() - self.critic(fake).mean()
        penalty = gradient_penalty(self.critic, x, fake, weight=self.gp_weight, forward=forward)
        loss_d = finite(-wasserstein + penalty, "critic")
        loss_d.backward()
        opt_d.step()
        self.critic_steps += 1
        stats = {"loss": loss_d.item(), "wasserstein": wasserstein.item()}
        if int(self.critic_steps) % self.n_critic == 0:
            opt_g.zero_grad(set_to_none=True)
            with forward():
                loss_g = finite(-self.critic(self.generator(self._sample(x.shape[0], x))).mean(), "generator")
            loss_g.backward()
            opt_g.step()
            stats["loss_g"] = loss_g.item()
        return stats

    def predict(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Maps: squared image residual (channel mean); scores: the izif anomaly score."""
        x_rec, feat, feat_rec = self.reconstruct(x)
        return squared_residual_map(x, x_rec), izif_score(x, x_rec, feat, feat_rec, kappa=self.kappa)

    def anomaly_map(self, x: Tensor) -> Tensor:
        return self.predict(x)[0]
