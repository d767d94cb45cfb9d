from __future__ import annotations

import hashlib

import numpy as np
import pytest

from hetero_ae.data.datasets import load_split
from hetero_ae.data.stats import global_stat_auc
from hetero_ae.data.synthetic import SPECS, _sampler, class_counts, make_synthetic


def digest(folder) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp("synthetic")
    make_synthetic(out, size=64, seed=3, preset="smoke", workers=2)
    return out


def test_same_seed_same_bytes_whatever_the_number_of_workers(smoke, tmp_path):
    make_synthetic(tmp_path, size=64, seed=3, preset="smoke", workers=1)
    assert digest(tmp_path) == digest(smoke)


def test_another_seed_gives_other_images(smoke, tmp_path):
    make_synthetic(tmp_path, size=64, seed=4, preset="smoke", workers=2)
    a, b = digest(smoke), digest(tmp_path)
    assert a.keys() == b.keys() and sum(a[k] != b[k] for k in a) > 0.9 * len(a)


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_the_real_loaders_read_the_synthetic_layouts(smoke, spec):
    train = load_split(spec.name, "train", 64, root=_root_for(smoke), cache=False)
    test = load_split(spec.name, "test", 64, root=_root_for(smoke), cache=False)
    assert len(train) == 24 and set(train.classes) == {spec.normal}
    assert {c: test.classes.count(c) for c in set(test.classes)} == class_counts(spec, 24)
    anomalous = test.labels == 1
    assert test.masks is not None
    assert (test.masks[anomalous].reshape(anomalous.sum(), -1).sum(1) > 0).all(), "every lesion has a mask"
    assert test.masks[~anomalous].sum() == 0


def _root_for(smoke):
    """The loaders look for synth-* under <root>/synthetic/: give them a root whose synthetic/ is ``smoke``."""
    link = smoke.parent / "root" / "synthetic"
    if not link.exists():
        link.parent.mkdir(exist_ok=True)
        link.symlink_to(smoke, target_is_directory=True)
    return link.parent


GENERATORS = [(s.name, s.module, s.normal, s.classes) for s in SPECS]


@pytest.mark.parametrize("name,module,normal,classes", GENERATORS, ids=[g[0] for g in GENERATORS])
def test_global_intensity_statistics_do_not_give_the_anomalies_away(name, module, normal, classes):
    sample, rng = _sampler(module), np.random.default_rng(0)
    anomalies = [classes[c] for c in classes if c != normal]

    def draw(label):
        return sample(rng, 64, label, float(rng.uniform()))[0]

    train = np.stack([draw(classes[normal]) for _ in range(100)])
    test = np.stack([draw(classes[normal]) for _ in range(100)] + [draw(anomalies[i % len(anomalies)]) for i in range(100)])
    auc = global_stat_auc(train, test, np.r_[np.zeros(100), np.ones(100)])
    assert auc <= 0.75, f"{name}: mean/std detector AUC {auc:.3f}"


def test_regenerating_replaces_the_whole_benchmark(tmp_path):
    make_synthetic(tmp_path / "s", size=64, seed=0, preset="smoke", workers=1)
    stale = tmp_path / "s" / "synth-oct" / "stale.txt"
    stale.write_text("from an earlier, larger preset")
    make_synthetic(tmp_path / "s", size=64, seed=1, preset="smoke", workers=1)
    assert not stale.exists() and not list(tmp_path.glob(".*partial"))


def test_refuses_to_write_over_a_folder_that_is_not_a_benchmark(tmp_path):
    from hetero_ae.errors import UserError

    (tmp_path / "mine.txt").write_text("user data")
    with pytest.raises(UserError, match="does not hold a synthetic benchmark"):
        make_synthetic(tmp_path, size=64, preset="smoke", workers=1)
    assert (tmp_path / "mine.txt").exists()


def test_a_data_root_that_is_itself_a_benchmark_is_refused_and_nothing_is_written(tmp_path):
    from hetero_ae.data.overview import ensure_synthetic
    from hetero_ae.errors import DataError

    bench = tmp_path / "design" / "synthetic"
    make_synthetic(bench, size=64, seed=1, preset="smoke", workers=1)
    with pytest.raises(DataError, match="itself a synthetic benchmark.*pass its parent"):
        ensure_synthetic(bench, 64, 0, "smoke")
    assert not (bench / "synthetic").exists()
    assert ensure_synthetic(tmp_path / "design", 64, 1, "smoke") == bench  # its parent: the benchmark as it is
