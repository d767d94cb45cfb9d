"""Runs one after another on every core, against the same runs side by side on one core each.

What ``./run_all.sh --jobs`` (``hetero-ae run-profile --jobs``, the profile's ``train_jobs``)
rests on: the networks of these runs are small, so one process does not keep every core busy,
and two one-thread processes finish two runs sooner than one process with two threads. For
each method, two runs of the profile (two datasets, a fixed number of epochs, no stopping
rule) are trained, scored and evaluated first one after another (``jobs`` 1, all cores'
threads), then side by side (``jobs`` N, cores / N threads each), each time into an empty
results folder. Prints the wall times and their ratio; with ``--out``, results/benchmarks.json
gets them under ``side_by_side`` (one entry per device).

    .venv/bin/python benchmarks/side_by_side.py --out results/benchmarks.json   # the profile's methods, DEFAULT_EPOCHS
    .venv/bin/python benchmarks/side_by_side.py --methods ae --epochs 5 --profile smoke

Runs need a minute or more each for the figure to mean anything: a spawned worker first pays
for importing torch, which a run of a few seconds does not amortise. ``--out`` adds or replaces
the entries of the methods measured and keeps the others.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

from hetero_ae.data.datasets import data_root
from hetero_ae.experiment.profiles import load_profile
from hetero_ae.experiment.runs import run_experiments
from hetero_ae.experiment.specs import ensure_profile_data, run_spec
from hetero_ae.methods import method_class
from hetero_ae.io import write_json
from hetero_ae.training.runtime import cpu_threads

# per run: each about a minute on the 2-core CPU (cpu profile); a method not named here trains 5 epochs
DEFAULT_EPOCHS = {"hetero-ae": 20, "ae": 20, "vae": 20, "ganomaly": 6, "f-anogan": 8, "salad": 8, "stfpm": 4,
                  "mkd": 10, "rd4ad": 6}


def timed(specs: list, jobs: int, root: str) -> float:
    with tempfile.TemporaryDirectory() as results:
        t0 = time.perf_counter()
        run_experiments(specs, jobs=jobs, results=results, root=root)
        return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--profile", default="cpu")
    p.add_argument("--methods", nargs="+", default=None,
                   help="default: the profile's methods that train weights (a one-fit method has no epochs to share)")
    p.add_argument("--datasets", nargs=2, default=["synth-brain-mri", "synth-chest-xray"])
    p.add_argument("--epochs", type=int, default=None, help="per run (default: DEFAULT_EPOCHS, else 5)")
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--data-root", default=None, help="default: $HETERO_AE_DATA, else the profile's data_root")
    p.add_argument("--out", type=Path, default=None, help="e.g. results/benchmarks.json")
    a = p.parse_args(argv)
    profile = load_profile(a.profile)
    root = str(data_root(a.data_root, profile.data_root))
    ensure_profile_data(profile, root, a.datasets, replace=False)
    methods = a.methods or [m for m in profile.methods if method_class(m).trains_weights]
    torch.set_num_threads(cpu_threads())
    entry = {"device": f"cpu: {platform.processor() or platform.machine()}, {cpu_threads()} cores",
             "torch": torch.__version__, "measured": time.strftime("%Y-%m-%d %H:%M:%S"), "profile": a.profile,
             "jobs": a.jobs, "datasets": a.datasets, "methods": {}}
    print(f"{entry['device']}; two runs per method ({', '.join(a.datasets)}), profile {a.profile}")
    print(f"{'method':>10} {'epochs':>6} {'one after another s':>20} {f'{a.jobs} side by side s':>18} {'speed-up':>9}")
    for method in methods:
        epochs = a.epochs or DEFAULT_EPOCHS.get(method, 5)
        specs = []
        for dataset in a.datasets:
            spec = run_spec(profile, dataset, method, 0)
            specs.append(dataclasses.replace(spec, train=dataclasses.replace(spec.train, epochs=epochs, patience=0)))
        alone = timed(specs, 1, root)
        side = timed(specs, a.jobs, root)
        entry["methods"][method] = {"epochs": epochs, "sequential_seconds": round(alone, 3),
                                    "side_by_side_seconds": round(side, 3), "speed_up": round(alone / side, 3)}
        print(f"{method:>10} {epochs:>6} {alone:>20.1f} {side:>18.1f} {alone / side:>8.2f}x")
    if a.out is not None:
        results = json.loads(a.out.read_text()) if a.out.is_file() else {}
        kept = results.setdefault("side_by_side", {}).get("cpu", {}).get("methods", {})
        results["side_by_side"]["cpu"] = {**entry, "methods": {**kept, **entry["methods"]}}
        write_json(a.out, results)
        print(f"written to {a.out}")
    return entry


if __name__ == "__main__":
    main(sys.argv[1:])
