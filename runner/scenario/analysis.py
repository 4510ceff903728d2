"""Static checks beyond the schema: variables used before anything defines them, files that are missing.

Variables flow like a user runs: scenario and user ``variables`` and built-ins first, then ``on_start``, then
the sequence in order (or each task on its own), then ``on_stop``. A request's extractors define their
variables for the request's own checkpoints and for every later step.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Set
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jinja2 import TemplateSyntaxError, nodes
from jinja2.filters import FILTERS as JINJA_FILTERS
from jinja2.tests import TESTS as JINJA_TESTS
from pydantic import BaseModel

import runner.scenario.templating as templating
from runner.errors import Problem
from runner.scenario.loader import DataPath, Document, existing_file
from runner.scenario.model import (
    SSE_STEPS,
    WS_STEPS,
    CallStep,
    GraphqlStep,
    GraphqlSubscribeStep,
    GrpcStep,
    IfStep,
    LoopStep,
    ParallelStep,
    PoolLoop,
    RendezvousStep,
    Request,
    Scenario,
    SequenceStep,
    SetStep,
    SseReceiveStep,
    SseSubscribeStep,
    TransactionStep,
    User,
    WsConnectStep,
    WsReceiveStep,
    WsSendStep,
    step_kind,
)
from runner.scenario.types import Tmpl
from runner.suggest import did_you_mean

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

    return (
        set(meta.find_undeclared_variables(ast))
        - _guarded(ast)
        - templating.BUILTIN_NAMES
        - templating.function_names()
    )


def _pool_reads(source: str) -> Iterator[tuple[str, str]]:
    """(pool, column) for each ``{{ pool.column }}`` / ``{{ pool['column'] }}`` in a template."""
    if not templating.is_template(source):
        return
    for node in templating.parse(source).find_all((nodes.Getattr, nodes.Getitem)):
        assert isinstance(node, nodes.Getattr | nodes.Getitem)
        if not isinstance(node.node, nodes.Name):
            continue
        if isinstance(node, nodes.Getattr):
            yield node.node.name, node.attr
        elif isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
            yield node.node.name, node.arg.value


@dataclass
class Known:
    """What the analysis knows besides the scenario: pool columns, the Python module's functions."""

    pools: dict[str, tuple[str, ...]] = field(default_factory=dict)
    functions: set[str] | None = None  # None: the scenario has no python module
    script_failed: bool = False  # the module could not be imported (that error is the one to show)


class _Flow:
    def __init__(self, doc: Document, everywhere: set[str], known: Known) -> None:
        self.doc = doc
        self.everywhere = everywhere  # every name anything in this user defines
        self.known = known
        self.problems: list[Problem] = []

    def need(self, value: Any, path: DataPath, defined: set[str], elsewhere: Set[str] = frozenset()) -> None:
        for where, source in templates_in(value, path):
            try:
                names = used_names(source)
                self._columns(source, where)
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

    def _columns(self, source: str, where: DataPath) -> None:
        for pool, column in _pool_reads(source):
            columns = self.known.pools.get(pool)
            if columns is not None and column not in columns:
                self.problems.append(
                    self.doc.problem(
                        where,
                        f"data pool '{pool}' has no column '{column}' (columns: {', '.join(columns)})",
                        did_you_mean(column, columns),
                    )
                )

    def function(self, name: str, path: DataPath) -> None:
        """A python: function name (call step, extractor, checkpoint) the module must have."""
        if self.known.script_failed:
            return
        if self.known.functions is None:
            self.problems.append(
                self.doc.problem(
                    path,
                    f"'{name}' is a Python function, but the scenario has no python: module",
                    "add python: hooks.py (a file next to the scenario) defining it",
                )
            )
        elif name not in self.known.functions:
            self.problems.append(
                self.doc.problem(
                    path,
                    f"the python module has no function '{name}'",
                    did_you_mean(name, self.known.functions) or "define it in the module (a public function)",
                )
            )

    def _undefined(self, where: DataPath, name: str, elsewhere: Set[str]) -> None:
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
                    f"variable '{name}' is not defined by any variables, extractor or set step"
                    + (" (unless the python module sets it)" if self.known.functions is not None else ""),
                    hint or "define it under variables, extract it from a response, or set it with a set step",
                    severity="warning" if self.known.functions is not None else "error",
                )
            )

    def steps(self, steps: list[Any], path: DataPath, defined: set[str], elsewhere: Set[str] = frozenset()) -> set[str]:
        defined = set(defined)
        for index, step in enumerate(steps):
            defined = self.step(step, (*path, index), defined, elsewhere)
        return defined

    def step(self, step: Any, path: DataPath, defined: set[str], elsewhere: Set[str]) -> set[str]:
        if isinstance(step, Request | GrpcStep):
            before = step.model_copy(update={"check": []})
            self.need(before, path, defined, elsewhere)
            for name, spec in (step.extract or {}).items():
                if spec.python is not None:
                    self.function(spec.python, (*path, "extract", name, "python"))
            defined = defined | set(step.extract or {})
            for index, check in enumerate(step.check):
                self.need(check, (*path, "check", index), defined, elsewhere)
                if check.python is not None:
                    self.function(check.python, (*path, "check", index, "python"))
        elif isinstance(step, SetStep):
            for name, value in step.set.items():
                self.need(value, (*path, "set", name), defined, elsewhere)
                defined = defined | {name}
        elif isinstance(step, SequenceStep):
            defined = self.steps(step.sequence, (*path, "sequence"), defined, elsewhere)
        elif isinstance(step, TransactionStep):
            defined = self.steps(step.steps, (*path, "steps"), defined, elsewhere)
        elif isinstance(step, IfStep):
            self.need(step.if_, (*path, "if"), defined, elsewhere)
            then = self.steps(step.then, (*path, "then"), defined, elsewhere)
            defined = then | self.steps(step.else_, (*path, "else"), defined, elsewhere)
        elif isinstance(step, LoopStep):
            if isinstance(step.loop, PoolLoop):
                if step.loop.pool not in self.known.pools:
                    self.problems.append(
                        self.doc.problem(
                            (*path, "loop", "pool"),
                            f"no data pool named '{step.loop.pool}'",
                            did_you_mean(step.loop.pool, self.known.pools) or "declare it under pools:",
                        )
                    )
            else:
                self.need(step.loop, (*path, "loop"), defined, elsewhere)
            defined = self.steps(step.steps, (*path, "steps"), defined | {step.as_}, elsewhere)
        elif isinstance(step, ParallelStep):  # sent at once: none of them sees what another extracts
            known_before = set(defined)
            for index, member in enumerate(step.parallel):
                defined = defined | self.step(member, (*path, "parallel", index), known_before, elsewhere)
        elif isinstance(step, (*WS_STEPS, *SSE_STEPS, GraphqlStep, GraphqlSubscribeStep)):
            defined = self.message_step(step, path, defined, elsewhere)
        elif isinstance(step, CallStep):
            self.function(step.call, (*path, "call"))
            self.need(step.args, (*path, "args"), defined, elsewhere)
            defined = defined | ({step.save} if step.save else set())
        return defined

    def message_step(self, step: Any, path: DataPath, defined: set[str], elsewhere: Set[str]) -> set[str]:
        """A WebSocket, SSE or GraphQL step: its templates, then what it extracts, then its checkpoints (which may
        read those)."""
        extract, checks = getattr(step, "extract", None), getattr(step, "check", [])
        self.need(step.model_copy(update={"check": []} if checks else {}), path, defined, elsewhere)
        for name, spec in (extract or {}).items():
            if spec.python is not None:
                self.function(spec.python, (*path, "extract", name, "python"))
        defined = defined | set(extract or {})
        for index, check in enumerate(checks):
            self.need(check, (*path, "check", index), defined, elsewhere)
        return defined


def defines(value: Any) -> set[str]:
    """Every variable a step (or list of steps) can define."""
    if isinstance(value, list | tuple):
        return set().union(*(defines(v) for v in value)) if value else set()
    if isinstance(value, Request | GrpcStep):
        return set(value.extract or {})
    if isinstance(value, SetStep):
        return set(value.set)
    if isinstance(value, SequenceStep):
        return defines(value.sequence)
    if isinstance(value, TransactionStep):
        return defines(value.steps)
    if isinstance(value, IfStep):
        return defines(value.then) | defines(value.else_)
    if isinstance(value, LoopStep):
        return defines(value.steps) | {value.as_}
    if isinstance(value, CallStep):
        return {value.save} if value.save else set()
    if isinstance(value, ParallelStep):
        return defines(value.parallel)
    if isinstance(value, WsSendStep | WsReceiveStep | SseReceiveStep | GraphqlStep | GraphqlSubscribeStep):
        return set(value.extract or {})
    return set()


def _user_problems(
    doc: Document, scenario: Scenario, name: str, user: User, initial: set[str], known: Known
) -> list[Problem]:
    path: DataPath = ("users", name)
    main = user.sequence if user.sequence is not None else user.tasks or []
    everywhere = initial | set(user.variables or {}) | defines(user.on_start) | defines(main) | defines(user.on_stop)
    flow = _Flow(doc, everywhere, known)
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
    for base, steps in step_lists(scenario):
        for path, request in _requests(steps, base):
            for field_name, upload in (request.files or {}).items():
                where = (*path, "files", field_name, "path")
                folder = Path(doc.mark(where).file).parent
                if existing_file(folder / upload.path) is None:
                    problems.append(
                        doc.problem(where, f"file not found: {upload.path}", f"paths are relative to {folder}/")
                    )
    return problems


def walk_steps(steps: list[Any], path: DataPath) -> Iterator[tuple[DataPath, Any]]:
    """Every step, nested ones included, with its data path."""
    for index, step in enumerate(steps):
        here = (*path, index)
        yield here, step
        for kind, attribute, key in NESTED:
            if isinstance(step, kind):
                yield from walk_steps(getattr(step, attribute), (*here, key))


NESTED: list[tuple[type, str, str]] = [  # (step type, attribute holding steps, its key in the file)
    (SequenceStep, "sequence", "sequence"),
    (TransactionStep, "steps", "steps"),
    (LoopStep, "steps", "steps"),
    (IfStep, "then", "then"),
    (IfStep, "else_", "else"),
    (ParallelStep, "parallel", "parallel"),
]


def _requests(steps: list[Any], path: DataPath) -> Iterator[tuple[DataPath, Request]]:
    for where, step in walk_steps(steps, path):
        if isinstance(step, Request):
            yield where, step


def step_lists(scenario: Scenario) -> Iterator[tuple[DataPath, list[Any]]]:
    """Every top-level list of steps in the scenario, with its data path."""
    for phase in ("setup", "teardown"):
        yield (phase,), getattr(scenario, phase)
    for user_name, user in scenario.users.items():
        for section in ("on_start", "sequence", "tasks", "on_stop"):
            yield ("users", user_name, section), getattr(user, section) or []


LOAD_HAS = "the load has "  # a run with -u / -t judges this warning again with its own user count (runner.drive)


def _rendezvous_problems(doc: Document, scenario: Scenario) -> list[Problem]:
    """Same-named points must agree; a point waiting for more users than the test has can never fill."""
    problems = []
    seen: dict[str, RendezvousStep] = {}
    load = scenario.load
    users = max((s.users for s in load.stages), default=0) if load.stages else load.users
    explicit = bool(load.stages) or "users" in load.model_fields_set
    if load.is_open:
        users, explicit = load.max_users, True
    for base, steps in step_lists(scenario):
        for path, step in walk_steps(steps, base):
            if not isinstance(step, RendezvousStep):
                continue
            first = seen.setdefault(step.rendezvous, step)
            if first is not step and (first.policy, first.timeout) != (step.policy, step.timeout):
                problems.append(
                    doc.problem(
                        (*path, "rendezvous"),
                        f"rendezvous '{step.rendezvous}' is declared again with another policy or timeout",
                        "give each point one policy (or another name)",
                    )
                )
            kind, value = step.policy
            if kind == "users" and value > users:
                problems.append(
                    doc.problem(
                        (*path, "users"),
                        f"rendezvous '{step.rendezvous}' waits for {value:g} users, but {LOAD_HAS}"
                        f"{users} at most: only its timeout ({step.timeout:g}s) would release them",
                        "lower users:, use percent: or percent_running:, or raise the load's users",
                        severity="error" if explicit else "warning",
                    )
                )
    return problems


def _connection_problems(doc: Document, scenario: Scenario) -> list[Problem]:
    """A WebSocket step names a connection its user (or the setup, the teardown) opens with ws_connect."""
    owners: dict[DataPath, list[tuple[DataPath, list[Any]]]] = {}
    for base, steps in step_lists(scenario):
        owners.setdefault(base[:2] if base[0] == "users" else base[:1], []).append((base, steps))
    problems: list[Problem] = []
    for lists in owners.values():
        found = [(path, step) for base, steps in lists for path, step in walk_steps(steps, base)]
        plain = {step.as_ for _, step in found if isinstance(step, WsConnectStep)}
        for path, step in found:
            if isinstance(step, GraphqlSubscribeStep) and step.as_ in plain:
                problems.append(
                    doc.problem(
                        (*path, "as") if "as_" in step.model_fields_set else path,
                        f"the connection '{step.as_}' is a plain WebSocket (ws_connect) of this user: a "
                        "graphql_subscribe connection speaks graphql-transport-ws",
                        "give one of them another as:",
                    )
                )
        for kind, opener, kinds in (
            ("WebSocket", WsConnectStep, WS_STEPS),
            ("SSE stream", SseSubscribeStep, SSE_STEPS),
        ):
            openers = (opener, GraphqlSubscribeStep) if opener is WsConnectStep else (opener,)  # ws_ping, ws_close it
            opened = {step.as_ for _, step in found if isinstance(step, openers)}
            for path, step in found:
                if not isinstance(step, kinds) or isinstance(step, opener):
                    continue
                key = "connection" if hasattr(step, "connection") else step_kind(step) or ""
                conn = getattr(step, key) or ("ws" if opener is WsConnectStep else "sse")
                if conn not in opened:
                    where = (*path, key) if key != "connection" or "connection" in step.model_fields_set else path
                    problems.append(
                        doc.problem(
                            where,
                            f"no {kind} named '{conn}' is opened by this user",
                            did_you_mean(conn, opened)
                            or f"open it first: {'ws_connect' if kind == 'WebSocket' else 'sse_subscribe'}: URL "
                            f"with as: {conn}",
                        )
                    )
    return problems


def _pool_problems(doc: Document, scenario: Scenario) -> list[Problem]:
    problems = []
    for name, pool in (scenario.pools or {}).items():
        if pool.order == "unique" and pool.empty_policy == "cycle":
            problems.append(
                doc.problem(
                    ("pools", name, "when_empty"),
                    f"pool '{name}': unique + cycle means no two users hold a row at the same time, but rows are "
                    "handed out again once all have been used",
                    "use stop_user or stop_test if every row must be used once only",
                    severity="warning",
                )
            )
    return problems


def analyze(doc: Document, scenario: Scenario, known: Known | None = None) -> list[Problem]:
    """Problems the schema cannot see: errors and warnings (``Problem.severity``)."""
    known = known or Known()
    initial = set(templating.RUNTIME_VARIABLES) | set(scenario.variables or {}) | set(scenario.pools or {})
    flow = _Flow(doc, initial | defines(scenario.setup), known)
    flow.need(scenario.headers, ("headers",), initial)
    flow.need(scenario.variables, ("variables",), initial)
    after_setup = flow.steps(scenario.setup, ("setup",), initial)
    flow.steps(scenario.teardown, ("teardown",), after_setup)
    problems = list(flow.problems)
    for name, user in scenario.users.items():
        problems += _user_problems(doc, scenario, name, user, after_setup, known)
    problems += _file_problems(doc, scenario)
    problems += _rendezvous_problems(doc, scenario)
    problems += _pool_problems(doc, scenario)
    problems += _connection_problems(doc, scenario)
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
