"""Training on cached frozen features, and the wall time for Hetero-AE to reach its stopping rule.

- **Epoch time, cached or not**: one Hetero-AE training epoch (``train.train``, checkpoint and
  held-out pass included) over ``--epoch-images`` images, with the frozen encoder's features
  computed once (``hetero_ae.training.feature_cache``) and with the encoder run at every step; at 256 px
  with the ResNet-18 architecture (random weights: the cost is the same) and at 128 px with
  EfficientNet-Lite0 (the offline encoder of the default profile). The time to build the cache
  is reported apart; an epoch's time is the second epoch's.
- **Time to converge**: Hetero-AE with the default profile's settings (encoder, feature scale,
  learning rate, batch, patience, min_delta, cap) at 256 px on a brain-MRI-sized set: 1,595
  distinct synthetic normal brain slices (the paper's brain MRI training normals) and 10 % more
  held out, trained until the stopping rule fires; wall time from the first step to the kept
  weights (data generation excluded), epochs, the stop, the process's peak memory, and the image
  AUC on a synthetic test set of 240 slices (the paper's class ratios), so that "converged" can be
  read against what the model detects. The paper trains 200 epochs of 19.46 min on an RTX 3090
  (Sec. IV-B1).

The images come from the synthetic brain generator (``hetero_ae.data.synthetic.brain``) with
seed ``--seed`` (default 2: neither the reported benchmark's 0 nor the design benchmark's 1).
Results go to ``results/benchmarks.json`` under ``convergence`` (one entry per device) and are
printed. On CUDA, ``--variants fp32,bf16,bf16+compile`` repeats the convergence run per variant.

    .venv/bin/python benchmarks/convergence.py                                  # the figures of the README
    .venv/bin/python benchmarks/convergence.py --device cuda --variants fp32,bf16,bf16+compile
    .venv/bin/python benchmarks/convergence.py --epoch-images 16 --train-images 24 --test-images 12 --size 64 --cap 2
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import resource
import sys
import tempfile
import time
from multiprocessing import Pool
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from hetero_ae import ModelConfig
from hetero_ae.config import TrainConfig
from hetero_ae.data.images import ImageSet
from hetero_ae.data.synthetic import SPECS, class_counts
from hetero_ae.data.synthetic.brain import sample
from hetero_ae.evaluation.predict import predict_all
from hetero_ae.experiment.profiles import load_profile
from hetero_ae.experiment.specs import run_spec
from hetero_ae.io import atomic_write, write_json
from hetero_ae.report.manifest import device_description
from hetero_ae.training.loop import train
from hetero_ae.training.runtime import compile_backend

BRAIN = next(s for s in SPECS if s.name == "synth-brain-mri")


def _slice(job: tuple[int, int, str, int]) -> np.ndarray:
    seed, size, label, index = job
    rng = np.random.default_rng([seed, index, len(label)])
    return sample(rng, size, label, float(rng.uniform(0.0, 1.0)))[0]


def brain_set(n: int, size: int, seed: int, labels: list[str], start: int = 0, cache: Path | None = None) -> ImageSet:
    """``n`` distinct synthetic brain slices with ``labels`` cycled (uint8 RGB, label 0 for notumor).

    Generated on every core (about 0.4 s a slice at 256 px on one); with ``cache``, kept in that
    ``.npy`` file and read back by the next run that asks for the same slices.
    """
    jobs = [(seed, size, labels[i % len(labels)], start + i) for i in range(n)]
    name = f"brain-{size}px-seed{seed}-{start}-{n}-{hashlib.sha256(repr(jobs).encode()).hexdigest()[:8]}.npy"
    if cache is not None and (cache / name).is_file():
        grey = np.load(cache / name)
    else:
        with Pool() as pool:
            grey = np.stack(pool.map(_slice, jobs, chunksize=8))
        if cache is not None:
            atomic_write(cache / name, lambda p: np.save(open(p, "wb"), grey))
    names = [labels[i % len(labels)] for i in range(n)]
    y = np.array([0 if c == "notumor" else 1 for c in names])
    return ImageSet(np.repeat(grey[..., None], 3, axis=-1), [f"{i}.png" for i in range(n)], y, classes=names)


def test_labels(n: int) -> list[str]:
    counts = class_counts(BRAIN, n)
    return [BRAIN.classes[c] for c, k in counts.items() for _ in range(k)]


def peak_memory_mb(device: str) -> float:
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def epoch_times(a: argparse.Namespace, encoder: str, size: int, weights: str, tmp: Path) -> dict:
    """Second-epoch seconds with and without the feature cache, and the cache's build time."""
    images = brain_set(a.epoch_images, size, a.seed, ["notumor"], cache=a.data_cache)
    held = brain_set(max(2, a.epoch_images // 10), size, a.seed, ["notumor"], start=a.epoch_images, cache=a.data_cache)
    cfg = ModelConfig(encoder=encoder, encoder_weights=weights, image_size=size, feature_scale="auto")
    tc = TrainConfig(epochs=2, batch_size=a.batch_size, lr=1e-3, seed=0)
    out = {"encoder": encoder, "weights": weights, "image_size": size, "images": a.epoch_images}
    for cached in (True, False):
        t = time.perf_counter()
        _, h = train(cfg, tc, images, tmp / f"{encoder}-{size}-{cached}", val=held, device=a.device, progress=False,
                     cache_features=cached)
        total = time.perf_counter() - t
        key = "cached" if cached else "uncached"
        out[f"{key}_epoch_seconds"] = round(h[1]["seconds"], 2)
        if cached:
            out["cache_build_seconds"] = round(total - sum(e["seconds"] for e in h), 2)
            out["cache"] = h.feature_cache
    out["speedup"] = round(out["uncached_epoch_seconds"] / out["cached_epoch_seconds"], 2)
    print(f"epoch over {a.epoch_images} images, {encoder} at {size} px: cached {out['cached_epoch_seconds']:.1f} s "
          f"(+ {out['cache_build_seconds']:.1f} s once to build it), uncached {out['uncached_epoch_seconds']:.1f} s: "
          f"{out['speedup']:.1f}x", flush=True)
    return out


def converge(a: argparse.Namespace, variant: str, data: tuple[ImageSet, ImageSet, ImageSet], tmp: Path) -> dict:
    """Train the profile's Hetero-AE at ``a.size`` px until its stopping rule fires; wall time, stop, AUC."""
    precision, _, comp = variant.partition("+")
    base = run_spec(load_profile(a.profile), "synth-brain-mri", "hetero-ae", 0)
    model_cfg = ModelConfig(**{**base.model.__dict__, "image_size": a.size})
    train_cfg = TrainConfig(**{**base.train.__dict__, "precision": precision,
                               **({"epochs": a.cap} if a.cap else {}),
                               **({"patience": a.patience} if a.patience is not None else {}),
                               **({"batch_size": a.batch_size_converge} if a.batch_size_converge else {})})
    normals, held, test = data
    if a.device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    t = time.perf_counter()
    model, h = train(model_cfg, train_cfg, normals, tmp / f"converge-{variant}", val=held, device=a.device,
                     progress=False, compile=compile_backend("inductor") if comp else None)
    wall = time.perf_counter() - t
    scores = model.normalize_scores(predict_all(model, test.images, device=a.device, precision=train_cfg.precision).scores)
    out = {"variant": variant, "encoder": model_cfg.encoder, "feature_scale": model_cfg.feature_scale,
           "lr": train_cfg.lr, "batch_size": train_cfg.batch_size, "train_images": len(normals),
           "held_out_images": len(held), "wall_seconds": round(wall, 1), "epochs": len(h),
           "seconds_per_epoch": round(float(np.median([e["seconds"] for e in h])), 2), **h.stop,
           "cache": h.feature_cache, "test_auc": round(100 * roc_auc_score(test.labels, scores), 1),
           "peak_memory_mb": round(peak_memory_mb(a.device), 1)}
    print(f"[{variant}] {model_cfg.encoder} at {a.size} px on {len(normals)} normals: {out['stop_reason']} after "
          f"{len(h)} epochs (kept {out['best_epoch']}) in {wall / 60:.1f} min, image AUC {out['test_auc']:.1f}, "
          f"peak memory {out['peak_memory_mb']:.0f} MB", flush=True)
    return out


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=256, help="image size of the convergence run")
    p.add_argument("--epoch-images", type=int, default=320, help="images of the cached/uncached epoch timing")
    p.add_argument("--train-images", type=int, default=1595)
    p.add_argument("--test-images", type=int, default=240)
    p.add_argument("--batch-size", type=int, default=16, help="batch of the epoch timing")
    p.add_argument("--batch-size-converge", type=int, default=None, help="over the profile's (e.g. 200 on a GPU)")
    p.add_argument("--cap", type=int, default=None, help="epoch cap over the profile's")
    p.add_argument("--patience", type=int, default=None, help="the stopping rule's patience over the profile's")
    p.add_argument("--profile", default="cpu", help="whose hetero-ae settings the convergence run uses")
    p.add_argument("--seed", type=int, default=2)
    p.add_argument("--device", default="cpu")
    p.add_argument("--variants", default="fp32", help="convergence runs: fp32, bf16, fp32+compile, bf16+compile")
    p.add_argument("--skip-epochs", action="store_true", help="only the convergence runs")
    p.add_argument("--out", type=Path, default=Path("results/benchmarks.json"))
    p.add_argument("--data-cache", type=Path, default=Path("data/benchmarks"),
                   help="where generated slices are kept for the next run (default: %(default)s)")
    a = p.parse_args(argv)
    print(f"{device_description(a.device)}, torch {torch.__version__}, {torch.get_num_threads()} threads", flush=True)
    entry: dict = {"device": device_description(a.device), "torch": torch.__version__,
                   "python": platform.python_version(), "threads": torch.get_num_threads(),
                   "measured": time.strftime("%Y-%m-%d %H:%M:%S"), "seed": a.seed}
    with tempfile.TemporaryDirectory() as tmp:
        if not a.skip_epochs:
            entry["epoch"] = [epoch_times(a, "resnet18", 256 if a.size >= 256 else a.size, "none", Path(tmp)),
                              epoch_times(a, "efficientnet-lite0", min(128, a.size), "imagenet", Path(tmp))]
        n_held = max(2, round(a.train_images / 10))
        data = (brain_set(a.train_images, a.size, a.seed, ["notumor"], cache=a.data_cache),
                brain_set(n_held, a.size, a.seed, ["notumor"], start=a.train_images, cache=a.data_cache),
                brain_set(a.test_images, a.size, a.seed + 1, test_labels(a.test_images), cache=a.data_cache))
        entry["converge"] = []
        for v in a.variants.split(","):
            entry["converge"].append(converge(a, v, data, Path(tmp)))
            save(a.out, a.device, entry)  # after each run: a later one that fails or times out loses nothing
    print(f"written to {a.out}")
    return entry


def save(out: Path, device: str, entry: dict) -> None:
    results = json.loads(out.read_text()) if out.is_file() else {}
    results.setdefault("convergence", {})[device.split(":")[0]] = entry
    write_json(out, results)


if __name__ == "__main__":
    main(sys.argv[1:])
