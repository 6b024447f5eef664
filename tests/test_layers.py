"""The layer rule and the size rule, read from the source with ``ast`` (nothing is imported).

Layers: ``kerneldistill`` <- ``deepdistill`` <- ``analysis``. A module never imports a package above
its own, and no two modules import each other through any chain. Every import counts, the ones inside
functions too (a lazy import runs as surely as a top-level one); an import that a reader cannot see
(``importlib.import_module`` or ``__import__`` of a computed name) is refused, so this walk sees them all.
One exception a reader can still see: a package that lists its submodules in a module-level literal
``_MODULES = ("a", "b")`` (``kerneldistill.claims``) may import them by computed name; the walk counts
each listed name as an import of that package.
Size: no Python file of the repository is longer than 800 lines.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ("kerneldistill", "deepdistill", "analysis")       # lowest first
MAX_LINES = 800


def module_files(root: Path, packages=LAYERS) -> dict[str, Path]:
    """``{module name: path}`` of every module of ``packages`` under ``root`` (``__init__`` is the package)."""
    out = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


def _dynamic_import_name(node: ast.Call):
    """For ``importlib.import_module(...)`` / ``__import__(...)``: the literal name, or ``False`` when it is computed."""
    func = node.func
    is_import = (isinstance(func, ast.Attribute) and func.attr == "import_module") or \
                (isinstance(func, ast.Name) and func.id in ("import_module", "__import__"))
    if not is_import:
        return None
    if node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
        return node.args[0].value
    return False


def _listed_submodules(tree: ast.Module):
    """The names of a module-level ``_MODULES = ("a", ...)`` tuple of string literals, or None."""
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        if any(isinstance(t, ast.Name) and t.id == "_MODULES" for t in targets) and isinstance(node.value, ast.Tuple) \
                and all(isinstance(e, ast.Constant) and isinstance(e.value, str) for e in node.value.elts):
            return [e.value for e in node.value.elts]
    return None


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> tuple[set[str], list[str]]:
    """``(modules of ours that ``name`` imports anywhere in its file, imports whose name is computed)``."""
    is_package = path.name == "__init__.py"
    package = name if is_package else name.rpartition(".")[0]
    found, hidden = set(), []
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    listed = _listed_submodules(tree) if is_package else None

    def add(target: str) -> None:
        # The deepest module of ours that the dotted name designates (``a.b.c`` may be a name in ``a.b``).
        while target and target not in modules:
            target = target.rpartition(".")[0]
        if target:
            found.add(target)

    for sub in listed or ():
        add(f"{name}.{sub}")
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                # ``from pkg import mod`` imports the module pkg.mod; ``from pkg import name`` the package.
                add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base)
        elif isinstance(node, ast.Call):
            literal = _dynamic_import_name(node)
            if literal is False and listed is None:
                hidden.append(f"{path.relative_to(path.parents[len(name.split('.')) - (0 if is_package else 1)])}:"
                              f"{node.lineno}")
            elif literal:
                add(literal)
    found.discard(name)
    return found, hidden


def import_graph(root: Path = ROOT, packages=LAYERS):
    modules = module_files(root, packages)
    graph, hidden = {}, []
    for name, path in modules.items():
        graph[name], h = imports_of(name, path, modules)
        hidden += h
    return graph, hidden


def upward_imports(graph: dict[str, set[str]], layers=LAYERS) -> list[str]:
    rank = {p: i for i, p in enumerate(layers)}
    return [f"{a} -> {b}" for a, targets in graph.items() for b in sorted(targets)
            if rank[b.split(".")[0]] > rank[a.split(".")[0]]]


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan's algorithm): each holds a circle."""
    index, low, on_stack, stack, out = {}, {}, set(), [], []

    def visit(v):
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
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_module_imports_a_package_above_its_own():
    graph, _ = import_graph()
    assert len(graph) > 30                                   # the walk found the modules
    assert "deepdistill.train" in graph["deepdistill.local_runner"]  # and their imports
    assert upward_imports(graph) == []


def test_no_circle_of_imports_through_any_chain():
    graph, _ = import_graph()
    assert cycles(graph) == []


def test_no_import_hides_its_name():
    _, hidden = import_graph()
    assert hidden == []


def test_the_checks_catch_a_lazy_upward_import_and_a_lazy_circle(tmp_path):
    # A miniature of the old tangles: a low module reaching up from inside a function, and two modules
    # of one package that import each other (one of them lazily, one through the package).
    (tmp_path / "low").mkdir()
    (tmp_path / "high").mkdir()
    (tmp_path / "low" / "__init__.py").write_text("")
    (tmp_path / "low" / "a.py").write_text("def f():\n    from high.figures import draw\n    return draw\n")
    (tmp_path / "low" / "b.py").write_text("from . import c\n")
    (tmp_path / "low" / "c.py").write_text("def g():\n    import low.b\n")
    (tmp_path / "low" / "d.py").write_text("import importlib\nmod = importlib.import_module('low.' + 'a')\n")
    (tmp_path / "low" / "reg").mkdir()
    (tmp_path / "low" / "reg" / "__init__.py").write_text(
        "import importlib\n_MODULES = ('one',)\nfor m in _MODULES:\n    importlib.import_module(__name__ + '.' + m)\n")
    (tmp_path / "low" / "reg" / "one.py").write_text("from low.reg import x\n")       # a circle through the listing
    (tmp_path / "high" / "__init__.py").write_text("")
    (tmp_path / "high" / "figures.py").write_text("from low.a import f\ndef draw():\n    pass\n")
    graph, hidden = import_graph(tmp_path, ("low", "high"))
    assert upward_imports(graph, ("low", "high")) == ["low.a -> high.figures"]
    assert sorted(cycles(graph)) == [["high.figures", "low.a"], ["low.b", "low.c"], ["low.reg", "low.reg.one"]]
    assert hidden == ["low/d.py:2"]                       # the listed package's computed import is not hidden


@pytest.mark.parametrize("folder", ["kerneldistill", "deepdistill", "analysis", "tests", "examples", "bench"])
def test_no_file_is_longer_than_800_lines(folder):
    lengths = {str(p.relative_to(ROOT)): len(p.read_text(encoding="utf-8").splitlines())
               for p in (ROOT / folder).rglob("*.py")}
    assert lengths
    assert {p: n for p, n in lengths.items() if n > MAX_LINES} == {}


def test_the_readme_map_lists_every_module_after_what_it_imports():
    # "Where things are": one row per module (a row may name several), in dependency order.
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## Where things are"):]
    section = section[:section.index("\n## ", 1)]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    order = []
    for row in rows:
        first_cell = row.split(" | ")[0]
        order += [cell.strip("`| ") for cell in first_cell.split(", ")]
    modules = module_files(ROOT)
    by_path = {str(path.relative_to(ROOT)): name for name, path in modules.items()}
    assert sorted(order) == sorted(by_path)                        # every module, once
    graph, _ = import_graph()
    position = {by_path[p]: i for i, p in enumerate(order)}
    late = [f"{a} before {b}" for a in graph for b in graph[a] if position[b] > position[a]]
    assert late == []
