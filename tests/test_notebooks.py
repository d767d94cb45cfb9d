"""Source notebooks are committed clean with default parameters; each runs in ./run_all.sh --profile smoke."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_source_notebook_has_no_outputs_and_a_parameters_cell(path):
    cells = json.loads(path.read_text())["cells"]
    code = [c for c in cells if c["cell_type"] == "code"]
    assert not any(c.get("outputs") or c.get("execution_count") for c in code), "clear the outputs before committing"
    assert "parameters" in code[0].get("metadata", {}).get("tags", []), "the first code cell must be tagged parameters"


def test_data_overview_runs_and_shows_lesions_where_the_masks_say(smoke_results):
    results = smoke_results  # ./run_all.sh --profile smoke (tests/conftest.py)
    counts = pd.read_csv(results / "tables" / "data_overview_counts.csv")
    assert set(counts["dataset"]) == {"synth-oct", "synth-chest-xray", "synth-brain-mri", "synth-covid19"}
    assert (counts["images"] > 0).all()
    stats = pd.read_csv(results / "tables" / "data_overview_global_stats.csv")
    assert stats["mean/std detector AUC"].between(0, 1).all()
    assert (results / "figures" / "data_overview_gallery.png").stat().st_size > 10_000


def test_complexity_notebook_writes_every_table_and_the_attention_figure(smoke_results):
    results = smoke_results  # ./run_all.sh --profile smoke: complexity_size 64
    table2 = pd.read_csv(results / "tables" / "complexity_table2.csv")
    assert len(table2) == 7 and (table2["params_m"] > 1).all() and (table2["image_size"] == 64).all()
    hctn = table2[table2["label"].str.contains("HCTN")].iloc[0]
    assert hctn["paper_params_m"] == 17 and hctn["paper_gflops"] == 33
    attention = pd.read_csv(results / "tables" / "complexity_mstb_attention.csv")
    assert (attention["MSTB / full (%)"] > 0).all()
    assert (results / "figures" / "complexity_mstb_attention.png").is_file()


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_parameters_are_typed_literals_and_a_profile_setting_defaults_to_the_profiles(path):
    """Papermill passes a notebook only the profile's name: a parameter that names a profile
    setting is None by default, which the notebook's setup reads as the profile's value."""
    import ast
    import dataclasses

    from hetero_ae.experiment.profiles import Profile

    cells = json.loads(path.read_text())["cells"]
    source = "".join(next(c for c in cells if c["cell_type"] == "code")["source"])
    tree = ast.parse(source)
    assert all(isinstance(node, ast.AnnAssign) for node in tree.body), "only `name: type = literal` lines"
    values = {node.target.id: ast.literal_eval(node.value) for node in tree.body}
    assert values["profile"] == "cpu" and values.get("results_dir", "results") == "results"
    settings = {f.name for f in dataclasses.fields(Profile)} - {"profile"}
    shared = {k: v for k, v in values.items() if k in settings}
    assert shared and all(v is None for v in shared.values()), shared
