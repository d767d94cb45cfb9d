"""An RD4AD training epoch here, beside anomalib's reverse distillation on the same images.

The issue "Decide the paper's claims", item 0: RD4AD at the paper's size (Wide-ResNet-50-2
teacher, 256 px, batch 16) must train an epoch at least 1.5 times faster than anomalib's.

- **Here**: ``training.loop.train`` with ``--method rd4ad`` (the teacher's F^1..F^3 computed once
  into the feature cache, then the one-class bottleneck and the reverse student trained on them),
  reported as the cache's one-off setup and the time of each epoch; the last epoch is the figure.
- **anomalib** (optional, ``--anomalib-python``: an interpreter with ``anomalib`` installed, for
  example 2.7.0 with this torch): its ``ReverseDistillationModel`` and ``ReverseDistillationLoss``
  with the Adam of its Lightning module, stepped over the same images in the same batches with the
  same number of threads. Its teacher runs at every step, as it does in anomalib. The Lightning
  trainer around it is left out (it adds to anomalib's time, never to ours), so the ratio is a
  lower bound of the speed-up.
- Both use random weights: the cost of a network does not depend on its weights (the paper's
  ImageNet weights need not be on the machine).

The images are synthetic brain slices (``throughput.brain_images``); the content does not change
the time. With ``--out`` the figures go to ``results/benchmarks.json`` under ``rd4ad_epoch``.

``--flops`` counts, instead of timing, the floating-point operations of one training image on each
side (``torch.utils.flop_counter.FlopCounterMode``, forward and backward): here the teacher's once
(the cache) and the step on its cached features, there the whole step. Their ratio is the epoch's
speed-up that equal arithmetic throughput would give, the ceiling of what a faster implementation
of the same networks can reach; it is added to the ``rd4ad_epoch`` record beside the timed epochs.

    .venv/bin/python benchmarks/rd4ad_epoch.py --anomalib-python ANOMALIB_VENV/bin/python --out results/benchmarks.json
    .venv/bin/python benchmarks/rd4ad_epoch.py --images 32 --size 64 --epochs 1     # quick check
    .venv/bin/python benchmarks/rd4ad_epoch.py --flops --anomalib-python ANOMALIB_VENV/bin/python --out results/benchmarks.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling benchmark's images (throughput)
ANOMALIB_LR, ANOMALIB_BETAS = 0.005, (0.5, 0.99)  # anomalib ReverseDistillation.configure_optimizers


def anomalib_epochs(images: np.ndarray, batch: int, epochs: int, threads: int) -> dict:
    """Seconds per epoch of anomalib's reverse distillation over ``images`` (N, H, W, 3) uint8.

    Runs in an interpreter with anomalib; imports nothing of this package."""
    import anomalib
    from anomalib.models.image.reverse_distillation.anomaly_map import AnomalyMapGenerationMode
    from anomalib.models.image.reverse_distillation.loss import ReverseDistillationLoss
    from anomalib.models.image.reverse_distillation.torch_model import ReverseDistillationModel

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    size = images.shape[1]
    model = ReverseDistillationModel(backbone="wide_resnet50_2", input_size=(size, size),
                                     layers=["layer1", "layer2", "layer3"],
                                     anomaly_map_mode=AnomalyMapGenerationMode.ADD, pre_trained=False)
    model.train()
    loss_fn = ReverseDistillationLoss()
    optimizer = torch.optim.Adam(list(model.decoder.parameters()) + list(model.bottleneck.parameters()),
                                 lr=ANOMALIB_LR, betas=ANOMALIB_BETAS)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    seconds = []
    for _ in range(epochs):
        t = time.perf_counter()
        for i in range(0, len(images), batch):
            x = torch.from_numpy(images[i : i + batch]).permute(0, 3, 1, 2).float() / 255
            x = ((x - mean) / std).contiguous()  # NCHW, as anomalib's data module gives
            optimizer.zero_grad()
            loss = loss_fn(*model(x))
            loss.backward()
            optimizer.step()
        seconds.append(round(time.perf_counter() - t, 2))
    parameters = {name: sum(p.numel() for p in getattr(model, name).parameters())
                  for name in ("encoder", "bottleneck", "decoder")}
    return {"anomalib": anomalib.__version__, "epoch_seconds": seconds, "parameters": parameters}


def counted(step) -> int:
    """The floating-point operations ``step()`` runs (forward and backward), as torch's FlopCounterMode counts them."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        step()
    return counter.get_total_flops()


def gflop(operations: float) -> float:
    """``operations`` in billions, to 0.01."""
    return round(operations / 1e9, 2)


def anomalib_flops(size: int, batch: int = 2) -> dict:
    """Operations per training image of anomalib's reverse distillation step (teacher, bottleneck and
    decoder forward, the loss, backward) at ``size`` px; in the interpreter with anomalib."""
    from anomalib.models.image.reverse_distillation.anomaly_map import AnomalyMapGenerationMode
    from anomalib.models.image.reverse_distillation.loss import ReverseDistillationLoss
    from anomalib.models.image.reverse_distillation.torch_model import ReverseDistillationModel

    model = ReverseDistillationModel(backbone="wide_resnet50_2", input_size=(size, size),
                                     layers=["layer1", "layer2", "layer3"],
                                     anomaly_map_mode=AnomalyMapGenerationMode.ADD, pre_trained=False).train()
    loss_fn, x = ReverseDistillationLoss(), torch.randn(batch, 3, size, size)
    return {"step_gflop_per_image": gflop(counted(lambda: loss_fn(*model(x)).backward()) / batch)}


def ours_flops(size: int, batch: int = 2) -> dict:
    """Operations per training image of this package's RD4AD: the teacher's F^1..F^3 once (the feature
    cache) and the step on them (bottleneck and student forward, the loss, backward) at ``size`` px."""
    from hetero_ae import ModelConfig
    from hetero_ae.methods import build_model

    model = build_model(ModelConfig(method="rd4ad", encoder="wide-resnet50", encoder_weights="none",
                                    image_size=size)).train()
    x = torch.randn(batch, 3, size, size)
    frozen: list[torch.Tensor] = []
    cache = counted(lambda: frozen.extend(model.frozen_features(x)))  # counted and kept: the teacher runs once
    return {"cache_gflop_per_image": gflop(cache / batch),
            "step_gflop_per_image": gflop(counted(lambda: model.loss_terms(x, frozen)["loss"].backward()) / batch)}


def ours(images: np.ndarray, batch: int, epochs: int, threads: int, tmp: Path) -> dict:
    """Seconds per epoch and the cache's setup of this package's RD4AD over ``images``."""
    from hetero_ae import ModelConfig
    from hetero_ae.config import TrainConfig
    from hetero_ae.data.images import ImageSet
    from hetero_ae.training.loop import train

    model_cfg = ModelConfig(method="rd4ad", encoder="wide-resnet50", encoder_weights="none",
                            image_size=images.shape[1])
    train_cfg = TrainConfig(epochs=epochs, batch_size=batch, lr=ANOMALIB_LR, seed=0, num_threads=threads)
    data = ImageSet(images, [f"{i}.png" for i in range(len(images))], np.zeros(len(images), dtype=np.int64))
    model, history = train(model_cfg, train_cfg, data, tmp / "rd4ad", progress=False)
    parameters = {name: sum(p.numel() for p in getattr(model, name).parameters())
                  for name in ("teacher", "bottleneck", "student")}
    parameters["teacher (F^1..F^3)"] = sum(p.numel() for n, p in model.teacher.named_parameters()
                                            if not any(part in n.split(".") for part in ("layer4", "fc")))
    return {"setup_seconds": round(history.setup_seconds, 2),
            "epoch_seconds": [round(e["seconds"], 2) for e in history], "parameters": parameters}


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=400)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--epochs", type=int, default=2, help="epochs of each; the last one's time is the figure")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--anomalib-python", type=Path, default=None,
                   help="an interpreter with anomalib installed; without it only ours is measured")
    p.add_argument("--out", type=Path, default=None, help="results/benchmarks.json: add the figures under rd4ad_epoch")
    p.add_argument("--flops", action="store_true",
                   help="count each side's operations per training image instead of timing epochs")
    p.add_argument("--anomalib-worker", type=Path, default=None,  # the images (.npy), in the other interpreter
                   help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.flops and a.anomalib_worker is not None:
        found = anomalib_flops(a.size)
        print(json.dumps(found))
        return found
    if a.flops:
        return count_both(a)
    if a.anomalib_worker is not None:
        found = anomalib_epochs(np.load(a.anomalib_worker), a.batch_size, a.epochs, a.threads)
        print(json.dumps(found))
        return found

    from throughput import brain_images  # imports this package: not in the anomalib interpreter

    from hetero_ae.io import write_json
    from hetero_ae.report.manifest import device_description

    images = brain_images(a.images, a.size)
    print(f"{device_description('cpu')}, torch {torch.__version__}, {a.threads} threads; RD4AD, Wide-ResNet-50-2 "
          f"(random weights), {a.images} images at {a.size} px, batch {a.batch_size}, {a.epochs} epoch(s) each",
          flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        here = ours(images, a.batch_size, a.epochs, a.threads, Path(tmp))
        print(f"here: cache {here['setup_seconds']} s once, then epochs of {here['epoch_seconds']} s; "
              f"parameters {here['parameters']}", flush=True)
        there = None
        if a.anomalib_python is not None:
            np.save(Path(tmp) / "images.npy", images)
            there = in_anomalib(a.anomalib_python, ["--anomalib-worker", str(Path(tmp) / "images.npy"),
                                                    "--batch-size", str(a.batch_size), "--epochs", str(a.epochs),
                                                    "--threads", str(a.threads)])
            print(f"anomalib {there['anomalib']}: epochs of {there['epoch_seconds']} s; parameters "
                  f"{there['parameters']}", flush=True)
    found = {"device": device_description("cpu"), "torch": torch.__version__, "threads": a.threads,
             "images": a.images, "image_size": a.size, "batch_size": a.batch_size, "encoder": "wide-resnet50 (random)",
             "here": here, "measured": time.strftime("%Y-%m-%d %H:%M:%S")}
    if there is not None:
        found["anomalib"] = there
        found["speed_up"] = round(there["epoch_seconds"][-1] / here["epoch_seconds"][-1], 2)
        print(f"an epoch here is {found['speed_up']} times as fast as anomalib's (aim: 1.5)", flush=True)
    if a.out is not None:
        everything = json.loads(a.out.read_text()) if a.out.exists() else {}
        kept = {k: v for k, v in everything.get("rd4ad_epoch", {}).items() if k == "flops"}  # counted, not timed
        write_json(a.out, {**everything, "rd4ad_epoch": {**found, **kept}})
    return found


def in_anomalib(python: Path, args: list[str]) -> dict:
    """This script's worker run in ``python`` (an interpreter with anomalib), its last line read as JSON;
    SystemExit naming the interpreter when it fails."""
    done = subprocess.run([str(python), __file__, *args], capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"anomalib's worker failed in {python}: {done.stderr.strip().splitlines()[-1]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def count_both(a: argparse.Namespace) -> dict:
    """``--flops``: operations per training image here and, with ``--anomalib-python``, there; with ``--out``
    added to the ``rd4ad_epoch`` record under ``flops``."""
    from hetero_ae.io import write_json

    found = {"image_size": a.size, "counter": "torch.utils.flop_counter.FlopCounterMode", "here": ours_flops(a.size)}
    print(f"here: {found['here']}", flush=True)
    if a.anomalib_python is not None:
        found["anomalib"] = in_anomalib(a.anomalib_python, ["--flops", "--anomalib-worker", "-", "--size", str(a.size)])
        found["ceiling"] = round(found["anomalib"]["step_gflop_per_image"] / found["here"]["step_gflop_per_image"], 2)
        print(f"anomalib: {found['anomalib']}; at equal arithmetic throughput an epoch here would be "
              f"{found['ceiling']} times as fast (aim: 1.5)", flush=True)
    if a.out is not None:
        everything = json.loads(a.out.read_text()) if a.out.exists() else {}
        write_json(a.out, {**everything, "rd4ad_epoch": {**everything.get("rd4ad_epoch", {}), "flops": found}})
    return found


if __name__ == "__main__":
    main()
