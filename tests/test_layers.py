"""The layers hold: imports point down the stack, Prefect stays in flows/, Ray where work runs, no cycles.

Every import counts, also those inside functions (a lazy import is still a dependency).
"""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

from tests.helpers.paths import REPO

# Bottom to top: a module may import its own package and the packages before it.
LAYERS = ["foundation", "schemas", "taxonomy", "workers", "validators", "dedup", "corpus", "flows", "cli"]
PREFECT_PACKAGES = {"flows"}
# Model workers and CPU tasks (workers/), and dedup's own Ray Data path (dedup/parallel.py).
RAY_PACKAGES = {"workers", "dedup"}


def module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules(root: Path = REPO) -> dict[str, Path]:
    return {module_name(p, root): p for layer in LAYERS for p in sorted((root / layer).rglob("*.py"))}


def imported_names(name: str, path: Path) -> set[str]:
    """Absolute names of everything `path` imports (relative imports resolved)."""
    names: set[str] = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                names.add(".".join([*base, *([node.module] if node.module else [])]))
            elif node.module:
                names.add(node.module)
                # `from pkg import module` names a module too
                names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def import_graph(root: Path = REPO) -> dict[str, set[str]]:
    """Our module -> our modules it imports."""
    known = modules(root)
    return {name: {n for n in imported_names(name, path) if n in known and n != name} for name, path in known.items()}


def layer_of(module: str) -> str:
    return module.split(".")[0]


def test_every_package_is_in_a_layer() -> None:
    packages = {p.parent.name for p in REPO.glob("*/__init__.py")} - {"tests", "bench", "scripts"}
    assert packages == set(LAYERS)


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    return sorted(
        f"{module} imports {target}"
        for module, targets in graph.items()
        for target in targets
        if LAYERS.index(layer_of(target)) > LAYERS.index(layer_of(module))
    )


def import_cycle(graph: dict[str, set[str]]) -> list[str]:
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as exc:
        return list(exc.args[1])
    return []


def test_imports_point_down_the_layers() -> None:
    assert upward_imports(import_graph()) == []


def test_there_are_no_import_cycles() -> None:
    assert import_cycle(import_graph()) == []


def test_prefect_only_in_flows_and_ray_only_where_work_runs() -> None:
    found = {"prefect": set(), "ray": set()}
    for name, path in modules().items():
        for imported in imported_names(name, path):
            top = imported.split(".")[0]
            if top in found:
                found[top].add(layer_of(name))
    assert found["prefect"] <= PREFECT_PACKAGES, found["prefect"]
    assert found["ray"] <= RAY_PACKAGES, found["ray"]


def test_the_checks_see_lazy_relative_and_module_imports(tmp_path: Path) -> None:
    """A tree with an upward lazy import, a cycle through `from package import module` and a relative import."""
    for layer in LAYERS:
        (tmp_path / layer).mkdir()
        (tmp_path / layer / "__init__.py").write_text("")
    (tmp_path / "taxonomy" / "a.py").write_text("def f():\n    from corpus.b import g\n    return g\n")
    (tmp_path / "corpus" / "b.py").write_text("from corpus import c\n\ndef g():\n    return c\n")
    (tmp_path / "corpus" / "c.py").write_text("from .b import g\n")
    graph = import_graph(tmp_path)
    assert upward_imports(graph) == ["taxonomy.a imports corpus.b"]
    assert set(import_cycle(graph)) == {"corpus.b", "corpus.c"}
