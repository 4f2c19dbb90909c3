"""The package's floors: imports point down only, and no module imports one that imports it back.

Read from the source with ``ast``, every ``import`` counted, those inside functions (lazy) included;
imports under ``if TYPE_CHECKING:`` are left out, since they never run.
"""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx

import ncc

PACKAGE = Path(ncc.__file__).parent

#: DESIGN.md's floors, bottom first; a module may import its own floor and those below.
FLOORS = [
    ("ncc", "ncc.errors", "ncc.paths", "ncc.fileio", "ncc.processes", "ncc.download", "ncc.datasets"),
    ("ncc.frontend",),
    ("ncc.graph",),
    ("ncc.execution",),
    ("ncc.embeddings",),
    ("ncc.models",),
    ("ncc.training",),
    ("ncc.tasks",),
    ("ncc.plots",),
    ("ncc.cli",),
]


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def floor(module: str) -> int:
    best = None
    for level, prefixes in enumerate(FLOORS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and prefix != "ncc":
                if best is None or len(prefix) > len(best[1]):
                    best = (level, prefix)
    if best is None and module == "ncc":
        return 0
    assert best is not None, f"{module} is on no floor: add it to FLOORS"
    return best[0]


def _runtime_nodes(tree: ast.AST):
    """Every node of a module except those under ``if TYPE_CHECKING:``."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            yield from (n for child in node.orelse for n in ast.walk(child))
            continue
        yield node
        yield from _runtime_nodes(node)


def imports() -> nx.DiGraph:
    """module -> the ncc modules it imports (a name imported from a package counts as its submodule where one exists)."""
    modules = {module_name(path): path for path in PACKAGE.rglob("*.py")}
    graph = nx.DiGraph()
    graph.add_nodes_from(modules)
    for module, path in modules.items():
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        for node in _runtime_nodes(ast.parse(path.read_text(), str(path))):
            targets = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
                targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
            for target in targets:
                if target.startswith("ncc") and target in modules and target != module:
                    graph.add_edge(module, target)
    return graph


def test_every_import_points_down():
    upward = [f"{a} (floor {floor(a)}) imports {b} (floor {floor(b)})" for a, b in imports().edges
              if floor(b) > floor(a)]
    assert not upward, "\n".join(upward)


def test_no_module_imports_one_that_imports_it_back():
    graph = imports()
    cycles = [sorted(c) for c in nx.strongly_connected_components(graph) if len(c) > 1]
    assert not cycles, cycles


def test_the_check_sees_lazy_and_relative_imports(tmp_path):
    """The reader counts imports inside functions, which is where upward imports used to hide."""
    graph = imports()
    assert graph.has_edge("ncc.training.trainer", "ncc.training.registry")  # imported inside train()
    assert graph.has_edge("ncc.cli", "ncc.training")  # imported inside a command


def test_graph_and_frontend_do_not_import_torch():
    for path in [*PACKAGE.joinpath("graph").rglob("*.py"), *PACKAGE.joinpath("frontend").rglob("*.py")]:
        tree = ast.parse(path.read_text())
        top_level = [node for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom))]
        names = [alias.name for node in top_level for alias in node.names] + \
            [node.module or "" for node in top_level if isinstance(node, ast.ImportFrom)]
        assert not [n for n in names if n.split(".")[0] in ("torch", "torch_geometric")], path
