"""Loaders read each published layout, built here as tiny folder trees."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import blob_image, write_png

from hetero_ae.data.datasets import load_split
from hetero_ae.errors import DataError

RNG = np.random.default_rng(0)

# dataset key -> (folder under the data root, {relative split/class folder: count})
TREES = {
    "oct-mendeley": ("oct", {"CellData/OCT/train/NORMAL": 5, "CellData/OCT/train/CNV": 2,
                             **{f"CellData/OCT/test/{c}": n for c, n in (("NORMAL", 2), ("CNV", 2), ("DME", 1), ("DRUSEN", 3))}}),
    "oct-kaggle": ("oct", {"OCT2017 /train/NORMAL": 4, "OCT2017 /val/NORMAL": 2, "OCT2017 /val/CNV": 1,
                           **{f"OCT2017 /test/{c}": 2 for c in ("NORMAL", "CNV", "DME", "DRUSEN")}}),
    "chest-xray": ("chest-xray", {"chest_xray/train/NORMAL": 3, "chest_xray/train/PNEUMONIA": 2,
                                  "chest_xray/val/NORMAL": 1, "chest_xray/test/NORMAL": 2,
                                  "chest_xray/test/PNEUMONIA": 3}),
    "brain-mri": ("brain-mri", {"Training/notumor": 4, "Training/glioma": 1,
                                **{f"Testing/{c}": 2 for c in ("glioma", "meningioma", "notumor", "pituitary")}}),
    "covid19": ("covid19", {"Covid19-dataset/train/Normal": 3, "Covid19-dataset/test/Normal": 2,
                            "Covid19-dataset/test/Covid": 2, "Covid19-dataset/test/Viral Pneumonia": 1}),
}


def build(root, tree: str, wrapper: str = ""):
    folder, counts = TREES[tree]
    for rel, n in counts.items():
        for i in range(n):
            write_png(root / folder / wrapper / rel / f"img {i}.png", blob_image(RNG, size=40))
    return TREES[tree][0]


def empty(folder) -> None:
    for p in folder.iterdir():
        p.unlink()


def expected(tree: str, split: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for rel, n in TREES[tree][1].items():
        *_, s, cls = rel.split("/")
        s = {"Training": "train", "Testing": "test"}.get(s, s)
        if s == split and (split == "test" or cls.lower() in ("normal", "notumor")):
            out[cls] = n
    return out


@pytest.mark.parametrize("tree", sorted(TREES))
@pytest.mark.parametrize("split", ["train", "test"])
def test_counts_per_class_and_split(tree, split, tmp_path):
    key = build(tmp_path, tree)
    data = load_split(key, split, 32, root=tmp_path)
    got = {c: data.classes.count(c) for c in set(data.classes)}
    assert got == expected(tree, split)
    assert data.images.shape[1:] == (32, 32, 3) and data.images.dtype == np.uint8
    normal = {"NORMAL", "notumor", "Normal"}
    assert all((y == 0) == (c in normal) for y, c in zip(data.labels, data.classes))


def test_val_split_where_the_release_has_one(tmp_path):
    key = build(tmp_path, "oct-kaggle")
    assert len(load_split(key, "val", 32, root=tmp_path)) == 2  # normal images only
    assert load_split(build(tmp_path, "brain-mri"), "val", 32, root=tmp_path) is None


def test_dataset_one_folder_deeper_is_found(tmp_path):
    key = build(tmp_path, "chest-xray", wrapper="archive")
    assert len(load_split(key, "train", 32, root=tmp_path)) == 3


def test_missing_root_prints_the_expected_layout(tmp_path):
    with pytest.raises(DataError, match=r"(?s)no covid19 dataset.*Covid19-dataset/train/\{Normal,Covid,Viral Pneumonia\}"):
        load_split("covid19", "train", 32, root=tmp_path)


def test_missing_class_folder_is_named(tmp_path):
    key = build(tmp_path, "covid19")
    (tmp_path / key / "Covid19-dataset/test/Covid").rename(tmp_path / "moved")
    with pytest.raises(DataError, match="class folder .*Covid is missing"):
        load_split(key, "test", 32, root=tmp_path)


def test_test_split_with_one_class_says_auc_is_undefined(tmp_path):
    key = build(tmp_path, "chest-xray")
    empty(tmp_path / key / "chest_xray/test/PNEUMONIA")
    with pytest.raises(DataError, match="only normal images, so AUC is undefined"):
        load_split(key, "test", 32, root=tmp_path)


def test_empty_normal_class_is_an_error(tmp_path):
    key = build(tmp_path, "brain-mri")
    empty(tmp_path / key / "Training/notumor")
    with pytest.raises(DataError, match="train split has no normal images"):
        load_split(key, "train", 32, root=tmp_path)


def test_truncated_png_is_named_and_counted_or_fails_with_strict(tmp_path, capsys):
    key = build(tmp_path, "brain-mri")
    bad = tmp_path / key / "Training/notumor/bad.png"
    bad.write_bytes((tmp_path / key / "Training/notumor/img 0.png").read_bytes()[:100])
    data = load_split(key, "train", 32, root=tmp_path)
    assert sum("bad.png" in line for line in capsys.readouterr().err.splitlines()) == 1
    assert data.skipped == [str(bad)] and len(data) == 4
    with pytest.raises(DataError, match="bad.png"):
        load_split(key, "train", 32, root=tmp_path, strict=True)


def test_cache_is_reused_then_rebuilt_when_a_file_changes(tmp_path):
    key = build(tmp_path, "covid19")
    first = load_split(key, "train", 32, root=tmp_path)
    assert isinstance(first.images, np.memmap)
    cached = sorted((tmp_path / ".cache").rglob("*.npy"))
    again = load_split(key, "train", 32, root=tmp_path)
    assert sorted((tmp_path / ".cache").rglob("*.npy")) == cached and np.array_equal(first.images, again.images)
    write_png(tmp_path / key / "Covid19-dataset/train/Normal/img 0.png", np.zeros((40, 40), np.uint8))
    changed = load_split(key, "train", 32, root=tmp_path)
    assert len(sorted((tmp_path / ".cache").rglob("*.images.npy"))) == 2
    assert changed.images[0].max() == 0


def test_masks_are_read_from_the_sibling_tree(tmp_path):
    key = build(tmp_path, "covid19")
    img = tmp_path / key / "Covid19-dataset/test/Covid/img 1.png"
    mask = np.zeros((40, 40), np.uint8)
    mask[10:20, 10:30] = 255
    write_png(tmp_path / key / "masks/Covid19-dataset/test/Covid/img 1.png", mask)
    data = load_split(key, "test", 40, root=tmp_path)
    i = data.paths.index(str(img))
    assert data.masks is not None and data.masks[i].sum() == 200
    assert data.masks.sum() == 200  # images without a mask file get an empty one


@pytest.mark.parametrize("name,normal_label,n_classes", [("octmnist", 3, 4), ("pneumoniamnist", 0, 2)])
def test_medmnist_npz(name, normal_label, n_classes, tmp_path):
    rng = np.random.default_rng(0)
    labels = {s: rng.integers(0, n_classes, (20, 1)) for s in ("train", "val", "test")}
    arrays = {f"{s}_images": rng.integers(0, 255, (20, 28, 28), dtype=np.uint8) for s in labels}
    np.savez(tmp_path / f"{name}.npz", **arrays, **{f"{s}_labels": v for s, v in labels.items()})
    train = load_split(name, "train", 64, root=tmp_path)
    assert len(train) == int((labels["train"] == normal_label).sum()) and train.images.shape[1:] == (64, 64, 3)
    test = load_split(name, "test", 64, root=tmp_path)
    assert np.array_equal(test.labels, (labels["test"].ravel() != normal_label).astype(int))
