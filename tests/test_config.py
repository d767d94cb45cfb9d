"""The names a configuration may use: one torch-free list each, the registries holding exactly them."""

from __future__ import annotations

import subprocess
import sys

import pytest

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


@pytest.mark.parametrize("field, value, choice", [("method", "patchcore", "hetero-ae"), ("encoder", "resnet-18", "resnet18"),
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
