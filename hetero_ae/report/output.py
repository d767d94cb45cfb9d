"""The files a notebook writes: a table as ``<name>.csv`` and ``.md``, a figure as ``<name>.png`` and ``.pdf``.

Each is written atomically (``io``), and a figure's PDF without its creation date, so that the
same figure gives the same bytes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from ..io import atomic_write, write_text


def save_table(frame: pd.DataFrame, tables: str | Path, name: str, markdown: str | None = None) -> pd.DataFrame:
    """``<tables>/<name>.csv`` and ``.md`` (``markdown`` if given, else the frame as a Markdown table)."""
    write_text(Path(tables, f"{name}.csv"), frame.to_csv(index=False))
    write_text(Path(tables, f"{name}.md"), (markdown if markdown is not None
                                            else frame.to_markdown(index=False, floatfmt=".2f")) + "\n")
    return frame


def save_figure(fig: Any, figures: str | Path, name: str) -> None:
    """``<figures>/<name>.png`` (150 dpi) and ``.pdf``, written atomically; the PDF without its creation
    date, so that the same figure gives the same bytes."""
    for ext, metadata in (("png", None), ("pdf", {"CreationDate": None})):
        atomic_write(Path(figures, f"{name}.{ext}"), lambda tmp, ext=ext, metadata=metadata: fig.savefig(
            tmp, format=ext, dpi=150, bbox_inches="tight", metadata=metadata))
