"""AE [42]: P. Bergmann, S. Loewe, M. Fauser, D. Sattlegger, C. Steger, "Improving unsupervised
defect segmentation by applying structural similarity to autoencoders", VISAPP 2019.

A convolutional auto-encoder with a bottleneck of ``latent_dim`` = 100 (the paper's d), trained
on normal images with either the per-pixel L2 loss (their L2-AE, default) or the SSIM loss (their
SSIM-AE, ``loss="ssim"``): SSIM of Wang et al. (2004) with an 11 x 11 Gaussian window, sigma 1.5,
K1 = 0.01, K2 = 0.03. The map is the per-pixel squared residual (L2) or 1 - SSIM (SSIM), as in
the paper's residual maps.

Followed from the paper: latent size 100, the two losses and their residual maps, Adam with
weight decay 1e-5 (the paper's training set-up), 32 filters in the first layer and at most 128.

Departures, and why:
- the network is the shared DCGAN encoder/decoder (``dcgan.py``: stride-2 4x4 convolutions with
  batch norm, a 4x4 bottleneck convolution, a linear output), not the paper's nine-layer network
  with extra stride-1 3x3 layers and an 8x8 bottleneck for 128 px patches: all reconstruction
  baselines of Table I then share one architecture, and it scales to 64..256 px whole images;
- the image score is the mean of the map. The paper segments defects and defines no image
  score; the maximum of a noisy per-pixel residual is dominated by noise (one badly
  reconstructed edge pixel), and MedIAnomaly (Cai et al., 2024) also scores AEs by the mean
  residual;
- the L2 loss is the mean (not the sum) of squared errors, which only rescales the gradient;
- SSIM is computed per RGB channel and averaged (the paper works on grey images), on images
  mapped back from ImageNet normalisation to [0, 1] so that data range 1 gives the usual C1, C2;
  reflect padding keeps the SSIM map at the input size.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from ..config import ModelConfig
from .dcgan import ConvDecoder, ConvEncoder, DCGANMethod
from .registry import read_hyper_parameters, register
from .ssim import ssim, to_unit_range


@dataclass(frozen=True)
class AEParams:
    """AE's hyper-parameters (``ModelConfig.params``); the defaults are the paper's."""

    latent_dim: int = 100  # Bergmann et al. [42], Sec. 4: latent dimension d = 100
    base_channels: int = 32  # [42], Table 1: the first convolution has 32 filters
    max_channels: int = 128  # [42], Table 1: the widest layer has 128 filters
    loss: str = "l2"  # "l2" (L2-AE) or "ssim" (SSIM-AE), [42] Sec. 3
    ssim_window: int = 11  # Gaussian window of Wang et al. 2004, as used by [42]
    ssim_sigma: float = 1.5
    adam_betas: tuple[float, float] = (0.9, 0.999)  # Adam defaults (Kingma & Ba); [42] trains with Adam
    weight_decay: float = 1e-5  # [42], Sec. 4: Adam with weight decay 1e-5


LOSSES = ("l2", "ssim")


def squared_residual_map(x: Tensor, x_hat: Tensor) -> Tensor:
    """(B, H, W): per-pixel squared residual averaged over channels."""
    return (x - x_hat).pow(2).mean(dim=1)


@register("ae", display_name="AE", paper="Bergmann et al., VISAPP 2019", paper_row=1)
class AE(DCGANMethod):
    hyper_parameters = AEParams

    def __init__(self, size: int, *, latent_dim: int, base_channels: int, max_channels: int, loss: str,
                 ssim_window: int, ssim_sigma: float, adam_betas: tuple[float, float], weight_decay: float) -> None:
        super().__init__()
        if loss not in LOSSES:
            raise ValueError(f"ae: loss must be one of {LOSSES}, got {loss!r}")
        self.encoder = ConvEncoder(size, latent_dim, base=base_channels, max_ch=max_channels)
        self.decoder = ConvDecoder(size, latent_dim, base=base_channels, max_ch=max_channels)
        self.loss_kind, self.ssim_window, self.ssim_sigma = loss, ssim_window, ssim_sigma
        self.adam_betas, self.weight_decay = tuple(adam_betas), weight_decay

    @classmethod
    def from_config(cls, cfg: ModelConfig) -> "AE":
        return cls(cfg.image_size, **asdict(read_hyper_parameters(AEParams, cfg.method, cfg.params)))

    def configure_optimizers(self, lr: float) -> list[torch.optim.Optimizer]:
        return [torch.optim.Adam(self.parameters(), lr=lr, betas=self.adam_betas, weight_decay=self.weight_decay)]

    def reconstruct(self, x: Tensor) -> Tensor:
        return self.decoder(self.encoder(x))

    def _ssim(self, x: Tensor, x_hat: Tensor) -> Tensor:
        return ssim(to_unit_range(x_hat), to_unit_range(x), window=self.ssim_window, sigma=self.ssim_sigma)

    def loss(self, x: Tensor) -> Tensor:
        x_hat = self.reconstruct(x)
        if self.loss_kind == "ssim":
            return 1.0 - self._ssim(x, x_hat).mean()
        return F.mse_loss(x_hat, x)

    def anomaly_map(self, x: Tensor) -> Tensor:
        x_hat = self.reconstruct(x)
        if self.loss_kind == "ssim":
            return 1.0 - self._ssim(x, x_hat).mean(dim=1)
        return squared_residual_map(x, x_hat)

    def predict(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Image score = mean of the map (see the module docstring)."""
        maps = self.anomaly_map(x)
        return maps, maps.flatten(1).mean(dim=1)
