"""Multi-process training (``hetero_ae.training.distributed``): two gloo processes on the CPU, launched by torchrun.

The two-process runs go through ``tests/ddp_entry.py`` (the CLI of ``python -m hetero_ae`` with
test hooks) and are compared with one process training on the same global batches. Both sides
run ``ddp_entry.exact``: the decoder's BatchNorm becomes GroupNorm, and everything is float64.
With BatchNorm each process normalises with the statistics of its own part of the batch (by
design, as DDP does without SyncBatchNorm), so its gradients differ from one process's by more
than float error; GroupNorm normalises each image alone. In float32 the two runs differ by the
order in which gradients are summed, which Adam amplifies to ~lr in the few MSTB weights whose
gradients are float noise at initialisation (measured: 3e-4 at lr 1e-3; the two-process run
is then bit-identical to one process summing the same parts' gradients). What is left to test
is DDP's part: sharding, loss weighting and gradient averaging.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import write_image_folders
from ddp_entry import exact

import hetero_ae
from hetero_ae import ModelConfig
from hetero_ae.cli import main
from hetero_ae.errors import UserError
from hetero_ae.training.distributed import check_supported, shard, supports
from hetero_ae.training.seed import build_seeded

ENTRY = Path(__file__).with_name("ddp_entry.py")
REPO = Path(hetero_ae.__file__).resolve().parents[1]
# 12 images, 1 held out: every epoch's 11 make global batches of 5, 5 and 1, i.e. parts of 3 + 2
# images per process (unequal parts: the losses are weighted), then one image given to both.
ARGS = ["--encoder", "resnet18", "--encoder-weights", "none", "--image-size", "64", "--epochs", "2",
        "--batch-size", "5", "--lr", "1e-3", "--seed", "7", "--threads", "1", "--val-fraction", "0.1"]
WEIGHT_ATOL = 1e-5  # float64 (module docstring); a wrong weighting or a missing all-reduce moves weights by ~lr
EXACT = {"HETERO_AE_TEST_EXACT": "1"}
RUN_FILES = {"checkpoint.pt", "config.json", "history.json", "val_scores.json"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(*args: str, hooks: dict[str, str]) -> None:
    """``torchrun --nproc-per-node 2 tests/ddp_entry.py ARGS`` with this worktree's package, offline."""
    env = {**os.environ, **hooks, "HETERO_AE_NO_DOWNLOAD": "1", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-addr", "127.0.0.1",
           "--master-port", str(free_port()), str(ENTRY), *args]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One run of two processes and one of a single process, on the same data and settings."""
    tmp = tmp_path_factory.mktemp("ddp")
    write_image_folders(tmp, n_train=12, n_test=3)
    for d in ("writes", "epochs"):
        (tmp / d).mkdir()
    torchrun("train", "--data", str(tmp / "train"), "--out", str(tmp / "two"), *ARGS,
             hooks={**EXACT, "HETERO_AE_TEST_WRITES": str(tmp / "writes"),
                    "HETERO_AE_TEST_EPOCHS": str(tmp / "epochs")})
    with pytest.MonkeyPatch.context() as mp:
        exact(mp.setattr)
        try:
            assert main(["train", "--data", str(tmp / "train"), "--out", str(tmp / "one"), *ARGS]) == 0
            for run in ("one", "two"):
                assert main(["evaluate", "--checkpoint", str(tmp / run / "checkpoint.pt"), "--data", str(tmp / "test"),
                             "--out", str(tmp / f"eval-{run}")]) == 0
        finally:
            torch.set_default_dtype(torch.float32)
    return {"root": tmp, "one": tmp / "one", "two": tmp / "two"}


def weights(run: Path) -> dict[str, torch.Tensor]:
    return torch.load(run / "checkpoint.pt", weights_only=True)["model"]


def test_two_processes_end_with_the_weights_of_one_process(runs):
    one, two = weights(runs["one"]), weights(runs["two"])
    assert one.keys() == two.keys()
    for k in one:
        torch.testing.assert_close(two[k], one[k], rtol=0, atol=WEIGHT_ATOL, msg=lambda m, k=k: f"{k}: {m}")


def test_the_logged_loss_is_the_mean_over_the_global_batch(runs):
    one, two = (json.loads((runs[r] / "history.json").read_text()) for r in ("one", "two"))
    np.testing.assert_allclose([h["loss"] for h in two], [h["loss"] for h in one], rtol=1e-5)


def test_two_processes_give_the_metrics_of_one_process(runs):
    root = runs["root"]
    one, two = (json.loads((root / f"eval-{r}" / "metrics.json").read_text()) for r in ("one", "two"))
    assert two["best_f1"] == pytest.approx(one["best_f1"], rel=1e-4)
    scores = [[float(row["score"]) for row in csv.DictReader((root / f"eval-{r}" / "scores.csv").open())]
              for r in ("one", "two")]
    np.testing.assert_allclose(scores[1], scores[0], rtol=1e-4)
    val = [json.loads((runs[r] / "val_scores.json").read_text())["scores"] for r in ("one", "two")]
    np.testing.assert_allclose(val[1], val[0], rtol=1e-4)


def test_rank_0_alone_writes_files(runs):
    writes = runs["root"] / "writes"
    assert not (writes / "rank1.txt").exists(), (writes / "rank1.txt").read_text()
    written = (writes / "rank0.txt").read_text().split()
    names = [Path(p).name for p in written]
    assert set(names) == RUN_FILES and names.count("checkpoint.pt") == 2  # a checkpoint per epoch (2)
    assert names.count("history.json") == 3  # the run's record after each epoch's checkpoint, and at the end
    assert {p.name for p in runs["two"].iterdir()} == RUN_FILES
    assert json.loads((runs["two"] / "config.json").read_text())["processes"] == 2


def test_a_run_resumed_from_its_epoch_1_checkpoint_ends_with_the_same_weights(runs, tmp_path):
    """What a two-process run killed after epoch 1 leaves (its checkpoint), resumed by two processes."""
    shutil.copyfile(runs["root"] / "epochs" / "epoch1.pt", tmp_path / "checkpoint.pt")
    torchrun("train", "--data", str(runs["root"] / "train"), "--out", str(tmp_path), "--resume", *ARGS,
             hooks=EXACT)
    uninterrupted, resumed = weights(runs["two"]), weights(tmp_path)
    for k in uninterrupted:
        assert torch.equal(resumed[k], uninterrupted[k]), k


def test_shards_are_contiguous_parts_of_the_global_batch():
    batch = np.array([3, 5, 8, 9, 12])
    parts = [shard(batch, r, 2) for r in range(2)]
    assert [p.tolist() for p in parts] == [[3, 5, 8], [9, 12]]
    assert shard(batch, 0, 1) is batch


def test_a_batch_smaller_than_the_process_count_goes_whole_to_every_process():
    batch = np.array([4])
    assert [shard(batch, r, 2).tolist() for r in range(2)] == [[4], [4]]


def test_methods_with_their_own_training_step_are_refused():
    gan = build_seeded(ModelConfig(method="ganomaly", encoder="none", image_size=64), 0)
    with pytest.raises(UserError, match="ganomaly: .*default training step"):
        check_supported(gan)
    check_supported(build_seeded(ModelConfig(method="vae", encoder="none", image_size=64,
                                             params={"latent_dim": 8, "base_channels": 8}), 0))


def test_every_method_with_its_own_training_step_says_ddp_cannot_train_it():
    """DDP runs only the default step's one loss: a method overriding the step must say so (trains_under_ddp)."""
    from hetero_ae.methods import METHODS
    from hetero_ae.methods.registry import AnomalyModel

    own = {name for name, cls in METHODS.items() if cls.training_step is not AnomalyModel.training_step}
    assert own >= {"ganomaly", "f-anogan", "salad"}
    assert not [name for name in own if METHODS[name].trains_under_ddp]
    assert [name for name in METHODS if supports(name)] == [
        name for name, cls in METHODS.items() if cls.trains_weights and name not in own]


def test_commands_other_than_train_refuse_to_run_under_torchrun(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    assert main(["evaluate", "--checkpoint", str(tmp_path / "c.pt"), "--data", str(tmp_path)]) == 2
    assert "'evaluate' runs in one process" in capsys.readouterr().err
