"""The first screen of every report page, and the index: what ran, and the verdicts.

A reader who opens a page of the report (or the index) sees, before any table: the data (the
synthetic stand-ins of the paper's datasets, or the real ones), the encoder, the input size, the
seeds and the profile, each beside what the paper used (Sec. IV-A and IV-B: the four real
datasets, a ResNet-18 encoder, 256 x 256 px, five seeds for Hetero-AE and MKD), and the verdict
on each claim the page tests (``report.verdicts``: supported, contradicted or inconclusive, with
the difference and its 95 % interval).

``glance`` returns that block as Markdown for the notebook's third cell and writes it as
``tables/<notebook>_first_screen.json``, which ``report.manifest.index`` reads for the index.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..data.datasets import is_synthetic
from ..io import write_text
from .verdicts import WORDS, Verdict, verdict_table

CLAIMS = {  # the claim each page tests (report.verdicts), as the index lists them
    "table1_comparison": "(i) Hetero-AE has the best AUC on every dataset (Sec. IV-C, Table I)",
    "table2_heterogeneous": "(ii) a heterogeneous encoder-decoder beats a homogeneous one (Sec. IV-E1, Table II)",
    "table3_hctn": "(iii) the HCTN decoder beats a CNN-only and a Transformer-only one (Sec. IV-E1, Table III)",
    "table4_feature_comparison": "(iv) comparing features beats comparing pixels (Sec. IV-E2, Table IV)",
    "fig5_tsne": "(v) one image's anomalous patches lie apart from their reconstructions (Sec. IV-D2, Fig. 5)",
    "fig6_boxplots": "(v) normal and anomalous images' feature distances separate (Sec. IV-E1, Fig. 6)",
}
PAPER = {"data": "the real OCT2017, RSNA chest X-ray, BraTS2021 and COVID-19 sets", "encoder": "ResNet-18",
         "px": 256, "seeds": "5 for Hetero-AE and MKD"}  # Sec. IV-A, IV-B
ENCODER_NAMES = {"efficientnet-lite0": "EfficientNet-Lite0", "resnet18": "ResNet-18",
                 "wide-resnet50": "Wide-ResNet-50-2", "vgg16": "VGG-16", "hybrid": "CNN+Transformer",
                 "transformer": "Transformer"}
SHORT = ("claim", "ours", "verdict", "difference [95% CI]")  # the verdict table's columns on the first screen
GLOSSARY = "../../docs/glossary.md"  # from results/html/ (and results/notebooks/) to the glossary


@dataclass(frozen=True)
class WhatRan:
    """What a page's runs were: ``datasets`` (ids), whether all are the synthetic stand-ins, the
    ``profile``, and per method (display name) its encoder, input size (px) and seeds."""

    profile: str
    datasets: tuple[str, ...]
    synthetic: bool
    methods: dict[str, dict[str, Any]] = field(default_factory=dict)

    def line(self) -> str:
        """One Markdown paragraph: the data, who ran with which encoder, size and seeds, the profile."""
        data = (f"**synthetic stand-ins** of {', '.join(self.datasets)} (not the paper's data: "
                f"{PAPER['data']})") if self.synthetic else f"the real datasets {', '.join(self.datasets)}"
        groups: dict[tuple, list[str]] = {}
        for name, m in self.methods.items():
            groups.setdefault((m["encoder"], m["px"], tuple(m["seeds"])), []).append(name)
        who = "; ".join(f"{', '.join(names)}: " + ("trained from scratch" if enc == "none" else
                                                   f"encoder {ENCODER_NAMES.get(enc, enc)}") + f", {px} px, "
                        f"seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))}"
                        for (enc, px, seeds), names in groups.items())
        paper = f"the paper: {PAPER['encoder']}, {PAPER['px']} px, {PAPER['seeds']}"
        return f"**What ran:** {data}. " + (f"{who} ({paper}). " if who else "") + f"Profile `{self.profile}`."


def what_ran(runs: Iterable[Any], profile: str, names: Mapping[str, str] | None = None,
             label=None) -> WhatRan:
    """``WhatRan`` of a page's runs (``experiment.runs.RunResult``; anything with a ``spec``).

    ``label(run)`` names the row a run belongs to (default: its method's display name from
    ``names``); rows keep their first run's order. Raises ValueError for no runs.
    """
    runs = list(runs)
    if not runs:
        raise ValueError("what_ran needs the page's runs; there are none")
    methods: dict[str, dict[str, Any]] = {}
    datasets: dict[str, None] = {}
    for r in runs:
        spec = r.spec
        datasets[spec.dataset] = None
        name = label(r) if label else (names or {}).get(spec.model.method, spec.model.method)
        m = methods.setdefault(name, {"encoder": spec.model.encoder, "px": spec.model.image_size, "seeds": []})
        if spec.train.seed not in m["seeds"]:
            m["seeds"].append(spec.train.seed)
    for m in methods.values():
        m["seeds"].sort()
    return WhatRan(profile, tuple(datasets), all(is_synthetic(d) for d in datasets), methods)


def verdict_rows(claims: Sequence[Verdict]) -> list[dict[str, str]]:
    """The first screen's short form of each verdict: the claim, ours (the two sides' numbers), the word
    (with † where a run behind it did not converge) and the difference with its 95 % interval."""
    table = verdict_table(claims)
    return [{k: r[k] for k in SHORT} for r in table.to_dict("records")]


def counts(claims: Sequence[Verdict]) -> dict[str, int]:
    """How many verdicts have each word, and how many rest on a run that did not converge."""
    out = {w: sum(v.word == w for v in claims) for w in WORDS}
    out["unconverged"] = sum(not v.converged for v in claims)
    return out


def verdict_grid(claims: Sequence[Verdict], rows: Sequence[str], columns: Sequence[str]) -> str:
    """Many verdicts as one compact Markdown grid: claim i in row ``rows[i]``, column ``columns[i]``, its
    cell the word (with †) and the difference with its interval. ValueError for two claims in one cell."""
    cells: dict[tuple[str, str], str] = {}
    for v, r, c in zip(claims, rows, columns, strict=True):
        if (r, c) in cells:
            raise ValueError(f"two verdicts in the cell ({r}, {c})")
        diff = verdict_table([v])["difference [95% CI]"].iloc[0]
        cells[(r, c)] = f"{v.marked}: {diff}"
    rs, cs = list(dict.fromkeys(rows)), list(dict.fromkeys(columns))
    header = "| | " + " | ".join(cs) + " |\n|:--|" + ":--|" * len(cs)
    return header + "".join("\n| " + r + " | " + " | ".join(cells.get((r, c), "-") for c in cs) + " |" for r in rs)


def glance(notebook: str, what: WhatRan | str, claims: Sequence[Verdict] | None = None, *,
           results_dir: str | Path = "results", finding: str = "", verdicts_anchor: str = "",
           grid: tuple[Sequence[str], Sequence[str]] | None = None) -> str:
    """The page's first screen as Markdown, also written to ``<results_dir>/tables/<notebook>_first_screen.json``.

    ``what``: the runs' ``WhatRan``, or a sentence for a page without runs; ``claims``: the
    page's verdicts (None for a page that tests no claim, which ``finding`` then sums up), shown
    one per row (claim, ours, word, difference), or, with ``grid`` (a row and a column label per
    claim), as a ``verdict_grid``; ``verdicts_anchor``: the heading id of the section that
    explains how they are decided.
    """
    line = what.line() if isinstance(what, WhatRan) else f"**What ran:** {what}"
    parts = [line]
    rows = verdict_rows(claims) if claims else []
    if claims:
        c = counts(claims)
        how = f" ([how they are decided](#{verdicts_anchor}))" if verdicts_anchor else ""
        parts.append(f"**Verdicts:** {c['supported']} supported, {c['contradicted']} contradicted, "
                     f"{c['inconclusive']} inconclusive at 95 %" + (f"; † {c['unconverged']} rest on a run that "
                                                                  "did not converge" if c["unconverged"] else "")
                     + f"{how}.")
        if grid:
            parts.append(verdict_grid(claims, *grid))
        else:
            header = "| " + " | ".join(SHORT) + " |\n|" + ":--|" * len(SHORT)
            parts.append(header + "".join("\n| " + " | ".join(r[k] for k in SHORT) + " |" for r in rows))
    elif claims is not None:
        parts.append("**Verdicts:** none: the runs this page needs are not there.")
    if finding:
        parts.append(finding)
    parts.append(f"Terms: [glossary]({GLOSSARY}). Code: `notebooks/{notebook}.ipynb` (this page shows the output of "
                 "its first cells, not their code).")
    text = "\n\n".join(parts)
    record = {"notebook": notebook, "claim": CLAIMS.get(notebook, ""),
              "what_ran": asdict(what) if isinstance(what, WhatRan) else {"text": what}, "what_ran_line": line, "verdicts": rows, "counts": counts(claims) if claims else None,
              "finding": finding}
    write_text(Path(results_dir, "tables", f"{notebook}_first_screen.json"), json.dumps(record, indent=1) + "\n")
    return text


def inline_html(markdown: str) -> str:
    """A first-screen line's Markdown (``**strong**``, ```code```, ``[text](link)``) as escaped HTML."""
    out = html.escape(markdown)
    out = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", out)
    out = re.sub(r"`(.+?)`", r"<code>\1</code>", out)
    return re.sub(r"\[(.+?)\]\((.+?)\)", r'<a href="\2">\1</a>', out)


def read(results_dir: str | Path, notebook: str) -> dict[str, Any] | None:
    """A page's first-screen record, or None when the page has not written one."""
    path = Path(results_dir, "tables", f"{notebook}_first_screen.json")
    return json.loads(path.read_text()) if path.is_file() else None
