"""Training and inference throughput of Hetero-AE against the frozen encoder's forward alone.

The encoder forward is the floor: a training step runs it and then the decoder forward and
backward, so no step can be faster. Prints images/s for each and the ratio step / floor.

    .venv/bin/python benchmarks/speed.py                 # 128 and 256 px, ResNet-18 + HCTN
    .venv/bin/python benchmarks/speed.py --sizes 256 --encoder efficientnet-lite0
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections.abc import Callable

import torch

from hetero_ae import ModelConfig
from hetero_ae.training.seed import build_seeded


def per_second(fn: Callable[[], object], batch: int, steps: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return batch / statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--encoder", default="resnet18")
    p.add_argument("--decoder", default="hctn")
    p.add_argument("--sizes", type=int, nargs="+", default=[128, 256])
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--steps", type=int, default=5)
    a = p.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; {a.encoder} + {a.decoder}, batch {a.batch_size}, median of {a.steps}")
    print(f"{'size':>5} {'encoder fwd img/s':>18} {'train img/s':>12} {'infer img/s':>12} {'train/floor':>12} {'infer/floor':>12}")
    for size in a.sizes:
        cfg = ModelConfig(encoder=a.encoder, encoder_weights="none", decoder=a.decoder, image_size=size)
        model = build_seeded(cfg, 0).to(memory_format=torch.channels_last)
        opts = model.configure_optimizers(1e-4)
        x = torch.randn(a.batch_size, 3, size, size).contiguous(memory_format=torch.channels_last)

        def floor() -> None:
            with torch.inference_mode():
                model.encoder(x)

        def step() -> None:
            model.train()
            model.training_step(x, opts)

        def infer() -> None:
            model.eval()
            with torch.inference_mode():
                model.predict(x)

        f, t, i = (per_second(fn, a.batch_size, a.steps) for fn in (floor, step, infer))
        print(f"{size:>5} {f:>18.1f} {t:>12.1f} {i:>12.1f} {f / t:>12.2f} {f / i:>12.2f}")


if __name__ == "__main__":
    main()
