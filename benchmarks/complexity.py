"""Params and FLOPs at 256 px of every ablation variant (Tables II-IV) beside the paper's, and the MSTB attention cost.

    .venv/bin/python benchmarks/complexity.py

FLOPs count a multiply-add as 2 (GMACs = GFLOPs / 2); the paper does not say which it prints.
"""

from __future__ import annotations

from hetero_ae.experiment.variants import TABLE_II, TABLE_III, TABLE_IV
from hetero_ae.report.complexity import attention_cost, variant_complexity


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def print_variants(title: str, rows: list[dict]) -> None:
    print(f"\n{title}")
    print("| variant | encoder | decoder | comparison | params (M) | paper params (M) | GFLOPs | GMACs "
          "| paper FLOPs (G) | note |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['label']} | {r['encoder']} | {r['decoder']} | {r['comparison']} | {_fmt(r['params_m'], '.2f')} "
              f"| {_fmt(r['paper_params_m'], 'g')} | {_fmt(r['gflops'], '.2f')} | {_fmt(r['gmacs'], '.2f')} "
              f"| {_fmt(r['paper_gflops'], 'g')} | {r['note']} |")


def main() -> None:
    print_variants("Table II (256 px)", variant_complexity(TABLE_II))
    print_variants("Table III (256 px)", variant_complexity(TABLE_III))
    offline = variant_complexity(TABLE_III, encoder="efficientnet-lite0")
    print_variants("Table III decoders on the offline encoder (256 px; the paper has no figures for it)",
                   [{**r, "label": f"decoder {r['decoder']}", "paper_params_m": None, "paper_gflops": None}
                    for r in offline])
    print_variants("Table IV (256 px)", variant_complexity(TABLE_IV))
    print("\nMSTB attention (projections, patch embeddings, attention) vs full self-attention, FLOPs:")
    print("| tokens (H x W) | C | heads | p1, p2 | MSTB | full | ratio | paper's estimate |")
    print("|---|---|---|---|---|---|---|---|")
    for h, c, heads, p2 in ((64, 64, 2, 8), (32, 64, 2, 8), (16, 128, 4, 4), (8, 256, 8, 2)):
        a = attention_cost(h, h, c, heads=heads, p2=p2)
        print(f"| {h} x {h} | {c} | {heads} | {p2 // 2}, {p2} | {a['mstb_flops'] / 1e6:.1f} M | "
              f"{a['full_flops'] / 1e6:.1f} M | {100 * a['ratio']:.1f}% | {100 * a['paper_ratio']:.1f}% |")


if __name__ == "__main__":
    main()
