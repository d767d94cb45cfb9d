"""One stopping rule for every method, chosen on the design benchmark (DESIGN 3.11; issue "Decide the paper's claims").

Each method of the profile (and the Table III decoders, which decide that table) trains on the
**design benchmark** (the synthetic data generated with seed ``--design-seed``, 1: never the
reported seed-0 data) with its profile recipe but **no rule**, for ``--cap-factor`` times its
profile cap. Its held-out loss is recorded every epoch, and the weights of every epoch that
reaches a new lowest held-out loss are kept aside: those are the only weights a run with
``keep="lowest"`` can end with. A candidate rule (patience, min_delta) is then replayed on each
curve with ``training.stopping.Stopping`` itself (training is deterministic per seed, so the
run the rule would have made is this run cut at its stop), which gives, per method and rule:

- the epoch it stops at and the epoch whose weights it keeps (the lowest before the stop);
- the wall time to get there: the run's median epoch time times the epochs to the stop (a shared
  machine's busy spells lengthen some epochs several times over, and would decide otherwise; the
  recorded seconds of every epoch stay in the file);
- whether the curve up to the stop passes the one convergence test (``still_falling``);
- how far the kept held-out loss is from the long run's lowest, as a share of the whole fall;
- the image AUC on the design test set of the kept weights and of the long run's lowest epoch.

The rule chosen is the cheapest (total wall time over every method and dataset) under which
every run passes the convergence test at its stop, keeps weights within ``--auc-tolerance``
AUC points of the long run's lowest-loss epoch, and stops within the long run (``fired``: where
the long run ends first, what the rule would keep is unknown, and no cap can be set for it). Where no candidate passes on every run, the
rule with the fewest failing runs is chosen, the cheapest of those, and the choice says so
(``fallback``) and names the runs it fails (``failures``), for the report to mark. Two kinds of run are replayed for the record but
do not choose: f-AnoGAN, whose two phases take all their epochs (its schedule is fixed, and
marked), and a long run whose own curve still fails the convergence test at its end: it cannot
say where a rule should stop, only that its recipe needs more epochs or a faster schedule.

A method whose recipe lowers its learning rate on the plateau (``lr_patience``, chosen by
``benchmarks/recipes.py``) needs the rule's counter to do so: its long run keeps the rule with
``min_delta`` 0 and the longest candidate patience (``rule_patience`` in its record; 30 for those
recorded before 40 and 60 were candidates), so only rules with ``min_delta`` 0 and a patience up to
that replay on it exactly, and another rule is not acceptable for it.

The same long runs give each method's cap under the chosen rule (``caps``: ``CAP_MARGIN`` times the
latest epoch the rule stops them at, so that the rule ends the reported runs, not the cap), and
decide which baselines contend with Hetero-AE (``contenders``), before any reported result is read: those within ``CONTENDER_MARGIN`` AUC points of it on some design
dataset, or whose long run was still falling there.

Results (curves, AUCs, the replay of every rule, the choice, the contenders) go to ``--out``
(``results/design/stopping_rule.json``), written after every epoch, so that a killed study
resumes at the run it was in (that run starts again) and the committed file is the study so far.

    .venv/bin/python benchmarks/stopping_rule.py                       # the study (hours on 2 cores)
    .venv/bin/python benchmarks/stopping_rule.py --replay-only         # the choice from the committed curves
    .venv/bin/python benchmarks/stopping_rule.py --preset smoke --size 64 --cap 3 --methods ae,hetero-ae
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score

from hetero_ae.config import TrainConfig
from hetero_ae.data.datasets import load_split
from hetero_ae.data.identity import data_identity
from hetero_ae.data.overview import ensure_synthetic
from hetero_ae.evaluation.predict import predict_all
from hetero_ae.experiment.profiles import load_profile
from hetero_ae.experiment.specs import RunSpec, run_name, run_spec
from hetero_ae.io import write_json
from hetero_ae.report.manifest import device_description
from hetero_ae.training.checkpoint import CHECKPOINT, load_model, read_checkpoint, save_weights
from hetero_ae.training.loop import hold_out, train
from hetero_ae.training.stopping import Stopping, still_falling

FIXED_SCHEDULE = ("f-anogan",)  # its two phases need all their epochs: replayed, not choosing
PATIENCES = (5, 10, 15, 20, 30, 40, 60)  # 40, 60: added after the 4x long runs; shorter ones end before they fire
RULE_PATIENCE_BEFORE = 30  # the rule patience of plateau-schedule long runs recorded before "rule_patience" was
MIN_DELTAS = (0.0, 0.001, 0.005, 0.01)
CAP_MARGIN = 1.5  # a method's cap: this many times the latest epoch the chosen rule stops its long runs at
CONTENDER_MARGIN = 5.0  # AUC points behind Hetero-AE on some design dataset within which a baseline contends
DECODERS = ("cnn", "transformer")  # Table III's single-kind decoders, beside Hetero-AE's HCTN


def _replay(val: list[float], patience: int, min_delta: float) -> tuple[int, int, bool]:
    """(stop epoch, kept epoch, whether the rule fired) of the rule replayed on a recorded curve."""
    rule = Stopping(patience, min_delta, len(val), keep="lowest")
    for epoch, v in enumerate(val, start=1):
        rule.update(epoch, v)
        if rule.done():
            return epoch, int(rule.lowest_epoch), True
    return len(val), int(rule.lowest_epoch), False


def replay(val: list[float], patience: int, min_delta: float) -> tuple[int, int]:
    """(the epoch ``patience``/``min_delta`` stops at, the epoch ``keep="lowest"`` keeps), 1-based, on a
    recorded held-out curve; the curve's end when the rule never fires (``fires``)."""
    return _replay(val, patience, min_delta)[:2]


def fires(val: list[float], patience: int, min_delta: float) -> bool:
    """Whether the rule stops the recorded curve ``val`` (at its last epoch included), rather than the curve
    ending first."""
    return _replay(val, patience, min_delta)[2]


def runs_of(profile, datasets: list[str], methods: list[str]) -> list[tuple[str, RunSpec]]:
    """(name, spec) of every long run: each method's profile recipe with no rule and a longer cap."""
    out = []
    for dataset in datasets:
        for method in methods:
            kind, _, decoder = method.partition(":")
            spec = run_spec(profile, dataset, kind, 0, **({"decoder": decoder} if decoder else {}))
            out.append((f"{dataset}/{method}", spec))
    return out


def with_chosen_recipe(spec: RunSpec, recipes: dict[str, Any], size: int) -> RunSpec:
    """``spec`` with the recipe ``benchmarks/recipes.py`` chose for its method at ``size`` (its learning
    rate, batch and plateau schedule, which needs the rule on: here the longest candidate patience, with
    ``min_delta`` 0, as in its long run); unchanged when the profile's recipe stays or none was chosen."""
    entry = recipes.get("methods", {}).get(f"{size}/{spec.model.method}", {})
    chosen = entry.get("candidates", {}).get(entry.get("chosen") or "", {})
    if not chosen.get("lr_patience"):
        return spec
    return replace(spec, train=replace(spec.train, lr=chosen["lr"], batch_size=chosen["batch_size"],
                                       patience=max(PATIENCES), min_delta=0.0, keep="lowest",
                                       lr_patience=chosen["lr_patience"]))


def rule_patience(record: dict[str, Any]) -> int | None:
    """The patience of the rule a plateau-schedule long run (``lr_patience``) trained under, which ended it
    (``long_config``); None for a long run without a rule."""
    return record.get("rule_patience", RULE_PATIENCE_BEFORE) if record.get("lr_patience") else None


def same_recipe(record: dict[str, Any], cfg: TrainConfig) -> bool:
    """Whether a recorded long run trained with ``cfg``'s recipe (learning rate, batch, schedule, and for a
    plateau schedule the patience of the rule that ended it)."""
    return all(record.get(k, getattr(cfg, k)) == getattr(cfg, k) for k in ("lr", "batch_size", "lr_patience")) \
        and bool(record.get("lr_patience")) == bool(cfg.lr_patience) \
        and (not cfg.lr_patience or rule_patience(record) == cfg.patience)


def _splits(spec: RunSpec, root: Path):
    size = spec.model.image_size
    normals = load_split(spec.dataset, "train", size, root=root)
    val = load_split(spec.dataset, "val", size, root=root)
    if val is None:
        normals, val = hold_out(normals, spec.val_fraction, spec.train.seed)
    return normals, val, load_split(spec.dataset, "test", size, root=root)


def _auc(weights: Path, test, device: str) -> float:
    model, ckpt = load_model(weights)
    pred = predict_all(model.to(device), test.images, device=device,
                       precision=ckpt.get("trained_precision", "fp32"))
    return round(100 * float(roc_auc_score(test.labels, pred.scores)), 3)


def long_config(spec: RunSpec, cap: int) -> TrainConfig:
    """The training settings of ``spec``'s long run: no rule and ``cap`` epochs; or, for a recipe that lowers
    its learning rate on the plateau (``lr_patience``), which needs the rule's counter, the rule with
    ``min_delta`` 0 and the longest candidate patience, so that every patience up to it replays exactly."""
    if spec.train.lr_patience:
        return replace(spec.train, epochs=cap, patience=max(PATIENCES), min_delta=0.0, keep="lowest")
    return replace(spec.train, epochs=cap, patience=0)


def long_run(name: str, spec: RunSpec, cfg: TrainConfig, root: Path, work: Path, device: str, save,
             patiences: tuple[int, ...] = PATIENCES, min_deltas: tuple[float, ...] = MIN_DELTAS) -> dict[str, Any]:
    """Train ``spec`` with the training settings ``cfg`` (here: no rule, a longer cap), keeping every
    new-lowest epoch's weights; then the design test AUC of each epoch that a rule of ``patiences``
    x ``min_deltas`` replayed on the curve (or the lowest) would keep."""
    normals, val, test = _splits(spec, root)
    folder, snaps = work / name.replace("/", "-"), work / (name.replace("/", "-") + "-lowest")
    shutil.rmtree(folder, ignore_errors=True)
    shutil.rmtree(snaps, ignore_errors=True)
    snaps.mkdir(parents=True)
    record: dict[str, Any] = {"run": run_name(spec), "cap": cfg.epochs, "profile_cap": spec.train.epochs,
                              "lr_patience": cfg.lr_patience, "lr": cfg.lr, "batch_size": cfg.batch_size,
                              **({"rule_patience": cfg.patience} if cfg.lr_patience else {}),
                              "train": len(normals), "held_out": len(val), "epochs": [], "auc": {}}
    lowest = [float("inf")]

    def on_epoch(entry: dict[str, float]) -> None:
        record["epochs"].append({k: entry[k] for k in ("epoch", "loss", "val_loss", "seconds") if k in entry})
        if entry.get("val_loss", float("inf")) < lowest[0]:
            lowest[0] = entry["val_loss"]
            save_weights(read_checkpoint(folder / CHECKPOINT), snaps / f"{int(entry['epoch'])}.pt")
        save(record)

    t0 = time.perf_counter()
    _, history = train(spec.model, cfg, normals, folder, val=val, device=device, progress=False, on_epoch_end=on_epoch)
    record["wall_seconds"] = round(time.perf_counter() - t0, 1)
    record["setup_seconds"] = round(history.setup_seconds, 1)
    curve = [e["val_loss"] for e in record["epochs"]]
    kept = {replay(curve, p, d)[1] for p in patiences for d in min_deltas} | {int(np.argmin(curve)) + 1}
    for epoch in sorted(kept):
        record["auc"][str(epoch)] = _auc(snaps / f"{epoch}.pt", test, device)
        save(record)
    record["done"] = True
    shutil.rmtree(folder, ignore_errors=True)
    shutil.rmtree(snaps, ignore_errors=True)
    return record


def contenders(runs: dict[str, dict[str, Any]], margin: float = CONTENDER_MARGIN) -> dict[str, Any]:
    """Which baselines contend with Hetero-AE, decided on the design benchmark before any reported result.

    On each design dataset, a baseline's AUC is that of its long run's lowest held-out epoch,
    beside Hetero-AE's. A baseline contends when it comes within ``margin`` AUC points of
    Hetero-AE on some dataset, or when its long run was still falling at its end there (its AUC
    is then a lower bound, which cannot rule it out). Ablation rows (``hetero-ae:...``) are not
    baselines. Returns the contenders and, per dataset, the evidence.
    """
    evidence: dict[str, dict[str, Any]] = {}
    for name, r in runs.items():
        dataset, method = name.split("/", 1)
        curve = [e["val_loss"] for e in r["epochs"]]
        auc = r["auc"].get(str(int(np.argmin(curve)) + 1))
        evidence.setdefault(dataset, {})[method] = {"auc": auc, "still_falling": still_falling(curve)}
    chosen: set[str] = set()
    for dataset, methods in evidence.items():
        ours = methods.get("hetero-ae", {}).get("auc")
        if ours is None:
            continue
        for method, e in methods.items():
            if method.startswith("hetero-ae"):
                continue
            e["behind"] = round(ours - e["auc"], 3)
            e["contends"] = e["behind"] <= margin or e["still_falling"]
            if e["contends"]:
                chosen.add(method)
    return {"margin": margin, "contenders": sorted(chosen), "evidence": evidence}


def caps(runs: dict[str, dict[str, Any]], choice: dict[str, Any] | None, margin: float = CAP_MARGIN) -> dict[str, Any]:
    """Each method's cap under the chosen rule: ``margin`` times the latest epoch at which the rule stops
    its long runs (over the design datasets), rounded up to ten, so that on the reported data the rule,
    not the cap, ends a run; None for a method whose long run reached its own cap with the rule not
    fired, or still falling there (its cap is unknown: a longer long run decides it)."""
    if choice is None:
        return {}
    out: dict[str, Any] = {}
    for name, r in runs.items():
        method = name.split("/", 1)[1]
        if method in FIXED_SCHEDULE:
            continue
        curve = [e["val_loss"] for e in r["epochs"]]
        stop, _, fired = _replay(curve, choice["patience"], choice["min_delta"])
        cap = int(math.ceil(margin * stop / 10) * 10) if fired and not still_falling(curve[:stop]) else None
        known = out.get(method, 0)
        out[method] = None if cap is None or known is None else max(cap, known)
    return {"margin": margin, "caps": out}


def replay_all(runs: dict[str, dict[str, Any]], tolerance: float) -> dict[str, Any]:
    """Every candidate rule replayed on every finished long run, and the rule chosen (module docstring)."""
    table = []
    for p in PATIENCES:
        for d in MIN_DELTAS:
            rows, total, failures = [], 0.0, []
            for name, r in runs.items():
                curve = [e["val_loss"] for e in r["epochs"]]
                # its rate fell on min_delta 0's counter, and its rule ended it: longer patiences cannot replay
                replayable = not r.get("lr_patience") or (d == 0.0 and p <= rule_patience(r))
                stop, kept, fired = _replay(curve, p, d)
                lowest = int(np.argmin(curve)) + 1
                whole = curve[0] - min(curve)
                row = {"run": name, "stop": stop, "kept": kept, "lowest": lowest, "fired": fired,
                       "seconds": round(float(np.median([e["seconds"] for e in r["epochs"]])) * stop, 1),
                       "converged": not still_falling(curve[:stop]),
                       "loss_gap": round((curve[kept - 1] - min(curve)) / whole, 4) if whole > 0 else 0.0,
                       "auc_kept": r["auc"].get(str(kept)), "auc_lowest": r["auc"].get(str(lowest)),
                       "long_run_converged": not still_falling(curve), "replayable": replayable}
                row["chooses"] = name.split("/", 1)[1] not in FIXED_SCHEDULE and row["long_run_converged"]
                rows.append(row)
                if row["chooses"]:
                    total += row["seconds"]
                    close = None not in (row["auc_kept"], row["auc_lowest"]) and \
                        row["auc_lowest"] - row["auc_kept"] <= tolerance
                    if not (row["converged"] and close and replayable and fired):
                        failures.append(name)
            table.append({"patience": p, "min_delta": d, "seconds": round(total, 1), "acceptable": not failures,
                          "failures": failures, "runs": rows})
    acceptable = [e for e in table if e["acceptable"]]
    best = min(acceptable or table, key=lambda e: (len(e["failures"]), e["seconds"])) if table else None
    unresolved = sorted(n for n, r in runs.items() if still_falling([e["val_loss"] for e in r["epochs"]]))
    return {"rules": table, "choice": None if best is None else
            {"patience": best["patience"], "min_delta": best["min_delta"], "seconds": best["seconds"],
             "fallback": not acceptable, "failures": best["failures"]},
            "auc_tolerance": tolerance, "still_falling_at_the_long_cap": unresolved}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--profile", default="cpu")
    p.add_argument("--datasets", default="synth-brain-mri,synth-chest-xray")
    p.add_argument("--methods", default=None, help="comma-separated; hetero-ae:cnn for a Table III decoder "
                                                    "(default: the profile's methods and both Table III decoders)")
    p.add_argument("--design-root", type=Path, default=Path("data/design"))
    p.add_argument("--design-seed", type=int, default=1)
    p.add_argument("--preset", default=None, help="default: the profile's synthetic preset")
    p.add_argument("--size", type=int, default=None, help="generated image size (default: the profile's)")
    p.add_argument("--cap-factor", type=float, default=2.0, help="long runs train this many times the profile cap")
    p.add_argument("--cap", type=int, default=None, help="one cap for every long run (tests)")
    p.add_argument("--auc-tolerance", type=float, default=1.0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", type=Path, default=Path("results/design/stopping_rule.json"))
    p.add_argument("--replay-only", action="store_true", help="train nothing: replay the rules on the runs in --out")
    p.add_argument("--recipes", type=Path, default=Path("results/design/recipes.json"),
                   help="the recipe study: a method's chosen recipe replaces its profile's in its long runs")
    a = p.parse_args(argv)

    profile = load_profile(a.profile)
    size = a.size or profile.image_size
    if a.size:
        profile = replace(profile, image_size=a.size, method_settings={
            m: {k: v for k, v in s.items() if k != "image_size"} for m, s in profile.method_settings.items()})
    methods = a.methods.split(",") if a.methods else [*profile.methods, *(f"hetero-ae:{d}" for d in DECODERS)]
    study = json.loads(a.out.read_text()) if a.out.is_file() else {}
    study.setdefault("runs", {})
    study.update(design_seed=a.design_seed, device=device_description(a.device), profile=profile.profile)

    def save(record: dict[str, Any] | None = None, name: str | None = None) -> None:
        if record is not None:
            study["runs"][name] = record
        write_json(a.out, study)

    if not a.replay_only:
        ensure_synthetic(a.design_root, size, a.design_seed, a.preset or profile.synthetic_preset)
        study["data"] = {d: data_identity(d, a.design_root).record() for d in a.datasets.split(",")}
        work = a.design_root / ".stopping-rule-runs"
        recipes = json.loads(a.recipes.read_text()) if a.recipes.is_file() else {}
        for name, spec in runs_of(profile, a.datasets.split(","), methods):
            spec = with_chosen_recipe(spec, recipes, size)
            cap = a.cap or max(1, round(a.cap_factor * spec.train.epochs))
            cfg = long_config(spec, cap)
            done = study["runs"].get(name, {})
            if done.get("done") and same_recipe(done, cfg) and done.get("cap", cap) >= cap:
                continue  # a shorter long run (one still falling at its cap) trains again, longer
            print(f"{name}: training {cap} epochs" + (" under the rule's counter (plateau schedule)"
                  if cfg.lr_patience else " without a rule"), file=sys.stderr, flush=True)
            record = long_run(name, spec, cfg, a.design_root, work, a.device, lambda r, n=name: save(r, n))
            save(record, name)
            print(f"{name}: {len(record['epochs'])} epochs in {record['wall_seconds'] / 60:.1f} min, "
                  f"lowest held-out loss at epoch {int(np.argmin([e['val_loss'] for e in record['epochs']])) + 1}",
                  file=sys.stderr, flush=True)
    finished = {n: r for n, r in study["runs"].items() if r.get("done")}
    study["replay"] = replay_all(finished, a.auc_tolerance)
    study["contenders"] = contenders(finished)
    study["caps"] = caps(finished, study["replay"]["choice"])
    save()
    choice = study["replay"]["choice"]
    print(f"{len(finished)} long run(s); rule chosen: " + ("none (no finished run)" if choice is None else
          f"patience {choice['patience']}, min_delta {choice['min_delta']} ({choice['seconds'] / 60:.0f} min in all)"
          + (f"; no rule passes on every run, this one fails the fewest: {', '.join(choice['failures'])}"
             if choice["fallback"] else "")))
    print("contenders (within {margin} AUC points of Hetero-AE on some design dataset, or still falling): "
          .format(**study["contenders"]) + (", ".join(study["contenders"]["contenders"]) or "none"))
    if study["caps"]:
        print(f"caps ({study['caps']['margin']} x the rule's latest stop; none: the long run needs a longer cap): "
              + ", ".join(f"{m} {c}" for m, c in study["caps"]["caps"].items()))
    if study["replay"]["still_falling_at_the_long_cap"]:
        print("still falling at the end of the long run (not choosing): "
              + ", ".join(study["replay"]["still_falling_at_the_long_cap"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
