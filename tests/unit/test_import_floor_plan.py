"""The floor plans: no import cycle between the top-level tooling packages, between the
sub-packages (and top-level modules) of `local`, or between those of the common layer
(`pressroom_common`).

Every module is parsed, not imported, and every import counts: at module level, inside a
function, or under `TYPE_CHECKING`. The floors, bottom up:

- top level: `models` <- `training` <- `local` <- `qa`, `benchmarks` (`training` never imports
  `local`: a SageMaker training job ships `training/` and `models/` alone);
- in `local`: `paths`, `cfn_intrinsics` <- `cfn`, `plumbing` (log file, background server),
  `registry` <- `emulate` <- `champion` <- `retrain`, `rounds` <- `devstack` <- `ops` <-
  `experiment` <- `cli`;
- in the layer: `records`, `platform` <- `experiment` <- `generation`, `feedback` (which share
  only `records`, never each other) <- `routes` <- `wiring`.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from collections.abc import Callable, Iterator
from itertools import pairwise
from pathlib import Path

from local.paths import REPO_ROOT

TOOLING = ("local", "training", "models", "qa", "benchmarks")
LAYER_ROOT = REPO_ROOT / "layers" / "common"
LAYER = "pressroom_common"

Graph = dict[str, dict[str, list[str]]]
"""importer -> imported -> where (`path:line`)."""


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    packages = [(REPO_ROOT, package) for package in TOOLING] + [(LAYER_ROOT, LAYER)]
    return {
        _module_name(path, root): path
        for root, package in packages
        for path in sorted((root / package).rglob("*.py"))
    }


def _imports(name: str, path: Path, known: dict[str, Path]) -> Iterator[tuple[str, int]]:
    """The first-party modules `name` imports, with the line of each import."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            for alias in node.names:
                # `from local import registry` imports the module local.registry
                submodule = f"{module}.{alias.name}"
                yield (submodule if submodule in known else module), node.lineno


def _graph(unit: Callable[[str], str | None]) -> Graph:
    """The import graph between units (`unit` maps a module to its unit, or None: not counted)."""
    known = _modules()
    graph: Graph = defaultdict(lambda: defaultdict(list))
    for name, path in known.items():
        source = unit(name)
        if source is None:
            continue
        for imported, line in _imports(name, path, known):
            target = unit(imported)
            where = f"{path.relative_to(REPO_ROOT)}:{line}"
            if target is not None and target != source and where not in graph[source][target]:
                graph[source][target].append(where)
    return graph


def _top_level(module: str) -> str | None:
    top = module.split(".")[0]
    return top if top in TOOLING else None


def _floor_of(package: str) -> Callable[[str], str | None]:
    """`<package>.<sub-package or module>`; the package itself (its `__init__`) is no floor."""

    def floor(module: str) -> str | None:
        parts = module.split(".")
        return ".".join(parts[:2]) if parts[0] == package and len(parts) > 1 else None

    return floor


def _cycles(graph: Graph) -> list[list[str]]:
    """One cycle through each strongly connected component of more than one unit."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    components: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in graph.get(node, {}):
            if target not in index:
                connect(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return [_cycle_in(graph, component) for component in components]


def _cycle_in(graph: Graph, component: list[str]) -> list[str]:
    """A shortest path from the component's first unit back to itself, inside the component."""
    start = component[0]
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for target in sorted(graph.get(node, {})):
                if target == start:
                    return [*paths[node], start]
                if target in component and target not in paths:
                    paths[target] = [*paths[node], target]
                    following.append(target)
        frontier = following
    raise AssertionError(f"no cycle in {component}")


def _explained(graph: Graph, cycles: list[list[str]]) -> list[str]:
    return [
        " -> ".join(cycle)
        + "".join(
            f"\n    {source} -> {target}: {', '.join(graph[source][target][:3])}"
            for source, target in pairwise(cycle)
        )
        for cycle in cycles
    ]


def test_the_top_level_tooling_packages_import_each_other_without_a_cycle() -> None:
    graph = _graph(_top_level)

    assert _explained(graph, _cycles(graph)) == []
    assert "local" not in graph["training"], graph["training"]["local"]


def test_the_sub_packages_of_local_import_each_other_without_a_cycle() -> None:
    graph = _graph(_floor_of("local"))

    assert _explained(graph, _cycles(graph)) == []
    assert "local.devstack" not in graph["local.emulate"], graph["local.emulate"]["local.devstack"]


def test_the_sub_packages_of_the_layer_import_each_other_without_a_cycle() -> None:
    graph = _graph(_floor_of(LAYER))

    assert _explained(graph, _cycles(graph)) == []
    # The generate and the vote flows share the records, not each other.
    generation, feedback = f"{LAYER}.generation", f"{LAYER}.feedback"
    assert feedback not in graph[generation], graph[generation][feedback]
    assert generation not in graph[feedback], graph[feedback][generation]
    assert f"{LAYER}.records" in graph[feedback]
    # The walk sees the layer's imports: the composition root reaches both flows.
    assert {generation, feedback, f"{LAYER}.routes"} <= set(graph[f"{LAYER}.wiring"])


def test_a_cycle_is_found_and_named_with_where_it_imports() -> None:
    graph: Graph = {
        "a": {"b": ["a.py:1"]},
        "b": {"c": ["b.py:2"]},
        "c": {"a": ["c.py:3"], "d": ["c.py:4"]},
        "d": {},
    }

    assert _explained(graph, _cycles(graph)) == [
        "a -> b -> c -> a\n    a -> b: a.py:1\n    b -> c: b.py:2\n    c -> a: c.py:3"
    ]
