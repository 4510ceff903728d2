"""The scenario language: load a file, validate it, check it statically.

``load_scenario(path)`` is the one entry point: it returns a ``LoadedScenario`` (the validated model, the
document it came from, and warnings) or raises ``ScenarioError`` with every problem found.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from runner.errors import Problem, ScenarioError
from runner.scenario.analysis import analyze
from runner.scenario.loader import Document, existing_file, load_document, read_file
from runner.scenario.model import Scenario
from runner.scenario.validate import validate

SCENARIO_SUFFIXES = (".yaml", ".yml", ".json")


@dataclass
class LoadedScenario:
    path: Path
    model: Scenario
    document: Document
    warnings: list[Problem] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.model.name or self.path.stem

    @property
    def base_dir(self) -> Path:
        return self.path.parent


def load_scenario(path: str | Path) -> LoadedScenario:
    path = Path(path)
    document = load_document(path)
    model = validate(document)
    found = analyze(document, model)
    errors = [p for p in found if p.severity == "error"]
    if errors:
        raise ScenarioError(found)
    return LoadedScenario(path, model, document, [p for p in found if p.severity != "error"])


def find_scenarios(paths: Iterable[str | Path]) -> list[Path]:
    """Scenario files named or found under directories; fragments that other files include are skipped.

    A file named on the command line is always taken as a scenario. Under a directory, a file is a fragment
    when a file that is not itself included includes it (directly or through other fragments); files in an
    include cycle that nothing else includes stay scenarios, so the cycle is reported.
    """
    named: list[Path] = []
    found: list[Path] = []
    for item in map(Path, paths):
        if item.is_dir():
            found += sorted(
                p
                for p in item.rglob("*")
                if p.suffix in SCENARIO_SUFFIXES
                and p.is_file()
                and not any(part.startswith(".") for part in p.relative_to(item).parts)  # .venv, .git …
                and not _is_results_file(p)
            )
        else:
            named.append(item)
    includes: dict[Path, set[Path]] = {}
    for candidate in found:
        includes[candidate.resolve()] = _includes_of(candidate)
    included_anywhere = set().union(*includes.values()) if includes else set()
    fragments: set[Path] = set()
    pending = [path for path in includes if path not in included_anywhere]  # the roots
    while pending:
        for child in includes.get(pending.pop(), ()):
            if child not in fragments:
                fragments.add(child)
                pending.append(child)
    return named + [p for p in found if p.resolve() not in fragments]


def _is_results_file(path: Path) -> bool:
    """An lrun results file (``--json``) kept next to scenarios is not a scenario."""
    if path.suffix != ".json":
        return False
    try:
        with path.open("rb") as handle:
            return b'"format": "lrun-results"' in handle.read(200)
    except OSError:
        return False


def _includes_of(path: Path) -> set[Path]:
    try:
        doc = read_file(path)
    except ScenarioError:
        return set()  # reported when the file itself is validated
    names = doc.data.get("include", []) if isinstance(doc.data, dict) else []
    names = [names] if isinstance(names, str) else names if isinstance(names, list) else []
    found = set()
    for name in names:
        if isinstance(name, str):
            target = existing_file(path.parent / name)
            if target is not None:
                found.add(target)
    return found


__all__ = ["LoadedScenario", "Scenario", "ScenarioError", "find_scenarios", "load_scenario"]
