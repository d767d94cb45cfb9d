"""Streaming, resumable scoring of an image folder (``hetero-ae score``).

Images are decoded one batch at a time by a ``DataLoader`` over the sorted file list (worker
processes decode the next batches while the model runs on the current one), so a folder of
any size is scored in bounded memory: at most ``batch_size * (1 + workers * prefetch)`` images
are decoded at once.

Each batch's rows are appended to ``OUT/scores.csv`` and flushed to disk (fsync) before the
next batch, so a killed run keeps every row it wrote; at most the last line is torn. A small
sidecar ``OUT/score.json`` (written atomically before the first row) records what the CSV was
written with: the checkpoint's sha256, the image size, the ``--images`` argument, whether
heatmaps were written and the precision of the forward pass (the model's: its training
precision unless ``--precision`` says otherwise). ``resume=True`` checks it, drops a torn
last line, skips the images already scored and appends the rest, so that the final CSV is
byte for byte the one an uninterrupted run writes.

Scores are the method's raw image scores. A method whose score normalisation needs the whole
set at once (GANomaly's min-max over the test set) cannot be normalised batch by batch; its
raw scores are written, as ``evaluate`` does before normalising.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import io
import os
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm  # plain text bars: no widget warnings in notebooks and their HTML

from .data.images import UnreadableImage, list_images, load_image, to_batch
from .errors import DataError, UserError
from .io import atomic_write, write_json

SCORES = "scores.csv"
SIDECAR = "score.json"
FORMAT = "hetero-ae-score/1"
HEADER = ("path", "score", "label")


def label_of(path: str) -> str:
    """'0' under a folder named normal, '1' under anomalous/abnormal, else ''."""
    parts = {p.lower() for p in Path(path).parts[:-1]}
    return "0" if "normal" in parts else "1" if parts & {"anomalous", "abnormal"} else ""


def overlay(image: np.ndarray, amap: np.ndarray) -> np.ndarray:
    """A jet-coloured map (scaled to its own range) blended over the image, uint8 (H, W, 3)."""
    from matplotlib import colormaps

    lo, hi = float(amap.min()), float(amap.max())
    norm = (amap - lo) / (hi - lo) if hi > lo else np.zeros_like(amap)
    heat = colormaps["jet"](norm)[..., :3] * 255.0
    return np.clip(0.5 * image.astype(np.float32) + 0.5 * heat, 0, 255).astype(np.uint8)


def csv_line(row: Sequence[object]) -> str:
    """One CSV record exactly as ``csv.writer`` writes it (``\\r\\n`` terminated)."""
    buf = io.StringIO()
    csv.writer(buf).writerow(row)
    return buf.getvalue()


class ImageFiles(Dataset):
    """Decodes one file per item: (index, (size, size, 3) uint8 array or None, error message or '')."""

    def __init__(self, paths: Sequence[Path], size: int) -> None:
        self.paths, self.size = list(paths), size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[int, np.ndarray | None, str]:
        try:
            return i, load_image(self.paths[i], self.size), ""
        except UnreadableImage as e:  # reported by the main process: a worker's traceback is no message
            return i, None, str(e.__cause__ or e)


@dataclass
class Batch:
    """Indices (into the file list) of the images that decoded, the images (k, H, W, 3) uint8, and the failures."""

    index: list[int]
    images: torch.Tensor
    errors: list[tuple[int, str]]

    def pin_memory(self) -> "Batch":  # DataLoader(pin_memory=True) calls this on custom batch types
        return Batch(self.index, self.images.pin_memory(), self.errors)


def _collate(items: list[tuple[int, np.ndarray | None, str]], size: int) -> Batch:
    ok = [(i, a) for i, a, _ in items if a is not None]
    images = (torch.from_numpy(np.stack([a for _, a in ok])) if ok
              else torch.empty((0, size, size, 3), dtype=torch.uint8))
    return Batch([i for i, _ in ok], images, [(i, msg) for i, a, msg in items if a is None])


def make_loader(paths: Sequence[Path], size: int, *, batch_size: int, workers: int, device: str) -> Iterable[Batch]:
    """Batches of decoded images in file order; decoding overlaps the model when ``workers`` > 0."""
    return DataLoader(ImageFiles(paths, size), batch_size=batch_size, shuffle=False, num_workers=workers,
                      collate_fn=functools.partial(_collate, size=size),
                      pin_memory=torch.device(device).type == "cuda")


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_scored(csv_path: Path) -> list[str]:
    """Paths already in a scores CSV, after cutting a torn last line off the file."""
    data = csv_path.read_bytes()
    keep = data[: data.rfind(b"\r\n") + 2] if b"\r\n" in data else b""
    header = csv_line(HEADER).encode()
    if keep and not keep.startswith(header):
        raise UserError(f"{csv_path} is not a scores file of 'hetero-ae score' (header {keep[:60]!r}); "
                        "choose another output folder")
    if len(keep) != len(data):
        with open(csv_path, "r+b") as f:  # drop the half-written row of a killed run
            f.truncate(len(keep))
            f.flush()
            os.fsync(f.fileno())
    rows = list(csv.reader(io.StringIO(keep.decode("utf-8"), newline="")))
    return [r[0] for r in rows[1:]]


def _remaining(scored: list[str], paths: list[Path], csv_path: Path) -> int:
    """Index into ``paths`` where a resumed run continues; an error if the CSV is not a prefix of this run's."""
    position = {str(p): i for i, p in enumerate(paths)}
    last = -1
    for p in scored:
        i = position.get(p, -1)
        if i <= last:
            raise UserError(f"{csv_path} lists {p}, which is {'out of order' if i >= 0 else 'not'} among the "
                            "images now; the image folder changed, so choose another output folder")
        last = i
    return last + 1


def score_images(
    model, ckpt_path: Path, image_size: int, images: Path, out: Path, *, batch_size: int = 32, workers: int = 0,
    device: str = "cpu", heatmaps: bool = False, resume: bool = False, strict: bool = False, progress: bool = True,
) -> tuple[int, int, list[str]]:
    """Score ``images`` (a file or a folder) into ``out/scores.csv``; (new rows, rows before, skipped paths)."""
    if batch_size < 1:
        raise UserError(f"--batch-size must be at least 1, got {batch_size}")
    if workers < 0:
        raise UserError(f"--workers must be 0 or more, got {workers}")
    paths = [images] if images.is_file() else list_images(images)
    csv_path, sidecar = out / SCORES, out / SIDECAR
    meta = {"format": FORMAT, "checkpoint": str(ckpt_path), "checkpoint_sha256": file_digest(ckpt_path),
            "image_size": int(image_size), "images": str(images), "heatmaps": bool(heatmaps),
            "precision": model.precision}
    start, done = 0, 0
    if csv_path.exists():
        if not resume:
            raise UserError(f"{csv_path} exists: pass --resume to continue it, or choose another output folder")
        _check_sidecar(sidecar, meta, csv_path)
        scored = read_scored(csv_path)
        start, done = _remaining(scored, paths, csv_path), len(scored)
    else:
        write_json(sidecar, meta)
    with open(csv_path, "a", encoding="utf-8", newline="") as f:
        if f.tell() == 0:  # a new file, or one killed before its header was complete
            f.write(csv_line(HEADER))
            _sync(f)
        new, skipped = _stream(model, paths, start, done, image_size, f, out, batch_size=batch_size, workers=workers,
                               device=device, heatmaps=heatmaps, strict=strict, progress=progress)
    if done + new == 0:
        csv_path.unlink()
        sidecar.unlink(missing_ok=True)
        raise DataError(f"none of the {len(paths)} image(s) could be read")
    return new, done, skipped


def _check_sidecar(sidecar: Path, meta: dict, csv_path: Path) -> None:
    """An error unless the existing CSV was written with this checkpoint, image size, --images, --heatmaps, precision."""
    import json

    try:
        old = json.loads(sidecar.read_text())
    except (OSError, ValueError):
        raise UserError(f"{csv_path} has no readable {SIDECAR} beside it, so it cannot be resumed safely; "
                        "choose another output folder") from None
    if old.get("format") != FORMAT:
        raise UserError(f"{sidecar} is not a {FORMAT!r} record; choose another output folder")
    if old.get("checkpoint_sha256") != meta["checkpoint_sha256"]:
        raise UserError(f"{csv_path} was written with another checkpoint ({old.get('checkpoint')}, sha256 "
                        f"{str(old.get('checkpoint_sha256'))[:12]}) than {meta['checkpoint']} (sha256 "
                        f"{meta['checkpoint_sha256'][:12]}): resume with that checkpoint or choose another output folder")
    options = (("image_size", "image size"), ("images", "--images"), ("heatmaps", "--heatmaps"),
               ("precision", "--precision"))
    for key, option in options:
        if old.get(key, "fp32" if key == "precision" else None) != meta[key]:  # records before precision: fp32
            raise UserError(f"{csv_path} was written with {option} {old.get(key)}, not {meta[key]}: resume with the "
                            "same settings or choose another output folder")


def _sync(f) -> None:
    f.flush()
    os.fsync(f.fileno())


def _stream(model, paths: list[Path], start: int, done: int, image_size: int, f, out: Path, *, batch_size: int,
            workers: int, device: str, heatmaps: bool, strict: bool, progress: bool) -> tuple[int, list[str]]:
    from PIL import Image

    todo = paths[start:]
    new, skipped = 0, []
    if not todo:
        return new, skipped
    model.to(device).eval()
    loader = make_loader(todo, image_size, batch_size=batch_size, workers=workers, device=device)
    bar = tqdm(total=len(paths), initial=start, desc="scoring", unit="img", leave=False, disable=not progress)
    with torch.inference_mode(), model.autocast(), bar:
        for batch in loader:
            for i, msg in batch.errors:
                path = todo[i]
                if strict:
                    raise UnreadableImage(f"cannot read image {path}: {msg}")
                warnings.warn(f"skipping unreadable image {path}: {msg}", stacklevel=2)
                skipped.append(str(path))
            lines = []
            if batch.index:
                x = to_batch(batch.images.to(device, non_blocking=True))
                maps, scores = model.predict(x)
                maps, scores = maps.float().cpu().numpy(), scores.float().cpu().numpy()
                for k, (i, amap, score) in enumerate(zip(batch.index, maps, scores)):
                    path = str(todo[i])
                    if heatmaps:  # before the row: a row on disk always has its heatmap
                        png = out / "heatmaps" / f"{done + new + k:06d}_{Path(path).stem}.png"
                        im = overlay(batch.images[k].numpy(), amap)
                        atomic_write(png, lambda p, im=im: Image.fromarray(im).save(p, format="PNG"))
                    lines.append(csv_line((path, f"{score:.6g}", label_of(path))))
            f.write("".join(lines))
            _sync(f)
            new += len(lines)
            bar.update(len(batch.index) + len(batch.errors))
    if skipped:
        warnings.warn(f"skipped {len(skipped)} unreadable image(s) of {len(todo)}", stacklevel=2)
    return new, skipped
