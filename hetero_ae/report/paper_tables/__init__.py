"""The numbers the paper printed, transcribed once as data (DESIGN 8).

``table1.csv`` is Table I: AUC, F1, ACC, SEN and SPE (%) of the eight baselines and
Hetero-AE on the four datasets, with the standard deviation over 5 seeds the paper gives for
its own method. Tables II-IV live with their variants in ``hetero_ae.experiment.variants``.
"""

from __future__ import annotations

from importlib.resources import files

import pandas as pd


def table1() -> pd.DataFrame:
    """Long format: dataset, metric, method, value (%), std (% or NaN)."""
    with files(__name__).joinpath("table1.csv").open() as f:
        return pd.read_csv(f)
