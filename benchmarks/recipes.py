"""A cheaper converged run: each method's recipe against its profile recipe, on the design benchmark.

The issue "Decide the paper's claims", item 0: the study's cost is its constraint, so before any
seed is added, each method's recipe is chosen to reach its held-out plateau in the least wall
time without losing design AUC. Everything here trains on the **design benchmark** (synthetic
data generated with ``--design-seed`` 1, never the reported seed-0 data), one run at a time.

For each method and image size:

- **before**: the profile's recipe under the profile's rule, exactly as the committed runs trained
  (constant learning rate; Hetero-AE patience 15, min_delta 0.005; the baselines 5 and 0.01;
  ``keep: best``).
- **candidates** (``RECIPES``): the profile's recipe itself, trained without a rule (its rate
  does not depend on one, so every patience replays on it exactly; at the profile's size the
  stopping-rule study's long run of the same run is reused), and the same method with a schedule
  that lowers the learning rate on the held-out plateau (``TrainConfig.lr_patience``, tenfold after every 5 epochs without an
  improvement), and where named another learning rate or batch. Each trains once with
  ``min_delta`` 0, ``keep: lowest`` and ``LONG_PATIENCE`` 30; the weights of every epoch with a
  new lowest held-out loss are kept aside. Because the rate falls after every 5 epochs without
  an improvement whatever the patience, the run a shorter patience would have made is this run
  cut at that patience's stop: each of ``PATIENCES`` is replayed on the curve, giving the
  epoch it stops at, the time to get there and the design AUC of the weights it keeps.

Times: the setup (the frozen-feature cache) plus the epochs at the run's *median* epoch time
(``median_seconds``; the wall time as measured is kept beside it), because a shared VM's busy
spells lengthen some epochs several times over and would decide the comparison otherwise.

The recipe chosen for a method is the cheapest candidate at the headline patience (``HEADLINE``,
15) whose curve passes the convergence test at its stop, before its cap, and whose kept weights
are within ``--auc-tolerance`` AUC points of the profile recipe's under the same rule (so a
recipe and a rule are never compared with another rule); if none is, the profile's recipe
stays. At ``--sizes``' larger sizes only *before*, the profile's recipe and the recipe chosen
at the first size are trained.
Results go to ``--out`` (``results/design/recipes.json``), written after every epoch; a killed
study resumes at the run it was in (that run starts again). At the end (and with ``--report-only``)
each finished candidate gets its ``replays`` (the table's rows) and each *before* its minutes, so
that documents cite them from the file.

    .venv/bin/python benchmarks/recipes.py                       # 128 then 256 px (about two hours on 2 cores)
    .venv/bin/python benchmarks/recipes.py --report-only         # the table from the committed runs
    .venv/bin/python benchmarks/recipes.py --preset smoke --sizes 64 --cap 4 --methods ae
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from stopping_rule import _auc, _splits, long_run, replay  # noqa: E402  (the sibling study's long runs)

from hetero_ae.data.identity import data_identity  # noqa: E402
from hetero_ae.data.overview import ensure_synthetic  # noqa: E402
from hetero_ae.experiment.profiles import load_profile  # noqa: E402
from hetero_ae.experiment.specs import RunSpec, run_spec  # noqa: E402
from hetero_ae.io import write_json  # noqa: E402
from hetero_ae.report.manifest import device_description  # noqa: E402
from hetero_ae.training.loop import train  # noqa: E402
from hetero_ae.training.stopping import still_falling  # noqa: E402

LR_PATIENCE = 5
LONG_PATIENCE = 30
PATIENCES = (10, 15, 20, 30)
HEADLINE = 15
PROFILE = "profile (constant rate)"  # the profile's own recipe, the reference every candidate is held to
# the candidates: the profile's recipe, and others that lower their rate on the plateau (LR_PATIENCE)
RECIPES: dict[str, dict[str, dict[str, Any]]] = {
    "hetero-ae": {PROFILE: {"constant": True}, "plateau": {}, "plateau, lr x3": {"lr_scale": 3.0}},
    "rd4ad": {PROFILE: {"constant": True}, "plateau": {}, "plateau, batch 32": {"batch_size": 32}},
    "mkd": {PROFILE: {"constant": True}, "plateau": {}, "plateau, lr x3": {"lr_scale": 3.0}},
    "stfpm": {PROFILE: {"constant": True}, "plateau": {}},
}


def candidate_config(spec: RunSpec, recipe: dict[str, Any], cap: int):
    """The training settings of a candidate's long run: the profile's recipe without a rule (its rate does
    not depend on one, so any patience replays on it), or a plateau schedule under the longest patience."""
    if recipe.get("constant"):
        return replace(spec.train, epochs=cap, patience=0)
    return replace(spec.train, epochs=cap, lr=spec.train.lr * recipe.get("lr_scale", 1.0),
                   batch_size=recipe.get("batch_size", spec.train.batch_size), patience=LONG_PATIENCE,
                   min_delta=0.0, keep="lowest", lr_patience=LR_PATIENCE)


def reused_long_run(rule_study: Path, dataset: str, spec: RunSpec, cap: int) -> dict[str, Any] | None:
    """The stopping-rule study's long run of the same run (same name, so the same recipe, size and
    data seed; same cap), which is the profile recipe's candidate here: trained once, not twice."""
    if not rule_study.is_file():
        return None
    from hetero_ae.experiment.specs import run_name

    study = json.loads(rule_study.read_text())
    run = study.get("runs", {}).get(f"{dataset}/{spec.model.method}")
    if not run or not run.get("done") or run["run"] != run_name(spec) or run["cap"] != cap:
        return None
    if any(k in run and run[k] != getattr(spec.train, k) for k in ("lr", "batch_size", "lr_patience")):
        return None  # another recipe under the same name
    return {**run, "reused_from": str(rule_study)}


def before_run(spec: RunSpec, root: Path, work: Path, device: str) -> dict[str, Any]:
    """The profile's recipe under the profile's rule, as the committed runs trained; its design AUC."""
    normals, val, test = _splits(spec, root)
    folder = work / "before"
    shutil.rmtree(folder, ignore_errors=True)
    model, history = train(spec.model, spec.train, normals, folder, val=val, device=device, progress=False)
    curve = [e["val_loss"] for e in history]
    auc = _auc(folder / "checkpoint.pt", test, device)
    shutil.rmtree(folder, ignore_errors=True)
    setup, epoch_seconds = round(history.setup_seconds, 3), [round(e["seconds"], 3) for e in history]
    return {"lr": spec.train.lr, "batch_size": spec.train.batch_size, "patience": spec.train.patience,
            "min_delta": spec.train.min_delta, "cap": spec.train.epochs, "stop": len(curve),
            "kept": history.stop["best_epoch"], "stop_reason": history.stop["stop_reason"],
            "setup_seconds": setup, "epoch_seconds": epoch_seconds, "seconds": round(setup + sum(epoch_seconds), 1),
            "median_seconds": median_seconds(setup, epoch_seconds, len(curve)),
            "auc": auc, "converged": not still_falling(curve), "curve": [round(v, 6) for v in curve], "done": True}


def median_seconds(setup: float, epoch_seconds: list[float], epochs: int) -> float:
    """The time to train ``epochs`` epochs at the run's median epoch time, setup included: what the
    run costs on a machine that nothing else loads (a shared VM's busy spells lengthen some epochs)."""
    return round(setup + epochs * float(np.median(epoch_seconds)), 1)


def replays(record: dict[str, Any]) -> list[dict[str, Any]]:
    """Each of ``PATIENCES`` replayed on a candidate's long run (module docstring)."""
    curve = [e["val_loss"] for e in record["epochs"]]
    rows = []
    for p in PATIENCES:
        stop, kept = replay(curve, p, 0.0)
        seconds = record.get("setup_seconds", 0.0) + sum(e["seconds"] for e in record["epochs"][:stop])
        median = median_seconds(record.get("setup_seconds", 0.0), [e["seconds"] for e in record["epochs"]], stop)
        rows.append({"patience": p, "stop": stop, "kept": kept, "seconds": round(seconds, 1), "median_seconds": median,
                     "median_minutes": round(median / 60, 1),
                     "auc": record["auc"].get(str(kept)), "converged": not still_falling(curve[:stop]),
                     "reached_cap": stop == record["cap"] and len(curve) == record["cap"]})
    return rows


def choose(before: dict[str, Any], candidates: dict[str, dict[str, Any]], tolerance: float) -> str | None:
    """The cheapest candidate at ``HEADLINE`` patience that converges (by the test, before its cap) within
    ``tolerance`` AUC of the reference: the profile's recipe under the same rule where it was run, else
    *before* (the profile's recipe under the profile's rule)."""
    reference = before["auc"]
    own = candidates.get(PROFILE, {})
    if own.get("done"):
        reference = next(r for r in replays(own) if r["patience"] == HEADLINE)["auc"]
    best = None
    for name, record in candidates.items():
        if not record.get("done"):
            continue
        row = next(r for r in replays(record) if r["patience"] == HEADLINE)
        ok = row["converged"] and not row["reached_cap"] and row["auc"] is not None \
            and reference is not None and row["auc"] >= reference - tolerance
        if ok and (best is None or row["median_seconds"] < best[1]):
            best = (name, row["median_seconds"])
    return None if best is None else best[0]


def report(study: dict[str, Any]) -> list[str]:
    lines = []
    for key, entry in study.get("methods", {}).items():
        b = entry.get("before")
        if not b:
            continue
        before = b.get("median_seconds", b["seconds"])
        lines.append(f"{key}: before {before / 60:.1f} min (stop {b['stop']}, {b['stop_reason']}), "
                     f"AUC {b['auc']:.1f}{'' if b['converged'] else ' (still falling)'}")
        for name, record in entry.get("candidates", {}).items():
            if not record.get("done"):
                continue
            for row in replays(record):
                lines.append(f"  {name:<20} patience {row['patience']:>2}: {row['median_seconds'] / 60:5.1f} min "
                             f"(x{before / max(row['median_seconds'], 1e-9):.2f}), stop {row['stop']:>3}, "
                             f"AUC {row['auc']:.1f}{'' if row['converged'] else ' (still falling)'}")
        lines.append(f"  chosen: {entry.get('chosen') or 'the profile recipe (no candidate qualifies)'}")
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--profile", default="cpu")
    p.add_argument("--dataset", default="synth-brain-mri")
    p.add_argument("--methods", default="hetero-ae,rd4ad,mkd,stfpm")
    p.add_argument("--sizes", default="128,256", help="the first chooses; the others train before and the choice")
    p.add_argument("--design-root", type=Path, default=Path("data/design"),
                   help="the first size's data; a size other than the profile's generates under <root>-<size>")
    p.add_argument("--design-seed", type=int, default=1)
    p.add_argument("--preset", default=None, help="default: the profile's synthetic preset")
    p.add_argument("--cap-factor", type=float, default=2.0, help="a candidate's cap: this many times the profile's")
    p.add_argument("--cap", type=int, default=None, help="one cap for every run, before included (tests)")
    p.add_argument("--auc-tolerance", type=float, default=1.0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", type=Path, default=Path("results/design/recipes.json"))
    p.add_argument("--report-only", action="store_true", help="train nothing: print the table of the runs in --out")
    p.add_argument("--rule-study", type=Path, default=Path("results/design/stopping_rule.json"),
                   help="its long runs of the profile recipes at the profile's size are reused, not trained again")
    a = p.parse_args(argv)

    profile = load_profile(a.profile)
    study = json.loads(a.out.read_text()) if a.out.is_file() else {}
    study.setdefault("methods", {})
    study.update(design_seed=a.design_seed, dataset=a.dataset, device=device_description(a.device),
                 profile=profile.profile, lr_patience=LR_PATIENCE, long_patience=LONG_PATIENCE, headline=HEADLINE)

    def save() -> None:
        write_json(a.out, study)

    sizes = [int(s) for s in a.sizes.split(",")]
    if not a.report_only:
        for i, size in enumerate(sizes):
            root = a.design_root if size == profile.image_size else Path(f"{a.design_root}-{size}")
            ensure_synthetic(root, size, a.design_seed, a.preset or profile.synthetic_preset)
            study.setdefault("data", {})[str(size)] = data_identity(a.dataset, root).record()
            for method in a.methods.split(","):
                spec = run_spec(profile, a.dataset, method, 0)
                spec = replace(spec, model=replace(spec.model, image_size=size))
                if a.cap:
                    spec = replace(spec, train=replace(spec.train, epochs=a.cap))
                key = f"{size}/{method}"
                entry = study["methods"].setdefault(key, {"candidates": {}})
                work = root / ".recipe-runs" / key.replace("/", "-")
                if not entry.get("before", {}).get("done"):
                    print(f"{key}: before (the profile's recipe and rule)", file=sys.stderr, flush=True)
                    entry["before"] = before_run(spec, root, work, a.device)
                    save()
                names = list(RECIPES.get(method, {})) if i == 0 else \
                    list(dict.fromkeys([PROFILE, study["methods"].get(f"{sizes[0]}/{method}", {}).get("chosen")]))
                for name in [n for n in names if n]:
                    if entry["candidates"].get(name, {}).get("done"):
                        continue
                    cap = a.cap or max(1, round(a.cap_factor * spec.train.epochs))
                    cfg = candidate_config(spec, RECIPES[method][name], cap)
                    reused = reused_long_run(a.rule_study, a.dataset, spec, cap) if RECIPES[method][name].get(
                        "constant") and size == profile.image_size and a.design_seed == 1 else None
                    if reused:
                        entry["candidates"][name] = {**reused, "recipe": RECIPES[method][name], "lr": cfg.lr,
                                                     "batch_size": cfg.batch_size}
                        save()
                        continue
                    print(f"{key}: {name} ({cfg.epochs} epochs at most)", file=sys.stderr, flush=True)

                    def keep(record: dict[str, Any], n: str = name) -> None:
                        entry["candidates"][n] = {**record, "recipe": RECIPES[method][n], "lr": cfg.lr,
                                                  "batch_size": cfg.batch_size}
                        save()

                    record = long_run(f"{key}/{name}", spec, cfg, root, work, a.device, keep,
                                      patiences=PATIENCES, min_deltas=(0.0,))
                    keep(record)
                if i == 0:
                    entry["chosen"] = choose(entry["before"], entry["candidates"], a.auc_tolerance)
                    save()
    for key, entry in study["methods"].items():
        if entry.get("before", {}).get("done") and key.split("/")[0] == str(sizes[0]):
            entry["chosen"] = choose(entry["before"], entry["candidates"], a.auc_tolerance)
        if entry.get("before", {}).get("done"):  # what the table prints, kept for the documents that cite it
            b = entry["before"]
            b["median_minutes"] = round(b.get("median_seconds", b["seconds"]) / 60, 1)
        for record in entry.get("candidates", {}).values():
            if record.get("done"):
                record["replays"] = replays(record)
    save()
    print("\n".join(report(study)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
