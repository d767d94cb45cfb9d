"""Training epoch and folder scoring at the paper's scale, each beside the frozen encoder's forward alone.

- **Training**: one epoch of Hetero-AE (``train.train``, checkpoint included) over a
  brain-MRI-sized set of 1,595 normal images (the paper's brain MRI training normals) at
  256 px; the paper reports 19.46 min per epoch on an RTX 3090 (Sec. IV-B1).
- **Scoring**: ``hetero-ae score``'s streaming path (``scoring.score_images``) over a folder of
  1,000 PNG files at 256 px, decoding included.
- **Floor**: the frozen encoder's forward over the same number of images in the same run;
  nothing that runs the encoder can be faster.
- **Peak memory**: the process's peak resident memory (CPU) or peak allocated memory (CUDA).

The images are synthetic brain slices (``data/synthetic/brain.py``): 64 distinct ones,
repeated to the set's size (throughput does not depend on content). Results go to
``results/benchmarks.json`` (one entry per device, replaced when measured again) and are
printed.

    .venv/bin/python benchmarks/throughput.py                       # 256 px, 1,595 + 1,000 images
    .venv/bin/python benchmarks/throughput.py --device cuda --batch-size 200
    .venv/bin/python benchmarks/throughput.py --train-images 64 --score-images 32 --size 64   # quick check
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from hetero_ae import ModelConfig
from hetero_ae.checkpoint import load_model
from hetero_ae.config import TrainConfig
from hetero_ae.data.images import ImageSet, to_batch
from hetero_ae.data.synthetic.brain import sample
from hetero_ae.io import write_json
from hetero_ae.manifest import device_description
from hetero_ae.scoring import score_images
from hetero_ae.train import train


def brain_images(n: int, size: int, distinct: int = 64) -> np.ndarray:
    """(n, size, size, 3) uint8: ``distinct`` synthetic normal brain slices, repeated."""
    rng = np.random.default_rng(0)
    base = np.stack([sample(rng, size, "notumor", 0.0)[0] for _ in range(min(distinct, n))])
    return np.repeat(base[np.arange(n) % len(base)][..., None], 3, axis=-1)


def peak_memory_mb(device: str) -> float:
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def encoder_floor(model: torch.nn.Module, images: np.ndarray, batch: int, device: str) -> float:
    """Images/s of the frozen encoder's forward alone over ``images`` (the floor)."""
    model.eval()
    with torch.inference_mode():
        model.encoder(to_batch(images[:batch]).to(device))  # warm-up
        sync(device)
        t = time.perf_counter()
        for i in range(0, len(images), batch):
            model.encoder(to_batch(images[i : i + batch]).to(device))
        sync(device)
    return len(images) / (time.perf_counter() - t)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--train-images", type=int, default=1595)
    p.add_argument("--score-images", type=int, default=1000)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--encoder", default="resnet18", help="weights are not needed: a random encoder costs the same")
    p.add_argument("--device", default="cpu")
    p.add_argument("--workers", type=int, default=1, help="decoding processes for scoring")
    p.add_argument("--out", type=Path, default=Path("results/benchmarks.json"))
    a = p.parse_args(argv)
    model_cfg = ModelConfig(encoder=a.encoder, encoder_weights="none", image_size=a.size)
    train_cfg = TrainConfig(epochs=1, batch_size=a.batch_size, lr=1e-4, seed=0)
    print(f"{device_description(a.device)}, torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"Hetero-AE ({a.encoder} + hctn) at {a.size} px, batch {a.batch_size}", flush=True)

    train_set = ImageSet(brain_images(a.train_images, a.size), [f"{i}.png" for i in range(a.train_images)],
                         np.zeros(a.train_images, dtype=np.int64))
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        model, history = train(model_cfg, train_cfg, train_set, Path(tmp) / "run", device=a.device, progress=False)
        sync(a.device)
        epoch_s = time.perf_counter() - t
        train_floor = encoder_floor(model, train_set.images, a.batch_size, a.device)
        train_peak = peak_memory_mb(a.device)
        print(f"training: one epoch over {a.train_images} images in {epoch_s:.1f} s "
              f"({a.train_images / epoch_s:.1f} img/s; encoder forward alone {train_floor:.1f} img/s; "
              f"paper: 19.46 min on an RTX 3090)", flush=True)

        folder = Path(tmp) / "images"
        folder.mkdir()
        pictures = brain_images(a.score_images, a.size)
        for i, im in enumerate(pictures):
            Image.fromarray(im[..., 0]).save(folder / f"{i:05d}.png")
        model, _ = load_model(Path(tmp) / "run" / "checkpoint.pt")
        model = model.to(a.device)
        t = time.perf_counter()
        new, _, _ = score_images(model, Path(tmp) / "run" / "checkpoint.pt", a.size, folder, Path(tmp) / "scored",
                                 batch_size=a.batch_size, workers=a.workers, device=a.device, progress=False)
        sync(a.device)
        score_s = time.perf_counter() - t
        score_floor = encoder_floor(model, pictures, a.batch_size, a.device)
        print(f"scoring: {new} PNG files in {score_s:.1f} s ({new / score_s:.1f} img/s, decoding included, "
              f"{a.workers} decoding worker(s); encoder forward alone {score_floor:.1f} img/s)", flush=True)

    entry = {
        "device": device_description(a.device), "torch": torch.__version__, "python": platform.python_version(),
        "threads": torch.get_num_threads(), "model": f"hetero-ae {a.encoder} + hctn", "image_size": a.size,
        "batch_size": a.batch_size, "measured": time.strftime("%Y-%m-%d %H:%M:%S"),
        "train": {"images": a.train_images, "epoch_seconds": round(epoch_s, 2),
                  "images_per_second": round(a.train_images / epoch_s, 2),
                  "encoder_forward_images_per_second": round(train_floor, 2), "peak_memory_mb": round(train_peak, 1),
                  "paper_epoch_seconds_rtx3090": round(19.46 * 60, 1)},
        "score": {"images": new, "seconds": round(score_s, 2), "images_per_second": round(new / score_s, 2),
                  "decode_workers": a.workers, "encoder_forward_images_per_second": round(score_floor, 2),
                  "peak_memory_mb": round(peak_memory_mb(a.device), 1)},
    }
    results = json.loads(a.out.read_text()) if a.out.is_file() else {}
    results[a.device.split(":")[0]] = entry
    write_json(a.out, results)
    print(f"written to {a.out}")
    return entry


if __name__ == "__main__":
    main(sys.argv[1:])
