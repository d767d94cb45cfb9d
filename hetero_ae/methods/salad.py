"""SALAD [9]: H. Zhao, Y. Li, N. He, K. Ma, L. Fang, H. Li, Y. Zheng, "Anomaly detection for medical
images using self-supervised and translation-consistent features", IEEE TMI 40(12):3641-3651, 2021.

Neither the full text nor the official code is available to us, so this is a reconstruction of the
method from its abstract and from Hetero-AE's description of it ("AE with adversarial learning",
heatmaps shown as pixel-wise residuals). Parts named in the abstract:

- image -> latent -> image translation x -> E -> G -> x_hat, regulated by a *structure similarity
  loss* (SSIM, 11x11 Gaussian window, sigma 1.5, on images mapped back to [0, 1]) next to an L1 loss;
- latent -> image -> latent translation z ~ N(0, I) -> G -> E -> z_hat with an L2 loss (translation
  consistency);
- a *centre constraint loss* pulling E(x) of normal images towards a centre c (Deep SVDD-style);
- adversarial learning: a DCGAN image discriminator on x (real) vs x_hat and G(z) (fake), with
  non-saturating BCE losses and Adam betas (0.5, 0.999);
- a *self-supervised module* on the raw normal images.

Our reconstruction (each choice made because the paper's is unknown to us):

- c is the mean latent E(x) of the first training batch, then fixed (Deep SVDD fixes c after an
  initial pass); it is a buffer, so checkpoints store it. Squared distances are averaged over
  latent coordinates, so loss weights do not depend on ``latent_dim``.
- the self-supervised task is rotation prediction (RotNet; Golan & El-Yaniv 2018): image i of a batch
  is rotated by (i mod 4) * 90 degrees and a linear head on E's last 4x4 feature map predicts the
  rotation. Medical scans have a canonical orientation, so the task forces E to encode anatomy.
- no latent discriminator: it would pull E(x) towards N(0, I) against the centre constraint.
- map = (1 - b) |x - x_hat| (channel mean) + b (1 - SSIM map) (channel mean), at the input size.
  score = (1 - l) mean(map) / r_img + l (|E(x) - c|^2 + |E(x) - E(x_hat)|^2) / r_feat, where r_img and
  r_feat are running means (momentum 0.1) of the two terms over the training batches: each term is
  measured in units of its typical value on normal training images, with no use of the test set.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..config import ModelConfig
from ..model.precision import Forward
from .dcgan import ConvDecoder, ConvEncoder, DCGANMethod
from .registry import finite, read_hyper_parameters, register
from .ssim import ssim, to_unit_range


@dataclass(frozen=True)
class SALADParams:
    """SALAD's hyper-parameters (``ModelConfig.params``): the paper names the losses; every value is ours."""

    latent_dim: int = 128  # our choice
    base_channels: int = 32  # our choice (DCGAN widths, doubling up to max_channels)
    max_channels: int = 256  # our choice
    w_l1: float = 1.0  # image reconstruction (L1); weight our choice
    w_ssim: float = 1.0  # structure similarity loss (paper); weight our choice
    w_latent: float = 1.0  # latent -> image -> latent consistency (paper); weight our choice
    w_center: float = 0.1  # centre constraint loss (paper); weight our choice
    w_adv: float = 0.1  # generator's adversarial loss (paper: adversarial learning); weight our choice
    w_rotation: float = 1.0  # self-supervised rotation prediction; task and weight our choice
    adam_betas: tuple[float, float] = (0.5, 0.999)  # DCGAN's values; our choice
    map_ssim_weight: float = 0.5  # b: share of 1 - SSIM in the map; our choice
    score_feature_weight: float = 0.5  # l: share of the feature term in the score; our choice


def center_loss(z: Tensor, center: Tensor) -> Tensor:
    """Mean over the batch of the mean squared distance of each latent code to the centre."""
    return ((z - center) ** 2).mean(dim=1).mean()


def rotate_batch(x: Tensor) -> tuple[Tensor, Tensor]:
    """Image i rotated by (i mod 4) * 90 degrees counter-clockwise; labels i mod 4."""
    labels = torch.arange(x.shape[0], device=x.device) % 4
    out = x.clone()
    for k in (1, 2, 3):
        out[labels == k] = torch.rot90(x[labels == k], k, dims=(2, 3))
    return out, labels


@register("salad", display_name="SALAD", paper="Zhao et al., IEEE TMI 2021", paper_row=5)
class SALAD(DCGANMethod):
    hyper_parameters = SALADParams
    trains_under_ddp = False  # its own training_step: several optimisers, alternating updates

    def __init__(self, image_size: int, *, latent_dim: int, base_channels: int, max_channels: int, w_l1: float,
                 w_ssim: float, w_latent: float, w_center: float, w_adv: float, w_rotation: float,
                 adam_betas: tuple[float, float], map_ssim_weight: float, score_feature_weight: float) -> None:
        super().__init__()
        widths = {"base": base_channels, "max_ch": max_channels}
        self.encoder = ConvEncoder(image_size, latent_dim, **widths)
        self.generator = ConvDecoder(image_size, latent_dim, **widths)
        self.discriminator = ConvEncoder(image_size, 1, **widths)
        self.rotation_head = nn.Sequential(nn.Flatten(), nn.Linear(self.encoder.feature_channels * 16, 4))
        self.weights = {"l1": w_l1, "ssim": w_ssim, "latent": w_latent, "center": w_center, "adv": w_adv,
                        "rotation": w_rotation}
        self.latent_dim, self.adam_betas = latent_dim, tuple(adam_betas)
        self.map_ssim_weight, self.score_feature_weight = map_ssim_weight, score_feature_weight
        self.register_buffer("center", torch.zeros(latent_dim))
        self.register_buffer("score_ref", torch.ones(2))  # running means of the (image, feature) score terms
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))

    @classmethod
    def from_config(cls, cfg: ModelConfig) -> "SALAD":
        return cls(cfg.image_size, **asdict(read_hyper_parameters(SALADParams, cfg.method, cfg.params)))

    def pixel_map(self, x: Tensor, x_hat: Tensor, sim: Tensor) -> Tensor:
        residual = (x - x_hat).abs().mean(dim=1)
        return (1 - self.map_ssim_weight) * residual + self.map_ssim_weight * (1 - sim).mean(dim=1)

    def generator_pass(self, x: Tensor) -> tuple[Tensor, dict[str, Tensor], Tensor, Tensor, Tensor, Tensor]:
        """(E/G objective, its terms, x_hat, G(z), E(x), SSIM map of x_hat vs x)."""
        z_real = self.encoder(x)
        x_hat = self.generator(z_real)
        z = torch.randn(x.shape[0], self.latent_dim, device=x.device)
        x_gen = self.generator(z)
        x_rot, labels = rotate_batch(x)
        sim = ssim(to_unit_range(x_hat), to_unit_range(x))
        fake_logits = self.discriminator(torch.cat([x_hat, x_gen]))
        terms = {
            "l1": F.l1_loss(x_hat, x),
            "ssim": 1 - sim.mean(),
            "latent": F.mse_loss(self.encoder(x_gen), z),
            "center": center_loss(z_real, self.center),
            "adv": F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits)),
            "rotation": F.cross_entropy(self.rotation_head(self.encoder.features(x_rot)[1]), labels),
        }
        total = sum(self.weights[k] * v for k, v in terms.items())
        return total, terms, x_hat, x_gen, z_real, sim

    def loss(self, x: Tensor) -> Tensor:
        return self.generator_pass(x)[0]

    def configure_optimizers(self, lr: float) -> list[torch.optim.Optimizer]:
        eg = [*self.encoder.parameters(), *self.generator.parameters(), *self.rotation_head.parameters()]
        return [torch.optim.Adam(eg, lr=lr, betas=self.adam_betas),
                torch.optim.Adam(self.discriminator.parameters(), lr=lr, betas=self.adam_betas)]

    def training_step(self, x: Tensor, optimizers: list[torch.optim.Optimizer], forward: Forward = nullcontext,
                      frozen: list[Tensor] | None = None) -> dict[str, float]:
        opt_eg, opt_d = optimizers
        if self.steps.item() == 0:
            with torch.no_grad():
                self.center.copy_(self.encoder(x).mean(dim=0))
        self.discriminator.requires_grad_(False)
        with forward():
            total, _, x_hat, x_gen, z_real, sim = self.generator_pass(x)
        self.discriminator.requires_grad_(True)
        finite(total, "encoder/generator")
        opt_eg.zero_grad(set_to_none=True)
        total.backward()
        opt_eg.step()

        with forward():
            real, fake = self.discriminator(x), self.discriminator(torch.cat([x_hat, x_gen]).detach())
            d_loss = (F.binary_cross_entropy_with_logits(real, torch.ones_like(real))
                      + F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake)))
        finite(d_loss, "discriminator")
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()

        with torch.no_grad(), forward():
            ref = torch.stack([self.pixel_map(x, x_hat, sim).mean(),
                               self.feature_discrepancy(z_real, self.encoder(x_hat)).mean()])
            self.score_ref.copy_(ref if self.steps.item() == 0 else 0.9 * self.score_ref + 0.1 * ref)
        self.steps += 1
        return {"loss": total.item(), "d_loss": d_loss.item()}

    def feature_discrepancy(self, z: Tensor, z_hat: Tensor) -> Tensor:
        return ((z - self.center) ** 2).mean(dim=1) + ((z - z_hat) ** 2).mean(dim=1)

    def predict(self, x: Tensor) -> tuple[Tensor, Tensor]:
        z = self.encoder(x)
        x_hat = self.generator(z)
        maps = self.pixel_map(x, x_hat, ssim(to_unit_range(x_hat), to_unit_range(x)))
        feat = self.feature_discrepancy(z, self.encoder(x_hat))
        eps = torch.finfo(maps.dtype).eps
        lam = self.score_feature_weight
        scores = (1 - lam) * maps.mean(dim=(1, 2)) / (self.score_ref[0] + eps) + lam * feat / (self.score_ref[1] + eps)
        return maps, scores

    def anomaly_map(self, x: Tensor) -> Tensor:
        return self.predict(x)[0]
