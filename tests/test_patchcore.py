"""PatchCore (hetero_ae.methods.patchcore): the greedy coreset on hand-made point sets, the memory bank,
the anomaly map and the re-weighted image score (Eq. 6-7), on tiny images with EfficientNet-Lite0."""

from __future__ import annotations

import io
import itertools
import math

import pytest
import torch

from hetero_ae.config import ModelConfig
from hetero_ae.errors import ConfigError
from hetero_ae.methods.patchcore import (PatchCore, PatchCoreParams, bank_memory_bytes, coreset_size, greedy_coreset,
                                         nearest_neighbours)
from hetero_ae.model.encoder import build_encoder

SIZE = 64  # a 8 x 8 patch grid (stride 8)


def covering_radius(points: torch.Tensor, chosen: torch.Tensor | list[int]) -> float:
    """The largest distance from any point to its nearest chosen point."""
    return distances(points)[:, chosen].min(1).values.max().item()


def distances(points: torch.Tensor) -> torch.Tensor:
    return (points.unsqueeze(1) - points.unsqueeze(0)).norm(dim=-1)  # exact, unlike cdist's matrix-product form


def model(weights: str = "imagenet", **kwargs) -> PatchCore:
    # Lite0's ImageNet weights ship inside a pip package: offline, no download.
    return PatchCore(build_encoder("efficientnet-lite0", weights=weights), **kwargs)


def normal_images(n: int, seed: int = 0) -> torch.Tensor:
    """Smooth grey images: a random level and a gentle ramp (normalised-input units)."""
    g = torch.Generator().manual_seed(seed)
    ramp = torch.linspace(-0.2, 0.2, SIZE).view(1, 1, 1, SIZE)
    level = torch.rand(n, 1, 1, 1, generator=g) * 0.4 - 0.2
    return (level + ramp).expand(n, 3, SIZE, SIZE).clone()


# --- greedy coreset -------------------------------------------------------------------------------


def test_coreset_picks_one_point_per_far_apart_cluster():
    g = torch.Generator().manual_seed(0)
    centres = torch.tensor([[0.0, 0.0], [100.0, 0.0], [0.0, 100.0]])
    points = torch.cat([c + 0.1 * torch.randn(20, 2, generator=g) for c in centres])
    for seed in range(5):
        chosen = greedy_coreset(points, 3, seed=seed, project_to=None)
        assert sorted((chosen // 20).tolist()) == [0, 1, 2]


def test_coreset_is_within_twice_the_optimal_k_center_radius():
    # Greedy k-center is a 2-approximation: checked against the brute-force optimum on small sets.
    for seed in range(8):
        g = torch.Generator().manual_seed(seed)
        points = torch.rand(14, 2, generator=g) * 10
        k = 3
        d = distances(points)
        optimum = min(d[:, list(c)].min(1).values.max().item() for c in itertools.combinations(range(14), k))
        greedy = covering_radius(points, greedy_coreset(points, k, seed=seed, project_to=None))
        assert optimum <= greedy <= 2 * optimum + 1e-5


def test_coreset_of_rings_reaches_the_known_optimum_bound():
    # Three far-apart rings of radius 1 around a centre point: the optimal radius with 3 points is 1
    # (the centres); a greedy choice of ring points stays within 2.
    angles = torch.linspace(0, 2 * math.pi, 13)[:-1]
    ring = torch.stack([angles.cos(), angles.sin()], 1)
    points = torch.cat([torch.cat([c.view(1, 2), c + ring]) for c in torch.tensor([[0.0, 0], [50, 0], [0, 50]])])
    optimum = covering_radius(points, torch.tensor([0, 13, 26]))
    assert optimum == pytest.approx(1.0, abs=1e-5)
    for seed in range(5):
        assert covering_radius(points, greedy_coreset(points, 3, seed=seed, project_to=None)) <= 2 * optimum + 1e-5


def test_coreset_is_deterministic_and_its_indices_are_distinct():
    feats = torch.randn(300, 200, generator=torch.Generator().manual_seed(1))
    a = greedy_coreset(feats, 30, seed=7)
    assert torch.equal(a, greedy_coreset(feats, 30, seed=7))
    assert len(set(a.tolist())) == 30
    assert any(not torch.equal(a, greedy_coreset(feats, 30, seed=s)) for s in range(5))
    same = torch.ones(10, 4)  # duplicate rows: still distinct indices
    assert len(set(greedy_coreset(same, 5, project_to=None).tolist())) == 5
    assert torch.equal(greedy_coreset(feats[:4], 9), torch.arange(4))


@pytest.mark.parametrize("features, n", [(torch.randn(5, 3), 0), (torch.empty(0, 3), 2), (torch.randn(5), 2)])
def test_coreset_rejects_bad_input(features, n):
    with pytest.raises(ValueError):
        greedy_coreset(features, n)


def test_chunked_nearest_neighbours_equal_one_pass():
    g = torch.Generator().manual_seed(2)
    q, bank = torch.randn(50, 6, generator=g), torch.randn(20, 6, generator=g)
    d1, i1 = nearest_neighbours(q, bank, 3, chunk_size=7)
    d2, i2 = nearest_neighbours(q, bank, 3, chunk_size=1000)
    torch.testing.assert_close(d1, d2)
    assert torch.equal(i1, i2) and d1.shape == (50, 3)
    torch.testing.assert_close(d1[:, 0], torch.cdist(q, bank).min(1).values)
    with pytest.raises(ValueError):
        nearest_neighbours(q, bank, 21)


# --- the model ------------------------------------------------------------------------------------


def test_shapes_and_bank_size():
    m = model(coreset_ratio=0.1)
    assert m.dim == 40 + 112  # Lite0's stages 2 and 3, below the 1024 target: not pooled
    assert m.memory_bank.shape == (0, m.dim)
    m.fit(iter([normal_images(2), normal_images(1, seed=1)]))
    patches = 3 * (SIZE // 8) ** 2
    assert m.memory_bank.shape == (round(0.1 * patches), m.dim) == (coreset_size(patches, 0.1), m.dim)
    assert bank_memory_bytes(3, SIZE, dim=m.dim, ratio=0.1) == m.memory_bank.numel() * 4
    maps, scores = m.predict(torch.randn(2, 3, SIZE, SIZE))
    assert maps.shape == (2, SIZE, SIZE) and scores.shape == (2,)
    assert m.anomaly_map(torch.randn(1, 3, SIZE, 96)).shape == (1, SIZE, 96)


def test_target_dimension_pools_channels():
    m = model(weights="none", target_dim=64)
    assert m.dim == 64
    m.fit([normal_images(1)])
    assert m.memory_bank.shape[1] == 64
    # adaptive average pooling over channels: a constant feature vector stays constant
    feats = [torch.full((1, 40, 16, 16), 2.0), torch.full((1, 112, 8, 8), 2.0)]
    out = m.patch_features(feats)
    assert out.shape == (1, 64, 16, 16)
    torch.testing.assert_close(out[..., 4:12, 4:12], torch.full((1, 64, 8, 8), 2.0))  # away from the zero padding


def test_image_score_is_eq7_on_a_hand_made_bank():
    m = model(weights="none", num_neighbors=3)
    d = m.dim
    line = torch.zeros(10, d)
    line[:, 0] = torch.arange(10.0)  # bank: 0, 1, ..., 9 along the first axis
    m.memory_bank = line
    emb = torch.zeros(1, 2, d)
    emb[0, 0, 0], emb[0, 1, 0] = 0.5, 20.0  # two patches: distances 0.5 and 11 (to 9)
    dist, idx = nearest_neighbours(emb[0], line)
    dist, idx = dist.view(1, 1, 2), idx.view(1, 2)
    weight = 1 - math.exp(11) / (math.exp(11) + math.exp(12) + math.exp(13))  # N_3(m* = 9) = {9, 8, 7}
    assert m.image_scores(emb, dist, idx).item() == pytest.approx(weight * 11, rel=1e-5)
    m.num_neighbors = 1  # b = 1: s* itself
    assert m.image_scores(emb, dist, idx).item() == pytest.approx(11.0, rel=1e-5)
    m.num_neighbors = 50  # b capped at the bank size
    full = 1 - math.exp(11) / sum(math.exp(20 - j) for j in range(10))
    assert m.image_scores(emb, dist, idx).item() == pytest.approx(full * 11, rel=1e-5)


def test_map_lights_a_pasted_square_and_its_score_tops_the_normals():
    m = model(coreset_ratio=0.25)
    m.fit([normal_images(4), normal_images(4, seed=1)])
    normals = normal_images(3, seed=2)
    anomalous = normal_images(1, seed=3)
    r0, c0, side = 24, 32, 16
    anomalous[..., r0 : r0 + side, c0 : c0 + side] = 2.5  # a bright square
    maps, scores = m.predict(torch.cat([normals, anomalous]))
    peak = int(maps[-1].argmax())
    r, c = divmod(peak, SIZE)
    margin = 4  # the bilinear upsampling and the sigma-4 smoothing spread the peak
    assert r0 - margin <= r < r0 + side + margin and c0 - margin <= c < c0 + side + margin
    assert scores[-1] > scores[:-1].max()
    assert maps[-1].max() > maps[:-1].max()


def test_state_dict_round_trip_gives_the_same_scores():
    m = model()
    m.fit([normal_images(3)])
    x = torch.randn(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(5))
    maps, scores = m.predict(x)
    buf = io.BytesIO()
    torch.save(m.state_dict(), buf)
    buf.seek(0)
    fresh = model()
    assert not fresh.fitted
    fresh.load_state_dict(torch.load(buf, weights_only=True))
    assert torch.equal(fresh.memory_bank, m.memory_bank)
    maps2, scores2 = fresh.predict(x)
    torch.testing.assert_close(scores2, scores)
    torch.testing.assert_close(maps2, maps)
    # a checkpoint stores the bank but not the frozen encoder (``frozen_prefixes``)
    (prefix,) = m.frozen_prefixes()
    bank_only = {k: v for k, v in m.state_dict().items() if not k.startswith(prefix)}
    assert list(bank_only) == ["memory_bank"]
    other = model()
    missing, unexpected = other.load_state_dict(bank_only, strict=False)
    assert not unexpected and all(k.startswith(prefix) for k in missing)
    torch.testing.assert_close(other.predict(x)[1], scores)


def test_fit_is_deterministic():
    a, b = model(seed=3), model(seed=3)
    a.fit([normal_images(2)])
    b.fit([normal_images(2)])
    assert torch.equal(a.memory_bank, b.memory_bank)


def test_errors_before_fit_and_on_empty_input():
    m = model(weights="none")
    x = torch.randn(1, 3, SIZE, SIZE)
    with pytest.raises(RuntimeError):
        m.anomaly_map(x)
    with pytest.raises(RuntimeError):
        m.predict(x)
    with pytest.raises(ValueError):
        m.fit([])
    with pytest.raises(ValueError):
        m.fit([torch.empty(0, 3, SIZE, SIZE)])
    for bad in ({"coreset_ratio": 0.0}, {"coreset_ratio": 1.5}, {"stages": (3, 2)}, {"stages": (0, 1)},
                {"num_neighbors": 0}, {"chunk_size": 0}):
        with pytest.raises(ValueError):
            model(weights="none", **bad)
    assert m.configure_optimizers(0.1) == [] and not any(p.requires_grad for p in m.parameters())


def test_from_config():
    cfg = ModelConfig(method="patchcore", encoder="efficientnet-lite0", encoder_weights="none", image_size=SIZE,
                      params={"coreset_ratio": 0.5, "num_neighbors": 3})
    m = PatchCore.from_config(cfg)
    assert (m.coreset_ratio, m.num_neighbors, m.map_sigma) == (0.5, 3, PatchCoreParams.map_sigma)
    assert m.stages == (2, 3) and PatchCore.paper_backbone == "wide-resnet50"
    with pytest.raises(ConfigError):
        PatchCore.from_config(ModelConfig(method="patchcore", encoder="efficientnet-lite0", encoder_weights="none",
                                          image_size=SIZE, params={"k": 1}))


def test_a_run_of_patchcore_is_one_fit_with_no_epochs_no_lr_and_nothing_to_converge(tmp_path):
    from dataclasses import replace

    import numpy as np

    from hetero_ae.config import TrainConfig
    from hetero_ae.data.images import ImageSet
    from hetero_ae.errors import UserError
    from hetero_ae.training.loop import train
    from hetero_ae.experiment.profiles import load_profile
    from hetero_ae.experiment.runs import run_experiment
    from hetero_ae.experiment.specs import run_spec
    from hetero_ae.methods import method_class
    from hetero_ae.training import distributed
    from hetero_ae.training.checkpoint import load_model

    smoke = load_profile("smoke")
    spec = run_spec(smoke, "synth-oct", "patchcore", 0)
    assert (spec.train.epochs, spec.train.lr) == (0, 0.0) and not method_class("patchcore").trains_weights
    run = run_experiment(spec, results=tmp_path, root=smoke.data_root, progress=False)
    assert run.metrics["training"]["stop_reason"] == "fit" and run.converged  # no epoch, nothing to converge
    assert run_experiment(spec, results=tmp_path, root=smoke.data_root, progress=False).cached
    model, _ = load_model(run.folder / "checkpoint.pt")  # the bank comes back with the weights
    assert len(model.memory_bank) > 0
    with pytest.raises(UserError, match="learns no weight"):
        distributed.check_supported(model)
    assert not distributed.supports("patchcore")
    settings = {**smoke.method_settings, "patchcore": {**smoke.method_settings["patchcore"], "epochs": 3}}
    with pytest.raises(UserError, match="takes none of"):
        run_spec(replace(smoke, method_settings=settings), "synth-oct", "patchcore", 0)
    with pytest.raises(ConfigError, match="lr must be above 0"):
        TrainConfig(epochs=3, lr=0.0)
    with pytest.raises(ConfigError, match="epochs must be"):
        TrainConfig(epochs=0, lr=1e-3)
    ae = run_spec(smoke, "synth-oct", "ae", 0)
    with pytest.raises(ConfigError, match="ae trains weights"):  # a method that learns weights needs both
        train(ae.model, TrainConfig(epochs=0, lr=0.0, batch_size=4),
              ImageSet(np.zeros((4, 64, 64, 3), np.uint8), [f"n{i}" for i in range(4)], np.zeros(4, int)), tmp_path / "ae")
