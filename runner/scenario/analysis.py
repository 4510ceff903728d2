"""Static checks beyond the schema: variables used before anything defines them, files that are missing.

Variables flow like a user runs: scenario and user ``variables`` and built-ins first, then ``on_start``, then
the sequence in order (or each task on its own), then ``on_stop``. A request's extractors define their
variables for the request's own checkpoints and for every later step.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from jinja2 import TemplateSyntaxError, nodes
from jinja2.filters import FILTERS as JINJA_FILTERS
from jinja2.tests import TESTS as JINJA_TESTS
from pydantic import BaseModel

from runner import templating
from runner.errors import Problem
from runner.scenario.loader import DataPath, Document, did_you_mean, existing_file
from runner.scenario.model import Request, Scenario, SequenceStep, SetStep, User
from runner.scenario.types import Tmpl

_UNKNOWN = re.compile(r"no (filter|test) named '([^']*)'")
GUARDS = {"default", "d"}  # {{ x | default('') }} may read an undefined x
TESTS = {"defined", "undefined"}


def templates_in(value: Any, path: DataPath) -> Iterator[tuple[DataPath, Tmpl]]:
    """Every template string inside a model value, with its data path."""
    if isinstance(value, Tmpl):
        yield path, value
    elif isinstance(value, BaseModel):
        for name, info in type(value).model_fields.items():
            if name in value.model_fields_set:
                yield from templates_in(getattr(value, name), (*path, info.alias or name))
    elif isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, Tmpl):
                yield (*path, key), key
            yield from templates_in(item, (*path, key))
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from templates_in(item, (*path, index))


def _guarded(ast: nodes.Template) -> set[str]:
    names = set()
    for node in ast.find_all((nodes.Filter, nodes.Test)):
        if node.name in (GUARDS if isinstance(node, nodes.Filter) else TESTS) and isinstance(node.node, nodes.Name):
            names.add(node.node.name)
    return names


def used_names(source: str) -> set[str]:
    """Variables a template needs defined (built-ins and guarded reads excluded)."""
    if not templating.is_template(source):
        return set()
    ast = templating.parse(source)
    from jinja2 import meta

    return set(meta.find_undeclared_variables(ast)) - _guarded(ast) - templating.BUILTIN_NAMES


class _Flow:
    def __init__(self, doc: Document, everywhere: set[str]) -> None:
        self.doc = doc
        self.everywhere = everywhere  # every name anything in this user defines
        self.problems: list[Problem] = []

    def need(self, value: Any, path: DataPath, defined: set[str], elsewhere: set[str] = frozenset()) -> None:
        for where, source in templates_in(value, path):
            try:
                names = used_names(source)
            except TemplateSyntaxError as exc:  # parsed, but cannot compile: an unknown filter or test
                message = (exc.message or "cannot compile").rstrip(".")
                message = message[0].lower() + message[1:]
                unknown = _UNKNOWN.search(message)
                known = JINJA_FILTERS | templating.FILTERS if unknown and unknown[1] == "filter" else JINJA_TESTS
                hint = did_you_mean(unknown[2], known) if unknown else ""
                self.problems.append(self.doc.problem(where, f"template error: {message} in {source!r}", hint))
                continue
            for name in sorted(names - defined):
                self._undefined(where, name, elsewhere)

    def _undefined(self, where: DataPath, name: str, elsewhere: set[str]) -> None:
        if name in elsewhere:
            self.problems.append(
                self.doc.problem(
                    where,
                    f"variable '{name}' is only set by another task; it is undefined until that task has run",
                    f"set it in on_start, or write {{{{ {name} | default('') }}}}",
                    severity="warning",
                )
            )
        elif name in self.everywhere:
            self.problems.append(
                self.doc.problem(
                    where,
                    f"variable '{name}' is used before any step defines it",
                    "move the step that extracts or sets it earlier, or into on_start",
                )
            )
        else:
            hint = did_you_mean(name, self.everywhere | templating.RUNTIME_VARIABLES | set(templating.GLOBALS))
            self.problems.append(
                self.doc.problem(
                    where,
                    f"variable '{name}' is not defined by any variables, extractor or set step",
                    hint or "define it under variables, extract it from a response, or set it with a set step",
                )
            )

    def steps(self, steps: list[Any], path: DataPath, defined: set[str], elsewhere: set[str] = frozenset()) -> set[str]:
        defined = set(defined)
        for index, step in enumerate(steps):
            defined = self.step(step, (*path, index), defined, elsewhere)
        return defined

    def step(self, step: Any, path: DataPath, defined: set[str], elsewhere: set[str]) -> set[str]:
        if isinstance(step, Request):
            before = step.model_copy(update={"check": []})
            self.need(before, path, defined, elsewhere)
            defined = defined | set(step.extract or {})
            for index, check in enumerate(step.check):
                self.need(check, (*path, "check", index), defined, elsewhere)
        elif isinstance(step, SetStep):
            for name, value in step.set.items():
                self.need(value, (*path, "set", name), defined, elsewhere)
                defined = defined | {name}
        elif isinstance(step, SequenceStep):
            defined = self.steps(step.sequence, (*path, "sequence"), defined, elsewhere)
        return defined


def defines(value: Any) -> set[str]:
    """Every variable a step (or list of steps) can define."""
    if isinstance(value, list | tuple):
        return set().union(*(defines(v) for v in value)) if value else set()
    if isinstance(value, Request):
        return set(value.extract or {})
    if isinstance(value, SetStep):
        return set(value.set)
    if isinstance(value, SequenceStep):
        return defines(value.sequence)
    return set()


def _user_problems(doc: Document, scenario: Scenario, name: str, user: User, initial: set[str]) -> list[Problem]:
    path: DataPath = ("users", name)
    main = user.sequence if user.sequence is not None else user.tasks or []
    everywhere = initial | set(user.variables or {}) | defines(user.on_start) | defines(main) | defines(user.on_stop)
    flow = _Flow(doc, everywhere)
    flow.need(user.headers, (*path, "headers"), initial | set(user.variables or {}))
    flow.need(user.variables, (*path, "variables"), initial | set(user.variables or {}))
    defined = initial | set(user.variables or {})
    defined = flow.steps(user.on_start, (*path, "on_start"), defined)
    if user.sequence is not None:
        after = flow.steps(user.sequence, (*path, "sequence"), defined)
    else:
        after = set(defined)
        for index, task in enumerate(user.tasks or []):
            others = defines([t for i, t in enumerate(user.tasks or []) if i != index])
            after |= flow.step(task, (*path, "tasks", index), defined, others)
    flow.steps(user.on_stop, (*path, "on_stop"), after | defines(main))
    return flow.problems


def _file_problems(doc: Document, scenario: Scenario) -> list[Problem]:
    problems = []
    for user_name, user in scenario.users.items():
        for section in ("on_start", "sequence", "tasks", "on_stop"):
            steps = getattr(user, section) or []
            for path, request in _requests(steps, ("users", user_name, section)):
                for field, upload in (request.files or {}).items():
                    where = (*path, "files", field, "path")
                    base = Path(doc.mark(where).file).parent
                    if existing_file(base / upload.path) is None:
                        problems.append(
                            doc.problem(where, f"file not found: {upload.path}", f"paths are relative to {base}/")
                        )
    return problems


def _requests(steps: list[Any], path: DataPath) -> Iterator[tuple[DataPath, Request]]:
    for index, step in enumerate(steps):
        if isinstance(step, Request):
            yield (*path, index), step
        elif isinstance(step, SequenceStep):
            yield from _requests(step.sequence, (*path, index, "sequence"))


def analyze(doc: Document, scenario: Scenario) -> list[Problem]:
    """Problems the schema cannot see: errors and warnings (``Problem.severity``)."""
    initial = set(templating.RUNTIME_VARIABLES) | set(scenario.variables or {})
    flow = _Flow(doc, initial)
    flow.need(scenario.headers, ("headers",), initial)
    flow.need(scenario.variables, ("variables",), initial)
    problems = list(flow.problems)
    for name, user in scenario.users.items():
        problems += _user_problems(doc, scenario, name, user, initial)
    problems += _file_problems(doc, scenario)
    if scenario.host is None and not all(u.host for u in scenario.users.values()):
        problems.append(
            doc.problem(
                (),
                "no host: requests need a base URL",
                "add host: demo (or a URL), or pass -H URL",
                severity="warning",
            )
        )
    problems = list(dict.fromkeys(problems))  # aliased YAML repeats a place
    problems.sort(key=lambda p: (p.path, p.line, p.col))
    return problems
