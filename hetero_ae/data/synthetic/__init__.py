"""The embedded synthetic benchmark: four datasets in the published layouts, with lesion masks.

``make_synthetic(out, size, seed, preset)`` writes ``synth-oct``, ``synth-chest-xray``,
``synth-brain-mri`` and ``synth-covid19`` under ``out`` (built in a sibling folder and renamed
into place, so an interrupted run never leaves half a benchmark) in exactly the layouts the real
loaders read (``hetero_ae.data.layouts``), so the real code path is the one exercised, and
a binary mask per anomalous image in a sibling ``masks/`` tree. Test-set class ratios follow
the paper's datasets (Sec. IV-A); the number of images is set by a preset. Each image is
drawn from its own generator seeded by (seed, dataset, split, class, index), so the output
is byte-identical for the same seed whatever the number of worker processes.

The same pixels on other x86-64 CPUs: numpy picks its float64 ``exp``, ``log``, ``power``, ``tan``,
``arctan``, ``expm1``, ``log1p`` and ``cbrt`` kernels by the CPU's instructions at import, and its
AVX-512 kernels round differently (by an ulp) from its AVX2 ones. After ``to_uint8`` that moved 66
pixels of 2,641 images by one grey level between an AVX2 and an AVX-512 machine. So the workers
import numpy with its AVX-512 targets switched off (``NPY_DISABLE_CPU_FEATURES``, numpy's own
switch), and every x86-64 machine with AVX2 computes the AVX2 kernels' bits. Another architecture
(an Arm Mac) or another numpy may still differ by a few grey levels; the run cache names a
benchmark by ``GENERATOR_VERSION``, seed, size and preset and checks its pixels apart
(``hetero_ae.data.identity``), so such a difference is reported, not silently retrained.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np
from PIL import Image

from ...errors import UserError
from ...io import atomic_write, write_json

# Bump when the same (seed, size, preset) would draw other images: the run cache keys a benchmark by it.
GENERATOR_VERSION = 1
# numpy's dispatch targets above AVX2, by their names before and since numpy 2.4 (unknown names are ignored).
AVX512_TARGETS = ("X86_V4 AVX512F AVX512CD AVX512_KNL AVX512_KNM AVX512_SKX AVX512_CLX AVX512_CNL AVX512_ICL "
                  "AVX512_SPR")


@dataclass(frozen=True)
class SynthSpec:
    name: str
    module: str  # generator module under hetero_ae.data.synthetic, with sample(rng, size, label, severity)
    top: str  # release top folder of the published layout
    splits: dict[str, str]  # split -> folder
    classes: dict[str, str]  # class folder -> the generator's label
    normal: str
    test_counts: dict[str, int]  # the paper's test set, for the class ratios


SPECS = (
    SynthSpec("synth-oct", "oct", "OCT2017 ", {"train": "train", "val": "val", "test": "test"},
              {"NORMAL": "NORMAL", "CNV": "CNV", "DME": "DME", "DRUSEN": "DRUSEN"}, "NORMAL",
              {"NORMAL": 250, "CNV": 250, "DME": 250, "DRUSEN": 250}),
    SynthSpec("synth-chest-xray", "chest", "chest_xray", {"train": "train", "val": "val", "test": "test"},
              {"NORMAL": "normal", "PNEUMONIA": "consolidation"}, "NORMAL", {"NORMAL": 234, "PNEUMONIA": 390}),
    SynthSpec("synth-brain-mri", "brain", "", {"train": "Training", "test": "Testing"},
              {"notumor": "notumor", "glioma": "glioma", "meningioma": "meningioma", "pituitary": "pituitary"},
              "notumor", {"notumor": 405, "glioma": 300, "meningioma": 306, "pituitary": 300}),
    SynthSpec("synth-covid19", "chest", "Covid19-dataset", {"train": "train", "test": "test"},
              {"Normal": "normal", "Covid": "ground-glass", "Viral Pneumonia": "viral"}, "Normal",
              {"Normal": 20, "Covid": 26, "Viral Pneumonia": 20}),
)

# images per dataset: normal training images, held-out normal images (where the layout has val), test images
PRESETS: dict[str, dict[str, int]] = {
    "smoke": {"train": 24, "val": 6, "test": 24},
    "default": {"train": 400, "val": 40, "test": 240},
}


def class_counts(spec: SynthSpec, n_test: int) -> dict[str, int]:
    """Test images per class in the paper's ratios, at least 2 per class, summing to about n_test."""
    total = sum(spec.test_counts.values())
    return {c: max(2, round(n_test * k / total)) for c, k in spec.test_counts.items()}


@dataclass(frozen=True)
class Job:
    spec_index: int
    split: str
    cls: str
    index: int
    size: int
    seed: int
    out: str


def _sampler(module: str) -> Callable[..., tuple[np.ndarray, np.ndarray]]:
    from importlib import import_module

    return import_module(f"{__name__}.{module}").sample


def _png(path: Path, array: np.ndarray) -> None:
    atomic_write(path, lambda p: Image.fromarray(array).save(p, format="PNG"))


def _one_thread() -> None:
    """Worker initialiser: BLAS threads in every worker fight over the cores and slow generation down."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)


@contextmanager
def _numpy_without_avx512():
    """Processes started inside import numpy with its AVX-512 kernels off (module docstring)."""
    before = os.environ.get("NPY_DISABLE_CPU_FEATURES")
    os.environ["NPY_DISABLE_CPU_FEATURES"] = " ".join(filter(None, (before, AVX512_TARGETS)))
    try:
        yield
    finally:
        if before is None:
            del os.environ["NPY_DISABLE_CPU_FEATURES"]
        else:
            os.environ["NPY_DISABLE_CPU_FEATURES"] = before


def _run(job: Job) -> None:
    spec = SPECS[job.spec_index]
    split_i = ("train", "val", "test").index(job.split)
    class_i = list(spec.classes).index(job.cls)
    rng = np.random.default_rng([job.seed, job.spec_index, split_i, class_i, job.index])
    severity = float(rng.uniform(0.0, 1.0))
    image, mask = _sampler(spec.module)(rng, job.size, spec.classes[job.cls], severity)
    rel = Path(spec.top) / spec.splits[job.split] / job.cls / f"{job.cls.replace(' ', '_')}-{job.index:05d}.png"
    root = Path(job.out) / spec.name
    _png(root / rel, image)
    if job.cls != spec.normal:
        _png(root / "masks" / rel, mask.astype(np.uint8) * 255)


def jobs(out: Path, size: int, seed: int, counts: dict[str, int]) -> list[Job]:
    todo = []
    for i, spec in enumerate(SPECS):
        for split in spec.splits:
            per_class = class_counts(spec, counts["test"]) if split == "test" else {spec.normal: counts[split]}
            todo += [Job(i, split, c, k, size, seed, str(out)) for c, n in per_class.items() for k in range(n)]
    return todo


def make_synthetic(out: str | Path, *, size: int = 256, seed: int = 0, preset: str = "default",
                   workers: int | None = None) -> dict[str, dict[str, int]]:
    """Write the four synthetic datasets under ``out``; returns the image count per dataset and split."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {sorted(PRESETS)}")
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not (out / "synthetic.json").is_file():
        raise UserError(f"{out} exists and does not hold a synthetic benchmark; choose another --out")
    final, out = out, out.parent / f".{out.name}.partial"
    shutil.rmtree(out, ignore_errors=True)
    todo = jobs(out, size, seed, PRESETS[preset])
    workers = workers or min(os.cpu_count() or 1, 8)
    # always in fresh (spawned) processes, even one: this process's numpy chose its kernels already
    with _numpy_without_avx512(), ProcessPoolExecutor(workers, mp_context=get_context("spawn"),
                                                      initializer=_one_thread) as pool:
        list(pool.map(_run, todo, chunksize=16))
    summary: dict[str, dict[str, int]] = {}
    for job in todo:
        split_counts = summary.setdefault(SPECS[job.spec_index].name, {})
        split_counts[job.split] = split_counts.get(job.split, 0) + 1
    write_json(out / "synthetic.json", {"generator_version": GENERATOR_VERSION, "size": size, "seed": seed,
                                        "preset": preset, "counts": summary})
    shutil.rmtree(final, ignore_errors=True)  # a previous benchmark (checked above): replaced whole
    out.rename(final)
    return summary
