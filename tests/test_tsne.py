"""Fig. 5 (paper Sec. IV-D2): patch pooling, anomalous-patch marking, the pair statistics, and the notebook."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from hetero_ae.data.images import ImageSet
from hetero_ae.report.tsne import (
    cosine_distance,
    pair_distance,
    pair_stats,
    patch_fraction,
    patch_pool,
    patch_vectors,
    pick_image,
    top_patches,
)

ROOT = Path(__file__).resolve().parents[1]


def test_patch_pool_gives_196_vectors_per_image_at_a_14_grid():
    maps = [torch.randn(2, 24, 56, 56), torch.randn(2, 40, 28, 28), torch.randn(2, 112, 14, 14)]
    assert patch_pool(maps[0], (224, 224), 14).shape == (2, 196, 24)
    assert patch_vectors(maps, (224, 224), 14).shape == (2, 196, 24 + 40 + 112)


def test_patch_pool_averages_each_cell_row_major():
    x = torch.arange(16, dtype=torch.float32).reshape(1, 1, 4, 4)
    got = patch_pool(x, (4, 4), 2)[0, :, 0]
    # cells (top-left, top-right, bottom-left, bottom-right) of [[0..3], [4..7], [8..11], [12..15]]
    assert torch.allclose(got, torch.tensor([(0 + 1 + 4 + 5) / 4, (2 + 3 + 6 + 7) / 4,
                                             (8 + 9 + 12 + 13) / 4, (10 + 11 + 14 + 15) / 4]))


def test_patch_pool_resizes_bilinearly_to_the_image_before_averaging():
    a, b, c, d = 1.0, 2.0, 5.0, 11.0
    x = torch.tensor([[a, b], [c, d]]).reshape(1, 1, 2, 2)
    got = patch_pool(x, (4, 4), 2)[0, 0, 0]
    # 2 -> 4 bilinear (align_corners=False) gives [a, 3a/4 + b/4, ...]: the first half averages to 7a/8 + b/8
    want = (7 / 8) ** 2 * a + (7 / 8) * (1 / 8) * (b + c) + (1 / 8) ** 2 * d
    assert got.item() == pytest.approx(want)


def test_patch_vectors_normalise_each_stage_along_channels():
    stage1 = torch.tensor([3.0, 4.0]).reshape(1, 2, 1, 1).expand(1, 2, 2, 2)
    stage2 = torch.tensor([0.0, 0.0, 7.0]).reshape(1, 3, 1, 1).expand(1, 3, 2, 2)
    got = patch_vectors([stage1, stage2], (2, 2), 2)
    assert torch.allclose(got, torch.tensor([0.6, 0.8, 0.0, 0.0, 1.0]).expand(1, 4, 5))


def test_patches_overlapping_the_lesion_are_anomalous():
    mask = np.zeros((8, 8), np.uint8)
    mask[0:2, 0] = 1  # two pixels of the top-left 4 x 4 patch
    mask[5, 3:5] = 255  # one pixel each of the two bottom patches
    frac = patch_fraction(mask, 2)
    assert frac == pytest.approx([2 / 16, 0.0, 1 / 16, 1 / 16])
    assert ((frac > 0) == [True, False, True, True]).all()


def test_top_patches_marks_the_largest_tenth_at_least_one():
    values = np.arange(20.0)
    assert np.flatnonzero(top_patches(values, 0.1)).tolist() == [18, 19]
    assert top_patches(np.array([0.3, 0.9, 0.1]), 0.1).tolist() == [False, True, False]


def test_the_image_is_the_anomalous_one_with_the_largest_lesion_else_the_highest_score():
    images = np.zeros((4, 8, 8, 3), np.uint8)
    masks = np.zeros((4, 8, 8), np.uint8)
    masks[0, :4, :4] = 1  # a normal image's mask is ignored
    masks[1, :2, :2] = 1
    masks[3, :3, :3] = 1
    test = ImageSet(images, ["n", "a1", "a2", "a3"], np.array([0, 1, 1, 1]), masks=masks)
    assert pick_image(test) == (3, "largest lesion mask")
    no_masks = ImageSet(images, ["n", "a1", "a2", "a3"], np.array([0, 1, 1, 1]))
    assert pick_image(no_masks, np.array([9.0, 0.2, 0.7, 0.5])) == (2, "highest anomaly score")


def test_pair_statistics_on_a_constructed_example():
    # 3 normal pairs: parallel features 1 apart; 1 anomalous pair: orthogonal features, 5 apart
    enc = np.array([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0], [3.0, 0.0]])
    dec = np.array([[2.0, 0.0], [0.0, 1.0], [1.0 + 0.5 ** 0.5, 1.0 + 0.5 ** 0.5], [0.0, 4.0]])
    patch_map = np.array([0.1, 0.2, 0.3, 1.0])
    anomalous = np.array([False, False, False, True])
    assert cosine_distance(enc, dec) == pytest.approx([0, 0, 0, 1], abs=1e-12)
    assert pair_distance(enc, dec) == pytest.approx([1, 1, 1, 5])
    t = pair_stats(enc, dec, patch_map, anomalous).set_index("patches")
    assert "t-SNE pair distance" not in t  # the embedding is a picture, not a measurement
    assert t.loc["normal", "n"] == 3 and t.loc["anomalous", "n"] == 1
    assert t.loc["normal", "L2 distance (patch features)"] == pytest.approx(1.0)
    assert t.loc["anomalous / normal", "L2 distance (patch features)"] == pytest.approx(5.0)
    assert t.loc["anomalous", "cosine distance (patch features)"] == pytest.approx(1.0)
    assert t.loc["normal", "anomaly map (Eq. 7, patch mean)"] == pytest.approx(0.2)
    assert t.drop(columns="n").loc["AUROC anomalous vs normal"].tolist() == [1.0, 1.0, 1.0]


def test_fig5_notebook_writes_the_table_and_the_figure(smoke_results):
    results = smoke_results  # ./run_all.sh --profile smoke (tests/conftest.py), at the default 14 x 14 grid
    table = pd.read_csv(results / "tables" / "fig5_tsne.csv").set_index("patches")
    assert table.loc["normal", "n"] + table.loc["anomalous", "n"] == 196
    assert table.loc["anomalous", "n"] >= 1
    stats = table[["cosine distance (patch features)", "L2 distance (patch features)", "anomaly map (Eq. 7, patch mean)"]]
    assert np.isfinite(stats.to_numpy()).all()
    assert (results / "tables" / "fig5_tsne.md").is_file()
    assert (results / "figures" / "fig5_tsne.png").stat().st_size > 10_000
    runs = pd.read_csv(results / "logs" / "fig5_tsne.runs.csv")
    assert runs["method"].tolist() == ["hetero-ae"] and runs["seed"].tolist() == [0]
