"""Does each claim of the paper hold in our runs? One printed verdict per claim, from per-seed results.

The claims and where the paper makes them:

(i) Hetero-AE has the best AUC on every dataset (Table I, Sec. IV-C);
(ii) a heterogeneous encoder-decoder beats a homogeneous one (Table II, Sec. IV-E1);
(iii) the hybrid CNN-Transformer decoder (HCTN) beats a CNN-only and a Transformer-only
decoder (Table III, Sec. IV-E1);
(iv) comparing features beats comparing pixels (Table IV, Sec. IV-E2);
(v) normal and anomalous images' encoder-decoder feature distances separate (Fig. 5,
Sec. IV-D2; Fig. 6, Sec. IV-E1).

(i)-(iv) compare per-seed scores (AUC in %) of two groups: the claim holds when the first
group's mean is better and, where both groups have two or more seeds and some spread, a
one-sided Welch t-test (``scipy.stats.ttest_ind(equal_var=False)``) gives p < alpha. With one
seed in a group there is no test and the verdict is undecidable (the detail says which mean is
higher: seeds alone move an AUC by several points here); with no spread the means decide. (v) takes per-image feature
distances: the AUC of the distance (``sklearn.metrics.roc_auc_score``) and a one-sided
Mann-Whitney U test (``scipy.stats.mannwhitneyu``) that anomalous distances are larger.
A verdict is undecidable (``holds`` None) without runs, with equal means and no test, or
when a run behind it did not converge (``curves.convergence_row``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from .tables import METHOD_NAMES, cell, welch_test

SECTIONS = {"table1": "IV-C, Table I", "table2": "IV-E1, Table II", "table3": "IV-E1, Table III",
            "table4": "IV-E2, Table IV", "features": "IV-D2, Fig. 5; IV-E1, Fig. 6"}
VERDICT_WORDS = {True: "holds", False: "does not hold", None: "undecidable"}


@dataclass(frozen=True)
class Verdict:
    """One claim: what the paper says, where, what we measured, whether it holds (None: undecidable), why."""

    claim: str
    paper_section: str
    ours: str
    holds: bool | None
    detail: str

    def __str__(self) -> str:
        return f"[{VERDICT_WORDS[self.holds]}] {self.claim} (Sec. {self.paper_section}): {self.ours}; {self.detail}"


def compare(a_scores: Sequence[float], b_scores: Sequence[float], *, claim: str, section: str,
            higher_is_better: bool = True, alpha: float = 0.05, names: tuple[str, str] = ("A", "B"),
            converged: bool = True, digits: int = 1) -> Verdict:
    """Whether group A (per-seed scores) beats group B: better mean and, when testable, one-sided Welch p < alpha.

    ``converged`` False (a run behind either group did not converge) makes it undecidable.
    ``names`` name the groups in ``ours`` and ``detail``; ``digits`` the decimals printed.
    """
    a, b = np.asarray(a_scores, float), np.asarray(b_scores, float)
    if not len(a) or not len(b):
        return Verdict(claim, section, "-", None, f"no runs ({names[0]}: {len(a)}, {names[1]}: {len(b)})")
    ours = " vs ".join(f"{n} {cell(x.mean(), x.std(ddof=1) if len(x) > 1 else np.nan, digits)}"
                       for n, x in zip(names, (a, b)))
    means = f"means {a.mean():.{digits + 2}f} (n={len(a)}) vs {b.mean():.{digits + 2}f} (n={len(b)})"
    better = a.mean() > b.mean() if higher_is_better else a.mean() < b.mean()
    test = welch_test(a, b, "greater" if higher_is_better else "less")
    p = test[1] if test else None
    if p is None and min(len(a), len(b)) < 2:  # a seed's spread (Table I: up to 6 points) would decide
        favoured = "equal" if a.mean() == b.mean() else f"the means favour {names[0] if better else names[1]}"
        holds: bool | None = None
        detail = f"{means}; one seed: no test, undecidable ({favoured})"
    elif p is None:
        holds = None if a.mean() == b.mean() else bool(better)
        detail = f"{means}; no spread: no test"
    else:
        holds = bool(better and p < alpha)
        detail = f"{means}; one-sided Welch t-test p = {p:.3g} (alpha {alpha:g})"
    if not converged:
        return Verdict(claim, section, ours, None, f"{detail}; undecidable: not every run converged")
    return Verdict(claim, section, ours, holds, detail)


def best_in_table(scores: Mapping[str, Sequence[float]], *, ours: str = "hetero-ae", dataset: str = "",
                  alpha: float = 0.05, converged: bool | Mapping[str, bool] = True) -> Verdict:
    """Claim (i) on one dataset: ``ours`` above every other method's mean AUC, tested against the runner-up.

    ``scores`` maps a method to its per-seed AUCs (%); ``converged``, one flag for all, or per
    method: the verdict needs ``ours`` and the runner-up converged (a method that did not is
    still listed, and may still be the runner-up).
    """
    others = {m: np.mean(s) for m, s in scores.items() if m != ours and len(s)}
    claim = f"{METHOD_NAMES.get(ours, ours)} has the best AUC" + (f" on {dataset}" if dataset else "")
    if not others:
        return Verdict(claim, SECTIONS["table1"], "-", None, "no other method to compare with")
    runner_up = max(others, key=others.__getitem__)
    names = (METHOD_NAMES.get(ours, ours), METHOD_NAMES.get(runner_up, runner_up))
    ok = converged if isinstance(converged, bool) else bool(converged.get(ours, False) and
                                                             converged.get(runner_up, False))
    v = compare(scores.get(ours, []), scores[runner_up], claim=claim, section=SECTIONS["table1"], alpha=alpha,
                names=names, converged=ok)
    return replace(v, detail=f"runner-up {names[1]}; {v.detail}")


def table1_verdicts(frame: pd.DataFrame, *, ours: str = "hetero-ae", metric: str = "AUC",
                    alpha: float = 0.05) -> list[Verdict]:
    """Claim (i) per dataset from ``report.long_table`` rows (method, dataset, seed, ``metric``).

    Only the ``best_f1`` rows are used where a ``threshold`` column repeats each run; a
    boolean ``converged`` column, if present, gates each verdict on Hetero-AE and the runner-up.
    """
    if "threshold" in frame:
        frame = frame[frame["threshold"] == "best_f1"]
    out = []
    for dataset, g in frame.groupby("dataset", sort=False):
        scores = {m: list(s) for m, s in g.groupby("method", sort=False)[metric]}
        ok = {m: bool(c.all()) for m, c in g.groupby("method", sort=False)["converged"]} if "converged" in g else True
        out.append(best_in_table(scores, ours=ours, dataset=str(dataset), alpha=alpha, converged=ok))
    return out


def _ablation(key: str, claim: str, names: tuple[str, str], a: Sequence[float], b: Sequence[float], dataset: str,
              alpha: float, converged: bool) -> Verdict:
    return compare(a, b, claim=claim + (f" on {dataset}" if dataset else ""), section=SECTIONS[key], alpha=alpha,
                   names=names, converged=converged)


def heterogeneous_beats_homogeneous(hetero: Sequence[float], homo: Sequence[float], *, dataset: str = "",
                                    alpha: float = 0.05, converged: bool = True) -> Verdict:
    """Claim (ii): per-seed AUCs (%) of a heterogeneous row against a homogeneous one of Table II."""
    return _ablation("table2", "a heterogeneous encoder-decoder beats a homogeneous one",
                     ("heterogeneous", "homogeneous"), hetero, homo, dataset, alpha, converged)


def hctn_beats(hctn: Sequence[float], other: Sequence[float], *, other_name: str, dataset: str = "",
               alpha: float = 0.05, converged: bool = True) -> Verdict:
    """Claim (iii): per-seed AUCs (%) of the HCTN decoder against ``other_name`` ('CNN+CNN' or 'Trans+Trans').

    Table III's rows; call it once per single-kind decoder.
    """
    return _ablation("table3", f"the HCTN decoder beats a {other_name} decoder", ("CNN+Trans", other_name),
                     hctn, other, dataset, alpha, converged)


def feature_beats_pixel(feature: Sequence[float], pixel: Sequence[float], *, dataset: str = "",
                        alpha: float = 0.05, converged: bool = True) -> Verdict:
    """Claim (iv): per-seed AUCs (%) with feature comparison against pixel comparison, Table IV."""
    return _ablation("table4", "feature comparison beats pixel comparison", ("feature", "pixel"),
                     feature, pixel, dataset, alpha, converged)


def features_separate(distances: Sequence[float], labels: Sequence[int], *, name: str = "",
                      alpha: float = 0.05, converged: bool = True) -> Verdict:
    """Claim (v): per-image feature distances (n,) and labels (n,; 1 anomalous) separate.

    Holds when the distance's AUC > 0.5 and a one-sided Mann-Whitney U test (anomalous >
    normal) gives p < alpha; ``name`` says which network and dataset.
    """
    from scipy.stats import mannwhitneyu
    from sklearn.metrics import roc_auc_score

    d, y = np.asarray(distances, float), np.asarray(labels, int)
    claim = "normal and anomalous feature distances separate" + (f" ({name})" if name else "")
    normal, anomalous = d[y == 0], d[y == 1]
    if not len(normal) or not len(anomalous):
        return Verdict(claim, SECTIONS["features"], "-", None,
                       f"needs both kinds of image (normal {len(normal)}, anomalous {len(anomalous)})")
    auc = float(roc_auc_score(y, d))
    p = float(mannwhitneyu(anomalous, normal, alternative="greater").pvalue)
    ours = f"AUC {auc:.3f}; median {np.median(normal):.4g} normal vs {np.median(anomalous):.4g} anomalous"
    detail = (f"n normal {len(normal)}, anomalous {len(anomalous)}; "
              f"one-sided Mann-Whitney U p = {p:.3g} (alpha {alpha:g})")
    if not converged:
        return Verdict(claim, SECTIONS["features"], ours, None, f"{detail}; undecidable: not every run converged")
    return Verdict(claim, SECTIONS["features"], ours, auc > 0.5 and p < alpha, detail)


ABLATION_CLAIMS: dict[str, list[tuple[str, str]]] = {  # table -> (ours, other) variant keys compared
    "II": [("resnet-hctn", k) for k in ("resnet-resnet", "efficientnet-efficientnet", "hybrid-hybrid")],
    "III": [("hctn", "cnn"), ("hctn", "transformer")],
    "IV": [(f"{k}-feature", f"{k}-pixel") for k in ("ed-resnet", "ed-transformer", "hetero-ae")],
}


def ablation_verdicts(rows: pd.DataFrame, table: str, *, metric: str = "AUC", alpha: float = 0.05) -> list[Verdict]:
    """Claims (ii)-(iv) per dataset from per-seed ablation rows (dataset, key, label, seed, ``metric``, converged).

    Table II: the paper's HCTN pair against each homogeneous pair; Table III: HCTN against the
    CNN-only and the Transformer-only decoder; Table IV: each model with feature comparison
    against itself with pixel comparison. Rows that are one configuration on this machine
    (e.g. ResNet rows run on EfficientNet-Lite0) compare equal runs: the verdict then says so.
    """
    out = []
    for dataset, g in rows.groupby("dataset", sort=False):
        per = {k: (list(x[metric]), bool(x["converged"].all()) if "converged" in x else True, x["label"].iloc[0])
               for k, x in g.groupby("key", sort=False)}
        for a, b in ABLATION_CLAIMS[table]:
            if a not in per or b not in per:
                continue
            (sa, ca, la), (sb, cb, lb) = per[a], per[b]
            ok = ca and cb
            if table == "II":
                v = heterogeneous_beats_homogeneous(sa, sb, dataset=str(dataset), alpha=alpha, converged=ok)
            elif table == "III":
                v = hctn_beats(sa, sb, other_name=lb.split("/")[-1].strip(), dataset=str(dataset), alpha=alpha,
                               converged=ok)
            else:
                v = feature_beats_pixel(sa, sb, dataset=str(dataset), alpha=alpha, converged=ok)
            out.append(replace(v, claim=f"{v.claim}: {la} vs {lb}"))
    return out


def verdict_table(verdicts: Iterable[Verdict]) -> pd.DataFrame:
    """One row per verdict: claim, section, ours, verdict ('holds', 'does not hold', 'undecidable'), detail."""
    return pd.DataFrame([{"claim": v.claim, "section": v.paper_section, "ours": v.ours,
                          "verdict": VERDICT_WORDS[v.holds], "detail": v.detail} for v in verdicts])


def verdict_markdown(verdicts: Iterable[Verdict]) -> str:
    """``verdict_table`` as a Markdown table (tabulate, through pandas)."""
    return verdict_table(verdicts).to_markdown(index=False)
