"""Print hookwatch's package-level import graph; exit 1 when a layer points the wrong way or
modules import each other in a circle.

Run as `python tools/import_graph.py [ROOT]` (ROOT: the repository, by default this one).
Every `import hookwatch.…` / `from hookwatch… import` counts, at the top of a module or
inside a function (an import hidden in a function is still a dependency). The layers, top to
bottom (BRIEF.md, "Layers point one way"):

    shell (hookwatch/*.py, hookwatch/demo/) > dashboard > alerts > notifiers, hooks > storage

A package may import any package in a lower layer. notifiers and hooks share a layer: one may
use the other (notifiers.webhook signs with hooks.signature) as long as no circle forms.
"""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("hooks", "storage", "alerts", "notifiers", "dashboard")
RANK = {"shell": 4, "dashboard": 3, "alerts": 2, "notifiers": 1, "hooks": 1, "storage": 0}
SKIP = ("migrations/versions",)  # Alembic's revision scripts are data


def module_name(root: Path, path: Path) -> str:
    """storage/tables.py -> hookwatch.storage.tables; hookwatch/app.py -> hookwatch.app."""
    rel = path.relative_to(root).with_suffix("")
    parts = [p for p in rel.parts if p != "__init__"]
    return ".".join(parts if parts[0] == "hookwatch" else ["hookwatch", *parts])


def package_of(module: str) -> str | None:
    """hookwatch.storage.tables -> storage; hookwatch.app -> shell; other names -> None."""
    parts = module.split(".")
    if parts[0] != "hookwatch":
        return None
    if len(parts) > 1 and parts[1] in PACKAGES:
        return parts[1]
    return None if len(parts) > 1 and parts[1] == "templates" else "shell"


def source_files(root: Path) -> list[Path]:
    shell = root / "hookwatch"
    files = [p for p in shell.rglob("*.py")
             if not any((shell / part).is_symlink() for part in p.relative_to(shell).parts)]
    for pkg in PACKAGES:
        files += [p for p in (root / pkg).rglob("*.py")
                  if not any(s in p.relative_to(root).as_posix() for s in SKIP)]
    return sorted(files)


def imports_of(path: Path) -> set[str]:
    """Every hookwatch module an import anywhere in the file names."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # `from hookwatch.dashboard import pages` names module hookwatch.dashboard.pages
            found.update(f"{node.module}.{a.name}" for a in node.names)
    return {m for m in found if m.split(".")[0] == "hookwatch"}


def module_graph(root: Path) -> dict[str, set[str]]:
    """module -> the hookwatch modules it imports (names resolved to files that exist)."""
    files = {module_name(root, p): p for p in source_files(root)}
    graph: dict[str, set[str]] = {}
    for module, path in files.items():
        targets = set()
        for name in imports_of(path):
            while name and name not in files:  # `from m import function` names m.function
                name = name.rpartition(".")[0]
            if name and name != module:
                targets.add(name)
        graph[module] = targets
    return graph


def package_graph(graph: dict[str, set[str]]) -> dict[str, dict[str, set[str]]]:
    """package -> imported package -> the modules that import it."""
    edges: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for module, targets in graph.items():
        source = package_of(module)
        for target in targets:
            pkg = package_of(target)
            if source and pkg and pkg != source:
                edges[source][pkg].add(module)
    return edges


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one node (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def main(argv: list[str]) -> int:
    root = Path(argv[0]).resolve() if argv else ROOT
    modules = module_graph(root)
    edges = package_graph(modules)
    problems: list[str] = []
    for source in sorted(RANK, key=lambda p: (-RANK[p], p)):
        targets = edges.get(source, {})
        names = ", ".join(sorted(targets, key=lambda p: (-RANK[p], p))) or "(nothing)"
        print(f"{source:9} -> {names}")
        for target in sorted(targets):
            if RANK[target] > RANK[source] or target == "shell":
                problems.append(f"{source} -> {target} points up: "
                                f"{', '.join(sorted(targets[target]))}")
    packages = {s: set(t) for s, t in edges.items()}
    problems += [f"packages in a circle: {' <-> '.join(c)}" for c in cycles(packages)]
    problems += [f"modules in a circle: {' <-> '.join(c)}" for c in cycles(modules)]
    for problem in problems:
        print(f"WRONG: {problem}")
    if problems:
        return 1
    print("every edge points down; no circles")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
