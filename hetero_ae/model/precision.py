"""How forward passes run in a numeric precision: float32 (the paper's) or bfloat16 autocast.

The paper trains in float32 (Sec. IV-B1) and says nothing else about precision. With ``bf16``
(``TrainConfig.precision``) forward passes run under ``torch.autocast(bfloat16)``, so the
networks' convolutions and matrix products run in bfloat16, but every network of a method
hands its outputs on in float32 (``float32_outputs``), so that the distances, losses and
anomaly maps that compare them are computed in float32 (on the CPU autocast would leave a
cosine of bfloat16 features in bfloat16, which rounds a map to a handful of values).
``backward`` runs outside autocast; weights, gradients and optimiser state stay float32, and
bfloat16 has float32's range, so no loss scaling is needed.

A model holds no precision: whoever runs it (the training loop, evaluation) enters
``running_in(model, precision)`` and opens its ``forward`` context around forward passes.
It lives here, below the methods, because a network that hands on outputs outside its
``forward`` (``methods.dcgan``) calls ``as_float32`` itself.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext

import torch
from torch import nn

from ..config import Precision
from ..errors import ConfigError

Forward = Callable[[], AbstractContextManager]  # a fresh context for one forward pass


def autocast(device_type: str, precision: str) -> AbstractContextManager:
    """``torch.autocast`` to bfloat16 for ``bf16``, nothing for ``fp32``; ConfigError for another name,
    or for bf16 on a GPU without bfloat16."""
    if Precision.check(precision) == Precision.FP32:
        return nullcontext()
    if device_type == "cuda" and not torch.cuda.is_bf16_supported(including_emulation=False):
        raise ConfigError("precision bf16 needs a GPU with bfloat16 support (Ampere or newer); use fp32")
    return torch.autocast(device_type, dtype=torch.bfloat16)


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
    """A forward hook: the module's outputs through ``as_float32``."""
    return as_float32(output)


@contextmanager
def running_in(model: nn.Module, precision: str) -> Iterator[Forward]:
    """For the duration, ``model``'s networks (its children) hand on float32 under autocast; yields
    ``forward``, which opens the context each forward pass runs in (bf16 autocast, or nothing).

    The device is the model's (its first parameter's); move the model first. The hooks are
    removed on the way out, so the model leaves as it came.
    """
    Precision.check(precision)
    device_type = next(model.parameters(), torch.empty(0)).device.type
    hooks = [] if precision == Precision.FP32 else [c.register_forward_hook(float32_outputs) for c in model.children()]
    try:
        yield lambda: autocast(device_type, precision)
    finally:
        for hook in hooks:
            hook.remove()
