"""When a run stops: a rule on the held-out normal images' loss, never on test labels (DESIGN 3.10).

The paper trains a fixed 200 epochs (Sec. IV-B1) and says nothing about convergence. Here a
run may instead stop when the loss of its held-out *normal* images (the release's ``val``
split, or a fraction of the training normals) has not improved for ``patience`` epochs, an
improvement being a fall of more than ``min_delta * |best|`` (relative, so one setting fits
losses of any scale; the absolute value because Eq. 4's loss is negative). ``epochs`` is then
a cap. The run keeps the weights of its best held-out epoch: with ``keep="best"`` the epoch that
last beat ``min_delta`` (a later epoch may be lower by less than that), with ``keep="lowest"`` the
epoch whose held-out loss is the lowest of all, whatever ``min_delta``.

The same counter may also lower the learning rate on the plateau (``lr_patience`` > 0, the schedule
of Keras' and PyTorch's ``ReduceLROnPlateau``, counted the rule's way so that one definition of an
improvement serves both): after every ``lr_patience`` epochs without an improvement, short of the
rule's ``patience``, each optimiser's learning rate is multiplied by ``lr_factor``. With
``lr_patience`` 5 and ``patience`` 15, a run lowers its rate after 5 and 10 epochs without
improvement and stops after 15. (PyTorch's own class is not used: its relative threshold moves
the wrong way for a negative loss such as Eq. 4's.)

Every run records how it ended (``Stopping.record``):
- ``plateau``: the rule fired; the held-out loss had converged;
- ``cap``: the rule was on but the cap came first (a table marks such a cell as not converged);
- ``fixed``: no rule (``patience`` 0, a method whose schedule needs all its epochs, or no
  held-out images): the run trained the epochs it was given. It counts as converged when its
  held-out loss had plateaued by then anyway: no improvement by more than ``CHECK_MIN_DELTA``
  of the best over its last ``CHECK_PATIENCE`` epochs (the paper's fixed 200 epochs can pass).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

CHECK_PATIENCE, CHECK_MIN_DELTA = 10, 0.005  # the plateau a fixed-schedule run must show to count as converged
FALLING_SHARE, FALLING_P, FALLING_MIN_EPOCHS = 0.2, 0.05, 3  # ``still_falling``: the last fifth, one-sided p, points
FALLING_FRACTION = 0.01  # ... and a fall over it of at least 1 % of the run's whole fall


@dataclass
class Stopping:
    """The state of the stopping rule; ``update`` after each epoch, ``done`` says whether to stop."""

    patience: int
    min_delta: float
    cap: int
    best: float = math.inf
    best_epoch: int | None = None
    bad_epochs: int = 0
    keep: str = "best"  # which epoch's weights the run keeps (module docstring)
    lowest: float = math.inf
    lowest_epoch: int | None = None
    lr_patience: int = 0  # lower the learning rate after this many epochs without improvement; 0 = never
    lr_factor: float = 0.1
    lr_steps: int = 0  # how many times it was lowered

    @property
    def active(self) -> bool:
        return self.patience > 0

    def update(self, epoch: int, value: float) -> bool:
        """Record the held-out loss of ``epoch`` (1-based); True when its weights are now the ones to keep."""
        if not math.isfinite(value):
            raise FloatingPointError(f"non-finite held-out loss {value} at epoch {epoch}")
        lowest = value < self.lowest
        if lowest:
            self.lowest, self.lowest_epoch = value, epoch
        if self.best_epoch is None or self.best - value > self.min_delta * abs(self.best):
            self.best, self.best_epoch, self.bad_epochs = value, epoch, 0
            return True if self.keep == "best" else lowest
        self.bad_epochs += 1
        return lowest and self.keep == "lowest"

    def done(self) -> bool:
        return self.active and self.bad_epochs >= self.patience

    def lower_lr(self) -> float:
        """After ``update``: the factor to multiply the learning rates by now (1.0: leave them); counts the step."""
        if (self.active and self.lr_patience > 0 and self.bad_epochs > 0 and not self.done()
                and self.bad_epochs % self.lr_patience == 0):
            self.lr_steps += 1
            return self.lr_factor
        return 1.0

    def state(self) -> dict[str, Any]:
        return asdict(self)

    def record(self, epochs_run: int, val_losses: list[float | None] | None = None) -> dict[str, Any]:
        """How the run ended: epochs run, cap, best epoch, reason, which weights were kept, converged.

        ``val_losses``: the held-out loss of every epoch (None where there was none), for the
        plateau check of a fixed-schedule run.
        """
        reason = "fixed" if not self.active or self.best_epoch is None else "plateau" if self.done() else "cap"
        kept = "best" if reason != "fixed" else "last"
        converged = reason == "plateau" or (reason == "fixed" and plateaued(val_losses or []))
        lowest = self.keep == "lowest" and self.lowest_epoch is not None
        epoch, value = (self.lowest_epoch, self.lowest) if lowest else (self.best_epoch, self.best)
        return {"epochs_run": epochs_run, "cap": self.cap, "best_epoch": epoch,
                "best_val_loss": None if epoch is None else value, "stop_reason": reason, "kept": kept,
                "keep": self.keep, "converged": converged, "patience": self.patience, "min_delta": self.min_delta,
                **({"lr_patience": self.lr_patience, "lr_factor": self.lr_factor, "lr_steps": self.lr_steps}
                   if self.lr_patience else {})}


def plateaued(val_losses: list[float | None], patience: int = CHECK_PATIENCE, min_delta: float = CHECK_MIN_DELTA) -> bool:
    """Whether a held-out loss curve ends on a plateau: its last ``patience`` epochs bring no improvement."""
    if len(val_losses) <= patience or any(v is None for v in val_losses):
        return False
    check = Stopping(patience, min_delta, len(val_losses))
    for epoch, v in enumerate(val_losses, start=1):
        check.update(epoch, v)
    return check.done()


def still_falling(val_losses: list[float | None]) -> bool:
    """The one convergence test every run's held-out curve is held to, whatever stopped it.

    True when the loss still falls over the last fifth of the epochs run (at least
    ``FALLING_MIN_EPOCHS``): a least-squares line through them (``scipy.stats.linregress``) slopes
    down with one-sided p < ``FALLING_P``, and its fall across them is at least ``FALLING_FRACTION``
    of the run's whole fall (its first epoch's loss minus its lowest). A curve with a gap (an
    epoch without held-out loss) or too short to have a last fifth counts as still falling.
    """
    from scipy.stats import linregress

    k = max(FALLING_MIN_EPOCHS, round(FALLING_SHARE * len(val_losses)))
    if len(val_losses) < 2 * k or any(v is None or not math.isfinite(v) for v in val_losses):
        return True
    tail = val_losses[-k:]
    whole = val_losses[0] - min(val_losses)
    fit = linregress(range(k), tail, alternative="less")
    return bool(fit.pvalue < FALLING_P and -fit.slope * (k - 1) >= FALLING_FRACTION * max(whole, 0.0) and whole > 0)
