"""How sure a difference between two groups of runs is: over seeds, over test images, and what could be seen.

The paper reports mean +- std over 5 seeds and one t-test (Sec. IV-C); it gives no interval.
Here, for two groups of runs A and B (per-seed AUCs in %, higher is better):

- ``welch_interval``: the difference of the means, A - B, with its 95 % confidence interval and
  two-sided p from Welch's t-test (``scipy.stats.ttest_ind(equal_var=False)`` and its
  ``confidence_interval``): what another set of seeds would do;
- ``detectable_difference``: the smallest true difference that this design (these n, this spread)
  would detect with 80 % power in a two-sided test at 5 %: ``(t_{1-a/2, df} + t_{power, df}) * se``,
  the usual normal-approximation formula with Student quantiles (beside a group of one seed, the
  other group's variance stands for both, with that group's n - 1 degrees of freedom);
- ``bootstrap_difference``: the test set's share of the uncertainty: test images resampled with
  replacement within each class (the same images for every run of both groups, so the
  comparison is paired), the AUC of every run computed on each resample, and the 2.5 and 97.5
  percentiles of mean AUC(A) - mean AUC(B) over 2,000 resamples (seeded, so repeatable).

The paper's t-test, of Hetero-AE against MKD on SEN (Sec. IV-C), is ``welch``: per dataset, the
seeds of each method as the samples (``welch_test``). It is Welch's (unequal variances,
``scipy.stats.ttest_ind(equal_var=False)``): the paper does not say which t-test it ran.

``auc_rows`` is the rank form of the AUC (Mann-Whitney U over n_pos n_neg, ties counted half),
vectorised over resamples; it equals ``sklearn.metrics.roc_auc_score`` (a test checks).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from ..data.datasets import DATASETS, FolderDataset
from ..evaluation.scores import read_scores
from ..experiment.runs import RunResult

LEVEL = 0.95
POWER = 0.8
RESAMPLES = 2000


@dataclass(frozen=True)
class Interval:
    """A difference A - B (``estimate``) with its ``low``-``high`` interval; ``p`` and ``df`` for a t-test."""

    estimate: float
    low: float
    high: float
    p: float | None = None
    df: float | None = None

    def excludes_zero(self) -> int:
        """+1 when the interval lies above 0, -1 below, 0 when it holds 0."""
        return 1 if self.low > 0 else -1 if self.high < 0 else 0

    def text(self, digits: int = 1) -> str:
        return f"{self.estimate:+.{digits}f} [{self.low:+.{digits}f}, {self.high:+.{digits}f}]"


def welch_interval(a: Sequence[float], b: Sequence[float], level: float = LEVEL) -> Interval | None:
    """mean(a) - mean(b) with Welch's ``level`` interval and two-sided p; None with fewer than two
    values in a group or no spread in either."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    if len(a) < 2 or len(b) < 2 or (a.std() == 0 and b.std() == 0):
        return None
    with warnings.catch_warnings():  # seeds that agree to many digits: scipy warns, the interval says it
        warnings.filterwarnings("ignore", "Precision loss", RuntimeWarning)
        res = stats.ttest_ind(a, b, equal_var=False)
        ci = res.confidence_interval(level)
    return Interval(float(a.mean() - b.mean()), float(ci.low), float(ci.high), float(res.pvalue), float(res.df))


def welch_test(a: np.ndarray, b: np.ndarray, alternative: str = "two-sided") -> tuple[float, float] | None:
    """Welch's t-test of samples ``a`` against ``b`` (scipy): (t, p), or None when undefined (fewer
    than two values in a group, or no spread in either). ``alternative``: "two-sided", "greater" (a > b), "less"."""
    from scipy.stats import ttest_ind

    a, b = np.asarray(a, float), np.asarray(b, float)
    if len(a) < 2 or len(b) < 2 or (a.std() == 0 and b.std() == 0):
        return None
    with warnings.catch_warnings():  # seeds that agree to many digits: scipy warns, callers say so
        warnings.filterwarnings("ignore", "Precision loss", RuntimeWarning)
        out = ttest_ind(a, b, equal_var=False, alternative=alternative)
    return float(out.statistic), float(out.pvalue)


def welch(frame: pd.DataFrame, a: str, b: str, metric: str, by: str = "dataset") -> pd.DataFrame:
    """Welch's t-test (two-sided) of method ``a`` against ``b`` on ``metric`` per ``by`` group (seeds as samples)."""
    rows = []
    for key, g in frame.groupby(by, sort=False):
        x, y = g.loc[g["method"] == a, metric].to_numpy(), g.loc[g["method"] == b, metric].to_numpy()
        enough = len(x) > 1 and len(y) > 1
        test = welch_test(x, y)
        t, p = test if test else (np.nan, np.nan)
        note = ("" if test else "no spread: every seed of both gave the same value" if enough
                else "needs two or more seeds of each")
        rows.append({by: key, "metric": metric, f"{a} mean": x.mean() if len(x) else np.nan,
                     f"{b} mean": y.mean() if len(y) else np.nan, f"n {a}": len(x), f"n {b}": len(y),
                     "t": float(t), "p": float(p), "note": note})
    return pd.DataFrame(rows)


def _se_df(a: np.ndarray, b: np.ndarray) -> tuple[float, float] | None:
    """Welch's standard error of the difference and its degrees of freedom; a one-seed group takes
    the other group's variance; None when neither group has two seeds."""
    if len(a) < 2 and len(b) < 2:
        return None
    if min(len(a), len(b)) < 2:  # one variance, estimated from the other group alone
        spread = a if len(a) > 1 else b
        se = float(np.sqrt(spread.var(ddof=1) * (1 / len(a) + 1 / len(b))))
        return (se, float(len(spread) - 1)) if se > 0 else None
    qa, qb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    se = float(np.sqrt(qa + qb))
    if se == 0:
        return None
    return se, float((qa + qb) ** 2 / (qa * qa / (len(a) - 1) + qb * qb / (len(b) - 1)))


def detectable_difference(a: Sequence[float], b: Sequence[float], power: float = POWER,
                          level: float = LEVEL) -> float | None:
    """The smallest |A - B| this design detects with ``power`` (module docstring); None without a spread."""
    got = _se_df(np.asarray(a, float), np.asarray(b, float))
    if got is None:
        return None
    se, df = got
    return float((stats.t.ppf(1 - (1 - level) / 2, df) + stats.t.ppf(power, df)) * se)


@dataclass(frozen=True)
class ImageScores:
    """One run's image scores on its test set, in path order: labels (N,) 1 anomalous, scores (N,)."""

    paths: tuple[str, ...]
    labels: np.ndarray
    scores: np.ndarray

    @classmethod
    def of(cls, result: RunResult) -> "ImageScores":
        """From the run's ``scores.csv``; paths are taken from the dataset's folder on, so runs made
        under other data roots line up."""
        ds = DATASETS.get(result.spec.dataset)
        cut = f"{ds.folder}/" if isinstance(ds, FolderDataset) else None

        def key(path: str) -> str:
            return path.split(cut, 1)[-1] if cut else path

        rows = sorted(read_scores(result.folder), key=lambda r: key(r["path"]))
        return cls(tuple(key(r["path"]) for r in rows), np.array([int(r["label"]) for r in rows]),
                   np.array([float(r["score"]) for r in rows]))


def auc_rows(labels: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """AUC of each row of ``scores`` (R, N) against ``labels`` (R, N) or (N,), 1 anomalous (rank form)."""
    labels = np.broadcast_to(np.asarray(labels, bool), scores.shape)
    ranks = stats.rankdata(scores, axis=-1)
    pos = labels.sum(-1)
    neg = labels.shape[-1] - pos
    return ((ranks * labels).sum(-1) - pos * (pos + 1) / 2) / (pos * neg)


def bootstrap_difference(a: Sequence[ImageScores], b: Sequence[ImageScores], *, resamples: int = RESAMPLES,
                         seed: int = 0, level: float = LEVEL) -> Interval:
    """mean AUC(A) - mean AUC(B) in % points over the test images, with the paired, class-stratified
    bootstrap interval (module docstring). ValueError when the runs were scored on other images."""
    runs = [*a, *b]
    if not a or not b or any(r.paths != runs[0].paths for r in runs):
        raise ValueError("a paired bootstrap needs every run scored on the same test images")
    labels = runs[0].labels
    rng = np.random.default_rng(seed)
    idx = np.concatenate([rng.choice(np.flatnonzero(labels == k), size=(resamples, int((labels == k).sum())))
                          for k in (0, 1)], axis=1)  # (R, N): each class resampled within itself
    resampled = labels[idx]

    def mean_auc(group: Sequence[ImageScores]) -> tuple[float, np.ndarray]:
        whole = np.mean([auc_rows(labels, r.scores) for r in group])
        return float(whole), np.mean([auc_rows(resampled, r.scores[idx]) for r in group], axis=0)

    (wa, ra), (wb, rb) = mean_auc(a), mean_auc(b)
    diff = 100 * (ra - rb)
    tail = 100 * (1 - level) / 2
    return Interval(100 * (wa - wb), float(np.percentile(diff, tail)), float(np.percentile(diff, 100 - tail)))
