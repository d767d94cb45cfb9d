"""Every registered method under one interface: trains a few steps on normal images, returns
maps of the input size and finite scores, and its checkpoint round-trips."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from hetero_ae import ModelConfig, TrainConfig, available_methods, build_model
from hetero_ae.data.images import ImageSet
from hetero_ae.evaluation.predict import predict
from hetero_ae.errors import ConfigError
from hetero_ae.methods import check_model_config, method_class
from hetero_ae.methods.registry import read_hyper_parameters
from hetero_ae.training.checkpoint import load_model
from hetero_ae.training.loop import train

SIZE = 64


def smoke_config(method: str) -> ModelConfig:
    """The offline encoder with random weights keeps these tests fast and download-free."""
    return ModelConfig(method=method, encoder="efficientnet-lite0" if method != "hetero-ae" else "resnet18",
                       encoder_weights="none", image_size=SIZE, params=SMOKE_PARAMS.get(method, {}))


# Small networks for speed; each method documents its paper values.
SMOKE_PARAMS: dict[str, dict] = {
    "ae": {"latent_dim": 16, "base_channels": 8},
    "vae": {"latent_dim": 16, "base_channels": 8},
    "ganomaly": {"latent_dim": 16, "base_channels": 8},
    "f-anogan": {"latent_dim": 16, "base_channels": 8, "n_critic": 2},
    "salad": {"latent_dim": 16, "base_channels": 8},
}


@pytest.fixture(scope="module")
def normal_images() -> ImageSet:
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 255, (8, SIZE, SIZE, 3), dtype=np.uint8)
    return ImageSet(arr, [f"n{i}" for i in range(8)], np.zeros(8, dtype=np.int64))


def test_the_papers_nine_methods_and_patchcore_are_registered():
    assert {"hetero-ae", "ae", "vae", "ganomaly", "f-anogan", "salad", "stfpm", "mkd", "rd4ad",
            "patchcore"} <= set(available_methods())


@pytest.mark.parametrize("method", available_methods())
def test_trains_and_predicts_maps_of_the_input_size(method, normal_images, tmp_path):
    cfg = smoke_config(method)
    model, history = train(cfg, TrainConfig(epochs=2, batch_size=4, lr=1e-4, seed=0), normal_images, tmp_path,
                           progress=False)
    if method_class(method).trains_weights:
        assert len(history) == 2 and all(np.isfinite(h["loss"]) for h in history)
    else:  # one fit (a memory bank): no epoch
        assert len(history) == 0 and history.stop["stop_reason"] == "fit"
    maps, scores = predict(model, normal_images.images[:3])
    assert maps.shape == (3, SIZE, SIZE) and scores.shape == (3,)
    assert np.isfinite(maps).all() and np.isfinite(scores).all()


@pytest.mark.parametrize("method", available_methods())
def test_checkpoint_round_trips(method, normal_images, tmp_path):
    model, _ = train(smoke_config(method), TrainConfig(epochs=1, batch_size=4, seed=1), normal_images, tmp_path,
                     progress=False)
    loaded, _ = load_model(tmp_path / "checkpoint.pt")
    x = torch.randn(2, 3, SIZE, SIZE)
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded.predict(x)[0], model.predict(x)[0])


@pytest.mark.parametrize("method", available_methods())
def test_unknown_hyper_parameter_is_a_clear_error(method):
    with pytest.raises(ValueError, match="no_such_knob"):
        build_model(ModelConfig(method=method, encoder_weights="none", image_size=SIZE, params={"no_such_knob": 1}))


@pytest.mark.parametrize("method", available_methods())
def test_hyper_parameters_are_a_typed_dataclass_with_the_papers_values_as_defaults(method):
    params = method_class(method).hyper_parameters
    if params is None:
        pytest.skip(f"{method}'s settings are ModelConfig fields")
    defaults, fields = params(), [f.name for f in dataclasses.fields(params)]
    assert read_hyper_parameters(params, method, dataclasses.asdict(defaults)) == defaults  # defaults fit their types
    cfg = dataclasses.replace(smoke_config(method), params={})
    assert isinstance(build_model(cfg), method_class(method))

    with pytest.raises(ConfigError) as unknown:
        build_model(dataclasses.replace(cfg, params={"no_such_knob": 1}))
    assert method in str(unknown.value) and all(name in str(unknown.value) for name in fields)

    numeric = next(name for name in fields if type(getattr(defaults, name)) in (int, float))  # not a bool
    for check in (build_model, check_model_config):
        with pytest.raises(ConfigError, match=f"{method}: hyper-parameter {numeric} must be"):
            check(dataclasses.replace(cfg, params={numeric: "a string"}))


def test_every_method_names_the_publication_it_implements_as_its_module_cites_it():
    import sys

    from hetero_ae.methods import METHODS

    for name, cls in METHODS.items():
        if not cls.__module__.startswith("hetero_ae.methods."):
            continue  # a method registered by a test
        authors, venue_year = cls.paper.split(", ", 1)
        year = venue_year.rsplit(" ", 1)[-1]
        docstring = sys.modules[cls.__module__].__doc__ or ""
        assert authors.split()[0] in docstring and year in docstring, (name, cls.paper)
