"""Shared fixtures. Nothing in the tests downloads: HETERO_AE_NO_DOWNLOAD is set for the session."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

os.environ["HETERO_AE_NO_DOWNLOAD"] = "1"


@pytest.fixture()
def resnet18_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A made-up ResNet-18 state dict placed where torchvision's hub cache keeps ImageNet weights."""
    from torchvision.models import resnet18

    torch.manual_seed(123)
    path = tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    path.parent.mkdir(parents=True)
    torch.save(resnet18(weights=None).state_dict(), path)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    return path


def write_png(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


def blob_image(rng: np.random.Generator, size: int = 72, lesion: bool = False) -> np.ndarray:
    """A smooth grey image with texture; ``lesion`` adds a bright square."""
    yy, xx = np.mgrid[:size, :size] / size
    img = 100 + 40 * np.sin(6 * xx + rng.uniform(0, 1)) * np.cos(4 * yy) + rng.normal(0, 5, (size, size))
    if lesion:
        r, c = rng.integers(8, size - 28, 2)
        img[r : r + 20, c : c + 20] = 250
    return np.clip(img, 0, 255).astype(np.uint8)


def write_image_folders(root: Path, n_train: int = 10, n_test: int = 4) -> dict[str, Path]:
    """root/train/ with ``n_train`` normal images, root/test/normal and root/test/anomalous with ``n_test`` each."""
    rng = np.random.default_rng(0)
    for i in range(n_train):
        write_png(root / "train" / f"n{i}.png", blob_image(rng))
    for i in range(n_test):
        write_png(root / "test" / "normal" / f"n{i}.png", blob_image(rng))
        write_png(root / "test" / "anomalous" / f"a{i}.png", blob_image(rng, lesion=True))
    return {"train": root / "train", "test": root / "test", "root": root}


@pytest.fixture()
def image_folders(tmp_path: Path) -> dict[str, Path]:
    """train/ with 10 normal images, test/normal and test/anomalous with 4 each."""
    return write_image_folders(tmp_path)


def run_all(*args: str) -> "subprocess.CompletedProcess[str]":
    """``./run_all.sh ARGS`` in this interpreter's environment, offline."""
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "VIRTUAL_ENV": sys.prefix, "HETERO_AE_NO_DOWNLOAD": "1"}
    env.pop("CONDA_PREFIX", None)
    return subprocess.run([str(root / "run_all.sh"), *args], cwd=root, env=env, capture_output=True, text=True,
                          timeout=1800)


@pytest.fixture(scope="session")
def smoke_results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The results folder of one ``./run_all.sh --profile smoke`` (every notebook), shared by the notebook tests."""
    pytest.importorskip("papermill")
    results = tmp_path_factory.mktemp("smoke") / "results"
    done = run_all("--profile", "smoke", "--results", str(results))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (results.parent / "run_all.out").write_text(done.stdout + done.stderr)  # what a user sees, for the tests
    return results
