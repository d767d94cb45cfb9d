"""The package's import graph: no circle, and no import from a layer above (function-local imports included).

The layers, lowest first, are the package's folders in the order data flows through them
(docs/layout.md): the foundations (``config``, ``errors``, ``io``), ``data``, ``model``,
``methods``, ``training``, ``evaluation``, ``experiment``, ``report``, then the interface (the
command line, and the package's own ``__init__``, whose public names are imported lazily).
"""

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


LAYERS = ("foundation", "data", "model", "methods", "training", "evaluation", "experiment", "report", "interface")
FOUNDATION = {"hetero_ae.config", "hetero_ae.errors", "hetero_ae.io"}
INTERFACE = {"hetero_ae", "hetero_ae.__main__", "hetero_ae.cli"}


def layer(module: str) -> int:
    """The layer of a module: its folder's place in ``LAYERS``."""
    if module in FOUNDATION:
        return LAYERS.index("foundation")
    if module in INTERFACE:
        return LAYERS.index("interface")
    folder = module.split(".")[1]
    assert folder in LAYERS, f"{module}: a module outside the layers' folders"
    return LAYERS.index(folder)


def test_the_import_graph_reads_relative_and_function_local_imports():
    graph = import_graph()
    assert "hetero_ae.methods.registry" in graph["hetero_ae.methods"]  # its modules it imports by discovery
    assert "hetero_ae.methods.registry" in graph["hetero_ae.methods.hetero_ae"]
    assert "hetero_ae.model.backbone" in graph["hetero_ae.model.hybrid_encoder"]
    assert "hetero_ae.methods" in graph["hetero_ae.training.distributed"]  # imported inside a function


def test_every_module_sits_in_a_layer_folder():
    for module in modules():
        layer(module)


def test_no_module_imports_from_a_layer_above_its_own():
    upward = sorted(f"{m} ({LAYERS[layer(m)]}) imports {d} ({LAYERS[layer(d)]})"
                    for m, deps in import_graph().items() for d in deps if layer(d) > layer(m))
    assert not upward, "imports that run up a layer:\n" + "\n".join(upward)


def test_the_registry_imports_no_implementation():
    assert not {d for d in import_graph()["hetero_ae.methods.registry"] if d.startswith("hetero_ae.methods.")}


def test_no_module_imports_itself_through_others():
    try:
        list(TopologicalSorter(import_graph()).static_order())
    except CycleError as e:
        raise AssertionError(f"import circle: {' -> '.join(e.args[1])}") from None


def file_names(module: str) -> set[str]:
    """The file names a module spells out as whole string constants (messages and docstrings aside)."""
    names = {"scores.csv", "config.json", "history.json", "metrics.json", "checkpoint.pt"}
    return {node.value for node in ast.walk(ast.parse(modules()[module].read_text()))
            if isinstance(node, ast.Constant) and node.value in names}


def test_one_module_names_each_file_of_a_run_so_one_place_writes_it():
    owners = {"scores.csv": "hetero_ae.evaluation.scores", "config.json": "hetero_ae.training.run_folder",
              "history.json": "hetero_ae.training.run_folder"}
    for name, owner in owners.items():
        spelled = sorted(m for m in modules() if name in file_names(m))
        assert spelled == [owner], f"{name} is named by {spelled}, not by {owner} alone"
