"""Streaming, resumable scoring of an image folder (``hetero-ae score``).

Images are decoded one batch at a time by the one input pipeline (``data.batches``: worker
processes decode the next batches while the model runs on the current one) and scored by the
one prediction path (``evaluation.predict.predict_batches``), or by an exported model in
onnxruntime (``evaluation.onnx_model``), so a folder of any size is scored in bounded memory:
at most ``batch_size * (1 + workers * prefetch)`` images are decoded at once.

Each batch's rows are appended to ``OUT/scores.csv`` (the one layout, ``evaluation.scores``;
``class`` and ``label`` come from a parent folder named normal, anomalous or abnormal, and
are empty otherwise; ``feature_distance`` where the method defines one; ``decision`` at the run's
threshold) and flushed to disk (fsync) before the next batch, so a killed run keeps every row it
wrote; at most the last line is torn. A small sidecar ``OUT/score.json`` (written atomically before
the first row) records what the CSV was written with: the checkpoint's sha256, the image size,
the ``--images`` argument, whether heatmaps were written, the precision of the forward pass (the
one the model was trained in unless ``--precision`` says otherwise), the runtime (pytorch or
onnxruntime; the model file's sha256 is then the ONNX file's) and the threshold. ``resume=True``
checks it, drops a torn last line, skips the images already scored and appends the rest, so that the final CSV is
byte for byte the one an uninterrupted run writes; images added to the folder since are scored too (their rows
come last), and an image the CSV lists that is no longer there is an error.

The output folder is never read as input: when it lies inside the image folder it is left out of
the search, and so is any other folder holding a ``score.json`` of an earlier run (its heatmaps
are not images to score).

Scores are the method's raw image scores. A method whose score normalisation needs the whole
set at once (GANomaly's min-max over the test set) cannot be normalised batch by batch; its
raw scores are written, as ``evaluate`` does before normalising.
"""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
from tqdm import tqdm  # plain text bars: no widget warnings in notebooks and their HTML

from ..data.batches import ImageFiles, batch_loader
from ..data.images import UnreadableImage, label_of, list_images, note_skipped, path_text
from ..errors import DataError, UserError
from ..io import atomic_write, exclusive, file_digest, write_json
from ..methods.registry import AnomalyModel
from .onnx_model import OnnxScorer
from .predict import Threshold, predict_batches
from .scores import SCORES, ScoresFile, read_scored, score_rows

SIDECAR = "score.json"
HEATMAPS = "heatmaps"
FORMAT = "hetero-ae-score/2"  # /2: the one scores.csv layout (path, class, label, score)


def overlay(image: np.ndarray, amap: np.ndarray) -> np.ndarray:
    """A jet-coloured map (scaled to its own range) blended over the image, uint8 (H, W, 3)."""
    from matplotlib import colormaps

    lo, hi = float(amap.min()), float(amap.max())
    norm = (amap - lo) / (hi - lo) if hi > lo else np.zeros_like(amap)
    heat = colormaps["jet"](norm)[..., :3] * 255.0
    return np.clip(0.5 * image.astype(np.float32) + 0.5 * heat, 0, 255).astype(np.uint8)


def _remaining(scored: list[str], paths: list[Path], csv_path: Path) -> list[int]:
    """Positions in ``paths`` of the images a resumed run still has to score (those added since included);
    UserError when the CSV lists an image twice or one that is no longer among them."""
    names = [path_text(p) for p in paths]
    present, seen = set(names), set()
    for p in scored:
        if p not in present or p in seen:
            raise UserError(f"{csv_path} lists {p} {'twice' if p in seen else 'which is not among the images now'}; "
                            "the image folder changed, so choose another output folder")
        seen.add(p)
    return [i for i, name in enumerate(names) if name not in seen]


def _not_input(out: Path) -> Callable[[Path], bool]:
    """Whether a folder under the images is to be left out of their search: ``out``, or an earlier score
    output (its ``score.json`` and ``scores.csv``), named on one line."""
    out = out.resolve()

    def skip(folder: Path) -> bool:
        if folder.resolve() == out:
            return True
        if (folder / SIDECAR).is_file() and (folder / SCORES).is_file():
            tqdm.write(f"hetero-ae: left out {path_text(folder)}: the output of an earlier 'hetero-ae score' "
                       f"({SIDECAR}), not images to score", file=sys.stderr)
            return True
        return False

    return skip


def score_images(
    model: AnomalyModel | OnnxScorer, ckpt_path: Path, image_size: int, images: Path, out: Path, *, precision: str = "fp32",
    threshold: Threshold | None = None, batch_size: int = 32, workers: int = 0, device: str = "cpu",
    heatmaps: bool = False, resume: bool = False, strict: bool = False, progress: bool = True,
) -> tuple[int, int, list[str]]:
    """Score ``images`` (a file or a folder) into ``out/scores.csv``; (new rows, rows before, skipped paths).

    ``model``: a PyTorch model loaded from the checkpoint ``ckpt_path``, or an exported one run by
    onnxruntime (``evaluation.onnx_model.OnnxScorer``; ``ckpt_path`` is then its ONNX file and
    ``precision`` is fp32, the precision the graph computes in).

    ``precision``: of the forward pass (``hetero_ae.model.precision``; the one the model was trained
    in); ``threshold``: the one the run fixed without test labels, which adds a ``decision`` column
    (``anomalous`` at or above it). One process
    writes into ``out`` at a time (``io.exclusive``). A run that fails leaves nothing that blocks the
    next: a new output is removed whole, a resumed one keeps the rows it had (a Ctrl-C keeps what
    was written, for ``--resume``). Raises UserError for bad options, another run's output folder or
    a folder another process writes, DataError when no image can be read, UnreadableImage for an
    unreadable one with ``strict``.
    """
    if batch_size < 1:
        raise UserError(f"--batch-size must be at least 1, got {batch_size}")
    if workers < 0:
        raise UserError(f"--workers must be 0 or more, got {workers}")
    folder = not images.is_file()
    paths = list_images(images, _not_input(out)) if folder else [images]
    csv_path, sidecar = out / SCORES, out / SIDECAR
    columns = (*(("feature_distance",) if model.has_feature_distance else ()), *(("decision",) if threshold else ()))
    meta = {"format": FORMAT, "checkpoint": path_text(ckpt_path), "checkpoint_sha256": file_digest(ckpt_path),
            "image_size": int(image_size), "images": path_text(images), "heatmaps": bool(heatmaps),
            "precision": precision, "threshold": None if threshold is None else threshold.as_dict(),
            "runtime": "onnxruntime" if isinstance(model, OnnxScorer) else "pytorch"}
    with exclusive(out):
        todo, done, fresh = list(range(len(paths))), 0, not csv_path.exists()
        if not fresh:
            if not resume:
                raise UserError(f"{csv_path} exists: pass --resume to continue it, or choose another output folder")
            _check_sidecar(sidecar, meta, csv_path)
            scored = read_scored(csv_path, columns)
            todo, done = _remaining(scored, paths, csv_path), len(scored)
        try:
            if fresh:
                write_json(sidecar, meta)
            with ScoresFile(csv_path, columns) as f:
                known = [label_of(p.relative_to(images) if folder else p.name) for p in paths]
                new, skipped = _stream(model, paths, known, todo, done, image_size, f, out, precision=precision,
                                       threshold=threshold, batch_size=batch_size, workers=workers, device=device,
                                       heatmaps=heatmaps, strict=strict, progress=progress)
            if done + new == 0:
                raise DataError(f"none of the {len(paths)} image(s) could be read")
        except Exception:
            if fresh:  # nothing of this run is left to block the next one
                for made in (csv_path, sidecar):
                    made.unlink(missing_ok=True)
                shutil.rmtree(out / HEATMAPS, ignore_errors=True)
            raise
    return new, done, skipped


def _check_sidecar(sidecar: Path, meta: dict, csv_path: Path) -> None:
    """An error unless the existing CSV was written by this runtime with this model file (checkpoint or ONNX),
    image size, --images, --heatmaps, precision and threshold."""
    try:
        old = json.loads(sidecar.read_text())
    except (OSError, ValueError):
        raise UserError(f"{csv_path} has no readable {SIDECAR} beside it, so it cannot be resumed safely; "
                        "choose another output folder") from None
    if old.get("format") != FORMAT:
        raise UserError(f"{sidecar} is not a {FORMAT!r} record; choose another output folder")
    runtime = old.get("runtime", "pytorch")  # records written before the key: PyTorch
    if runtime != meta["runtime"]:
        option = "--onnx" if runtime == "onnxruntime" else "--checkpoint"
        raise UserError(f"{csv_path} was written by {runtime} with {option} {old.get('checkpoint')}: resume with "
                        f"{option} {old.get('checkpoint')}, or choose another output folder")
    if old.get("checkpoint_sha256") != meta["checkpoint_sha256"]:
        raise UserError(f"{csv_path} was written with another checkpoint ({old.get('checkpoint')}, sha256 "
                        f"{str(old.get('checkpoint_sha256'))[:12]}) than {meta['checkpoint']} (sha256 "
                        f"{meta['checkpoint_sha256'][:12]}): resume with that checkpoint or choose another output folder")
    options = (("image_size", "image size"), ("images", "--images"), ("heatmaps", "--heatmaps"),
               ("precision", "--precision"), ("threshold", "threshold"))
    for key, option in options:
        if old.get(key, "fp32" if key == "precision" else None) != meta[key]:  # records before precision: fp32
            raise UserError(f"{csv_path} was written with {option} {old.get(key)}, not {meta[key]}: resume with the "
                            "same settings or choose another output folder")


def _stream(model: AnomalyModel | OnnxScorer, paths: list[Path], known: list[tuple[str, int | None]], todo: list[int],
            done: int, image_size: int, f: ScoresFile,
            out: Path, *, precision: str, threshold: Threshold | None, batch_size: int, workers: int, device: str,
            heatmaps: bool, strict: bool, progress: bool) -> tuple[int, list[str]]:
    """Score ``paths`` at the positions ``todo``, in that order, appending their rows to ``f``; (rows, skipped)."""
    from PIL import Image

    new, skipped = 0, []
    if not todo:
        return new, skipped
    batches = [np.asarray(todo[i : i + batch_size]) for i in range(0, len(todo), batch_size)]
    loader = batch_loader(ImageFiles(paths, image_size), batches, device=device, workers=workers)
    initial = len(paths) - len(todo)
    with tqdm(total=len(paths), initial=initial, desc="scoring", unit="img", leave=False, disable=not progress) as bar:
        predictions = (model.predict_batches(loader) if isinstance(model, OnnxScorer)
                       else predict_batches(model, loader, device=device, precision=precision))
        for batch, maps, scores, distances in predictions:
            for i, msg in batch.errors:
                if strict:
                    raise UnreadableImage(f"cannot read image {path_text(paths[i])}: {msg}")
                note_skipped(paths[i], msg)
                skipped.append(path_text(paths[i]))
            names = [path_text(paths[i]) for i in batch.index]
            pending = []  # heatmaps before the rows, so that a row on disk always has its heatmap ...
            try:
                if heatmaps:
                    for k, (name, amap) in enumerate(zip(names, maps)):
                        png = out / HEATMAPS / f"{done + new + k:06d}_{Path(name).stem}.png"
                        im = overlay(batch.images[k].numpy(), amap)
                        pending.append(atomic_write(png, lambda p, im=im: Image.fromarray(im).save(p, format="PNG")))
                found = [known[i] for i in batch.index]
                columns = {} if distances is None else {"feature_distance": distances}
                if threshold is not None:
                    columns["decision"] = threshold.decide(scores)
                f.append(score_rows(names, [c for c, _ in found], [y for _, y in found], scores, columns))
            except BaseException:
                for png in pending:  # ... and a heatmap never outlives a row that failed to be written
                    png.unlink(missing_ok=True)
                raise
            new += len(names)
            bar.update(len(batch.index) + len(batch.errors))
    return new, skipped
