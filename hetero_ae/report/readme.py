"""Keep the README's results, and those of the pages in ``docs/``, in step with the committed result files.

The pages are ``README.md`` and every ``docs/*.md`` (``pages``), or those named by ``--readme``.
Two kinds of reference, each rewritten from its file by ``python -m hetero_ae.report.readme``
(after ``./run_all.sh`` on the default profile); ``--check`` only reports what differs, which
is what the test suite runs, so the pages on main always show what the committed results hold.
Paths in references are relative to the repository root (``--root``), whichever page holds them.

- **A table block**: the lines between ``<!-- results/tables/NAME.md -->`` and ``<!-- end -->``
  hold a copy of that table.
- **A value**: ``<!-- =SOURCE: EXPR -->80.0<!-- / -->`` shows one number of a committed file in
  running text (the comments do not render). ``SOURCE`` is a path from the repository root.
  For a CSV file, ``EXPR`` is ``COLUMN @ QUERY`` (a column name with spaces in backticks, as
  in the query): the column of the one row that the pandas
  ``QUERY`` selects (``@ QUERY`` left out: the table has one row), or ``AGG(COLUMN) @ QUERY``
  over the rows it selects, AGG one of ``AGGREGATES`` (``count(*)`` counts rows). For a JSON
  file, ``EXPR`` is a dotted path of keys and list indices (``convergence.cpu.converge.0.test_auc``).
  ``EXPR | FORMAT`` formats with that Python format spec (default ``.1f`` for a fraction,
  ``d`` for a whole number, the text itself for text).

``unreferenced`` finds the decimal numbers of a section that come from no reference, so that a
test can hold the results sections to them.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from functools import cache
from pathlib import Path
from typing import Any

import pandas as pd

from ..io import write_text

BLOCK = re.compile(r"(<!-- (results/tables/[\w.-]+\.md) -->\n)(.*?)(<!-- end -->)", re.S)
VALUE = re.compile(r"(<!-- =(?P<source>[\w./-]+): (?P<expr>.*?) -->)(?P<shown>.*?)(<!-- / -->)")
AGGREGATES = {"mean": "mean", "std": "std", "min": "min", "max": "max", "sum": "sum", "median": "median",
              "count": "count"}
CALL = re.compile(r"^(?P<agg>\w+)\((?P<column>.*)\)$")
DECIMAL = re.compile(r"(?<![\w.])[-+]?\d+\.\d+(?!\d|\.\d)")  # "1.4x" and "1.4." count, "v1.2" and "2.14.1" do not


class BadReference(ValueError):
    """A value reference that names no column, row or key of its file (the message names the reference)."""


def blocks(text: str) -> list[tuple[str, str]]:
    """(table path, the README's copy) for every block."""
    return [(m.group(2), m.group(3)) for m in BLOCK.finditer(text)]


def values(text: str) -> list[tuple[str, str]]:
    """(the reference, the value the README shows) for every value."""
    return [(m.group(1), m.group("shown")) for m in VALUE.finditer(text)]


@cache
def _csv(path: Path, mtime: float) -> pd.DataFrame:
    return pd.read_csv(path)


def _json_value(data: Any, expr: str, where: str) -> Any:
    for key in expr.split("."):
        try:
            data = data[int(key)] if isinstance(data, list) else data[key]
        except (KeyError, IndexError, ValueError, TypeError):
            raise BadReference(f"{where}: no {key!r} along {expr!r}") from None
    return data


def _csv_value(table: pd.DataFrame, expr: str, where: str) -> Any:
    column, _, query = (part.strip() for part in expr.partition(" @ "))
    call = CALL.match(column)
    agg, column = (call["agg"], call["column"]) if call else (None, column)
    column = column.strip("`")  # a column name with spaces may be quoted as in the query
    if agg is not None and agg not in AGGREGATES:
        raise BadReference(f"{where}: unknown aggregate {agg!r}; choose one of {', '.join(AGGREGATES)}")
    try:
        rows = table.query(query) if query else table
    except Exception as e:  # pandas raises many kinds for a bad query
        raise BadReference(f"{where}: the query {query!r} fails: {e}") from None
    if column == "*" and agg == "count":
        return len(rows)
    if column not in rows.columns:
        raise BadReference(f"{where}: no column {column!r}; it has {', '.join(map(str, rows.columns))}")
    if agg is not None:
        return getattr(rows[column], AGGREGATES[agg])()
    if len(rows) != 1:
        raise BadReference(f"{where}: {query or 'the table'} selects {len(rows)} rows, not one; "
                              f"name an aggregate ({', '.join(AGGREGATES)})")
    return rows[column].iloc[0]


def evaluate(source: str, expr: str, root: Path) -> str:
    """The text a value reference shows: ``EXPR`` of ``SOURCE`` (module docstring), formatted.

    Raises FileNotFoundError for a missing file, BadReference for a column, row or key that is not there.
    """
    where = f"<!-- ={source}: {expr} -->"
    expr, _, fmt = expr.partition(" | ")
    path = root / source
    if not path.is_file():
        raise FileNotFoundError(f"the page shows a value of {source}, which does not exist; run ./run_all.sh first")
    if path.suffix == ".json":
        value = _json_value(json.loads(path.read_text()), expr.strip(), where)
    else:
        value = _csv_value(_csv(path, path.stat().st_mtime), expr.strip(), where)
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, bool) or isinstance(value, str):
        return format(str(value), fmt)
    return format(value, fmt or (".1f" if isinstance(value, float) else "d"))


def synced(text: str, root: Path) -> str:
    """``text`` with every block replaced by its table's current contents and every value re-read."""
    def fill(m: re.Match[str]) -> str:
        table = root / m.group(2)
        if not table.is_file():
            raise FileNotFoundError(f"the page shows {m.group(2)}, which does not exist; run ./run_all.sh first")
        return m.group(1) + table.read_text().rstrip("\n") + "\n" + m.group(4)

    def value(m: re.Match[str]) -> str:
        return m.group(1) + evaluate(m["source"], m["expr"], root) + m.group(5)

    return VALUE.sub(value, BLOCK.sub(fill, text))


def stale(readme: Path, root: Path) -> list[str]:
    """The tables and values whose copy in the page ``readme`` differs from the files under ``root``."""
    text = readme.read_text()
    new = synced(text, root)
    fresh = dict(blocks(new))
    out = [path for path, old in blocks(text) if fresh[path] != old]
    return out + [f"{ref} shows {old!r}, the file {now!r}"
                  for (ref, old), (_, now) in zip(values(text), values(new), strict=True) if old != now]


def section(text: str, heading: str) -> str:
    """The lines under ``heading`` (a whole heading line) up to the next heading of its level or above."""
    level = len(heading) - len(heading.lstrip("#"))
    lines = text.splitlines()
    start = lines.index(heading) + 1
    end = next((i for i in range(start, len(lines)) if re.match(rf"#{{1,{level}}} ", lines[i])), len(lines))
    return "\n".join(lines[start:end])


def unreferenced(text: str) -> list[str]:
    """The decimal numbers of ``text`` outside table blocks, value references and code."""
    text = BLOCK.sub("", text)
    text = VALUE.sub("", text)
    text = re.sub(r"```.*?```", "", text, flags=re.S)
    text = re.sub(r"`[^`\n]*`", "", text)
    text = re.sub(r"\]\([^)]*\)", "]", text)  # link targets
    return [m.group(0) for m in DECIMAL.finditer(text)]


def pages(root: Path) -> list[Path]:
    """The pages kept in step under ``root``: README.md, then every docs/*.md (those that exist)."""
    return [page for page in [root / "README.md", *sorted((root / "docs").glob("*.md"))] if page.is_file()]


def page_root(page: Path) -> Path:
    """The repository root of ``page``: its folder, or the folder above for a page in ``docs/``."""
    folder = page.resolve().parent
    return folder.parent if folder.name == "docs" else folder


def _name(page: Path, root: Path) -> str:
    try:
        return str(page.resolve().relative_to(root.resolve()))
    except ValueError:
        return str(page)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m hetero_ae.report.readme", description=__doc__.splitlines()[0])
    p.add_argument("--readme", type=Path, nargs="+", metavar="PAGE",
                   help="the pages to sync or check (default: README.md and docs/*.md of the root)")
    p.add_argument("--root", type=Path, help="the repository root, which the references' paths start from "
                   "(default: the first page's folder, the one above for a page in docs/; without --readme, "
                   "the current folder)")
    p.add_argument("--check", action="store_true", help="report differing tables and values and exit 1; write nothing")
    a = p.parse_args(argv)
    root = (a.root or (page_root(a.readme[0]) if a.readme else Path.cwd())).resolve()
    todo = a.readme or pages(root)
    if not todo:
        print(f"error: no README.md or docs/*.md under {root}", file=sys.stderr)
        return 2
    try:
        return _run(todo, root, a.check)
    except (BadReference, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def _run(todo: list[Path], root: Path, check: bool) -> int:
    bad = 0
    for page in todo:
        name = _name(page, root)
        try:
            text = page.read_text()
            if check:
                found = stale(page, root)
            else:
                new = synced(text, root)
        except (BadReference, FileNotFoundError) as e:
            raise type(e)(f"{name}: {e}") from None
        if check:
            for what in found:
                print(f"{name} shows an old copy of {what}; run python -m hetero_ae.report.readme", file=sys.stderr)
            bad += len(found)
            continue
        if new != text:
            write_text(page, new)
        print(f"{name}: {len(blocks(text))} result blocks and {len(values(text))} values"
              f"{', updated' if new != text else ', already current'}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
