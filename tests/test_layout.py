"""The package layout: no import cycle between edgernn's modules or packages, no module over 600
lines, and the table of who may import whom in ``docs/ARCHITECTURE.md`` matching the code.

Imports are read with ``ast`` from every ``edgernn/**/*.py``: every ``import`` and ``from``
statement anywhere in a file, those inside functions (lazy imports) included. Nothing is run.
A *unit* is what the table documents: a package (``backends.tflm``, its modules together), or a
module directly in ``edgernn/`` (``ir``, ``convert``); ``edgernn`` is the package's
``__init__``, the Python API.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PKG = ROOT / "edgernn"
ARCHITECTURE = ROOT / "docs" / "ARCHITECTURE.md"
MAX_LINES = 600


def _modules() -> dict[str, Path]:
    """Dotted module name -> file (a package is its ``__init__.py``)."""
    mods = {}
    for path in sorted(PKG.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        mods[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return mods


def _imports(mods: dict[str, Path]) -> dict[str, set[str]]:
    """Module -> the edgernn modules it imports (``from pkg import mod`` counts as ``pkg.mod``)."""
    edges: dict[str, set[str]] = {m: set() for m in mods}
    for m, path in mods.items():
        package = m if path.name == "__init__.py" else m.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(parts + ([base] if base else []))
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            for t in targets:
                while t and t not in mods:
                    t = t.rpartition(".")[0]
                if t:
                    edges[m].add(t)
    return edges


def _unit(module: str, mods: dict[str, Path]) -> str:
    """``edgernn.backends.tflm.graph`` -> ``backends.tflm``; ``edgernn.ir`` -> ``ir``; ``edgernn``."""
    path = mods[module]
    if path.parent == PKG:
        return "edgernn" if path.name == "__init__.py" else path.stem
    return ".".join(path.parent.relative_to(PKG).parts)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node, or a node importing itself (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1 or v in graph.get(v, ()):
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _unit_graph() -> dict[str, set[str]]:
    mods = _modules()
    graph: dict[str, set[str]] = {}
    for m, targets in _imports(mods).items():
        u = _unit(m, mods)
        graph.setdefault(u, set()).update(_unit(t, mods) for t in targets if _unit(t, mods) != u)
    return graph


def _documented() -> dict[str, set[str]]:
    """The ``| units | holds | may import |`` rows of the layout table in docs/ARCHITECTURE.md."""
    table = ARCHITECTURE.read_text().split("## Layout", 1)[1]
    rows = {}
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 3 or not cells[0].startswith("`"):
            continue
        may = set(re.findall(r"`([\w.]+)`", cells[2]))
        for unit in re.findall(r"`([\w.]+)`", cells[0]):
            assert unit not in rows, f"docs/ARCHITECTURE.md: `{unit}` has two rows"
            rows[unit] = may
    return rows


def test_the_import_walk_sees_lazy_imports():
    mods = _modules()
    edges = _imports(mods)
    # edgernn/cli.py imports every command's stage inside the command function
    assert {"edgernn.train", "edgernn.qat", "edgernn.deploy"} <= edges["edgernn.cli"]
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"a"}}) == [["a"]]


def test_no_module_imports_itself_through_others():
    cycles = _cycles(_imports(_modules()))
    assert not cycles, "import cycles between modules: " + "; ".join(" <-> ".join(c) for c in cycles)


def test_no_two_packages_import_each_other():
    cycles = _cycles(_unit_graph())
    assert not cycles, "import cycles between packages: " + "; ".join(" <-> ".join(c) for c in cycles)


def test_no_module_is_over_600_lines():
    long = {str(p.relative_to(ROOT)): n for p in _modules().values()
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines: {long}"


def test_the_documented_layout_matches_the_code():
    """Every package has a row in docs/ARCHITECTURE.md, and imports only what its row allows."""
    doc = _documented()
    graph = _unit_graph()
    assert set(doc) == set(graph), (f"undocumented: {sorted(set(graph) - set(doc))}; "
                                    f"documented but absent: {sorted(set(doc) - set(graph))}")
    unknown = {u: sorted(may - set(graph)) for u, may in doc.items() if may - set(graph)}
    assert not unknown, f"rows allowing imports of what does not exist: {unknown}"
    breaks = {u: sorted(graph[u] - doc[u]) for u in graph if graph[u] - doc[u]}
    assert not breaks, f"imports the layout does not allow (fix the code, or the table if intended): {breaks}"
    assert not any("cli" in may for may in doc.values()), "nothing may import the command line"
