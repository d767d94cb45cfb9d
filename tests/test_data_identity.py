"""The data identity that names a run's data in the cache (hetero_ae.data.identity, experiment.provenance)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from hetero_ae.data.identity import combined, data_identity, pixel_digest
from hetero_ae.data.synthetic import AVX512_TARGETS, make_synthetic
from hetero_ae.experiment.profiles import load_profile
from hetero_ae.experiment.provenance import explain_miss
from hetero_ae.experiment.runs import cached_result, run_experiment, run_folder
from hetero_ae.experiment.specs import run_spec

NAMES = ("synth-oct", "synth-chest-xray", "synth-brain-mri", "synth-covid19")


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    make_synthetic(root / "synthetic", size=64, seed=0, preset="smoke", workers=2)
    return root


def _copy(root, tmp_path):
    shutil.copytree(root, tmp_path / "data", ignore=shutil.ignore_patterns(".cache"))
    return tmp_path / "data"


def test_a_synthetic_benchmark_is_named_by_how_it_was_generated(root):
    ident = data_identity("synth-oct", root)
    assert ident.kind == "synthetic"
    assert ident.key == {"synthetic": {"generator_version": 1, "seed": 0, "size": 64, "preset": "smoke"}}
    assert ident.digest == combined(ident.files) and len(ident.files) == len(set(ident.files))


def test_reencoding_every_png_keeps_the_identity_and_the_digest(root, tmp_path):
    data = _copy(root, tmp_path)
    before = {n: data_identity(n, data) for n in NAMES}
    pngs = sorted(data.rglob("*.png"))
    sizes = [p.stat().st_size for p in pngs]
    for p in pngs:
        with Image.open(p) as img:
            img.load()
            img.save(p, format="PNG", compress_level=1)
    assert sum(a != p.stat().st_size for a, p in zip(sizes, pngs)) > 0.9 * len(pngs)  # the bytes did change
    for n in NAMES:
        after = data_identity(n, data)
        assert (after.key, after.digest, after.files) == (before[n].key, before[n].digest, before[n].files)


def test_one_changed_pixel_changes_the_digest_and_names_the_file_but_not_the_key(root, tmp_path):
    data = _copy(root, tmp_path)
    before = data_identity("synth-covid19", data)
    path = next(data.rglob("Covid19-dataset/test/Covid/*.png"))
    a = np.asarray(Image.open(path)).copy()
    a[0, 0] ^= 1
    Image.fromarray(a).save(path)
    after = data_identity("synth-covid19", data)
    assert after.key == before.key and after.digest != before.digest
    changed = [k for k in after.files if after.files[k] != before.files[k]]
    assert changed == [path.relative_to(data / "synthetic" / "synth-covid19").as_posix()]


def test_a_dataset_without_its_benchmark_record_is_named_by_its_files_bytes(root, tmp_path):
    data = _copy(root, tmp_path)
    (data / "synthetic" / "synthetic.json").unlink()
    ident = data_identity("synth-oct", data)
    assert ident.kind == "files" and ident.key == {"sha256": ident.digest}
    path = next(data.rglob("OCT2017 /train/NORMAL/*.png"))
    with Image.open(path) as img:
        img.load()
        img.save(path, format="PNG", compress_level=0)  # same pixels, other bytes: other files
    assert data_identity("synth-oct", data).key != ident.key


def test_digests_are_stored_and_computed_again_only_when_a_file_changes(root, tmp_path, monkeypatch):
    data = _copy(root, tmp_path)
    data_identity("synth-oct", data)
    calls = []
    import hetero_ae.data.identity as identity

    real = identity.pixel_digest
    monkeypatch.setattr(identity, "pixel_digest", lambda p: calls.append(p) or real(p))
    data_identity("synth-oct", data)
    assert calls == []
    next(data.rglob("OCT2017 /val/NORMAL/*.png")).touch()
    data_identity("synth-oct", data)
    assert len(calls) == len(data_identity("synth-oct", data).files)


def test_pixel_digest_sees_pixels_mode_and_size(tmp_path):
    a = np.arange(64, dtype=np.uint8).reshape(8, 8)
    Image.fromarray(a).save(tmp_path / "a.png")
    Image.fromarray(a).save(tmp_path / "b.png", compress_level=9)
    Image.fromarray(a.reshape(4, 16)).save(tmp_path / "c.png")
    Image.fromarray(a).convert("RGB").save(tmp_path / "d.png")
    d = {p: pixel_digest(tmp_path / p) for p in ("a.png", "b.png", "c.png", "d.png")}
    assert d["a.png"] == d["b.png"] and len(set(d.values())) == 3


def test_the_run_key_is_the_data_key_so_regenerated_data_finds_the_run(root, tmp_path):
    smoke = load_profile("smoke")
    spec = run_spec(smoke, "synth-covid19", "ae", seed=0)
    first = run_experiment(spec, results=tmp_path / "results", root=root, progress=False)
    config = json.loads((first.folder / "config.json").read_text())
    assert config["data"] == data_identity("synth-covid19", root).record()
    regenerated = tmp_path / "again"
    make_synthetic(regenerated / "synthetic", size=64, seed=0, preset="smoke", workers=1)
    assert cached_result(spec, tmp_path / "results", regenerated).folder == first.folder


def test_a_hit_on_other_pixels_is_reported_once_and_used(root, tmp_path, capsys):
    smoke = load_profile("smoke")
    spec = run_spec(smoke, "synth-covid19", "ae", seed=0)
    first = run_experiment(spec, results=tmp_path / "results", root=root, progress=False)
    data = _copy(root, tmp_path)
    path = next(data.rglob("Covid19-dataset/train/Normal/*.png"))
    a = np.asarray(Image.open(path)).copy()
    a[3, 3] ^= 1
    Image.fromarray(a).save(path)
    capsys.readouterr()
    for _ in range(2):
        hit = cached_result(spec, tmp_path / "results", data)
        assert hit is not None and hit.folder == first.folder
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "1 of " in err[0] and path.name in err[0]


def test_a_miss_on_data_of_another_seed_says_which_seed(root, tmp_path):
    smoke = load_profile("smoke")
    spec = run_spec(smoke, "synth-covid19", "ae", seed=0)
    run_experiment(spec, results=tmp_path / "results", root=root, progress=False)
    other = tmp_path / "seed1"
    make_synthetic(other / "synthetic", size=64, seed=1, preset="smoke", workers=2)
    assert cached_result(spec, tmp_path / "results", other) is None
    assert run_folder(spec, tmp_path / "results", other) != run_folder(spec, tmp_path / "results", root)
    why = explain_miss(spec, tmp_path / "results", data_identity("synth-covid19", other))
    assert why.startswith("cached for synthetic") and "seed 0" in why and "the data here are" in why and "seed 1" in why
    assert explain_miss(run_spec(smoke, "synth-covid19", "ae", seed=5), tmp_path / "results",
                        data_identity("synth-covid19", other)) == "no run of this configuration in the cache"


_PROBE = """
import numpy as np
from numpy._core._multiarray_umath import __cpu_features__ as f
print(int(bool(f.get("AVX512F"))))
"""


def test_the_generator_writes_the_same_pixels_with_numpys_avx512_kernels_on_or_off(tmp_path):
    has = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True).stdout.strip()
    if has != "1":
        pytest.skip("this CPU has no AVX-512: numpy runs its AVX2 kernels whatever the generator asks")
    code = ("import sys, hetero_ae.data.synthetic as s; s.AVX512_TARGETS = sys.argv[2]; "
            "s.make_synthetic(sys.argv[1], size=64, seed=0, preset='smoke', workers=1)")
    for name, targets in (("on", ""), ("off", AVX512_TARGETS)):
        subprocess.run([sys.executable, "-c", code, str(tmp_path / name / "synthetic"), targets], check=True)
    on = {n: data_identity(n, tmp_path / "on").digest for n in NAMES}
    off = {n: data_identity(n, tmp_path / "off").digest for n in NAMES}
    if on == off:
        pytest.skip("numpy's AVX-512 and AVX2 kernels give the same pixels on this benchmark here: nothing to pin")
    assert {n: data_identity(n, _regenerated(tmp_path)).digest for n in NAMES} == off


def _regenerated(tmp_path):
    """The benchmark as make_synthetic writes it (AVX-512 kernels off in its workers)."""
    make_synthetic(tmp_path / "default" / "synthetic", size=64, seed=0, preset="smoke", workers=2)
    return tmp_path / "default"
