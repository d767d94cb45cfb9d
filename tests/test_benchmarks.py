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
                "--workers", "0", "--out", str(out)])
    results = json.loads(out.read_text())
    assert results["cuda"] == {"kept": True}  # another device's figures stay
    cpu = results["cpu"]
    assert cpu["train"]["images"] == 12 and cpu["score"]["images"] == 10
    for part in ("train", "score"):
        assert cpu[part]["images_per_second"] > 0 and cpu[part]["encoder_forward_images_per_second"] > 0
        assert cpu[part]["peak_memory_mb"] > 0
    assert cpu["train"]["epoch_seconds"] > 0 and cpu["image_size"] == 64
