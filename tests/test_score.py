"""``hetero-ae score``: streamed in batches, rows appended as they come, and resumable after a kill."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import blob_image, write_png

import hetero_ae.data.images
import hetero_ae.evaluation.scoring as scoring
from hetero_ae.cli import main
from hetero_ae.data import batches

N_IMAGES, BATCH = 14, 4
TINY = ["--method", "ae", "--param", "latent_dim=8", "--param", "base_channels=8", "--image-size", "64",
        "--epochs", "1", "--batch-size", "5", "--threads", "2", "--val-fraction", "0"]


def error_line(capsys) -> str:
    """The error, on one line of its own after whatever the progress bar drew."""
    err = capsys.readouterr().err.splitlines()
    assert err and err[-1].startswith("hetero-ae: error:") and sum("error" in line for line in err) == 1, err
    return err[-1]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """A one-epoch 64 px smoke model (a tiny auto-encoder: scoring does not depend on the method)."""
    root = tmp_path_factory.mktemp("score_run")
    rng = np.random.default_rng(1)
    for i in range(6):
        write_png(root / "train" / f"n{i}.png", blob_image(rng))
    assert main(["train", "--data", str(root / "train"), "--out", str(root / "run"), *TINY]) == 0
    return root / "run" / "checkpoint.pt"


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    """14 small images: anomalous/a0-a6 and normal/n0-n6."""
    root = tmp_path_factory.mktemp("score_images")
    rng = np.random.default_rng(2)
    for i in range(N_IMAGES // 2):
        write_png(root / "normal" / f"n{i}.png", blob_image(rng))
        write_png(root / "anomalous" / f"a{i}.png", blob_image(rng, lesion=True))
    return root


def score(checkpoint: Path, images: Path, out: Path, *extra: str, workers: int = 0) -> int:
    return main(["score", "--checkpoint", str(checkpoint), "--images", str(images), "--out", str(out),
                 "--batch-size", str(BATCH), "--workers", str(workers), *extra])


@pytest.fixture(scope="module")
def reference(checkpoint, images, tmp_path_factory) -> Path:
    """One uninterrupted run, decoding in two worker processes."""
    out = tmp_path_factory.mktemp("score_ref") / "out"
    assert score(checkpoint, images, out, "--heatmaps", workers=2) == 0
    return out


def files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def killed_after(n_batches: int):
    """A batch_loader whose batches stop, as a Ctrl-C or kill would, after ``n_batches``."""
    real = scoring.batch_loader

    def make(*args, **kwargs):
        for n, batch in enumerate(real(*args, **kwargs)):
            if n == n_batches:
                raise KeyboardInterrupt
            yield batch

    return make


def test_uninterrupted_run_writes_one_row_per_image_in_file_order(reference, images):
    lines = (reference / "scores.csv").read_bytes().split(b"\r\n")
    assert lines[0] == b"path,class,label,score" and lines[-1] == b"" and len(lines) == N_IMAGES + 2
    rows = [line.decode().split(",") for line in lines[1:-1]]
    assert [r[0] for r in rows] == [str(p) for p in hetero_ae.data.images.list_images(images)]
    assert [(r[1], r[2]) for r in rows] == [("anomalous", "1")] * 7 + [("normal", "0")] * 7
    assert len(list((reference / "heatmaps").glob("*.png"))) == N_IMAGES
    meta = json.loads((reference / "score.json").read_text())
    assert meta["image_size"] == 64 and len(meta["checkpoint_sha256"]) == 64


def test_killed_run_resumed_equals_an_uninterrupted_one(checkpoint, images, reference, tmp_path, monkeypatch):
    out = tmp_path / "out"
    monkeypatch.setattr(scoring, "batch_loader", killed_after(2))
    with pytest.raises(KeyboardInterrupt):
        score(checkpoint, images, out, "--heatmaps")
    monkeypatch.undo()
    ref = (reference / "scores.csv").read_bytes()
    ref_lines = ref.split(b"\r\n")
    written = (out / "scores.csv").read_bytes()
    assert written == b"\r\n".join(ref_lines[: 1 + 2 * BATCH]) + b"\r\n"  # header and both batches, on disk
    with open(out / "scores.csv", "ab") as f:  # a torn write of the next row
        f.write(ref_lines[1 + 2 * BATCH][:20])

    assert score(checkpoint, images, out, "--heatmaps", "--resume") == 0
    assert (out / "scores.csv").read_bytes() == ref
    assert files(out / "heatmaps") == files(reference / "heatmaps")
    assert score(checkpoint, images, out, "--heatmaps", "--resume") == 0  # nothing left: unchanged
    assert (out / "scores.csv").read_bytes() == ref


def test_an_existing_csv_is_refused_without_resume(checkpoint, images, reference, tmp_path, capsys):
    out = shutil.copytree(reference, tmp_path / "out")
    before = files(out)
    capsys.readouterr()
    assert score(checkpoint, images, out, "--heatmaps") == 2
    err = error_line(capsys)
    assert "scores.csv exists" in err and "--resume" in err
    assert files(out) == before


@pytest.mark.parametrize("change", ["checkpoint", "heatmaps"])
def test_resume_with_other_settings_is_refused(change, checkpoint, images, reference, tmp_path, capsys):
    out = shutil.copytree(reference, tmp_path / "out")
    before = files(out)
    if change == "checkpoint":
        ckpt = torch.load(checkpoint, map_location="cpu", weights_only=True)
        name = next(k for k, v in ckpt["model"].items() if v.is_floating_point())
        ckpt["model"][name] = ckpt["model"][name] + 1e-3
        torch.save(ckpt, tmp_path / "other.pt")
        args = [tmp_path / "other.pt", images, out, "--heatmaps", "--resume"]
    else:
        args = [checkpoint, images, out, "--resume"]
    capsys.readouterr()
    assert score(*args) == 2
    err = error_line(capsys)
    assert ("another checkpoint" if change == "checkpoint" else "--heatmaps") in err
    assert files(out) == before


def test_the_folder_is_decoded_one_batch_at_a_time(checkpoint, images, tmp_path, monkeypatch):
    decoded, seen = [0], []
    real_load, real_make = batches.load_image, scoring.batch_loader

    def load(path, size):
        decoded[0] += 1
        return real_load(path, size)

    def make(*args, **kwargs):
        for batch in real_make(*args, **kwargs):
            seen.append((len(batch.images), decoded[0]))
            yield batch

    def whole_folder(*args, **kwargs):
        raise AssertionError("score must not decode the whole folder")

    monkeypatch.setattr(batches, "load_image", load)
    monkeypatch.setattr(scoring, "batch_loader", make)
    monkeypatch.setattr(hetero_ae.data.images, "read_images", whole_folder)
    assert score(checkpoint, images, tmp_path / "out") == 0
    assert [n for n, _ in seen] == [4, 4, 4, 2]
    assert all(n_decoded <= BATCH * (k + 1) for k, (_, n_decoded) in enumerate(seen))  # nothing read ahead
    assert decoded[0] == N_IMAGES


def test_an_unreadable_image_is_skipped_and_named_or_fails_with_strict(checkpoint, images, tmp_path, capsys):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for p in sorted((images / "normal").glob("*.png"))[:3]:
        shutil.copy(p, folder / p.name)
    (folder / "broken.png").write_bytes((folder / "n0.png").read_bytes()[:200])
    capsys.readouterr()
    assert score(checkpoint, folder, tmp_path / "a", workers=1) == 0
    out, err = capsys.readouterr()
    named = [line for line in err.splitlines() if "broken" in line]
    assert len(named) == 1 and named[0].startswith(f"hetero-ae: skipped unreadable image {folder / 'broken.png'}: ")
    assert "1 unreadable image(s) skipped" in out
    rows = (tmp_path / "a" / "scores.csv").read_text().splitlines()
    assert len(rows) == 4 and not any("broken" in r for r in rows)
    capsys.readouterr()
    assert score(checkpoint, folder, tmp_path / "b", "--strict") == 2
    assert "broken.png" in error_line(capsys)


def some_images(images: Path, folder: Path, names: list[str]) -> Path:
    folder.mkdir(parents=True)
    for name in names:
        shutil.copy(images / "normal" / name, folder / name)
    return folder


def test_an_output_folder_inside_the_images_is_never_read_as_input(checkpoint, images, tmp_path, capsys):
    imgs = some_images(images, tmp_path / "imgs", ["n0.png", "n1.png", "n2.png"])
    for out in ("first", "second"):
        assert score(checkpoint, imgs, imgs / out, "--heatmaps") == 0
        assert len((imgs / out / "scores.csv").read_text().splitlines()) == 1 + 3
    assert f"left out {imgs / 'first'}: the output of an earlier 'hetero-ae score'" in capsys.readouterr().err
    assert score(checkpoint, imgs, imgs / "first", "--heatmaps", "--resume") == 0
    assert "scored 0 image(s) after 3 already there" in capsys.readouterr().out
    assert len(list((imgs / "first" / "heatmaps").glob("*.png"))) == 3


def test_a_resumed_run_scores_the_images_added_since(checkpoint, images, tmp_path, capsys):
    imgs = some_images(images, tmp_path / "imgs", ["n0.png", "n2.png"])
    assert score(checkpoint, imgs, tmp_path / "out") == 0
    shutil.copy(images / "normal" / "n1.png", imgs / "n1.png")  # sorts between the two scored
    capsys.readouterr()
    assert score(checkpoint, imgs, tmp_path / "out", "--resume") == 0
    assert "scored 1 image(s) after 2 already there" in capsys.readouterr().out
    rows = (tmp_path / "out" / "scores.csv").read_text().splitlines()[1:]
    assert [Path(r.split(",")[0]).name for r in rows] == ["n0.png", "n2.png", "n1.png"]
    (imgs / "n0.png").unlink()
    assert score(checkpoint, imgs, tmp_path / "out", "--resume") == 2
    assert "n0.png which is not among the images now" in error_line(capsys)
