"""PatchCore's memory and time: its fit (features, then the greedy coreset) and its scoring, per data set.

PatchCore (``hetero_ae.methods.patchcore``; Roth et al., CVPR 2022) trains no weight: its cost is
one pass of the frozen encoder over the training normals, the greedy k-center coreset of their
patch features (Sec. 3.2: time grows with patches x picks x the projection's 128 dimensions) and,
per test image, a nearest-neighbour search in the bank. This measures, per set:

- the patches the fit sees and the bank it keeps (entries, dimension, MiB), the fit's seconds split
  into the frozen encoder's features and the coreset, and the process's peak resident memory so far
  (the sets run in the order listed, so a set's figure bounds its own peak from above). The
  paper-sized set's coreset (about 160,000 picks, each a pass over 1.6 M projected patches: hours
  on 2 cores) is timed over its first ``--paper-timed-picks`` and projected linearly
  (``coreset_projected``); every pick costs the same, so the projection is exact up to noise;
- scoring: test images per second through ``predict`` (map and re-weighted score), batch 32.

Sets: every training split of ``--profile``'s data sets at its size, read as its runs read them
(``--datasets``), and a brain-MRI-sized set of ``--paper-images`` (1,595: the paper's brain MRI
training normals) synthetic brain slices at ``--paper-size`` (256 px), as ``benchmarks/throughput.py``
builds it (64 distinct slices, repeated: the coreset's time does not depend on content). No AUC is
printed: Table I reports PatchCore's. Results go to ``results/benchmarks.json`` under "patchcore"
(replaced when measured again) and are printed.

    .venv/bin/python benchmarks/patchcore.py                       # the cpu profile's four sets, and 1,595 at 256 px
    .venv/bin/python benchmarks/patchcore.py --datasets synth-oct --paper-images 0
    .venv/bin/python benchmarks/patchcore.py --profile smoke --paper-images 16 --paper-size 64   # quick check
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
import resource
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from throughput import brain_images  # noqa: E402  (the paper-sized synthetic set, built once)

from hetero_ae.data.datasets import load_split  # noqa: E402
from hetero_ae.data.images import to_batch  # noqa: E402
from hetero_ae.experiment.profiles import load_profile  # noqa: E402
from hetero_ae.experiment.specs import ensure_profile_data, profile_root, run_spec  # noqa: E402
from hetero_ae.io import write_json  # noqa: E402
from hetero_ae.methods import build_model  # noqa: E402
from hetero_ae.methods.patchcore import coreset_size, greedy_coreset  # noqa: E402

MiB = 2**20


def peak_rss_mb() -> float:
    """The process's peak resident memory so far, MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def coreset_time(bank: torch.Tensor, picks: int, timed: int, *, seed: int, project_to: int | None) -> float:
    """Seconds of ``greedy_coreset(bank, picks)`` projected from its first ``timed`` picks: the random
    projection and first pick (timed alone), plus the measured time per further pick times the picks
    left. Every pick costs the same (one pass over the bank's projected rows), so the projection
    is linear in ``picks``. ValueError for ``timed`` < 2 (no time per further pick)."""
    if timed < 2:
        raise ValueError(f"the time per pick needs at least 2 timed picks, got {timed}")
    t0 = time.perf_counter()
    greedy_coreset(bank, 1, seed=seed, project_to=project_to)
    t1 = time.perf_counter()
    greedy_coreset(bank, timed, seed=seed, project_to=project_to)
    t2 = time.perf_counter()
    per_pick = max(0.0, (t2 - t1) - (t1 - t0)) / (timed - 1)
    return (t1 - t0) + per_pick * (picks - 1)


def measure(model: Any, train: np.ndarray, test: np.ndarray, batch: int = 32, timed_picks: int = 0) -> dict[str, Any]:
    """Fit ``model`` (a PatchCore) on ``train`` (N, H, W, 3) uint8 and score ``test``: the figures above.

    ``timed_picks`` > 1 and fewer than the coreset's picks: the coreset's time is projected from that
    many picks (``coreset_time``, ``coreset_projected`` True), and the bank scored against is a random
    subset of the coreset's size (the search's time depends on the bank's size, not on which rows).
    """
    model.eval()
    t0 = time.perf_counter()
    with torch.no_grad():
        feats = [model.frozen_features(to_batch(train[i:i + batch])) for i in range(0, len(train), batch)]
    t1 = time.perf_counter()
    patches = sum(f[0].shape[0] * f[0].shape[-2] * f[0].shape[-1] for f in feats)  # the first stage's grid
    picks = coreset_size(patches, model.coreset_ratio)
    projected = 1 < timed_picks < picks and model.coreset_ratio < 1
    with torch.no_grad():
        if projected:  # the bank as fit_features builds it (timed, as in the whole fit), then its coreset projected
            bank = torch.cat([model.patch_features(f).permute(0, 2, 3, 1).reshape(-1, model.dim) for f in feats])
            built = time.perf_counter() - t1
            coreset_s = built + coreset_time(bank, picks, timed_picks, seed=model.seed, project_to=model.projection_dim)
            model.memory_bank = bank[torch.randperm(len(bank), generator=torch.Generator().manual_seed(0))[:picks]]
            del bank
        else:
            model.fit_features(feats)
    t2 = time.perf_counter()
    if not projected:
        coreset_s = t2 - t1
    del feats
    t3 = time.perf_counter()
    with torch.no_grad():
        for i in range(0, len(test), batch):
            model.predict(to_batch(test[i:i + batch]))
    t4 = time.perf_counter()
    bank = model.memory_bank
    return {"train_images": len(train), "patches": int(patches), "bank_entries": int(bank.shape[0]),
            "dimension": int(bank.shape[1]), "bank_mib": round(bank.numel() * bank.element_size() / MiB, 2),
            "features_seconds": round(t1 - t0, 1), "coreset_seconds": round(coreset_s, 1),
            "coreset_projected": projected, "coreset_picks_timed": timed_picks if projected else picks,
            "fit_seconds": round(t1 - t0 + coreset_s, 1), "test_images": len(test),
            "score_images_per_second": round(len(test) / (t4 - t3), 2), "peak_rss_mb": round(peak_rss_mb(), 1)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--profile", default="cpu")
    p.add_argument("--datasets", default=None, help="comma-separated (default: the profile's)")
    p.add_argument("--paper-images", type=int, default=1595, help="0: leave the paper-sized set out")
    p.add_argument("--paper-size", type=int, default=256)
    p.add_argument("--paper-test-images", type=int, default=64)
    p.add_argument("--paper-timed-picks", type=int, default=2000,
                   help="the paper-sized set's coreset time is projected from this many picks (0: run it whole)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--out", type=Path, default=Path("results/benchmarks.json"))
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    profile = load_profile(a.profile)
    datasets = a.datasets.split(",") if a.datasets else list(profile.datasets)
    ensure_profile_data(profile, profile.data_root, datasets, replace=False)
    results: dict[str, Any] = {"profile": profile.profile, "threads": torch.get_num_threads(), "torch": torch.__version__,
                               "measured": time.strftime("%Y-%m-%d"), "sets": {}}
    for dataset in datasets:
        spec = run_spec(profile, dataset, "patchcore", 0)
        root = profile_root(profile, dataset, profile.data_root)
        train = load_split(dataset, "train", spec.model.image_size, root=root)
        test = load_split(dataset, "test", spec.model.image_size, root=root)
        torch.manual_seed(0)
        r = measure(build_model(spec.model), train.images, test.images, spec.train.batch_size)
        results["sets"][f"{dataset} at {spec.model.image_size} px"] = {**r, "encoder": spec.model.encoder}
        print(f"{dataset} at {spec.model.image_size} px: {json.dumps(r)}", flush=True)
    if a.paper_images:
        spec = run_spec(profile, datasets[0], "patchcore", 0)
        spec = replace(spec, model=replace(spec.model, image_size=a.paper_size))
        images = brain_images(a.paper_images + a.paper_test_images, a.paper_size)
        torch.manual_seed(0)
        r = measure(build_model(spec.model), images[:a.paper_images], images[a.paper_images:], spec.train.batch_size,
                    timed_picks=a.paper_timed_picks)
        name = f"{a.paper_images} synthetic brain slices at {a.paper_size} px"
        results["sets"][name] = {**r, "encoder": spec.model.encoder}
        print(f"{name}: {json.dumps(r)}", flush=True)
    everything = json.loads(a.out.read_text()) if a.out.is_file() else {}
    everything["patchcore"] = results
    write_json(a.out, everything)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
