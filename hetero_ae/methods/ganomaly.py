"""GANomaly [21]: S. Akcay, A. Atapour-Abarghouei, T. P. Breckon, "GANomaly: semi-supervised anomaly
detection via adversarial training", ACCV 2018; official code github.com/samet-akcay/ganomaly.

Generator: encoder G_E -> z -> decoder G_D -> x_hat -> encoder E -> z_hat. Discriminator D: a
DCGAN encoder classifier whose last 4x4 feature map f(.) gives the adversarial (feature-matching)
loss. As in the official ``lib/model.py``:
- generator loss w_adv * L2(f(x), f(x_hat)) + w_con * L1(x, x_hat) + w_enc * L2(z, z_hat), with
  w_adv = 1, w_con = 50, w_enc = 1 (``options.py``); L2 is the mean squared difference;
- discriminator loss (BCE(D(x), 1) + BCE(D(x_hat), 0)) / 2; G is updated first, then D on the
  same x_hat; D is re-initialised when its loss falls below 1e-5;
- Adam with betas (0.5, 0.999) for both networks; DCGAN weight initialisation (conv N(0, 0.02),
  batch-norm weight N(1, 0.02), bias 0);
- score = mean over latent dims of (z - z_hat)^2, min-max normalised over the whole test set
  (``normalize_scores``; it never sees a batch alone, so the result does not depend on batch
  order or size).

The map, for heatmaps only, is |x - x_hat| averaged over channels: the method scores images in
latent space and defines no map.

Departures, and why:
- networks are the shared DCGAN encoder/decoder of ``dcgan.py`` (linear output instead of tanh,
  as inputs are ImageNet-normalised; a bias on the last convolution), widths capped at 256, the
  official widest layer at its 32 px default (the official encoder keeps doubling with size);
- D outputs a logit and the BCE is computed with logits: the same loss as the official
  Sigmoid + BCELoss, numerically stable;
- D's features of the real image are detached in the generator loss (the official code lets
  gradients reach D there, then zeroes them before D's update: the same G update).
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..config import ModelConfig
from ..model.precision import Forward
from .dcgan import ConvDecoder, ConvEncoder, DCGANMethod
from .registry import finite, read_hyper_parameters, register


@dataclass(frozen=True)
class GANomalyParams:
    """GANomaly's hyper-parameters (``ModelConfig.params``); the defaults are the official code's."""

    latent_dim: int = 100  # official options.py: nz = 100
    base_channels: int = 64  # official options.py: ngf = ndf = 64
    max_channels: int = 256  # official widest layer at isize = 32
    w_adv: float = 1.0  # official options.py
    w_con: float = 50.0  # official options.py
    w_enc: float = 1.0  # official options.py
    adam_betas: tuple[float, float] = (0.5, 0.999)  # official model.py: betas=(beta1 = 0.5, 0.999)
    d_reinit_threshold: float = 1e-5  # official model.py: re-initialise D when err_d < 1e-5


def dcgan_init(module: nn.Module) -> None:
    """The official ``weights_init``: conv N(0, 0.02); batch norm weight N(1, 0.02), bias 0."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, 0.0, 0.02)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


class Generator(nn.Module):
    """x -> G_E -> z -> G_D -> x_hat -> E -> z_hat."""

    def __init__(self, size: int, latent_dim: int, *, base: int, max_ch: int) -> None:
        super().__init__()
        self.encoder = ConvEncoder(size, latent_dim, base=base, max_ch=max_ch)
        self.decoder = ConvDecoder(size, latent_dim, base=base, max_ch=max_ch)
        self.reencoder = ConvEncoder(size, latent_dim, base=base, max_ch=max_ch)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        z = self.encoder(x)
        x_hat = self.decoder(z)
        return x_hat, z, self.reencoder(x_hat)


def generator_losses(x: Tensor, x_hat: Tensor, z: Tensor, z_hat: Tensor, feat_real: Tensor,
                     feat_fake: Tensor) -> dict[str, Tensor]:
    """The three unweighted generator terms: adversarial (feature L2), contextual (L1), encoder (L2)."""
    return {"adv": F.mse_loss(feat_fake, feat_real), "con": F.l1_loss(x_hat, x), "enc": F.mse_loss(z_hat, z)}


def discriminator_loss(logit_real: Tensor, logit_fake: Tensor) -> Tensor:
    real = F.binary_cross_entropy_with_logits(logit_real, torch.ones_like(logit_real))
    fake = F.binary_cross_entropy_with_logits(logit_fake, torch.zeros_like(logit_fake))
    return 0.5 * (real + fake)


@register("ganomaly", display_name="GANomaly", paper="Akcay et al., ACCV 2018", paper_row=3)
class GANomaly(DCGANMethod):
    hyper_parameters = GANomalyParams
    trains_under_ddp = False  # its own training_step: several optimisers, alternating updates

    def __init__(self, size: int, *, latent_dim: int, base_channels: int, max_channels: int, w_adv: float,
                 w_con: float, w_enc: float, adam_betas: tuple[float, float], d_reinit_threshold: float) -> None:
        super().__init__()
        self.generator = Generator(size, latent_dim, base=base_channels, max_ch=max_channels)
        self.discriminator = ConvEncoder(size, 1, base=base_channels, max_ch=max_channels)
        self.generator.apply(dcgan_init)
        self.discriminator.apply(dcgan_init)
        self.weights = {"adv": w_adv, "con": w_con, "enc": w_enc}
        self.adam_betas, self.d_reinit_threshold = tuple(adam_betas), d_reinit_threshold

    @classmethod
    def from_config(cls, cfg: ModelConfig) -> "GANomaly":
        return cls(cfg.image_size, **asdict(read_hyper_parameters(GANomalyParams, cfg.method, cfg.params)))

    def configure_optimizers(self, lr: float) -> list[torch.optim.Optimizer]:
        return [torch.optim.Adam(m.parameters(), lr=lr, betas=self.adam_betas)
                for m in (self.generator, self.discriminator)]

    def generator_loss(self, x: Tensor, x_hat: Tensor, z: Tensor, z_hat: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """Weighted sum of the three terms, and the terms."""
        feat_real = self.discriminator.features(x)[1].detach()
        feat_fake = self.discriminator.features(x_hat)[1]
        terms = generator_losses(x, x_hat, z, z_hat, feat_real, feat_fake)
        return sum(self.weights[k] * v for k, v in terms.items()), terms

    def loss(self, x: Tensor) -> Tensor:
        return self.generator_loss(x, *self.generator(x))[0]

    def training_step(self, x: Tensor, optimizers: list[torch.optim.Optimizer], forward: Forward = nullcontext,
                      frozen: list[Tensor] | None = None) -> dict[str, float]:
        opt_g, opt_d = optimizers
        with forward():
            x_hat, z, z_hat = self.generator(x)
            loss_g, terms = self.generator_loss(x, x_hat, z, z_hat)
        opt_g.zero_grad(set_to_none=True)
        finite(loss_g, "generator").backward()
        opt_g.step()

        opt_d.zero_grad(set_to_none=True)
        with forward():
            loss_d = discriminator_loss(self.discriminator(x), self.discriminator(x_hat.detach()))
        finite(loss_d, "discriminator").backward()
        opt_d.step()
        if loss_d.item() < self.d_reinit_threshold:
            self.discriminator.apply(dcgan_init)
        return {"loss": loss_g.item(), "loss_d": loss_d.item(), **{f"loss_{k}": v.item() for k, v in terms.items()}}

    def predict(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Maps |x - x_hat| (channel mean, for heatmaps); scores mean((z - z_hat)^2) over latent dims."""
        x_hat, z, z_hat = self.generator(x)
        return (x - x_hat).abs().mean(dim=1), (z - z_hat).pow(2).mean(dim=1)

    def anomaly_map(self, x: Tensor) -> Tensor:
        return self.predict(x)[0]

    def normalize_scores(self, scores: np.ndarray, reference: np.ndarray | None = None) -> np.ndarray:
        """Min-max by the range of ``reference`` (default: ``scores``; the official code: the whole test set)."""
        ref = scores if reference is None else reference
        if ref.size == 0:
            return scores
        lo, hi = ref.min(), ref.max()
        return np.zeros_like(scores) if hi <= lo else (scores - lo) / (hi - lo)
