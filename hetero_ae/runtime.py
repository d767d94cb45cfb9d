"""How a run executes on its machine: numeric precision, compilation, the input pipeline, CPU threads.

The paper trains in float32 on one RTX 3090 (Sec. IV-B1: 19.46 min per brain-MRI epoch) and
says nothing else about execution. What is offered here, each with a safe default:

- **precision** (``TrainConfig.precision``, a profile's ``precision``): ``fp32`` (default, the
  paper's) or ``bf16``: forward passes run under ``torch.autocast(bfloat16)``, so the
  networks' convolutions and matrix products run in bfloat16, but every network of a method
  hands its outputs on in float32 (``float32_outputs``), so that the distances, losses and
  anomaly maps that compare them are computed in float32 (on the CPU autocast would leave
  a cosine of bfloat16 features in bfloat16, which rounds a map to a handful of values).
  ``backward`` runs outside autocast; weights, gradients and optimiser state stay float32,
  and bfloat16 has float32's range, so no loss scaling is needed. It changes the numbers
  slightly, so it is part of a run's configuration and of its cache key. Prediction runs in
  the precision the model was trained in (``AnomalyModel.precision``).
- **compile** (a profile's ``torch_compile``, ``--compile``): ``torch.compile`` of the training loss
  and of prediction (``COMPILED_METHODS``), with inductor or a named backend; off by default. It computes the same
  function (to float rounding), so, like the device, it is not part of the cache key; each
  run's ``config.json`` records it. The first steps pay the compilation (minutes on a CPU).
- **input pipeline** (``batch_loader``): batches are sliced from the cached uint8 arrays (the
  data issue's), optionally in worker processes, copied to pinned memory on CUDA and moved
  as uint8 (a quarter of float32's bytes), then normalised on the device.
- **threads**: torch's default (one per core) in one process; under torchrun on the CPU,
  the cores are shared among the node's processes (``cpu_threads``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext

import numpy as np
import torch
from torch import nn

from .config import PRECISIONS
from .errors import ConfigError

COMPILED_METHODS = ("loss_terms", "predict", "predict_with_distance")  # what ``compiled`` compiles (when called)


def check_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    return precision


def autocast(device_type: str, precision: str) -> AbstractContextManager:
    """``torch.autocast`` to bfloat16 for ``bf16``, nothing for ``fp32``."""
    if check_precision(precision) == "fp32":
        return nullcontext()
    if device_type == "cuda" and not torch.cuda.is_bf16_supported(including_emulation=False):
        raise ConfigError("precision bf16 needs a GPU with bfloat16 support (Ampere or newer); use fp32")
    return torch.autocast(device_type, dtype=torch.bfloat16)


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


def _to_float32(value: object) -> object:
    if isinstance(value, torch.Tensor):
        return value.float() if value.is_floating_point() and value.dtype != torch.float32 else value
    if isinstance(value, (list, tuple)):
        return type(value)(_to_float32(v) for v in value)
    return value


def as_float32(value: object) -> object:
    """While autocast is on, ``value``'s floating tensors (alone or in lists and tuples) as float32; else ``value``."""
    if torch.is_autocast_enabled("cpu") or torch.is_autocast_enabled("cuda"):
        return _to_float32(value)
    return value


def float32_outputs(module: nn.Module, inputs: object, output: object) -> object:
    """A forward hook: the module's outputs through ``as_float32`` (each network of a bf16 model has one)."""
    return as_float32(output)


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


class _Batches(torch.utils.data.Dataset):
    """Batch ``k`` = the uint8 images at ``batches[k]`` as one (b, H, W, 3) tensor."""

    def __init__(self, images: np.ndarray, batches: Sequence[np.ndarray]) -> None:
        self.images, self.batches = images, batches

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, k: int) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(self.images[self.batches[k]]))


def batch_loader(images: np.ndarray, batches: Sequence[np.ndarray], device: str,
                 workers: int = 0) -> torch.utils.data.DataLoader:
    """The uint8 batches ``images[batches[0]], images[batches[1]], ...`` in that order.

    ``workers`` processes slice ahead of the model; on CUDA the batches come in pinned memory,
    so that ``.to(device, non_blocking=True)`` overlaps the copy with computation. Iterating it
    leaves torch's global random state as it was (stochastic methods draw from it).
    """
    return torch.utils.data.DataLoader(
        _Batches(images, batches), batch_size=None, shuffle=False, num_workers=workers,
        pin_memory=torch.device(device).type == "cuda", prefetch_factor=2 if workers else None,
        generator=torch.Generator(),  # its own: a loader draws a base seed, which must not come from torch's RNG
    )
