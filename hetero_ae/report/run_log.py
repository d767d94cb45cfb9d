"""Which runs a notebook used, and whether each came from the cache: ``<results>/logs/<notebook>.runs.csv``.

Every notebook records which runs it used and whether each came from the cache
(``record_runs``), so ``run_all.sh`` can show that a second run retrains nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from ..experiment.runs import RunResult
from ..io import write_text


def record_runs(results_dir: str | Path, notebook: str, runs: Iterable[RunResult]) -> pd.DataFrame:
    """Write ``<results>/logs/<notebook>.runs.csv``: every run a notebook used, and whether it was cached."""
    rows = [{"notebook": notebook, "method": r.spec.model.method, "dataset": r.spec.dataset,
             "seed": r.spec.train.seed, "cached": r.cached and not r.retrained, "train_seconds": r.metrics.get("train_seconds"),
             "folder": str(r.folder)} for r in runs]
    path = Path(results_dir, "logs", f"{notebook}.runs.csv")
    frame = pd.DataFrame(rows, columns=["notebook", "method", "dataset", "seed", "cached", "train_seconds", "folder"])
    write_text(path, frame.to_csv(index=False))
    trained = int((~frame["cached"].astype(bool)).sum())
    print(f"{notebook}: {len(frame)} runs, {len(frame) - trained} from the cache, {trained} trained now")
    return frame
