"""One registry of anomaly-detection methods (DESIGN 9): name -> class, and the interface they share.

It imports no implementation: each method module registers its class with ``register``, and
``hetero_ae.methods`` imports them all and builds models by name.

Every method is an ``AnomalyModel``: an ``nn.Module`` with its loss (``loss_terms``) and its
anomaly map (``anomaly_map``, ``predict``), as anomalib splits a method into a torch model, a
loss and an anomaly map. It trains on normal images only and returns, for any batch, an
anomaly map at the input size; the image score is the map's maximum unless the method says
otherwise. Metrics, heatmaps and caching treat all methods alike.

How it is trained is the training layer's (``hetero_ae.training``): the loop, the precision
(``hetero_ae.model.precision``), DistributedDataParallel and checkpoints. A method declares
only what its published recipe fixes: its optimisers (``configure_optimizers``), which
parameters learn (``parameter_groups``), its phases (``on_epoch_start``) and its step
(``training_step``: by default one optimiser minimising ``loss_terms``; the GANs override it
with their alternating updates and say so with ``trains_under_ddp = False``). A method that
learns no weight (``trains_weights = False``, PatchCore) has no step: its one fit is
``fit_statistics``.
"""

from __future__ import annotations

import dataclasses
import numbers
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from contextlib import nullcontext
from typing import Any, ClassVar, TypeVar

import numpy as np
import torch
from torch import Tensor, nn

from ..config import ModelConfig, add_method_name
from ..errors import ConfigError
from ..model.anomaly_map import image_score
from ..model.precision import Forward

METHODS: dict[str, type["AnomalyModel"]] = {}
P = TypeVar("P")


def register(name: str, *, display_name: str = "", paper: str = "", paper_row: int | None = None
             ) -> Callable[[type["AnomalyModel"]], type["AnomalyModel"]]:
    """Register a method class as ``name`` where it is defined, with how the report names it
    (``display_name``), the publication it implements (``paper``: "authors, venue year"; its module
    docstring gives the full reference) and its row in the paper's Table I (``paper_row``, 1 = the
    first; None for a method beyond the paper, which the tables put after the paper's)."""
    def add(cls: type[AnomalyModel]) -> type[AnomalyModel]:
        assert name not in METHODS, f"method {name!r} registered twice"
        METHODS[name] = cls
        add_method_name(name)  # a no-op for the package's own methods, which config already lists
        cls.method_name, cls.display_name, cls.paper, cls.paper_row = name, display_name or name, paper, paper_row
        return cls

    return add



def finite(loss: Tensor, what: str) -> Tensor:
    """``loss`` itself, or FloatingPointError if it is NaN or infinite (the trainer keeps the last checkpoint)."""
    if not torch.isfinite(loss):
        raise FloatingPointError(f"non-finite {what} loss {loss.item()}")
    return loss


class AnomalyModel(nn.Module):
    """Interface every method implements.

    A method's own hyper-parameters are a frozen dataclass in its module, its paper's values as
    defaults, named by the class attribute ``hyper_parameters`` (``method_class("rd4ad").hyper_parameters()``
    holds RD4AD's defaults); ``from_config`` reads them from ``cfg.params`` with ``read_hyper_parameters``.
    """

    method_name: str = ""
    display_name: str = ""  # how tables and figures name it (``register``)
    paper: str = ""  # the publication it implements, "authors, venue year" (``register``)
    paper_row: int | None = None  # its row in the paper's Table I; None beyond the paper (``register``)
    paper_backbone: str | None = None  # the pretrained network the method's paper uses, if any
    # The frozen dataclass of the method's own hyper-parameters (``read_hyper_parameters``); None for a
    # method whose settings are all ModelConfig fields (Hetero-AE)
    hyper_parameters: ClassVar[type | None] = None
    leaves_parameters_unused: bool = False  # True where the loss leaves some trainable parameters without a gradient
    # The attribute holding a frozen pretrained network (encoder, teacher) whose features depend on
    # the image alone: training may compute them once per run (``hetero_ae.training.feature_cache``).
    frozen_network: str | None = None
    size_multiple: int = 32  # input sizes it takes are multiples of this (``config.check_image_size``)
    size_power_of_two: bool = False  # and powers of two (the DCGAN-style networks)
    stops_early: bool = True  # False where the training schedule needs every epoch (phases tied to the cap)
    # Where the Gaussian smoothing of its anomaly maps is set (``methods.with_map_sigma``): "model" for
    # ``ModelConfig.map_sigma`` (Hetero-AE), "params" for its hyper-parameter ``map_sigma``; None when it
    # makes no smoothed map. Default: "params" if its hyper-parameters have that field, else None.
    map_sigma_in: ClassVar[str | None] = None
    # False for a method that learns no weight (a memory bank): training is then one pass of
    # ``fit_statistics`` over the training normals' frozen features, with no optimiser, epoch or rule
    trains_weights: bool = True
    # False where DistributedDataParallel cannot train it here: a method with its own ``training_step``
    # (several optimisers, alternating updates) sets it; DDP runs only the default step's one loss
    trains_under_ddp: ClassVar[bool] = True
    # The ``ModelConfig`` fields it reads beyond method, encoder, encoder_weights, image_size and params
    # (Hetero-AE's architecture and Eq. 4 settings); the command line refuses the others' options for it
    config_fields: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def from_config(cls, cfg: ModelConfig) -> "AnomalyModel":
        raise NotImplementedError

    @classmethod
    def smoothing_setting(cls) -> str | None:
        """``map_sigma_in``, or "params" where it is unset and the hyper-parameters have ``map_sigma``."""
        if cls.map_sigma_in is not None:
            return cls.map_sigma_in
        hp = cls.hyper_parameters
        return "params" if hp is not None and "map_sigma" in {f.name for f in dataclasses.fields(hp)} else None

    @classmethod
    def size_rule(cls, cfg: ModelConfig) -> dict[str, Any]:
        """What ``cfg.image_size`` must be for this method: ``config.check_image_size``'s keywords,
        known before the model is built."""
        return {"multiple": cls.size_multiple, "power_of_two": cls.size_power_of_two}

    def loss(self, x: Tensor) -> Tensor:
        """The training objective on a batch of normal images."""
        raise NotImplementedError

    def loss_terms(self, x: Tensor, frozen: list[Tensor] | None = None) -> dict[str, Tensor]:
        """``{"loss": the objective, ...its named terms}`` of a batch; ``frozen``: its cached frozen features.

        Methods with a ``frozen_network`` accept ``loss(x, frozen)``; the trainer passes ``frozen``
        only to those (``caches_features``). History records every term of every epoch.
        """
        return {"loss": self.loss(x) if frozen is None else self.loss(x, frozen)}

    @property
    def caches_features(self) -> bool:
        """Whether the frozen network's features of an image are fixed for the whole of training."""
        return self.frozen_network is not None

    def frozen_features(self, x: Tensor) -> list[Tensor]:
        """The frozen network's feature maps of ``x`` (B, 3, H, W), computed without gradients."""
        assert self.frozen_network is not None, f"{self.method_name} has no frozen network"
        with torch.no_grad():
            return list(getattr(self, self.frozen_network)(x))

    def fit_statistics(self, frozen_batches: Iterable[list[Tensor]]) -> None:
        """Called once before the first epoch with the frozen features of every training batch
        (methods that calibrate on the training normals, e.g. Hetero-AE's feature scale; the whole fit
        of a method that ``trains_weights`` not, e.g. PatchCore's memory bank); no-op here."""

    def frozen_prefixes(self) -> tuple[str, ...]:
        """State-dict prefixes of parts that are never trained (not stored in checkpoints)."""
        return ()

    def parameter_groups(self, lr: float) -> list[dict]:
        return [{"params": [p for p in self.parameters() if p.requires_grad], "lr": lr}]

    def configure_optimizers(self, lr: float) -> list[torch.optim.Optimizer]:
        return [torch.optim.Adam(self.parameter_groups(lr), lr=lr)]

    def on_epoch_start(self, epoch: int, epochs: int) -> None:
        """Called before each epoch (0-based); methods with training phases switch here."""

    def training_step(self, x: Tensor, optimizers: list[torch.optim.Optimizer], forward: Forward = nullcontext,
                      frozen: list[Tensor] | None = None) -> dict[str, float]:
        """One step on the batch ``x`` (B, 3, H, W): by default the one optimiser of ``configure_optimizers``
        minimises ``loss_terms(x, frozen)["loss"]``.

        ``optimizers``: those of ``configure_optimizers``; ``forward``: the run's precision context,
        entered around forward passes and losses only, never around ``backward``; ``frozen``: the
        batch's cached frozen features (methods that ``caches_features``), else None. Returns every
        loss term as a float; FloatingPointError for a NaN or infinite loss (the loop keeps the last
        checkpoint). A method whose recipe is not one optimiser and one loss overrides this and sets
        ``trains_under_ddp = False``.
        """
        (opt,) = optimizers
        opt.zero_grad(set_to_none=True)
        with forward():
            terms = self.loss_terms(x, frozen)
            loss = finite(terms["loss"].float(), "training")
        loss.backward()
        opt.step()
        values = torch.stack([v.detach().float() for v in terms.values()]).tolist()  # one device sync, not one per term
        return dict(zip(terms, values))

    def anomaly_map(self, x: Tensor) -> Tensor:
        """(B, H, W) anomaly map at the input size."""
        raise NotImplementedError

    def predict(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(maps (B, H, W), image scores (B,)); by default the score is the map's maximum (Eq. 8)."""
        maps = self.anomaly_map(x)
        return maps, image_score(maps)

    @property
    def has_feature_distance(self) -> bool:
        """Whether ``feature_distance`` gives a value (a ``feature_distance`` column in ``scores.csv``)."""
        return False

    def feature_distance(self, x: Tensor) -> Tensor | None:
        """Per-image distance (B,) between the features the method compares, for Fig. 6's boxplots.

        ``None`` (the default) means the method defines none (reconstruction methods, the
        baselines); evaluation then writes no ``feature_distance`` column.
        """
        return None

    def predict_with_distance(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor | None]:
        """(maps, scores, ``feature_distance`` or None) of a batch.

        Methods with a distance override this to share one forward pass; the default costs a
        method without one nothing beyond ``predict``.
        """
        maps, scores = self.predict(x)
        return maps, scores, self.feature_distance(x)

    def normalize_scores(self, scores: np.ndarray, reference: np.ndarray | None = None) -> np.ndarray:
        """Applied once to the scores of a whole test set (never per batch); identity by default.

        ``reference`` (default: ``scores``) fixes the transform, so that other images (held-out
        normals) are put on the same scale as the test set.
        """
        return scores


def _reject_unknown(method: str, given: Mapping[str, Any], known: Iterable[str]) -> None:
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise ConfigError(f"{method}: unknown hyper-parameter(s) {unknown}; known: {sorted(known)}")


def read_hyper_parameters(cls: type[P], method: str, given: Mapping[str, Any]) -> P:
    """``cls``, a method's frozen dataclass of hyper-parameters, with the values ``given`` (a profile's
    ``params``, as ``ModelConfig.params`` holds them) in place of its defaults.

    ConfigError naming ``method`` for a key that is no field of ``cls`` (listing the fields), or naming
    the field for a value of another type than the field's. An int is taken for a float, a list for a
    tuple (YAML has no tuples); a bool is not taken for a number.
    """
    fields = [f.name for f in dataclasses.fields(cls)]
    _reject_unknown(method, given, fields)
    hints = typing.get_type_hints(cls)
    values = {}
    for name, value in given.items():
        try:
            values[name] = _as_type(hints[name], value)
        except TypeError:
            want = hints[name].__name__ if isinstance(hints[name], type) else str(hints[name])
            raise ConfigError(f"{method}: hyper-parameter {name} must be {want}, got {value!r}") from None
    return cls(**values)


def _as_type(hint: Any, value: Any) -> Any:
    """``value`` as a value of the type ``hint`` (a scalar type, a tuple, or X | None); TypeError if it is none."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (inner,) = (a for a in args if a is not type(None))  # X | None; no other unions are used
        return _as_type(inner, value)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise TypeError
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_as_type(args[0], v) for v in value)
        if len(value) != len(args):
            raise TypeError
        return tuple(_as_type(a, v) for a, v in zip(args, value))
    if isinstance(value, bool) and hint is not bool:
        raise TypeError
    if hint is float and isinstance(value, numbers.Real):
        return float(value)
    if hint is int and isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, hint):
        return value
    raise TypeError
