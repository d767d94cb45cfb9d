"""``./run_all.sh --profile smoke``, end to end, once: every notebook, table, figure, HTML page and the manifest.

The run goes to a temporary results folder (``--results``) so the committed results stay as
they are; the smoke data lives under data/smoke as the profile says.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted(p.stem for p in (ROOT / "notebooks").glob("*.ipynb"))
TABLES = ["data_overview_counts", "table1_comparison", "table1_comparison_q95", "table1_welch_sen",
          "table1_per_class_auc", "table1_runs", "table1_sizes", "table1_sizes_per_class", "table1_sizes_verdict",
          "table1_sensitivity", "table1_sensitivity_verdict", "table1_sensitivity_changes", "table2_heterogeneous", "table2_heterogeneous_complexity", "table2_heterogeneous_pixel_auroc",
          "table3_hctn", "table3_hctn_complexity", "table4_feature_comparison", "fig4_pixel_metrics", "fig5_tsne",
          "fig6_feature_distance", "complexity_table2", "complexity_mstb_attention"]
FIGURES = ["data_overview_gallery", "fig4_heatmaps", "fig5_tsne", "fig6_boxplots", "complexity_mstb_attention"]

from conftest import run_all


@pytest.fixture()
def smoke(smoke_results: Path) -> Path:
    return smoke_results


def test_every_notebook_table_figure_and_page_is_written(smoke):
    for name in NOTEBOOKS:
        assert (smoke / "notebooks" / f"{name}.ipynb").is_file(), name
        assert (smoke / "html" / f"{name}.html").stat().st_size > 10_000, name
        assert "What ran:" in (smoke / "tables" / f"{name}_first_screen.json").read_text(), name
    index = (smoke / "html" / "index.html").read_text()
    assert all(f'href="{name}.html"' in index for name in NOTEBOOKS)
    assert "<strong>What ran:</strong>" in index and "The paper's claims" in index
    for name in TABLES:
        assert (smoke / "tables" / f"{name}.csv").is_file() and (smoke / "tables" / f"{name}.md").is_file(), name
    for name in FIGURES:
        assert (smoke / "figures" / f"{name}.png").stat().st_size > 5_000, name
    assert all((smoke / "figures" / f"{n}.pdf").is_file() for n in ("fig4_heatmaps", "fig5_tsne", "fig6_boxplots"))


def test_the_manifest_says_what_ran_where_and_how_long(smoke):
    m = json.loads((smoke / "manifest.json").read_text())
    assert m["profile"] == "smoke" and m["device"].startswith("cpu") and len(m["git_commit"]) in (40, 7)
    assert set(m["notebooks"]) == set(NOTEBOOKS)
    assert all(n["status"] == "ok" and n["wall_seconds"] >= 0 for n in m["notebooks"].values())
    assert m["notebooks"]["table1_comparison"]["runs"] > 0


def test_table1_has_every_method_on_every_dataset_beside_the_paper(smoke):
    t = pd.read_csv(smoke / "tables" / "table1_comparison.csv")
    profile = yaml.safe_load((ROOT / "profiles" / "smoke.yaml").read_text())
    assert len(t) == len(profile["methods"]) * len(profile["datasets"])
    assert set(t["method"]) == set(profile["methods"]) and set(t["dataset"]) == set(profile["datasets"])
    from hetero_ae.methods import in_paper

    paper = t[[in_paper(m) for m in t["method"]]]  # PatchCore, beyond the paper, has no paper number
    assert set(t["method"]) - set(paper["method"]) == {"patchcore"}
    assert t.loc[~t.index.isin(paper.index), "AUC paper"].isna().all()
    for m in ("AUC", "F1", "ACC", "SEN", "SPE"):
        assert t[f"{m} mean"].between(0, 100).all() and paper[f"{m} paper"].between(0, 100).all()
    hetero = t[t["method"] == "hetero-ae"]
    assert (hetero["seeds"] == len(profile["seeds"])).all() and hetero["AUC std"].notna().all()
    per_run = pd.read_csv(smoke / "tables" / "table1_runs.csv")
    assert set(per_run["threshold"]) == {"best_f1", "normal_q95"}
    welch = pd.read_csv(smoke / "tables" / "table1_welch_sen.csv")
    assert set(welch["dataset"]) == set(profile["datasets"])


@pytest.mark.parametrize("name, rows, beyond", [("table2_heterogeneous", 7, 0), ("table3_hctn", 3, 0),
                                                ("table4_feature_comparison", 7, 1)])
def test_ablation_tables_have_every_row_on_both_datasets_beside_the_paper(smoke, name, rows, beyond):
    t = pd.read_csv(smoke / "tables" / f"{name}.csv")
    assert sorted(t["dataset"].unique()) == ["synth-brain-mri", "synth-chest-xray"]
    assert (t.groupby("dataset").size() == rows).all()
    assert t["AUC mean"].between(0, 100).all()
    printed = t["AUC paper"].notna()  # Table IV's row beyond the paper has no printed number
    assert (~printed).sum() == 2 * beyond and t.loc[printed, "AUC paper"].between(50, 100).all()
    assert t["encoder"].notna().all()


def test_a_second_run_retrains_nothing(smoke):
    again = run_all("--profile", "smoke", "--results", str(smoke), "--only", "table1_comparison")
    assert again.returncode == 0, again.stderr[-3000:]
    entry = json.loads((smoke / "manifest.json").read_text())["notebooks"]["table1_comparison"]
    assert entry["trained"] == 0 and entry["cached"] == entry["runs"] > 0
    assert f"{entry['runs']} runs ({entry['runs']} cached, 0 trained)" in again.stdout


def test_a_failing_notebook_stops_the_script_with_its_name_and_keeps_what_was_written(smoke, tmp_path):
    before = sorted(p.name for p in (smoke / "tables").iterdir())
    broken = tmp_path / "broken.yaml"
    profile = yaml.safe_load((ROOT / "profiles" / "smoke.yaml").read_text())
    # a real dataset that is not on disk: nothing to train ahead, and the notebook has no data to report on
    broken.write_text(yaml.safe_dump({**profile, "datasets": ["oct"], "data_root": str(tmp_path / "empty"),
                                      "second_size": None}))
    done = run_all("--profile", str(broken), "--results", str(smoke), "--only", "table1_comparison")
    assert done.returncode == 1
    assert "table1_comparison failed" in done.stderr and "none of ['oct']" in done.stdout + done.stderr
    assert sorted(p.name for p in (smoke / "tables").iterdir()) == before


def test_a_profile_naming_an_unknown_dataset_is_refused_in_one_line_before_any_work(tmp_path):
    broken = tmp_path / "broken.yaml"
    profile = yaml.safe_load((ROOT / "profiles" / "smoke.yaml").read_text())
    broken.write_text(yaml.safe_dump({**profile, "datasets": ["no-such-dataset"], "data_root": str(tmp_path),
                                      "second_size": None}))
    done = run_all("--profile", str(broken), "--results", str(tmp_path / "results"), "--only", "table1_comparison")
    assert done.returncode == 2
    errors = [line for line in done.stderr.splitlines() if "error" in line]
    assert len(errors) == 1 and "no-such-dataset" in errors[0]
    assert not (tmp_path / "results" / "notebooks").exists()


def test_bad_options_are_refused_with_a_clear_message():
    done = run_all("--only", "no_such_notebook")
    assert done.returncode == 2 and "no notebook notebooks/no_such_notebook.ipynb" in done.stderr
    done = run_all("--profile", "huge")
    assert done.returncode == 2 and "no profile profiles/huge.yaml" in done.stderr


def test_nproc_trains_the_tables_runs_with_ddp_and_the_notebook_finds_them_cached(tmp_path):
    """``--nproc 2``: torchrun (gloo, CPU) trains Hetero-AE ahead; the GAN is left to the notebook, in one process."""
    profile = yaml.safe_load((ROOT / "profiles" / "smoke.yaml").read_text())
    methods = ["hetero-ae", "ganomaly"]
    profile.update(profile="two", datasets=["synth-brain-mri"], methods=methods, seeds=[0], baseline_seeds=[0],
                   ablation_datasets=[], data_root=str(tmp_path / "data"),
                   method_settings={m: profile["method_settings"][m] for m in methods})
    (tmp_path / "two.yaml").write_text(yaml.safe_dump(profile))
    results = tmp_path / "results"
    done = run_all("--profile", str(tmp_path / "two.yaml"), "--results", str(results), "--nproc", "2",
                   "--only", "table1_comparison")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "with DDP in 2 processes" in done.stdout and "ganomaly on synth-brain-mri, seed 0: left to one process" \
        in done.stderr
    runs = pd.read_csv(results / "logs" / "table1_comparison.runs.csv").set_index("method")
    assert runs.loc["hetero-ae", "cached"] and not runs.loc["ganomaly", "cached"]
    processes = {m: json.loads((Path(runs.loc[m, "folder"]) / "config.json").read_text())["processes"] for m in methods}
    assert processes == {"hetero-ae": 2, "ganomaly": 1}
    assert run_all("--nproc", "0").returncode == 2


def test_run_profile_lists_exactly_the_runs_the_table_notebooks_used(smoke):
    """What ``run-profile`` (``--nproc``) trains ahead is what the notebooks then ask for: all cached, none missing."""
    from hetero_ae.experiment.profiles import load_profile
    from hetero_ae.experiment.runs import run_folder
    from hetero_ae.report.table_runs import TABLE_NOTEBOOKS, notebook_specs

    profile = load_profile("smoke")
    root = ROOT / profile.data_root
    listed = {run_folder(s, smoke, root).relative_to(smoke).as_posix() for s in notebook_specs(profile, root=root)}
    used = pd.concat([pd.read_csv(smoke / "logs" / f"{name}.runs.csv") for name in TABLE_NOTEBOOKS])
    assert listed == {Path(f).relative_to(smoke).as_posix() for f in used["folder"]}
    assert len(listed) == len(notebook_specs(profile, root=root))  # each run once


def test_the_output_is_one_line_per_notebook_without_warnings_or_paths_outside_the_repository(smoke):
    """A quiet ./run_all.sh: the kernel talks over IPC (no transport warning), the HTML is written in-process."""
    out = (smoke.parent / "run_all.out").read_text()
    assert not [line for line in out.splitlines() if "WARNING" in line or "Warning" in line], out[-3000:]
    outside = [line for line in out.splitlines() if "/" in line and str(ROOT) not in line
               and any(p in line for p in ("/usr/", "/site-packages/", "/root/", "/home/"))]
    assert not outside, outside
    for name in NOTEBOOKS:
        lines = [line for line in out.splitlines() if line.startswith(f"run_all: {name}")]
        assert len(lines) == 1, (name, lines)


def test_a_profile_other_than_the_default_writes_under_its_own_results_folder():
    before = (ROOT / "results" / "manifest.json").read_bytes()
    own = ROOT / "results" / "smoke"
    try:
        done = run_all("--profile", "smoke", "--only", "data_overview")
        assert done.returncode == 0, done.stderr[-3000:]
        assert (own / "manifest.json").is_file() and (own / "tables" / "data_overview_counts.csv").is_file()
        assert (ROOT / "results" / "manifest.json").read_bytes() == before  # the committed report untouched
    finally:
        shutil.rmtree(own, ignore_errors=True)
