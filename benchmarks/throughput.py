"""Training epoch and folder scoring at the paper's scale, each beside the frozen encoder's forward alone.

- **Training**: one epoch of Hetero-AE (``train.train``, checkpoint included) over a
  brain-MRI-sized set of 1,595 normal images (the paper's brain MRI training normals) at
  256 px; the paper reports 19.46 min per epoch on an RTX 3090 (Sec. IV-B1).
- **Scoring**: ``hetero-ae score``'s streaming path (``scoring.score_images``) over a folder of
  1,000 PNG files at 256 px, decoding included.
- **Floor**: the frozen encoder's forward over the same number of images in the same run;
  nothing that runs the encoder can be faster.
- **onnxruntime**: in the fp32 variant, the trained model exported (``hetero-ae export``) and
  the same folder scored by ``score --onnx``'s path, beside PyTorch's figure of the same run.
- **Memory**: after each epoch, the process's resident memory (CPU) or the peak memory
  allocated during that epoch (CUDA); bounded means that later epochs need no more than the
  second (the allocator settles during the first two).
- **Variants**: each measurement in float32 and with bf16 autocast, and optionally compiled
  (``hetero_ae.training.runtime``); the floor is measured in the variant's precision. On CUDA the default
  is fp32, bf16 and bf16+compile; on the CPU fp32 and bf16 (inductor compiles for minutes there).

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
from hetero_ae.config import TrainConfig
from hetero_ae.data.images import ImageSet, to_batch
from hetero_ae.data.synthetic.brain import sample
from hetero_ae.errors import UserError
from hetero_ae.evaluation.onnx_model import OnnxScorer, export_onnx
from hetero_ae.evaluation.scoring import score_images
from hetero_ae.io import write_json
from hetero_ae.model.precision import running_in
from hetero_ae.report.manifest import device_description
from hetero_ae.training.checkpoint import load_model
from hetero_ae.training.loop import train
from hetero_ae.training.runtime import compile_backend, compiled


def brain_images(n: int, size: int, distinct: int = 64) -> np.ndarray:
    """(n, size, size, 3) uint8: ``distinct`` synthetic normal brain slices, repeated."""
    rng = np.random.default_rng(0)
    base = np.stack([sample(rng, size, "notumor", 0.0)[0] for _ in range(min(distinct, n))])
    return np.repeat(base[np.arange(n) % len(base)][..., None], 3, axis=-1)


def memory_mb(device: str) -> float:
    """CUDA: peak allocated since the last call (then reset); CPU: resident memory now."""
    if device.startswith("cuda"):
        peak = torch.cuda.max_memory_allocated() / 2**20
        torch.cuda.reset_peak_memory_stats()
        return peak
    return int(Path("/proc/self/statm").read_text().split()[1]) * resource.getpagesize() / 2**20


def peak_memory_mb(device: str) -> float:
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def encoder_floor(model: torch.nn.Module, images: np.ndarray, batch: int, device: str, precision: str) -> float:
    """Images/s of the frozen encoder's forward alone over ``images`` (the floor), in ``precision``."""
    model.eval()
    with running_in(model, precision) as forward, torch.inference_mode(), forward():
        model.encoder(to_batch(images[:batch]).to(device))  # warm-up
        sync(device)
        t = time.perf_counter()
        for i in range(0, len(images), batch):
            model.encoder(to_batch(images[i : i + batch]).to(device))
        sync(device)
    return len(images) / (time.perf_counter() - t)


def measure(variant: str, a: argparse.Namespace, train_set: ImageSet, folder: Path, pictures: np.ndarray,
            tmp: Path) -> dict:
    """Training epochs and folder scoring in one variant ("fp32", "bf16", "fp32+compile", "bf16+compile")."""
    precision, _, compile_ = variant.partition("+")
    backend = compile_backend(a.compile_backend) if compile_ == "compile" else None
    model_cfg = ModelConfig(encoder=a.encoder, encoder_weights="none", image_size=a.size)
    train_cfg = TrainConfig(epochs=a.epochs, batch_size=a.batch_size, lr=1e-4, seed=0, precision=precision)
    run = tmp / variant / "run"
    epochs: list[dict] = []
    memory_mb(a.device)
    model, history = train(model_cfg, train_cfg, train_set, run, device=a.device, progress=False, compile=backend,
                           workers=a.workers, on_epoch_end=lambda h: epochs.append(
                               {"seconds": round(h["seconds"], 2), "memory_mb": round(memory_mb(a.device), 1)}))
    sync(a.device)
    last = history[-1]["seconds"]  # a later epoch: compilation and warm-up are behind it
    train_floor = encoder_floor(model, train_set.images, a.batch_size, a.device, precision)
    print(f"[{variant}] training: an epoch over {len(train_set)} images in {last:.1f} s ({len(train_set) / last:.1f} "
          f"img/s; encoder forward alone {train_floor:.1f} img/s); per epoch: "
          + ", ".join(f"{e['seconds']:.1f} s, {e['memory_mb']:.0f} MB" for e in epochs), flush=True)

    model, _ = load_model(run / "checkpoint.pt")
    model = model.to(a.device)
    with compiled(model, backend):
        t = time.perf_counter()
        new, _, _ = score_images(model, run / "checkpoint.pt", a.size, folder, tmp / variant / "scored",
                                 precision=precision, batch_size=a.batch_size, workers=a.score_workers, device=a.device, progress=False)
        sync(a.device)
        score_s = time.perf_counter() - t
    score_floor = encoder_floor(model, pictures, a.batch_size, a.device, precision)
    print(f"[{variant}] scoring: {new} PNG files in {score_s:.1f} s ({new / score_s:.1f} img/s, decoding included, "
          f"{a.score_workers} decoding worker(s); encoder forward alone {score_floor:.1f} img/s)", flush=True)
    found = {}
    if precision == "fp32" and backend is None:  # the exported graph computes in float32, uncompiled
        try:
            found["score_onnxruntime"] = onnx_scoring(a, model, run, folder, tmp / variant, new / score_s)
        except UserError as e:  # no onnx extra, or no CUDA provider in this onnxruntime: the rest still counts
            print(f"[fp32, onnxruntime] not measured: {e}", flush=True)
            found["score_onnxruntime"] = {"not_measured": str(e)}
    return {**found,
        "precision": precision, "compile": backend,
        "train": {"images": len(train_set), "epoch_seconds": round(last, 2),
                  "images_per_second": round(len(train_set) / last, 2),
                  "encoder_forward_images_per_second": round(train_floor, 2), "epochs": epochs,
                  "paper_epoch_seconds_rtx3090": round(19.46 * 60, 1)},
        "score": {"images": new, "seconds": round(score_s, 2), "images_per_second": round(new / score_s, 2),
                  "decode_workers": a.score_workers, "encoder_forward_images_per_second": round(score_floor, 2)},
    }


def onnx_scoring(a: argparse.Namespace, model: torch.nn.Module, run: Path, folder: Path, tmp: Path,
                 pytorch_rate: float) -> dict:
    """``score --onnx``'s path over the same folder: the model exported (``hetero-ae export``), then
    scored by onnxruntime with the same decoding workers and batch size."""
    from hetero_ae.training.checkpoint import read_checkpoint

    exported = tmp / "model.onnx"
    _, parity = export_onnx(model, read_checkpoint(run / "checkpoint.pt"), run / "checkpoint.pt", exported)
    model.to(a.device)  # the export moved it to the CPU
    scorer = OnnxScorer(exported, a.device)
    t = time.perf_counter()
    new, _, _ = score_images(scorer, exported, a.size, folder, tmp / "scored_onnx", batch_size=a.batch_size,
                             workers=a.score_workers, device=a.device, progress=False)
    seconds = time.perf_counter() - t
    print(f"[fp32, onnxruntime {ort_version()}] scoring: {new} PNG files in {seconds:.1f} s ({new / seconds:.1f} "
          f"img/s, decoding included; PyTorch {pytorch_rate:.1f} img/s in this run); export against PyTorch: "
          f"{parity}", flush=True)
    return {"images": new, "seconds": round(seconds, 2), "images_per_second": round(new / seconds, 2),
            "decode_workers": a.score_workers, "onnxruntime": ort_version(),
            "max_abs_diff_from_pytorch": parity.max_abs_diff}


def ort_version() -> str:
    import onnxruntime

    return onnxruntime.__version__


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--train-images", type=int, default=1595)
    p.add_argument("--score-images", type=int, default=1000)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--epochs", type=int, default=3,
                   help="training epochs per variant; the last one's time is reported (default: %(default)s)")
    p.add_argument("--encoder", default="resnet18", help="weights are not needed: a random encoder costs the same")
    p.add_argument("--device", default="cpu")
    p.add_argument("--variants", default=None,
                   help="comma-separated: fp32, bf16, fp32+compile, bf16+compile (default: fp32,bf16 on the CPU, "
                        "fp32,bf16,bf16+compile on CUDA)")
    p.add_argument("--compile-backend", default="inductor", help="torch.compile backend of +compile variants")
    p.add_argument("--workers", type=int, default=None, help="training batch workers (default: sized to the device)")
    p.add_argument("--score-workers", type=int, default=1, help="decoding processes for scoring")
    p.add_argument("--out", type=Path, default=Path("results/benchmarks.json"))
    a = p.parse_args(argv)
    cuda = a.device.startswith("cuda")
    variants = (a.variants or ("fp32,bf16,bf16+compile" if cuda else "fp32,bf16")).split(",")
    print(f"{device_description(a.device)}, torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"Hetero-AE ({a.encoder} + hctn) at {a.size} px, batch {a.batch_size}; variants {', '.join(variants)}",
          flush=True)

    train_set = ImageSet(brain_images(a.train_images, a.size), [f"{i}.png" for i in range(a.train_images)],
                         np.zeros(a.train_images, dtype=np.int64))
    pictures = brain_images(a.score_images, a.size)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "images"
        folder.mkdir()
        for i, im in enumerate(pictures):
            Image.fromarray(im[..., 0]).save(folder / f"{i:05d}.png")
        measured = {v: measure(v, a, train_set, folder, pictures, Path(tmp)) for v in variants}

    entry = {
        "device": device_description(a.device), "torch": torch.__version__, "python": platform.python_version(),
        "threads": torch.get_num_threads(), "model": f"hetero-ae {a.encoder} + hctn", "image_size": a.size,
        "batch_size": a.batch_size, "measured": time.strftime("%Y-%m-%d %H:%M:%S"),
        "peak_memory_mb": round(peak_memory_mb(a.device), 1), "variants": measured,
    }
    results = json.loads(a.out.read_text()) if a.out.is_file() else {}
    results[a.device.split(":")[0]] = entry
    write_json(a.out, results)
    print(f"process peak memory {entry['peak_memory_mb']:.0f} MB; written to {a.out}")
    return entry


if __name__ == "__main__":
    main(sys.argv[1:])
