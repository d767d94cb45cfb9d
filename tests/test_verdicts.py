"""Verdicts on the paper's claims (hetero_ae.report.verdicts, .significance) against hand computations and
scipy/sklearn directly."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.metrics import roc_auc_score

from hetero_ae.experiment.profiles import load_profile
from hetero_ae.experiment.runs import RunResult
from hetero_ae.experiment.specs import run_spec
from hetero_ae.report import significance, verdicts
from hetero_ae.report.significance import ImageScores

HIGH, LOW = [90.0, 91.0, 92.0], [85.0, 86.5, 84.0]


def _compare(a, b, **kw) -> verdicts.Verdict:
    return verdicts.compare(a, b, claim="A beats B", section="IV-X", **kw)


def test_supported_when_the_welch_interval_lies_above_zero_and_it_is_scipys():
    v = _compare(HIGH, LOW)
    res = stats.ttest_ind(HIGH, LOW, equal_var=False)
    ci = res.confidence_interval(0.95)
    assert v.word == "supported" and v.n == (3, 3)
    assert v.difference == pytest.approx(np.mean(HIGH) - np.mean(LOW))
    assert v.interval == pytest.approx((ci.low, ci.high)) and f"p = {res.pvalue:.3g}" in v.test


def test_the_interval_matches_a_hand_computed_welch_interval():
    a, b = np.array(HIGH), np.array(LOW)
    qa, qb = a.var(ddof=1) / 3, b.var(ddof=1) / 3
    df = (qa + qb) ** 2 / (qa**2 / 2 + qb**2 / 2)
    half = stats.t.ppf(0.975, df) * math.sqrt(qa + qb)
    v = _compare(HIGH, LOW)
    assert v.interval == pytest.approx((a.mean() - b.mean() - half, a.mean() - b.mean() + half))
    assert f"df {df:.1f}" in v.test


def test_contradicted_when_the_interval_lies_below_zero():
    v = _compare(LOW, HIGH)
    assert v.word == "contradicted" and v.difference < 0 and v.interval[1] < 0


def test_inconclusive_when_the_interval_holds_zero():
    v = _compare([90.0, 95.0, 85.0], [89.0, 91.0, 88.0])
    assert v.word == "inconclusive" and v.interval[0] < 0 < v.interval[1]


def test_one_seed_is_inconclusive_and_borrows_the_other_sides_spread_for_the_detectable_difference():
    v = _compare([91.0, 92.0, 90.0], [80.0])
    assert v.word == "inconclusive" and v.interval is None and "one seed" in v.test
    s2 = np.var([91.0, 92.0, 90.0], ddof=1)
    se, df = math.sqrt(s2 / 3 + s2 / 1), 2.0  # the variance, and its df, of the three-seed side alone
    assert v.detectable == pytest.approx((stats.t.ppf(0.975, df) + stats.t.ppf(0.8, df)) * se)
    assert _compare([90.0], [89.0]).detectable is None  # no spread anywhere: nothing to say


def test_the_detectable_difference_is_the_power_formula_with_welchs_se_and_df():
    a, b = np.array(HIGH), np.array(LOW)
    qa, qb = a.var(ddof=1) / 3, b.var(ddof=1) / 3
    df = (qa + qb) ** 2 / (qa**2 / 2 + qb**2 / 2)
    want = (stats.t.ppf(0.975, df) + stats.t.ppf(0.8, df)) * math.sqrt(qa + qb)
    assert _compare(HIGH, LOW).detectable == pytest.approx(want)


def test_no_spread_in_either_group_is_inconclusive():
    v = _compare([91.0, 91.0], [90.0, 90.0])
    assert v.word == "inconclusive" and "no spread" in v.test


def test_a_verdict_on_an_unconverged_run_keeps_its_word_and_is_marked():
    v = _compare(HIGH, LOW, converged=False)
    assert v.word == "supported" and v.marked == "supported †" and str(v).startswith("[supported †]")


def test_a_verdict_is_one_of_three_words():
    with pytest.raises(AssertionError):
        verdicts.Verdict("c", "IV-C", "ours", "holds")


def test_auc_rows_is_sklearns_auc_with_ties():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 50)
    s = np.round(rng.normal(size=(4, 50)) + y, 1)  # rounded: ties
    assert significance.auc_rows(y, s) == pytest.approx([roc_auc_score(y, row) for row in s])


def _scores(scores, labels, paths=None) -> ImageScores:
    paths = paths or tuple(f"img{i:03d}.png" for i in range(len(labels)))
    return ImageScores(tuple(paths), np.asarray(labels), np.asarray(scores, float))


def test_bootstrap_is_paired_repeatable_and_centred_on_the_mean_auc_difference():
    rng = np.random.default_rng(1)
    y = np.repeat([0, 1], 60)
    a = [_scores(rng.normal(size=120) + 1.2 * y, y) for _ in range(3)]
    b = [_scores(rng.normal(size=120) + 0.6 * y, y) for _ in range(2)]
    out = significance.bootstrap_difference(a, b)
    want = 100 * (np.mean([roc_auc_score(y, r.scores) for r in a]) - np.mean([roc_auc_score(y, r.scores) for r in b]))
    assert out.estimate == pytest.approx(want) and out.low < want < out.high
    assert significance.bootstrap_difference(a, b) == out  # seeded
    same = significance.bootstrap_difference(a[:1], a[:1])
    assert (same.estimate, same.low, same.high) == (0.0, 0.0, 0.0)  # paired: the same images for both sides


def test_bootstrap_refuses_runs_scored_on_other_images():
    y = np.array([0, 1, 0, 1])
    with pytest.raises(ValueError, match="same test images"):
        significance.bootstrap_difference([_scores([0, 1, 0, 1], y)], [_scores([0, 1, 0, 1], y, ["a", "b", "c", "d"])])


def test_test_scores_line_up_runs_made_under_other_data_roots(tmp_path):
    spec = run_spec(load_profile("smoke"), "synth-oct", "ae", seed=0)
    for root, order in (("data", (0, 1)), ("elsewhere/data", (1, 0))):
        folder = tmp_path / root.replace("/", "_")
        folder.mkdir()
        rows = [f"{root}/synthetic/synth-oct/OCT2017 /test/{c}/{c}-0000{i}.png,{c},{int(c != 'NORMAL')},0.{i}"
                for i in order for c in ("NORMAL", "CNV")]
        (folder / "scores.csv").write_text("path,class,label,score\n" + "\n".join(rows) + "\n")
    a = ImageScores.of(RunResult(spec, tmp_path / "data", {}, cached=True))
    b = ImageScores.of(RunResult(spec, tmp_path / "elsewhere_data", {}, cached=True))
    assert a.paths == b.paths and a.paths[0] == "OCT2017 /test/CNV/CNV-00000.png"


def test_compare_carries_the_test_image_interval_when_given_scores():
    rng = np.random.default_rng(2)
    y = np.repeat([0, 1], 40)
    a = [_scores(rng.normal(size=80) + 2 * y, y) for _ in range(3)]
    b = [_scores(rng.normal(size=80) + 0.5 * y, y) for _ in range(3)]
    v = _compare([100 * roc_auc_score(y, r.scores) for r in a], [100 * roc_auc_score(y, r.scores) for r in b],
                 images=(a, b))
    boot = significance.bootstrap_difference(a, b)
    assert v.test_images == (boot.low, boot.high) and v.difference == pytest.approx(boot.estimate)


def test_best_in_table_compares_with_the_runner_up():
    v = verdicts.best_in_table({"hetero-ae": HIGH, "rd4ad": LOW, "ae": [60.0, 61.0]}, dataset="synth-oct")
    assert v.word == "supported" and v.detail == "runner-up RD4AD" and v.paper_section == "IV-C, Table I"
    assert v.claim == "Hetero-AE has the best AUC on synth-oct"


def test_best_in_table_is_contradicted_when_a_baseline_is_significantly_better():
    v = verdicts.best_in_table({"hetero-ae": LOW, "mkd": HIGH})
    assert v.word == "contradicted" and v.detail == "runner-up MKD"


def test_table1_verdicts_counts_each_seed_once_per_dataset_and_marks_an_unconverged_runner_up():
    rows = [{"method": m, "dataset": d, "seed": s, "threshold": t, "AUC": auc, "converged": m != "mkd" or d == "a"}
            for d in ("a", "b") for m, aucs in (("hetero-ae", HIGH), ("mkd", LOW)) for s, auc in enumerate(aucs)
            for t in ("best_f1", "normal_q95")]
    out = verdicts.table1_verdicts(pd.DataFrame(rows))
    assert [v.n for v in out] == [(3, 3), (3, 3)] and [v.marked for v in out] == ["supported", "supported †"]


def test_table1_verdict_ignores_an_unconverged_method_that_is_neither_ours_nor_the_runner_up():
    scores = {"hetero-ae": HIGH, "mkd": LOW, "f-anogan": [40.0, 41.0, 39.0]}
    frame = pd.DataFrame([{"method": m, "dataset": "synth-oct", "seed": s, "AUC": auc, "converged": m != "f-anogan"}
                          for m, aucs in scores.items() for s, auc in enumerate(aucs)])
    (v,) = verdicts.table1_verdicts(frame)
    assert v.word == "supported" and v.converged and v.detail == "runner-up MKD"


def test_a_method_beyond_the_paper_is_never_the_runner_up_of_the_papers_claim():
    scores = {"hetero-ae": HIGH, "mkd": LOW, "patchcore": [99.0, 99.5, 98.5]}  # PatchCore: not in the paper's table
    frame = pd.DataFrame([{"method": m, "dataset": "synth-oct", "seed": s, "AUC": auc}
                          for m, aucs in scores.items() for s, auc in enumerate(aucs)])
    (v,) = verdicts.table1_verdicts(frame)
    assert v.detail == "runner-up MKD" and v.word == "supported"


def test_table1_verdicts_bootstrap_the_runs_test_scores(tmp_path):
    smoke = load_profile("smoke")
    rng = np.random.default_rng(3)
    runs, rows = [], []
    for method, shift in (("hetero-ae", 2.0), ("rd4ad", 0.5)):
        for seed in (0, 1):
            folder = tmp_path / f"{method}{seed}"
            folder.mkdir()
            y = np.repeat([0, 1], 30)
            s = rng.normal(size=60) + shift * y
            lines = [f"data/synthetic/synth-oct/OCT2017 /test/x/{i:03d}.png,x,{y[i]},{s[i]:.6f}" for i in range(60)]
            (folder / "scores.csv").write_text("path,class,label,score\n" + "\n".join(lines) + "\n")
            runs.append(RunResult(run_spec(smoke, "synth-oct", method, seed), folder, {}, cached=True))
            rows.append({"method": method, "dataset": "synth-oct", "seed": seed, "AUC": 100 * roc_auc_score(y, s)})
    (v,) = verdicts.table1_verdicts(pd.DataFrame(rows), runs=runs)
    boot = significance.bootstrap_difference([ImageScores.of(r) for r in runs[:2]], [ImageScores.of(r) for r in runs[2:]])
    assert v.test_images == (boot.low, boot.high)


def test_ablation_verdicts_compare_the_rows_each_table_claims_about_and_say_when_they_are_one_run():
    rows = pd.DataFrame([{"dataset": "synth-brain-mri", "key": k, "label": label, "seed": s, "AUC": auc,
                          "converged": True}
                         for k, label, aucs in [("hctn", "ResNet / CNN+Trans (HCTN)", HIGH),
                                                ("cnn", "ResNet / CNN+CNN", LOW),
                                                ("transformer", "ResNet / Trans+Trans", HIGH)]
                         for s, auc in enumerate(aucs)])
    out = verdicts.ablation_verdicts(rows, "III")
    assert [v.word for v in out] == ["supported", "inconclusive"]
    assert "CNN+CNN" in out[0].claim and "Trans+Trans" in out[1].claim and "one configuration" in out[1].detail
    assert all(v.paper_section == verdicts.SECTIONS["table3"] for v in out)


def test_features_separate_gives_sklearns_auc_scipys_two_sided_p_and_a_bootstrap_interval():
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 40)
    d = rng.normal(size=80) + 1.5 * y
    v = verdicts.features_separate(d, y)
    p = stats.mannwhitneyu(d[y == 1], d[y == 0], alternative="two-sided").pvalue
    assert v.word == "supported" and f"AUC {roc_auc_score(y, d):.3f}" in v.ours and f"p = {p:.3g}" in v.test
    assert v.difference == pytest.approx(d[y == 1].mean() - d[y == 0].mean()) and v.interval[0] > 0
    assert verdicts.features_separate(-d, y).word == "contradicted"
    assert verdicts.features_separate(rng.normal(size=80), y).word == "inconclusive"
    assert verdicts.features_separate([1.0, 2.0], [0, 0]).word == "inconclusive"


def test_verdict_table_has_the_word_the_difference_its_interval_n_and_the_test():
    vs = [_compare(HIGH, LOW), _compare(LOW, HIGH, converged=False), _compare([90.0], [90.0])]
    t = verdicts.verdict_table(vs)
    assert t["verdict"].tolist() == ["supported", "contradicted †", "inconclusive"]
    assert t["n"].tolist() == ["3 vs 3", "3 vs 3", "1 vs 1"]
    assert t.loc[0, "difference [95% CI]"] == verdicts._interval(vs[0].difference, vs[0].interval)
    lines = verdicts.verdict_markdown(vs).splitlines()
    assert len(lines) == 2 + 3 and "converged" not in lines[0] and "difference [95% CI]" in lines[0]
