"""Fig. 4 (heatmaps) and Fig. 6 (feature-distance boxplots): the helpers by hand, the notebooks through ./run_all.sh --profile smoke."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from hetero_ae.experiment.runs import RunResult
from hetero_ae.experiment.variants import TABLE_III
from hetero_ae.report import boxplots, heatmaps

ROOT = Path(__file__).resolve().parents[1]


def fake_run(method: str, dataset: str, seed: int = 0, pixel: dict | None = None, folder: Path = Path("."),
             encoder: str = "none", converged: bool = True, size: int = 128) -> RunResult:
    spec = SimpleNamespace(dataset=dataset, model=SimpleNamespace(method=method, encoder=encoder, image_size=size),
                           train=SimpleNamespace(seed=seed))
    run = type("FakeRun", (RunResult,), {"converged": converged})  # the test's verdict, not the folder's curve
    return run(spec, folder, {} if pixel is None else {"pixel": pixel}, cached=True)


def test_pick_examples_takes_the_anomalous_images_with_the_largest_masks():
    labels = np.array([0, 1, 1, 0, 1])
    masks = np.zeros((5, 4, 4), np.uint8)
    masks[0, :3, :3] = 1  # a normal image is never picked, whatever its mask
    masks[1, :1, :2] = 1  # 2 pixels
    masks[2, :2, :2] = 1  # 4 pixels
    masks[4, :2, :2] = 1  # 4 pixels: ties keep test-set order
    assert heatmaps.pick_examples(labels, masks, 1) == [2]
    assert heatmaps.pick_examples(labels, masks, 3) == [2, 4, 1]


def test_pick_examples_without_masks_takes_the_first_anomalous_images():
    assert heatmaps.pick_examples(np.array([0, 0, 1, 0, 1, 1]), None, 2) == [2, 4]


def test_normalise_maps_scales_by_the_reference_range_and_clips():
    reference = np.array([[2.0, 4.0], [6.0, 10.0]])
    out = heatmaps.normalise_maps(np.array([2.0, 6.0, 10.0, 12.0, 0.0]), reference)
    np.testing.assert_allclose(out, [0.0, 0.5, 1.0, 1.0, 0.0])
    own = heatmaps.normalise_maps(reference)
    assert own.min() == 0.0 and own.max() == 1.0


def test_normalise_maps_of_a_constant_reference_is_zero():
    assert not heatmaps.normalise_maps(np.full((2, 3), 5.0)).any()


def test_grey_averages_the_channels_into_the_unit_range():
    image = np.zeros((2, 2, 3), np.uint8)
    image[0, 0] = (255, 0, 0)
    image[1, 1] = 255
    np.testing.assert_allclose(heatmaps.grey(image), [[1 / 3, 0.0], [0.0, 1.0]])


def test_pixel_metric_table_is_per_method_and_dataset_in_percent_averaged_over_seeds():
    runs = [fake_run("ae", "synth-oct", 0, {"pixel_auroc": 0.6, "aupro": 0.2, "best_dice": 0.1}),
            fake_run("ae", "synth-oct", 1, {"pixel_auroc": 0.8, "aupro": 0.4, "best_dice": 0.1}),
            fake_run("hetero-ae", "synth-oct", 0, {"pixel_auroc": 0.9, "aupro": 0.5, "best_dice": 0.3},
                     encoder="efficientnet-lite0", converged=False),
            fake_run("hetero-ae", "synth-brain-mri", 0, {"pixel_auroc": 0.7, "aupro": 0.3}, encoder="efficientnet-lite0",
                     size=256),  # a second size
            fake_run("hetero-ae", "oct")]  # a real dataset: no masks, no pixel metrics
    table = heatmaps.pixel_metric_table(runs, {"ae": "AE", "hetero-ae": "Hetero-AE"})
    assert list(table.columns) == ["method", "encoder", "input size", "synth-oct pixel AUROC", "synth-oct AUPRO",
                                   "synth-brain-mri pixel AUROC", "synth-brain-mri AUPRO", "still falling †"]
    assert table["input size"].tolist() == ["128 px", "128 px (synth-oct), 256 px (synth-brain-mri)"]
    assert table["still falling †"].tolist() == ["-", "synth-oct"]
    assert table["method"].tolist() == ["AE", "Hetero-AE"]
    assert table["encoder"].tolist() == ["none", "efficientnet-lite0"]
    np.testing.assert_allclose(table["synth-oct pixel AUROC"], [70.0, 90.0])
    np.testing.assert_allclose(table["synth-oct AUPRO"], [30.0, 50.0])


def test_distance_summary_gives_medians_their_ratio_and_sklearns_auc():
    from sklearn.metrics import roc_auc_score

    frame = pd.DataFrame({"dataset": "d", "label": [0, 0, 0, 1, 1, 1],
                          "feature_distance": [1.0, 2.0, 3.0, 2.0, 4.0, 6.0]})
    row = boxplots.distance_summary(frame, ["dataset"]).iloc[0]
    assert (row["n normal"], row["n abnormal"]) == (3, 3)
    assert (row["median normal"], row["median abnormal"], row["ratio abnormal/normal"]) == (2.0, 4.0, 2.0)
    assert row["AUC"] == pytest.approx(7.5 / 9)  # pairs abnormal > normal, ties count half
    assert row["AUC"] == pytest.approx(roc_auc_score(frame["label"], frame["feature_distance"]))
    assert row["distance"] == "mean of the Eq. 7 map"


def test_distance_summary_of_the_image_score_reads_that_column():
    frame = pd.DataFrame({"dataset": "d", "label": [0, 0, 1, 1], "feature_distance": [2.0, 1.0, 1.5, 0.5],
                          "score": [1.0, 2.0, 3.0, 4.0]})
    mean, peak = (boxplots.distance_summary(frame, ["dataset"], c).iloc[0] for c in ("feature_distance", "score"))
    assert mean["AUC"] == pytest.approx(0.25) and peak["AUC"] == pytest.approx(1.0)
    assert peak["distance"] == "max of the Eq. 7 map (Eq. 8 image score)" and peak["median abnormal"] == 3.5


def test_feature_distances_reads_each_runs_scores_under_the_papers_names(tmp_path):
    (tmp_path / "scores.csv").write_text("path,class,label,score,feature_distance\n"
                                         "a.png,NORMAL,0,0.1,1.5\nb.png,PNEUMONIA,1,0.9,2.5\n")
    cnn = next(v for v in TABLE_III if v.key == "cnn")
    frame = boxplots.feature_distances([(cnn, fake_run("hetero-ae", "synth-chest-xray", folder=tmp_path))])
    assert frame["variant"].tolist() == ["E(CNN)-D(CNN)"] * 2
    assert frame["image"].tolist() == ["normal", "abnormal"]
    assert frame["feature_distance"].tolist() == [1.5, 2.5]
    assert frame["score"].tolist() == [0.1, 0.9]  # Eq. 8, the map's maximum


def test_feature_distances_refuses_a_run_without_the_column(tmp_path):
    (tmp_path / "scores.csv").write_text("path,class,label,score\na.png,NORMAL,0,0.1\n")
    with pytest.raises(ValueError, match="feature_distance"):
        boxplots.feature_distances([(TABLE_III[0], fake_run("hetero-ae", "d", folder=tmp_path))])


def test_heatmap_figure_has_a_row_per_method_and_says_where_there_is_no_mask():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)
    mask = np.zeros((16, 16), np.uint8)
    mask[4:8, 4:8] = 1
    maps = {"AE": rng.random((16, 16)), "Hetero-AE": rng.random((16, 16))}
    fig = heatmaps.heatmap_figure([heatmaps.HeatmapColumn("a", image, mask, maps),
                                   heatmaps.HeatmapColumn("b", image, None, maps)], ["AE", "Hetero-AE"])
    assert len(fig.axes) == 4 * 2 + 1  # input, ground truth, two methods; two columns; the colour bar
    assert [ax.get_ylabel() for ax in fig.axes[:8:2]] == ["Input", "Ground truth", "AE", "Hetero-AE"]
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert texts == ["no mask"] and fig.get_supxlabel() == ""
    marked = heatmaps.heatmap_figure([heatmaps.HeatmapColumn("a", image, mask, maps, unconverged={"AE"})],
                                     ["AE", "Hetero-AE"])
    assert [t.get_text() for t in marked.axes[2].texts] == ["†"] and not marked.axes[3].texts  # AE's panel only
    assert marked.get_supxlabel().startswith("† from a run whose held-out loss was still falling")
    mixed = heatmaps.heatmap_figure([heatmaps.HeatmapColumn("a", image, mask, maps, sizes={"AE": 64, "Hetero-AE": 256}),
                                     heatmaps.HeatmapColumn("b", image, mask, maps, sizes={"AE": 64, "Hetero-AE": 64})],
                                    ["AE", "Hetero-AE"])  # each panel of the mixed column says its run's size
    assert [[t.get_text() for t in ax.texts] for ax in mixed.axes[4:8]] == [["64 px"], [], ["256 px"], []]


def test_boxplot_figure_has_a_row_per_distance_a_panel_per_dataset_and_the_auc_under_each_decoder():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame([{"dataset": d, "variant": v, "encoder": "efficientnet-lite0", "label": y,
                           "image": "abnormal" if y else "normal", "feature_distance": rng.random() + y,
                           "score": rng.random() + 0.5 * y}
                          for d in ("a", "b") for v in boxplots.FIG6_LABELS.values() for y in (0, 1) for _ in range(5)])
    fig = boxplots.boxplot_figure(frame, list(boxplots.FIG6_LABELS.values()))
    assert [ax.get_title() for ax in fig.axes] == [
        "(a) a: mean of the Eq. 7 map", "(b) b: mean of the Eq. 7 map",
        "(c) a: max of the Eq. 7 map (Eq. 8 image score)", "(d) b: max of the Eq. 7 map (Eq. 8 image score)"]
    ticks = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert ticks == ["E(CNN)-\nD(CNN)\nAUC 1.00", "E(CNN)-\nD(Transformer)\nAUC 1.00",
                     "E(CNN)-\nD(CNN+Transformer)\nAUC 1.00"]
    expected = boxplots.distance_summary(frame[frame["dataset"] == "a"], ["variant"], "score")["AUC"]
    assert [t.get_text().rsplit("AUC ", 1)[1] for t in fig.axes[2].get_xticklabels()] == [
        f"{a:.2f}" for a in expected]
    assert "efficientnet-lite0" in fig.axes[0].get_xlabel()


def test_fig4_notebook_writes_the_heatmaps_and_pixel_metrics(smoke_results):
    results = smoke_results  # ./run_all.sh --profile smoke (tests/conftest.py)
    datasets = ["synth-oct", "synth-chest-xray", "synth-brain-mri", "synth-covid19"]
    table = pd.read_csv(results / "tables" / "fig4_pixel_metrics.csv")
    # the paper's four, then the smoke profile's method beyond the paper, named so (heatmaps.figure_methods)
    assert table["method"].tolist() == ["AE", "SALAD", "MKD", "Hetero-AE", "PatchCore (not in the paper)"]
    values = table[[f"{d} {m}" for d in datasets for m in ("pixel AUROC", "AUPRO")]].to_numpy()
    assert np.isfinite(values).all() and ((values >= 0) & (values <= 100)).all()
    assert "no pixel-level metrics" in (results / "tables" / "fig4_pixel_metrics.md").read_text()
    for ext in ("png", "pdf"):
        assert (results / "figures" / f"fig4_heatmaps.{ext}").stat().st_size > 10_000
    runs = pd.read_csv(results / "logs" / "fig4_heatmaps.runs.csv")
    assert len(runs) == len(table) * len(datasets) and set(runs["seed"]) == {0}  # one run per method and dataset


def test_fig6_notebook_writes_the_boxplots_and_the_separation_table(smoke_results):
    results = smoke_results  # ./run_all.sh --profile smoke (tests/conftest.py)
    table = pd.read_csv(results / "tables" / "fig6_feature_distance.csv")
    assert len(table) == 12  # 2 datasets x 3 decoders x 2 distances (mean and max of the Eq. 7 map)
    assert set(table["distance"]) == set(boxplots.DISTANCES.values())
    assert set(table["dataset"]) == {"synth-chest-xray", "synth-brain-mri"}
    assert set(table["variant"]) == set(boxplots.FIG6_LABELS.values())
    assert (table["n normal"] > 0).all() and (table["n abnormal"] > 0).all()
    assert (table["median normal"] > 0).all() and (table["median abnormal"] > 0).all()
    assert table["AUC"].between(0, 1).all()
    for _, row in table.iterrows():
        assert math.isclose(row["ratio abnormal/normal"], row["median abnormal"] / row["median normal"], rel_tol=1e-9)
    for ext in ("png", "pdf"):
        assert (results / "figures" / f"fig6_boxplots.{ext}").stat().st_size > 10_000
    assert len(pd.read_csv(results / "logs" / "fig6_boxplots.runs.csv")) == 6


def test_heatmap_columns_score_each_run_at_its_own_size_and_show_its_maps_at_the_largest(monkeypatch):
    from hetero_ae.data.images import ImageSet

    def split(dataset, name, size, root=None):
        images = np.full((3, size, size, 3), size % 256, np.uint8)
        masks = np.zeros((3, size, size), np.uint8)
        masks[1:, : size // 2] = 1
        return ImageSet(images, ["a.png", "b.png", "c.png"], np.array([0, 1, 1]), [], ["n", "x", "x"], masks)

    seen = []

    def predict(model, images, device="cpu", precision="fp32"):
        seen.append((model, images.shape[1]))
        maps = np.zeros((len(images), images.shape[1], images.shape[2]), np.float32)
        maps[:, :, : images.shape[2] // 2] = 1.0  # the left half lights up, at any size
        return maps, maps.max(axis=(1, 2))

    monkeypatch.setattr(heatmaps, "load_split", split)
    monkeypatch.setattr(heatmaps, "predict", predict)
    monkeypatch.setattr(heatmaps, "trained_model", lambda r, **kw: r.spec.model.method)
    runs = [SimpleNamespace(spec=SimpleNamespace(dataset="synth-oct", model=SimpleNamespace(method=m, image_size=s),
                                                 train=SimpleNamespace(precision="fp32"), data_subdir=None),
                            converged=m == "ae")
            for m, s in (("ae", 64), ("hetero-ae", 128))]
    (col,) = heatmaps.heatmap_columns(runs, examples=1)
    assert seen == [("ae", 64), ("hetero-ae", 128)]
    assert col.image.shape[:2] == (128, 128) and set(col.maps) == {"ae", "hetero-ae"}
    assert col.unconverged == {"hetero-ae"}
    for m in col.maps.values():
        assert m.shape == (128, 128)
        assert m[:, :60].min() > 0.9 and m[:, 68:].max() < 0.1  # resized, not cropped or tiled
    assert heatmaps.resized_maps(np.ones((2, 8, 8), np.float32), 8).shape == (2, 8, 8)
