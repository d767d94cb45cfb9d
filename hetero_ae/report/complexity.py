"""Parameters and FLOPs of any model, and the MSTB's attention cost (paper Table II, Sec. III-C).

FLOPs are counted by ``torch.utils.flop_counter.FlopCounterMode``, which counts a
multiply-add as 2 FLOPs (so GMACs = GFLOPs / 2; the paper does not say which it reports).
On CPU, FlopCounterMode does not see ``scaled_dot_product_attention`` unless the math
backend is forced, so every count here runs under ``SDPBackend.MATH``. Only operations with
a FLOP formula are counted (convolutions, matmuls, attention); element-wise work is not.

Parameters are those of the modules the forward pass actually calls, so an encoder's
unused ImageNet head does not count.

``variant_complexity`` measures the ablation variants (``hetero_ae.experiment.variants``) beside the
paper's Param and FLOPs columns; encoders are built without weights (the counts do not
depend on them).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from ..experiment.variants import Variant
from ..model.attention import MSTB, FullSelfAttention
from ..training.seed import build_seeded


def used_parameters(model: nn.Module, run: Callable[[], object]) -> int:
    """Number of parameters held by the modules that ``run()`` calls."""
    called: set[int] = set()
    hooks = [m.register_forward_pre_hook(lambda mod, _: called.add(id(mod))) for m in model.modules()]
    try:
        with torch.no_grad():
            run()
    finally:
        for h in hooks:
            h.remove()
    seen: set[int] = set()
    total = 0
    for m in model.modules():
        if id(m) in called:
            for p in m.parameters(recurse=False):
                if id(p) not in seen:
                    seen.add(id(p))
                    total += p.numel()
    return total


def flops(run: Callable[[], object]) -> int:
    """FLOPs of ``run()`` as counted by FlopCounterMode, attention included."""
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter, torch.no_grad():
        run()
    return int(counter.get_total_flops())


def model_complexity(model: nn.Module, image_size: int = 256, forward: str = "anomaly_map") -> dict[str, float]:
    """Params (millions) and GFLOPs/GMACs of one image through ``model.<forward>``."""
    x = torch.zeros(1, 3, image_size, image_size)
    fn = getattr(model, forward)
    was_training = model.training
    model.eval()
    try:
        n = used_parameters(model, lambda: fn(x))
        f = flops(lambda: fn(x))
    finally:
        model.train(was_training)
    return {"params_m": n / 1e6, "gflops": f / 1e9, "gmacs": f / 2e9, "image_size": image_size}


def attention_cost(height: int, width: int, dim: int, *, heads: int, p2: int) -> dict[str, float]:
    """FLOPs of the MSTB's attention (projections, patch embeddings, attention) vs full self-attention.

    Also the paper's estimates, Omega = 2 (HW)^2 C + 4 HW C^2 for full attention and
    0.15 (HW)^2 C + 3.75 HW C^2 for MSTB (Sec. III-C, for p1 = 4, p2 = 8).
    """
    x = torch.zeros(1, dim, height, width)
    mstb = MSTB(dim, heads=heads, p2=p2, grid=max(height, width)).eval()
    full = FullSelfAttention(dim, heads=heads).eval()
    f_mstb = flops(lambda: mstb.attend(x))
    f_full = flops(lambda: full(x))
    n = height * width
    return {
        "tokens": n,
        "mstb_flops": f_mstb,
        "full_flops": f_full,
        "ratio": f_mstb / f_full,
        "paper_ratio": (0.15 * n * n * dim + 3.75 * n * dim * dim) / (2 * n * n * dim + 4 * n * dim * dim),
    }


def mstb_kv_tokens(height: int, width: int, p2: int) -> tuple[int, int]:
    """Key/value sequence lengths of the two MSTB branches (HW / p1^2, HW / p2^2)."""
    p1 = p2 // 2
    return (height // p1) * (width // p1), (height // p2) * (width // p2)


def variant_complexity(variants: Iterable[Variant], image_size: int = 256, **fields: Any) -> list[dict[str, Any]]:
    """One row per variant: its label, our params/GFLOPs at ``image_size`` and the paper's Param and FLOPs.

    ``fields`` override ModelConfig fields (e.g. ``encoder="efficientnet-lite0"``).
    """
    rows = []
    for v in variants:
        cfg = v.model_config(**{"encoder_weights": "none", "image_size": image_size, **fields})
        row: dict[str, Any] = {"table": v.table, "label": v.label, "encoder": cfg.encoder, "decoder": cfg.decoder,
                               "comparison": cfg.comparison, "paper_params_m": v.paper_params_m,
                               "paper_gflops": v.paper_gflops}
        row.update(model_complexity(build_seeded(cfg, 0), image_size))
        rows.append(row)
    return rows
