"""The package's import graph has no loop (issue 14).

The graph is built from the source, not from what Python happened to import: every `import` and
`from ... import` of a deepcolor module counts, including those made inside functions, so a loop
hidden behind a lazy import is found too. Importing a submodule runs its parent packages'
`__init__` first, so an edge to `deepcolor.features.semantic` is also an edge to
`deepcolor.features` (except from modules inside `deepcolor.features`, whose package is already
being imported when they run).
"""

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# Folder -> package name: the repository's stage folders install as deepcolor subpackages
# (setup.cfg package_dir).
PACKAGES = {"deepcolor": "deepcolor", "features": "deepcolor.features",
            "clustering": "deepcolor.clustering", "refine": "deepcolor.refine"}


def module_files(repo=REPO):
    """{module name: path} of every module of the package."""
    out = {}
    for folder, package in PACKAGES.items():
        for path in sorted((repo / folder).rglob("*.py")):
            parts = list(path.relative_to(repo / folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join([package, *parts])] = path
    return out


def _parents(name):
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(2, len(parts))]  # not the root package itself


def _targets(node, module, is_package, modules):
    """Modules of the package that one import statement loads."""
    own = set(_parents(module)) | ({module} if is_package else set())
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
    else:
        if node.level:
            base = module.split(".") if is_package else module.split(".")[:-1]
            base = base[: len(base) - (node.level - 1)]
            stem = ".".join(base + ([node.module] if node.module else []))
        else:
            stem = node.module
        # `from a.b import c`: c is the submodule a.b.c when there is one, else a name in a.b
        names = [f"{stem}.{a.name}" if f"{stem}.{a.name}" in modules else stem for a in node.names]
    out = set()
    for name in names:
        while name and name not in modules:  # `import deepcolor.x.y` of a module; skip outside names
            name = name.rpartition(".")[0]
        if name:
            # A package's own ancestors are already being imported when its code runs: no edge.
            out.update([name, *(p for p in _parents(name) if p not in own)])
    return out


def import_graph(repo=REPO):
    """{module: set of package modules it imports}, from every import statement in its source."""
    modules = module_files(repo)
    graph = {}
    for module, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        edges = set()
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                edges |= _targets(node, module, path.name == "__init__.py", modules)
        edges.discard(module)
        graph[module] = edges
    return graph


def find_cycles(graph):
    """Strongly connected components with more than one module (Tarjan), each sorted, in sorted order."""
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

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
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(cycles)


def test_find_cycles_unit():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert find_cycles(graph) == [["a", "b", "c"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []


def test_import_graph_sees_imports_inside_functions(tmp_path):
    (tmp_path / "deepcolor").mkdir()
    (tmp_path / "features").mkdir()
    for folder in ("clustering", "refine"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "__init__.py").write_text("")
    (tmp_path / "deepcolor" / "__init__.py").write_text("")
    (tmp_path / "deepcolor" / "a.py").write_text("from deepcolor.features import b\n")
    (tmp_path / "features" / "__init__.py").write_text("")
    (tmp_path / "features" / "b.py").write_text("def f():\n    from deepcolor import a\n")
    graph = import_graph(tmp_path)
    assert graph["deepcolor.a"] == {"deepcolor.features", "deepcolor.features.b"}
    assert graph["deepcolor.features.b"] == {"deepcolor.a"}
    assert find_cycles(graph) == [["deepcolor.a", "deepcolor.features.b"]]


def test_import_graph_covers_the_package():
    graph = import_graph()
    for name in ("deepcolor.cli", "deepcolor.features.semantic", "deepcolor.clustering.adaptive",
                 "deepcolor.refine.bilateral"):
        assert name in graph
    assert any(graph.values())


def test_no_import_loops():
    cycles = find_cycles(import_graph())
    assert cycles == [], "import loops: " + "; ".join(" <-> ".join(c) for c in cycles)


if __name__ == "__main__":  # pragma: no cover - a report for the developer
    pytest.main([__file__, "-q"])
