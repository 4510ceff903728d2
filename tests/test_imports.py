"""The package's import graph: no cycles, and the language layer (runner/scenario) does not reach up.

Imports inside functions count (they run too). ``if TYPE_CHECKING:`` blocks count for cycles too (a circle of type
imports is still a circle of knowledge: the lower module's type is a ``Protocol`` there, or the code moves up), but
not for the language's layering, where only what runs matters.
"""

from __future__ import annotations

import ast
import fnmatch
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "runner"
ABOVE_THE_LANGUAGE = (
    "engine",
    "monitor",
    "thresholds",
    "distributed",
    "report",
    "run",
    "live",
    "web",
    "stats",
    "http",
    "api",
)


def _modules(root: Path) -> dict[str, Path]:
    found = {}
    for file in root.rglob("*.py"):
        parts = file.relative_to(root.parent).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = file
    return found


def _imported(file: Path, name: str, *, typing: bool = False) -> set[str]:
    """What ``file`` imports; with ``typing``, its ``if TYPE_CHECKING:`` imports too."""
    tree = ast.parse(file.read_text())
    typing_only = {
        id(n)
        for node in ast.walk(tree)
        if not typing and isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for part in node.body
        for n in ast.walk(part)
    }
    package = name if file.name == "__init__.py" else name.rpartition(".")[0]
    targets: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            targets.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*up, base] if base else up)
            targets.add(base)
            targets.update(f"{base}.{a.name}" for a in node.names)
    return targets


def import_graph(root: Path = PACKAGE, *, typing: bool = False) -> dict[str, set[str]]:
    """Each module of the package -> the package's modules it imports (``typing``: under TYPE_CHECKING too)."""
    modules = _modules(root)

    def resolve(target: str) -> str:
        while target and target not in modules:
            target = target.rpartition(".")[0]
        return target

    top = root.name
    return {
        name: {resolve(t) for t in _imported(file, name, typing=typing) if t.split(".")[0] == top} - {name, "", top}
        for name, file in modules.items()
    }


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return found


def test_the_check_sees_a_cycle_and_a_breach(tmp_path: Path) -> None:
    pkg = tmp_path / "runner"
    (pkg / "scenario").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from runner import b\n")
    (pkg / "b.py").write_text("from runner.a import f\n")
    (pkg / "scenario" / "__init__.py").write_text("from . import model\n")
    (pkg / "scenario" / "model.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from runner import a\nfrom ..stats import x\n"
    )
    (pkg / "stats.py").write_text("x = 1\n")
    (pkg / "c.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from runner.d import Y\n")
    (pkg / "d.py").write_text("from runner.c import X\n")
    graph = import_graph(pkg)
    assert cycles(graph) == [["runner.a", "runner.b"]]
    assert graph["runner.scenario.model"] == {"runner.stats"}
    assert graph["runner.scenario"] == {"runner.scenario.model"}
    typed = import_graph(pkg, typing=True)
    assert cycles(typed) == [["runner.a", "runner.b"], ["runner.c", "runner.d"]]
    assert typed["runner.scenario.model"] == {"runner.a", "runner.stats"}


def test_no_import_cycles() -> None:
    assert cycles(import_graph()) == []


def test_no_import_cycles_even_through_type_checking() -> None:
    assert cycles(import_graph(typing=True)) == []


@pytest.mark.parametrize("layer", ["runner.scenario"])
def test_the_language_does_not_import_what_runs_it(layer: str) -> None:
    breaches = sorted(
        f"{module} -> {target}"
        for module, targets in import_graph().items()
        if module == layer or module.startswith(layer + ".")
        for target in targets
        if target.split(".")[1:2] and target.split(".")[1] in ABOVE_THE_LANGUAGE
    )
    assert breaches == []


def layers() -> list[tuple[str, list[str]]]:
    """The layer table of ARCHITECTURE.md (lowest first): each row's name and its modules (``runner.`` left out;
    ``x.*`` is a package's modules, ``x.*_steps`` a pattern)."""
    text = (PACKAGE.parent / "ARCHITECTURE.md").read_text(encoding="utf-8")
    table = text[text.index("| layer | modules |") :].split("\n\n", 1)[0].splitlines()[2:]
    rows = []
    for row in table:
        cells = [c.strip() for c in row.strip("|").split("|")]
        rows.append((cells[0], re.findall(r"`([^`]+)`", cells[1])))
    return rows


def _layer_of(module: str, table: list[tuple[str, list[str]]]) -> int | None:
    name = module.removeprefix("runner.") if module != "runner" else "__init__"
    for index, (_, patterns) in enumerate(table):
        if any(fnmatch.fnmatchcase(name, p) or fnmatch.fnmatchcase(name, p.removesuffix(".*")) for p in patterns):
            return index
    return None


def test_every_module_is_in_the_layer_table() -> None:
    table = layers()
    assert [m for m in sorted(import_graph()) if _layer_of(m, table) is None] == []


@pytest.mark.parametrize("typing", [False, True], ids=["run time", "with TYPE_CHECKING"])
def test_no_module_imports_a_higher_layer(typing: bool) -> None:
    """A module imports its own layer and the ones below it, as ARCHITECTURE.md's table says: never upwards."""
    table = layers()
    breaches = sorted(
        f"{module} ({table[low][0]}) -> {target} ({table[high][0]})"
        for module, targets in import_graph(typing=typing).items()
        for target in targets
        if (low := _layer_of(module, table)) is not None
        and (high := _layer_of(target, table)) is not None
        and high > low
    )
    assert breaches == []


def test_no_test_module_imports_another() -> None:
    """Shared helpers live in ``conftest.py`` or helper modules (``helpers.py`` …), never in a test module: a test
    module imported by another would run its tests twice and tie the two together."""
    tests = Path(__file__).resolve().parent
    offenders = sorted(
        f"{file.name} imports {target}"
        for file in tests.glob("*.py")
        for target in _imported(file, file.stem)
        if target.split(".")[0].startswith("test_")
    )
    assert offenders == []
