"""Whether torchrun launched this process, without importing torch (the CLI asks before any work)."""

from __future__ import annotations

import os

COMMANDS = ("train", "run", "run-profile")  # the CLI commands that may run under torchrun


def launched() -> bool:
    """Whether torchrun started this process as one of several."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1
