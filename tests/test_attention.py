from __future__ import annotations

import math

import pytest
import torch

from hetero_ae.model.attention import MSTB, RegionAttention, RegionEmbedding


@pytest.mark.parametrize("grid", [8, 16, 32])
def test_mstb_keeps_the_shape_and_serves_grids_other_than_its_reference(grid):
    block = MSTB(64, heads=2, p2=8, grid=32)
    x = torch.randn(2, 64, grid, grid)
    assert block(x).shape == x.shape


def test_mstb_gradients_reach_every_parameter():
    block = MSTB(32, heads=4, p2=4, grid=16)
    block(torch.randn(2, 32, 16, 16)).square().mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in block.parameters())


def test_regional_tokens_number_hw_over_p_squared():
    x = torch.randn(1, 64, 32, 32)
    assert [RegionEmbedding(64, p, grid=32)(x).shape[1] for p in (4, 8)] == [32 * 32 // 16, 32 * 32 // 64]


def test_mstb_uses_p1_half_of_p2_and_half_the_heads_per_scale():
    block = MSTB(256, heads=8, p2=2, grid=8)
    assert block.patches == (1, 2)
    assert [a.heads for a in block.attn] == [4, 4] and block.attn[0].head_dim == 32


def test_region_attention_matches_equation_2_by_hand():
    torch.manual_seed(0)
    attn = RegionAttention(dim=8, heads=2, head_dim=4)
    local, region = torch.randn(1, 5, 8), torch.randn(1, 3, 8)
    out = attn(local, region)
    q = attn.q(local)
    k, v = attn.kv(region).split(8, dim=-1)
    heads = []
    for j in range(2):
        s = slice(4 * j, 4 * j + 4)
        w = torch.softmax(q[0, :, s] @ k[0, :, s].T / math.sqrt(4), dim=-1)
        heads.append(w @ v[0, :, s])
    torch.testing.assert_close(out[0], torch.cat(heads, dim=-1))


def test_bad_patch_size_is_a_clear_error():
    with pytest.raises(AssertionError, match="not divisible by the patch size 8"):
        MSTB(16, heads=2, p2=8, grid=12)(torch.randn(1, 16, 12, 12))
