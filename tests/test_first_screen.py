"""The report's first screen (``report.first_screen``): what ran and the verdicts, on every page and the index.

The last test opens the committed report in headless Chromium, where the machine has it, and
checks that what ran and the verdicts are inside the first screen of a laptop-sized window.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from hetero_ae.report import first_screen, formatting, manifest, output, verdicts

ROOT = Path(__file__).resolve().parents[1]


def _run(method: str, dataset: str, seed: int, encoder: str = "efficientnet-lite0", px: int = 128):
    return SimpleNamespace(spec=SimpleNamespace(dataset=dataset, model=SimpleNamespace(
        method=method, encoder=encoder, image_size=px), train=SimpleNamespace(seed=seed)))


def _claims():
    return [verdicts.compare([80.0, 82.0, 81.0], [70.0, 71.0, 69.5], claim="A beats B on d1", section="IV-C",
                             names=("A", "B")),
            verdicts.compare([70.0], [71.0], claim="A beats B on d2", section="IV-C", names=("A", "B"),
                             converged=False)]


def test_what_ran_groups_methods_by_encoder_size_and_seeds_and_says_the_data_are_synthetic():
    runs = [_run("hetero-ae", "synth-oct", 1), _run("hetero-ae", "synth-oct", 0), _run("rd4ad", "synth-oct", 0),
            _run("rd4ad", "synth-oct", 1), _run("ae", "synth-oct", 0, "none", 64), _run("ae", "synth-covid19", 0, "none", 64)]
    what = first_screen.what_ran(runs, "cpu", formatting.METHOD_NAMES)
    assert what.synthetic and what.datasets == ("synth-oct", "synth-covid19")
    assert what.methods["Hetero-AE"] == {"encoder": "efficientnet-lite0", "px": 128, "seeds": [0, 1]}
    line = what.line()
    assert "**synthetic stand-ins**" in line and "Profile `cpu`" in line
    assert "Hetero-AE, RD4AD: encoder EfficientNet-Lite0, 128 px, seeds 0, 1" in line
    assert "AE: trained from scratch, 64 px, seed 0" in line and "the paper: ResNet-18, 256 px" in line
    real = first_screen.what_ran([_run("hetero-ae", "oct2017", 0)], "paper", formatting.METHOD_NAMES)
    assert not real.synthetic and "the real datasets oct2017" in real.line()
    with pytest.raises(ValueError, match="no"):
        first_screen.what_ran([], "cpu")


def test_glance_shows_what_ran_and_every_verdict_and_writes_the_record_the_index_reads(tmp_path):
    claims = _claims()
    what = first_screen.what_ran([_run("hetero-ae", "synth-oct", 0)], "cpu", formatting.METHOD_NAMES)
    text = first_screen.glance("table1_comparison", what, claims, results_dir=tmp_path, verdicts_anchor="verdicts")
    assert text.startswith("**What ran:**")
    assert "**Verdicts:** 1 supported, 0 contradicted, 1 inconclusive at 95 %; † 1 rest on a run" in text
    assert "| A beats B on d1 |" in text and "| inconclusive † |" in text and "(#verdicts)" in text
    assert "notebooks/table1_comparison.ipynb" in text and "docs/glossary.md" in text
    record = first_screen.read(tmp_path, "table1_comparison")
    assert record["counts"] == {"supported": 1, "contradicted": 0, "inconclusive": 1, "unconverged": 1}
    assert [r["verdict"] for r in record["verdicts"]] == ["supported", "inconclusive †"]
    assert record["claim"].startswith("(i) Hetero-AE has the best AUC")
    assert first_screen.read(tmp_path, "nothing") is None
    plain = first_screen.glance("complexity", "no training.", None, results_dir=tmp_path, finding="Counts only.")
    assert "**What ran:** no training." in plain and "Counts only." in plain and "Verdicts" not in plain
    assert first_screen.read(tmp_path, "complexity")["counts"] is None


def test_many_verdicts_fit_one_grid_and_two_in_one_cell_are_refused():
    claims = _claims()
    grid = first_screen.verdict_grid(claims, ["CNN", "HCTN"], ["chest, mean", "chest, mean"])
    lines = grid.splitlines()
    assert lines[0] == "| | chest, mean |" and lines[2].startswith("| CNN | supported: +")
    assert lines[3].startswith("| HCTN | inconclusive †: ")
    with pytest.raises(ValueError, match="two verdicts"):
        first_screen.verdict_grid(claims, ["CNN", "CNN"], ["chest", "chest"])


def test_inline_html_escapes_and_keeps_strong_code_and_links():
    out = first_screen.inline_html("**What ran:** <x> & `cpu` [glossary](../../docs/glossary.md)")
    assert out == ('<strong>What ran:</strong> &lt;x&gt; &amp; <code>cpu</code> '
                   '<a href="../../docs/glossary.md">glossary</a>')


def test_the_index_opens_with_what_ran_and_the_verdict_on_each_claim(tmp_path):
    results = tmp_path / "results"
    (results / "html").mkdir(parents=True)
    for name in ("table1_comparison", "complexity"):
        (results / "html" / f"{name}.html").write_text("<html></html>")
    manifest.start(results, "smoke", "cpu")
    what = first_screen.what_ran([_run("hetero-ae", "synth-oct", 0)], "smoke", formatting.METHOD_NAMES)
    first_screen.glance("table1_comparison", what, _claims(), results_dir=results)
    first_screen.glance("complexity", "no training.", None, results_dir=results)
    page = manifest.index(results).read_text()
    assert "<strong>What ran:</strong> <strong>synthetic stand-ins</strong> of synth-oct" in page
    row = re.search(r'<tr><td><a href="table1_comparison.html">\(i\) Hetero-AE has the best AUC[^<]*</a></td>(.*?)</tr>',
                    page)
    assert row and row.group(1) == "<td>1</td><td>0</td><td>1</td><td>1</td>"  # supported, contradicted, inconclusive, †
    assert page.index('id="verdicts"') < page.index("<h2>Pages</h2>")


def test_show_drops_the_index_and_writes_missing_cells_as_a_dash():
    text = formatting.show(pd.DataFrame({"n": [1, 2], "x": [0.123, np.nan], "s": ["a", None]}), ".2f", note="N.").data
    assert text.splitlines()[2] == "|   1 | 0.12 | a   |" and "|   2 |    - | -   |" in text and text.endswith("N.")


def test_a_figure_saved_twice_gives_the_same_bytes(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(2, 2))
    ax.plot([0, 1], [1, 0])
    output.save_figure(fig, tmp_path / "a", "f")
    output.save_figure(fig, tmp_path / "b", "f")
    plt.close(fig)
    for ext in ("png", "pdf"):
        assert (tmp_path / "a" / f"f.{ext}").read_bytes() == (tmp_path / "b" / f"f.{ext}").read_bytes(), ext


def test_the_committed_pages_hide_the_setup_code_and_open_with_what_ran():
    pages = sorted((ROOT / "results" / "html").glob("*.html"))
    assert len(pages) >= 10
    for page in pages:
        text = page.read_text()
        assert "What ran:" in text, page.name
        if page.stem != "index":
            assert "profile: str = " not in text and "cfg, datasets = " not in text, page.name  # hidden inputs
            assert first_screen.read(ROOT / "results", page.stem) is not None, page.name


MEASURE = """<script>
window.addEventListener("load", () => {
  const find = (start) => [...document.querySelectorAll("p")].find(p => p.textContent.trim().startsWith(start));
  const last = find("Terms:") || document.querySelector("table");
  document.body.setAttribute("data-first-screen", JSON.stringify({height: window.innerHeight,
    what_ran: find("What ran:") ? find("What ran:").getBoundingClientRect().bottom : null,
    end: last ? last.getBoundingClientRect().bottom : null,
    wider: [...document.querySelectorAll("table")].filter(t => t.getBoundingClientRect().right > window.innerWidth).length}));
});
</script>"""


def _first_screen_in_chromium(page: Path, tmp: Path, size: str = "1366,900") -> dict:
    copy = tmp / page.name
    copy.write_text(page.read_text().replace("</body>", MEASURE + "</body>"))
    dom = subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                          "--disable-background-networking", "--disable-component-update", "--disable-sync",
                          f"--user-data-dir={tmp / 'profile'}", f"--window-size={size}", "--dump-dom", copy.as_uri()],
                         capture_output=True, text=True, timeout=120).stdout
    found = re.search(r'data-first-screen="([^"]*)"', dom)
    assert found, f"{page.name}: Chromium did not run the measuring script"
    return json.loads(html.unescape(found.group(1)))


@pytest.mark.skipif(shutil.which("chromium") is None, reason="needs Chromium (Debian package chromium)")
def test_what_ran_and_the_verdicts_are_on_the_first_screen_of_every_page_and_no_table_is_wider_in_a_browser(tmp_path):
    for page in sorted((ROOT / "results" / "html").glob("*.html")):
        m = _first_screen_in_chromium(page, tmp_path)
        assert m["what_ran"] is not None and m["end"] is not None, (page.name, m)
        assert m["end"] <= m["height"], f"{page.name}: the first screen ends at {m['end']:.0f} px of {m['height']}"
        assert m["wider"] == 0, f"{page.name}: {m['wider']} table(s) wider than the window"
