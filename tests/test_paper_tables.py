"""Table I as transcribed, checked against cells read by hand from the paper."""

from __future__ import annotations

import pytest

from hetero_ae.report.paper_tables import table1


def cell(dataset: str, metric: str, method: str):
    t = table1()
    row = t[(t.dataset == dataset) & (t.metric == metric) & (t.method == method)]
    assert len(row) == 1
    return row.iloc[0]


@pytest.mark.parametrize("dataset,metric,method,value", [
    ("brain-mri", "auc", "hetero-ae", 99.21),
    ("chest-xray", "sen", "mkd", 93.33),
    ("covid19", "auc", "rd4ad", 73.59),
    ("chest-xray", "spe", "ae", 3.86),
    ("oct", "f1", "stfpm", 95.80),
])
def test_cells_read_from_the_paper(dataset, metric, method, value):
    assert cell(dataset, metric, method).value == pytest.approx(value)


def test_hetero_ae_rows_carry_their_std_over_seeds():
    assert cell("oct", "auc", "hetero-ae")["std"] == pytest.approx(0.16)
    assert cell("chest-xray", "spe", "hetero-ae")["std"] == pytest.approx(2.00)


def test_nine_methods_four_datasets_five_metrics():
    t = table1()
    assert len(t) == 9 * 4 * 5 and t.value.between(0, 100).all()
