"""Params and FLOPs at 256 px beside the paper's Table II/III figures, and the MSTB attention cost.

    .venv/bin/python benchmarks/complexity.py
"""

from __future__ import annotations

from hetero_ae import ModelConfig
from hetero_ae.complexity import attention_cost, model_complexity
from hetero_ae.seed import build_seeded

# Paper Table II (HCTN row: 17 M params, 33 GFLOPs) and Table III (params of the three decoders).
PAPER = {"hctn": (17.32, 33.0), "cnn": (17.90, None), "transformer": (16.74, None)}


def main() -> None:
    print("| encoder | decoder | params (M) | paper params (M) | GFLOPs | GMACs | paper GFLOPs |")
    print("|---|---|---|---|---|---|---|")
    for encoder in ("resnet18", "efficientnet-lite0"):
        for decoder in ("hctn", "cnn", "transformer"):
            model = build_seeded(ModelConfig(encoder=encoder, encoder_weights="none", decoder=decoder), 0)
            c = model_complexity(model, 256)
            pp, pf = PAPER[decoder] if encoder == "resnet18" else (None, None)
            fmt = lambda v, spec: "-" if v is None else format(v, spec)  # noqa: E731
            print(f"| {encoder} | {decoder} | {c['params_m']:.2f} | {fmt(pp, '.2f')} | {c['gflops']:.2f} "
                  f"| {c['gmacs']:.2f} | {fmt(pf, '.0f')} |")
    print("\nMSTB attention (projections, patch embeddings, attention) vs full self-attention, FLOPs:")
    print("| tokens (H x W) | C | heads | p1, p2 | MSTB | full | ratio | paper's estimate |")
    print("|---|---|---|---|---|---|---|---|")
    for h, c, heads, p2 in ((64, 64, 2, 8), (32, 64, 2, 8), (16, 128, 4, 4), (8, 256, 8, 2)):
        a = attention_cost(h, h, c, heads=heads, p2=p2)
        print(f"| {h} x {h} | {c} | {heads} | {p2 // 2}, {p2} | {a['mstb_flops'] / 1e6:.1f} M | "
              f"{a['full_flops'] / 1e6:.1f} M | {100 * a['ratio']:.1f}% | {100 * a['paper_ratio']:.1f}% |")


if __name__ == "__main__":
    main()
