"""Bad input, by kind: one line and exit status 2, nothing half-written, nothing misread, a decision.

Each kind of failure is fixed in one place (options checked before any work; one decoder error
path; one lock per output folder; one reading of every bit depth); each case below stands for
its kind, on small files made here.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
from conftest import blob_image, write_image_folders, write_png
from PIL import Image

from hetero_ae.cli import main
from hetero_ae.data import layouts
from hetero_ae.data.datasets import CACHE_ENV, cache_root
from hetero_ae.data.images import load_image
from hetero_ae.errors import DataError, UserError
from hetero_ae.io import exclusive

TINY = ["--method", "ae", "--param", "latent_dim=8", "--param", "base_channels=8", "--image-size", "64",
        "--epochs", "1", "--batch-size", "4", "--threads", "2"]


def one_line_error(capsys) -> str:
    """The one error line, after whatever a progress bar drew; no traceback."""
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "error" in line.lower()]
    assert len(lines) == 1 and lines[0].startswith("hetero-ae: error:") and "Traceback" not in err, err
    return lines[0]


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, Path]:
    return write_image_folders(tmp_path_factory.mktemp("bad_input"))


@pytest.fixture(scope="module")
def run(folders, tmp_path_factory) -> Path:
    """A one-epoch tiny auto-encoder with held-out normals (so a threshold without test labels)."""
    out = tmp_path_factory.mktemp("bad_run") / "run"
    assert main(["train", "--data", str(folders["train"]), "--out", str(out), *TINY, "--val-fraction", "0.3"]) == 0
    return out


# 1. Options: every one checked before any work starts, one line naming it.

@pytest.mark.parametrize("args, named", [
    (["--method", "hetero-ae", "--encoder", "resnet18", "--encoder-weights", "none", "--image-size", "96"],
     "--image-size 96 does not suit hetero-ae with the hctn decoder: it must be a multiple of 64"),
    (["--method", "ae", "--image-size", "96"], "--image-size 96 does not suit ae: it must be a power of two"),
    (["--method", "hetero-ae", "--encoder-weights", "none", "--alpha", "2"], "--alpha (Eq. 4's weight of the cosine"),
    (["--method", "ae", "--alpha", "0.5"], "--alpha does not apply to ae (only to hetero-ae)"),
    (["--method", "rd4ad", "--decoder", "cnn"], "--decoder does not apply to rd4ad (only to hetero-ae)"),
    (["--method", "stfpm", "--finetune-encoder"], "--finetune-encoder does not apply to stfpm"),
    (["--method", "patchcore", "--feature-scale", "rms"], "--feature-scale does not apply to patchcore"),
    (["--method", "patchcore", "--encoder", "efficientnet-lite0", "--epochs", "5"],
     "--epochs does not apply to patchcore: it learns no weight"),
    (["--method", "patchcore", "--encoder", "efficientnet-lite0", "--lr", "0.1"], "--lr does not apply to patchcore"),
    (["--method", "ae", "--batch-size", "0"], "--batch-size must be a whole number of at least 1"),
    (["--method", "ae", "--device", "gpu"], "--device 'gpu' is not a torch device"),
    (["--method", "ae", "--device", "cuda"], "--device 'cuda': this machine has no CUDA GPU"),
    (["--method", "ae", "--device", "mps"], "--device 'mps': this machine has no Apple GPU"),
    (["--method", "ae", "--seed", "-1"], "--seed must be a whole number of 0 or more, got -1"),
    (["--method", "ae", "--threads", "-2"], "--threads must be a whole number of 0 or more, got -2"),
])
def test_a_bad_training_option_is_one_line_before_any_image_is_read(args, named, folders, tmp_path, capsys,
                                                                     monkeypatch):
    import hetero_ae.data.images as images

    monkeypatch.setattr(images, "read_images", lambda *a, **k: pytest.fail("read images before checking options"))
    out = tmp_path / "out"
    assert main(["train", "--data", str(folders["train"]), "--out", str(out), *args]) == 2
    assert named in one_line_error(capsys)
    assert not out.exists()


@pytest.mark.parametrize("command", ["evaluate", "score"])
@pytest.mark.parametrize("option, named", [(["--batch-size", "0"], "--batch-size must be at least 1"),
                                           (["--device", "cuda:3"], "--device 'cuda:3'")])
def test_a_bad_scoring_option_is_one_line(command, option, named, run, folders, tmp_path, capsys):
    where = ["--data", str(folders["test"])] if command == "evaluate" else ["--images", str(folders["test"]),
                                                                             "--out", str(tmp_path / "o")]
    assert main([command, "--checkpoint", str(run / "checkpoint.pt"), *where, *option]) == 2
    assert named in one_line_error(capsys)
    assert not (tmp_path / "o").exists()


def test_a_run_on_a_misspelt_dataset_is_one_line(tmp_path, capsys):
    assert main(["run", "--dataset", "typo", "--method", "hetero-ae", "--results", str(tmp_path)]) == 2
    assert "unknown dataset 'typo'; choose one of" in one_line_error(capsys)


# 1. File names that are not UTF-8, and any decoder failure: that file's error.

def test_a_file_name_that_is_not_utf8_is_scored_and_written_escaped(run, folders, tmp_path, capsys):
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    png = (folders["test"] / "normal" / "n0.png").read_bytes()
    with open(os.fsencode(imgs) + b"/caf\xe9.png", "wb") as f:  # as an old Windows zip unpacks
        f.write(png)
    shutil.copy(folders["test"] / "normal" / "n1.png", imgs / "plain.png")
    assert main(["score", "--checkpoint", str(run / "checkpoint.pt"), "--images", str(imgs),
                 "--out", str(tmp_path / "o")]) == 0
    text = (tmp_path / "o" / "scores.csv").read_text(encoding="utf-8")
    assert "caf\\xe9.png" in text and "plain.png" in text
    assert main(["score", "--checkpoint", str(run / "checkpoint.pt"), "--images", str(imgs),
                 "--out", str(tmp_path / "o"), "--resume"]) == 0  # the escaped name matches on resume
    labelled = shutil.copytree(folders["test"], tmp_path / "labelled")
    shutil.copy(os.fsencode(imgs) + b"/caf\xe9.png", os.fsencode(labelled) + b"/normal/caf\xe9.png")
    assert main(["evaluate", "--checkpoint", str(run / "checkpoint.pt"), "--data", str(labelled)]) == 0
    assert "caf\\xe9.png" in (run / "scores.csv").read_text(encoding="utf-8")


def test_any_exception_a_decoder_raises_is_that_files_error(tmp_path, monkeypatch, capsys):
    good = write_png(tmp_path / "good.png", blob_image(np.random.default_rng(0)))
    weird = write_png(tmp_path / "weird.png", blob_image(np.random.default_rng(1)))
    real = Image.open

    def open_(path, *a, **k):
        if Path(path) == weird:
            raise RuntimeError("decoder bug")
        return real(path, *a, **k)

    monkeypatch.setattr(Image, "open", open_)
    assert load_image(good, 64).shape == (64, 64, 3)
    with pytest.raises(DataError, match="cannot read image .*weird.png: decoder bug"):
        load_image(weird, 64)


def test_formula_cells_are_escaped_for_spreadsheets_and_read_back_as_named(run, folders, tmp_path):
    from hetero_ae.evaluation.scores import read_scores

    imgs = tmp_path / "imgs"
    imgs.mkdir()
    names = ["=HYPERLINK(x).png", "+1.png", "-2.png", "@3.png", "'q.png", "plain.png"]
    for name in names:
        shutil.copy(folders["test"] / "normal" / "n0.png", imgs / name)
    out = tmp_path / "o"
    assert main(["score", "--checkpoint", str(run / "checkpoint.pt"), "--images", str(imgs), "--out", str(out)]) == 0
    import csv

    cells = [row[0] for row in csv.reader((out / "scores.csv").open(newline=""))][1:]
    assert all(not c.startswith(("=", "+", "-", "@")) for c in cells)  # a spreadsheet shows them as text
    assert sorted(Path(r["path"]).name for r in read_scores(out)) == sorted(names)  # the project's reader: the names
    assert main(["score", "--checkpoint", str(run / "checkpoint.pt"), "--images", str(imgs), "--out", str(out),
                 "--resume"]) == 0  # the escaped names match on resume
    assert len(read_scores(out)) == len(names)
    labelled = shutil.copytree(folders["test"], tmp_path / "labelled")
    shutil.move(labelled / "normal", labelled / "=2+3")
    assert main(["evaluate", "--checkpoint", str(run / "checkpoint.pt"), "--data", str(labelled),
                 "--normal-class", "=2+3", "--out", str(tmp_path / "e")]) == 0
    rows = list(csv.DictReader((tmp_path / "e" / "scores.csv").open(newline="")))
    assert {r["class"] for r in rows} == {"'=2+3", "anomalous"}
    assert {r["class"] for r in read_scores(tmp_path / "e")} == {"=2+3", "anomalous"}


# 2. and 3. Nothing half-written after a failure; one writer per output folder.

@pytest.mark.parametrize("command", ["train", "evaluate", "score", "export"])
def test_a_read_only_output_folder_is_refused_by_name_before_any_work(command, run, folders, tmp_path, capsys,
                                                                     monkeypatch):
    import hetero_ae.training.checkpoint as checkpoint

    locked = tmp_path / "locked"
    locked.mkdir()
    real = os.access
    monkeypatch.setattr(os, "access", lambda path, mode: Path(path) != locked and real(path, mode))  # as for a user
    monkeypatch.setattr(checkpoint, "load_model", lambda *a, **k: pytest.fail("loaded the model before the check"))
    ckpt = ["--checkpoint", str(run / "checkpoint.pt")]
    args = {"train": ["--data", str(folders["train"]), "--out", str(locked / "run"), *TINY],
            "evaluate": [*ckpt, "--data", str(folders["test"]), "--out", str(locked)],
            "score": [*ckpt, "--images", str(folders["test"]), "--out", str(locked / "scores")],
            "export": [*ckpt, "--out", str(locked / "model.onnx")]}[command]
    assert main([command, *args]) == 2
    assert f"the folder {locked} is read-only" in one_line_error(capsys)
    assert not any(locked.iterdir())


def test_a_killed_training_leaves_a_record_a_named_checkpoint_and_no_temporary_file(folders, tmp_path, capsys,
                                                                                   monkeypatch):
    import hetero_ae.training.loop as loop

    out = tmp_path / "run"
    real_save, saves = loop.save_checkpoint, []

    def killed_in_epoch_2(*args, **kwargs):
        saves.append(1)
        if len(saves) == 2:
            raise KeyboardInterrupt
        return real_save(*args, **kwargs)

    with monkeypatch.context() as m:
        m.setattr(loop, "save_checkpoint", killed_in_epoch_2)
        with pytest.raises(KeyboardInterrupt):
            main(["train", "--data", str(folders["train"]), "--out", str(out), *TINY, "--epochs", "3",
                  "--val-fraction", "0.2"])
    config = json.loads((out / "config.json").read_text())
    assert config["val_images"] == 2 and config["training"]["finished"] is False
    assert [h["epoch"] for h in json.loads((out / "history.json").read_text())] == [1]
    capsys.readouterr()
    assert main(["evaluate", "--checkpoint", str(out / "checkpoint.pt"), "--data", str(folders["test"]),
                 "--out", str(tmp_path / "e")]) == 0
    captured = capsys.readouterr()
    warnings = [line for line in captured.err.splitlines() if "unfinished" in line]
    assert len(warnings) == 1 and "epoch 1 of 3" in warnings[0] and str(out / "checkpoint.pt") in warnings[0]
    assert "held out 2 normal image(s) but has not finished" in captured.out
    record = {name: (out / name).read_bytes() for name in ("config.json", "history.json", "checkpoint.pt")}
    assert main(["train", "--data", str(folders["train"]), "--out", str(out), *TINY, "--epochs", "2",
                 "--val-fraction", "0.2", "--resume"]) == 2  # another setting: refused, the record as it was
    assert {name: (out / name).read_bytes() for name in record} == record
    stale = out / ".checkpoint.pt.ab12cd34.tmp"  # what a kill during a checkpoint's write leaves
    stale.write_bytes(b"partial")
    assert main(["train", "--data", str(folders["train"]), "--out", str(out), *TINY, "--epochs", "3",
                 "--val-fraction", "0.2", "--resume"]) == 0
    assert not stale.exists() and (out / "val_scores.json").is_file()
    assert json.loads((out / "config.json").read_text())["training"]["finished"] is True
    capsys.readouterr()
    assert main(["train", "--data", str(folders["train"]), "--out", str(tmp_path / "new"), *TINY, "--resume"]) == 0
    assert "nothing to resume" in capsys.readouterr().err


@pytest.mark.parametrize("n_images, fraction, said", [
    (1, "0", "1 readable image(s) are too few with --val-fraction 0.0: at least 2 must be left to train on"),
    (3, "0.5", "3 readable image(s) are too few with --val-fraction 0.5: at least 2 must be left to train on"),
])
def test_too_few_training_images_are_refused_below_the_stated_minimum(n_images, fraction, said, folders, tmp_path,
                                                                     capsys):
    few = tmp_path / "few"
    few.mkdir()
    for i in range(n_images):
        shutil.copy(folders["train"] / f"n{i}.png", few)
    assert main(["train", "--data", str(few), "--out", str(tmp_path / "o"), *TINY, "--val-fraction", fraction]) == 2
    assert said in one_line_error(capsys)
    assert not (tmp_path / "o").exists()


def test_a_fraction_that_holds_out_no_image_is_said(folders, tmp_path, capsys):
    few = tmp_path / "few"
    few.mkdir()
    for i in range(4):
        shutil.copy(folders["train"] / f"n{i}.png", few)
    assert main(["train", "--data", str(few), "--out", str(tmp_path / "o"), *TINY, "--val-fraction", "0.1"]) == 0
    assert "--val-fraction 0.1 of 4 image(s) holds out none: no threshold" in capsys.readouterr().err

def test_a_failed_score_leaves_nothing_that_blocks_the_next(run, folders, tmp_path, capsys):
    imgs = shutil.copytree(folders["test"], tmp_path / "imgs")
    (imgs / "normal" / "zz_broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    out = tmp_path / "o"
    assert main(["score", "--checkpoint", str(run / "checkpoint.pt"), "--images", str(imgs), "--out", str(out),
                 "--heatmaps", "--strict", "--batch-size", "2"]) == 2
    assert "zz_broken.png" in one_line_error(capsys)
    assert not out.exists()  # no score.json, no header-only CSV, no heatmaps without rows
    (imgs / "normal" / "zz_broken.png").unlink()
    assert main(["score", "--checkpoint", str(run / "checkpoint.pt"), "--images", str(imgs), "--out", str(out),
                 "--heatmaps"]) == 0
    rows = (out / "scores.csv").read_text().splitlines()[1:]
    assert len(rows) == len(list((out / "heatmaps").glob("*.png"))) == 8


def test_a_second_writer_on_one_output_folder_is_refused(run, folders, tmp_path, capsys):
    out = tmp_path / "o"
    with exclusive(out):  # another process's score or train, as the kernel sees it
        assert main(["score", "--checkpoint", str(run / "checkpoint.pt"), "--images", str(folders["test"]),
                     "--out", str(out)]) == 2
        assert "is being written by another hetero-ae process" in one_line_error(capsys)
        assert main(["train", "--data", str(folders["train"]), "--out", str(out), *TINY]) == 2
        assert "is being written by another hetero-ae process" in one_line_error(capsys)
    assert not any(out.iterdir())


def test_the_lock_is_the_kernels_and_ends_with_its_holder(tmp_path):
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with exclusive(tmp_path / "x"):
            held.set()
            release.wait(10)

    t = threading.Thread(target=hold)
    t.start()
    held.wait(10)
    with pytest.raises(UserError, match="being written"):
        with exclusive(tmp_path / "x"):
            pass
    release.set()
    t.join()
    with exclusive(tmp_path / "x"):
        pass


# 4. Every bit depth and channel layout read as a viewer shows it, or refused by name.

def test_16_bit_colour_is_read_with_every_bit_like_16_bit_grayscale(tmp_path):
    import png

    rng = np.random.default_rng(0)
    data = rng.integers(0, 4096, (32, 32)).astype(np.uint16)  # 12-bit values in 16-bit samples
    png.from_array(np.repeat(data, 3, axis=1), "RGB;16").save(str(tmp_path / "rgb16.png"))
    png.from_array(data, "L;16").save(str(tmp_path / "gray16.png"))
    colour, gray = load_image(tmp_path / "rgb16.png", 32), load_image(tmp_path / "gray16.png", 32)
    assert colour.max() == 255 and colour.min() == 0  # not the high byte alone (0..15)
    np.testing.assert_array_equal(colour, gray)


def test_nan_in_a_float_tiff_is_refused_by_name(tmp_path, run, capsys):
    a = np.ones((32, 32), np.float32)
    a[3, 4] = np.nan
    Image.fromarray(a).save(tmp_path / "nan.tif")
    with pytest.raises(DataError, match="nan.tif: 1 pixel"):
        load_image(tmp_path / "nan.tif", 32)


def test_training_on_a_folder_that_holds_anomalies_is_refused(folders, tmp_path, capsys):
    assert main(["train", "--data", str(folders["root"]), "--out", str(tmp_path / "o"), *TINY]) == 2
    assert "under a folder named anomalous or abnormal" in one_line_error(capsys)
    assert not (tmp_path / "o").exists()


# 5. Folder layouts that users have.

def test_linked_folders_are_followed_and_a_link_loop_is_named(folders, tmp_path, capsys):
    from hetero_ae.data.images import list_images

    elsewhere = shutil.copytree(folders["test"], tmp_path / "elsewhere")
    test = tmp_path / "test"
    (test / "normal").mkdir(parents=True)
    (test / "anomalous").symlink_to(elsewhere / "anomalous")  # a class folder that is a link
    (test / "normal" / "more").symlink_to(elsewhere / "normal")  # an image folder inside a class that is a link
    assert len(list_images(test)) == 8
    data = layouts.read_labelled_folder(test, 64)
    assert len(data) == 8 and sorted(set(data.labels.tolist())) == [0, 1]
    (test / "normal" / "more" / "loop").symlink_to(test / "normal")
    capsys.readouterr()
    assert main(["train", "--data", str(test / "normal"), "--out", str(tmp_path / "o"), *TINY]) == 2
    assert f"symbolic link loop: {test / 'normal' / 'more' / 'loop'} leads back to" in one_line_error(capsys)
    assert not (tmp_path / "o").exists()


def test_files_this_cannot_read_are_named_and_counted(folders, tmp_path, capsys):
    from hetero_ae.data.images import list_images

    data = shutil.copytree(folders["train"], tmp_path / "data")
    for i in range(3):
        (data / f"scan{i}.dcm").write_bytes(b"DICM")
        (data / f"vol{i}.nii.gz").write_bytes(b"\x1f\x8b")
    (data / ".DS_Store").write_bytes(b"")
    capsys.readouterr()
    assert len(list_images(data)) == 10
    err = capsys.readouterr().err.strip()
    assert err == (f"hetero-ae: skipped 6 file(s) under {data} that are not images this reads: 3 .dcm, 3 .nii.gz "
                   f"(first: {data / 'scan0.dcm'})")


def test_a_file_given_for_a_folder_is_named_as_a_file(folders, tmp_path, capsys):
    image = folders["train"] / "n0.png"
    assert main(["train", "--data", str(image), "--out", str(tmp_path / "o"), *TINY]) == 2
    assert f"{image} is a file, not a folder" in one_line_error(capsys)
    assert not (tmp_path / "o").exists()
    with pytest.raises(DataError, match="n0.png is a file, not a folder"):
        layouts.read_labelled_folder(image, 64)  # evaluate's --data

def test_oct2017_without_its_trailing_space_is_read(tmp_path):
    for split, cls in (("train", "NORMAL"), ("test", "NORMAL"), ("test", "CNV")):
        write_png(tmp_path / "oct" / "OCT2017" / split / cls / "a.png", blob_image(np.random.default_rng(0)))
    top, release = layouts.find_release(layouts.get_layout("oct"), tmp_path / "oct")
    assert top.name == "OCT2017" and release.top == "OCT2017"


def test_evaluate_reads_a_known_layout_or_a_named_normal_class(run, tmp_path, capsys):
    rng = np.random.default_rng(3)
    for cls in ("glioma", "meningioma", "notumor", "pituitary"):
        for i in range(2):
            write_png(tmp_path / "Testing" / cls / f"{i}.png", blob_image(rng, lesion=cls != "notumor"))
    assert main(["evaluate", "--checkpoint", str(run / "checkpoint.pt"), "--data", str(tmp_path / "Testing"),
                 "--out", str(tmp_path / "e1")]) == 0
    metrics = json.loads((tmp_path / "e1" / "metrics.json").read_text())
    assert metrics["n_normal"] == 2 and set(metrics["per_class_auc"]) == {"glioma", "meningioma", "pituitary"}
    shutil.move(tmp_path / "Testing" / "notumor", tmp_path / "Testing" / "healthy")
    capsys.readouterr()
    assert main(["evaluate", "--checkpoint", str(run / "checkpoint.pt"), "--data", str(tmp_path / "Testing")]) == 2
    assert "--normal-class" in one_line_error(capsys)
    assert main(["evaluate", "--checkpoint", str(run / "checkpoint.pt"), "--data", str(tmp_path / "Testing"),
                 "--normal-class", "healthy", "--out", str(tmp_path / "e2")]) == 0


def test_run_checks_every_split_before_it_trains(tmp_path, capsys, monkeypatch):
    import hetero_ae.experiment.runs as runs

    rng = np.random.default_rng(4)
    for split, cls in (("Training", "notumor"), ("Testing", "notumor")):  # a test split of one class
        for i in range(3):
            write_png(tmp_path / "brain-mri" / split / cls / f"{i}.png", blob_image(rng))
    for cls in ("glioma", "meningioma", "pituitary"):
        (tmp_path / "brain-mri" / "Testing" / cls).mkdir(parents=True)
        (tmp_path / "brain-mri" / "Training" / cls).mkdir(parents=True)
    monkeypatch.setattr(runs, "train", lambda *a, **k: pytest.fail("trained before checking the test split"))
    results = tmp_path / "results"
    assert main(["run", "--dataset", "brain-mri", "--method", "ae", "--profile", "smoke", "--data-root",
                 str(tmp_path), "--results", str(results)]) == 2
    assert "the test split holds only normal images" in one_line_error(capsys)
    assert not (results / "runs").exists()


def test_decoded_images_are_cached_where_they_can_be_written(tmp_path, monkeypatch):
    monkeypatch.delenv(CACHE_ENV, raising=False)
    assert cache_root(tmp_path) == tmp_path / ".cache"
    monkeypatch.setattr(os, "access", lambda path, mode: False)  # a read-only mount of the data
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "user"))
    assert cache_root(tmp_path).is_relative_to(tmp_path / "user" / "hetero-ae")
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "mine"))
    assert cache_root(tmp_path) == tmp_path / "mine"


# 6. A decision for every new image, by a threshold fixed without test labels.

def test_score_writes_the_threshold_and_a_decision(run, folders, tmp_path, capsys):
    out = tmp_path / "o"
    assert main(["score", "--checkpoint", str(run / "checkpoint.pt"), "--images", str(folders["test"]),
                 "--out", str(out)]) == 0
    meta = json.loads((out / "score.json").read_text())
    held = np.asarray(json.loads((run / "val_scores.json").read_text())["scores"])
    assert meta["threshold"]["value"] == pytest.approx(np.quantile(held, 0.95))
    import csv

    rows = list(csv.DictReader((out / "scores.csv").open()))
    assert all(r["decision"] == ("anomalous" if float(r["score"]) >= meta["threshold"]["value"] * (1 - 1e-6)
                                 else "normal") for r in rows)
    assert "decision at" in capsys.readouterr().out


def test_evaluate_prints_both_thresholds_labelled(run, folders, capsys):
    assert main(["evaluate", "--checkpoint", str(run / "checkpoint.pt"), "--data", str(folders["test"])]) == 0
    out = capsys.readouterr().out
    assert "held-out normal scores, no test label" in out and "best F1 on these test labels" in out


# 7. Messages.

def test_a_hostile_or_empty_checkpoint_is_refused_without_torchs_advice(tmp_path, folders, capsys):
    import torch

    class Hostile:
        def __reduce__(self):
            return (os.system, ("true",))

    torch.save({"x": Hostile()}, tmp_path / "hostile.pt")
    (tmp_path / "empty.pt").write_bytes(b"")
    for name, said in (("hostile.pt", "loading it could run code"), ("empty.pt", "is empty (0 bytes)")):
        assert main(["evaluate", "--checkpoint", str(tmp_path / name), "--data", str(folders["test"])]) == 2
        err = one_line_error(capsys)
        assert said in err and "weights_only" not in err


def test_a_refused_resume_says_which_setting_differs(folders, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--data", str(folders["train"]), "--out", str(out), *TINY, "--lr", "0.001"]) == 0
    capsys.readouterr()
    assert main(["train", "--data", str(folders["train"]), "--out", str(out), *TINY, "--lr", "0.002",
                 "--resume"]) == 2
    assert "training.lr: 0.001 there, 0.002 now" in one_line_error(capsys)


def test_a_float_setting_written_as_yaml_reads_it_is_a_number(tmp_path):
    import yaml

    from hetero_ae.experiment.profiles import load_profile

    settings = yaml.safe_load(open("profiles/smoke.yaml"))
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(settings).replace("min_delta: 0.0", "min_delta: 1e-3"))
    assert yaml.safe_load((tmp_path / "p.yaml").read_text())["min_delta"] == "1e-3"  # YAML 1.1: a string
    assert load_profile(str(tmp_path / "p.yaml")).min_delta == 0.001


def test_patience_without_held_out_normals_is_refused_up_front(folders, tmp_path, capsys):
    assert main(["train", "--data", str(folders["train"]), "--out", str(tmp_path / "o"), *TINY,
                 "--val-fraction", "0", "--patience", "3"]) == 2
    assert "--patience" in one_line_error(capsys) and not (tmp_path / "o").exists()
