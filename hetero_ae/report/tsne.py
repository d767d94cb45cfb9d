"""Encoder and decoder features of one image's patches, embedded by t-SNE (paper Fig. 5, Sec. IV-D2).

The paper: "the OCT image is divided into 16×16 non-overlapping patches, and the encoder
and decoder display patch features with t-SNE", and the caption of Fig. 5: "196 pairs of
features (F̄_E and F̄_D) correspond to 196 image patches", i.e. 16-pixel patches of a
224-pixel image, a 14 × 14 grid. Here the grid is a parameter (14 by default) and a patch
is a cell of that grid at any image size: ``adaptive_avg_pool2d`` cells, which share at
most one pixel row or column with their neighbour where the size is not a multiple of
the grid.

How the three compared stages form one vector per patch, on which the paper is silent:

1. F_E^k and F_D^k (k = 1..3) are L2-normalised along channels at every position. On the
   unit sphere ||a - b||^2 = 2 (1 - cos(a, b)), so the Euclidean distances t-SNE works
   with measure the cosine distance of Eq. (4)-(6) that the model is trained and scored
   with, and each stage weighs the same whatever its channel count or scale, as the plain
   sum over stages of Eq. (7) does.
2. Each normalised map is resized bilinearly to the input size (as Eq. (7) resizes the
   stage maps) and averaged over each patch.
3. The three stages are concatenated: one (C_1 + C_2 + C_3)-vector per patch.

The 2P encoder and decoder vectors of the P patches are embedded together, so that each
pair shares one map (panel a). The caption of Fig. 5 says that in panel (b) "F̄_E − F̄_D
stands for feature subtraction between the encoder and the decoder after t-SNE
dimensionality reduction", and the text that "the feature points of anomalous regions
deviate from the coordinate origin which is the location of most normal patches": panel
(b) therefore plots each pair's difference of embedded points (not a second t-SNE),
coloured by the patch's mean anomaly map (Eq. 7).

Anomalous patches: those overlapping the lesion mask (any pixel). Test sets without masks
(the real datasets) mark instead the top ``TOP_FRACTION`` of patches by anomaly map, and
the figure says so. The image: the anomalous test image with the largest lesion, or
without masks the anomalous test image with the highest score.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor

from ..data.datasets import load_split
from ..data.images import ImageSet, path_text, to_batch
from ..experiment.runs import RunResult
from ..experiment.specs import spec_root
from ..methods.hetero_ae import HeteroAE
from .heatmaps import pick_examples

TOP_FRACTION = 0.1  # patches marked anomalous by anomaly map where there is no lesion mask


def patch_pool(feature: Tensor, size: tuple[int, int], grid: int) -> Tensor:
    """(B, C, h, w) -> (B, grid * grid, C): resized bilinearly to ``size``, averaged over each patch (row-major)."""
    assert feature.ndim == 4, f"expected a (B, C, h, w) map, got {tuple(feature.shape)}"
    x = feature if tuple(feature.shape[-2:]) == tuple(size) else F.interpolate(
        feature, size=size, mode="bilinear", align_corners=False)
    return F.adaptive_avg_pool2d(x, grid).reshape(x.shape[0], x.shape[1], grid * grid).transpose(1, 2)


def patch_vectors(maps: Sequence[Tensor], size: tuple[int, int], grid: int) -> Tensor:
    """(B, grid * grid, sum C_k): each stage L2-normalised along channels, patch-pooled, concatenated."""
    return torch.cat([patch_pool(F.normalize(m.float(), dim=1), size, grid) for m in maps], dim=2)


def patch_fraction(mask: np.ndarray, grid: int) -> np.ndarray:
    """(grid * grid,) fraction of each patch's pixels inside the (H, W) lesion mask."""
    t = torch.from_numpy((np.asarray(mask) > 0).astype(np.float32))[None, None]
    return F.adaptive_avg_pool2d(t, grid).flatten().numpy()


def top_patches(values: np.ndarray, fraction: float = TOP_FRACTION) -> np.ndarray:
    """Boolean mask of the ``fraction`` of patches with the largest ``values`` (at least one)."""
    k = max(1, int(round(fraction * len(values))))
    out = np.zeros(len(values), bool)
    out[np.argsort(-np.asarray(values), kind="stable")[:k]] = True
    return out


def cosine_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise 1 - cos(a_i, b_i) of two (N, C) arrays."""
    num = (a * b).sum(axis=1)
    den = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return 1.0 - num / np.maximum(den, 1e-12)


def pair_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise Euclidean (L2) distance ||a_i - b_i|| of two (N, D) arrays."""
    return np.linalg.norm(np.asarray(a) - np.asarray(b), axis=1)


def embed_pairs(enc: np.ndarray, dec: np.ndarray, *, perplexity: float = 30.0, seed: int = 0,
                n_jobs: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """openTSNE of the stacked (P, C) encoder and (P, C) decoder vectors: their (P, 2) embeddings.

    PCA initialisation, exact nearest neighbours and Barnes-Hut gradients (a few hundred
    points), a fixed ``random_state``; the perplexity is capped at (2P - 1) / 3 for small grids.
    """
    from openTSNE import TSNE

    assert enc.shape == dec.shape, f"encoder {enc.shape} and decoder {dec.shape} vectors differ"
    x = np.concatenate([enc, dec]).astype(np.float64)
    tsne = TSNE(n_components=2, perplexity=min(perplexity, (len(x) - 1) / 3), initialization="pca",
                neighbors="exact", negative_gradient_method="bh", random_state=seed, n_jobs=n_jobs)
    y = np.asarray(tsne.fit(x))
    return y[: len(enc)], y[len(enc):]


def pick_image(test: ImageSet, scores: np.ndarray | None = None) -> tuple[int, str]:
    """The image of the figure and how it was chosen.

    The anomalous test image with the largest lesion mask where masks exist (ties: the
    first); otherwise the anomalous test image with the highest ``scores`` entry.
    """
    anomalous = np.flatnonzero(test.labels == 1)
    assert len(anomalous), "the test set has no anomalous image"
    if test.masks is not None and np.asarray(test.masks)[anomalous].any():
        return pick_examples(test.labels, (np.asarray(test.masks) > 0), 1)[0], "largest lesion mask"
    assert scores is not None, "without lesion masks the image is chosen by score: pass the scores"
    return int(anomalous[int(np.argmax(np.asarray(scores)[anomalous]))]), "highest anomaly score"


def run_scores(result: RunResult, test: ImageSet) -> np.ndarray:
    """The run's test scores (``scores.csv``) in the order of ``test``."""
    by_path = {r["path"]: float(r["score"]) for r in result.scores()}
    return np.asarray([by_path[path_text(p)] for p in test.paths])


@dataclass
class PatchEmbedding:
    """Everything Fig. 5 shows for one image: patch vectors, their embedding, the map, the marking."""

    dataset: str
    index: int
    path: str
    image_class: str
    chosen_by: str  # "largest lesion mask" or "highest anomaly score"
    marked_by: str  # which patches are anomalous: "lesion mask" or "top 10% of the anomaly map"
    grid: int
    image: np.ndarray  # (H, W, 3) uint8
    mask: np.ndarray | None  # (H, W) lesion mask, None where the test set has none
    anomaly_map: np.ndarray  # (H, W), Eq. (7)
    enc: np.ndarray  # (P, C) patch vectors F_E
    dec: np.ndarray  # (P, C) patch vectors F_D
    enc_2d: np.ndarray  # (P, 2) t-SNE of the encoder vectors, F̄_E
    dec_2d: np.ndarray  # (P, 2) t-SNE of the decoder vectors, F̄_D
    patch_map: np.ndarray  # (P,) mean anomaly map over each patch
    lesion: np.ndarray  # (P,) fraction of each patch in the lesion (zeros without a mask)
    anomalous: np.ndarray  # (P,) bool


@torch.no_grad()
def image_features(model: HeteroAE, image: np.ndarray, grid: int,
                   device: str = "cpu") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(encoder (P, C), decoder (P, C), anomaly map (H, W)) of one (H, W, 3) uint8 image; sets eval mode."""
    model.eval()
    x = to_batch(image[None]).to(device)
    enc, dec = model.features(x)
    size = tuple(x.shape[-2:])
    amap = model.anomaly_map(x)[0].float().cpu().numpy()
    return (patch_vectors(enc, size, grid)[0].cpu().numpy(), patch_vectors(dec, size, grid)[0].cpu().numpy(), amap)


def fig5_embedding(result: RunResult, model: HeteroAE, *, root: str | Path | None = None, grid: int = 14, seed: int = 0,
                   device: str = "cpu", perplexity: float = 30.0, n_jobs: int = 1) -> PatchEmbedding:
    """Fig. 5 for a finished Hetero-AE run: pick the image, pool its features per patch, embed them."""
    test = load_split(result.spec.dataset, "test", result.spec.model.image_size, root=spec_root(result.spec, root))
    has_masks = test.masks is not None and any(np.asarray(test.masks[i]).any() for i in np.flatnonzero(test.labels))
    index, chosen_by = pick_image(test, None if has_masks else run_scores(result, test))
    image = np.asarray(test.images[index])
    enc, dec, amap = image_features(model, image, grid, device)
    patch_map = patch_pool(torch.from_numpy(amap)[None, None], amap.shape, grid)[0, :, 0].numpy()
    if chosen_by == "largest lesion mask":
        lesion = patch_fraction(test.masks[index], grid)
        anomalous, marked_by = lesion > 0, "lesion mask"
    else:
        lesion = np.zeros(grid * grid)
        anomalous, marked_by = top_patches(patch_map), f"top {TOP_FRACTION:.0%} of the anomaly map (no lesion masks)"
    enc_2d, dec_2d = embed_pairs(enc, dec, perplexity=perplexity, seed=seed, n_jobs=n_jobs)
    mask = np.asarray(test.masks[index]) if test.masks is not None else None
    return PatchEmbedding(result.spec.dataset, index, test.paths[index], test.classes[index], chosen_by, marked_by,
                          grid, image, mask, amap, enc, dec, enc_2d, dec_2d, patch_map, lesion, anomalous)


def pair_stats(enc: np.ndarray, dec: np.ndarray, patch_map: np.ndarray, anomalous: np.ndarray) -> pd.DataFrame:
    """Normal against anomalous patches, in feature space: the cosine and L2 distances of each
    encoder/decoder pair of patch vectors, and the anomaly map.

    Rows: ``normal`` and ``anomalous`` (``n`` patches each), their ratio, and the AUROC with
    which each quantity ranks the anomalous patches above the normal ones (NaN when one
    group is empty); ``n`` is blank on the last two rows. Fig. 5's claim is that anomalous
    pairs lie further apart: ratio > 1, AUROC > 0.5. The t-SNE embedding is the picture of it,
    not a measurement: its distances move with the t-SNE seed and with the fifth digit of the
    weights, so no number is taken from it.
    """
    from sklearn.metrics import roc_auc_score

    anomalous = np.asarray(anomalous, bool)
    values = {"cosine distance (patch features)": cosine_distance(enc, dec),
              "L2 distance (patch features)": pair_distance(enc, dec),
              "anomaly map (Eq. 7, patch mean)": np.asarray(patch_map, float)}
    rows = []
    for name, sel in (("normal", ~anomalous), ("anomalous", anomalous)):
        rows.append({"patches": name, "n": int(sel.sum()),
                     **{k: float(v[sel].mean()) if sel.any() else np.nan for k, v in values.items()}})
    rows.append({"patches": "anomalous / normal", "n": "",
                 **{k: rows[1][k] / rows[0][k] if rows[0][k] else np.nan for k in values}})
    both = anomalous.any() and (~anomalous).any()
    rows.append({"patches": "AUROC anomalous vs normal", "n": "",
                 **{k: float(roc_auc_score(anomalous, v)) if both else np.nan for k, v in values.items()}})
    return pd.DataFrame(rows)


def pair_table(pe: PatchEmbedding) -> pd.DataFrame:
    """``pair_stats`` of a Fig. 5 embedding, with the dataset and image it describes, to 6 significant
    digits: the features are computed again from the weights, and CPUs with and without AVX-512 round
    float32 convolutions differently in the 7th (docs/run-cache.md)."""
    frame = pair_stats(pe.enc, pe.dec, pe.patch_map, pe.anomalous)
    floats = frame.select_dtypes("float").columns
    frame[floats] = frame[floats].map(lambda v: float(f"{v:.6g}"))
    frame.insert(0, "image", Path(pe.path).name)
    frame.insert(0, "dataset", pe.dataset)
    return frame


NORMAL_COLOR, ANOMALOUS_COLOR = "#4c72b0", "#d62728"


def plot_fig5(pe: PatchEmbedding) -> Any:
    """The figure: the image with its patch grid, (a) paired F̄_E / F̄_D points, (b) F̄_E - F̄_D by anomaly map."""
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.patches import Rectangle

    fig, axes = plt.subplots(1, 3, figsize=(13.5, 4.6), gridspec_kw={"width_ratios": [0.75, 1.1, 1.1]})
    ax_img, ax_a, ax_b = axes
    h, w = pe.image.shape[:2]
    ax_img.imshow(pe.image, cmap="gray")
    edges_y, edges_x = np.linspace(0, h, pe.grid + 1), np.linspace(0, w, pe.grid + 1)
    for y in edges_y:
        ax_img.axhline(y - 0.5, color="white", lw=0.3, alpha=0.5)
    for x in edges_x:
        ax_img.axvline(x - 0.5, color="white", lw=0.3, alpha=0.5)
    for p in np.flatnonzero(pe.anomalous):
        r, c = divmod(int(p), pe.grid)
        ax_img.add_patch(Rectangle((edges_x[c] - 0.5, edges_y[r] - 0.5), edges_x[c + 1] - edges_x[c],
                                   edges_y[r + 1] - edges_y[r], fill=False, ec=ANOMALOUS_COLOR, lw=1.0))
    if pe.mask is not None and pe.mask.any():
        ax_img.contour(pe.mask > 0, levels=[0.5], colors="yellow", linewidths=0.8)
    ax_img.set_title(f"{pe.image_class} test image ({pe.chosen_by})\n{pe.grid}×{pe.grid} patches, anomalous in red"
                     + (", lesion in yellow" if pe.mask is not None and pe.mask.any() else ""), fontsize=9)
    ax_img.axis("off")

    for sel, color, z in ((~pe.anomalous, NORMAL_COLOR, 1), (pe.anomalous, ANOMALOUS_COLOR, 3)):
        for e, d in zip(pe.enc_2d[sel], pe.dec_2d[sel]):
            ax_a.plot([e[0], d[0]], [e[1], d[1]], color=color, lw=0.6, alpha=0.6, zorder=z)
        ax_a.scatter(*pe.enc_2d[sel].T, s=16, marker="o", color=color, zorder=z + 1, linewidths=0)
        ax_a.scatter(*pe.dec_2d[sel].T, s=20, marker="^", facecolors="white", edgecolors=color, linewidths=0.9,
                     zorder=z + 1)
    ax_a.legend(handles=[
        Line2D([], [], marker="o", ls="", color="grey", label=r"encoder $\bar F_E$"),
        Line2D([], [], marker="^", ls="", mfc="white", mec="grey", label=r"decoder $\bar F_D$"),
        Line2D([], [], color=NORMAL_COLOR, label=f"normal patch ({int((~pe.anomalous).sum())})"),
        Line2D([], [], color=ANOMALOUS_COLOR, label=f"anomalous patch ({int(pe.anomalous.sum())})"),
    ], fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.01), ncol=2, frameon=False)
    ax_a.set_title(r"(a) t-SNE of patch features: pairs $\bar F_E$ – $\bar F_D$ joined", fontsize=10)
    ax_a.set_aspect("equal", adjustable="datalim")
    ax_a.set_xticks([])
    ax_a.set_yticks([])

    diff = pe.enc_2d - pe.dec_2d
    order = np.argsort(pe.patch_map)  # the most anomalous on top
    sc = ax_b.scatter(*diff[order].T, c=pe.patch_map[order], cmap="viridis", s=24,
                      edgecolors=np.where(pe.anomalous[order], ANOMALOUS_COLOR, "none"), linewidths=1.2, zorder=2)
    ax_b.axhline(0, color="grey", lw=0.6, zorder=1)
    ax_b.axvline(0, color="grey", lw=0.6, zorder=1)
    lim = 1.08 * float(np.abs(diff).max() or 1.0)
    ax_b.set_xlim(-lim, lim)
    ax_b.set_ylim(-lim, lim)
    ax_b.set_aspect("equal")
    ax_b.set_title(r"(b) $\bar F_E - \bar F_D$ (red ring: anomalous patch)", fontsize=10)
    fig.colorbar(sc, ax=ax_b, fraction=0.046, pad=0.04).set_label("anomaly map, patch mean (Eq. 7)", fontsize=8)
    fig.suptitle(f"Fig. 5 on {pe.dataset}: {Path(pe.path).name}; anomalous patches = {pe.marked_by}", fontsize=11)
    fig.tight_layout()
    return fig
