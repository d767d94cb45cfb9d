"""The package's import graph has no circle, function-local imports included (issue: one path per job)."""

from __future__ import annotations

import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "hetero_ae"


def modules() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the package (a package is its __init__)."""
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def imported(module: str, node: ast.Import | ast.ImportFrom, known: dict[str, Path]) -> set[str]:
    """The package's modules that one import statement of ``module`` loads."""
    if isinstance(node, ast.Import):
        return {a.name for a in node.names if a.name in known}
    package = module if known[module].name == "__init__.py" else module.rpartition(".")[0]
    base = package
    for _ in range(max(node.level - 1, 0)):
        base = base.rpartition(".")[0]
    target = node.module if not node.level else ".".join(filter(None, (base, node.module)))
    found = set()
    for alias in node.names:
        sub = f"{target}.{alias.name}"
        found.add(sub if sub in known else target)
    return {m for m in found if m in known and m != module}


def import_graph() -> dict[str, set[str]]:
    known = modules()
    graph: dict[str, set[str]] = {m: set() for m in known}
    for module, path in known.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                graph[module] |= imported(module, node, known)
    return graph


def test_the_import_graph_reads_relative_and_function_local_imports():
    graph = import_graph()
    assert {"hetero_ae.baselines", "hetero_ae.model", "hetero_ae.registry"} <= graph["hetero_ae.methods"]
    assert "hetero_ae.model.backbone" in graph["hetero_ae.model.hybrid_encoder"]
    assert "hetero_ae.methods" in graph["hetero_ae.distributed"]  # imported inside a function


def test_no_module_imports_itself_through_others():
    try:
        list(TopologicalSorter(import_graph()).static_order())
    except CycleError as e:
        raise AssertionError(f"import circle: {' -> '.join(e.args[1])}") from None
