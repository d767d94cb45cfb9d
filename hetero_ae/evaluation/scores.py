"""``scores.csv``: the one layout of per-image scores, and the one place that writes it.

Columns: ``path`` (``data.images.path_text``: a name that is not valid UTF-8 shows its bytes as
``\\xNN``), ``class, label, score``, then one column per extra per-image value: ``feature_distance``
where the method defines one (Fig. 6), and ``decision`` (``normal`` or ``anomalous``) where the run
fixed a threshold without test labels (``evaluation.predict.Threshold``). ``class`` is the image's
sub-class (``CNV``, ``glioma``, ..., or the folder that says ``normal`` / ``anomalous``) and ``label`` is 0 (normal), 1 (anomalous)
or empty when unknown (images scored without a labelled folder). Scores are written with six
significant digits; rows end in ``\\r\\n`` (``csv.writer``'s default).

A text cell that a spreadsheet would run as a formula (one that starts with ``=``, ``+``, ``-``,
``@``, a tab or a carriage return: a file named ``=HYPERLINK(...).png``, a class ``--normal-class
'=2+3'``) is written with a single quote before it (OWASP's rule against CSV injection), as is one
that starts with a quote itself, so that ``read_scores`` and ``read_scored`` give back the original
text by dropping one leading quote.

A run's folder gets the whole file at once (``write_scores``, atomic); ``hetero-ae score``
appends batch by batch to an open ``ScoresFile``, each batch flushed to disk (fsync), so a
killed run keeps every row it wrote and at most its last line is torn (``read_scored`` cuts it).
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

from ..data.images import path_text
from ..errors import UserError
from ..io import atomic_write

SCORES = "scores.csv"
COLUMNS = ("path", "class", "label", "score")


def _label(label: object) -> str:
    return "" if label is None or label == "" or int(label) < 0 else str(int(label))


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
QUOTE = "'"


def escape_text(text: str) -> str:
    """``text`` as a cell no spreadsheet runs: a single quote before a formula's first character (or a quote)."""
    return QUOTE + text if text.startswith((*FORMULA_STARTS, QUOTE)) else text


def unescape_text(cell: str) -> str:
    """The text ``escape_text`` was given."""
    return cell[1:] if cell.startswith(QUOTE) else cell


def _cell(value: object) -> str:
    return escape_text(value) if isinstance(value, str) else f"{value:.6g}"


def score_rows(paths: Sequence[str], classes: Sequence[str], labels: Sequence[object], scores: Sequence[float],
               columns: Mapping[str, Sequence[object]] | None = None) -> list[tuple[str, ...]]:
    """The rows of ``scores.csv`` for these images (``labels``: 0, 1, or -1 / None / '' for unknown;
    ``columns``: extra per-image values, numbers or words, e.g. ``feature_distance``, ``decision``)."""
    columns = columns or {}
    return [(_cell(path_text(p)), _cell(c), _label(y), _cell(s), *(_cell(v[i]) for v in columns.values()))
            for i, (p, c, y, s) in enumerate(zip(paths, classes, labels, scores, strict=True))]


def _lines(rows: Iterable[Sequence[object]]) -> str:
    buf = io.StringIO()
    csv.writer(buf).writerows(rows)
    return buf.getvalue()


class ScoresFile:
    """A ``scores.csv`` open for appending rows, each call flushed to disk."""

    def __init__(self, path: str | Path, extra_columns: Sequence[str] = ()) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._f = open(self.path, "a", encoding="utf-8", newline="")
        if self._f.tell() == 0:  # a new file, or one killed before its header was complete
            self.append([(*COLUMNS, *extra_columns)])

    def append(self, rows: Iterable[Sequence[object]]) -> None:
        self._f.write(_lines(rows))
        self._f.flush()
        os.fsync(self._f.fileno())

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> "ScoresFile":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def write_scores(folder: str | Path, paths: Sequence[str], classes: Sequence[str], labels: Sequence[object],
                 scores: Sequence[float], columns: Mapping[str, Sequence[float]] | None = None) -> Path:
    """``folder/scores.csv`` with one row per image, written atomically."""
    rows = score_rows(paths, classes, labels, np.asarray(scores), columns)

    def write(tmp: Path) -> None:
        with ScoresFile(tmp, tuple(columns or ())) as f:  # an empty file: the header first
            f.append(rows)

    return atomic_write(Path(folder) / SCORES, write)


def read_scores(folder: str | Path) -> list[dict[str, str]]:
    """The rows of ``folder/scores.csv``, as dicts keyed by column (text as it was before ``escape_text``)."""
    with open(Path(folder) / SCORES, encoding="utf-8", newline="") as f:
        return [{k: unescape_text(v) for k, v in row.items()} for row in csv.DictReader(f)]


def read_scored(path: str | Path, extra_columns: Sequence[str] = ()) -> list[str]:
    """The paths already in a ``scores.csv`` (as they were before ``escape_text``), after cutting a torn last
    line off the file.

    Raises UserError when the file does not start with this layout's header.
    """
    path = Path(path)
    data = path.read_bytes()
    keep = data[: data.rfind(b"\r\n") + 2] if b"\r\n" in data else b""
    header = _lines([(*COLUMNS, *extra_columns)]).encode()
    if keep and not keep.startswith(header):
        raise UserError(f"{path} is not a scores file of this version of hetero-ae (header {keep[:60]!r}); "
                        "choose another output folder")
    if len(keep) != len(data):
        with open(path, "r+b") as f:  # drop the half-written row of a killed run
            f.truncate(len(keep))
            f.flush()
            os.fsync(f.fileno())
    rows = list(csv.reader(io.StringIO(keep.decode("utf-8"), newline="")))
    return [unescape_text(r[0]) for r in rows[1:]]
