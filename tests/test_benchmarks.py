"""The throughput benchmark runs end to end on a tiny set and records what it measured (no timing asserted)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

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
