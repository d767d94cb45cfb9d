"""``hetero-ae export`` and ``score --onnx``: the exported scoring function gives PyTorch's maps and scores.

Tolerance (``onnx_model.TOLERANCE``): onnxruntime's outputs may differ from PyTorch's float32
outputs by at most 1e-4 of the output's largest magnitude; measured differences are about 1e-6 of it.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from conftest import blob_image, write_png

import hetero_ae.evaluation.onnx_model as onnx_model
from hetero_ae.cli import main
from hetero_ae.data.images import list_images, load_image
from hetero_ae.evaluation.onnx_model import TOLERANCE, OnnxScorer, ScoringFunction
from hetero_ae.io import file_digest
from hetero_ae.training.checkpoint import load_model

SIZE = 64
HETERO_AE = ["--encoder", "efficientnet-lite0", "--image-size", str(SIZE), "--epochs", "1", "--batch-size", "4",
             "--threads", "2", "--val-fraction", "0.25"]


def error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert err and err[-1].startswith("hetero-ae: error:"), err
    return err[-1]


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """A one-epoch 64 px Hetero-AE (EfficientNet-Lite0, its shipped weights) that held out 3 normals, exported."""
    root = tmp_path_factory.mktemp("onnx_run")
    rng = np.random.default_rng(3)
    for i in range(12):
        write_png(root / "train" / f"n{i}.png", blob_image(rng))
    assert main(["train", "--data", str(root / "train"), "--out", str(root / "run"), *HETERO_AE]) == 0
    assert main(["export", "--checkpoint", str(root / "run" / "checkpoint.pt"), "--out", str(root / "model.onnx")]) == 0
    return root


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("onnx_images")
    rng = np.random.default_rng(4)
    for i in range(5):
        write_png(root / "normal" / f"n{i}.png", blob_image(rng))
        write_png(root / "anomalous" / f"a{i}.png", blob_image(rng, lesion=True))
    return root


def rows(folder: Path) -> list[dict[str, str]]:
    with open(folder / "scores.csv", newline="") as f:
        return list(csv.DictReader(f))


def close(ours: np.ndarray, theirs: np.ndarray) -> bool:
    return float(np.abs(ours - theirs).max()) <= TOLERANCE * float(np.abs(ours).max())


def test_maps_scores_and_distances_equal_pytorch_within_the_tolerance(run, images):
    model, _ = load_model(run / "run" / "checkpoint.pt")
    scorer = OnnxScorer(run / "model.onnx")
    decoded = np.stack([load_image(p, SIZE) for p in list_images(images)])  # the pipeline's decoding
    with torch.inference_mode():
        ours = [t.numpy() for t in ScoringFunction(model)(torch.from_numpy(decoded))]
    theirs = scorer.run(decoded)
    assert scorer.outputs == ("anomaly_map", "score", "feature_distance")
    assert [a.shape for a in theirs] == [(10, SIZE, SIZE), (10,), (10,)]
    for a, b in zip(ours, theirs):
        assert close(a, b), float(np.abs(a - b).max())
    assert np.array_equal(np.argsort(ours[1]), np.argsort(theirs[1]))  # the same ranking of the images
    # and the maps are worth comparing: they vary over the image
    assert theirs[0].std(axis=(1, 2)).min() > 0


def test_the_batch_size_is_free_and_the_input_is_uint8_images(run, images):
    scorer = OnnxScorer(run / "model.onnx")
    graph_input = scorer.session.get_inputs()[0]
    assert graph_input.type == "tensor(uint8)" and graph_input.shape[1:] == [SIZE, SIZE, 3]
    decoded = np.stack([load_image(p, SIZE) for p in list_images(images)])
    one_by_one = np.concatenate([scorer.run(decoded[i : i + 1])[1] for i in range(len(decoded))])
    assert close(scorer.run(decoded)[1], one_by_one)


def test_score_onnx_writes_the_rows_pytorch_writes(run, images, tmp_path):
    common = ["--images", str(images), "--batch-size", "3", "--workers", "0"]
    assert main(["score", "--checkpoint", str(run / "run" / "checkpoint.pt"), "--out", str(tmp_path / "pt"), *common]) == 0
    assert main(["score", "--onnx", str(run / "model.onnx"), "--out", str(tmp_path / "ort"), *common]) == 0
    pt, ort = rows(tmp_path / "pt"), rows(tmp_path / "ort")
    assert [(r["path"], r["class"], r["label"]) for r in pt] == [(r["path"], r["class"], r["label"]) for r in ort]
    for column in ("score", "feature_distance"):
        assert close(np.array([float(r[column]) for r in pt]), np.array([float(r[column]) for r in ort]))
    threshold = json.loads((tmp_path / "pt" / "score.json").read_text())["threshold"]
    sidecar = json.loads((tmp_path / "ort" / "score.json").read_text())
    assert sidecar["threshold"] == threshold and sidecar["runtime"] == "onnxruntime"
    margin = TOLERANCE * abs(threshold["value"])
    for p, o in zip(pt, ort):  # the same decision wherever the score is not within the tolerance of the threshold
        if abs(float(p["score"]) - threshold["value"]) > margin:
            assert p["decision"] == o["decision"]


def test_the_metadata_records_what_a_deployment_needs(run):
    meta = {p.key: p.value for p in onnx.load(str(run / "model.onnx")).metadata_props}
    config = json.loads((run / "run" / "config.json").read_text())
    assert meta["format"] == onnx_model.FORMAT and int(meta["image_size"]) == SIZE
    assert json.loads(meta["model_config"]) == config["model"]
    assert meta["checkpoint_sha256"] == file_digest(run / "run" / "checkpoint.pt")
    norm = json.loads(meta["input_normalisation"])
    assert norm["in_graph"] and np.allclose(norm["mean"], [123.675, 116.28, 103.53])
    assert np.allclose(norm["std"], [58.395, 57.12, 57.375])
    scores = json.loads((run / "run" / "val_scores.json").read_text())["scores"]
    assert json.loads(meta["threshold"])["value"] == pytest.approx(np.quantile(scores, 0.95))
    assert "bilinear" in meta["decoding"] and meta["score_normalisation"].startswith("none")


def test_a_method_without_a_feature_distance_exports_two_outputs(tmp_path, images):
    rng = np.random.default_rng(5)
    for i in range(4):
        write_png(tmp_path / "train" / f"n{i}.png", blob_image(rng))
    assert main(["train", "--data", str(tmp_path / "train"), "--out", str(tmp_path / "run"), "--method", "ae",
                 "--param", "latent_dim=8", "--param", "base_channels=8", "--image-size", "64", "--epochs", "1",
                 "--val-fraction", "0", "--threads", "2"]) == 0
    assert main(["export", "--checkpoint", str(tmp_path / "run" / "checkpoint.pt"), "--out", str(tmp_path / "ae.onnx")]) == 0
    scorer = OnnxScorer(tmp_path / "ae.onnx")
    assert scorer.outputs == ("anomaly_map", "score") and scorer.threshold is None
    assert main(["score", "--onnx", str(tmp_path / "ae.onnx"), "--images", str(images), "--out", str(tmp_path / "s"),
                 "--workers", "0"]) == 0
    assert list(rows(tmp_path / "s")[0]) == ["path", "class", "label", "score"]


def test_an_export_that_differs_from_pytorch_is_refused_and_writes_nothing(run, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(onnx_model, "TOLERANCE", -1.0)  # every difference, even 0, is then too large
    out = tmp_path / "model.onnx"
    assert main(["export", "--checkpoint", str(run / "run" / "checkpoint.pt"), "--out", str(out)]) == 2
    assert "differ from PyTorch's" in error_line(capsys)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("case, expected", [
    ("missing", "ONNX model not found"),
    ("not onnx", "is not a readable ONNX model"),
    ("foreign onnx", "hetero-ae export did not write"),
    ("precision", "--precision bf16 does not apply to --onnx"),
    ("both", "not allowed with argument"),
    ("onnx as checkpoint", "is an ONNX model, not a checkpoint"),
])
def test_score_onnx_bad_input_is_one_line_and_exit_2(case, expected, run, images, tmp_path, capsys):
    model = run / "model.onnx"
    extra: list[str] = []
    if case == "missing":
        model = tmp_path / "absent.onnx"
    elif case == "not onnx":
        model = run / "run" / "checkpoint.pt"
    elif case == "foreign onnx":
        proto = onnx.load(str(run / "model.onnx"))
        del proto.metadata_props[:]
        model = tmp_path / "foreign.onnx"
        onnx.save_model(proto, str(model))
    elif case == "precision":
        extra = ["--precision", "bf16"]
    elif case == "both":
        extra = ["--checkpoint", str(run / "run" / "checkpoint.pt")]
    argv = ["score", "--onnx", str(model), "--images", str(images), "--out", str(tmp_path / "out"), *extra]
    if case == "onnx as checkpoint":
        argv[1] = "--checkpoint"
    if case == "both":
        with pytest.raises(SystemExit) as e:
            main(argv)
        assert e.value.code == 2 and expected in capsys.readouterr().err
    else:
        assert main(argv) == 2
        assert expected in error_line(capsys)
    assert not (tmp_path / "out").exists()


def test_export_bad_input_is_one_line_and_exit_2(run, tmp_path, monkeypatch, capsys):
    assert main(["export", "--checkpoint", str(run / "run" / "checkpoint.pt"), "--out", str(tmp_path)]) == 2
    assert "is a folder" in error_line(capsys)
    assert main(["export", "--checkpoint", str(tmp_path / "none.pt"), "--out", str(tmp_path / "m.onnx")]) == 2
    assert "checkpoint not found" in error_line(capsys)

    def missing(name):
        raise ImportError(name)

    monkeypatch.setattr(onnx_model, "import_module", missing)
    assert main(["export", "--checkpoint", str(run / "run" / "checkpoint.pt"), "--out", str(tmp_path / "m.onnx")]) == 2
    assert "pip install -e '.[onnx]'" in error_line(capsys)
    assert not (tmp_path / "m.onnx").exists()


def test_the_readme_scores_an_image_without_pytorch_as_score_onnx_does(run, images, tmp_path, monkeypatch):
    """The snippet of docs/onnx.md ("Deploying with ONNX", linked from the README) runs as it is."""
    page = (Path(__file__).resolve().parents[1] / "docs" / "onnx.md").read_text()
    section = page.split("# Deploying with ONNX", 1)[1]
    snippet = "\n".join(line[2:] for line in section.split("```python\n", 1)[1].split("```", 1)[0].splitlines())
    image = sorted((images / "anomalous").iterdir())[0]
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine.onnx").symlink_to(run / "model.onnx")
    (tmp_path / "scan.png").symlink_to(image)
    printed: list[tuple] = []
    exec(compile(snippet, "docs/onnx.md", "exec"), {"print": lambda *a: printed.append(a)})
    assert main(["score", "--onnx", "mine.onnx", "--images", "scan.png", "--out", "scored", "--workers", "0"]) == 0
    row = rows(tmp_path / "scored")[0]
    (score, decision), = printed
    assert float(score) == pytest.approx(float(row["score"]), rel=1e-5) and decision == row["decision"]


def test_a_resumed_score_cannot_switch_between_pytorch_and_onnxruntime(run, images, tmp_path, capsys):
    common = ["--images", str(images), "--out", str(tmp_path / "out"), "--workers", "0"]
    checkpoint = str(run / "run" / "checkpoint.pt")
    assert main(["score", "--checkpoint", checkpoint, *common]) == 0
    before = (tmp_path / "out" / "scores.csv").read_bytes()
    assert main(["score", "--onnx", str(run / "model.onnx"), "--resume", *common]) == 2
    assert f"written by pytorch with --checkpoint {checkpoint}: resume with --checkpoint" in error_line(capsys)
    assert (tmp_path / "out" / "scores.csv").read_bytes() == before


def test_patchcore_a_method_that_learns_no_weight_exports_and_scores_as_pytorch_does(tmp_path, images):
    rng = np.random.default_rng(6)
    for i in range(6):
        write_png(tmp_path / "train" / f"n{i}.png", blob_image(rng))
    assert main(["train", "--data", str(tmp_path / "train"), "--out", str(tmp_path / "run"), "--method", "patchcore",
                 "--encoder", "efficientnet-lite0", "--image-size", "64", "--val-fraction", "0.34", "--threads", "2"]) == 0
    # export compares onnxruntime with PyTorch on random images and refuses a difference above TOLERANCE
    assert main(["export", "--checkpoint", str(tmp_path / "run" / "checkpoint.pt"), "--out", str(tmp_path / "pc.onnx")]) == 0
    scorer = OnnxScorer(tmp_path / "pc.onnx")
    assert scorer.outputs == ("anomaly_map", "score") and scorer.threshold is not None  # held-out normals decide
    for how in (["--onnx", str(tmp_path / "pc.onnx")], ["--checkpoint", str(tmp_path / "run" / "checkpoint.pt")]):
        assert main(["score", *how, "--images", str(images), "--out", str(tmp_path / how[0][2:]), "--workers", "0"]) == 0
    onnx_scores = [float(r["score"]) for r in rows(tmp_path / "onnx")]
    torch_scores = [float(r["score"]) for r in rows(tmp_path / "checkpoint")]
    assert np.allclose(onnx_scores, torch_scores, rtol=TOLERANCE, atol=TOLERANCE * max(map(abs, torch_scores)))
