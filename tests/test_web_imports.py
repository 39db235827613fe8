"""The web layer's imports run one way (app -> routes -> deps -> auth): no cycle inside
drp.web, none dodged by an import inside a function, and only deps.py looks at app.state."""

from __future__ import annotations

import ast
from pathlib import Path

import drp.web

WEB = Path(drp.web.__file__).resolve().parent


def module_name(path: Path) -> str:
    parts = ["drp", "web", *path.relative_to(WEB).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(WEB.rglob("*.py"))}


def imported(module: str, node: ast.Import | ast.ImportFrom) -> set[str]:
    """The drp.web modules an import statement in `module` loads."""
    if isinstance(node, ast.Import):
        names = {alias.name for alias in node.names}
    else:
        base = node.module or ""
        if node.level:
            is_package = MODULES[module].name == "__init__.py"
            package = module.split(".")[: None if is_package else -1]
            package = package[: len(package) - (node.level - 1)]
            base = ".".join([*package, *([node.module] if node.module else [])])
        names = {base} | {f"{base}.{alias.name}" for alias in node.names}
    return {name for name in names if name in MODULES}


def imports(inside_functions: bool) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text(), str(path))
        nested: set[int] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                nested.update(id(inner) for inner in ast.walk(node) if inner is not node)
        graph[module] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom) and (id(node) in nested) \
                    == inside_functions:
                graph[module] |= imported(module, node) - {module}
    return graph


def test_the_module_names_are_read_right() -> None:
    graph = imports(inside_functions=False)
    assert "drp.web.deps" in graph["drp.web.routes.alerts"]
    assert "drp.web.routes.api" in graph["drp.web.app"]


def test_there_is_no_import_cycle_in_the_web_layer() -> None:
    graph = imports(inside_functions=False)
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> None:
        if module in path:
            cycle = [*path[path.index(module):], module]
            raise AssertionError("import cycle: " + " -> ".join(cycle))
        if module in done:
            return
        for target in sorted(graph[module]):
            visit(target, [*path, module])
        done.add(module)

    for module in sorted(graph):
        visit(module, [])


def test_no_web_module_is_imported_inside_a_function() -> None:
    nested = {module: targets for module, targets in imports(inside_functions=True).items()
              if targets}
    assert nested == {}


def test_the_routes_never_import_the_app() -> None:
    graph = imports(inside_functions=False)
    for module, targets in graph.items():
        if module != "drp.web.app":
            assert "drp.web.app" not in targets, module


def test_only_deps_looks_at_app_state() -> None:
    readers = set()
    for module, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr == "state":
                readers.add(module)
    assert readers == {"drp.web.deps"}
