"""How a run executes on its machine: numeric precision, compilation, the input pipeline, CPU threads.

The paper trains in float32 on one RTX 3090 (Sec. IV-B1: 19.46 min per brain-MRI epoch) and
says nothing else about execution. What is offered here, each with a safe default:

- **precision** (``TrainConfig.precision``, a profile's ``precision``): ``fp32`` (default, the
  paper's) or ``bf16`` autocast (``hetero_ae.model.precision``). It changes the numbers
  slightly, so it is part of a run's configuration and of its cache key. Prediction runs in
  the precision the model was trained in, unless ``--precision`` says otherwise.
- **compile** (a profile's ``torch_compile``, ``--compile``): ``torch.compile`` of the training loss
  and of prediction (``COMPILED_METHODS``), with inductor or a named backend; off by default. It computes the same
  function (to float rounding), so, like the device, it is not part of the cache key; each
  run's ``config.json`` records it. The first steps pay the compilation (minutes on a CPU).
- **input pipeline** (``data.batches``): how many processes prepare batches ahead of the model
  (``loader_workers``).
- **threads**: torch's default (one per core) in one process; under torchrun on the CPU,
  the cores are shared among the node's processes (``cpu_threads``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from ..errors import ConfigError

COMPILED_METHODS = ("loss_terms", "predict", "predict_with_distance")  # what ``compiled`` compiles (when called)


def check_device(device: str) -> str:
    """``device`` when this machine has it, else ConfigError naming it and what to use instead."""
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError, TypeError):
        raise ConfigError(f"device {device!r} is not a torch device; use cpu, cuda, cuda:N or mps") from None
    if dev.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ConfigError(f"device {device!r}: this machine has no CUDA GPU that torch can use; use --device cpu")
        if dev.index is not None and dev.index >= count:
            raise ConfigError(f"device {device!r}: this machine has {count} CUDA GPU(s), cuda:0 to cuda:{count - 1}")
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"device {device!r}: this machine has no Apple GPU (MPS); use --device cpu")
    elif dev.type not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"device {device!r}: only cpu, cuda and mps devices are supported")
    return device


def compile_backend(setting: bool | str | None) -> str | None:
    """The ``torch.compile`` backend a setting asks for: None (off), ``inductor`` for True, or the one named."""
    if setting in (None, False, "none", "false", ""):
        return None
    if setting is True or setting == "true":
        return "inductor"
    import torch._dynamo

    known = torch._dynamo.list_backends(exclude_tags=())
    if setting not in known:
        raise ConfigError(f"compile must be true, false or a torch.compile backend {sorted(known)}, got {setting!r}")
    return str(setting)


@contextmanager
def compiled(model: nn.Module, backend: str | None) -> Iterator[nn.Module]:
    """``model`` with its loss and prediction compiled by ``backend`` for the duration (None: as it is).

    The compiled functions are instance attributes over the class's methods; they are removed
    on the way out, so the model leaves as it came (checkpoints hold only its state).
    """
    if backend is None:
        yield model
        return
    for name in COMPILED_METHODS:
        setattr(model, name, torch.compile(getattr(model, name), backend=backend))
    try:
        yield model
    finally:
        for name in COMPILED_METHODS:
            model.__dict__.pop(name, None)


def local_world_size() -> int:
    """Processes torchrun started on this machine (1 without torchrun)."""
    return int(os.environ.get("LOCAL_WORLD_SIZE", "1"))


def cpu_threads(requested: int = 0) -> int:
    """Torch threads for this process: ``requested``, else the machine's cores shared among its processes."""
    if requested > 0:
        return requested
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, cores // local_world_size())


def helper_processes() -> int:
    """Worker processes to run beside this one: up to 4, leaving it a core of its share of the machine."""
    return max(0, min(4, cpu_threads() - 1))


def loader_workers(device: str, requested: int | None = None) -> int:
    """Processes that prepare training batches: ``requested``, else none on the CPU (the model
    needs every core) and ``helper_processes()`` on CUDA."""
    if requested is not None:
        if requested < 0:
            raise ConfigError(f"workers must be 0 or more, got {requested}")
        return requested
    return helper_processes() if torch.device(device).type == "cuda" else 0
