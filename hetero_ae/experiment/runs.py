"""One run = (dataset, method config, training config) -> trained model -> scores -> metrics, cached.

A run's folder is ``results/runs/<method>/<dataset>/<key>/`` where ``key`` hashes the
configuration and the data's key (``data.identity``: how a synthetic benchmark was generated, or
the digest of a real dataset's files), so the same request finds the same folder on any machine
and other data never reuse a result. ``config.json`` records the data's identity, and
``experiment.provenance`` says why a run misses or whose pixels a hit was trained on. The folder holds
``config.json`` and ``history.json`` (``training.run_folder``), ``checkpoint.pt`` (not committed),
``scores.csv`` (``evaluation.scores``) and ``metrics.json``; ``metrics.json`` is written last and marks the run complete. ``scores.csv``
has one row per test image (path, class, label, score) and, for methods that define one, its
``feature_distance`` (Fig. 6), computed in the same pass as the maps. A killed run
resumes from its last checkpoint (DESIGN 7).

Training (DESIGN 3.10): the held-out normals' loss is recorded every epoch in ``history.json``
and, with the profile's ``patience``, stops the run; ``metrics.json["training"]`` says how it
ended (epochs run, cap, best epoch, plateau or cap, the weights kept) and what the frozen-feature
cache held. Nothing here looks at a test label before the model is final.

Metrics (DESIGN 6, 3.8; computed by ``evaluation.predict.evaluate``, the one path from a
model and images to scores and metrics): AUC, AP and F1/ACC/SEN/SPE at the paper's best-F1 threshold
(``best_f1``) and at the 95th percentile of held-out normal scores (``normal_q95``); AUC per
anomalous sub-class; pixel AUROC, AUPRO and best Dice where the test set has masks.
Held-out normals are the release's ``val`` split, or else ``val_fraction`` of the training
normals (the paper trains on all of them; the tables say which).

Under ``torchrun`` (``hetero-ae run``, ``hetero_ae.training.distributed``) every process trains and
rank 0 alone writes and evaluates; the others return a result without metrics.
"""

from __future__ import annotations

import hashlib
import json
import sys
from contextlib import nullcontext
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..config import ModelConfig
from ..data.datasets import data_root, load_split
from ..data.identity import DataIdentity, data_identity, describe_key
from ..data.images import ImageSet
from ..errors import DataError
from ..evaluation.predict import evaluate, predict, save_evaluation
from ..evaluation.scores import read_scores
from ..io import exclusive
from ..methods.registry import AnomalyModel
from ..training import distributed
from ..training.checkpoint import CHECKPOINT, WEIGHTS, load_model, read_checkpoint, save_weights
from ..training.loop import finished, hold_out, train
from ..training.run_folder import (held_out_description, read_history, read_run_config, read_val_scores, write_history,
                                   write_run_config, write_val_scores)
from ..training.runtime import compiled
from ..training.stopping import still_falling
from .profiles import size_folder
from .provenance import keep_reference, note_difference, spec_of_record
from .specs import RunSpec, run_name, spec_root


@dataclass
class RunResult:
    spec: RunSpec
    folder: Path
    metrics: dict[str, Any]
    cached: bool
    retrained: bool = False  # its model had to be trained again for a figure (no weights on disk)

    def scores(self) -> list[dict[str, str]]:
        """The rows of the run's ``scores.csv`` (``evaluation.scores``)."""
        return read_scores(self.folder)

    @property
    def converged(self) -> bool:
        """The one convergence test (``training.stopping.still_falling``) on the run's held-out curve,
        whatever stopped it; a run without held-out losses cannot pass it, except one of a method that
        learns no weight (one fit: ``training.stop_reason`` "fit"), which has nothing to converge."""
        if self.metrics.get("training", {}).get("stop_reason") == "fit":
            return True
        try:
            losses = [e.get("val_loss") for e in read_history(self.folder)]
        except OSError:
            return False
        return bool(losses) and not still_falling(losses)


def run_folder(spec: RunSpec, results: str | Path = "results", root: str | Path | None = None, *,
               identity: DataIdentity | None = None) -> Path:
    """Where ``spec``'s run is cached: its configuration and its data's key, hashed (module docstring)."""
    identity = identity or data_identity(spec.dataset, spec_root(spec, root))
    payload = json.dumps({**spec.key_dict(), "data": identity.key}, sort_keys=True)
    key = hashlib.sha256(payload.encode()).hexdigest()[:12]
    return Path(results) / "runs" / spec.model.method / spec.dataset / key


def _held_out(spec: RunSpec, train_set: ImageSet, root: str | Path | None) -> tuple[ImageSet, ImageSet | None, str]:
    size = spec.model.image_size
    val = load_split(spec.dataset, "val", size, root=root)
    if val is not None:
        return train_set, val, "val split"
    rest, held = hold_out(train_set, spec.val_fraction, spec.train.seed)
    return rest, held, held_out_description(spec.val_fraction, 0 if held is None else len(held))


def training_twin(spec: RunSpec) -> RunSpec | None:
    """The run whose trained weights ``spec`` scores with, when it differs only in how maps are made
    (``ModelConfig.SCORING_FIELDS``, e.g. Table IV's magnitude-aware map); else None."""
    trained = spec.model.trained_as()
    return None if trained == spec.model else replace(spec, model=trained)


def cached_result(spec: RunSpec, results: str | Path = "results", root: str | Path | None = None, *,
                  identity: DataIdentity | None = None) -> RunResult | None:
    """``spec``'s result from the cache (its folder's ``metrics.json``), or None when it has not run.

    A run trained on data of the same key but other content (``config.json``'s ``data``) is
    reported once on stderr (``provenance.note_difference``) and returned.
    """
    identity = identity or data_identity(spec.dataset, spec_root(spec, root))
    folder = run_folder(spec, results, root, identity=identity)
    metrics = folder / "metrics.json"
    if not metrics.is_file():
        return None
    note_difference(results, read_run_config(folder).get("data"), identity)
    return RunResult(spec, folder, json.loads(metrics.read_text()), cached=True)


def run_experiment(spec: RunSpec, *, results: str | Path = "results", root: str | Path | None = None,
                   device: str = "cpu", progress: bool = True, compile: str | None = None) -> RunResult:
    """The cached result of ``spec``, training and evaluating it first if needed.

    ``device`` and ``compile`` (a torch.compile backend, ``hetero_ae.training.runtime``) say how it
    runs, not what it computes: they are not part of the cache key; ``config.json`` records them.
    A run with a ``training_twin`` trains nothing: it scores the twin's weights (trained first if
    needed) its own way, and its folder records ``weights_from`` and copies the twin's curves.
    """
    identity = data_identity(spec.dataset, spec_root(spec, root))
    cached = cached_result(spec, results, root, identity=identity)
    if cached is not None:
        return cached
    folder = run_folder(spec, results, root, identity=identity)
    size, data = spec.model.image_size, spec_root(spec, root)
    train_set, val_set, held_out = _held_out(spec, load_split(spec.dataset, "train", size, root=data), data)
    test = load_split(spec.dataset, "test", size, root=data)  # every split is checked before anything trains
    with exclusive(folder) if distributed.is_main() else nullcontext():  # one process writes a run
        if distributed.is_main():
            keep_reference(results, identity)
        return _run(spec, folder, train_set, val_set, held_out, test, identity, results=results, root=root,
                    device=device, progress=progress, compile=compile)


def _run(spec: RunSpec, folder: Path, train_set: ImageSet, val_set: ImageSet | None, held_out: str, test: ImageSet,
         identity: DataIdentity, *, results: str | Path, root: str | Path | None, device: str, progress: bool,
         compile: str | None) -> RunResult:
    """Train (or take the twin's weights) and evaluate one run whose splits are loaded."""
    twin = training_twin(spec)
    if twin is not None:
        trained = run_experiment(twin, results=results, root=root, device=device, progress=progress, compile=compile)
        if not distributed.is_main():
            return RunResult(spec, folder, {}, cached=False)
        model = rescored(trained_model(trained, root=root, device=device), spec.model)
        record = read_run_config(trained.folder)
        write_run_config(folder, **{k: record[k] for k in _RECORDED}, dataset=spec.dataset, model=spec.model,
                         train=spec.train, val_fraction=spec.val_fraction, device=device, compile=compile,
                         weights_from=trained.folder.name, data=identity.record())
        write_history(folder, read_history(trained.folder))
        kept = {k: trained.metrics[k] for k in ("held_out_normals", "train_seconds", "n_train")}
        training = {**trained.metrics["training"], "weights_from": trained.folder.name}
        return _evaluate(spec, model, folder, test, device=device, progress=progress, compile=compile,
                         val_set=val_set, training=training, **kept)
    if distributed.is_main():
        write_run_config(folder, dataset=spec.dataset, model=spec.model, train=spec.train,
                         val_fraction=spec.val_fraction, held_out_normals=held_out, train_images=len(train_set),
                         val_images=0 if val_set is None else len(val_set), device=device, compile=compile,
                         data=identity.record())
    model, history = train(spec.model, spec.train, train_set, folder, val=val_set, resume=True, device=device,
                           progress=progress, compile=compile)
    if not distributed.is_main():
        return RunResult(spec, folder, {}, cached=False)
    write_history(folder, history)
    training = {**(history.stop or {}), "feature_cache": history.feature_cache, "setup_seconds": history.setup_seconds}
    return _evaluate(spec, model, folder, test, device=device, progress=progress, compile=compile,
                     val_set=val_set, training=training, held_out_normals=held_out,
                     train_seconds=float(sum(h["seconds"] for h in history) + history.setup_seconds),
                     n_train=len(train_set))


_RECORDED = ("held_out_normals", "train_images", "val_images")  # what a rescoring run copies from its twin's record


def rescored(model: AnomalyModel, cfg: ModelConfig) -> AnomalyModel:
    """``model`` making its maps as ``cfg`` says (its ``SCORING_FIELDS``), its weights untouched."""
    for name in ModelConfig.SCORING_FIELDS:
        if hasattr(model, name):
            setattr(model, name, getattr(cfg, name))
    return model


def _evaluate(spec: RunSpec, model: AnomalyModel, folder: Path, test: ImageSet, *, device: str, progress: bool,
              compile: str | None, val_set: ImageSet | None, training: dict[str, Any], held_out_normals: str,
              train_seconds: float, n_train: int) -> RunResult:
    """Score the test split (and the held-out normals) with the final ``model``; write scores.csv and metrics.json."""
    with compiled(model, compile):
        ev = evaluate(model, test, held_out=val_set, precision=spec.train.precision, device=device, progress=progress)
    if val_set is not None and ev.raw_held_out_scores is not None:  # score and export decide with them
        write_val_scores(folder, val_set.paths, ev.raw_held_out_scores)
    metrics = save_evaluation(folder, test, ev, encoder=spec.model.encoder, held_out_normals=held_out_normals,
                              training=training, train_seconds=train_seconds, n_train=n_train)
    return RunResult(spec, folder, metrics, cached=False)


def trained_model(result: RunResult, *, root: str | Path | None = None, device: str = "cpu",
                  progress: bool = True, keep_weights: bool = False) -> AnomalyModel:
    """The trained model of a finished run, in eval mode, for maps and features (Fig. 4, Fig. 5).

    From the run's checkpoint, else its ``weights.pt`` (the committed results keep these for the
    runs the figures use, ``keep_weights``), else trained again into its folder from its recorded
    configuration (training is deterministic per seed on one device; its metrics stay as they
    were, and ``result.retrained`` says so). A run with a ``training_twin`` gets the twin's weights.
    """
    twin = training_twin(result.spec)
    if twin is not None:
        trained = run_experiment(twin, results=result.folder.parents[3], root=root, device=device, progress=progress)
        model = trained_model(trained, root=root, device=device, progress=progress, keep_weights=keep_weights)
        result.retrained = trained.retrained
        return rescored(model, result.spec.model)
    for name in (CHECKPOINT, WEIGHTS):
        if (result.folder / name).is_file():
            model, ckpt = load_model(result.folder / name)
            if finished(ckpt):
                if keep_weights and not (result.folder / WEIGHTS).is_file():
                    save_weights(ckpt, result.folder / WEIGHTS)
                return model.to(device)
    result.retrained = True
    took = result.metrics.get("train_seconds")
    print(f"{run_name(result.spec)}: its weights are not on disk; training it again from its recorded configuration"
          + (f" (it took {took / 60:.0f} min where it was trained)" if took else ""), file=sys.stderr, flush=True)
    data = spec_root(result.spec, root)
    train_set, val_set, _ = _held_out(result.spec, load_split(result.spec.dataset, "train",
                                                              result.spec.model.image_size, root=data), data)
    model, _ = train(result.spec.model, result.spec.train, train_set, result.folder, val=val_set, resume=True,
                     device=device, progress=progress)
    if keep_weights:
        keep_run_weights(result.folder)
    return model


def keep_run_weights(folder: str | Path) -> bool:
    """Write a finished run's ``weights.pt`` from its checkpoint (``training.checkpoint.save_weights``:
    the trained weights without the optimiser state), so that the figures load the run where its
    checkpoint, which is never committed, is gone; True when written now. Nothing happens for a run
    that has its weights already, or no checkpoint of a finished run (a run still training)."""
    folder = Path(folder)
    if (folder / WEIGHTS).is_file() or not (folder / CHECKPOINT).is_file():
        return False
    ckpt = read_checkpoint(folder / CHECKPOINT)
    if not finished(ckpt):
        return False
    save_weights(ckpt, folder / WEIGHTS)
    return True


def held_out_scores(folder: str | Path, model: AnomalyModel, *, root: str | Path | None = None,
                    device: str = "cpu") -> list[float] | None:
    """The raw image scores of a run's held-out normals (``val_scores.json``), from which ``score``,
    ``evaluate`` and ``export`` take their decision threshold; None when the run held out none.

    Every run writes them; a run cached before it did (the folder has ``config.json`` and ``model``,
    its trained weights, but no ``val_scores.json``) is scored here once: its held-out normals are
    taken again as it took them (``_held_out``: the val split, or the same fraction and seed of the
    training normals) from data whose content is the recorded one (under ``root``, or for synthetic
    data generated at another size ``root/<size>px``), and the scores are written beside it.

    Raises DataError, naming the run and its data, when those data are not on this machine.
    """
    folder = Path(folder)
    scores = read_val_scores(folder)
    if scores is not None:
        return scores
    try:
        record = read_run_config(folder)
    except (OSError, ValueError):
        return None
    spec = spec_of_record(record)
    if spec is None or not record.get("val_images") or not isinstance(record.get("data"), dict):
        return None  # a folder trained from the command line keeps its scores from the start, or held out none
    data = _recorded_data(spec, record["data"], root, folder)
    _, val_set, _ = _held_out(spec, load_split(spec.dataset, "train", spec.model.image_size, root=data), data)
    if val_set is None:
        return None
    _, raw = predict(model, val_set.images, device=device, normalize=False, precision=spec.train.precision)
    write_val_scores(folder, val_set.paths, raw)
    print(f"hetero-ae: scored the {len(val_set)} held-out normal image(s) of {folder} (written to its val_scores.json; "
          "it was cached before run folders kept them)", file=sys.stderr)
    return [float(s) for s in raw]


def _recorded_data(spec: RunSpec, recorded: dict[str, Any], root: str | Path | None, folder: Path) -> Path:
    """The data root under which ``spec.dataset`` has the content ``recorded`` (``config.json``'s ``data``)."""
    candidates = [data_root(root), data_root(root) / size_folder(spec.model.image_size)]
    for where in candidates:
        try:
            if data_identity(spec.dataset, where).digest == recorded.get("digest"):
                return where
        except DataError:
            continue
    raise DataError(f"{spec.dataset} as run {folder} was trained on ({describe_key(recorded.get('key', {}))}, "
                    f"content {recorded.get('digest')}) is not under {' or '.join(map(str, candidates))}, so its "
                    "held-out normals cannot be scored: make the data there first (hetero-ae make-data, or the "
                    "profile's run)")


def summary(result: RunResult, threshold: str = "best_f1") -> dict[str, Any]:
    """One table row: image metrics in % at ``threshold``, pixel AUROC, training time, input size ``px``,
    whether the run converged, and whether the threshold is ``degenerate`` (it calls every test image
    one class: SEN 100 and SPE 0, or SEN 0 and SPE 100, so F1, ACC, SEN and SPE say nothing)."""
    m = result.metrics
    row: dict[str, Any] = {"method": result.spec.model.method, "dataset": result.spec.dataset,
                           "encoder": m.get("encoder", "-"), "px": result.spec.model.image_size,
                           "seed": result.spec.train.seed, "threshold": threshold}
    row.update({k.upper(): 100 * m[threshold][k] for k in ("auc", "f1", "acc", "sen", "spe")})
    row["pixel AUROC"] = 100 * m["pixel"]["pixel_auroc"] if "pixel" in m else float("nan")
    row["train s"] = m["train_seconds"]
    row["epochs"] = m.get("training", {}).get("epochs_run", float("nan"))
    row["converged"] = result.converged
    row["degenerate"] = {row["SEN"], row["SPE"]} == {0.0, 100.0}
    return row


def _pool_start(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def _pool_run(spec: RunSpec, results: str, root: str | None, device: str, compile: str | None) -> RunResult:
    return run_experiment(spec, results=results, root=root, device=device, progress=False, compile=compile)


def run_experiments(specs: list[RunSpec], *, jobs: int = 1, results: str | Path = "results",
                    root: str | Path | None = None, device: str = "cpu", compile: str | None = None,
                    on_done: Any = None, side_by_side: Any = None, progress: bool = False) -> list[RunResult]:
    """The cached result of every spec, training ``jobs`` of them at a time: the one batch loop of the
    command line (``hetero-ae run-profile``, ``run``, ``compare``) and the notebooks.

    ``progress`` shows each run's epochs as it trains in this process (not in the workers).

    With ``jobs`` > 1 the runs that ``side_by_side(spec)`` accepts (default: all) train in
    ``jobs`` worker processes (spawned), each given ``cores // jobs`` torch threads; the others
    train first, one at a time, in this process with every core. Which way pays depends on the
    network (docs/speed.md): Hetero-AE's decoder on cached features keeps two cores busier as
    two one-thread processes, a convolutional baseline as one two-thread process. A run is
    computed the same either way; threads change only the order of float sums, within float
    tolerance. Runs with a ``training_twin`` are scored last, in this process, so that no two
    processes train one run. ``on_done(spec, folder, cached)`` is called as each run finishes. A run that
    fails cancels the runs not yet started and raises its error; finished runs stay cached.
    """
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from multiprocessing import get_context

    from ..training.runtime import cpu_threads

    if jobs < 1:
        raise ValueError(f"jobs must be 1 or more, got {jobs}")
    if jobs > 1 and distributed.launched():
        raise ValueError("several jobs under torchrun: run one process per run, or use DDP, not both")
    rescoring = {i for i, spec in enumerate(specs) if training_twin(spec) is not None}  # after their twins
    # a cached run is read here, once: no process is started for it
    out: list[RunResult | None] = [cached_result(spec, results, root) if jobs > 1 else None for spec in specs]
    pooled = {i for i, spec in enumerate(specs) if jobs > 1 and out[i] is None and i not in rescoring
              and (side_by_side is None or side_by_side(spec))}

    def here(i: int) -> None:
        out[i] = out[i] or run_experiment(specs[i], results=results, root=root, device=device, progress=progress,
                                          compile=compile)
        if on_done is not None:
            on_done(specs[i], out[i].folder, out[i].cached)

    for i in range(len(specs)):
        if i not in pooled and i not in rescoring:
            here(i)
    if pooled:
        args = (str(results), None if root is None else str(root), device, compile)
        with ProcessPoolExecutor(jobs, mp_context=get_context("spawn"), initializer=_pool_start,
                                 initargs=(max(1, cpu_threads() // jobs),)) as pool:
            futures = {pool.submit(_pool_run, specs[i], *args): i for i in sorted(pooled)}
            try:
                for fut in as_completed(futures):
                    i = futures[fut]
                    out[i] = fut.result()  # the worker's result, metrics included: nothing is read again
                    if on_done is not None:
                        on_done(specs[i], out[i].folder, out[i].cached)
            except BaseException:
                pool.shutdown(wait=True, cancel_futures=True)
                raise
    for i in sorted(rescoring):
        here(i)
    return out
