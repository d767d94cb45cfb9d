from __future__ import annotations

import pytest
import torch
from torch import nn

from hetero_ae import ModelConfig, build_model
from hetero_ae.report.complexity import attention_cost, flops, model_complexity, mstb_kv_tokens, used_parameters


def test_conv_flops_match_the_hand_formula():
    conv = nn.Conv2d(3, 8, kernel_size=3, padding=1, bias=False)
    # 2 FLOPs per multiply-add: 2 * C_in * C_out * k * k * H * W
    assert flops(lambda: conv(torch.zeros(1, 3, 16, 16))) == 2 * 3 * 8 * 9 * 16 * 16


def test_attention_flops_are_counted_on_cpu():
    q = torch.zeros(1, 1, 64, 8)
    # QK^T and AV: 2 * (2 * N * N * d)
    assert flops(lambda: nn.functional.scaled_dot_product_attention(q, q, q)) == 2 * 2 * 64 * 64 * 8


def test_used_parameters_skip_modules_the_forward_never_calls():
    net = nn.ModuleDict({"used": nn.Linear(4, 4), "head": nn.Linear(4, 1000)})
    assert used_parameters(net, lambda: net["used"](torch.zeros(1, 4))) == 20


def test_mstb_attention_costs_at_most_16_percent_of_full_attention_at_stage_1():
    cost = attention_cost(64, 64, 64, heads=2, p2=8)
    assert cost["ratio"] <= 0.16, cost


def test_mstb_key_value_lengths_are_hw_over_16_and_64_at_stage_1():
    assert mstb_kv_tokens(64, 64, p2=8) == (64 * 64 // 16, 64 * 64 // 64)


def test_model_complexity_counts_the_resnet18_encoder_without_its_classifier():
    model = build_model(ModelConfig(encoder="resnet18", encoder_weights="none"))
    c = model_complexity(model, image_size=64)
    resnet_without_fc = sum(p.numel() for n, p in model.encoder.net.named_parameters() if not n.startswith("fc."))
    decoder = sum(p.numel() for p in model.decoder.parameters())
    assert c["params_m"] * 1e6 == pytest.approx(resnet_without_fc + decoder)
    assert c["gflops"] == pytest.approx(2 * c["gmacs"])
