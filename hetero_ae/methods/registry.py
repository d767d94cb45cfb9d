"""One registry of anomaly-detection methods (DESIGN 9): name -> class, and the interface they share.

It imports no implementation: each method module registers its class with ``register``, and
``hetero_ae.methods`` imports them all and builds models by name.

Every method is an ``AnomalyModel``: an ``nn.Module`` with its loss (``loss_terms``) and its
anomaly map (``anomaly_map``, ``predict``), as anomalib splits a method into a torch model, a
loss and an anomaly map. It trains on normal images only and returns, for any batch, an
anomaly map at the input size; the image score is the map's maximum unless the method says
otherwise. Metrics, heatmaps and caching treat all methods alike.

How it is trained is the training layer's (``hetero_ae.training``): the step, the precision
(``hetero_ae.model.precision``), DistributedDataParallel and checkpoints. A method declares
only what its published recipe fixes: its optimisers (``configure_optimizers``), which
parameters learn (``parameter_groups``), its phases (``on_epoch_start``), and, where the recipe
is not one optimiser minimising one loss (the GANs), its own ``training_step(x, optimizers,
forward)``, which runs each forward pass inside ``forward()`` (the precision's context) and
returns its loss terms as floats.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ..config import ModelConfig, add_method_name
from ..errors import ConfigError
from ..model.anomaly_map import image_score

METHODS: dict[str, type["AnomalyModel"]] = {}


def register(name: str, *, display_name: str = "", paper_row: int | None = None
             ) -> Callable[[type["AnomalyModel"]], type["AnomalyModel"]]:
    """Register a method class as ``name`` where it is defined, with how the report names it
    (``display_name``) and its row in the paper's Table I (``paper_row``, 1 = the first; None for a
    method beyond the paper, which the tables put after the paper's)."""
    def add(cls: type[AnomalyModel]) -> type[AnomalyModel]:
        assert name not in METHODS, f"method {name!r} registered twice"
        METHODS[name] = cls
        add_method_name(name)  # a no-op for the package's own methods, which config already lists
        cls.method_name, cls.display_name, cls.paper_row = name, display_name or name, paper_row
        return cls

    return add



def finite(loss: Tensor, what: str) -> Tensor:
    """``loss`` itself, or FloatingPointError if it is NaN or infinite (the trainer keeps the last checkpoint)."""
    if not torch.isfinite(loss):
        raise FloatingPointError(f"non-finite {what} loss {loss.item()}")
    return loss


class AnomalyModel(nn.Module):
    """Interface every method implements."""

    method_name: str = ""
    display_name: str = ""  # how tables and figures name it (``register``)
    paper_row: int | None = None  # its row in the paper's Table I; None beyond the paper (``register``)
    paper_backbone: str | None = None  # the pretrained network the method's paper uses, if any
    leaves_parameters_unused: bool = False  # True where the loss leaves some trainable parameters without a gradient
    # The attribute holding a frozen pretrained network (encoder, teacher) whose features depend on
    # the image alone: training may compute them once per run (``hetero_ae.training.feature_cache``).
    frozen_network: str | None = None
    size_multiple: int = 32  # input sizes it takes are multiples of this (``config.check_image_size``)
    size_power_of_two: bool = False  # and powers of two (the DCGAN-style networks)
    stops_early: bool = True  # False where the training schedule needs every epoch (phases tied to the cap)
    # False for a method that learns no weight (a memory bank): training is then one pass of
    # ``fit_statistics`` over the training normals' frozen features, with no optimiser, epoch or rule
    trains_weights: bool = True

    @classmethod
    def from_config(cls, cfg: ModelConfig) -> "AnomalyModel":
        raise NotImplementedError

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


def merge_params(method: str, defaults: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    """A method's hyper-parameters: its paper values overridden by ``given`` (from a profile)."""
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        raise ConfigError(f"{method}: unknown hyper-parameter(s) {unknown}; known: {sorted(defaults)}")
    return {**defaults, **given}
