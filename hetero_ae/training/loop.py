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
- How it executes (``hetero_ae.training.runtime``): forward passes in ``train_cfg.precision``, the loss
  compiled with ``compile`` (a torch.compile backend, or None), batches sliced from the uint8
  arrays by ``workers`` processes (None: sized to the device) and normalised on the device.
  Nothing is kept from one step to the next but the epoch's summed loss terms (floats), so
  memory does not grow with the number of steps or epochs.
- Convergence (``hetero_ae.training.stopping``): after each epoch the loss of the held-out normal
  images ``val`` is recorded beside the training loss (every named term of both, e.g. Eq. 4's
  cosine and MSE parts); with ``train_cfg.patience`` > 0 the run stops when it plateaus and
  keeps its best held-out epoch's weights, and with ``train_cfg.lr_patience`` > 0 its learning
  rates are lowered on the way there. How it ended is ``History.stop``, also stored in
  the checkpoint; a finished run resumed returns at once.
- Frozen features (``hetero_ae.training.feature_cache``): when the model's frozen network's features
  are fixed (``caches_features``), they are computed once for the training and held-out images
  and every step trains only what learns. ``cache_features=False`` runs the network each step.
"""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm  # plain text bars: no widget warnings in notebooks and their HTML

from ..config import ModelConfig, TrainConfig, from_dict, to_dict
from ..data.batches import ArrayImages, batch_loader
from ..data.images import ImageSet, to_batch
from ..errors import ConfigError, TrainingDiverged, UserError
from ..methods.registry import AnomalyModel
from ..model.precision import Forward, running_in
from . import distributed, runtime
from .checkpoint import CHECKPOINT, read_checkpoint, restore_model, save_checkpoint
from .feature_cache import DEFAULT_BUDGET_BYTES, FeatureCache
from .seed import build_seeded
from .stopping import Stopping

SPILL_PREFIX = ".feature-cache-"  # memory maps of frozen features past the memory budget, inside the run folder
DISK_FRACTION = 0.5  # at most this share of the free disk goes to them


class History(list):
    """Per-epoch entries (epoch, loss terms, held-out ``val_`` terms, seconds); ``stop`` says how the run ended."""

    stop: dict[str, Any] | None = None
    feature_cache: str = "off"  # what the frozen-feature cache held ("off" when the network ran every step)
    setup_seconds: float = 0.0  # once per run, outside the epochs: building the cache and fit_statistics


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
    val: ImageSet | None = None,
    resume: bool = False,
    device: str = "cpu",
    progress: bool = True,
    compile: str | None = None,
    workers: int | None = None,
    cache_features: bool = True,
    cache_budget: int = DEFAULT_BUDGET_BYTES,
    on_epoch_end: Callable[[dict[str, float]], None] | None = None,
) -> tuple[AnomalyModel, History]:
    """Train a model on the normal images ``data``; checkpoints go to ``out_dir/checkpoint.pt``.

    ``val``: held-out normal images, whose loss is recorded each epoch and drives the stopping
    rule (required when ``train_cfg.patience`` > 0). ``cache_features``: compute a frozen
    network's features once (where the model allows it); ``cache_budget``: bytes kept in the
    device's memory before the cache spills to memory maps in ``out_dir``.

    In a process group of several processes (torchrun) this trains with DDP on ``device`` (this
    process's); every process returns the trained model and its history. ``on_epoch_end`` is
    called with each epoch's history entry once its checkpoint is written (e.g. to measure memory).

    Raises ConfigError when the stopping rule has no held-out images, UserError for a run folder
    that holds another run, TrainingDiverged for a NaN or infinite loss.
    """
    ckpt_path = check_run_folder(out_dir, resume)
    if train_cfg.patience > 0 and (val is None or not len(val)):
        raise ConfigError("the stopping rule (patience > 0) needs held-out normal images; set a val fraction above 0")
    if train_cfg.num_threads > 0 or distributed.launched():
        torch.set_num_threads(runtime.cpu_threads(train_cfg.num_threads))
    model = build_seeded(model_cfg, train_cfg.seed).to(device=device, memory_format=torch.channels_last)
    if distributed.world_size() > 1:
        distributed.check_supported(model)
    optimizers = model.configure_optimizers(train_cfg.lr)
    history = History()
    stopping = Stopping(train_cfg.patience if model.stops_early and val is not None else 0, train_cfg.min_delta,
                        train_cfg.epochs, keep=train_cfg.keep, lr_patience=train_cfg.lr_patience,
                        lr_factor=train_cfg.lr_factor)
    best: dict[str, torch.Tensor] | None = None
    start = 0
    if resume and ckpt_path.exists():
        ckpt = read_checkpoint(ckpt_path)
        written = to_dict(from_dict(TrainConfig, ckpt["train_config"]))  # with fields added since at their defaults
        written_model = to_dict(from_dict(ModelConfig, ckpt["model_config"]))
        differ = [f"{name}.{k}: {old[k]!r} there, {new[k]!r} now" for name, old, new in
                  (("model", written_model, to_dict(model_cfg)), ("training", written, to_dict(train_cfg)))
                  for k in old if old[k] != new[k]]
        if differ:
            raise UserError(f"{ckpt_path} was written by a run with another configuration ({'; '.join(differ)}); "
                            "resume with the same settings, or choose another output folder")
        restore_model(model, ckpt, ckpt_path)
        history.extend(ckpt["history"])
        history.feature_cache = ckpt.get("feature_cache", "off")
        if finished(ckpt):  # its kept weights are the checkpoint's
            history.stop = ckpt.get("stop") or Stopping(0, 0.0, train_cfg.epochs).record(int(ckpt["epoch"]))
            return model.eval(), history
        for opt, state in zip(optimizers, ckpt["optimizers"], strict=True):
            opt.load_state_dict(state)
        start = int(ckpt["epoch"])
        torch.set_rng_state(ckpt["rng_state"])
        if ckpt.get("stopping") is not None:
            stopping = Stopping(**ckpt["stopping"])
            best = ckpt.get("best")
    if model.trains_weights and (train_cfg.epochs < 1 or not train_cfg.lr > 0):
        raise ConfigError(f"{model.method_name} trains weights: it needs epochs of at least 1 and an lr above 0")
    if not model.trains_weights:
        return _fit_once(model, model_cfg, train_cfg, data, ckpt_path, history, device=device)
    caches: list[FeatureCache] = []
    try:
        with running_in(model, train_cfg.precision) as forward:
            t0 = time.perf_counter()
            train_cache, val_cache = _feature_caches(model, data, val, caches, device=device, enabled=cache_features,
                                                     budget=cache_budget, spill_dir=ckpt_path.parent,
                                                     batch_size=train_cfg.batch_size, forward=forward)
            if train_cache is not None:
                history.feature_cache = (f"train {train_cache.describe()}; "
                                         f"held-out {val_cache.describe() if val_cache else '-'}")
            if start == 0:
                model.fit_statistics(_frozen_batches(model, data, train_cache, device, train_cfg.batch_size, forward))
            history.setup_seconds = time.perf_counter() - t0
            with runtime.compiled(model, compile):
                loop = _Loop(model, optimizers, model_cfg, train_cfg, ckpt_path, device=device, progress=progress,
                             workers=runtime.loader_workers(device, workers), caches=(train_cache, val_cache),
                             on_epoch_end=on_epoch_end, forward=forward)
                loop.run(data, val, history, start, stopping, best)
    finally:
        for cache in caches:
            cache.close()
    return model.eval(), history


FIT = {"epochs_run": 0, "cap": 0, "best_epoch": None, "best_val_loss": None, "stop_reason": "fit", "kept": "fitted",
       "keep": "-", "converged": True}  # how a run that trains no weight ends: one fit, nothing to converge


def _fit_once(model: AnomalyModel, model_cfg: ModelConfig, train_cfg: TrainConfig, data: ImageSet, ckpt_path: Path,
              history: History, *, device: str) -> tuple[AnomalyModel, History]:
    """The training of a method that learns no weight (``AnomalyModel.trains_weights`` False): one pass of
    ``fit_statistics`` over the training normals' frozen features, then a finished checkpoint."""
    t0 = time.perf_counter()
    with running_in(model, train_cfg.precision) as forward:
        model.fit_statistics(_frozen_batches(model, data, None, device, train_cfg.batch_size, forward))
    history.setup_seconds = time.perf_counter() - t0
    history.stop = dict(FIT)
    save_checkpoint(ckpt_path, model, [], model_cfg, train_cfg, epoch=0, history=[], stop=history.stop)
    return model.eval(), history


def finished(ckpt: dict[str, Any]) -> bool:
    """Whether a checkpoint is a finished run's: it says how it stopped, or (written before the
    stopping rule existed) it reached its epochs."""
    if "stop" in ckpt:
        return ckpt["stop"] is not None
    return int(ckpt["epoch"]) >= int(ckpt["train_config"]["epochs"])


def _feature_caches(model: AnomalyModel, data: ImageSet, val: ImageSet | None, built: list[FeatureCache], *,
                    device: str, enabled: bool, budget: int, spill_dir: Path, batch_size: int,
                    forward: Forward) -> tuple[FeatureCache | None, FeatureCache | None]:
    """(training, held-out) caches of the frozen features, or (None, None) where the model must run its network.

    Each cache is appended to ``built`` as soon as it exists, so the caller closes it whatever
    happens next. Memory maps left in ``spill_dir`` by a killed run of this process's rank are
    removed first; a cache that would not fit on the disk is not built (the network runs instead).
    """
    if not (enabled and model.caches_features):
        return None, None
    spill_dir.mkdir(parents=True, exist_ok=True)
    prefix = f"{SPILL_PREFIX}r{distributed.rank()}-"
    for stale in spill_dir.glob(f"{prefix}*"):
        shutil.rmtree(stale, ignore_errors=True)
    build = dict(device=device, batch_size=max(batch_size, 32), spill_dir=spill_dir, prefix=prefix, forward=forward)
    need = FeatureCache.bytes_needed(model, data.images[:1], device, forward) * (len(data) + (len(val) if val else 0))
    if need > budget and need > shutil.disk_usage(spill_dir).free * DISK_FRACTION:
        print(f"frozen features ({need / 2**30:.1f} GiB) fit neither the memory budget nor the disk: "
              "the frozen network runs at every step", file=sys.stderr)
        return None, None
    train_cache = FeatureCache.build(model, data.images, budget_bytes=budget, **build)
    built.append(train_cache)
    left = max(0, budget - (0 if train_cache.on_disk else train_cache.nbytes))
    if val is None or not len(val):
        return train_cache, None
    val_cache = FeatureCache.build(model, val.images, budget_bytes=left, **build)
    built.append(val_cache)
    return train_cache, val_cache


def _frozen_batches(model: AnomalyModel, data: ImageSet, cache: FeatureCache | None, device: str,
                    batch_size: int, forward: Forward) -> Iterator[list[torch.Tensor]]:
    """The frozen features of every training image, batch by batch (from the cache, or computed)."""
    if cache is not None:
        yield from cache.batches(batch_size, device)
    elif model.frozen_network is not None:
        model.eval()
        for i in range(0, len(data), batch_size):
            with forward():
                feats = model.frozen_features(to_batch(data.images[i : i + batch_size]).to(device))
            yield feats


def _trained_state(model: AnomalyModel) -> dict[str, torch.Tensor]:
    """A copy of the state that training changes (frozen parts left out), on the CPU."""
    prefixes = model.frozen_prefixes()
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()
            if not (prefixes and k.startswith(prefixes))}


class _Loop:
    """The epochs of one run: training steps, the held-out loss, the stopping rule, checkpoints."""

    def __init__(self, model: AnomalyModel, optimizers: list[torch.optim.Optimizer], model_cfg: ModelConfig,
                 train_cfg: TrainConfig, ckpt_path: Path, *, device: str, progress: bool, workers: int,
                 caches: tuple[FeatureCache | None, FeatureCache | None],
                 on_epoch_end: Callable[[dict[str, float]], None] | None, forward: Forward) -> None:
        self.model, self.optimizers, self.model_cfg, self.train_cfg = model, optimizers, model_cfg, train_cfg
        self.ckpt_path, self.device, self.progress, self.workers = ckpt_path, device, progress, workers
        self.train_cache, self.val_cache = caches
        self.on_epoch_end, self.forward = on_epoch_end, forward
        self.rank, self.world = distributed.rank(), distributed.world_size()

    def run(self, data: ImageSet, val: ImageSet | None, history: History, start: int, stopping: Stopping,
            best: dict[str, torch.Tensor] | None) -> None:
        model, cfg = self.model, self.train_cfg
        ddp = distributed.DistributedStep(model, self.device) if self.world > 1 else None  # after resuming
        epoch = start
        for epoch in range(start, cfg.epochs):
            if ddp is None:
                model.train()
            else:
                ddp.train()
                torch.manual_seed(distributed.rank_seed(cfg.seed, epoch, self.rank))
            model.on_epoch_start(epoch, cfg.epochs)
            t0 = time.perf_counter()
            entry: dict[str, float] = {"epoch": epoch + 1, **self._train_epoch(data, epoch, ddp)}
            if val is not None and len(val):
                held = distributed.from_rank0(self._held_out_loss(val), self.device)  # every rank decides alike
                entry.update({f"val_{k}": v for k, v in held.items()})
            entry["seconds"] = time.perf_counter() - t0
            history.append(entry)
            try:
                improved = "val_loss" in entry and stopping.update(epoch + 1, entry["val_loss"])
            except FloatingPointError as e:
                raise TrainingDiverged(f"{e}; the last good checkpoint is kept at {self.ckpt_path}") from e
            if improved and stopping.active:
                best = _trained_state(model)
            factor = stopping.lower_lr()
            if factor != 1.0:  # the optimisers' states (and so a resumed run) carry the lowered rates
                for opt in self.optimizers:
                    for group in opt.param_groups:
                        group["lr"] *= factor
            done = stopping.done() or epoch + 1 == cfg.epochs
            if done:
                if best is not None:
                    model.load_state_dict(best, strict=False)
                history.stop = stopping.record(epoch + 1, [h.get("val_loss") for h in history])
            self._save(epoch + 1, history, stopping, None if done else best)
            if self.on_epoch_end is not None:
                self.on_epoch_end(history[-1])
            if done:
                return
        if history.stop is None:  # resumed at the cap
            history.stop = stopping.record(epoch, [h.get("val_loss") for h in history])

    def _save(self, epoch: int, history: History, stopping: Stopping, best: dict[str, torch.Tensor] | None) -> None:
        if self.rank == 0:
            save_checkpoint(self.ckpt_path, self.model, self.optimizers, self.model_cfg, self.train_cfg, epoch=epoch,
                            history=list(history), stopping=stopping.state(), best=best, stop=history.stop,
                            feature_cache=history.feature_cache)
        distributed.barrier()  # the checkpoint is complete before any process goes on

    def _train_epoch(self, data: ImageSet, epoch: int, ddp: distributed.DistributedStep | None) -> dict[str, float]:
        """One pass over ``data``; the mean of each loss term over its images."""
        n, bs, rank, world = len(data), self.train_cfg.batch_size, self.rank, self.world
        order = epoch_order(n, self.train_cfg.seed, epoch)
        steps = [np.sort(order[i : i + bs]) for i in range(0, n, bs)]  # sorted reads suit memory-mapped arrays
        shards = [distributed.shard(idx, rank, world) for idx in steps]
        loader = batch_loader(ArrayImages(data.images), shards, device=self.device, workers=self.workers)
        bar = tqdm(zip(steps, shards, loader), total=len(steps), desc=f"epoch {epoch + 1}/{self.train_cfg.epochs}",
                   leave=False, disable=not (self.progress and rank == 0))
        totals: dict[str, float] = {}
        for step, (idx, shard, batch) in enumerate(bar):
            x = to_batch(batch.images.to(self.device, non_blocking=True))
            frozen = None if self.train_cache is None else self.train_cache.batch(shard, self.device)
            try:
                if ddp is not None:
                    stats = ddp(x, self.optimizers, frozen, self.forward)
                else:
                    stats = self.model.training_step(x, self.optimizers, self.forward, frozen)
            except FloatingPointError as e:
                kept = (f"the last good checkpoint is kept at {self.ckpt_path}" if self.ckpt_path.exists()
                        else "no checkpoint was written yet")
                raise TrainingDiverged(f"training diverged at epoch {epoch + 1}, step {step + 1} ({e}); {kept}") from e
            for k, v in stats.items():  # each the global batch's mean, in every process
                totals[k] = totals.get(k, 0.0) + v * len(idx)
            bar.set_postfix(loss=f"{stats['loss']:.4f}")
        return {k: v / n for k, v in totals.items()}

    def _held_out_loss(self, val: ImageSet) -> dict[str, float]:
        """The mean loss terms of the held-out normals, in eval mode, without gradients."""
        model, bs = self.model, self.train_cfg.batch_size
        model.eval()
        totals: dict[str, float] = {}
        cuda = [self.device] if torch.device(self.device).type == "cuda" else []
        with torch.random.fork_rng(devices=cuda), torch.no_grad(), self.forward():  # training's draws untouched
            for i in range(0, len(val), bs):
                x = to_batch(val.images[i : i + bs]).to(self.device)
                idx = np.arange(i, min(i + bs, len(val)))
                frozen = None if self.val_cache is None else self.val_cache.batch(idx, self.device)
                terms = model.loss_terms(x, frozen)
                for k, v in terms.items():
                    totals[k] = totals.get(k, 0.0) + float(v.float()) * len(idx)
        model.train()
        return {k: v / len(val) for k, v in totals.items()}
