from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from hetero_ae.model.blocks import (
    CMTBlock,
    MBConvBlock,
    PVTBlock,
    SwinBlock,
    fit_heads,
    to_windows,
    window_mask,
)
from hetero_ae.model.decoder import HybridDecoder, build_decoder

TABLE2_KINDS = ("swin", "pvt", "cmt", "efficientnet")
BLOCKS = {
    "swin": lambda: SwinBlock(16, heads=2, window=4, shift=False),
    "swin-shifted": lambda: SwinBlock(16, heads=2, window=4, shift=True),
    "pvt": lambda: PVTBlock(16, heads=2, sr_ratio=4),
    "cmt": lambda: CMTBlock(16, heads=2, sr_ratio=4),
    "mbconv": lambda: MBConvBlock(16),
}
SINGLE_KEY_EXEMPT = {  # one K/V token (grid <= sr): the softmax is 1, so no gradient reaches the queries
    "pvt": {"attn.q.weight", "attn.q.bias"},
    "cmt": {"attn.q.weight", "attn.q.bias", "attn.bias.table"},
}


def _n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("name", sorted(BLOCKS))
@pytest.mark.parametrize("grid", [2, 7, 8, 16])
def test_blocks_keep_the_shape_and_gradients_reach_every_parameter(name, grid):
    torch.manual_seed(0)
    block = BLOCKS[name]()
    x = torch.randn(2, 16, grid, grid)
    y = block(x)
    assert y.shape == x.shape and torch.isfinite(y).all()
    y.square().mean().backward()
    exempt = SINGLE_KEY_EXEMPT.get(name, set()) if grid <= 4 else set()
    missing = [n for n, p in block.named_parameters()
               if n not in exempt and (p.grad is None or p.grad.abs().sum() == 0)]
    assert not missing, f"no gradient reaches {missing}"


def test_heads_that_do_not_divide_the_width_fall_back_to_the_largest_divisor():
    assert [fit_heads(20, 8), fit_heads(40, 4), fit_heads(112, 8), fit_heads(24, 2), fit_heads(7, 4)] == [5, 4, 8, 2, 1]
    assert PVTBlock(20, heads=8, sr_ratio=2).attn.heads == 5
    assert SwinBlock(20, heads=8)(torch.randn(1, 20, 8, 8)).shape == (1, 20, 8, 8)


def _input_grad(block: nn.Module, src: tuple[int, int], grid: int = 8) -> torch.Tensor:
    """|d out[src] / d x| summed over channels: which input tokens the output token at ``src`` sees."""
    x = torch.randn(1, 8, grid, grid, requires_grad=True)
    block(x)[0, :, src[0], src[1]].sum().backward()
    return x.grad.abs().sum(1)[0]


def test_swin_shift_blocks_attention_across_the_cyclic_shift_seams():
    torch.manual_seed(0)
    shifted = SwinBlock(8, heads=2, window=4, shift=True)
    assert shifted.geometry(8, 8) == (4, 2)
    seen = _input_grad(shifted, (0, 0))
    # after the roll by -2, original rows/cols {6, 7} and {0, 1} share the last window
    assert seen[1, 1] > 0 and seen[0, 1] > 0  # same side of both seams
    assert seen[7, 7] == 0 and seen[7, 0] == 0 and seen[0, 7] == 0 and seen[6, 6] == 0  # across a seam
    whole = SwinBlock(8, heads=2, window=8, shift=False)  # one window: everything is seen
    assert _input_grad(whole, (0, 0))[7, 7] > 0


def test_swin_attention_weights_across_a_seam_are_zero():
    torch.manual_seed(0)
    block = SwinBlock(8, heads=2, window=4, shift=True)
    x = torch.randn(1, 8, 8, 8)
    y = torch.roll(block.norm1(x.permute(0, 2, 3, 1)), (-2, -2), dims=(1, 2))
    win = to_windows(y, 4)[0, 3]  # the window holding original rows/cols 6, 7, 0, 1
    q, k, _ = block.attn.qkv(win).view(16, 3, 2, 4).permute(1, 2, 0, 3)  # (heads, N, d)
    mask = window_mask(8, 8, 4, 2, x.device)[3]
    weights = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(4) + block.attn.bias((4, 4), (4, 4)) + mask, dim=-1)
    token = 2 * 4 + 2  # original (0, 0) sits at (2, 2) of that window
    same_side = torch.zeros(16, dtype=torch.bool)
    same_side[[10, 11, 14, 15]] = True  # original (0, 0), (0, 1), (1, 0), (1, 1)
    assert (weights[:, token, ~same_side] == 0).all()
    assert (weights[:, token, same_side] > 0).all()


def test_swin_mask_hides_padding_from_real_tokens():
    mask = window_mask(7, 7, 4, 0, torch.device("cpu"))  # 7x7 padded to 8x8
    assert mask.shape == (4, 16, 16)
    last = mask[3]  # rows/cols 4..7 of the padded grid; row 7 and col 7 are padding
    pad = torch.tensor([r == 3 or c == 3 for r in range(4) for c in range(4)])
    assert torch.isinf(last[~pad][:, pad]).all() and not torch.isinf(last[~pad][:, ~pad]).any()
    assert SwinBlock(8, heads=2, window=8).geometry(7, 7) == (7, 0)  # one window: no shift
    assert SwinBlock(8, heads=2, window=8, shift=True).geometry(12, 12) == (8, 4)


@pytest.mark.parametrize("h,w,ws,shift", [(8, 8, 4, 2), (12, 12, 8, 4), (7, 7, 4, 2), (5, 9, 4, 2), (12, 20, 8, 0)])
def test_swin_mask_matches_a_brute_force_seam_check(h, w, ws, shift):
    """Two real tokens of a shifted window may attend iff they are neighbours (< ws apart) on the original grid."""
    hp, wp = h + (-h % ws), w + (-w % ws)
    ys, xs = torch.meshgrid(torch.arange(hp), torch.arange(wp), indexing="ij")
    oy, ox = (to_windows(((g + shift) % n)[None, ..., None], ws)[0, ..., 0] for g, n in ((ys, hp), (xs, wp)))
    real = (oy < h) & (ox < w)
    near = ((oy[:, :, None] - oy[:, None]).abs() < ws) & ((ox[:, :, None] - ox[:, None]).abs() < ws)
    allowed = ~torch.isinf(window_mask(h, w, ws, shift, torch.device("cpu")))
    both = real[:, :, None] & real[:, None]
    assert torch.equal(allowed[both], near[both])
    assert not allowed[real[:, :, None] & ~real[:, None]].any()  # real queries never see padding
    assert allowed.any(-1).all()  # no query is left without a key


def _kv_length(block: nn.Module, grid: int) -> int:
    lengths = []
    hook = block.attn.norm.register_forward_hook(lambda m, i, o: lengths.append(o.shape[1]))
    block(torch.randn(1, block.attn.q.in_features, grid, grid))
    hook.remove()
    return lengths[0]


@pytest.mark.parametrize("cls", [PVTBlock, CMTBlock])
@pytest.mark.parametrize("grid,sr", [(16, 2), (16, 4), (32, 8), (8, 8), (7, 4)])
def test_reduced_attention_kv_length_is_hw_over_sr_squared(cls, grid, sr):
    block = cls(16, heads=2, sr_ratio=sr)
    assert _kv_length(block, grid) == math.ceil(grid / sr) ** 2  # = HW / sr^2 when sr divides the grid


def test_pvt_reduces_with_a_full_conv_and_cmt_with_a_depthwise_conv():
    assert PVTBlock(16, heads=2, sr_ratio=4).attn.reduce.groups == 1
    assert CMTBlock(16, heads=2, sr_ratio=4).attn.reduce.groups == 16


def test_mbconv_squeeze_excitation_scales_each_channel():
    torch.manual_seed(0)
    block = MBConvBlock(16, expand=4).eval()
    h = torch.randn(2, 64, 5, 5)
    gate = block.se.gate(h)
    assert gate.shape == (2, 64, 1, 1) and ((gate > 0) & (gate < 1)).all()
    torch.testing.assert_close(block.se(h), h * gate)
    assert gate.std() > 0  # channels are scaled differently
    seen = []
    hook = block.se.register_forward_hook(lambda m, i, o: seen.append((i[0], o)))
    block(torch.randn(1, 16, 6, 6))
    hook.remove()
    (inp, out), = seen
    ratio = out / inp
    torch.testing.assert_close(ratio, ratio[..., :1, :1].expand_as(ratio))  # one factor per channel


@pytest.fixture(scope="module")
def param_counts() -> dict[str, int]:
    return {k: _n_params(HybridDecoder((64, 128, 256, 512), kind=k)) for k in ("hctn", *TABLE2_KINDS)}


@pytest.mark.parametrize("kind", TABLE2_KINDS)
def test_table2_decoders_build_and_match_the_resnet18_features(kind):
    channels = (64, 128, 256, 512)
    with torch.no_grad():
        out = build_decoder(kind, channels)(torch.randn(1, 512, 8, 8))
        assert [tuple(o.shape) for o in out] == [(1, 64, 64, 64), (1, 128, 32, 32), (1, 256, 16, 16)]
        out = build_decoder(kind, channels, upsample="first")(torch.randn(1, 512, 2, 2))
        assert [tuple(o.shape) for o in out] == [(1, 64, 16, 16), (1, 128, 8, 8), (1, 256, 4, 4)]


@pytest.mark.parametrize("kind,block", [("swin", SwinBlock), ("pvt", PVTBlock), ("cmt", CMTBlock),
                                        ("efficientnet", MBConvBlock)])
def test_table2_decoders_swap_only_the_blocks(kind, block):
    dec = HybridDecoder((64, 128, 256, 512), kind=kind)
    for stage in dec.stages:
        assert [type(m) for branch in stage.branches for m in branch if isinstance(m, block)] == [block] * 4
    if kind in ("pvt", "cmt"):  # SR ratio = p2, for F_D^3, F_D^2, F_D^1
        assert [s.branches[0][-1].attn.ratio for s in dec.stages] == [2, 4, 8]
    if kind == "swin":
        assert [b.shift for b in dec.stages[0].branches[0]] == [False, True]


@pytest.mark.parametrize("kind", TABLE2_KINDS)
def test_table2_decoders_have_parameter_counts_within_a_factor_2_of_hctn(kind, param_counts):
    ratio = param_counts[kind] / param_counts["hctn"]
    assert 0.5 <= ratio <= 2.0, param_counts
