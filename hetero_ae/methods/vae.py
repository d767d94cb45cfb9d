"""VAE [43]: T. Matsubara, K. Sato, K. Hama, R. Tachibana, K. Uehara, "Deep generative model using
unregularized score for anomaly detection with heterogeneous complexity", IEEE Trans. Cybernetics
52(6):5161-5173, 2022.

A convolutional VAE trained with the ELBO: a Gaussian decoder (reconstruction term = squared
error summed over pixels) plus ``kl_weight`` (1 = the ELBO) times KL(q(z|x) || N(0, I)). The
encoder gives (mu, log sigma^2) of a diagonal Gaussian posterior and z is sampled with the
reparameterisation trick. The anomaly score is the paper's *unregularized score*: the
reconstruction term of the negative ELBO alone, without the KL regulariser, which the paper shows
penalises complex but normal images.

Followed from the paper: ELBO training, and scoring by the reconstruction term only.

Departures, and why:
- the score is computed from the decoder output at z = mu, without sampling, so that a test
  image always gets the same score (the paper's expectation over q(z|x) would need Monte-Carlo
  samples and adds noise to every score);
- the score is the mean of the map (squared residual averaged over channels and pixels), i.e.
  the reconstruction term divided by C * H * W: the same ranking, on a scale independent of
  image size;
- a sum of squared errors is the negative log-likelihood of a Gaussian decoder with variance 1/2
  up to a constant; the decoder variance is not learnt;
- the network is the shared DCGAN encoder (``out_dim = 2 * latent_dim``) and decoder of
  ``dcgan.py``, common to all reconstruction baselines; the latent size (100), widths and Adam
  betas (PyTorch defaults) are our choices, the paper's are not available to us.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import Tensor

from ..config import ModelConfig
from .ae import squared_residual_map
from .dcgan import ConvDecoder, ConvEncoder, DCGANMethod
from .registry import read_hyper_parameters, register


@dataclass(frozen=True)
class VAEParams:
    """VAE's hyper-parameters (``ModelConfig.params``); the paper fixes only ``kl_weight``."""

    latent_dim: int = 100  # our choice (as AE [42]); not available to us from [43]
    base_channels: int = 32  # our choice (shared DCGAN widths)
    max_channels: int = 256  # our choice
    kl_weight: float = 1.0  # 1 = the ELBO that [43] maximises
    adam_betas: tuple[float, float] = (0.9, 0.999)  # Adam defaults (Kingma & Ba); our choice


def kl_divergence(mu: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)) per sample, shape (B,)."""
    return -0.5 * (1.0 + logvar - mu.pow(2) - logvar.exp()).sum(dim=1)


def reconstruction_term(x: Tensor, x_hat: Tensor) -> Tensor:
    """Squared error summed over channels and pixels, per sample, shape (B,)."""
    return (x - x_hat).pow(2).flatten(1).sum(dim=1)


def negative_elbo(x: Tensor, x_hat: Tensor, mu: Tensor, logvar: Tensor, *, kl_weight: float = 1.0) -> Tensor:
    """Batch mean of reconstruction term + kl_weight * KL."""
    return (reconstruction_term(x, x_hat) + kl_weight * kl_divergence(mu, logvar)).mean()


@register("vae", display_name="VAE", paper="Matsubara et al., IEEE Trans. Cybernetics 2022", paper_row=2)
class VAE(DCGANMethod):
    hyper_parameters = VAEParams

    def __init__(self, size: int, *, latent_dim: int, base_channels: int, max_channels: int, kl_weight: float,
                 adam_betas: tuple[float, float]) -> None:
        super().__init__()
        self.encoder = ConvEncoder(size, 2 * latent_dim, base=base_channels, max_ch=max_channels)
        self.decoder = ConvDecoder(size, latent_dim, base=base_channels, max_ch=max_channels)
        self.kl_weight, self.adam_betas = kl_weight, tuple(adam_betas)

    @classmethod
    def from_config(cls, cfg: ModelConfig) -> "VAE":
        return cls(cfg.image_size, **asdict(read_hyper_parameters(VAEParams, cfg.method, cfg.params)))

    def configure_optimizers(self, lr: float) -> list[torch.optim.Optimizer]:
        return [torch.optim.Adam(self.parameters(), lr=lr, betas=self.adam_betas)]

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(mu, logvar) of q(z|x), each (B, latent_dim)."""
        mu, logvar = self.encoder(x).chunk(2, dim=1)
        return mu, logvar

    def loss(self, x: Tensor) -> Tensor:
        mu, logvar = self.encode(x)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
        return negative_elbo(x, self.decoder(z), mu, logvar, kl_weight=self.kl_weight)

    def anomaly_map(self, x: Tensor) -> Tensor:
        mu, _ = self.encode(x)
        return squared_residual_map(x, self.decoder(mu))

    def predict(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Unregularized score at z = mu: mean of the squared-residual map."""
        maps = self.anomaly_map(x)
        return maps, maps.flatten(1).mean(dim=1)
