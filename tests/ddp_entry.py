"""``torchrun`` entry of tests/test_distributed.py: ``hetero_ae``'s CLI (as ``-m hetero_ae``) with test hooks.

Hooks, by environment variable:
- ``HETERO_AE_TEST_EXACT=1`` (``exact``): the decoder's Conv-BN-ReLU blocks use GroupNorm (one
  group) instead of BatchNorm, and the model and its inputs are float64. GroupNorm normalises
  each image alone, so splitting a batch across processes cannot change it; float64 keeps the
  order in which processes sum their parts' gradients from mattering at the test's tolerance
  (in float32 the MSTB attention weights, whose gradients at initialisation are sums that
  cancel to float noise, get Adam steps of up to ~lr from that noise alone).
- ``HETERO_AE_TEST_WRITES=DIR``: every file this process writes through ``os.replace`` (all of
  hetero_ae's writes are atomic renames) is listed in ``DIR/rank<RANK>.txt``.
- ``HETERO_AE_TEST_EPOCHS=DIR``: rank 0 keeps a copy of each epoch's checkpoint as
  ``DIR/epoch<k>.pt``, which is what a run killed after epoch k leaves behind.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn


def conv_gn_relu(cin: int, cout: int, kernel: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, padding=kernel // 2, bias=False), nn.GroupNorm(1, cout),
                         nn.ReLU(inplace=True))


def exact(setattr: Callable[[object, str, object], None] = setattr) -> None:
    """GroupNorm for the decoder's BatchNorm, float64 throughout (the caller restores the default dtype)."""
    import hetero_ae.evaluation.predict as evaluate
    import hetero_ae.model.decoder as decoder
    import hetero_ae.training.feature_cache as feature_cache
    import hetero_ae.training.loop as train

    setattr(decoder, "conv_bn_relu", conv_gn_relu)
    for module in (train, evaluate, feature_cache):
        setattr(module, "to_batch", lambda images, to_batch=module.to_batch: to_batch(images).double())
    torch.set_default_dtype(torch.float64)


def install_hooks() -> None:
    import hetero_ae.training.loop as train

    if os.environ.get("HETERO_AE_TEST_EXACT"):
        exact()
    if log_dir := os.environ.get("HETERO_AE_TEST_WRITES"):
        real_replace = os.replace

        def logged_replace(src, dst, **kwargs):
            with open(Path(log_dir) / f"rank{os.environ.get('RANK', '0')}.txt", "a") as f:
                f.write(f"{dst}\n")
            return real_replace(src, dst, **kwargs)

        os.replace = logged_replace
    if keep := os.environ.get("HETERO_AE_TEST_EPOCHS"):
        real_save = train.save_checkpoint

        def save_and_keep(path, *args, epoch, **kwargs):
            out = real_save(path, *args, epoch=epoch, **kwargs)
            shutil.copyfile(path, Path(keep) / f"epoch{epoch}.pt")
            return out

        train.save_checkpoint = save_and_keep


if __name__ == "__main__":
    install_hooks()
    from hetero_ae.cli import main

    sys.exit(main(sys.argv[1:]))
