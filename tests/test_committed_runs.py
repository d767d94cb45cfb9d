"""A clean checkout reuses its committed runs: the default profile's data, generated here, find every one.

This is what CI checks on a clean clone (``./run_tests.sh``): a change to the generator, the data
layouts, the cache key or a pinned library that would make the committed results unreachable
fails here instead of sending users into hours of training.
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PROFILE = ROOT / "profiles" / "cpu.yaml"
# every committed run is one of the default profile's, and the profile asks for no other
COMMITTED = len(list((ROOT / "results" / "runs").glob("*/*/*/metrics.json")))


def check(data: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hetero_ae", "run-profile", "--profile", str(PROFILE), "--check",
                           "--data-root", str(data), "--results", str(ROOT / "results")],
                          cwd=ROOT, capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def fresh(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """``--check`` on a data root with nothing in it: it generates the profile's benchmark first."""
    data = tmp_path_factory.mktemp("fresh")
    return data, check(data)


def test_every_run_of_the_default_profile_is_a_cache_hit_on_freshly_generated_data(fresh):
    data, done = fresh
    assert (data / "synthetic" / "synthetic.json").is_file()
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert f"all {COMMITTED} run(s) are in the cache" in done.stdout


def test_the_regenerated_pixels_are_those_the_committed_runs_were_trained_on(fresh):
    from hetero_ae.data.identity import data_identity

    data, done = fresh
    recorded = {json.loads(c.read_text())["data"]["digest"] for c in (ROOT / "results" / "runs").glob(
        "*/synth-oct/*/config.json")}
    here = data_identity("synth-oct", data).digest
    if platform.machine() not in ("x86_64", "AMD64"):
        assert "content differs" in done.stderr or recorded == {here}  # reported, not silent
        pytest.skip("numpy's kernels on this architecture may round a few pixels otherwise")
    assert recorded == {here} and "content differs" not in done.stderr


def test_the_decision_studys_committed_runs_are_cache_hits_on_the_same_fresh_data(fresh):
    """The study (``profiles/study.yaml``) trains over many stops, committing its runs as they finish:
    a fresh clone continues it instead of training them again. Only the datasets it trains at one size
    here, so that no data at its second size are generated."""
    import re

    from hetero_ae.experiment.profiles import load_profile

    data, _ = fresh
    study = ROOT / "results" / "study"
    two_sizes = set(load_profile("study").second_size_datasets)
    datasets = sorted({m.parent.parent.name for m in study.glob("runs/*/*/*/metrics.json")} - two_sizes)
    if not datasets:
        pytest.skip("no study run committed on a dataset it trains at one size")
    committed = sum(1 for d in datasets for _ in study.glob(f"runs/*/{d}/*/metrics.json"))
    done = subprocess.run([sys.executable, "-m", "hetero_ae", "run-profile", "--profile", "study", "--check",
                           "--data-root", str(data), "--results", str(study), "--datasets", *datasets],
                          cwd=ROOT, capture_output=True, text=True, timeout=900)
    found = re.search(r"(\d+) of (\d+) run\(s\) are not in the cache", done.stdout)
    if found is None:
        assert f"all {committed} run(s) are in the cache" in done.stdout, done.stdout[-3000:] + done.stderr[-3000:]
    else:
        assert int(found[2]) - int(found[1]) == committed, done.stdout[:3000]
        assert "cached for" not in done.stdout  # a miss is a run not trained yet, never other data


def test_data_generated_with_another_seed_miss_and_the_check_names_the_runs_and_why(tmp_path):
    from hetero_ae.data.synthetic import make_synthetic

    make_synthetic(tmp_path / "synthetic", size=128, seed=1, preset="default", workers=2)
    done = check(tmp_path)
    assert done.returncode == 1
    assert f"{COMMITTED} of {COMMITTED} run(s) are not in the cache" in done.stdout
    assert "missing: hetero-ae (feature_scale rms) on synth-oct, seed 0, 128 px" in done.stdout
    assert "missing: rd4ad on synth-covid19, seed 1, 128 px" in done.stdout
    assert "cached for synthetic, generator v1, seed 0, 128 px, preset default; the data here are synthetic, " \
           "generator v1, seed 1" in done.stdout
    assert json.loads((tmp_path / "synthetic" / "synthetic.json").read_text())["seed"] == 1  # left as it was


def test_every_committed_run_with_weights_keeps_the_held_out_scores_it_was_evaluated_with():
    """`score --checkpoint <run>/weights.pt` decides with the run's val_scores.json: the same held-out normals
    whose 95 % quantile is the run's recorded normal_q95 threshold."""
    import numpy as np

    from hetero_ae.evaluation.metrics import normal_quantile_threshold
    from hetero_ae.training.run_folder import read_val_scores

    weights = sorted((ROOT / "results" / "runs").glob("*/*/*/weights.pt"))
    assert weights
    for w in weights:
        held = read_val_scores(w.parent)
        assert held, f"{w.parent} has no val_scores.json"
        recorded = json.loads((w.parent / "metrics.json").read_text())["normal_q95"]["threshold"]
        assert normal_quantile_threshold(np.asarray(held)) == pytest.approx(recorded, rel=1e-6), w.parent
