"""Verdicts on the paper's claims (hetero_ae.report.verdicts) against hand computations and scipy/sklearn directly."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.metrics import roc_auc_score

from hetero_ae.report import verdicts

HIGH, LOW = [90.0, 91.0, 92.0], [85.0, 86.5, 84.0]


def _compare(a, b, **kw) -> verdicts.Verdict:
    return verdicts.compare(a, b, claim="A beats B", section="IV-X", **kw)


def test_compare_holds_when_better_and_significant_and_p_is_welchs_one_sided():
    v = _compare(HIGH, LOW)
    p = stats.ttest_ind(HIGH, LOW, equal_var=False, alternative="greater").pvalue
    assert v.holds is True and f"p = {p:.3g}" in v.detail and "n=3" in v.detail


def test_compare_p_matches_a_hand_computed_welch_test():
    a, b = np.array(HIGH), np.array(LOW)
    va, vb = a.var(ddof=1) / 3, b.var(ddof=1) / 3
    t = (a.mean() - b.mean()) / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / 2 + vb**2 / 2)  # Welch-Satterthwaite
    assert f"p = {stats.t.sf(t, df):.3g}" in _compare(HIGH, LOW).detail


def test_compare_fails_when_the_better_mean_is_not_significant():
    a, b = [95.0, 80.0, 90.0], [88.0, 87.0, 86.0]  # mean 88.3 > 87.0 but wide spread
    v = _compare(a, b)
    assert stats.ttest_ind(a, b, equal_var=False, alternative="greater").pvalue > 0.05
    assert v.holds is False


def test_compare_fails_when_the_mean_is_worse():
    assert _compare(LOW, HIGH).holds is False


def test_compare_with_one_seed_is_undecidable_and_says_which_mean_is_higher():
    up, down = _compare([91.0], [90.0]), _compare([90.0], [91.0])
    assert up.holds is None and down.holds is None
    assert "one seed: no test" in up.detail and "p =" not in up.detail
    assert "favour A" in up.detail and "favour B" in down.detail
    assert _compare([91.0, 92.0], [90.0]).holds is None  # one group with one seed is enough


def test_compare_with_no_spread_decides_on_the_means():
    assert _compare([91.0, 91.0], [90.0, 90.0]).holds is True


def test_compare_with_one_seed_each_and_equal_means_is_undecidable():
    assert _compare([90.0], [90.0]).holds is None


def test_compare_lower_is_better_tests_the_other_tail():
    v = _compare(LOW, HIGH, higher_is_better=False)
    p = stats.ttest_ind(LOW, HIGH, equal_var=False, alternative="less").pvalue
    assert v.holds is True and f"p = {p:.3g}" in v.detail


def test_compare_is_undecidable_when_a_run_did_not_converge():
    v = _compare(HIGH, LOW, converged=False)
    assert v.holds is None and "not every run converged" in v.detail


def test_compare_ours_gives_mean_and_std_per_group():
    v = _compare(HIGH, [80.0], names=("Hetero-AE", "MKD"))
    assert v.ours == "Hetero-AE 91.0 ± 1.0 vs MKD 80.0"


def test_best_in_table_tests_against_the_runner_up():
    scores = {"hetero-ae": HIGH, "rd4ad": LOW, "ae": [60.0, 61.0]}
    v = verdicts.best_in_table(scores, dataset="synth-oct")
    assert v.holds is True and "runner-up RD4AD" in v.detail and v.paper_section == "IV-C, Table I"


def test_best_in_table_fails_when_a_baseline_has_a_higher_mean():
    v = verdicts.best_in_table({"hetero-ae": LOW, "mkd": HIGH, "ae": [60.0, 61.0]})
    assert v.holds is False and "runner-up MKD" in v.detail


def test_table1_verdicts_counts_each_seed_once_per_dataset():
    rows = [{"method": m, "dataset": d, "seed": s, "threshold": t, "AUC": auc}
            for d in ("synth-oct", "synth-covid19") for m, aucs in {"hetero-ae": HIGH, "mkd": LOW}.items()
            for s, auc in enumerate(aucs) for t in ("best_f1", "normal_q95")]
    out = verdicts.table1_verdicts(pd.DataFrame(rows))
    assert [v.claim for v in out] == ["Hetero-AE has the best AUC on synth-oct",
                                      "Hetero-AE has the best AUC on synth-covid19"]
    assert all("(n=3) vs" in v.detail and v.holds for v in out)


def test_table1_verdicts_is_undecidable_where_a_run_did_not_converge():
    frame = pd.DataFrame([{"method": m, "dataset": "synth-oct", "seed": s, "AUC": auc, "converged": m == "mkd"}
                          for m, aucs in {"hetero-ae": HIGH, "mkd": LOW}.items() for s, auc in enumerate(aucs)])
    assert verdicts.table1_verdicts(frame)[0].holds is None


def test_ablation_helpers_name_their_table_and_section():
    assert verdicts.heterogeneous_beats_homogeneous(HIGH, LOW).paper_section == "IV-E1, Table II"
    assert verdicts.hctn_beats(HIGH, LOW, other_name="CNN+CNN").paper_section == "IV-E1, Table III"
    assert verdicts.feature_beats_pixel(HIGH, LOW, dataset="synth-oct").paper_section == "IV-E2, Table IV"


def test_feature_beats_pixel_fails_when_pixel_comparison_is_better():
    v = verdicts.feature_beats_pixel(LOW, HIGH, dataset="synth-oct")
    assert v.holds is False and v.claim == "feature comparison beats pixel comparison on synth-oct"


def _distances(shift: float) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    d = np.concatenate([rng.normal(1.0, 0.2, 30), rng.normal(1.0 + shift, 0.2, 20)])
    return d, np.array([0] * 30 + [1] * 20)


def test_features_separate_gives_sklearns_auc_and_scipys_mann_whitney_p():
    d, y = _distances(0.5)
    v = verdicts.features_separate(d, y, name="HCTN, synth-oct")
    p = stats.mannwhitneyu(d[y == 1], d[y == 0], alternative="greater").pvalue
    assert v.holds is True and f"AUC {roc_auc_score(y, d):.3f}" in v.ours and f"p = {p:.3g}" in v.detail


def test_features_separate_fails_when_anomalous_distances_are_smaller():
    d, y = _distances(-0.5)
    assert verdicts.features_separate(d, y).holds is False


def test_features_separate_needs_both_kinds_of_image():
    assert verdicts.features_separate([1.0, 2.0], [0, 0]).holds is None


def test_verdict_table_and_markdown_say_holds_fails_or_undecidable():
    vs = [_compare(HIGH, LOW), _compare(LOW, HIGH), _compare([90.0], [90.0])]
    assert verdicts.verdict_table(vs)["verdict"].tolist() == ["holds", "does not hold", "undecidable"]
    lines = verdicts.verdict_markdown(vs).splitlines()
    assert [c.strip() for c in lines[0].strip("|").split("|")] == ["claim", "section", "ours", "verdict", "detail"]
    assert len(lines) == 2 + 3 and "undecidable" in lines[-1]


@pytest.mark.parametrize("holds, word", [(True, "holds"), (False, "does not hold"), (None, "undecidable")])
def test_verdict_prints_its_outcome_first(holds, word):
    v = verdicts.Verdict("c", "IV-C, Table I", "ours", holds, "detail")
    assert str(v) == f"[{word}] c (Sec. IV-C, Table I): ours; detail"


def test_table1_verdict_ignores_an_unconverged_method_that_is_neither_ours_nor_the_runner_up():
    scores = {"hetero-ae": HIGH, "mkd": LOW, "f-anogan": [40.0, 41.0, 39.0]}
    frame = pd.DataFrame([{"method": m, "dataset": "synth-oct", "seed": s, "AUC": auc, "converged": m != "f-anogan"}
                          for m, aucs in scores.items() for s, auc in enumerate(aucs)])
    (v,) = verdicts.table1_verdicts(frame)
    assert v.holds is True and "runner-up MKD" in v.detail


def test_ablation_verdicts_compare_the_rows_each_table_claims_about():
    rows = pd.DataFrame([{"dataset": "synth-brain-mri", "key": k, "label": label, "seed": s, "AUC": auc,
                          "converged": True}
                         for k, label, aucs in [("hctn", "ResNet / CNN+Trans (HCTN)", HIGH),
                                                ("cnn", "ResNet / CNN+CNN", LOW),
                                                ("transformer", "ResNet / Trans+Trans", [95.0, 96.0, 97.0])]
                         for s, auc in enumerate(aucs)])
    out = verdicts.ablation_verdicts(rows, "III")
    assert [v.holds for v in out] == [True, False]
    assert "CNN+CNN" in out[0].claim and "Trans+Trans" in out[1].claim
    assert all(v.paper_section == verdicts.SECTIONS["table3"] for v in out)
