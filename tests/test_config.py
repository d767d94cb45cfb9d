"""The names a configuration may use: one torch-free list each, the registries holding exactly them."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from hetero_ae.cli import main
from hetero_ae.config import (
    COMPARISONS,
    DECODER_NAMES,
    ENCODER_NAMES,
    MAP_DISTANCES,
    METHOD_NAMES,
    UPSAMPLES,
    ModelConfig,
    TrainConfig,
)
from hetero_ae.errors import ConfigError


def test_the_registries_implement_exactly_the_names_the_configuration_offers():
    from hetero_ae.methods import available_methods
    from hetero_ae.methods import hetero_ae as autoencoder
    from hetero_ae.model.anomaly_map import DISTANCES
    from hetero_ae.model.decoder import decoders
    from hetero_ae.model.encoder import ENCODERS

    assert sorted(METHOD_NAMES) == sorted(available_methods())
    assert sorted(ENCODER_NAMES) == sorted(ENCODERS)
    assert sorted(DECODER_NAMES) == sorted(decoders())
    assert sorted(COMPARISONS) == sorted(autoencoder.COMPARISONS)
    assert tuple(MAP_DISTANCES) == tuple(DISTANCES)


@pytest.mark.parametrize("field, value, choice", [("method", "padim", "hetero-ae"), ("encoder", "resnet-18", "resnet18"),
                                                  ("decoder", "unet", "hctn"), ("upsample", "both", "first"),
                                                  ("comparison", "pixels", "feature"), ("map_distance", "l2", "cosine")])
def test_an_unknown_choice_is_a_config_error_that_lists_the_valid_ones(field, value, choice):
    with pytest.raises(ConfigError, match=f"unknown {field} '{value}'; choose one of .*{choice}"):
        ModelConfig(**{field: value})
    assert UPSAMPLES == ("last", "first")


def test_an_unknown_precision_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown precision 'fp16'; choose one of fp32, bf16"):
        TrainConfig(precision="fp16")


def test_help_imports_no_torch():
    code = ("import sys\nfrom hetero_ae.cli import main\ntry:\n    main(['train', '--help'])\nexcept SystemExit:\n"
            "    pass\nprint('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().endswith("False") and "--decoder" in out


def test_a_misspelt_dataset_is_one_line_and_status_2(tmp_path, capsys):
    assert main(["run", "--dataset", "typo", "--method", "hetero-ae", "--profile", "smoke",
                 "--results", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown dataset 'typo'; choose one of" in err[0] and "synth-brain-mri" in err[0]
    assert not any(tmp_path.iterdir())


def test_one_image_size_check_names_the_sizes_that_work():
    from hetero_ae.config import check_image_size

    assert check_image_size(128, multiple=64) == 128
    with pytest.raises(ConfigError, match=r"image size 96 does not suit x: it must be a multiple of 64 .*64, 128, 192"):
        check_image_size(96, multiple=64, what="x")
    with pytest.raises(ConfigError, match="a power of two"):
        check_image_size(192, power_of_two=True)
    with pytest.raises(ConfigError, match="image size 100 does not suit the encoders"):
        ModelConfig(image_size=100)


@pytest.mark.parametrize("size, decoder, ok", [(96, "hctn", False), (160, "hctn", False), (128, "hctn", True),
                                               (96, "cnn", True), (96, "resnet", True)])
def test_a_model_refuses_an_image_size_its_attention_cannot_split_into_patches(size, decoder, ok):
    """MSTB splits each decoder stage's grid into p2 x p2 patches (p2 = 2 at stride 32): 96 px gives a 3 x 3 grid."""
    from hetero_ae.methods import build_model

    cfg = ModelConfig(encoder="resnet18", encoder_weights="none", decoder=decoder, image_size=size)
    if ok:
        assert build_model(cfg).decoder(torch.randn(1, 512, size // 32, size // 32))[0].shape[-1] == size // 4
    else:
        with pytest.raises(ConfigError, match=f"image size {size} does not suit hetero-ae with the {decoder} decoder"):
            build_model(cfg)


@pytest.mark.parametrize("method, size, ok", [("ae", 64, True), ("ae", 96, False), ("salad", 128, True),
                                              ("stfpm", 96, True), ("ganomaly", 192, False)])
def test_each_method_says_its_size_rule_before_it_is_built(method, size, ok):
    from hetero_ae.methods import check_model_config

    cfg = ModelConfig(method=method, encoder="resnet18" if method == "stfpm" else "none", image_size=size)
    if ok:
        assert check_model_config(cfg) is cfg
    else:
        with pytest.raises(ConfigError, match=f"image size {size} does not suit {method}: it must be a power of two"):
            check_model_config(cfg)


def test_the_embeddings_reference_size_is_a_field_keyed_only_when_set():
    from hetero_ae.config import EMBEDDING_SIZE, key_dict
    from hetero_ae.methods import build_model

    assert ModelConfig().embedding_size == EMBEDDING_SIZE == 256 and "embedding_size" not in key_dict(ModelConfig())
    from hetero_ae.model.attention import PositionEmbedding

    def stored_grids(cfg: ModelConfig) -> list[int]:
        return [m.pos.shape[-1] for m in build_model(cfg).decoder.modules() if isinstance(m, PositionEmbedding)]

    small = ModelConfig(encoder="resnet18", encoder_weights="none", image_size=128, embedding_size=128)
    assert key_dict(small)["embedding_size"] == 128
    default = stored_grids(ModelConfig(encoder="resnet18", encoder_weights="none", image_size=128))
    assert default and [2 * g for g in stored_grids(small)] == default  # the stored grids follow the field


def test_choices_are_enums_whose_values_are_the_plain_strings_configs_store():
    from hetero_ae.config import Comparison, Precision

    assert Precision.check("bf16") == "bf16" and type(Precision.check("bf16")) is str
    assert tuple(Comparison) == ("feature", "pixel") and Comparison.FEATURE == "feature"
    with pytest.raises(ConfigError, match="unknown comparison 'pixels'; choose one of feature, pixel"):
        Comparison.check("pixels")
