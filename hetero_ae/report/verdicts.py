"""Does each claim of the paper hold in our runs? One verdict per claim: supported, contradicted or inconclusive.

The claims and where the paper makes them:

(i) Hetero-AE has the best AUC on every dataset (Table I, Sec. IV-C);
(ii) a heterogeneous encoder-decoder beats a homogeneous one (Table II, Sec. IV-E1);
(iii) the hybrid CNN-Transformer decoder (HCTN) beats a CNN-only and a Transformer-only
decoder (Table III, Sec. IV-E1);
(iv) comparing features beats comparing pixels (Table IV, Sec. IV-E2);
(v) normal and anomalous images' encoder-decoder feature distances separate (Fig. 5,
Sec. IV-D2; Fig. 6, Sec. IV-E1).

(i)-(iv) compare per-seed AUCs (%) of two groups, A (the paper's side) and B
(``report.significance``): the mean difference A - B with its 95 % Welch interval and two-sided
p over seeds decides the word, *supported* when the interval lies above 0 (the paper's direction,
significant at 5 %), *contradicted* when it lies below 0, *inconclusive* otherwise, which includes
a group of one seed (no seed-level interval). Beside it, where the runs' per-image scores are
given: a paired bootstrap interval over the test images (how much the test set alone moves the
difference), and the smallest difference this design could detect with 80 % power. (v) takes
per-image feature distances: the difference of the mean distances, anomalous - normal, with a
bootstrap interval (``scipy.stats.bootstrap``), the AUC of the distance
(``sklearn.metrics.roc_auc_score``) and a two-sided Mann-Whitney U test (``scipy.stats.mannwhitneyu``).

A verdict resting on a run that did not converge (``curves.convergence_row``) keeps its word and
is marked †: it is provisional, a lower bound on what that run could do.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from ..experiment.runs import RunResult
from ..methods import METHODS, in_paper
from .significance import ImageScores, bootstrap_difference, detectable_difference, welch_interval
from .formatting import METHOD_NAMES, UNCONVERGED_MARK, cell

SECTIONS = {"table1": "IV-C, Table I", "table2": "IV-E1, Table II", "table3": "IV-E1, Table III",
            "table4": "IV-E2, Table IV", "features": "IV-D2, Fig. 5; IV-E1, Fig. 6"}
WORDS = ("supported", "contradicted", "inconclusive")


@dataclass(frozen=True)
class Verdict:
    """One claim: what the paper says, where, what we measured, the word, and the numbers behind it.

    ``difference``: A - B (the paper's side first, so positive is the paper's direction), with its
    95 % ``interval``; ``n``: runs (or images) per side; ``test``: the test and its p;
    ``test_images``: the paired bootstrap interval over test images; ``detectable``: the smallest
    difference this design detects with 80 % power; ``converged``: every run behind it converged.
    """

    claim: str
    paper_section: str
    ours: str
    word: str
    detail: str = ""
    difference: float | None = None
    interval: tuple[float, float] | None = None
    n: tuple[int, int] = (0, 0)
    test: str = "-"
    test_images: tuple[float, float] | None = None
    detectable: float | None = None
    converged: bool = True

    def __post_init__(self) -> None:
        assert self.word in WORDS, f"a verdict is one of {WORDS}, not {self.word!r}"

    @property
    def marked(self) -> str:
        """The word, with † when a run behind it did not converge."""
        return self.word if self.converged else f"{self.word} {UNCONVERGED_MARK}"

    def __str__(self) -> str:
        numbers = "" if self.difference is None else f"; difference {_interval(self.difference, self.interval)}"
        return (f"[{self.marked}] {self.claim} (Sec. {self.paper_section}): {self.ours}{numbers}, n {self.n[0]} vs "
                f"{self.n[1]}; {self.test}" + (f"; {self.detail}" if self.detail else ""))


def _interval(estimate: float, interval: tuple[float, float] | None, digits: int = 1) -> str:
    if interval is None:
        return f"{estimate:+.{digits}f}"
    return f"{estimate:+.{digits}f} [{interval[0]:+.{digits}f}, {interval[1]:+.{digits}f}]"


def compare(a_scores: Sequence[float], b_scores: Sequence[float], *, claim: str, section: str,
            names: tuple[str, str] = ("A", "B"), converged: bool = True, digits: int = 1,
            images: tuple[Sequence[ImageScores], Sequence[ImageScores]] | None = None) -> Verdict:
    """Whether group A (per-seed scores, higher is better) beats group B (module docstring).

    ``images``: the runs' per-image test scores, A's and B's, for the paired bootstrap over test
    images (left out when absent, or when the runs were scored on other images).
    """
    a, b = np.asarray(a_scores, float), np.asarray(b_scores, float)
    n = (len(a), len(b))
    if not len(a) or not len(b):
        return Verdict(claim, section, "-", "inconclusive", f"no runs ({names[0]}: {n[0]}, {names[1]}: {n[1]})", n=n,
                       converged=converged)
    ours = " vs ".join(f"{nm} {cell(x.mean(), x.std(ddof=1) if len(x) > 1 else np.nan, digits)}"
                       for nm, x in zip(names, (a, b)))
    seeds = welch_interval(a, b)
    difference = float(a.mean() - b.mean())
    if seeds is None:
        word = "inconclusive"
        test = "one seed: no seed-level test" if min(n) < 2 else "no spread in either group: no test"
        interval = None
    else:
        word = {1: "supported", -1: "contradicted", 0: "inconclusive"}[seeds.excludes_zero()]
        test = f"Welch t-test over seeds, two-sided p = {seeds.p:.3g} (df {seeds.df:.1f})"
        interval = (seeds.low, seeds.high)
    test_images = None
    if images is not None and images[0] and images[1]:
        try:
            boot = bootstrap_difference(images[0], images[1])
            test_images = (boot.low, boot.high)
        except ValueError:
            test_images = None
    return Verdict(claim, section, ours, word, difference=difference, interval=interval, n=n, test=test,
                   test_images=test_images, detectable=detectable_difference(a, b), converged=converged)


def best_in_table(scores: Mapping[str, Sequence[float]], *, ours: str = "hetero-ae", dataset: str = "",
                  converged: bool | Mapping[str, bool] = True,
                  images: Mapping[str, Sequence[ImageScores]] | None = None) -> Verdict:
    """Claim (i) on one dataset: ``ours`` against the method with the next best mean AUC (the runner-up).

    ``scores`` maps a method to its per-seed AUCs (%); ``converged``, one flag for all or per
    method, marks the verdict unless ``ours`` and the runner-up converged; ``images``: per method,
    its runs' test scores (``significance.ImageScores``), for the bootstrap over test images.
    """
    others = {m: np.mean(s) for m, s in scores.items() if m != ours and len(s)}
    claim = f"{METHOD_NAMES.get(ours, ours)} has the best AUC" + (f" on {dataset}" if dataset else "")
    if not others:
        return Verdict(claim, SECTIONS["table1"], "-", "inconclusive", "no other method to compare with")
    runner_up = max(others, key=others.__getitem__)
    names = (METHOD_NAMES.get(ours, ours), METHOD_NAMES.get(runner_up, runner_up))
    ok = converged if isinstance(converged, bool) else bool(converged.get(ours, False) and
                                                             converged.get(runner_up, False))
    pair = None if images is None else (images.get(ours, ()), images.get(runner_up, ()))
    v = compare(scores.get(ours, []), scores[runner_up], claim=claim, section=SECTIONS["table1"], names=names,
                converged=ok, images=pair)
    return replace(v, detail=f"runner-up {names[1]}")


def scores_by(runs: Iterable[RunResult], key) -> dict[tuple, list[ImageScores]]:
    """The runs' test scores grouped by ``key(run)``, e.g. (method, dataset)."""
    out: dict[tuple, list[ImageScores]] = {}
    for r in runs:
        out.setdefault(key(r), []).append(ImageScores.of(r))
    return out


def table1_verdicts(frame: pd.DataFrame, *, ours: str = "hetero-ae", metric: str = "AUC",
                    runs: Iterable[RunResult] | None = None) -> list[Verdict]:
    """Claim (i) per dataset from ``report.long_table`` rows (method, dataset, seed, ``metric``).

    Only the ``best_f1`` rows are used where a ``threshold`` column repeats each run; a
    boolean ``converged`` column, if present, marks each verdict on Hetero-AE and the runner-up;
    ``runs`` (those behind the rows) give the bootstrap over test images. The claim is about the
    paper's table: a method beyond the paper (``paper_row`` None, e.g. PatchCore) is shown in the
    tables but is not a runner-up here.
    """
    if "threshold" in frame:
        frame = frame[frame["threshold"] == "best_f1"]
    frame = frame[[m == ours or in_paper(m) or m not in METHODS for m in frame["method"]]]
    images = None if runs is None else scores_by(runs, lambda r: (r.spec.dataset, r.spec.model.method))
    out = []
    for dataset, g in frame.groupby("dataset", sort=False):
        scores = {m: list(s) for m, s in g.groupby("method", sort=False)[metric]}
        ok = {m: bool(c.all()) for m, c in g.groupby("method", sort=False)["converged"]} if "converged" in g else True
        per = None if images is None else {m: images.get((dataset, m), []) for m in scores}
        out.append(best_in_table(scores, ours=ours, dataset=str(dataset), converged=ok, images=per))
    return out


def _ablation(key: str, claim: str, names: tuple[str, str], a: Sequence[float], b: Sequence[float], dataset: str,
              converged: bool, images: tuple[Sequence[ImageScores], Sequence[ImageScores]] | None) -> Verdict:
    return compare(a, b, claim=claim + (f" on {dataset}" if dataset else ""), section=SECTIONS[key], names=names,
                   converged=converged, images=images)


def heterogeneous_beats_homogeneous(hetero: Sequence[float], homo: Sequence[float], *, dataset: str = "",
                                    converged: bool = True, images=None) -> Verdict:
    """Claim (ii): per-seed AUCs (%) of a heterogeneous row against a homogeneous one of Table II."""
    return _ablation("table2", "a heterogeneous encoder-decoder beats a homogeneous one",
                     ("heterogeneous", "homogeneous"), hetero, homo, dataset, converged, images)


def hctn_beats(hctn: Sequence[float], other: Sequence[float], *, other_name: str, dataset: str = "",
               converged: bool = True, images=None) -> Verdict:
    """Claim (iii): per-seed AUCs (%) of the HCTN decoder against ``other_name`` ('CNN+CNN' or 'Trans+Trans').

    Table III's rows; call it once per single-kind decoder.
    """
    return _ablation("table3", f"the HCTN decoder beats a {other_name} decoder", ("CNN+Trans", other_name),
                     hctn, other, dataset, converged, images)


def feature_beats_pixel(feature: Sequence[float], pixel: Sequence[float], *, dataset: str = "",
                        converged: bool = True, images=None) -> Verdict:
    """Claim (iv): per-seed AUCs (%) with feature comparison against pixel comparison, Table IV."""
    return _ablation("table4", "feature comparison beats pixel comparison", ("feature", "pixel"),
                     feature, pixel, dataset, converged, images)


def features_separate(distances: Sequence[float], labels: Sequence[int], *, name: str = "",
                      converged: bool = True, alpha: float = 0.05) -> Verdict:
    """Claim (v): per-image feature distances (n,) and labels (n,; 1 anomalous) separate.

    Supported when anomalous distances are the larger (mean difference > 0, its bootstrap interval
    above 0) and a two-sided Mann-Whitney U test gives p < ``alpha``; contradicted when they are
    significantly the smaller; inconclusive otherwise. ``name`` says which network and dataset.
    """
    from scipy.stats import bootstrap, mannwhitneyu
    from sklearn.metrics import roc_auc_score

    d, y = np.asarray(distances, float), np.asarray(labels, int)
    claim = "normal and anomalous feature distances separate" + (f" ({name})" if name else "")
    normal, anomalous = d[y == 0], d[y == 1]
    n = (len(anomalous), len(normal))
    if not len(normal) or not len(anomalous):
        return Verdict(claim, SECTIONS["features"], "-", "inconclusive",
                       f"needs both kinds of image (normal {len(normal)}, anomalous {len(anomalous)})", n=n)
    auc = float(roc_auc_score(y, d))
    p = float(mannwhitneyu(anomalous, normal, alternative="two-sided").pvalue)
    ci = bootstrap((anomalous, normal), lambda x, z, axis=-1: x.mean(axis) - z.mean(axis), n_resamples=2000,
                   random_state=np.random.default_rng(0), vectorized=True).confidence_interval
    diff = float(anomalous.mean() - normal.mean())
    word = "supported" if p < alpha and ci.low > 0 else "contradicted" if p < alpha and ci.high < 0 else "inconclusive"
    ours = f"AUC {auc:.3f}; median {np.median(normal):.4g} normal vs {np.median(anomalous):.4g} anomalous"
    return Verdict(claim, SECTIONS["features"], ours, word, difference=diff, interval=(float(ci.low), float(ci.high)),
                   n=n, test=f"Mann-Whitney U, two-sided p = {p:.3g}", converged=converged,
                   detail="difference of mean distances, anomalous - normal images")


ABLATION_CLAIMS: dict[str, list[tuple[str, str]]] = {  # table -> (ours, other) variant keys compared
    "II": [("resnet-hctn", k) for k in ("resnet-resnet", "efficientnet-efficientnet", "hybrid-hybrid")],
    "III": [("hctn", "cnn"), ("hctn", "transformer")],
    "IV": [(f"{k}-feature", f"{k}-pixel") for k in ("ed-resnet", "ed-transformer", "hetero-ae")],
}


def ablation_verdicts(rows: pd.DataFrame, table: str, *, metric: str = "AUC",
                      images: Mapping[tuple[str, str], Sequence[ImageScores]] | None = None) -> list[Verdict]:
    """Claims (ii)-(iv) per dataset from per-seed ablation rows (dataset, key, label, seed, ``metric``, converged).

    Table II: the paper's HCTN pair against each homogeneous pair; Table III: HCTN against the
    CNN-only and the Transformer-only decoder; Table IV: each model with feature comparison
    against itself with pixel comparison. Rows that are one configuration on this machine
    (e.g. ResNet rows run on EfficientNet-Lite0) compare equal runs: the verdict then says so.
    ``images``: per (dataset, variant key), the runs' test scores, for the bootstrap over test images.
    """
    out = []
    for dataset, g in rows.groupby("dataset", sort=False):
        per = {k: (list(x[metric]), bool(x["converged"].all()) if "converged" in x else True, x["label"].iloc[0])
               for k, x in g.groupby("key", sort=False)}
        for a, b in ABLATION_CLAIMS[table]:
            if a not in per or b not in per:
                continue
            (sa, ca, la), (sb, cb, lb) = per[a], per[b]
            kw = {"dataset": str(dataset), "converged": ca and cb,
                  "images": None if images is None else (images.get((dataset, a), ()), images.get((dataset, b), ()))}
            if table == "II":
                v = heterogeneous_beats_homogeneous(sa, sb, **kw)
            elif table == "III":
                v = hctn_beats(sa, sb, other_name=lb.split("/")[-1].strip(), **kw)
            else:
                v = feature_beats_pixel(sa, sb, **kw)
            same = "; the two rows are one configuration here" if sa == sb else ""
            out.append(replace(v, claim=f"{v.claim}: {la} vs {lb}", detail=v.detail + same))
    return out


def verdict_table(verdicts: Iterable[Verdict]) -> pd.DataFrame:
    """One row per verdict: the claim, where the paper makes it, ours, the word (marked † where a run
    behind it did not converge), the difference with its 95 % interval, n, the test, the test-image
    interval, the smallest detectable difference, and a detail."""
    rows = []
    for v in verdicts:
        rows.append({"claim": v.claim, "section": v.paper_section, "ours": v.ours, "verdict": v.marked,
                     "difference [95% CI]": "-" if v.difference is None else _interval(v.difference, v.interval),
                     "n": f"{v.n[0]} vs {v.n[1]}", "test": v.test,
                     "test images [95% CI]": "-" if v.test_images is None else
                     f"[{v.test_images[0]:+.1f}, {v.test_images[1]:+.1f}]",
                     "detectable (80% power)": "-" if v.detectable is None else f"{v.detectable:.1f}",
                     "converged": v.converged, "detail": v.detail})
    return pd.DataFrame(rows)


def verdict_markdown(verdicts: Iterable[Verdict]) -> str:
    """``verdict_table`` as a Markdown table (tabulate, through pandas), without the converged column
    (the † on the word says it)."""
    return verdict_table(verdicts).drop(columns="converged").to_markdown(index=False, disable_numparse=True)
