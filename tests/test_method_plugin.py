"""A new method is one module: a toy method registered from this test file trains, scores and is tabulated
through the registry, the profile and the report, with no other module touched (issue "A method is one file")."""

from __future__ import annotations

import pytest
import torch
import yaml
from torch import nn

from hetero_ae import config
from hetero_ae.experiment.profiles import profile_from
from hetero_ae.methods import available_methods, table_order
from hetero_ae.methods.registry import METHODS, AnomalyModel, register
from hetero_ae.report import aggregation, formatting, table_runs


@pytest.fixture()
def toy(monkeypatch):
    """``toy-mean``: learns the mean normal image; its anomaly map is the squared distance to it."""
    monkeypatch.setattr(config, "METHOD_NAMES", config.METHOD_NAMES)  # put back as it was afterwards

    @register("toy-mean", display_name="Toy mean")
    class ToyMean(AnomalyModel):
        def __init__(self, size: int) -> None:
            super().__init__()
            self.mean = nn.Parameter(torch.zeros(1, 3, size, size))

        @classmethod
        def from_config(cls, cfg: config.ModelConfig) -> ToyMean:
            return cls(cfg.image_size)

        def loss(self, x: torch.Tensor) -> torch.Tensor:
            return ((x - self.mean) ** 2).mean()

        def anomaly_map(self, x: torch.Tensor) -> torch.Tensor:
            return ((x - self.mean) ** 2).mean(1)

    yield ToyMean
    METHODS.pop("toy-mean")


def test_a_method_registered_outside_the_package_trains_scores_and_is_tabulated(toy, tmp_path):
    assert "toy-mean" in available_methods() and "toy-mean" in config.METHOD_NAMES
    assert table_order()[-1] == "toy-mean"  # beyond the paper: after the paper's rows
    assert formatting.METHOD_NAMES["toy-mean"] == "Toy mean"
    settings = yaml.safe_load(open("profiles/smoke.yaml"))
    settings.update(methods=["hetero-ae", "toy-mean"], datasets=["synth-oct"], second_size=None,
                    method_settings={**settings["method_settings"],
                                     "toy-mean": {"epochs": 2, "batch_size": 8, "lr": 0.1}})
    profile = profile_from(settings, "toy profile")
    runs = table_runs.run_all(profile, ["synth-oct"], ["toy-mean"], results=tmp_path)
    assert [r.spec.model.method for r in runs] == ["toy-mean"] and runs[0].metrics["training"]["epochs_run"] == 2
    assert (runs[0].folder / "scores.csv").is_file() and 0 <= runs[0].metrics["best_f1"]["auc"] <= 1
    agg = aggregation.mean_std(aggregation.long_table(runs), ["dataset", "method"])
    table = formatting.markdown_by_dataset(agg, names=formatting.METHOD_NAMES)
    assert "| Toy mean" in table
    assert table_runs.run_all(profile, ["synth-oct"], ["toy-mean"], results=tmp_path)[0].cached


def test_an_unregistered_method_is_refused_with_the_names_there_are():
    with pytest.raises(config.ConfigError, match="unknown method 'padim'; choose one of .*patchcore"):
        config.ModelConfig(method="padim")
