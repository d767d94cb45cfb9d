"""Command line: ``python -m hetero_ae`` or ``hetero-ae`` (train, evaluate, score).

Errors a user can fix (an option out of range, a device the machine lacks, an image size the
model cannot take, missing or empty folders, unreadable images, a checkpoint of another model,
missing weights) print one line and exit with status 2; options are checked before any work
starts, and an output folder that cannot be written is refused before any work. Every file is
written atomically (a kill's leftover temporary files are removed when the next run starts in its
folder), and a command that fails leaves nothing that blocks the next, except ``score``'s CSV after
a kill: appended batch by batch, it may end in a torn last line, which ``score --resume`` drops.
One process writes an output folder at a time (``io.exclusive``).

``train`` and ``run`` also run under ``torchrun --nproc-per-node N -m hetero_ae ...``
(DistributedDataParallel, ``hetero_ae.training.distributed``): rank 0 alone prints and writes files.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from .config import (
    COMPARISONS,
    DECODER_NAMES,
    ENCODER_NAMES,
    FEATURE_SCALES,
    MAP_DISTANCES,
    METHOD_NAMES,
    PRECISIONS,
    ModelConfig,
    TrainConfig,
)
from .errors import ConfigError, UserError
from .io import check_writable

MIN_TRAIN_IMAGES = 2  # what train refuses to train on fewer of, after the hold-out
OPTION_NAMES = {"num_threads": "threads"}  # configuration fields whose option is named otherwise


def _model_args(p: argparse.ArgumentParser) -> None:
    d = ModelConfig()
    g = p.add_argument_group("model")
    g.add_argument("--method", default=d.method, choices=sorted(METHOD_NAMES), help="method (default: %(default)s)")
    g.add_argument("--encoder", default=d.encoder, choices=sorted(ENCODER_NAMES), help="(default: %(default)s)")
    g.add_argument("--encoder-weights", default=d.encoder_weights,
                   help="'imagenet' (offline cache or download), 'none' (random), or a weights file (default: %(default)s)")
    g.add_argument("--decoder", choices=sorted(DECODER_NAMES), help=f"hetero-ae: its decoder (default: {d.decoder})")
    g.add_argument("--image-size", type=int, default=d.image_size, help="(default: %(default)s)")
    g.add_argument("--alpha", type=float, help=f"hetero-ae: cosine weight of Eq. 4 (default: {d.alpha})")
    g.add_argument("--finetune-encoder", action="store_true", default=None,
                   help="hetero-ae: EDC-style encoder fine-tuning (default: frozen)")
    g.add_argument("--map-sigma", type=float, default=None,
                   help="Gaussian smoothing of the anomaly maps, for every method that smooths (default: the "
                        "method's paper: none for Hetero-AE and STFPM, 4 for RD4AD, MKD and PatchCore)")
    g.add_argument("--comparison", choices=COMPARISONS,
                   help=f"hetero-ae: compare features (paper) or pixels (Table IV ablation) (default: {d.comparison})")
    g.add_argument("--feature-scale", choices=FEATURE_SCALES,
                   help="hetero-ae: divide each compared stage by its RMS over the training normals (rms), keep the "
                        "paper's raw features (raw), or rms for signed encoders and raw for ReLU ones (auto, default)")
    g.add_argument("--map-distance", choices=MAP_DISTANCES,
                   help="hetero-ae: per-stage map of Eq. 6 (cosine, the paper's) or Eq. 4's per-pixel loss "
                        f"(cosine+mse, beyond the paper: also sees changes of feature magnitude) (default: {d.map_distance})")
    g.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                   help="a method hyper-parameter (YAML value), e.g. --param latent_dim=64; repeatable")


def _train_args(p: argparse.ArgumentParser) -> None:
    d = TrainConfig()
    g = p.add_argument_group("training")
    g.add_argument("--epochs", type=int, help=f"(default: {d.epochs}; none for a method that learns no weight)")
    g.add_argument("--batch-size", type=int, default=d.batch_size, help="(default: %(default)s)")
    g.add_argument("--lr", type=float, help=f"Adam learning rate (default: {d.lr})")
    g.add_argument("--seed", type=int, default=d.seed, help="(default: %(default)s)")
    g.add_argument("--threads", type=int, default=d.num_threads,
                   help="CPU threads; 0 = one per core, shared among torchrun's processes (default)")
    g.add_argument("--precision", default=d.precision, choices=PRECISIONS,
                   help="forward passes in float32 (the paper's) or bfloat16 autocast (default: %(default)s)")
    g.add_argument("--compile", nargs="?", const="inductor", default=None, metavar="BACKEND",
                   help="torch.compile the loss and prediction (default backend: inductor); off by default")
    g.add_argument("--workers", type=int, default=None,
                   help="processes that prepare batches (default: none on the CPU, up to 4 on CUDA)")
    g.add_argument("--val-fraction", type=float, default=0.1,
                   help="normal images held out to fix a threshold and to stop training, without test labels; "
                        f"at least {MIN_TRAIN_IMAGES} images must be left to train on (default: %(default)s)")
    g.add_argument("--patience", type=int,
                   help="stop when the held-out loss has not improved for this many epochs (--epochs is then a cap); "
                        f"0 = train every epoch, as the paper (default: {d.patience})")
    g.add_argument("--min-delta", type=float,
                   help=f"an improvement must exceed this fraction of the best held-out loss (default: {d.min_delta})")
    g.add_argument("--no-feature-cache", action="store_true",
                   help="run the frozen encoder at every step instead of computing its features once")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hetero-ae", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train on a folder of normal images",
                       description="Train a method on every image under a folder of normal images.")
    t.add_argument("--data", required=True, type=Path, help="folder of normal images (searched recursively)")
    t.add_argument("--out", required=True, type=Path, help="run folder: checkpoint.pt, config.json, history.json")
    t.add_argument("--resume", action="store_true",
                   help="continue from the run folder's last checkpoint (without one: a note, and training starts "
                        "from scratch)")
    t.add_argument("--strict", action="store_true", help="fail on an unreadable image instead of skipping it")
    t.add_argument("--device", default="cpu", help="torch device (default: %(default)s)")
    _model_args(t)
    _train_args(t)

    e = sub.add_parser("evaluate", help="metrics on a labelled test folder",
                       description="Score a test folder with normal/ and anomalous/ sub-folders; write metrics.json "
                                   "and scores.csv (AUC, AP, and F1/ACC/SEN/SPE at the best-F1 threshold, and at the "
                                   "95th percentile of held-out normal scores when the run has them).")
    e.add_argument("--checkpoint", required=True, type=Path)
    e.add_argument("--data", required=True, type=Path,
                   help="folder with one sub-folder of images per class: normal/ and anomalous/, a known "
                        "dataset's classes (e.g. the Kaggle brain MRI Testing/), or any, with --normal-class")
    e.add_argument("--normal-class", default=None, metavar="NAME",
                   help="the sub-folder of normal images; every other sub-folder is anomalous")
    e.add_argument("--strict", action="store_true", help="fail on an unreadable image instead of skipping it")
    e.add_argument("--out", type=Path, help="output folder (default: the checkpoint's folder)")
    e.add_argument("--batch-size", type=int, default=32)
    e.add_argument("--device", default="cpu")
    _precision_arg(e)

    s = sub.add_parser("score", help="score images with a checkpoint or an exported ONNX model (streamed, resumable)",
                       description="Write scores.csv (path, class, label, score; class and label when a parent "
                                   "folder is named normal, anomalous or abnormal; a decision, normal or anomalous, "
                                   "at the threshold the run fixed on its held-out normal images, also in "
                                   "score.json) and, with --heatmaps, a heatmap overlay PNG per image "
                                   "(colours scaled per image). Images are decoded and scored one batch at a time "
                                   "(any folder size, bounded memory), and each batch's rows are appended to "
                                   "scores.csv and flushed, so a killed run keeps what it wrote and --resume "
                                   "finishes it. Scores are the method's raw image scores: a normalisation over "
                                   "the whole set (GANomaly's min-max over the test set) is not applied; "
                                   "'evaluate' applies it.")
    model = s.add_mutually_exclusive_group(required=True)
    model.add_argument("--checkpoint", type=Path, help="a run's checkpoint.pt, scored by PyTorch")
    model.add_argument("--onnx", type=Path, help="a model written by 'hetero-ae export', scored by onnxruntime")
    s.add_argument("--images", required=True, type=Path, help="an image file or a folder of images (recursive)")
    s.add_argument("--out", required=True, type=Path, help="output folder: scores.csv, score.json, heatmaps/")
    s.add_argument("--heatmaps", action="store_true", help="also write heatmap overlays under OUT/heatmaps/")
    s.add_argument("--resume", action="store_true",
                   help="continue an interrupted run: keep OUT/scores.csv and score only the images it lacks "
                        "(same --checkpoint or --onnx, --images and --heatmaps)")
    s.add_argument("--strict", action="store_true", help="fail on an unreadable image instead of skipping it")
    s.add_argument("--batch-size", type=int, default=32)
    s.add_argument("--workers", type=int, default=None,
                   help="image decoding processes, 0 = decode in the main process (default: min(4, cores - 1))")
    s.add_argument("--device", default="cpu")
    _precision_arg(s)
    s.add_argument("--compile", nargs="?", const="inductor", default=None, metavar="BACKEND",
                   help="torch.compile the model's prediction (default backend: inductor); off by default")
    x = sub.add_parser("export", help="write a checkpoint's scoring function as an ONNX model",
                       description="Write the whole scoring function of a trained model, from uint8 RGB images "
                                   "(batch, S, S, 3) at the run's image size S, normalisation included, to the anomaly "
                                   "map (batch, S, S) and the image score (batch,) (and the feature distance where "
                                   "the method has one), as one ONNX file for onnxruntime ('hetero-ae score --onnx'). "
                                   "Its metadata records the image size, how images are decoded and resized, the "
                                   "normalisation, the run's threshold and the checkpoint's sha256. The export is "
                                   "checked against PyTorch on random images before it is written. Needs the onnx "
                                   "extra: pip install -e '.[onnx]'.")
    x.add_argument("--checkpoint", required=True, type=Path, help="a run's checkpoint.pt (or weights.pt)")
    x.add_argument("--out", required=True, type=Path, help="the ONNX file to write, e.g. model.onnx")
    r = sub.add_parser("run", help="train and evaluate one method on one dataset (cached)",
                       description="Train and evaluate a method on a dataset with a profile's settings; the result "
                                   "is cached under RESULTS/runs/ and reused by later calls.")
    _run_args(r)
    r.add_argument("--method", required=True, choices=sorted(METHOD_NAMES), metavar="METHOD",
                   help=f"one of {', '.join(sorted(METHOD_NAMES))}")
    r.add_argument("--seed", type=int, default=0)

    c = sub.add_parser("compare", help="every method of a profile on one dataset, as one table",
                       description="Train and evaluate the profile's methods on one dataset (cached runs) and print "
                                   "AUC, F1, ACC, SEN, SPE (best-F1 threshold, the paper's), pixel AUROC and "
                                   "training time.")
    _run_args(c)
    c.add_argument("--methods", nargs="+", help="default: the profile's methods")
    c.add_argument("--seed", type=int, default=0)

    rp = sub.add_parser("run-profile", help="train and evaluate every run a profile's tables use (cached)",
                        description="Train and evaluate, ahead of the notebooks, every run that the table notebooks of "
                                    "a profile ask for (Table I, Tables II-IV, Fig. 6), so that they find them in the "
                                    "cache. Under torchrun --nproc-per-node N the runs train with DDP, except those of "
                                    "methods with their own training step (the GANs), which the notebooks then "
                                    "train in one process. What run_all.sh --nproc N does first.")
    rp.add_argument("--profile", default="cpu", help="smoke, cpu, paper, or a YAML file (default: %(default)s)")
    rp.add_argument("--notebook", action="append", default=None,
                    help="only the runs of this notebook, e.g. table3_hctn (repeatable; default: every table notebook)")
    rp.add_argument("--data-root", default=None, help="default: $HETERO_AE_DATA, else the profile's data_root")
    rp.add_argument("--results", type=Path, default=Path("results"), help="(default: %(default)s)")
    rp.add_argument("--device", default=None, help="default: the profile's device")
    rp.add_argument("--check", action="store_true",
                    help="train nothing: list the runs the cache lacks, why, and how long they would take here; "
                         "exit status 1 if any (synthetic data are generated only where none are)")
    rp.add_argument("--jobs", type=int, default=None,
                    help="runs trained at once, each in its own process with cores/JOBS threads; only the "
                         "profile's train_jobs_methods where it names them (default: the profile's train_jobs; "
                         "1 under torchrun)")
    rp.add_argument("--size", type=int, default=None,
                    help="the runs at this input size instead of the profile's, every method at it, on synthetic data "
                         "generated at it under <data root>/<size>px (e.g. Table I at the paper's 256 px)")
    rp.add_argument("--datasets", nargs="+", default=None, help="only the runs on these datasets")
    rp.add_argument("--methods", nargs="+", default=None, help="only the runs of these methods")

    m = sub.add_parser("make-data", help="write the embedded synthetic benchmark",
                       description="Write synth-oct, synth-chest-xray, synth-brain-mri and synth-covid19 in the "
                                   "published layouts, with lesion masks in a sibling masks/ tree.")
    m.add_argument("kind", choices=["synthetic"])
    m.add_argument("--out", type=Path, default=Path("data/synthetic"), help="(default: %(default)s)")
    m.add_argument("--size", type=int, default=256, help="image size in px (default: %(default)s)")
    m.add_argument("--seed", type=int, default=0, help="(default: %(default)s)")
    m.add_argument("--preset", default="default", choices=["smoke", "default"], help="number of images (default: %(default)s)")
    m.add_argument("--workers", type=int, default=0, help="processes, 0 = one per core")
    m.add_argument("--profile", help="take --size, --seed, --preset and the data root from this profile, and write "
                                     "nothing if that benchmark is already there (what run_all.sh does)")
    return parser


def _precision_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--precision", choices=PRECISIONS, default=None,
                   help="of the forward pass: fp32 or bf16 autocast (default: the precision the model was trained in)")


def _loaded(path: Path, precision: str | None) -> tuple:
    """(model, checkpoint, precision) of ``path``: ``precision``, or None for the one it was trained in.

    The checkpoint of a run that has not finished (killed, or still training) is used with a
    one-line warning on stderr that says so.
    """
    from .training.checkpoint import load_model, trained_precision
    from .training.loop import finished

    model, ckpt = load_model(path)
    if not finished(ckpt):
        print(f"hetero-ae: warning: {path} is the checkpoint of an unfinished run (epoch {ckpt['epoch']} of "
              f"{ckpt['train_config']['epochs']}); finish it with 'hetero-ae train --resume'", file=sys.stderr)
    return model, ckpt, precision or trained_precision(ckpt)


def _run_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", required=True, help="e.g. synth-brain-mri, brain-mri, octmnist")
    p.add_argument("--profile", default="cpu", help="smoke, cpu, paper, or a YAML file (default: %(default)s)")
    p.add_argument("--data-root", default=None, help="default: $HETERO_AE_DATA, else the profile's data_root")
    p.add_argument("--results", type=Path, default=Path("results"), help="(default: %(default)s)")
    p.add_argument("--device", default=None, help="default: the profile's device")


def _experiment(a: argparse.Namespace, methods: list[str]) -> list:
    from .experiment.specs import run_spec

    return _run_profile_specs(a, [a.dataset], lambda profile, root: [run_spec(profile, a.dataset, m, a.seed)
                                                                     for m in methods], skip_unsupported=False)


def _run_profile_specs(a: argparse.Namespace, datasets: list[str], specs_of, *, skip_unsupported: bool,
                       keeps_weights=None) -> list:
    """Run ``specs_of(profile, data root)`` (cached) with ``a``'s profile, data root, results and device;
    each finished run for which ``keeps_weights(profile, spec)`` is true keeps its ``weights.pt``.

    Under torchrun every process joins the group and trains; rank 0 alone prints. A method that
    DDP cannot train (its own training step) is an error there, or with ``skip_unsupported``
    left out with a message.
    """
    from .data.datasets import data_root, get_dataset
    from .experiment.profiles import load_profile
    from .experiment.runs import keep_run_weights, run_experiments
    from .experiment.specs import ensure_profile_data, run_name
    from .training import distributed
    from .training.runtime import compile_backend

    for name in datasets:
        get_dataset(name)  # a misspelt name fails here, before any data is written
    profile = load_profile(a.profile)
    if getattr(a, "size", None):
        profile = profile.at_size(a.size)
    root = str(data_root(a.data_root, profile.data_root))
    backend = compile_backend(profile.torch_compile)
    jobs = getattr(a, "jobs", 1)  # run and compare train one at a time; run-profile's --jobs defaults to the profile
    if jobs is None:
        jobs = 1 if distributed.launched() else profile.train_jobs
    if jobs < 1:
        raise UserError(f"--jobs must be 1 or more, got {jobs}")
    if jobs > 1 and distributed.launched():
        raise UserError("--jobs runs several runs at once in one launch; under torchrun use --jobs 1 (DDP)")
    with distributed.process_group(_device(a.device or profile.device)) as device:
        main = distributed.is_main()
        if main:
            ensure_profile_data(profile, root, datasets)
        distributed.barrier()  # the data is written before any process reads it
        def done(spec, folder: Path, cached: bool) -> None:
            if not cached:  # a run found in the cache is counted at the end, not listed
                print(f"{run_name(spec, rule=True)}: trained -> {folder}", file=sys.stderr)
            if keeps_weights is not None and keeps_weights(profile, spec):
                keep_run_weights(folder)

        specs = []
        for spec in specs_of(profile, root):
            if skip_unsupported and distributed.world_size() > 1 and not distributed.supports(spec.model.method):
                if main:
                    print(f"{spec.model.method} on {spec.dataset}, seed {spec.train.seed}: left to one process "
                          "(its own training step; DDP trains the others)", file=sys.stderr)
                continue
            specs.append(spec)
        side = profile.train_jobs_methods  # the methods whose runs pay side by side (None: all)
        return run_experiments(specs, jobs=jobs, results=a.results, root=root, device=device, compile=backend,
                               on_done=done if main else None, progress=main,
                               side_by_side=None if side is None else lambda spec: spec.model.method in side)


def _print_table(results: list) -> None:
    import pandas as pd

    from .experiment.runs import summary

    table = pd.DataFrame([summary(r) for r in results]).drop(columns=["threshold"])
    print(table.to_markdown(index=False, floatfmt=".2f"))


def cmd_run(a: argparse.Namespace) -> None:
    from .training.distributed import is_main

    results = _experiment(a, [a.method])
    if is_main():  # under torchrun, rank 0 alone evaluates (the others' results hold no metrics)
        _print_table(results)


def cmd_compare(a: argparse.Namespace) -> None:
    from .experiment.profiles import load_profile

    _print_table(_experiment(a, a.methods or list(load_profile(a.profile).methods)))


def cmd_run_profile(a: argparse.Namespace) -> int:
    from .experiment.plan import plan_runs
    from .experiment.profiles import load_profile
    from .report.table_runs import TABLE_NOTEBOOKS, weights_specs
    from .training.distributed import is_main

    profile = load_profile(a.profile)
    if a.size:
        profile = profile.at_size(a.size)
    datasets = [*profile.datasets, *profile.ablation_datasets]
    others = sorted(set(a.notebook or ()) - set(TABLE_NOTEBOOKS))
    if others and is_main():
        print(f"{', '.join(others)}: no runs of its own to train ahead (the table notebooks: "
              f"{', '.join(TABLE_NOTEBOOKS)})", file=sys.stderr)
    if a.check:
        return _check_profile(a, profile, datasets)

    def specs_of(p, root: str) -> list:
        specs = _selected(a, p, root, verbose=is_main())
        if is_main():
            plan = plan_runs(specs, results=a.results, root=root, device=_device(a.device or p.device))
            print("\n".join(plan.lines(f"run-profile {p.profile}")), file=sys.stderr)
        return specs

    def keeps_weights(p, spec) -> bool:  # the figures' runs (Fig. 4, Fig. 5): their weights are committed
        return spec.key_dict() in [s.key_dict() for s in weights_specs(p, [spec.dataset])]

    results = _run_profile_specs(a, datasets, specs_of, skip_unsupported=True, keeps_weights=keeps_weights)
    if is_main():
        trained = sum(not r.cached for r in results)
        print(f"{len(results)} run(s) of profile {profile.profile} ready under {a.results / 'runs'} "
              f"({trained} trained now, {len(results) - trained} from the cache)")
        if trained and not (a.results / "runs" / "speed.json").is_file():
            from .experiment.plan import record_speed
            from .report.manifest import device_description

            device = _device(a.device or profile.device)
            record_speed(a.results, device, device_description(device))  # what later plans scale their estimates by
    return 0


def _selected(a: argparse.Namespace, profile, root: str, *, verbose: bool = True) -> list:
    """The runs of ``profile``'s table notebooks (``--notebook``) that ``--datasets`` and ``--methods`` keep."""
    from .report.table_runs import notebook_specs

    return [s for s in notebook_specs(profile, a.notebook, root, verbose=verbose)
            if (not a.datasets or s.dataset in a.datasets) and (not a.methods or s.model.method in a.methods)]


def _check_profile(a: argparse.Namespace, profile, datasets: list[str]) -> int:
    """``run-profile --check``: the plan of the profile's runs, every missing run listed; 1 if any is missing."""
    from .data.datasets import data_root
    from .experiment.plan import plan_runs
    from .experiment.specs import ensure_profile_data

    root = str(data_root(a.data_root, profile.data_root))
    ensure_profile_data(profile, root, datasets, replace=False)  # a fresh clone has none; other data stay as they are
    specs = _selected(a, profile, root)
    plan = plan_runs(specs, results=a.results, root=root, device=_device(a.device or profile.device))
    print("\n".join(plan.lines(f"run-profile {profile.profile} --check", every_run=True)))
    return 1 if plan.missing else 0


def cmd_make_data(a: argparse.Namespace) -> None:
    import time

    from .data.synthetic import make_synthetic

    if a.profile:
        from .data.datasets import data_root
        from .data.overview import ensure_synthetic
        from .experiment.profiles import load_profile

        p = load_profile(a.profile)
        stamp = data_root(None, p.data_root) / "synthetic" / "synthetic.json"
        before = stamp.stat().st_mtime_ns if stamp.is_file() else None
        t0 = time.perf_counter()
        out = ensure_synthetic(data_root(None, p.data_root), p.image_size, p.synthetic_seed, p.synthetic_preset)
        made = "already there" if stamp.stat().st_mtime_ns == before else f"generated in {time.perf_counter() - t0:.0f} s"
        print(f"synthetic data for profile {p.profile} (seed {p.synthetic_seed}, {p.image_size} px): {out}, {made}")
        return
    t0 = time.perf_counter()
    counts = make_synthetic(a.out, size=a.size, seed=a.seed, preset=a.preset, workers=a.workers or None)
    for name, splits in counts.items():
        print(f"{name}: " + ", ".join(f"{k} {v}" for k, v in splits.items()))
    print(f"written to {a.out} in {time.perf_counter() - t0:.1f} s")


def _params(pairs: list[str]) -> dict:
    import yaml

    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UserError(f"--param expects KEY=VALUE, got {pair!r}")
        out[key] = yaml.safe_load(value)
    return out


def cmd_train(a: argparse.Namespace) -> None:
    from .training import distributed

    model_cfg, train_cfg = _train_configs(a)  # every option is checked before any work starts
    check_writable(a.out, "--out")
    with distributed.process_group(_device(a.device)) as device:
        _train(a, model_cfg, train_cfg, device)


def _as_option(message: str) -> str:
    """A configuration's error in the command line's words: its leading field name as the option."""
    fields = {f.name for cls in (ModelConfig, TrainConfig) for f in dataclasses.fields(cls)} | {"image size", "device"}
    head = re.match(r"(unknown )?(" + "|".join(map(re.escape, sorted(fields, key=len, reverse=True))) + r")\b", message)
    if head is None:
        return message
    option = "--" + OPTION_NAMES.get(head.group(2), head.group(2)).replace("_", "-").replace(" ", "-")
    return message[: head.start(2)] + option + message[head.end(2):]


METHOD_OPTIONS = {"decoder": None, "alpha": None, "finetune_encoder": False, "comparison": None,
                  "feature_scale": "auto", "map_distance": None}  # ModelConfig fields set by train's options (None: its default)


def _method_options(a: argparse.Namespace) -> dict:
    """The ``ModelConfig`` fields of the options that only some methods read (Hetero-AE's), at their
    defaults where not given. UserError naming the option when it is given for a method that does not
    read it (``AnomalyModel.config_fields``): it would be ignored."""
    from .methods import method_class

    reads = method_class(a.method).config_fields
    given = {k: getattr(a, k) for k in METHOD_OPTIONS if getattr(a, k) is not None}
    ignored = [k for k in given if k not in reads]
    if ignored:
        option = "--" + ignored[0].replace("_", "-")
        readers = ", ".join(sorted(m for m in METHOD_NAMES if ignored[0] in method_class(m).config_fields))
        raise UserError(f"{option} does not apply to {a.method} (only to {readers}); set {a.method}'s own "
                        "hyper-parameters with --param KEY=VALUE")
    return {k: given.get(k, default) for k, default in METHOD_OPTIONS.items() if k in given or default is not None}


EPOCH_OPTIONS = ("epochs", "lr", "patience", "min_delta")  # what a method that learns no weight has none of


def _epoch_options(a: argparse.Namespace, *, fit_only: bool) -> None:
    """Fill ``a``'s epoch options (``EPOCH_OPTIONS``) not given with ``TrainConfig``'s defaults; for a method
    that learns no weight (one fit, PatchCore) with none: epochs 0, lr 0, no stopping rule. UserError naming
    the option when one is given for such a method: it would be ignored."""
    given = [k for k in EPOCH_OPTIONS if getattr(a, k) is not None]
    if fit_only and given:
        raise UserError(f"--{given[0].replace('_', '-')} does not apply to {a.method}: it learns no weight (one fit "
                        "of its memory bank, no epochs, learning rate or stopping rule)")
    d = TrainConfig()
    none = {"epochs": 0, "lr": 0.0, "patience": 0, "min_delta": 0.0}
    for k in EPOCH_OPTIONS:
        if getattr(a, k) is None:
            setattr(a, k, none[k] if fit_only else getattr(d, k))


def _train_configs(a: argparse.Namespace) -> tuple[ModelConfig, TrainConfig]:
    """The run's configurations from the options; ConfigError naming the option that is wrong."""
    from .methods import check_model_config, method_class, with_map_sigma

    try:
        model_cfg = check_model_config(ModelConfig(**with_map_sigma(a.method, a.map_sigma, dict(
            method=a.method, encoder=a.encoder, encoder_weights=a.encoder_weights, image_size=a.image_size,
            params=_params(a.param), **_method_options(a)))))
        _epoch_options(a, fit_only=not method_class(a.method).trains_weights)
        train_cfg = TrainConfig(epochs=a.epochs, batch_size=a.batch_size, lr=a.lr, seed=a.seed,
                                num_threads=a.threads, precision=a.precision, patience=a.patience,
                                min_delta=a.min_delta)
    except ConfigError as e:
        raise ConfigError(_as_option(str(e))) from None
    if not 0 <= a.val_fraction < 1:
        raise UserError(f"--val-fraction must lie in [0, 1), got {a.val_fraction}")
    if a.patience > 0 and a.val_fraction == 0:
        raise UserError("--patience stops training on held-out normal images: set --val-fraction above 0, "
                        "or --patience 0")
    if a.workers is not None and a.workers < 0:
        raise UserError(f"--workers must be 0 or more, got {a.workers}")
    return model_cfg, train_cfg


def _train(a: argparse.Namespace, model_cfg: ModelConfig, train_cfg: TrainConfig, device: str) -> None:
    from contextlib import nullcontext

    from .data.images import read_normal_folder
    from .io import exclusive
    from .training.distributed import is_main
    from .training.loop import check_run_folder, train
    from .training.runtime import compile_backend

    backend = compile_backend(a.compile)
    ckpt_path = check_run_folder(a.out, a.resume)
    data = read_normal_folder(a.data, model_cfg.image_size, strict=a.strict)
    train_set, val_set = _hold_out(a, data, train_cfg.seed)
    record = dict(a=a, model_cfg=model_cfg, train_cfg=train_cfg, data=data, train_set=train_set, val_set=val_set,
                  device=device, backend=backend)
    with exclusive(a.out) if is_main() else nullcontext():  # one process writes a run folder
        on_epoch_end = _start_record(a, ckpt_path, record) if is_main() else None
        model, history = train(model_cfg, train_cfg, train_set, a.out, val=val_set, resume=a.resume, device=device,
                               compile=backend, workers=a.workers, cache_features=not a.no_feature_cache,
                               on_epoch_end=on_epoch_end)
        if is_main():
            _record_training(**record, model=model, history=history)


def _hold_out(a: argparse.Namespace, data, seed: int) -> tuple:
    """(training images, held-out normals) of ``data`` with ``--val-fraction``.

    Raises UserError when fewer than MIN_TRAIN_IMAGES are left to train on, or when the fraction
    holds out no image and ``--patience`` needs some; warns on stderr when it holds out none (no
    threshold will be fixed without test labels).
    """
    from .data.images import path_text
    from .training.distributed import is_main
    from .training.loop import hold_out

    too_few = UserError(f"--data {path_text(a.data)}: {len(data)} readable image(s) are too few with --val-fraction "
                        f"{a.val_fraction}: at least {MIN_TRAIN_IMAGES} must be left to train on after the hold-out")
    try:
        train_set, val_set = hold_out(data, a.val_fraction, seed)
    except UserError:
        raise too_few from None
    if len(train_set) < MIN_TRAIN_IMAGES:
        raise too_few
    if a.val_fraction > 0 and val_set is None:
        held = f"--val-fraction {a.val_fraction} of {len(data)} image(s) holds out none"
        if a.patience > 0:
            raise UserError(f"{held}, and --patience needs held-out normal images: raise --val-fraction, "
                            "or set --patience 0")
        if is_main():
            print(f"hetero-ae: warning: {held}: no threshold will be fixed without test labels (raise "
                  "--val-fraction to hold out at least one)", file=sys.stderr)
    return train_set, val_set


def _start_record(a: argparse.Namespace, ckpt_path: Path, record: dict) -> Callable[[dict], None]:
    """Before training: clear what a killed run left (temporary files; an earlier run's held-out scores when
    this one starts afresh) and say when --resume finds nothing; the function that writes config.json (the
    run not finished) and history.json after every epoch's checkpoint, so that a killed run keeps its record."""
    from .io import remove_partial_writes
    from .training.run_folder import HISTORY, VAL_SCORES, read_history, write_history

    remove_partial_writes(a.out)
    fresh = not ckpt_path.exists()
    if fresh:
        (a.out / VAL_SCORES).unlink(missing_ok=True)
        if a.resume:
            print(f"hetero-ae: note: nothing to resume in {a.out} (no {ckpt_path.name}): training from scratch",
                  file=sys.stderr)
    so_far = [] if fresh or not (a.out / HISTORY).is_file() else read_history(a.out)

    def on_epoch_end(entry: dict) -> None:
        so_far[:] = [h for h in so_far if h["epoch"] < entry["epoch"]] + [entry]
        _write_config(**record, training={"finished": False})
        write_history(a.out, so_far)

    return on_epoch_end


def _write_config(a: argparse.Namespace, model_cfg: ModelConfig, train_cfg: TrainConfig, data, train_set, val_set,
                  device: str, backend: str | None, training: dict) -> None:
    """The run folder's config.json (``training.run_folder``), ``training`` saying how far the run went."""
    from .training.run_folder import held_out_description, write_run_config

    n_val = 0 if val_set is None else len(val_set)
    write_run_config(a.out, dataset=str(a.data), model=model_cfg, train=train_cfg, val_fraction=a.val_fraction,
                     held_out_normals=held_out_description(a.val_fraction, n_val), train_images=len(train_set),
                     val_images=n_val, device=device, compile=backend, skipped=data.skipped, training=training)


def _record_training(a: argparse.Namespace, model_cfg: ModelConfig, train_cfg: TrainConfig, model, history, data,
                     train_set, val_set, device: str, backend: str | None) -> None:
    """config.json, history.json and the held-out normals' raw scores of a trained folder; one line on stdout."""
    from .evaluation.predict import predict
    from .training.run_folder import write_history, write_val_scores

    if val_set is not None:  # raw scores: evaluate puts them on the test set's scale
        _, val_scores = predict(model, val_set.images, device=device, normalize=False, precision=train_cfg.precision)
        write_val_scores(a.out, val_set.paths, val_scores)
    _write_config(a, model_cfg, train_cfg, data, train_set, val_set, device, backend,
                  training={"finished": True, **(history.stop or {}), "feature_cache": history.feature_cache})
    write_history(a.out, history)
    stop = history.stop or {}
    if stop.get("stop_reason") == "fit":  # a method that learns no weight (PatchCore)
        print(f"fitted {a.method} on {len(train_set)} images in one pass (it learns no weight); "
              f"checkpoint: {a.out / 'checkpoint.pt'}")
        return
    print(f"trained {a.method} on {len(train_set)} images for {len(history)} epoch(s) "
          f"({stop.get('stop_reason', 'fixed')}; kept the {stop.get('kept', 'last')} epoch's weights); final loss "
          f"{history[-1]['loss']:.4f}; checkpoint: {a.out / 'checkpoint.pt'}")


def _val_scores(checkpoint: Path, model, device: str) -> np.ndarray | None:
    """The run's held-out normal scores (``experiment.runs.held_out_scores``: scored once for a run
    cached before run folders kept them)."""
    from .errors import DataError
    from .experiment.runs import held_out_scores

    try:
        scores = held_out_scores(checkpoint.parent, model, device=device)
    except DataError as e:  # the images are still scored, without a decision (_why_no_threshold)
        print(f"hetero-ae: {e}", file=sys.stderr)
        return None
    return None if scores is None else np.asarray(scores)


def _why_no_threshold(checkpoint: Path) -> str:
    """Why a run has no held-out normal scores beside ``checkpoint`` (its config.json says how many it held out)."""
    from .training.run_folder import VAL_SCORES, read_run_config

    try:
        config = read_run_config(checkpoint.parent)
        held, done = int(config.get("val_images", 0)), bool(config.get("training", {}).get("finished", True))
    except (OSError, ValueError, TypeError, AttributeError):
        held, done = 0, True
    if held and not done:
        return (f"the run held out {held} normal image(s) but has not finished, so they are not scored yet "
                f"(no {VAL_SCORES}; finish it with 'hetero-ae train --resume')")
    if held:
        return f"the scores of the run's {held} held-out normal image(s) ({VAL_SCORES}) are missing"
    return f"the run held out no normal images (no {VAL_SCORES} beside the checkpoint; train with --val-fraction > 0)"


def _device(device: str) -> str:
    """``device`` when this machine has it; else ConfigError naming ``--device``."""
    from .training.runtime import check_device

    try:
        return check_device(device)
    except ConfigError as e:
        raise ConfigError(_as_option(str(e))) from None


def _scoring_options(a: argparse.Namespace) -> None:
    """``evaluate`` and ``score``'s options, checked before the checkpoint or any image is read."""
    if a.batch_size < 1:
        raise UserError(f"--batch-size must be at least 1, got {a.batch_size}")
    if getattr(a, "workers", None) is not None and a.workers < 0:
        raise UserError(f"--workers must be 0 or more, got {a.workers}")
    _device(a.device)


def cmd_evaluate(a: argparse.Namespace) -> None:
    from .data.layouts import read_labelled_folder
    from .evaluation.predict import evaluate, save_evaluation
    from .io import exclusive

    _scoring_options(a)
    out = a.out or a.checkpoint.parent
    check_writable(out, "--out" if a.out else "the checkpoint's folder")
    model, ckpt, precision = _loaded(a.checkpoint, a.precision)
    data = read_labelled_folder(a.data, ckpt["model_config"]["image_size"], normal_class=a.normal_class,
                                strict=a.strict)
    ev = evaluate(model, data, held_out=_val_scores(a.checkpoint, model, a.device), precision=precision,
                  device=a.device, batch_size=a.batch_size, progress=True)
    with exclusive(out):  # one process writes a folder at a time
        save_evaluation(out, data, ev, n_normal=int((data.labels == 0).sum()),
                        n_anomalous=int((data.labels == 1).sum()), skipped=data.skipped)
    rules = {"normal_q95": "the 95% quantile of held-out normal scores, no test label",
             "best_f1": "the best F1 on these test labels, the paper's: optimistic"}
    for key, rule in rules.items():
        if key in ev.metrics:
            m = ev.metrics[key]
            print(f"at {m['threshold']:.4g} ({rule}): " + "  ".join(
                f"{k.upper()} {100 * m[k]:.2f}" for k in ("auc", "f1", "acc", "sen", "spe")))
    if "normal_q95" not in ev.metrics:
        print(f"no threshold without test labels: {_why_no_threshold(a.checkpoint)}")
    print(f"written to {out}")


def _threshold(checkpoint: Path, model, device: str = "cpu"):
    """The threshold a run fixed on its held-out normal images, or None when it held out none."""
    from .evaluation.predict import Threshold

    normals = _val_scores(checkpoint, model, device)
    return None if normals is None or not len(normals) else Threshold.from_normals(normals)


def cmd_export(a: argparse.Namespace) -> None:
    import json

    from .evaluation.onnx_model import export_onnx

    if a.out.is_dir():
        raise UserError(f"--out {a.out} is a folder: give the ONNX file to write, e.g. {a.out / 'model.onnx'}")
    check_writable(a.out.parent, "--out")
    model, ckpt, _ = _loaded(a.checkpoint, None)
    threshold = _threshold(a.checkpoint, model)
    replaced = a.out.is_file()
    meta, parity = export_onnx(model, ckpt, a.checkpoint, a.out, threshold=threshold)
    size = int(meta["image_size"])
    print(f"exported {meta['method']} to {a.out}{' (replacing the file that was there)' if replaced else ''} "
          f"({a.out.stat().st_size / 2**20:.1f} MiB): uint8 RGB "
          f"(batch, {size}, {size}, 3) in, normalisation in the graph; {', '.join(json.loads(meta['outputs']))} out; "
          + (f"threshold {threshold.value:.4g} recorded" if threshold
             else f"no threshold recorded: {_why_no_threshold(a.checkpoint)}"))
    print(f"onnxruntime against PyTorch on {parity.images} random images, largest difference: {parity}")


def cmd_score(a: argparse.Namespace) -> None:
    from .evaluation.scores import SCORES
    from .evaluation.scoring import score_images
    from .training.runtime import compile_backend, compiled, helper_processes

    _scoring_options(a)
    check_writable(a.out, "--out")
    if a.onnx:
        model = _onnx_scorer(a)
        ckpt_path, threshold, size, precision, backend = a.onnx, model.threshold, model.image_size, "fp32", None
    else:
        model, ckpt, precision = _loaded(a.checkpoint, a.precision)
        ckpt_path, size = a.checkpoint, ckpt["model_config"]["image_size"]
        threshold = _threshold(a.checkpoint, model, a.device)
        backend = compile_backend(a.compile)
    with compiled(model, backend):
        new, before, skipped = score_images(
            model, ckpt_path, size, a.images, a.out, precision=precision, threshold=threshold,
            batch_size=a.batch_size, workers=helper_processes() if a.workers is None else a.workers, device=a.device,
            heatmaps=a.heatmaps, resume=a.resume, strict=a.strict)
    resumed = f" after {before} already there" if a.resume else ""
    unread = f"; {len(skipped)} unreadable image(s) skipped" if skipped else ""
    decided = (f"; decision at {threshold.value:.4g}, {threshold.as_dict()['rule']}" if threshold
               else "; no decision: " + (_why_no_threshold(ckpt_path) if a.checkpoint
                                         else "the exported model records no threshold"))
    print(f"scored {new} image(s){resumed}{unread}{decided} -> {a.out / SCORES}")


def _onnx_scorer(a: argparse.Namespace):
    from .evaluation.onnx_model import OnnxScorer

    for option, given in (("--precision", a.precision), ("--compile", a.compile)):
        if given and given != "fp32":
            raise UserError(f"{option} {given} does not apply to --onnx: the exported graph computes in float32 in "
                            "onnxruntime")
    return OnnxScorer(a.onnx, a.device)


COMMANDS = {"train": cmd_train, "evaluate": cmd_evaluate, "score": cmd_score, "export": cmd_export,
            "make-data": cmd_make_data,
            "run": cmd_run, "compare": cmd_compare, "run-profile": cmd_run_profile}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)  # before torch is imported: --help and usage errors stay fast
    from .training.launch import COMMANDS as DDP_COMMANDS  # torch-free: a command imports torch if it needs it
    from .training.launch import launched

    try:
        if launched() and args.command not in DDP_COMMANDS:
            raise UserError(f"'{args.command}' runs in one process (python -m hetero_ae); only "
                            f"{', '.join(DDP_COMMANDS)} run under torchrun")
        status = COMMANDS[args.command](args)
    except UserError as e:
        where = f"[rank {os.environ.get('RANK')}] " if launched() else ""
        print(f"hetero-ae: error: {where}{e}", file=sys.stderr)
        return 2
    except PermissionError as e:  # what the checks before the work could not foresee: still one line
        print(f"hetero-ae: error: permission denied: {e.filename or e}", file=sys.stderr)
        return 2
    return status or 0
