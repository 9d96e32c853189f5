"""The relay's house: features plug into the core's public interface (issue 12, "The relay's house").

Read from the source (ast), imports inside functions included: no relay module imports a
private name (``_x``) of another module or reaches into another object's private attribute
(``self.relay._x``), and the relay modules import each other without a cycle. The core
imports no feature (aggregate, http, overlays, shadow, main).
"""

import ast
from pathlib import Path

import drygate.relay

RELAY = Path(drygate.relay.__file__).parent
FEATURES = {"aggregate", "http", "overlays", "shadow", "main"}


def modules():
    return {p.stem: ast.parse(p.read_text(encoding="utf-8"), str(p)) for p in sorted(RELAY.glob("*.py"))}


def relay_imports(tree):
    """``[(module stem, [imported names])]`` of every drygate.relay import in ``tree``."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module.startswith("drygate.relay."):
                out.append((node.module.split(".")[2], [a.name for a in node.names]))
            elif node.module == "drygate.relay":
                out.extend((a.name, []) for a in node.names)
        elif isinstance(node, ast.Import):
            out.extend((a.name.split(".")[2], []) for a in node.names if a.name.startswith("drygate.relay."))
    return out


def test_no_private_name_crosses_a_module():
    found = []
    for stem, tree in modules().items():
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("drygate"):
                found += [f"{stem}: from {node.module} import {a.name}" for a in node.names
                          if a.name.startswith("_") and not a.name.startswith("__")]
            if (isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")
                    and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))):
                found.append(f"{stem}:{node.lineno}: .{node.attr} of {ast.unparse(node.value)}")
    assert found == []


def test_relay_modules_import_each_other_without_a_cycle():
    trees = modules()
    graph = {stem: {m for m, _ in relay_imports(tree) if m != stem} for stem, tree in trees.items()}
    assert not graph["core"] & FEATURES, graph["core"]  # the core knows no feature
    assert not graph["protocol"] and not graph["identity"] - {"protocol"}  # the leaves
    state = {}

    def visit(node, path):
        if state.get(node) == "done":
            return
        assert state.get(node) != "open", f"import cycle: {' -> '.join(path + [node])}"
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            visit(nxt, path + [node])
        state[node] = "done"

    for stem in graph:
        visit(stem, [])


def test_features_are_routes_of_the_core():
    from drygate.relay.core import Route
    from drygate.relay.overlays import OverlayRoute
    from drygate.relay.shadow import ShadowRoute

    assert issubclass(OverlayRoute, Route) and issubclass(ShadowRoute, Route)
    hooks = {n for n in vars(Route) if not n.startswith("_")}
    assert hooks == {"tools_call", "answers_reads", "decided_request", "client_message", "batch", "from_real",
                     "shadow_env", "close"}
