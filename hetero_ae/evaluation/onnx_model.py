"""A trained model's whole scoring function as one ONNX file, and scoring with onnxruntime.

``export_onnx`` writes what ``predict_batches`` computes for a batch, from the decoded image to
the outputs, so that a deployment needs neither PyTorch nor this package:

    input   images            uint8 (batch, S, S, 3), RGB, S = the run's image size
    ------  ImageNet normalisation and the layout change (``data.images.to_batch``), in the graph
            the method's forward pass, its anomaly map (Eq. 6-7 for Hetero-AE, Sec. III-D2)
            and image score (Eq. 8)
    output  anomaly_map       float32 (batch, S, S)
            score             float32 (batch,), the raw image score ``hetero-ae score`` writes
            feature_distance  float32 (batch,), only for methods that define one (Fig. 6)

What stays outside the graph is decoding: the file is read to RGB, turned upright by its EXIF
orientation and resized to S x S by ``data.images.load_image`` (PIL's antialiased bilinear filter;
16-bit images stretched to 8 bits).
The ONNX file's metadata (``metadata_props``) records that rule with everything else a
deployment needs: the image size, the normalisation, the method and its configuration, the
threshold the run fixed on held-out normal images (none if it held out none), the sha256 of the
checkpoint it came from, and the versions that exported it.

The graph computes in float32 whatever precision the model was trained in; a bf16-trained
model's ONNX scores are its float32 scores. A method whose score normalisation needs the whole
set (GANomaly's min-max over the test set) is exported with its raw scores, as ``score`` writes
them. The export uses torch's exporter (``torch.onnx.export(dynamo=True)``, which needs
``onnxscript``) with a dynamic batch size, and then checks onnxruntime's outputs against
PyTorch's on random images (``parity``).

Dependencies: the ``onnx`` extra (``pip install -e '.[onnx]'``: onnx, onnxscript, onnxruntime);
without it ``export_onnx`` and ``OnnxScorer`` raise UserError saying how to install it.
"""

from __future__ import annotations

import dataclasses
import json
import platform
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from importlib import import_module
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ..data.batches import Batch
from ..data.images import IMAGENET_MEAN, IMAGENET_STD, to_batch
from ..errors import UserError
from ..io import atomic_write, file_digest
from ..methods.registry import AnomalyModel
from ..training.checkpoint import trained_precision
from .predict import Threshold, empty_prediction

FORMAT = "hetero-ae-onnx/1"
INPUT = "images"
OUTPUTS = ("anomaly_map", "score", "feature_distance")
OPSET = 18
# onnxruntime against PyTorch, both float32 on the CPU: the largest difference allowed, relative to
# the largest magnitude of the output over the batch (measured differences are about 1e-6 of it).
TOLERANCE = 1e-4
_SMALLEST_SCALE = 1e-6  # an output that is zero everywhere is compared at this scale
DECODING = ("turned upright by its EXIF orientation (PIL.ImageOps.exif_transpose), "
            "RGB (grayscale repeated, alpha composited over black, 16-bit stretched to 8 bits), "
            "resized to image_size x image_size with PIL's antialiased bilinear filter (data.images.load_image)")


def _need(module: str) -> Any:
    try:
        return import_module(module)
    except ImportError:
        raise UserError(f"ONNX needs the {module} package, which is not installed: pip install -e '.[onnx]' "
                        "(onnx, onnxscript, onnxruntime)") from None


class ScoringFunction(nn.Module):
    """``model``'s scoring from uint8 images (B, S, S, 3) to (anomaly_map (B, S, S), score (B,)[, feature_distance
    (B,)]), float32, normalisation included: the forward pass of ``predict_batches``, as one module to export."""

    def __init__(self, model: AnomalyModel) -> None:
        super().__init__()
        self.model = model.eval()

    @property
    def outputs(self) -> tuple[str, ...]:
        return OUTPUTS if self.model.has_feature_distance else OUTPUTS[:2]

    def forward(self, images: Tensor) -> tuple[Tensor, ...]:
        maps, scores, distance = self.model.predict_with_distance(to_batch(images))
        return (maps.float(), scores.float()) if distance is None else (maps.float(), scores.float(), distance.float())


@dataclass(frozen=True)
class Parity:
    """onnxruntime against PyTorch on the same images: the largest absolute difference of each output,
    and each output's largest magnitude (the scale ``TOLERANCE`` is relative to)."""

    images: int
    max_abs_diff: dict[str, float]
    max_abs: dict[str, float]

    @property
    def ok(self) -> bool:
        return all(self.max_abs_diff[k] <= TOLERANCE * max(self.max_abs[k], _SMALLEST_SCALE) for k in self.max_abs_diff)

    def __str__(self) -> str:
        return ", ".join(f"{k} {d:.1e} (of {self.max_abs[k]:.3g})" for k, d in self.max_abs_diff.items())


def export_onnx(model: AnomalyModel, ckpt: dict[str, Any], checkpoint: Path, out: Path, *,
                threshold: Threshold | None = None, check_images: int = 4) -> tuple[dict[str, str], Parity]:
    """Write ``model``'s scoring function (``ScoringFunction``) to ``out`` (atomically, one file), and
    check it; (the metadata written, the parity of onnxruntime with PyTorch on ``check_images`` random images).

    ``model`` is moved to the CPU. ``ckpt``: the checkpoint ``model`` was loaded from (``checkpoint``),
    whose configuration and digest go into the metadata; ``threshold``: the run's held-out threshold,
    recorded for ``OnnxScorer`` (computed from scores in the precision the model was trained in).
    Raises UserError when the onnx extra is missing, when the exporter fails, or when onnxruntime's
    outputs differ from PyTorch's by more than ``TOLERANCE`` (nothing is written then).
    """
    onnx = _need("onnx")
    _need("onnxscript")
    _need("onnxruntime")
    size = int(ckpt["model_config"]["image_size"])
    method = str(ckpt["model_config"]["method"])
    function = ScoringFunction(model.cpu()).eval()
    example = torch.zeros((2, size, size, 3), dtype=torch.uint8)
    try:
        program = torch.onnx.export(function, (example,), dynamo=True, external_data=False, verbose=False,
                                    opset_version=OPSET, input_names=[INPUT], output_names=list(function.outputs),
                                    dynamic_shapes=({0: torch.export.Dim("batch")},))
    except Exception as e:  # the exporter's errors are many and long: the first line names what failed
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"{checkpoint}: torch.onnx.export could not export {method}: {first}") from e
    proto = program.model_proto
    metadata = {
        "format": FORMAT, "image_size": str(size), "input": f"{INPUT}: uint8 (batch, {size}, {size}, 3), RGB",
        "decoding": DECODING,
        "input_normalisation": json.dumps({"mean": [round(255 * m, 4) for m in IMAGENET_MEAN],
                                           "std": [round(255 * s, 4) for s in IMAGENET_STD], "in_graph": True}),
        "score_normalisation": "none: raw image scores (GANomaly's min-max over a whole test set is not applied)",
        "outputs": json.dumps(list(function.outputs)), "method": method,
        "model_config": json.dumps(ckpt["model_config"], sort_keys=True),
        "trained_precision": trained_precision(ckpt), "precision": "fp32",
        "threshold": json.dumps(None if threshold is None else dataclasses.asdict(threshold)),
        "checkpoint_sha256": file_digest(checkpoint), "hetero_ae": _version("hetero-ae"),
        "torch": torch.__version__, "onnx": onnx.__version__, "python": platform.python_version(),
    }
    onnx.helper.set_model_props(proto, metadata)

    def write(tmp: Path) -> None:
        onnx.save_model(proto, str(tmp))
        found = parity(function, OnnxScorer(tmp), check_images)
        if not found.ok:
            raise UserError(f"the exported model's outputs differ from PyTorch's by more than {TOLERANCE:g} of "
                            f"their scale ({found}); nothing was written to {out}")
        checked.append(found)

    checked: list[Parity] = []
    atomic_write(out, write)
    return metadata, checked[0]


def parity(function: ScoringFunction, scorer: "OnnxScorer", n: int = 4, seed: int = 0) -> Parity:
    """Both on the same ``n`` random uint8 images of the model's size: the outputs' largest differences."""
    size = scorer.image_size
    images = np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)
    with torch.inference_mode():
        ours = [t.numpy() for t in function(torch.from_numpy(images))]
    theirs = scorer.run(images)
    return Parity(n, {k: float(np.abs(a - b).max()) for k, a, b in zip(scorer.outputs, ours, theirs)},
                  {k: float(np.abs(a).max()) for k, a in zip(scorer.outputs, ours)})


def _version(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return "unknown"


class OnnxScorer:
    """An exported scoring function run by onnxruntime, with what its metadata records.

    ``device``: "cpu" (onnxruntime's CPU provider) or "cuda"/"cuda:N" (its CUDA provider, where the
    installed onnxruntime has one). Raises UserError when the file is missing, is not an ONNX model
    written by ``export_onnx``, or the device has no provider.
    """

    has_feature_distance: bool
    image_size: int
    threshold: Threshold | None

    def __init__(self, path: str | Path, device: str = "cpu") -> None:
        ort = _need("onnxruntime")
        path = Path(path)
        if not path.is_file():
            raise UserError(f"ONNX model not found: {path}")
        providers = ["CPUExecutionProvider"]
        if device.startswith("cuda"):
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise UserError(f"--device {device}: this onnxruntime has no CUDA provider (install onnxruntime-gpu); "
                                "use --device cpu")
            index = device.partition(":")[2] or "0"
            providers = [("CUDAExecutionProvider", {"device_id": int(index)}), "CPUExecutionProvider"]
        elif device != "cpu":
            raise UserError(f"--device {device}: onnxruntime scores on cpu or cuda")
        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only: no warnings about unused initialisers on stderr
        try:
            self.session = ort.InferenceSession(str(path), options, providers=providers)
        except Exception as e:  # onnxruntime raises its own exception types for a bad file
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise UserError(f"{path} is not a readable ONNX model: {first}") from None
        if device.startswith("cuda") and self.session.get_providers()[0] != "CUDAExecutionProvider":
            raise UserError(f"--device {device}: onnxruntime could not start its CUDA provider; use --device cpu")
        meta = self.session.get_modelmeta().custom_metadata_map
        if meta.get("format") != FORMAT:
            raise UserError(f"{path} is an ONNX model that hetero-ae export did not write (no {FORMAT!r} metadata)")
        self.path, self.metadata = path, meta
        self.image_size = int(meta["image_size"])
        self.outputs = tuple(json.loads(meta["outputs"]))
        self.has_feature_distance = "feature_distance" in self.outputs
        found = json.loads(meta["threshold"])
        self.threshold = None if found is None else Threshold(**found)

    def run(self, images: np.ndarray) -> list[np.ndarray]:
        """The outputs (``self.outputs``, in order) for uint8 images (B, S, S, 3)."""
        return self.session.run(list(self.outputs), {INPUT: np.ascontiguousarray(images, dtype=np.uint8)})

    def predict_batches(self, batches: Iterable[Batch]) -> Iterator[tuple[Batch, np.ndarray, np.ndarray,
                                                                          np.ndarray | None]]:
        """(batch, maps (k, S, S), raw scores (k,), feature distances (k,) or None) per batch, as
        ``evaluation.predict.predict_batches`` yields them for a PyTorch model."""
        for batch in batches:
            if not batch.index:
                yield empty_prediction(batch)
                continue
            out = self.run(batch.images.numpy())
            yield batch, out[0], out[1], out[2] if self.has_feature_distance else None
