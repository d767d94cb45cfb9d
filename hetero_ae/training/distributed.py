"""Multi-process training with PyTorch's DistributedDataParallel, launched by ``torchrun`` (DESIGN 7).

``torchrun --nproc-per-node N -m hetero_ae train ...`` (or ``run ...``) starts N processes; each
joins the process group that torchrun's environment describes (``WORLD_SIZE``, ``RANK``,
``LOCAL_RANK``, the rendezvous address), on ``cuda:LOCAL_RANK`` with NCCL or on the CPU with
gloo. Without torchrun, or with one process, nothing here does anything and training is the
plain one-process loop.

What one step computes (``DistributedStep``):
- the configured batch size is the *global* batch: each global batch of the epoch's order is
  cut into N contiguous parts (``shard``), so N processes together see exactly the images one
  process sees in that step. A batch with fewer images than processes (an epoch's last, or
  any batch when ``batch_size < N``) is given whole to every process;
- each process's mean loss is weighted by its share of the global batch before DDP averages
  the gradients, so the averaged gradient is that of the global batch's mean loss, as in one
  process, also when the parts differ in size;
- the logged loss is the global batch's mean (all-reduced), and a NaN on any process stops
  every process at the same step.

Differences from one process, by design: BatchNorm layers in training mode normalise with the
statistics of each process's part of the batch, not of the whole batch, as DDP does by default
(torch's SyncBatchNorm would share them, but it runs on GPUs only, so it is not offered here);
running statistics are rank 0's, broadcast to the others before every forward pass.
Stochastic methods draw their noise from a torch RNG reseeded at every epoch from (seed,
epoch, rank), so processes draw different noise and a resumed run continues exactly.

Only methods that train through the default step (``AnomalyModel.training_step``: one
optimiser, the loss of ``loss_terms``) run under DDP: their loss goes through DDP's forward via a small
adapter module. Methods with their own step (the GANs: several optimisers and alternating
updates) are refused with a clear error; train them in one process.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from ..errors import UserError
from ..methods.registry import AnomalyModel, finite
from ..model.precision import Forward
from .launch import launched

# How long a collective waits for the slowest process: rank 0 alone evaluates a run while the
# others wait in the next run's set-up (``hetero-ae run-profile``), longer than the defaults (10/30 min).
GROUP_TIMEOUT = timedelta(hours=2)


def world_size() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1


def rank() -> int:
    """This process's rank: in the process group, else torchrun's ``RANK`` (before or after the group), else 0."""
    return dist.get_rank() if dist.is_initialized() else int(os.environ.get("RANK", "0"))


def is_main() -> bool:
    """Whether this process logs and writes files (rank 0, or the only process)."""
    return rank() == 0


def barrier() -> None:
    """Wait for every process (nothing to wait for in one process)."""
    if world_size() > 1:
        dist.barrier()


def from_rank0(values: dict[str, float], device: str) -> dict[str, float]:
    """Rank 0's ``values`` on every process (as they are in one process), so that all decide alike.

    The held-out loss goes through this: each process's BatchNorm statistics end an epoch on
    its own shard, so each would measure a slightly different loss and might stop at another epoch.
    """
    if world_size() == 1:
        return values
    keys = sorted(values)
    t = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=device)
    dist.broadcast(t, src=0)
    return dict(zip(keys, t.tolist()))


def local_device(device: str) -> str:
    """The device of this process: ``cuda`` becomes ``cuda:LOCAL_RANK`` under torchrun."""
    kind = torch.device(device).type
    if not launched():
        return device
    if kind == "cpu":
        return "cpu"
    if kind != "cuda":
        raise UserError(f"multi-process training runs on cpu (gloo) or cuda (NCCL), not {device!r}")
    if torch.device(device).index is not None:
        raise UserError(f"under torchrun each process uses cuda:LOCAL_RANK; pass --device cuda, not {device!r}")
    return f"cuda:{int(os.environ['LOCAL_RANK'])}"


@contextmanager
def process_group(device: str) -> Iterator[str]:
    """Join torchrun's process group for the duration (when there is one); yields this process's device.

    A group that the caller already set up is used as it is and left to the caller. There is no
    barrier on the way out: the other processes may end while rank 0 still evaluates and writes
    (an NCCL barrier would time out, after 10 minutes, on a long evaluation).
    """
    device = local_device(device)
    if not launched() or dist.is_initialized():
        yield device
        return
    if torch.device(device).type == "cuda":
        torch.cuda.set_device(device)
        dist.init_process_group("nccl", device_id=torch.device(device), timeout=GROUP_TIMEOUT)
    else:
        dist.init_process_group("gloo", timeout=GROUP_TIMEOUT)
    try:
        yield device
    finally:
        dist.destroy_process_group()


def shard(batch: np.ndarray, rank: int, world: int) -> np.ndarray:
    """Process ``rank``'s part of a global batch: contiguous parts whose sizes differ by at most one.

    A batch with fewer images than processes goes whole to every process.
    """
    if world == 1 or len(batch) < world:
        return batch
    return np.array_split(batch, world)[rank]


def rank_seed(seed: int, epoch: int, rank: int) -> int:
    """The torch seed of one process in one epoch (noise of stochastic methods under DDP)."""
    return int(np.random.SeedSequence([seed % 2**32, epoch % 2**32, rank]).generate_state(1)[0])


def supports(method: str) -> bool:
    """Whether DDP here can train ``method``: it trains weights, through the default training step
    (its ``trains_under_ddp``)."""
    from ..methods import method_class

    cls = method_class(method)
    return cls.trains_weights and cls.trains_under_ddp


def check_supported(model: AnomalyModel) -> None:
    """A clear error for methods that DDP cannot train here (those with their own training step, and those
    that learn no weight: their one fit runs in one process)."""
    if not model.trains_weights:
        raise UserError(f"{model.method_name} learns no weight (one fit of a memory bank): nothing for DDP to train; "
                        "run it in one process (python -m hetero_ae, not torchrun)")
    if not supports(model.method_name):
        raise UserError(
            f"{model.method_name}: multi-process (DDP) training supports methods with the default training step "
            f"(one optimiser, the loss of loss(x)); {model.method_name} has its own training step (several "
            f"optimisers); train it in one process (python -m hetero_ae, not torchrun)"
        )


class LossForward(nn.Module):
    """``forward(x, frozen) = model.loss_terms(x, frozen)["loss"]``, so that the loss goes through DDP's forward."""

    def __init__(self, model: AnomalyModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor, frozen: list[Tensor] | None = None) -> Tensor:
        return self.model.loss_terms(x, frozen)["loss"]


class DistributedStep:
    """The default training step for one process of several (module docstring)."""

    def __init__(self, model: AnomalyModel, device: str) -> None:
        check_supported(model)
        dev = torch.device(device)
        self.world = world_size()
        self.ddp = DistributedDataParallel(
            LossForward(model), device_ids=[dev.index] if dev.type == "cuda" else None,
            find_unused_parameters=model.leaves_parameters_unused,
        )

    def train(self) -> None:
        self.ddp.train()

    def __call__(self, x: Tensor, optimizers: list[torch.optim.Optimizer], frozen: list[Tensor] | None,
                 forward: Forward) -> dict[str, float]:
        (opt,) = optimizers
        opt.zero_grad(set_to_none=True)
        with forward():
            loss = self.ddp(x, frozen).float()  # the bookkeeping below in float32, whatever the precision
        n = x.shape[0]
        sums = torch.stack([loss.detach() * n, loss.new_tensor(float(n))])
        dist.all_reduce(sums)  # (sum of n * loss, images in the global batch, counting copies)
        mean = finite(sums[0] / sums[1], "training")  # the same on every process: all stop together
        (loss * (self.world * n / sums[1])).backward()  # DDP divides by world: the global mean's gradient
        opt.step()
        return {"loss": mean.item()}
