from __future__ import annotations

import pytest
import torch

from hetero_ae import ModelConfig, build_model
from hetero_ae.errors import ConfigError
from hetero_ae.model.attention import MSTB
from hetero_ae.model.decoder import DECODER_KINDS, ConvBlock, HybridDecoder


@pytest.mark.parametrize("kind", sorted(DECODER_KINDS))
@pytest.mark.parametrize("encoder", ["resnet18", "efficientnet-lite0"])
@pytest.mark.parametrize("upsample", ["last", "first"])
def test_decoder_features_match_the_encoder_features(kind, encoder, upsample):
    model = build_model(ModelConfig(encoder=encoder, encoder_weights="none", decoder=kind, image_size=64,
                                    upsample=upsample))
    for size in (64, 128):
        enc, dec = model.features(torch.randn(1, 3, size, size))
        assert [d.shape for d in dec] == [e.shape for e in enc]


def test_paper_stage_settings_for_resnet18():
    dec = HybridDecoder((64, 128, 256, 512))
    mstbs = [s.branches[1] for s in dec.stages]  # produce F_D^3, F_D^2, F_D^1
    assert all(isinstance(m, MSTB) for m in mstbs)
    assert [m.proj.in_features for m in mstbs] == [256, 128, 64]
    assert [2 * m.attn[0].heads for m in mstbs] == [8, 4, 2]
    assert [m.patches for m in mstbs] == [(1, 2), (2, 4), (4, 8)]


@pytest.mark.parametrize("kind,branch_types", [("hctn", (ConvBlock, MSTB)), ("cnn", (ConvBlock, ConvBlock)),
                                               ("transformer", (MSTB, MSTB))])
def test_decoder_kinds_swap_the_branches(kind, branch_types):
    dec = HybridDecoder((64, 128, 256, 512), kind=kind)
    assert all(tuple(type(b) for b in s.branches) == branch_types for s in dec.stages)


def test_table3_decoders_have_parameter_counts_within_a_factor_1_5():
    kinds = ("hctn", "cnn", "transformer")  # Table III; the Table II kinds are checked in test_blocks.py
    counts = [sum(p.numel() for p in HybridDecoder((64, 128, 256, 512), kind=k).parameters()) for k in kinds]
    assert max(counts) / min(counts) <= 1.5, counts


def test_unknown_decoder_kind_names_the_choices():
    with pytest.raises(ConfigError, match="hctn"):
        HybridDecoder((64, 128, 256, 512), kind="unet")


@pytest.mark.parametrize("upsample,grids", [("last", [8, 16, 32]), ("first", [16, 32, 64])])
def test_upsampling_last_or_first_sets_where_the_branches_work(upsample, grids):
    dec = HybridDecoder((64, 128, 256, 512), upsample=upsample)
    seen = []
    hooks = [s.branches[1].register_forward_hook(lambda m, i, o: seen.append(o.shape[-1])) for s in dec.stages]
    dec(torch.zeros(1, 512, 8, 8))  # F_E^4 of a 256 px image
    for h in hooks:
        h.remove()
    assert seen == grids
