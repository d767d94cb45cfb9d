"""Table building (mean ± std, the paper beside ours, Welch's t-test) and the run_all manifest."""

from __future__ import annotations

import json
import platform
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hetero_ae.errors import ConfigError, DataError
from hetero_ae.report import (aggregation, formatting, manifest, notebook_setup, output, run_log, significance,
                              table_runs)


def _runs_frame() -> pd.DataFrame:
    rows = []
    for method, sens in {"hetero-ae": [90.0, 92.0, 91.0], "mkd": [95.0, 93.0]}.items():
        for seed, sen in enumerate(sens):
            rows.append({"method": method, "dataset": "synth-oct", "encoder": "efficientnet-lite0", "seed": seed,
                         "AUC": 80.0 + seed, "F1": 70.0, "ACC": 60.0, "SEN": sen, "SPE": 50.0})
    return pd.DataFrame(rows)


def test_mean_std_is_the_sample_std_over_seeds_and_nan_for_one_seed():
    agg = aggregation.mean_std(_runs_frame(), ["dataset", "method"]).set_index("method")
    assert agg.loc["hetero-ae", "SEN mean"] == pytest.approx(91.0)
    assert agg.loc["hetero-ae", "SEN std"] == pytest.approx(1.0)  # sqrt(((-1)^2 + 1^2 + 0) / 2)
    assert agg.loc["mkd", "SEN std"] == pytest.approx(np.std([95.0, 93.0], ddof=1))
    assert agg.loc["hetero-ae", "seeds"] == 3 and agg.loc["mkd", "seeds"] == 2
    one = aggregation.mean_std(_runs_frame().iloc[:1], ["method"])
    assert np.isnan(one["SEN std"].iloc[0])


def test_cell_formats_mean_and_std_and_leaves_out_an_undefined_std():
    assert formatting.cell(85.234, 1.26) == "85.2 ± 1.3"
    assert formatting.cell(85.234, float("nan")) == "85.2"
    assert formatting.cell(float("nan"), 1.0) == "-"


def test_with_paper_puts_the_papers_number_beside_ours_and_no_difference():
    agg = aggregation.mean_std(_runs_frame(), ["dataset", "method"])
    paper = pd.DataFrame([{"dataset": "oct", "metric": "sen", "method": "mkd", "value": 97.6, "std": np.nan},
                          {"dataset": "oct", "metric": "auc", "method": "hetero-ae", "value": 98.9, "std": 0.2}])
    out = aggregation.with_paper(agg, paper).set_index("method")
    assert out.loc["mkd", "SEN paper"] == 97.6
    assert not [c for c in out.columns if "diff" in c]  # synthetic minus real data would mean nothing
    assert out.loc["hetero-ae", "AUC paper"] == 98.9 and np.isnan(out.loc["mkd", "AUC paper"])
    text = formatting.markdown_by_dataset(out.reset_index(), names=formatting.METHOD_NAMES)
    assert "retinal OCT" in text and "94.0 ± 1.4 (97.6)" in text and "| MKD" in text


def test_welch_matches_scipy_and_says_when_it_is_undefined():
    from scipy.stats import ttest_ind

    frame = _runs_frame()
    out = significance.welch(frame, "hetero-ae", "mkd", "SEN").iloc[0]
    expected = ttest_ind([90.0, 92.0, 91.0], [95.0, 93.0], equal_var=False)
    assert out["t"] == pytest.approx(expected.statistic) and out["p"] == pytest.approx(expected.pvalue)
    assert out["n hetero-ae"] == 3 and out["n mkd"] == 2 and out["note"] == ""
    single = significance.welch(frame[frame["seed"] == 0], "hetero-ae", "mkd", "SEN").iloc[0]
    assert np.isnan(single["p"]) and "two or more seeds" in single["note"]
    flat = frame.assign(SEN=100.0)
    same = significance.welch(flat, "hetero-ae", "mkd", "SEN").iloc[0]
    assert np.isnan(same["p"]) and "no spread" in same["note"]


def test_paper_dataset_names_the_dataset_a_stand_in_replaces():
    assert aggregation.paper_dataset("synth-brain-mri") == "brain-mri"
    assert aggregation.paper_dataset("chest-xray") == "chest-xray"
    assert aggregation.paper_dataset("octmnist") is None


def test_present_datasets_skips_missing_real_data_and_says_where_it_goes(tmp_path, capsys):
    assert notebook_setup.present_datasets(["oct", "covid19"], tmp_path) == []
    out = capsys.readouterr().out
    assert "skipping oct" in out and "data/README.md" in out
    with pytest.raises(DataError, match="unknown dataset"):
        notebook_setup.present_datasets(["no-such-data"], tmp_path)


def test_setup_raises_when_no_dataset_is_there(tmp_path):
    with pytest.raises(DataError, match="none of"):
        notebook_setup.setup("smoke", datasets=["brain-mri"], image_size=64, device="cpu", data_root=str(tmp_path))


def test_a_notebooks_image_size_reads_the_profile_at_that_size_and_leaves_its_own_data_as_they_are(tmp_path):
    from hetero_ae.data.overview import split_counts
    from hetero_ae.experiment.profiles import load_profile
    from hetero_ae.experiment.specs import profile_root

    smoke = load_profile("smoke")
    root = tmp_path / "data"
    # first, on an empty data root, the smoke profile's second size: the profile read at it (never as a
    # profile whose second size is its own, which recursed), its data generated and found in their folder
    cfg, present = notebook_setup.setup("smoke", datasets=["synth-oct"], image_size=smoke.second_size,
                                        data_root=str(root))
    assert present == ["synth-oct"] and cfg.second_size is None and not (root / "synthetic").exists()
    at_size = profile_root(cfg, "synth-oct", cfg.data_root)
    assert at_size == root / f"{smoke.second_size}px"
    assert json.loads((at_size / "synthetic" / "synthetic.json").read_text())["size"] == smoke.second_size
    own, _ = notebook_setup.setup("smoke", datasets=["synth-oct"], data_root=str(root))
    assert cfg == own.at_size(smoke.second_size)
    stamp = (root / "synthetic" / "synthetic.json").read_text()
    notebook_setup.setup("smoke", datasets=["synth-oct"], image_size=smoke.second_size, data_root=str(root))
    assert (root / "synthetic" / "synthetic.json").read_text() == stamp  # the profile's own data stay as they are
    assert notebook_setup.setup("smoke", datasets=["synth-oct"], image_size=smoke.image_size,
                                data_root=str(root))[0] == own
    per_dataset = split_counts(["synth-oct"], cfg.image_size, root={"synth-oct": at_size})  # the overview's roots
    assert per_dataset.equals(split_counts(["synth-oct"], cfg.image_size, root=at_size)) and per_dataset["images"].sum() > 0


def test_a_list_parameter_passed_as_papermills_string_is_read_as_the_list(tmp_path):
    with pytest.raises(DataError, match=r"none of \['brain-mri'\]"):  # one name, not its letters
        notebook_setup.setup("smoke", datasets="brain-mri", data_root=str(tmp_path))
    with pytest.raises(DataError, match=r"none of \['brain-mri', 'oct'\]"):
        notebook_setup.setup("smoke", datasets="[brain-mri, oct]", data_root=str(tmp_path))
    with pytest.raises(DataError, match=r"none of \['brain-mri', 'oct'\]"):
        notebook_setup.setup("smoke", datasets="brain-mri,oct", data_root=str(tmp_path))
    with pytest.raises(ConfigError, match="parameter datasets: '\\[oct' is not a list"):
        notebook_setup.setup("smoke", datasets="[oct", data_root=str(tmp_path))


def test_hetero_ae_gets_its_own_seeds_and_method_seeds_names_exceptions():
    from hetero_ae.experiment.profiles import Profile

    p = Profile("p", seeds=(0, 1, 2), baseline_seeds=(0,), method_seeds={"rd4ad": (0, 1)})
    assert [p.method_seed_list(m) for m in ("hetero-ae", "mkd", "rd4ad")] == [[0, 1, 2], [0], [0, 1]]


def test_manifest_records_wall_time_and_cache_hits_and_the_index_links_in_paper_order(tmp_path):
    results = tmp_path / "results"
    logs = results / "logs"
    logs.mkdir(parents=True)
    pd.DataFrame({"notebook": ["table1_comparison"] * 3, "cached": [True, True, False]}).to_csv(
        logs / "table1_comparison.runs.csv", index=False)
    manifest.start(results, "smoke", "cpu")
    manifest.record(results, "table1_comparison", 12.34, "ok")
    manifest.record(results, "complexity", 3.0, "ok")
    m = json.loads((results / "manifest.json").read_text())
    assert m["profile"] == "smoke" and m["device"].startswith("cpu")
    from importlib import metadata

    installed = {d.metadata["Name"]: d.version for d in metadata.distributions()}
    assert m["versions"] == {"python": platform.python_version(), **installed}  # every package, not a subset
    assert m["notebooks"]["table1_comparison"] == {**m["notebooks"]["table1_comparison"], "status": "ok",
                                                   "wall_seconds": 12.3, "runs": 3, "cached": 2, "trained": 1}
    assert "runs" not in m["notebooks"]["complexity"]
    assert m["wall_seconds_total"] == pytest.approx(15.3)
    html = results / "html"
    html.mkdir()
    for name in ("complexity", "table1_comparison", "zz_extra"):
        (html / f"{name}.html").write_text("<html></html>")
    page = manifest.index(results).read_text()
    assert page.index("table1_comparison.html") < page.index("complexity.html") < page.index("zz_extra.html")
    manifest.start(results, "smoke", "cpu")  # same profile: earlier notebooks are kept
    assert "table1_comparison" in json.loads((results / "manifest.json").read_text())["notebooks"]
    manifest.start(results, "cpu", "cpu")  # another profile: a fresh record
    assert json.loads((results / "manifest.json").read_text())["notebooks"] == {}


def test_from_scratch_counts_a_shared_run_once_for_the_first_notebook_and_adds_the_cached_time(tmp_path):
    results = tmp_path / "results"
    (results / "logs").mkdir(parents=True)
    pd.DataFrame({"folder": ["a", "b"], "train_seconds": [60.0, 120.0], "cached": [False, False]}).to_csv(
        results / "logs" / "table1_comparison.runs.csv", index=False)
    pd.DataFrame({"folder": ["b", "c"], "train_seconds": [120.0, 30.0], "cached": [True, False]}).to_csv(
        results / "logs" / "table3_hctn.runs.csv", index=False)
    manifest.start(results, "smoke", "cpu")
    manifest.record(results, "table3_hctn", 6.0, "ok")  # recorded out of order: the table follows ORDER
    manifest.record(results, "table1_comparison", 30.0, "ok")
    manifest.from_scratch(results)
    table = pd.read_csv(results / "tables" / "run_all_time.csv").set_index("notebook")
    assert list(table.index) == ["table1_comparison", "table3_hctn", "all"]
    assert table.loc["table1_comparison", "runs it trains first"] == 2
    assert table.loc["table1_comparison", "from scratch (min, projected)"] == pytest.approx(3.0 + 0.5)
    assert table.loc["table3_hctn", "training (min, recorded)"] == pytest.approx(0.5)  # b trained for Table I
    assert table.loc["all", "runs"] == 3 and table.loc["all", "from scratch (min, projected)"] == pytest.approx(4.1)


def test_notebook_order_puts_the_papers_artefacts_first(tmp_path):
    for name in ("complexity", "aaa", "fig4_heatmaps", "table1_comparison", "data_overview"):
        (tmp_path / f"{name}.ipynb").write_text("{}")
    assert manifest.notebook_order(tmp_path) == ["data_overview", "table1_comparison", "fig4_heatmaps", "complexity",
                                                 "aaa"]


def test_save_table_writes_csv_and_markdown(tmp_path: Path):
    frame = pd.DataFrame({"a": [1.234], "b": ["x"]})
    output.save_table(frame, tmp_path, "t")
    assert pd.read_csv(tmp_path / "t.csv").equals(frame)
    assert "1.23" in (tmp_path / "t.md").read_text()
    output.save_table(frame, tmp_path, "u", markdown="# given")
    assert (tmp_path / "u.md").read_text() == "# given\n"


def test_trained_model_retrains_a_run_whose_checkpoint_is_not_committed_into_the_same_model(tmp_path):
    from hetero_ae.data.overview import ensure_synthetic
    from hetero_ae.evaluation.predict import predict
    from hetero_ae.experiment.profiles import load_profile
    from hetero_ae.experiment.runs import run_experiment, trained_model
    from hetero_ae.experiment.specs import run_spec

    root = tmp_path / "data"
    ensure_synthetic(root, 64, 0, "smoke")
    spec = run_spec(replace(load_profile("smoke"), image_size=64), "synth-oct", "ae", 0)
    result = run_experiment(spec, results=tmp_path / "results", root=root, progress=False)
    images = np.random.default_rng(0).integers(0, 255, (3, 64, 64, 3), dtype=np.uint8)
    before = predict(trained_model(result, root=root), images)[0]
    (result.folder / "checkpoint.pt").unlink()
    metrics = (result.folder / "metrics.json").read_text()
    after = predict(trained_model(result, root=root), images)[0]
    assert np.allclose(before, after, atol=1e-5)
    assert (result.folder / "checkpoint.pt").is_file() and (result.folder / "metrics.json").read_text() == metrics


def test_ablation_rows_on_resnet_fall_back_to_the_offline_encoder_and_say_so(resnet18_weights, monkeypatch):
    from hetero_ae.experiment.variants import variant
    from hetero_ae.model import encoder

    row = variant("III", "hctn")
    assert table_runs.variant_overrides(row)[1] == "resnet18"  # weights in the hub cache (the fixture's)
    resnet18_weights.unlink()
    assert table_runs.variant_overrides(row) == ({**row.overrides(), "encoder": encoder.OFFLINE_ENCODER},
                                             encoder.OFFLINE_ENCODER)
    hybrid = variant("II", "hybrid-hybrid")  # random frozen encoders are not replaced
    assert table_runs.variant_overrides(hybrid)[1] == "hybrid"


def test_readme_blocks_are_filled_from_the_tables_and_stale_ones_are_reported(tmp_path):
    from hetero_ae.report import readme

    (tmp_path / "results" / "tables").mkdir(parents=True)
    (tmp_path / "results" / "tables" / "t.md").write_text("| a |\n|---|\n| 1 |\n")
    page = tmp_path / "README.md"
    page.write_text("intro\n<!-- results/tables/t.md -->\nold\n<!-- end -->\noutro\n")
    assert readme.stale(page, tmp_path) == ["results/tables/t.md"]
    assert readme.main(["--readme", str(page), "--check"]) == 1
    assert readme.main(["--readme", str(page)]) == 0
    assert page.read_text() == "intro\n<!-- results/tables/t.md -->\n| a |\n|---|\n| 1 |\n<!-- end -->\noutro\n"
    assert readme.stale(page, tmp_path) == [] and readme.main(["--readme", str(page), "--check"]) == 0
    page.write_text("<!-- results/tables/missing.md -->\n<!-- end -->\n")
    with pytest.raises(FileNotFoundError, match="run ./run_all.sh"):
        readme.stale(page, tmp_path)


def test_readme_values_are_read_from_csv_rows_aggregates_and_json_paths(tmp_path):
    from hetero_ae.report import readme

    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "t.csv").write_text("method,dataset,AUC mean,converged\nae,a,71.45,True\nae,b,80.0,False\n"
                                          "rd4ad,a,90.25,True\n")
    (tmp_path / "r" / "b.json").write_text('{"cpu": {"runs": [{"auc": 79.24}, {"auc": 80.66}]}, "n": 3}')
    ev = lambda src, expr: readme.evaluate(src, expr, tmp_path)  # noqa: E731
    assert ev("r/t.csv", "AUC mean @ method == 'rd4ad'") == "90.2"  # .1f: Python rounds half to even on the binary value
    assert ev("r/t.csv", "AUC mean @ method == 'ae' and dataset == 'a' | .2f") == "71.45"
    assert ev("r/t.csv", "mean(AUC mean) @ method == 'ae'") == "75.7"  # (71.45 + 80.0) / 2 = 75.725
    assert ev("r/t.csv", "count(*) @ converged == False") == "1" and ev("r/t.csv", "count(*)") == "3"
    assert ev("r/t.csv", "max(AUC mean) | +.1f") == "+90.2" and ev("r/t.csv", "method @ `AUC mean` > 85") == "rd4ad"
    assert ev("r/b.json", "cpu.runs.1.auc") == "80.7" and ev("r/b.json", "n") == "3"
    with pytest.raises(readme.BadReference, match="selects 2 rows, not one"):
        ev("r/t.csv", "AUC mean @ method == 'ae'")
    with pytest.raises(readme.BadReference, match="no column 'SEN'"):
        ev("r/t.csv", "SEN @ method == 'rd4ad'")
    with pytest.raises(readme.BadReference, match="no '5' along"):
        ev("r/b.json", "cpu.runs.5.auc")
    with pytest.raises(FileNotFoundError, match="r/none.csv"):
        ev("r/none.csv", "x")
    page = tmp_path / "README.md"
    page.write_text("RD4AD <!-- =r/t.csv: AUC mean @ method == 'rd4ad' -->88.0<!-- / --> against 1.5 typed\n")
    assert readme.stale(page, tmp_path) == ["<!-- =r/t.csv: AUC mean @ method == 'rd4ad' --> shows '88.0', the file '90.2'"]
    assert readme.main(["--readme", str(page)]) == 0 and readme.stale(page, tmp_path) == []
    assert "-->90.2<!--" in page.read_text() and readme.unreferenced(page.read_text()) == ["1.5"]
    page.write_text("<!-- =r/t.csv: SEN -->1<!-- / -->\n")
    assert readme.main(["--readme", str(page), "--check"]) == 2  # a bad reference: one line, exit 2


def test_unreferenced_skips_tables_values_code_and_link_targets():
    from hetero_ae.report import readme

    text = ("a 12.5 b\n<!-- results/tables/t.md -->\n| 3.4 |\n<!-- end -->\n`x 7.7` [v1.2](a/0.5.md) "
            "<!-- =r.csv: y -->9.9<!-- / --> 128 px, p < 0.05\n```\n6.6\n```\n")
    assert readme.unreferenced(text) == ["12.5", "0.05"]
    assert readme.section("# A\n## R\nx\n### S\ny\n## T\nz\n", "## R") == "x\n### S\ny"


ROOT = Path(__file__).resolve().parents[1]
# The docs pages whose numbers are results, held to committed files like the README's results.
RESULT_PAGES = ["docs/complexity.md", "docs/speed.md", "docs/reproduction-notes.md"]


def test_several_pages_are_synced_and_checked_from_the_repository_root(tmp_path, capsys):
    from hetero_ae.report import readme

    (tmp_path / "results" / "tables").mkdir(parents=True)
    (tmp_path / "results" / "tables" / "t.md").write_text("| a |\n|---|\n| 1 |\n")
    (tmp_path / "results" / "t.csv").write_text("x\n2.5\n")
    (tmp_path / "docs").mkdir()
    page, doc = tmp_path / "README.md", tmp_path / "docs" / "speed.md"
    page.write_text("<!-- =results/t.csv: x -->0.0<!-- / -->\n")
    doc.write_text("<!-- results/tables/t.md -->\nold\n<!-- end -->\n")
    assert readme.pages(tmp_path) == [page, doc] and readme.page_root(doc) == tmp_path
    assert readme.main(["--readme", str(page), str(doc), "--check"]) == 1
    assert "docs/speed.md shows an old copy of results/tables/t.md" in capsys.readouterr().err
    assert readme.main(["--readme", str(doc), "--root", str(tmp_path)]) == 0  # one page: the other stays stale
    assert readme.stale(doc, tmp_path) == [] and readme.stale(page, tmp_path) != []
    assert readme.main(["--readme", str(doc), str(page)]) == 0  # the root is the first page's repository
    assert "-->2.5<!--" in page.read_text() and readme.main(["--root", str(tmp_path), "--check"]) == 0
    doc.write_text("<!-- =results/none.csv: x -->1<!-- / -->\n")
    assert readme.main(["--root", str(tmp_path), "--check"]) == 2
    assert "docs/speed.md: the page shows a value of results/none.csv" in capsys.readouterr().err


def test_the_readme_on_main_shows_the_committed_results():
    """README.md and every docs page show the committed tables and values (run on main after ./run_all.sh)."""
    from hetero_ae.report import readme

    pages = readme.pages(ROOT)
    names = [str(p.relative_to(ROOT)) for p in pages]
    assert names[0] == "README.md" and all(page in names for page in RESULT_PAGES)
    shown = {name: [path for path, _ in readme.blocks(p.read_text())] for name, p in zip(names, pages)}
    assert "results/tables/table1_auc.md" in shown["README.md"]
    assert "results/tables/complexity_table2.md" in shown["docs/complexity.md"]
    for name, page in zip(names, pages):
        assert readme.stale(page, ROOT) == [], f"{name}: run python -m hetero_ae.report.readme after ./run_all.sh"
    assert readme.main(["--root", str(ROOT), "--check"]) == 0


# Decimals the results sections may state without a file: settings and definitions, not results.
DEFINITIONS = {
    "0.05": "the convergence test's one-sided p",
    "0.1": "the fine-tuned encoder's share of the learning rate",
    "0.5": "the fixed-schedule plateau check's 0.5 %",
    "0.7": "the paper's alpha",
    "1.5": "the issue's aim for an RD4AD epoch against anomalib's (times as fast)",
    "0.1968": "the paper's own t-test p-value, quoted",
}


def _results_texts() -> dict[str, str]:
    """The README's landing text, results and Status, and the docs pages of results, by name."""
    from hetero_ae.report import readme

    text = (ROOT / "README.md").read_text()
    out = {"README.md (above Quick start)": text.split("\n## ", 1)[0]}
    out |= {f"README.md, {h}": readme.section(text, h) for h in ["## Results of the default profile", "## Status"]}
    out |= {page: (ROOT / page).read_text() for page in RESULT_PAGES}
    return out


def test_every_number_in_the_readmes_results_comes_from_a_committed_file():
    """Each decimal of the results sections (README and docs pages) sits in a table block or a value
    reference (both checked against their files above), or is a setting named in DEFINITIONS."""
    from hetero_ae.report import readme

    texts = _results_texts()
    assert sum(len(readme.values(t)) for t in texts.values()) > 200
    assert len(readme.values(texts["docs/speed.md"])) > 50 and readme.blocks(texts["docs/complexity.md"])
    for where, text in texts.items():
        typed = [n for n in readme.unreferenced(text) if n not in DEFINITIONS]
        assert typed == [], f"{where}: numbers typed by hand; write them as <!-- =FILE: EXPR -->N<!-- / -->"


def test_the_readmes_first_lines_say_what_it_is_how_to_run_it_and_what_it_found():
    """A reader sees, without scrolling past line 60: the paper, where to read the report, the two
    commands, what the default results are, the verdict, and how long a run takes."""
    top = "\n".join((ROOT / "README.md").read_text().splitlines()[:60])
    flat = " ".join(top.split())
    assert "Anomaly Detection for Medical Images Using Heterogeneous Auto-Encoder" in flat
    for author in ["Shuai Lu", "Weihang Zhang", "He Zhao", "Hanruo Liu", "Ningli Wang", "Huiqi Li"]:
        assert author in flat
    assert "(https://doi.org/10.1109/TIP.2024.3381435)" in top and "10.1109/TIP.2024.3381435" in top
    assert "(results/html/index.html)" in top and "(results/notebooks/)" in top
    assert "./run_all.sh" in top and "./run_tests.sh" in top
    assert "synthetic" in flat and "128 px" in flat and "EfficientNet-Lite0" in flat
    assert "inconclusive" in flat and "table1_verdict" in flat
    assert "from the cache" in flat.lower() and "from scratch" in flat.lower()
    assert "<!-- =results/tables/run_all_time.csv: `from the cache (min)` @ notebook == 'all'" in top
    assert "<!-- =results/tables/run_all_time.csv: `from scratch (min, projected)` @ notebook == 'all'" in top


def _slugs(text: str) -> set[str]:
    """GitHub's anchors for the headings of a Markdown page: lower case, punctuation dropped, spaces
    to hyphens, and a repeated heading numbered (-1, -2, ...)."""
    import re

    slugs, seen = set(), {}
    for heading in re.findall(r"^#{1,6} +(.+?) *#*$", re.sub(r"```.*?```", "", text, flags=re.S), flags=re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        slugs.add(slug if n == 0 else f"{slug}-{n}")
    return slugs


def test_every_relative_link_of_the_readme_and_the_docs_points_to_a_file_that_exists():
    import re

    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    assert len(pages) >= 10
    broken, checked = [], 0
    for page in pages:
        text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
        text = re.sub(r"`[^`\n]*`", "", text)
        for target in re.findall(r"\]\(\s*([^)\s]+)(?:\s+\"[^\"]*\")?\s*\)", text):
            if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto:
                continue
            checked += 1
            path, _, anchor = target.partition("#")
            where = (page.parent / path).resolve() if path else page
            if not where.exists():
                broken.append(f"{page.relative_to(ROOT)}: {target} (no such file)")
            elif anchor and where.suffix == ".md" and anchor not in _slugs(where.read_text()):
                broken.append(f"{page.relative_to(ROOT)}: {target} (no such heading)")
    assert checked > 30 and broken == []


def test_atomic_writes_get_the_usual_file_mode(tmp_path):
    import os

    from hetero_ae.io import write_text

    umask = os.umask(0o022)
    os.umask(umask)
    path = write_text(tmp_path / "t.md", "x")
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask


def test_the_data_root_is_the_argument_then_the_environment_then_the_profile(monkeypatch, tmp_path):
    from hetero_ae.data.datasets import DATA_ENV, data_root

    monkeypatch.delenv(DATA_ENV, raising=False)
    assert data_root() == Path("data") and data_root(None, "data/design") == Path("data/design")
    monkeypatch.setenv(DATA_ENV, str(tmp_path))
    assert data_root(None, "data/design") == tmp_path and data_root("mine", "data/design") == Path("mine")
    with pytest.raises(DataError, match=f"under {tmp_path}"):  # a notebook's setup follows the variable too
        notebook_setup.setup("smoke", datasets=["oct"], image_size=64)
    with pytest.raises(DataError, match="under elsewhere"):  # ... unless the notebook names a data root
        notebook_setup.setup("smoke", datasets=["oct"], image_size=64, data_root="elsewhere")


def test_save_figure_writes_the_same_bytes_for_the_same_figure(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    output.save_figure(fig, tmp_path / "a", "f")
    output.save_figure(fig, tmp_path / "b", "f")
    for ext in ("png", "pdf"):
        first, second = (Path(tmp_path, d, f"f.{ext}").read_bytes() for d in ("a", "b"))
        assert first == second and len(first) > 100
    plt.close(fig)


def test_a_run_whose_model_was_trained_again_counts_as_trained_in_the_record(tmp_path):
    from hetero_ae.experiment.profiles import load_profile
    from hetero_ae.experiment.runs import RunResult
    from hetero_ae.experiment.specs import run_spec

    spec = run_spec(load_profile("smoke"), "synth-oct", "ae", 0)
    runs = [RunResult(spec, tmp_path / "a", {}, cached=True), RunResult(spec, tmp_path / "b", {}, cached=True,
                                                                       retrained=True)]
    frame = run_log.record_runs(tmp_path, "fig4_heatmaps", runs)
    assert frame["cached"].tolist() == [True, False]


def test_a_notebook_started_in_notebooks_runs_from_the_repository(monkeypatch):
    root = Path(__file__).resolve().parents[1]
    monkeypatch.chdir(root / "notebooks")
    assert notebook_setup.at_project_root() == root and Path.cwd() == root


def test_a_degenerate_threshold_marks_the_threshold_metrics_but_not_the_auc():
    frame = pd.DataFrame([{"method": "ae", "dataset": "synth-oct", "seed": s, "AUC": 60.0 + s, "F1": 70.0,
                           "ACC": 50.0, "SEN": sen, "SPE": spe, "converged": True,
                           "degenerate": {sen, spe} == {0.0, 100.0}} for s, sen, spe in ((0, 100.0, 0.0),
                                                                                      (1, 80.0, 40.0))])
    agg = aggregation.mean_std(frame, ["dataset", "method"])
    assert bool(agg.loc[0, "degenerate"])  # one seed of two is enough
    row = formatting.display_table(agg).iloc[0]
    assert not row["AUC"].endswith(formatting.DEGENERATE_MARK)
    assert all(row[m].endswith(formatting.DEGENERATE_MARK) for m in ("F1", "ACC", "SEN", "SPE"))
    assert "test labels" in formatting.table_notes("best_f1") and "without a test label" in formatting.table_notes("normal_q95")
