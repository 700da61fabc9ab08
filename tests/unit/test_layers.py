"""The package's dependency rule (docs/design.md), read from the source's import statements.

cli → actions → pipeline | sources | destinations | state | notify → config → formats;
nothing imports upward, the middle packages import each other without cycles,
and formats/ imports nothing from vigil.
"""

from __future__ import annotations

import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "vigil"
RANK = {"__main__": 4, "cli": 4, "actions": 3, "pipeline": 2, "sources": 2, "destinations": 2, "state": 2, "notify": 2,
        "config": 1, "formats": 0}
# Shared leaf modules: importable from every layer but formats/, importing only each other.
LEAVES = {"errors", "timeutil", "sizes", "retry", "logs", "children", "__init__"}


def _package(module: str) -> str:
    """'vigil.actions.backup' -> 'actions'; 'vigil.errors' -> 'errors'; 'vigil' -> '__init__'."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _imports() -> dict[str, set[str]]:
    """Each vigil module's dotted name -> the vigil modules it imports (lazy imports included)."""
    found: dict[str, set[str]] = {}
    for path in SRC.rglob("*.py"):
        rel = path.relative_to(SRC.parent).with_suffix("")
        name = ".".join(p for p in rel.parts if p != "__init__")
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets.update(a.name for a in node.names if a.name.split(".")[0] == "vigil")
            elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "vigil":
                if node.module == "vigil":  # `from vigil import x`: x is a module or a name in vigil/__init__
                    targets.update(f"vigil.{a.name}" if (SRC / a.name).exists() or (SRC / f"{a.name}.py").exists()
                                   else "vigil" for a in node.names)
                else:
                    targets.add(node.module)
        found[name] = targets
    return found


def test_no_module_imports_upward() -> None:
    wrong = []
    for module, targets in _imports().items():
        src = _package(module)
        for target in targets:
            dst = _package(target)
            if src == dst:
                continue
            if src == "formats":
                wrong.append(f"{module} imports {target}: formats/ imports nothing from vigil")
            elif src in LEAVES and dst not in LEAVES:
                wrong.append(f"{module} imports {target}: a shared leaf imports only leaves")
            elif dst in LEAVES:
                continue
            elif RANK[dst] > RANK[src]:
                wrong.append(f"{module} imports {target}: {src}/ may not import {dst}/")
    assert wrong == []


def test_packages_have_no_import_cycles() -> None:
    graph: dict[str, set[str]] = {}
    for module, targets in _imports().items():
        src = _package(module)
        graph.setdefault(src, set()).update(_package(t) for t in targets if _package(t) != src)
    try:
        tuple(TopologicalSorter(graph).static_order())
    except CycleError as exc:
        raise AssertionError(f"import cycle between packages: {' -> '.join(exc.args[1])}") from None


def test_every_package_says_what_lives_there() -> None:
    for init in SRC.glob("*/__init__.py"):
        doc = ast.get_docstring(ast.parse(init.read_text()))
        assert doc and 3 <= len(doc.splitlines()) <= 8, f"{init.relative_to(SRC)}: needs a 3-6 line docstring"
