"""The throughput benchmark runs end to end on a tiny set and records what it measured (no timing asserted)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_throughput_benchmark_writes_training_and_scoring_figures_beside_the_floor(tmp_path):
    spec = importlib.util.spec_from_file_location("throughput", ROOT / "benchmarks" / "throughput.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "benchmarks.json"
    (out).write_text(json.dumps({"cuda": {"kept": True}}))
    bench.main(["--size", "64", "--train-images", "12", "--score-images", "10", "--batch-size", "4",
                "--epochs", "2", "--score-workers", "0", "--out", str(out)])
    results = json.loads(out.read_text())
    assert results["cuda"] == {"kept": True}  # another device's figures stay
    cpu = results["cpu"]
    assert set(cpu["variants"]) == {"fp32", "bf16"} and cpu["image_size"] == 64 and cpu["peak_memory_mb"] > 0
    for name, v in cpu["variants"].items():
        assert v["precision"] == name and v["compile"] is None
        assert v["train"]["images"] == 12 and v["score"]["images"] == 10
        for part in ("train", "score"):
            assert v[part]["images_per_second"] > 0 and v[part]["encoder_forward_images_per_second"] > 0
        assert len(v["train"]["epochs"]) == 2 and all(e["memory_mb"] > 0 for e in v["train"]["epochs"])
    onnx = cpu["variants"]["fp32"]["score_onnxruntime"]  # exported and scored in the same run, fp32 only
    assert onnx["images"] == 10 and onnx["images_per_second"] > 0 and "score_onnxruntime" not in cpu["variants"]["bf16"]
    assert set(onnx["max_abs_diff_from_pytorch"]) == {"anomaly_map", "score", "feature_distance"}


def test_convergence_benchmark_records_cached_and_uncached_epochs_and_a_stopped_run(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("convergence", ROOT / "benchmarks" / "convergence.py")
    bench = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "convergence", bench)  # the generating processes find its functions
    spec.loader.exec_module(bench)
    out = tmp_path / "benchmarks.json"
    args = ["--size", "64", "--epoch-images", "8", "--train-images", "16", "--test-images", "12", "--batch-size", "4",
            "--batch-size-converge", "8", "--cap", "3", "--out", str(out), "--data-cache", str(tmp_path / "data")]
    bench.main(args)
    entry = json.loads(out.read_text())["convergence"]["cpu"]
    assert [e["encoder"] for e in entry["epoch"]] == ["resnet18", "efficientnet-lite0"]
    for e in entry["epoch"]:
        assert e["cached_epoch_seconds"] > 0 and e["uncached_epoch_seconds"] > 0 and e["cache"].startswith("train 8")
    (run,) = entry["converge"]
    assert run["train_images"] == 16 and run["held_out_images"] == 2 and 1 <= run["epochs"] <= 3
    assert run["stop_reason"] in ("plateau", "cap") and 0 <= run["test_auc"] <= 100 and run["peak_memory_mb"] > 0
    generated = sorted((tmp_path / "data").glob("*.npy"))
    assert len(generated) == 5  # the epoch timing's set and its held-out set (one size here), normals, held-out, test
    mtimes = [p.stat().st_mtime_ns for p in generated]
    bench.main([*args, "--skip-epochs"])
    assert [p.stat().st_mtime_ns for p in sorted((tmp_path / "data").glob("*.npy"))] == mtimes, "read, not rewritten"


def test_side_by_side_benchmark_times_both_ways_and_keeps_other_entries(tmp_path):
    spec = importlib.util.spec_from_file_location("side_by_side", ROOT / "benchmarks" / "side_by_side.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "benchmarks.json"
    earlier = {"epochs": 9, "sequential_seconds": 1.0, "side_by_side_seconds": 2.0, "speed_up": 0.5}
    out.write_text(json.dumps({"convergence": {"kept": True}, "side_by_side": {"cpu": {"methods": {"mkd": earlier}}}}))
    entry = bench.main(["--profile", "smoke", "--methods", "ae", "--epochs", "1", "--datasets", "synth-oct",
                        "synth-covid19", "--data-root", str(tmp_path / "data"), "--out", str(out)])
    results = json.loads(out.read_text())
    assert results["convergence"] == {"kept": True}
    assert results["side_by_side"]["cpu"] == {**entry, "methods": {"mkd": earlier, **entry["methods"]}}
    run = entry["methods"]["ae"]
    assert run["epochs"] == 1 and run["sequential_seconds"] > 0 and run["side_by_side_seconds"] > 0
    assert run["speed_up"] == pytest.approx(run["sequential_seconds"] / run["side_by_side_seconds"], rel=0.01)
