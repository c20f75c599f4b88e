"""The HTTP modules import one another without a circle (no function-local import to break one)."""

from __future__ import annotations

import ast
from pathlib import Path

import gateway.api

API = Path(gateway.api.__file__).parent


def imports_of(path: Path) -> set[str]:
    """The `gateway.api` modules a module imports, at any depth of its body."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "gateway.api":
                found.update(f"gateway.api.{a.name}" for a in node.names)
            elif node.module.startswith("gateway.api."):
                found.add(node.module)
    return found


def cycle_from(start: str, graph: dict[str, set[str]]) -> list[str] | None:
    path: list[str] = []

    def visit(module: str) -> list[str] | None:
        if module in path:
            return [*path[path.index(module) :], module]
        path.append(module)
        for target in sorted(graph.get(module, ())):
            found = visit(target)
            if found:
                return found
        path.pop()
        return None

    return visit(start)


def test_the_api_modules_import_each_other_without_a_circle() -> None:
    graph = {f"gateway.api.{p.stem}": imports_of(p) for p in API.glob("*.py")}
    assert "gateway.api.links" in graph["gateway.api.tasks"], "the graph is read from the real modules"
    cycles = [c for m in sorted(graph) if (c := cycle_from(m, graph))]
    assert cycles == []
