"""``results/manifest.json`` and ``results/html/index.html``: what ``run_all.sh`` ran, and the report's front page.

The manifest records the git commit, the profile, the version of every installed package, the device, and per
notebook its wall time, status and how many of its runs were trained now or taken from the
cache (``report.record_runs`` writes ``results/logs/<notebook>.runs.csv``). The index links
the HTML renderings of the executed notebooks in the paper's order; beside it,
``results/tables/run_all_time.md`` gives each notebook's time from the cache and, projected
from its runs' recorded training times, from scratch.

Used by ``run_all.sh`` (``python -m hetero_ae.report.manifest order|start|index``) and by
``report.execute``, which records each notebook as it finishes (``record``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import html
import json
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from ..io import write_json, write_text

# The paper's order (Table I, Tables II-IV, Fig. 4-6), the data first and the complexity last.
ORDER = {
    "data_overview": "Data: the datasets, counts per class, a gallery with lesion masks",
    "table1_comparison": "Table I: nine methods on four datasets (AUC, F1, ACC, SEN, SPE)",
    "table1_sizes": "Table I at two sizes: Hetero-AE and the contenders at 128 and the paper's 256 px",
    "table1_sensitivity": "Table I under a second stopping rule: whether the rule decides the verdicts",
    "table2_heterogeneous": "Table II: homogeneous against heterogeneous encoder/decoder pairs",
    "table3_hctn": "Table III: the HCTN decoder against all-CNN and all-Transformer decoders",
    "table4_feature_comparison": "Table IV: feature comparison against pixel comparison",
    "fig4_heatmaps": "Fig. 4: anomaly heatmaps of AE, SALAD, MKD and Hetero-AE",
    "fig5_tsne": "Fig. 5: t-SNE of encoder and decoder features of an OCT image",
    "fig6_boxplots": "Fig. 6: feature distance of normal and abnormal images, three decoders",
    "complexity": "Model complexity: parameters, FLOPs, MSTB attention cost",
}


def notebook_order(folder: str | Path = "notebooks") -> list[str]:
    """Notebook names in ``folder``: the paper's order first, any others after, alphabetically."""
    present = sorted(p.stem for p in Path(folder).glob("*.ipynb"))
    return [n for n in ORDER if n in present] + [n for n in present if n not in ORDER]


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def device_description(device: str) -> str:
    if device.startswith("cuda"):
        import torch

        if torch.cuda.is_available():
            return f"{device}: {torch.cuda.get_device_name(torch.device(device))} x{torch.cuda.device_count()}"
        return f"{device} (not available on this machine)"
    import os

    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{device}: {cpu}, {os.cpu_count()} cores"


def versions() -> dict[str, str]:
    """Python's version and every installed distribution's, by name (what ``pip freeze`` would list)."""
    found = {d.metadata["Name"]: d.version for d in metadata.distributions() if d.metadata["Name"]}
    return {"python": platform.python_version(), **dict(sorted(found.items(), key=lambda kv: kv[0].lower()))}


def _load(results: Path) -> dict[str, Any]:
    path = results / "manifest.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def start(results: Path, profile: str, device: str) -> dict[str, Any]:
    """Begin a run_all: a fresh manifest, or the previous one's notebooks kept when the profile is the same."""
    old = _load(results)
    dirty = _git("status", "--porcelain", "--untracked-files=no", "--", ".", ":!results")  # code, not outputs
    m = {"profile": profile, "device": device_description(device), "git_commit": _git("rev-parse", "HEAD"),
         "git_dirty": dirty not in ("", "unknown"), "versions": versions(),
         "started": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
         "notebooks": old.get("notebooks", {}) if old.get("profile") == profile else {}}
    write_json(results / "manifest.json", m)
    return m


def _runs(results: Path, notebook: str) -> dict[str, int]:
    path = results / "logs" / f"{notebook}.runs.csv"
    if not path.is_file():
        return {}
    import pandas as pd

    frame = pd.read_csv(path)
    cached = int(frame["cached"].astype(bool).sum()) if len(frame) else 0
    return {"runs": len(frame), "cached": cached, "trained": len(frame) - cached}


def record(results: Path, notebook: str, seconds: float, status: str) -> dict[str, Any]:
    """Add one notebook's wall time, status and cache hits to the manifest."""
    m = _load(results)
    m.setdefault("notebooks", {})[notebook] = {"status": status, "wall_seconds": round(seconds, 1),
                                               "finished": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                                               **_runs(results, notebook)}
    m["wall_seconds_total"] = round(sum(n["wall_seconds"] for n in m["notebooks"].values()), 1)
    write_json(results / "manifest.json", m)
    runs = m["notebooks"][notebook]
    what = f"{runs['runs']} runs ({runs['cached']} cached, {runs['trained']} trained)" if "runs" in runs else "no runs"
    print(f"run_all: {notebook}: {what}, {seconds:.0f} s" + ("" if status == "ok" else f", {status}"))
    return m


def from_scratch(results: Path) -> Path:
    """``results/tables/run_all_time.{csv,md}``: what each notebook costs on a clone, from the cache and from scratch.

    Per notebook (in ``ORDER``): its runs, the runs it trains first (a run several notebooks share
    trains once, for the first), the sum of those runs' training times as each recorded it when it
    trained (``logs/<notebook>.runs.csv``; on the machine and with the side-by-side jobs of that
    stop), its wall time with every run cached (the manifest), and the projection from scratch,
    their sum. A projection, not a measurement: scoring a run adds seconds, and runs trained two at
    a time recorded their own time each. Returns the Markdown path.
    """
    import pandas as pd

    m, seen, rows = _load(results), set(), []
    names = [n for n in ORDER if n in m.get("notebooks", {})]
    for name in names:
        path = results / "logs" / f"{name}.runs.csv"
        frame = pd.read_csv(path) if path.is_file() else pd.DataFrame({"folder": [], "train_seconds": []})
        first = frame[~frame["folder"].isin(seen)].drop_duplicates("folder")
        seen.update(frame["folder"])
        cached = m["notebooks"][name]["wall_seconds"] / 60
        training = float(first["train_seconds"].sum()) / 60
        rows.append({"notebook": name, "runs": len(frame), "runs it trains first": len(first),
                     "training (min, recorded)": training, "from the cache (min)": cached,
                     "from scratch (min, projected)": training + cached})
    table = pd.DataFrame(rows)
    if len(table):
        total = {"notebook": "all", **{c: table[c].sum() for c in table.columns if c != "notebook"}}
        total["runs"] = len(seen)
        table = pd.concat([table, pd.DataFrame([total])], ignore_index=True)
    out = results / "tables" / "run_all_time"
    write_text(out.with_suffix(".csv"), table.to_csv(index=False))
    return write_text(out.with_suffix(".md"), table.to_markdown(index=False, floatfmt=".1f") + "\n")


def index(results: Path) -> Path:
    """``results/html/index.html``: what ran and the verdict on each claim of the paper first (the pages'
    ``report.first_screen`` records), then the executed notebooks in the paper's order, with the manifest's facts."""
    from .first_screen import inline_html, read

    m = _load(results)
    pages = {p.stem for p in (results / "html").glob("*.html")} - {"index"}
    names = [n for n in ORDER if n in pages] + sorted(pages - set(ORDER))
    screens = {n: read(results, n) for n in names}
    items, claims, ran = [], [], ""
    for n in names:
        facts = m.get("notebooks", {}).get(n, {})
        extra = f" ({facts['wall_seconds']:.0f} s" + (f", {facts['runs']} runs, {facts['cached']} cached" if "runs" in facts
                                                        else "") + ")" if facts else ""
        items.append(f'<li><a href="{n}.html">{html.escape(ORDER.get(n, n))}</a>{html.escape(extra)}</li>')
        screen = screens[n] or {}
        ran = ran or (screen.get("what_ran_line", "") if screen.get("what_ran", {}).get("methods") else "")
        if screen.get("counts"):
            c = screen["counts"]
            words = "".join(f"<td>{c[w]}</td>" for w in ("supported", "contradicted", "inconclusive"))
            claims.append(f'<tr><td><a href="{n}.html">{html.escape(screen.get("claim") or ORDER.get(n, n))}</a></td>'
                          f"{words}<td>{c['unconverged']}</td></tr>")
    verdicts = ("<p>No page has tested a claim yet.</p>" if not claims else
                "<table><tr><th>claim (each page opens with its verdicts and intervals)</th><th>supported</th>"
                "<th>contradicted</th><th>inconclusive</th><th>† on a run that did not converge</th></tr>\n"
                + "\n".join(claims) + "\n</table>\n<p>One verdict per dataset and comparison: <em>supported</em> "
                "when the 95 % interval of the difference lies on the paper's side of 0, <em>contradicted</em> when "
                "on the other, <em>inconclusive</em> otherwise (and always with one seed a side).</p>")
    v = m.get("versions", {})
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Hetero-AE reproduction: report</title>
<style>body{{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;line-height:1.5}}
code{{background:#f3f3f3;padding:0 .2em}} table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:.2em .5em;text-align:left}} td+td{{text-align:right}}</style></head><body>
<h1>Hetero-AE reproduction: report</h1>
<p>Lu et al., "Anomaly Detection for Medical Images Using Heterogeneous Auto-Encoder", IEEE TIP 2024.
Each page is a notebook executed by <code>./run_all.sh --profile {html.escape(str(m.get('profile', '?')))}</code>,
with the paper's numbers beside ours.</p>
<p id="what-ran">{inline_html(ran) if ran else "<strong>What ran:</strong> no page with runs has run yet."}</p>
<h2 id="verdicts">The paper's claims</h2>
{verdicts}
<h2>Pages</h2>
<ol>
{chr(10).join(items)}
</ol>
<p>Commit <code>{html.escape(str(m.get('git_commit', '?'))[:12])}</code>{' (with local changes)' if m.get('git_dirty') else ''},
device {html.escape(str(m.get('device', '?')))}, torch {html.escape(v.get('torch', '?'))},
total notebook time {m.get('wall_seconds_total', 0) / 60:.1f} min. Tables are in <code>results/tables/</code>,
figures in <code>results/figures/</code>; terms are in the <a href="../../docs/glossary.md">glossary</a>.</p>
</body></html>
"""
    return write_text(results / "html" / "index.html", page)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m hetero_ae.report.manifest", description=__doc__.splitlines()[0])
    p.add_argument("--results", type=Path, default=Path("results"))
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("order", help="print the notebooks in run order")
    s = sub.add_parser("start")
    s.add_argument("--profile", required=True)
    s.add_argument("--device", required=True)
    sub.add_parser("index")
    a = p.parse_args(argv)
    if a.cmd == "order":
        print("\n".join(notebook_order()))
    elif a.cmd == "start":
        start(a.results, a.profile, a.device)
    else:
        from_scratch(a.results)
        print(f"run_all: report index {index(a.results)}")


if __name__ == "__main__":
    sys.exit(main())
