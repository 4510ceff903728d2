"""The scenario language: load a file, validate it, check it statically.

``load_scenario(path)`` is the one entry point: it returns a ``LoadedScenario`` (the validated model, the
document it came from, and warnings) or raises ``ScenarioError`` with every problem found.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import runner.scenario.templating as templating
from runner.errors import Problem, ScenarioError
from runner.scenario.analysis import Known, analyze
from runner.scenario.data import PoolData, PoolFileError, find_csv, load_data
from runner.scenario.grpc_check import load_grpc
from runner.scenario.loader import Document, existing_file, load_document, read_file
from runner.scenario.model import Scenario
from runner.scenario.scripting import Script, ScriptLoadError, load_script, template_functions
from runner.scenario.validate import validate

SCENARIO_SUFFIXES = (".yaml", ".yml", ".json")


@dataclass
class LoadedScenario:
    path: Path
    model: Scenario
    document: Document
    warnings: list[Problem] = field(default_factory=list)
    pool_data: dict[str, PoolData] = field(default_factory=dict)  # rows of each pool, read and checked
    pool_sources: dict[str, str] = field(default_factory=dict)  # the CSV file of each csv pool
    script: Script | None = None  # the scenario's python: module, imported
    grpc: Any = None  # the gRPC descriptors its .proto files declare (runner.scenario.grpc_proto.Descriptors)

    @property
    def name(self) -> str:
        return self.model.name or self.path.stem

    @property
    def base_dir(self) -> Path:
        return self.path.parent


def load_scenario(path: str | Path, data_dir: str | Path | None = None) -> LoadedScenario:
    """Load, validate and check a scenario; its pools' CSV files and its Python module are read here too.

    ``data_dir`` (``--data-dir``): where relative CSV paths are looked up first.
    """
    path = Path(path)
    document = load_document(path)
    model = validate(document)
    loaded = LoadedScenario(path, model, document)
    found = _load_script(loaded) + _load_pools(loaded, Path(data_dir) if data_dir else None)
    found += load_grpc(loaded)
    known = Known({n: d.columns for n, d in loaded.pool_data.items()}, None)
    if loaded.script is not None:
        known.functions = set(loaded.script.functions)
    elif model.python is not None:
        known.functions, known.script_failed = set(), True
    with templating.functions(template_functions(loaded.script)):
        found += analyze(document, model, known)
    errors = [p for p in found if p.severity == "error"]
    if errors:
        raise ScenarioError(sorted(found, key=lambda p: (p.path, p.line, p.col)))
    loaded.warnings = [p for p in found if p.severity != "error"]
    return loaded


def _load_script(loaded: LoadedScenario) -> list[Problem]:
    name = loaded.model.python
    if name is None:
        return []
    where = ("python",)
    given = Path(loaded.document.mark(where).file).parent / name
    file = existing_file(given)
    if file is None:
        hint = f"paths are relative to {loaded.path.parent}/"
        return [loaded.document.problem(where, f"python module not found: {name}", hint)]
    try:
        loaded.script = load_script(given)
    except ScriptLoadError as exc:
        return [exc.problem]
    return []


def _load_pools(loaded: LoadedScenario, data_dir: Path | None) -> list[Problem]:
    problems = []
    doc = loaded.document
    for name, spec in (loaded.model.pools or {}).items():
        csv_path = None
        if spec.csv is not None:
            where = ("pools", name, "csv")
            declared_in = Path(doc.mark(where).file)
            csv_path = find_csv(spec.csv, declared_in, data_dir)
            if csv_path is None:
                places = f"{data_dir}/ or " if data_dir else ""
                hint = f"paths are relative to {places}{declared_in.parent}/ (the file declaring the pool)"
                problems.append(doc.problem(where, f"data file not found: {spec.csv}", hint))
                continue
            loaded.pool_sources[name] = str(csv_path)
        try:
            loaded.pool_data[name] = load_data(spec, csv_path)
        except PoolFileError as exc:
            file = str(csv_path)
            if exc.line:
                problems.append(Problem(file, exc.line, exc.col or 1, exc.message, exc.hint))
            else:
                problems.append(doc.problem(("pools", name, "csv"), f"{file}: {exc.message}", exc.hint))
    return problems


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


def included_by(path: str | Path) -> list[Path]:
    """The files next to ``path`` that include it: a fragment's users. Empty for a file nothing there includes."""
    target = existing_file(Path(path))
    if target is None:
        return []
    own: set[Path] = set()
    pending = [target]  # what the file includes itself: in a cycle, not its users
    while pending:
        for child in _includes_of(pending.pop()) - own:
            own.add(child)
            pending.append(child)
    found = []
    for candidate in sorted(target.parent.iterdir()):
        if candidate.suffix not in SCENARIO_SUFFIXES or not candidate.is_file() or candidate.resolve() in own:
            continue
        if target in _includes_of(candidate, naming=target.name):
            found.append(Path(os.path.relpath(candidate)) if candidate.is_relative_to(Path.cwd()) else candidate)
    return found


def _is_results_file(path: Path) -> bool:
    """An lrun results file (``--json``) kept next to scenarios is not a scenario."""
    if path.suffix != ".json":
        return False
    try:
        with path.open("rb") as handle:
            return b'"format": "lrun-results"' in handle.read(200)
    except OSError:
        return False


MAX_INCLUDER = 4 * 2**20  # bytes: a bigger file (data, results) is not read to find what it includes


def _includes_of(path: Path, naming: str = "") -> set[Path]:
    """The files ``path`` includes (those named ``naming`` only, when given). Parsed only when it can include
    them: a file of at most ``MAX_INCLUDER`` bytes whose text says ``include`` (and ``naming``); an unrelated
    sibling (a 20 MB JSON, a YAML alias bomb) is never parsed."""
    try:
        if path.stat().st_size > MAX_INCLUDER:
            return set()
        raw = path.read_bytes()
    except OSError:
        return set()
    if b"include" not in raw or naming.encode() not in raw:
        return set()
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


__all__ = ["LoadedScenario", "Scenario", "ScenarioError", "find_scenarios", "included_by", "load_scenario"]
