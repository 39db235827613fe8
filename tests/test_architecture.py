"""The shape docs/architecture.md promises, checked on the code: imports run one way (no
cycle between any two modules of drp, flows and notifications, and notifications imports
nothing of drp), each rule named there lives in its module, and no module outgrows a reading."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("drp", "flows", "notifications")
MOST_LINES = 500


def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


def _imported(name: str, node: ast.Import | ast.ImportFrom, is_package: bool,
              known: dict[str, Path]) -> list[str]:
    targets: list[str] = []
    if isinstance(node, ast.Import):
        targets = [alias.name for alias in node.names]
    else:
        if node.level:
            base = name.split(".") if is_package else name.split(".")[:-1]
            base = base[: len(base) - (node.level - 1)]
            prefix = ".".join(base + ([node.module] if node.module else []))
        else:
            prefix = node.module or ""
        for alias in node.names:
            candidate = f"{prefix}.{alias.name}"
            targets.append(candidate if candidate in known else prefix)
    out = []
    for target in targets:
        while target and target not in known:
            target = target.rpartition(".")[0]
        if target:
            out.append(target)
    return out


def import_graph() -> dict[str, set[str]]:
    """Every import, at module level or inside a function (an import moved into a function
    to dodge a cycle is still a cycle), except those only for the type checker."""
    known = modules()
    graph: dict[str, set[str]] = {}
    for name, path in known.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        typing_only: set[int] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.If) and getattr(node.test, "id", "") == "TYPE_CHECKING":
                typing_only |= {id(n) for n in ast.walk(node)}
        edges: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom) and id(node) not in typing_only:
                edges.update(_imported(name, node, path.name == "__init__.py", known))
        # A module's own package runs first whatever it imports: not an edge.
        graph[name] = {e for e in edges if e != name and not name.startswith(e + ".")}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_in_drp_flows_or_notifications() -> None:
    assert cycles(import_graph()) == []


def test_notifications_imports_nothing_of_drp() -> None:
    graph = import_graph()
    assert {(m, d) for m, deps in graph.items() if m.startswith("notifications")
            for d in deps if d.startswith("drp")} == set()


def test_nothing_in_the_runtime_imports_the_tools_or_a_shell() -> None:
    """The domain never reaches up into the shells (cli, web, flows) or the tools."""
    graph = import_graph()
    shells = ("drp.cli", "drp.web", "drp.tools", "flows")
    assert {"drp.cli", "drp.web", "drp.tools", "drp.ladder.due"} <= set(graph)
    below = [m for m in graph if m.startswith("drp.") and not m.startswith(shells)]
    assert {(m, d) for m in below for d in graph[m] if d.startswith(shells)} == set()


def test_no_module_is_longer_than_a_reading() -> None:
    lines = {name: len(path.read_text(encoding="utf-8").splitlines())
             for name, path in modules().items()}
    assert {name: n for name, n in lines.items() if n > MOST_LINES} == {}


def test_each_rule_has_its_named_home() -> None:
    """Where docs/architecture.md says to look: the names a newcomer searches for."""
    from drp.ladder import access, due, machine

    for module, names in (
        (due, ("stage_entry", "resolution_due_from", "after_hold", "is_overdue",
               "reminder_due", "on_overdue", "reminder_due_where", "on_overdue_where")),
        (access, ("may", "may_respond", "responders", "awaits_response_from",
                  "can_see_child", "visible_alerts")),
        (machine, ("build_machine", "permitted_triggers")),
    ):
        assert [n for n in names if not hasattr(module, n)] == []
