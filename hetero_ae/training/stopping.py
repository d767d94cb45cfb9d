"""When a run stops: a rule on the held-out normal images' loss, never on test labels (DESIGN 3.10).

The paper trains a fixed 200 epochs (Sec. IV-B1) and says nothing about convergence. Here a
run may instead stop when the loss of its held-out *normal* images (the release's ``val``
split, or a fraction of the training normals) has not improved for ``patience`` epochs, an
improvement being a fall of more than ``min_delta * |best|`` (relative, so one setting fits
losses of any scale; the absolute value because Eq. 4's loss is negative). ``epochs`` is then
a cap. The run keeps the weights of its best held-out epoch.

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


@dataclass
class Stopping:
    """The state of the stopping rule; ``update`` after each epoch, ``done`` says whether to stop."""

    patience: int
    min_delta: float
    cap: int
    best: float = math.inf
    best_epoch: int | None = None
    bad_epochs: int = 0

    @property
    def active(self) -> bool:
        return self.patience > 0

    def update(self, epoch: int, value: float) -> bool:
        """Record the held-out loss of ``epoch`` (1-based); True when it is the new best."""
        if not math.isfinite(value):
            raise FloatingPointError(f"non-finite held-out loss {value} at epoch {epoch}")
        if self.best_epoch is None or self.best - value > self.min_delta * abs(self.best):
            self.best, self.best_epoch, self.bad_epochs = value, epoch, 0
            return True
        self.bad_epochs += 1
        return False

    def done(self) -> bool:
        return self.active and self.bad_epochs >= self.patience

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
        return {"epochs_run": epochs_run, "cap": self.cap, "best_epoch": self.best_epoch,
                "best_val_loss": None if self.best_epoch is None else self.best, "stop_reason": reason, "kept": kept,
                "converged": converged, "patience": self.patience, "min_delta": self.min_delta}


def plateaued(val_losses: list[float | None], patience: int = CHECK_PATIENCE, min_delta: float = CHECK_MIN_DELTA) -> bool:
    """Whether a held-out loss curve ends on a plateau: its last ``patience`` epochs bring no improvement."""
    if len(val_losses) <= patience or any(v is None for v in val_losses):
        return False
    check = Stopping(patience, min_delta, len(val_losses))
    for epoch, v in enumerate(val_losses, start=1):
        check.update(epoch, v)
    return check.done()
