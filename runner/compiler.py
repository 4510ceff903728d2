"""Compile a validated scenario into generated ``VirtualUser`` classes.

Everything that can be prepared once is prepared here: templates, extractors (regex, jsonpath, xpath),
checkpoints, think-time samplers, uploaded files. A compiled step is a closure ``step(user)``; the only
per-request work left is rendering the templates that really vary and the request itself.
"""

from __future__ import annotations

import bisect
import itertools
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import TemplateError

from runner import templating
from runner.checks import compile_checks
from runner.engine.flow import ON_FAIL, FlowSignal
from runner.engine.user import HttpSettings, Program, RequestResult, Step, Think, VirtualUser
from runner.extract import compile_extractor
from runner.scenario import LoadedScenario
from runner.scenario.model import (
    Between,
    Gaussian,
    Request,
    Scenario,
    SequenceStep,
    SetStep,
    ThinkStep,
    User,
)

Render = Callable[[Mapping[str, Any]], Any]


@dataclass
class CompiledScenario:
    name: str
    user_classes: list[type[VirtualUser]]


@dataclass(frozen=True)
class CompileOptions:
    host: str | None = None  # overrides the scenario's host (-H)
    demo_url: str | None = None  # where 'host: demo' points, once the demo target runs
    tags: tuple[str, ...] = ()  # keep only user types and tasks with one of these tags (--tags)
    exclude_tags: tuple[str, ...] = ()  # drop user types and tasks with one of these tags (--exclude-tags)


def _selected_tasks(user: User, options: CompileOptions) -> list[Any] | None:
    """The tasks of a user type that --tags / --exclude-tags keep; None when the type is left out."""
    wanted, unwanted = set(options.tags), set(options.exclude_tags)
    if unwanted & set(user.tags):
        return None
    user_matches = not wanted or bool(wanted & set(user.tags))
    if user.tasks is None:
        return [] if user_matches else None
    tasks = [t for t in user.tasks if not unwanted & set(t.tags) and (user_matches or wanted & set(t.tags))]
    return tasks if any(t.weight for t in tasks) else None


def compile_think(spec: Any) -> Callable[[], float] | None:
    """A sampler returning seconds to wait, or None for no think time."""
    if spec is None:
        return None
    if isinstance(spec, Between):
        low, high = spec.between
        return lambda: random.uniform(low, high)
    if isinstance(spec, Gaussian):
        mean, stddev = spec.gaussian.mean, spec.gaussian.stddev
        return lambda: max(0.0, random.gauss(mean, stddev))
    seconds = float(spec)
    return (lambda: seconds) if seconds > 0 else None


def _render_error(exc: Exception) -> str:
    return f"template error: {exc}"


class _Context:
    """What compiling one user needs to know."""

    def __init__(self, scenario: Scenario, user: User, files_base: Callable[[tuple], Path]) -> None:
        self.default_think = compile_think(user.think if user.think is not None else scenario.think)
        self.files_base = files_base


def _compile_request(step: Request, ctx: _Context, path: tuple) -> list[Step | Think]:
    method = step.method
    url = templating.compile_template(step.url).render
    name = step.name or step.url
    query = templating.compile_value(step.query, native=False) if step.query else None
    headers = templating.compile_value(step.headers, native=False) if step.headers else None
    json_body = templating.compile_value(step.json_, native=True) if step.has_json else None
    form = templating.compile_value(step.form, native=False) if step.form is not None else None
    body = templating.compile_template(step.body).render if step.body is not None else None
    files = None
    if step.files:
        files = {}
        for field, upload in step.files.items():
            file_path = ctx.files_base((*path, "files", field, "path")) / upload.path
            files[field] = (upload.filename or file_path.name, file_path.read_bytes(), upload.content_type)
    timeout = step.timeout
    allow_redirects = step.allow_redirects
    extractors = [compile_extractor(var, spec) for var, spec in (step.extract or {}).items()]
    checkpoints = compile_checks(step.check)
    think = compile_think(step.think) if step.think is not None else ctx.default_think
    signals = [ON_FAIL[c.on_fail] for c in checkpoints]

    def exchange(user: VirtualUser) -> FlowSignal | None:
        """Send, extract, check, report; the response dies with this frame, before any think time."""
        variables = user.vars
        runtime = user.runtime
        trace = runtime.trace
        try:
            target = url(variables)
            kwargs: dict[str, Any] = {}
            if query is not None:
                kwargs["query"] = query(variables)
            if headers is not None:
                kwargs["headers"] = headers(variables)
            if json_body is not None:
                kwargs["json"] = json_body(variables)
            elif form is not None:
                kwargs["form"] = form(variables)
            elif body is not None:
                kwargs["body"] = body(variables)
            if files is not None:
                kwargs["files"] = files
        except (TemplateError, ValueError, TypeError, ArithmeticError) as exc:
            # Not sent: report it under the request's name so the failure is counted where users look.
            runtime.on_request(user, RequestResult(method, name, step.url, 0, 0.0, 0, _render_error(exc)))
            return None
        response = user.session.request(method, target, timeout=timeout, allow_redirects=allow_redirects, **kwargs)
        failure: str | None = None
        missing: str | None = None
        extracted = {} if trace else None
        warnings: list[str] | None = [] if trace else None
        for extractor in extractors:
            message = extractor.extract(response, variables, user.session.cookies)
            if message is None:
                if extracted is not None:
                    extracted[extractor.variable] = variables.get(extractor.variable)
                continue
            if extractor.fail_on_miss:
                missing = missing or message
            else:
                runtime.on_warning(user, message)
                if warnings is not None:
                    warnings.append(message)
            if extracted is not None and extractor.variable in variables:
                extracted[extractor.variable] = variables[extractor.variable]
        signal = None
        verdicts: list[tuple[str, str | None]] | None = [] if trace else None
        for checkpoint, on_fail in zip(checkpoints, signals, strict=True):
            message = checkpoint.check(response, variables)
            if verdicts is not None:
                verdicts.append((checkpoint.description, message))
            if message is not None:
                failure = failure or message
                if on_fail is not None and signal is None:
                    signal = on_fail(message)
                if not trace:
                    break
        failure = failure or missing
        result = RequestResult(method, name, response.url, response.status, response.elapsed_ms, response.size, failure)
        if trace:
            result.response = response
            result.trace_extracted = extracted
            result.trace_checks = verdicts
            result.trace_warnings = warnings
        runtime.on_request(user, result)
        return signal

    def run(user: VirtualUser) -> None:
        signal = exchange(user)
        if signal is not None:
            raise signal

    return [run] if think is None else [run, Think(think)]


def _compile_set(step: SetStep) -> Step:
    values = [(name, templating.compile_value(value, native=True)) for name, value in step.set.items()]

    def run(user: VirtualUser) -> None:
        for name, render in values:
            user.vars[name] = render(user.vars)

    return run


def _compile_steps(steps: list[Any], ctx: _Context, path: tuple) -> Program:
    """A flat program: nested sequences are spliced in, think times become ``Think`` markers."""
    program: list[Step | Think] = []
    for index, step in enumerate(steps):
        program += _compile_step(step, ctx, (*path, index))
    return tuple(program)


def _compile_step(step: Any, ctx: _Context, path: tuple) -> list[Step | Think]:
    if isinstance(step, Request):
        return _compile_request(step, ctx, path)
    if isinstance(step, SetStep):
        return [_compile_set(step)]
    if isinstance(step, ThinkStep):
        sample = compile_think(step.think)
        return [Think(sample)] if sample is not None else []
    if isinstance(step, SequenceStep):
        return list(_compile_steps(step.sequence, ctx, (*path, "sequence")))
    raise TypeError(f"cannot compile step {type(step).__name__}")  # pragma: no cover - the model forbids it


def _pick(programs: list[tuple[int, Program]]) -> Callable[[], Program]:
    """Each iteration: one program (a task) by weight."""
    programs = [(w, p) for w, p in programs if w > 0]
    if len(programs) == 1:
        only = programs[0][1]
        return lambda: only
    choices = [p for _, p in programs]
    cumulative = list(itertools.accumulate(w for w, _ in programs))
    total = cumulative[-1]
    return lambda: choices[bisect.bisect_right(cumulative, random.random() * total)]


def _headers(scenario: Scenario, user: User) -> Render:
    merged = {**(scenario.headers or {}), **(user.headers or {})}
    return templating.compile_value(merged, native=False) if merged else templating.Constant({})


def _variables(scenario: Scenario, user: User) -> Callable[[dict[str, Any]], None]:
    """Render the initial variables into a new user's variables, in the order they were written."""
    parts = [
        (name, templating.compile_value(value, native=True))
        for name, value in {**(scenario.variables or {}), **(user.variables or {})}.items()
    ]

    def fill(variables: dict[str, Any]) -> None:
        for name, render in parts:
            variables[name] = render(variables)

    return fill


def _class_name(name: str) -> str:
    words = "".join(c if c.isalnum() else " " for c in name).split()
    return "".join(w[:1].upper() + w[1:] for w in words) + "User"


def _resolve_host(host: str | None, options: CompileOptions) -> str:
    if host == "demo":
        if options.demo_url is None:
            raise ValueError("host 'demo' needs the demo target started (CompileOptions.demo_url)")
        return options.demo_url
    return host or ""


def needs_demo(scenario: Scenario, host_override: str | None = None) -> bool:
    hosts = [u.host for u in scenario.users.values()] + [host_override or scenario.host]
    return "demo" in hosts


def compile_scenario(loaded: LoadedScenario, options: CompileOptions = CompileOptions()) -> CompiledScenario:
    scenario = loaded.model
    document = loaded.document
    http = HttpSettings(scenario.http.timeout, scenario.http.connect_timeout, scenario.http.max_redirects)

    def files_base(path: tuple) -> Path:
        return Path(document.mark(path).file).parent

    classes: list[type[VirtualUser]] = []
    for name, user in scenario.users.items():
        tasks = _selected_tasks(user, options)
        if tasks is None:
            continue
        ctx = _Context(scenario, user, files_base)
        base = ("users", name)
        if user.sequence is not None:
            pick = _pick([(1, _compile_steps(user.sequence, ctx, (*base, "sequence")))])
        else:
            index = {id(t): i for i, t in enumerate(user.tasks or [])}
            pick = _pick([(t.weight, tuple(_compile_step(t, ctx, (*base, "tasks", index[id(t)])))) for t in tasks])
        attributes = {
            "__slots__": (),
            "type_name": name,
            "weight": user.weight,
            "fixed_count": user.count,
            "host": _resolve_host(user.host or options.host or scenario.host, options),
            "http": http,
            "make_headers": staticmethod(_headers(scenario, user)),
            "make_variables": staticmethod(_variables(scenario, user)),
            "on_start_program": _compile_steps(user.on_start, ctx, (*base, "on_start")),
            "pick_iteration": staticmethod(pick),
            "on_stop_program": _compile_steps(user.on_stop, ctx, (*base, "on_stop")),
        }
        classes.append(type(_class_name(name), (VirtualUser,), attributes))
    return CompiledScenario(loaded.name, classes)


__all__ = [
    "CompileOptions",
    "CompiledScenario",
    "compile_scenario",
    "compile_think",
    "needs_demo",
]
