from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

from hetero_ae.model.anomaly_map import anomaly_map, image_score, smooth, stage_maps
from hetero_ae.model.loss import feature_comparison_terms


def fc_loss(enc, dec, alpha):
    return feature_comparison_terms(enc, dec, alpha)["loss"].item()


def pair():
    # One image, 2 channels, 1 x 2 pixels. Pixel 0: e = (1, 0), d = (1, 0); pixel 1: e = (3, 4), d = (4, 3).
    e = torch.tensor([[[[1.0, 3.0]], [[0.0, 4.0]]]])
    d = torch.tensor([[[[1.0, 4.0]], [[0.0, 3.0]]]])
    return e, d


def test_feature_comparison_loss_by_hand():
    e, d = pair()
    # cos: pixel 0 -> 1, pixel 1 -> (12 + 12) / 25 = 0.96. MSE over channels: 0 and (1 + 1) / 2 = 1.
    l0 = -0.7 * 1.0 + 0.3 * 0.0
    l1 = -0.7 * 0.96 + 0.3 * 1.0
    expected_stage = (l0 + l1) / 2
    assert fc_loss([e], [d], alpha=0.7) == pytest.approx(expected_stage)
    assert fc_loss([e, e], [d, d], alpha=0.7) == pytest.approx(2 * expected_stage)


def test_loss_is_minus_alpha_for_identical_features():
    f = torch.randn(2, 8, 4, 4)
    assert fc_loss([f, f, f], [f, f, f], alpha=0.7) == pytest.approx(-3 * 0.7)


def test_stage_map_is_one_minus_cosine_per_pixel():
    e, d = pair()
    torch.testing.assert_close(stage_maps([e], [d])[0], torch.tensor([[[0.0, 0.04]]]))


def test_anomaly_map_resizes_and_sums_the_stages_and_score_is_the_max():
    e1, d1 = torch.ones(1, 4, 2, 2), torch.ones(1, 4, 2, 2)
    d1[0, :, 0, 0] = -1  # cos = -1 at one pixel: M_1 = 2 there
    e2, d2 = torch.ones(1, 4, 1, 1), torch.ones(1, 4, 1, 1)
    d2[0, 0, 0, 0] = 0  # cos = 3 / (2 * sqrt 3): M_2 constant
    m2 = 1 - 3 / (2 * math.sqrt(3))
    maps = anomaly_map([e1, e2], [d1, d2], size=(4, 4))
    assert maps.shape == (1, 4, 4)
    assert maps[0, 0, 0].item() == pytest.approx(2 + m2, abs=1e-6)  # corner: bilinear keeps the pixel value
    assert maps[0, 3, 3].item() == pytest.approx(m2, abs=1e-6)
    assert image_score(maps).item() == pytest.approx(maps.max().item())


def test_smoothing_off_by_default_and_gaussian_when_asked():
    m = torch.rand(1, 32, 32)
    assert torch.equal(smooth(m, 0.0), m)
    ours = smooth(m, 2.0)[0].numpy()
    ref = gaussian_filter(m[0].numpy().astype(np.float64), sigma=2.0, truncate=4.0)
    np.testing.assert_allclose(ours[8:-8, 8:-8], ref[8:-8, 8:-8], atol=1e-5)  # borders pad differently


def test_loss_terms_by_hand_and_their_sum_is_the_loss():
    e, d = pair()
    terms = feature_comparison_terms([e, e], [d, d], alpha=0.7)
    assert terms["cos"].item() == pytest.approx(2 * -0.7 * (1.0 + 0.96) / 2)  # -alpha * sum over stages of mean cos
    assert terms["mse"].item() == pytest.approx(2 * 0.3 * (0.0 + 1.0) / 2)  # (1 - alpha) * sum of mean MSE
    assert terms["loss"].item() == pytest.approx(terms["cos"].item() + terms["mse"].item())


def test_cosine_plus_mse_map_by_hand():
    e, d = pair()
    (m,) = stage_maps([e], [d], distance="cosine+mse", alpha=0.7)
    # pixel 0: identical -> 0; pixel 1: 0.7 * (1 - 0.96) + 0.3 * 1
    assert m.flatten().tolist() == pytest.approx([0.0, 0.7 * 0.04 + 0.3 * 1.0])


def test_cosine_plus_mse_map_sees_a_change_of_magnitude_that_the_cosine_misses():
    e = torch.ones(1, 4, 2, 2)
    d = e.clone()
    d[..., 0, 0] *= 3.0  # same direction, three times the response
    cosine = stage_maps([e], [d])[0]
    both = stage_maps([e], [d], distance="cosine+mse")[0]
    assert cosine.abs().max().item() == pytest.approx(0.0, abs=1e-6)
    assert both[0, 0, 0].item() == pytest.approx(0.3 * 4.0) and both[0, 1, 1].item() == pytest.approx(0.0, abs=1e-6)


def test_unknown_map_distance_is_refused():
    e, d = pair()
    with pytest.raises(ValueError, match="distance"):
        stage_maps([e], [d], distance="l1")
