"""Keep the README's results in step with ``results/tables/``.

A block in the README between ``<!-- results/tables/NAME.md -->`` and ``<!-- end -->`` holds
a copy of that table. ``python -m hetero_ae.report.readme`` rewrites every block from the files
(after ``./run_all.sh`` on the default profile); ``--check`` only reports blocks that differ,
which is what the test suite runs, so the README on main always shows what the committed
results hold.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from ..io import write_text

BLOCK = re.compile(r"(<!-- (results/tables/[\w.-]+\.md) -->\n)(.*?)(<!-- end -->)", re.S)


def blocks(text: str) -> list[tuple[str, str]]:
    """(table path, the README's copy) for every block."""
    return [(m.group(2), m.group(3)) for m in BLOCK.finditer(text)]


def synced(text: str, root: Path) -> str:
    """``text`` with every block replaced by its table's current contents."""
    def fill(m: re.Match[str]) -> str:
        table = root / m.group(2)
        if not table.is_file():
            raise FileNotFoundError(f"the README shows {m.group(2)}, which does not exist; run ./run_all.sh first")
        return m.group(1) + table.read_text().rstrip("\n") + "\n" + m.group(4)

    return BLOCK.sub(fill, text)


def stale(readme: Path, root: Path) -> list[str]:
    """The tables whose README copy differs from the file."""
    text = readme.read_text()
    new = dict(blocks(synced(text, root)))
    return [path for path, old in blocks(text) if new[path] != old]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m hetero_ae.report.readme", description=__doc__.splitlines()[0])
    p.add_argument("--readme", type=Path, default=Path("README.md"))
    p.add_argument("--check", action="store_true", help="report differing blocks and exit 1; write nothing")
    a = p.parse_args(argv)
    root = a.readme.resolve().parent
    if a.check:
        bad = stale(a.readme, root)
        for path in bad:
            print(f"README.md shows an old copy of {path}; run python -m hetero_ae.report.readme", file=sys.stderr)
        return 1 if bad else 0
    write_text(a.readme, synced(a.readme.read_text(), root))
    print(f"updated {len(blocks(a.readme.read_text()))} result blocks in {a.readme}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
