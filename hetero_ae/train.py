"""Training loop shared by every registered method (paper Sec. IV-B1 protocol by default).

- Deterministic on CPU for a given seed: weights are initialised after seeding, and the
  order of epoch e is a permutation drawn from a generator seeded by (seed, e), so it does
  not depend on what ran before.
- A checkpoint is written atomically after every epoch, with the optimiser and the torch RNG
  state; ``resume=True`` continues from it and ends with the same weights as a run that was
  never interrupted, stochastic methods (VAE, GANs) included.
- A NaN or infinite loss stops the run with ``TrainingDiverged``; the last good
  checkpoint (the previous epoch's) is left as it was.
- Under ``torchrun`` with several processes (``distributed``) the same loop runs through
  DistributedDataParallel: ``batch_size`` is the global batch, each process trains on its part
  of it, and rank 0 alone shows progress and writes checkpoints while the others wait.
- How it executes (``hetero_ae.runtime``): forward passes in ``train_cfg.precision``, the loss
  compiled with ``compile`` (a torch.compile backend, or None), batches sliced from the uint8
  arrays by ``workers`` processes (None: sized to the device) and normalised on the device.
  Nothing is kept from one step to the next but the epoch's summed loss (a float), so memory
  does not grow with the number of steps or epochs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm  # plain text bars: no widget warnings in notebooks and their HTML

from . import distributed, runtime
from .checkpoint import read_checkpoint, restore_model, save_checkpoint
from .config import ModelConfig, TrainConfig, from_dict, to_dict
from .data.images import ImageSet, to_batch
from .errors import TrainingDiverged, UserError
from .registry import AnomalyModel
from .seed import build_seeded

CHECKPOINT = "checkpoint.pt"


def epoch_order(n: int, seed: int, epoch: int) -> np.ndarray:
    """The sample order of one epoch, a function of (seed, epoch) only."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=g).numpy()


def hold_out(data: ImageSet, fraction: float, seed: int) -> tuple[ImageSet, ImageSet | None]:
    """Split off ``fraction`` of ``data`` (drawn by ``seed``) as held-out normals: (rest, held out)."""
    n_val = int(round(fraction * len(data)))
    if n_val == 0:
        return data, None
    if n_val >= len(data):
        raise UserError(f"{len(data)} image(s) are too few to hold out {fraction:.0%} and still train")
    order = epoch_order(len(data), seed, -1)
    return data.subset(np.sort(order[n_val:])), data.subset(np.sort(order[:n_val]))


def check_run_folder(out_dir: str | Path, resume: bool) -> Path:
    """The checkpoint path of a run folder; an error if it holds a run and ``resume`` is off."""
    ckpt_path = Path(out_dir) / CHECKPOINT
    if ckpt_path.exists() and not resume:
        raise UserError(f"{ckpt_path} exists: pass --resume to continue it, or choose another output folder")
    return ckpt_path


def train(
    model_cfg: ModelConfig,
    train_cfg: TrainConfig,
    data: ImageSet,
    out_dir: str | Path,
    *,
    resume: bool = False,
    device: str = "cpu",
    progress: bool = True,
    compile: str | None = None,
    workers: int | None = None,
    on_epoch_end: Callable[[dict[str, float]], None] | None = None,
) -> tuple[AnomalyModel, list[dict[str, float]]]:
    """Train a model on the normal images ``data``; checkpoints go to ``out_dir/checkpoint.pt``.

    In a process group of several processes (torchrun) this trains with DDP on ``device`` (this
    process's); every process returns the trained model and its history. ``on_epoch_end`` is
    called with each epoch's history entry once its checkpoint is written (e.g. to measure memory).
    """
    ckpt_path = check_run_folder(out_dir, resume)
    if train_cfg.num_threads > 0 or distributed.launched():
        torch.set_num_threads(runtime.cpu_threads(train_cfg.num_threads))
    rank, world = distributed.rank(), distributed.world_size()
    model = build_seeded(model_cfg, train_cfg.seed).to(device=device, memory_format=torch.channels_last)
    model.precision = train_cfg.precision
    if world > 1:
        distributed.check_supported(model)
    optimizers = model.configure_optimizers(train_cfg.lr)
    history: list[dict[str, float]] = []
    start = 0
    if resume and ckpt_path.exists():
        ckpt = read_checkpoint(ckpt_path)
        written = to_dict(from_dict(TrainConfig, ckpt["train_config"]))  # with fields added since at their defaults
        if ckpt["model_config"] != to_dict(model_cfg) or written != to_dict(train_cfg):
            raise UserError(f"{ckpt_path} was written by a run with another configuration; cannot resume it")
        restore_model(model, ckpt, ckpt_path)
        for opt, state in zip(optimizers, ckpt["optimizers"], strict=True):
            opt.load_state_dict(state)
        history, start = list(ckpt["history"]), int(ckpt["epoch"])
        torch.set_rng_state(ckpt["rng_state"])
    with runtime.compiled(model, compile):
        history = _epochs(model, optimizers, model_cfg, train_cfg, data, ckpt_path, history, start, device=device,
                          progress=progress, workers=runtime.loader_workers(device, workers),
                          on_epoch_end=on_epoch_end)
    return model.eval(), history


def _epochs(model: AnomalyModel, optimizers: list[torch.optim.Optimizer], model_cfg: ModelConfig,
            train_cfg: TrainConfig, data: ImageSet, ckpt_path: Path, history: list[dict[str, float]], start: int, *,
            device: str, progress: bool, workers: int,
            on_epoch_end: Callable[[dict[str, float]], None] | None) -> list[dict[str, float]]:
    """Epochs ``start`` to ``train_cfg.epochs``, a checkpoint after each; the whole history."""
    rank, world = distributed.rank(), distributed.world_size()
    ddp = distributed.DistributedStep(model, device) if world > 1 else None  # after resuming: same weights everywhere
    n, bs = len(data), train_cfg.batch_size
    for epoch in range(start, train_cfg.epochs):
        if ddp is None:
            model.train()
        else:
            ddp.train()
            torch.manual_seed(distributed.rank_seed(train_cfg.seed, epoch, rank))
        model.on_epoch_start(epoch, train_cfg.epochs)
        t0, total = time.perf_counter(), 0.0
        order = epoch_order(n, train_cfg.seed, epoch)
        steps = [np.sort(order[i : i + bs]) for i in range(0, n, bs)]  # sorted reads suit memory-mapped arrays
        loader = runtime.batch_loader(data.images, [distributed.shard(idx, rank, world) for idx in steps], device,
                                      workers)
        bar = tqdm(zip(steps, loader), total=len(steps), desc=f"epoch {epoch + 1}/{train_cfg.epochs}", leave=False,
                   disable=not (progress and rank == 0))
        for step, (idx, batch) in enumerate(bar):
            x = to_batch(batch.to(device, non_blocking=True))
            try:
                stats = model.training_step(x, optimizers) if ddp is None else ddp(x, optimizers)
            except FloatingPointError as e:
                kept = f"the last good checkpoint is kept at {ckpt_path}" if ckpt_path.exists() else "no checkpoint was written yet"
                raise TrainingDiverged(f"training diverged at epoch {epoch + 1}, step {step + 1} ({e}); {kept}") from e
            total += stats["loss"] * len(idx)  # the global batch's mean loss, in every process
            bar.set_postfix(loss=f"{stats['loss']:.4f}")
        history.append({"epoch": epoch + 1, "loss": total / n, "seconds": time.perf_counter() - t0})
        if rank == 0:
            save_checkpoint(ckpt_path, model, optimizers, model_cfg, train_cfg, epoch=epoch + 1, history=history)
        distributed.barrier()  # the checkpoint is complete before any process goes on
        if on_epoch_end is not None:
            on_epoch_end(history[-1])
    return history
