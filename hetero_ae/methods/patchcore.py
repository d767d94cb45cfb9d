"""PatchCore: K. Roth, L. Pemula, J. Zepeda, B. Schölkopf, T. Brox, P. Gehler, "Towards Total Recall in
Industrial Anomaly Detection", CVPR 2022. Official code: github.com/amazon-science/patchcore-inspection.

No weight is trained: a frozen ImageNet network describes every patch of the training normals, a
subset of those descriptions is kept as a memory bank, and a test patch is as anomalous as it is
far from its nearest neighbour in the bank.

- Locally aware patch features (Sec. 3.1, Eq. 1-3): two middle stages of the frozen encoder
  (the paper's layer2 and layer3 of Wide-ResNet-50-2, strides 8 and 16; this package's stages 2
  and 3 of any ``Encoder``), each averaged over the 3x3 neighbourhood of every position (p = 3:
  ``avg_pool2d(3, stride 1, padding 1)``), the deeper map bilinearly upsampled to the shallower
  one's grid, concatenated on channels, then reduced to ``target_dim`` channels by adaptive
  average pooling over the channel axis (the official code's aggregation).
- Memory bank (Eq. 4) and coreset (Sec. 3.2, Eq. 5, Algorithm 1): all patch features of one pass
  over the training normals, subsampled by greedy k-center selection (``greedy_coreset``) to
  ``round(coreset_ratio * patches)`` entries, distances computed after a random linear projection
  to 128 dimensions (the paper's Johnson-Lindenstrauss argument). ``coreset_ratio`` is 0.1 by
  default, as anomalib's default; the paper reports 1 %, 10 % and 25 % (its Table 1).
- Anomaly map (Sec. 3.3): each test patch's distance to its nearest bank feature, bilinear to the
  input size and Gaussian-smoothed with sigma 4 (the paper's value, not tuned there).
- Image score (Sec. 3.3, Eq. 6-7): s* = the largest nearest-neighbour distance of the image
  (patch m_test*, its nearest bank feature m*), re-weighted by
  1 - exp||m_test* - m*|| / sum_{m in N_b(m*)} exp||m_test* - m||, N_b(m*) the b = 9 nearest bank
  features of m* (itself included, as in anomalib), b capped at the bank size. With b = 1 the
  weight would be 0 whatever the image, so b = 1 means s* itself (anomalib does the same).

Choices where the paper is silent:
- Target dimension 1024: the official code's ``target_embed_dimension`` in its MVTec runs (WRN-50:
  512 + 1024 = 1536 channels pooled to 1024). It is capped at the concatenated channel count, so
  pooling never repeats channels: EfficientNet-Lite0 (the offline encoder) keeps its 40 + 112 = 152.
- EfficientNet-Lite0's two middle stages are this package's stages 2 and 3 (its blocks 4 and 10,
  40 and 112 channels), the last blocks at strides 8 and 16: the same strides, hence the same patch
  grid (H/8 x W/8) and the same compromise between generic low-level features and ImageNet-specific
  deep ones that made the paper pick layer2 and layer3 of WRN-50.
- The 3x3 averaging counts the zero padding at the border (``count_include_pad``), as both the
  official code (zero-padded ``unfold``) and anomalib (``AvgPool2d(3, 1, 1)``) do.
- The random projection is a dense Gaussian matrix scaled by 1/sqrt(128) (anomalib uses a sparse
  one; the paper says "random linear projection"); its draw and the coreset's first point come
  from a generator seeded by ``seed``, so a fit is deterministic.
- The smoothing is the package's ``anomaly_map.smooth`` (Gaussian truncated at 4 sigma).

Memory: the bank holds ``round(coreset_ratio * n_images * (H/8) * (W/8))`` features of ``D``
float32 values (``bank_memory_bytes``); a fit holds all ``n_images * (H/8) * (W/8)`` of them
(ratio 1) plus their 128-dimensional projections until the coreset is chosen. Wide-ResNet-50-2 at
256 px: 4 MiB per training image before subsampling, 0.4 MiB after (10 %).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from ..config import ModelConfig
from ..model.anomaly_map import smooth
from ..model.encoder import Encoder, build_encoder
from .registry import AnomalyModel, read_hyper_parameters, register


@dataclass(frozen=True)
class PatchCoreParams:
    """PatchCore's hyper-parameters (``ModelConfig.params``); the defaults are the paper's, official code's
    or anomalib's."""

    # paper Sec. 4.1 / official code: WRN-50's layer2 and layer3 (this package's stages 2, 3)
    stages: tuple[int, ...] = (2, 3)
    target_dim: int = 1024  # official code's target_embed_dimension (MVTec runs)
    coreset_ratio: float = 0.1  # anomalib's default; the paper reports 1 %, 10 %, 25 %
    # paper Sec. 3.2: random projection before the coreset's distances; None = distances in full dimension
    projection_dim: int | None = 128
    num_neighbors: int = 9  # b of Eq. 7 (official code and anomalib)
    map_sigma: float = 4.0  # paper Sec. 3.3: Gaussian with sigma = 4
    seed: int = 0  # the coreset's random projection and first point
    chunk_size: int = 4096  # query rows per torch.cdist call (memory bound, not a paper value)


def bank_memory_bytes(n_images: int, image_size: int, *, dim: int = 1024, stride: int = 8, ratio: float = 0.1,
                      bytes_per_value: int = 4) -> int:
    """Bytes of a memory bank: round(ratio * n_images * (image_size / stride)^2) features of ``dim`` values.

    ``ratio=1`` gives the full bank a fit holds before its coreset is chosen.
    """
    patches = n_images * (image_size // stride) ** 2
    return coreset_size(patches, ratio) * dim * bytes_per_value


def coreset_size(n_patches: int, ratio: float) -> int:
    """The bank size kept from ``n_patches`` features: round(ratio * n_patches), at least 1."""
    return max(1, round(ratio * n_patches))


def greedy_coreset(features: Tensor, n: int, *, seed: int = 0, project_to: int | None = 128) -> Tensor:
    """Indices (n,) of ``n`` rows of ``features`` (N, D) chosen by greedy k-center selection.

    Paper Sec. 3.2, Algorithm 1: start from a random row, then repeatedly add the row farthest from
    the rows chosen so far, a 2-approximation of the k-center problem (Eq. 5): every row lies
    within twice the optimal radius of a chosen one. Distances are computed after a random linear
    projection to ``project_to`` dimensions (skipped when None or not below D). The projection
    and the first row are drawn from a generator seeded by ``seed``. The indices are distinct and
    in the order chosen; ``n >= N`` returns all rows, 0..N-1.

    Raises ValueError for ``n < 1``, an empty set, or ``features`` that are not 2-D.
    """
    if features.ndim != 2:
        raise ValueError(f"features must be (N, D), got shape {tuple(features.shape)}")
    total = features.shape[0]
    if total == 0:
        raise ValueError("cannot choose a coreset of an empty set of features")
    if n < 1:
        raise ValueError(f"a coreset needs n >= 1 rows, got {n}")
    if n >= total:
        return torch.arange(total, device=features.device)
    g = torch.Generator().manual_seed(int(seed))
    z = features.detach().float()
    if project_to is not None and project_to < z.shape[1]:
        proj = torch.randn(z.shape[1], project_to, generator=g) / math.sqrt(project_to)
        z = z @ proj.to(z.device)
    sq = z.pow(2).sum(1)
    chosen = torch.empty(n, dtype=torch.long, device=z.device)
    i = torch.randint(total, (1,), generator=g).to(z.device).squeeze(0)
    nearest = torch.full((total,), float("inf"), device=z.device)  # squared distance to the nearest chosen row
    for k in range(n):
        chosen[k] = i
        d = (sq - 2 * (z @ z[i]) + sq[i]).clamp_min_(0)
        nearest = torch.minimum(nearest, d)
        nearest[i] = -1.0  # chosen rows stay below every distance: none is chosen twice, duplicates included
        i = nearest.argmax()
    return chosen


def nearest_neighbours(queries: Tensor, bank: Tensor, k: int = 1, chunk_size: int = 4096) -> tuple[Tensor, Tensor]:
    """Euclidean distances (N, k) and indices (N, k) of each query row's ``k`` nearest ``bank`` rows, nearest first.

    ``torch.cdist`` runs on ``chunk_size`` query rows at a time, so memory stays at
    chunk_size x len(bank) distances. ValueError for ``chunk_size < 1`` or ``k`` outside 1..len(bank).
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be 1 or more, got {chunk_size}")
    if not 1 <= k <= bank.shape[0]:
        raise ValueError(f"k must lie in 1..{bank.shape[0]} (the bank size), got {k}")
    dists, idx = [], []
    for q in queries.split(chunk_size):
        d = torch.cdist(q, bank)
        dk, ik = d.min(1, keepdim=True) if k == 1 else d.topk(k, dim=1, largest=False)
        dists.append(dk)
        idx.append(ik)
    return torch.cat(dists), torch.cat(idx)


@register("patchcore", display_name="PatchCore (not in the paper)", paper="Roth et al., CVPR 2022")  # beyond the paper: no Table I row there
class PatchCore(AnomalyModel):
    """PatchCore: a frozen encoder and a coreset memory bank of its patch features; nothing is trained.

    ``stages``: the encoder's stages (1-based, increasing) whose maps form a patch feature, the
    first giving the patch grid. ``fit`` builds the bank (the ``memory_bank`` buffer, (M, D), held in
    ``state_dict``); ``anomaly_map`` and ``predict`` need it. ValueError for invalid arguments.
    """

    paper_backbone = "wide-resnet50"  # paper Sec. 4.1 and official code (WRN-50-2, layer2 + layer3)
    frozen_network = "encoder"
    trains_weights = False  # training is one fit of the memory bank (fit_statistics), no optimiser or epoch
    hyper_parameters = PatchCoreParams

    def __init__(self, encoder: Encoder, *, stages: Sequence[int] = PatchCoreParams.stages,
                 target_dim: int = PatchCoreParams.target_dim, coreset_ratio: float = PatchCoreParams.coreset_ratio,
                 projection_dim: int | None = PatchCoreParams.projection_dim,
                 num_neighbors: int = PatchCoreParams.num_neighbors, map_sigma: float = PatchCoreParams.map_sigma,
                 seed: int = PatchCoreParams.seed, chunk_size: int = PatchCoreParams.chunk_size) -> None:
        super().__init__()
        stages = tuple(int(s) for s in stages)
        if not stages or list(stages) != sorted(set(stages)) or not 1 <= stages[0] <= stages[-1] <= 4:
            raise ValueError(f"stages must be increasing stage numbers in 1..4, got {list(stages)}")
        if not 0 < coreset_ratio <= 1:
            raise ValueError(f"coreset_ratio must lie in (0, 1], got {coreset_ratio}")
        if min(target_dim, num_neighbors, chunk_size) < 1 or (projection_dim is not None and projection_dim < 1):
            raise ValueError("target_dim, num_neighbors, chunk_size and projection_dim must be 1 or more")
        if map_sigma < 0:
            raise ValueError(f"map_sigma must be 0 or more, got {map_sigma}")
        self.encoder, self.stages = encoder, stages
        self.dim = min(int(target_dim), sum(encoder.channels[s - 1] for s in stages))
        self.coreset_ratio, self.projection_dim = float(coreset_ratio), projection_dim
        self.num_neighbors, self.map_sigma = int(num_neighbors), float(map_sigma)
        self.seed, self.chunk_size = int(seed), int(chunk_size)
        self.register_buffer("memory_bank", torch.empty(0, self.dim))
        self.memory_bank: Tensor

    @classmethod
    def from_config(cls, cfg: ModelConfig) -> "PatchCore":
        """``cfg.encoder`` (already resolved, e.g. ``encoder: auto``) with ``cfg.encoder_weights``; ``cfg.params``
        override ``PatchCoreParams``."""
        p = read_hyper_parameters(PatchCoreParams, cfg.method, cfg.params)
        return cls(build_encoder(cfg.encoder, weights=cfg.encoder_weights), **asdict(p))

    # --- features -------------------------------------------------------------------------------

    def frozen_features(self, x: Tensor) -> list[Tensor]:
        """The maps of ``stages`` of ``x`` (B, 3, H, W), without gradients (what a feature cache stores)."""
        with torch.no_grad():
            feats = self.encoder(x, stages=self.stages[-1])
        return [feats[s - 1] for s in self.stages]

    def patch_features(self, feats: Sequence[Tensor]) -> Tensor:
        """Locally aware patch features (B, D, h, w) of the stage maps (Eq. 1-3), (h, w) the first stage's grid."""
        maps = [F.avg_pool2d(f.float(), 3, stride=1, padding=1) for f in feats]
        size = maps[0].shape[-2:]
        x = torch.cat([maps[0]] + [F.interpolate(m, size=size, mode="bilinear", align_corners=False)
                                   for m in maps[1:]], dim=1)
        if x.shape[1] == self.dim:
            return x
        b, c, h, w = x.shape
        pooled = F.adaptive_avg_pool1d(x.permute(0, 2, 3, 1).reshape(-1, 1, c), self.dim)
        return pooled.reshape(b, h, w, self.dim).permute(0, 3, 1, 2)

    def embed(self, x: Tensor) -> Tensor:
        """(B, D, h, w) patch features of images ``x`` (B, 3, H, W)."""
        return self.patch_features(self.frozen_features(x))

    # --- memory bank ----------------------------------------------------------------------------

    def fit(self, batches: Iterable[Tensor]) -> None:
        """Build the memory bank (replacing any earlier one) from one pass over batches of normal images (B, 3, H, W).

        ValueError when ``batches`` hold no image.
        """
        device = self.memory_bank.device
        self.fit_features(self.frozen_features(x.to(device)) for x in batches if len(x))

    def fit_features(self, frozen_batches: Iterable[Sequence[Tensor]]) -> None:
        """``fit`` from the frozen features of each batch (``frozen_features``, e.g. a feature cache's).

        ValueError when there are none.
        """
        parts = [self.patch_features(f).permute(0, 2, 3, 1).reshape(-1, self.dim) for f in frozen_batches]
        if not parts or not sum(len(p) for p in parts):
            raise ValueError("PatchCore.fit needs at least one training image")
        bank = torch.cat(parts)
        if self.coreset_ratio < 1:
            keep = greedy_coreset(bank, coreset_size(len(bank), self.coreset_ratio), seed=self.seed,
                                  project_to=self.projection_dim)
            bank = bank[keep]
        self.memory_bank = bank.to(self.memory_bank.device).contiguous()

    @property
    def fitted(self) -> bool:
        return self.memory_bank.shape[0] > 0

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
        # The bank's length is the fit's: take the stored one's, so a fresh model loads a fitted bank.
        stored = state_dict.get(prefix + "memory_bank")
        if isinstance(stored, Tensor) and stored.ndim == 2:
            self.memory_bank = self.memory_bank.new_empty(stored.shape[0], self.memory_bank.shape[1])
        super()._load_from_state_dict(state_dict, prefix, *args)

    # --- scoring --------------------------------------------------------------------------------

    def _check_fitted(self) -> None:
        if not self.fitted:
            raise RuntimeError("PatchCore has no memory bank yet: call fit(batches of normal images) first")

    def _patch_distances(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(patch features (B, P, D), nearest-neighbour distances (B, h, w), nearest bank indices (B, P))."""
        self._check_fitted()
        emb = self.embed(x)
        b, d, h, w = emb.shape
        emb = emb.permute(0, 2, 3, 1).reshape(b, h * w, d)
        dist, idx = nearest_neighbours(emb.reshape(-1, d), self.memory_bank.float(), 1, self.chunk_size)
        return emb, dist.reshape(b, h, w), idx.reshape(b, h * w)

    def _map(self, dist: Tensor, size: tuple[int, int]) -> Tensor:
        up = F.interpolate(dist.unsqueeze(1), size=size, mode="bilinear", align_corners=False).squeeze(1)
        return smooth(up, self.map_sigma)

    def image_scores(self, emb: Tensor, dist: Tensor, idx: Tensor) -> Tensor:
        """Eq. 6-7: s* re-weighted by 1 - softmax over N_b(m*) (see the module docstring), shape (B,)."""
        flat = dist.flatten(1)
        rows = torch.arange(flat.shape[0], device=flat.device)
        worst = flat.argmax(1)
        s_star = flat[rows, worst]
        b = min(self.num_neighbors, self.memory_bank.shape[0])
        if b == 1:
            return s_star
        bank = self.memory_bank.float()
        m_test, m_star = emb[rows, worst], bank[idx[rows, worst]]  # (B, D) each
        _, support = nearest_neighbours(m_star, bank, b, self.chunk_size)  # N_b(m*) (B, b), m* first
        d_support = torch.linalg.vector_norm(m_test.unsqueeze(1) - bank[support], dim=-1)
        d_star = torch.linalg.vector_norm(m_test - m_star, dim=-1)
        weight = 1.0 - torch.exp(d_star - torch.logsumexp(d_support, dim=1))
        return weight * s_star

    def anomaly_map(self, x: Tensor) -> Tensor:
        """(B, H, W) nearest-neighbour distance map at the input size. RuntimeError before ``fit``."""
        return self._map(self._patch_distances(x)[1], tuple(x.shape[-2:]))

    def predict(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(maps (B, H, W), re-weighted image scores (B,)) from one forward pass. RuntimeError before ``fit``."""
        emb, dist, idx = self._patch_distances(x)
        return self._map(dist, tuple(x.shape[-2:])), self.image_scores(emb, dist, idx)

    # --- what training asks of a method: PatchCore learns no weight -----------------------------

    def loss(self, x: Tensor, frozen: list[Tensor] | None = None) -> Tensor:
        raise NotImplementedError("PatchCore has no training loss: build its memory bank with fit(batches)")

    def configure_optimizers(self, lr: float) -> list[torch.optim.Optimizer]:
        return []  # no parameter learns

    def fit_statistics(self, frozen_batches: Iterable[list[Tensor]]) -> None:
        """The training loop's one pass over the training normals' frozen features: the memory bank."""
        self.fit_features(frozen_batches)

    def frozen_prefixes(self) -> tuple[str, ...]:
        return ("encoder.",)
