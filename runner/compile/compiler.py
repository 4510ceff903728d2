"""Compile a validated scenario into generated ``VirtualUser`` classes.

Everything that can be prepared once is prepared here: templates, extractors (regex, jsonpath, xpath),
checkpoints, think-time samplers, uploaded files. A compiled step is a closure ``step(user)``; the only
per-request work left is rendering the templates that really vary and the request itself.
"""

from __future__ import annotations

import bisect
import copy
import dataclasses
import itertools
import random
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from time import monotonic
from typing import Any

from jinja2 import TemplateError

from runner.compile.checkpoints import compile_checks
from runner.compile.extract import compile_extractor
from runner.compile.parallel import compile_parallel
from runner.compile.pools import Pool
from runner.engine.calls import RequestResult
from runner.engine.flow import ON_FAIL, FlowSignal, StopUser
from runner.engine.rendezvous import RendezvousPoint, RendezvousSpec
from runner.engine.state import RunState
from runner.engine.user import INF, HttpSettings, Program, Step, Think, VirtualUser
from runner.protocols.grpc_compile import read_ca
from runner.protocols.steps import compile_protocol_step
from runner.report.model import Pool as PoolResult
from runner.report.model import Rendezvous as RendezvousResult
from runner.scenario import LoadedScenario, templating
from runner.scenario.analysis import templates_in, used_names
from runner.scenario.model import (
    SSE_STEPS,
    WS_STEPS,
    Between,
    CallStep,
    Gaussian,
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
    ThinkStep,
    TransactionStep,
    User,
)
from runner.scenario.scripting import Script, ScriptError, describe, template_functions
from runner.stats.checks import CheckKey, CheckStats

Render = Callable[[Mapping[str, Any]], Any]


@dataclass(frozen=True)
class CompiledScenario:
    """What compiling made; frozen, and nothing in it changes during a run: a run keeps what it changes (pools'
    row sources, rendezvous gates, checkpoint counts, setup variables) in its own ``RunState``."""

    name: str
    user_classes: list[type[VirtualUser]]
    pools: dict[str, Pool] = field(default_factory=dict)
    rendezvous: dict[str, RendezvousSpec] = field(default_factory=dict)
    setup: type[VirtualUser] | None = None  # a one-off user whose on_start is the scenario's setup steps
    teardown: type[VirtualUser] | None = None
    script: Script | None = None
    checkpoints: tuple[CheckKey, ...] = ()  # (method, name, check) by counter slot: see runner.stats.checks

    def all_classes(self) -> list[type[VirtualUser]]:
        """The user types, with the setup and teardown users."""
        return [c for c in (self.setup, *self.user_classes, self.teardown) if c is not None]

    def fresh_state(self, setup_vars: dict[str, Any] | None = None) -> RunState:
        """A test's state: every pool at its first row, every rendezvous point closed and switched off (the run
        switches them on and tells them its population before its users start)."""
        return RunState(
            CheckStats(self.checkpoints),
            dict(setup_vars or {}),
            pools={name: pool.new_rows() for name, pool in self.pools.items()},
            points={name: RendezvousPoint.of(spec) for name, spec in self.rendezvous.items()},
        )

    def pool_results(self, state: RunState) -> list[PoolResult]:
        """The results' "pools": those some user type reads, with what the test of ``state`` handed out."""
        read = {pool.name for cls in self.all_classes() for pool in cls.pools}
        pools = [pool for name, pool in self.pools.items() if name in read]
        return [PoolResult.model_validate(pool.summary(state.rows(pool))) for pool in pools]

    def rendezvous_results(self, state: RunState) -> list[RendezvousResult]:
        """The results' "rendezvous": each point's arrivals and releases in the test of ``state``."""
        return [RendezvousResult.model_validate(state.point(spec).gate.summary()) for spec in self.rendezvous.values()]


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
    """What compiling one user needs to know, and what it finds: the pools the user reads, checkpoints."""

    def __init__(self, scenario: Scenario, user: User | None, shared: _Shared) -> None:
        think = user.think if user is not None and user.think is not None else scenario.think
        self.default_think = compile_think(think)
        self.compile_think = compile_think  # for steps compiled outside this module (runner.protocols)
        self.shared = shared
        self.pools_read: dict[str, Pool] = {}


@dataclass
class _Shared:
    """What all user types of a scenario share."""

    files_base: Callable[[tuple], Path]
    pools: dict[str, Pool]
    points: dict[str, RendezvousSpec]
    script: Script | None
    checkpoints: list[CheckKey] = field(default_factory=list)
    loop_ids: itertools.count = field(default_factory=itertools.count)
    grpc: Any = None  # the scenario's gRPC descriptors (runner.scenario.grpc_proto), None with reflection
    grpc_ca: bytes | None = None  # grpc.ca: the PEM its TLS channels trust


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
        for field_name, upload in step.files.items():
            file_path = ctx.shared.files_base((*path, "files", field_name, "path")) / upload.path
            files[field_name] = (upload.filename or file_path.name, file_path.read_bytes(), upload.content_type)
    timeout = step.timeout
    allow_redirects = step.allow_redirects
    discard_body = step.discard_body
    script = ctx.shared.script
    extractors = [compile_extractor(var, spec, script) for var, spec in (step.extract or {}).items()]
    checkpoints = compile_checks(step.check, script)
    think = compile_think(step.think) if step.think is not None else ctx.default_think
    signals = [ON_FAIL[c.on_fail] for c in checkpoints]
    # a request that cannot be rendered is not sent; the first checkpoint's on_fail that says more than
    # "continue" decides what follows, as it would have for a failed response
    on_render_error = next((s for s in signals if s is not None), None)
    first = len(ctx.shared.checkpoints)  # this request's counters in the run's CheckStats
    ctx.shared.checkpoints.extend((method, name, c.description) for c in checkpoints)
    checks = tuple(zip(checkpoints, signals, range(first, first + len(checkpoints)), strict=True))
    # what is rendered per request, by keyword: none for a plain GET; one body, JSON before form before text
    content = ("json", json_body) if json_body is not None else ("form", form) if form is not None else ("body", body)
    parts = tuple(
        (keyword, render) for keyword, render in (("query", query), ("headers", headers), content) if render is not None
    )

    key = (method, name)

    def run(user: VirtualUser) -> None:
        """Send, extract, check, report; the response dies with this frame, before any think time."""
        variables = user.vars
        runtime = user.runtime
        trace = runtime.trace
        try:
            target = url(variables)
            kwargs: dict[str, Any] = {keyword: render(variables) for keyword, render in parts} if parts else {}
            if files is not None:
                kwargs["files"] = files
        except (TemplateError, ValueError, TypeError, ArithmeticError) as exc:
            # Not sent: report it under the request's name so the failure is counted where users look.
            message = _render_error(exc)
            runtime.on_request(user, RequestResult(method, name, step.url, 0, 0.0, 0, message))
            if user.transactions:
                user.fail_transactions(message)
            if on_render_error is not None:
                raise on_render_error(message) from None
            return
        user.in_flight = key  # still set if the run stops while it is under way: counted as interrupted
        if kwargs:
            response = user.session.request(
                method, target, timeout=timeout, allow_redirects=allow_redirects, discard_body=discard_body, **kwargs
            )
        else:  # a plain GET: a call without ** builds no dict of keywords
            response = user.session.request(
                method, target, timeout=timeout, allow_redirects=allow_redirects, discard_body=discard_body
            )
        deadline = user.deadline  # user.past_deadline(), inlined: this runs for every request
        if deadline != INF and monotonic() >= deadline:  # the run ended while it was under way: counted as interrupted
            raise StopUser("the run's deadline passed")
        user.in_flight = None
        failure: str | None = None
        missing: str | None = None
        extracted: dict[str, Any] | None = None
        warnings: list[str] | None = None
        verdicts: list[tuple[str, str | None]] | None = None
        if trace:
            extracted, warnings, verdicts = {}, [], []
        for extractor in extractors:
            message = extractor.extract(response, variables, user.session.cookies)  # type: ignore[assignment]
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
        counts = user.check_counts
        for checkpoint, on_fail, slot in checks:
            tally = counts[slot]
            message = checkpoint.check(response, variables)  # type: ignore[assignment]
            if verdicts is not None:
                verdicts.append((checkpoint.label(variables), message))
            if message is None:
                tally[0] += 1
            else:
                tally[1] += 1
                failure = failure or message
                if on_fail is not None and signal is None:
                    signal = on_fail(message)
                if not trace:
                    break
        failure = failure or missing
        if trace:
            result = RequestResult.of(method, name, response, failure)
            result.response = response
            result.trace_extracted = extracted
            result.trace_checks = verdicts
            result.trace_warnings = warnings
            runtime.on_request(user, result)
        else:
            runtime.on_response(user, method, name, response, failure)
        if failure is not None and user.transactions:
            user.fail_transactions(failure)
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
    """A flat program: nested steps are spliced in, think times become ``Think`` markers, branches jumps."""
    program: list[Step | Think] = []
    for index, step in enumerate(steps):
        program += _compile_step(step, ctx, (*path, index))
    return tuple(program)


def _compile_step(step: Any, ctx: _Context, path: tuple) -> list[Step | Think]:
    items = _compile_kind(step, ctx, path)
    reads = [ctx.shared.pools[n] for n in sorted(_own_names(step) & set(ctx.shared.pools))]
    if not reads:
        return items
    for pool in reads:
        ctx.pools_read[pool.name] = pool

    def refresh(user: VirtualUser) -> None:
        state = user.run_state
        for pool in reads:
            pool.refresh(user, state.rows(pool))

    return [refresh, *items]


def _compile_kind(step: Any, ctx: _Context, path: tuple) -> list[Step | Think]:
    if isinstance(step, Request):
        return _compile_request(step, ctx, path)
    if isinstance(step, SetStep):
        return [_compile_set(step)]
    if isinstance(step, ThinkStep):
        sample = compile_think(step.think)
        return [Think(sample)] if sample is not None else []
    if isinstance(step, SequenceStep):
        return list(_compile_steps(step.sequence, ctx, (*path, "sequence")))
    if isinstance(step, TransactionStep):
        return _compile_transaction(step, ctx, path)
    if isinstance(step, RendezvousStep):
        return [_compile_rendezvous(step, ctx)]
    if isinstance(step, IfStep):
        return _compile_if(step, ctx, path)
    if isinstance(step, LoopStep):
        return _compile_loop(step, ctx, path)
    if isinstance(step, CallStep):
        return [_compile_call(step, ctx)]
    if isinstance(step, ParallelStep):
        requests: list[Any] = [_compile_request(r, ctx, (*path, "parallel", i))[0] for i, r in enumerate(step.parallel)]
        think = Think(ctx.default_think) if ctx.default_think is not None else None
        return compile_parallel(step, requests, think)
    if (compiled := compile_protocol_step(step, ctx)) is not None:
        return compiled
    raise TypeError(f"cannot compile step {type(step).__name__}")  # pragma: no cover - the model forbids it


def _own_names(step: Any) -> set[str]:
    """Variables a step's own templates read (not those of the steps nested in it)."""
    if isinstance(
        step,
        (Request, SetStep, CallStep, ParallelStep, GrpcStep, GraphqlStep, GraphqlSubscribeStep, *WS_STEPS, *SSE_STEPS),
    ):
        own: Any = step
    elif isinstance(step, IfStep):
        own = step.if_
    elif isinstance(step, LoopStep):
        own = step.loop if isinstance(step.loop, str) else None
    else:
        return set()
    names: set[str] = set()
    for _, source in templates_in(own, ()):
        names |= used_names(source)
    return names


def _compile_transaction(step: TransactionStep, ctx: _Context, path: tuple) -> list[Step | Think]:
    name = step.transaction

    def begin(user: VirtualUser) -> None:
        user.begin_transaction(name)

    def end(user: VirtualUser) -> None:
        user.end_transaction()

    return [begin, *_compile_steps(step.steps, ctx, (*path, "steps")), end]


def _compile_rendezvous(step: RendezvousStep, ctx: _Context) -> Step:
    spec = ctx.shared.points.get(step.rendezvous)
    if spec is None:
        kind, value = step.policy
        spec = ctx.shared.points[step.rendezvous] = RendezvousSpec(step.rendezvous, kind, value, step.timeout)

    def arrive(user: VirtualUser) -> None:
        waited = user.run_state.point(spec).wait()
        if waited and user.transactions:
            user.exclude_from_transactions(waited)

    return arrive


def _compile_if(step: IfStep, ctx: _Context, path: tuple) -> list[Step | Think]:
    condition = templating.compile_template(step.if_, native=True).render
    then = _compile_steps(step.then, ctx, (*path, "then"))
    otherwise = _compile_steps(step.else_, ctx, (*path, "else"))
    skip_then = len(then) + (1 if otherwise else 0)

    def branch(user: VirtualUser) -> int | None:
        return None if condition(user.vars) else skip_then

    if not otherwise:
        return [branch, *then]
    skip_else = len(otherwise)

    def jump(user: VirtualUser) -> int:
        return skip_else

    return [branch, *then, jump, *otherwise]


def _compile_loop(step: LoopStep, ctx: _Context, path: tuple) -> list[Step | Think]:
    body = _compile_steps(step.steps, ctx, (*path, "steps"))
    loop_id = next(ctx.shared.loop_ids)
    variable = step.as_
    spec = step.loop
    if isinstance(spec, PoolLoop):
        data = ctx.shared.pools[spec.pool].data

        def elements(user: VirtualUser) -> Iterator[Any]:
            return (data.row(i) for i in range(len(data)))

    elif isinstance(spec, str):
        render = templating.compile_template(spec, native=True).render

        def elements(user: VirtualUser) -> Iterator[Any]:
            value = render(user.vars)
            if isinstance(value, int) and not isinstance(value, bool):
                return iter(range(1, value + 1))
            if isinstance(value, str) and value.strip().isdigit():
                return iter(range(1, int(value) + 1))
            if isinstance(value, list | tuple | dict):
                return iter(list(value))
            raise ValueError(f"loop: {spec!r} gave {value!r}; expected a count or a list")

    elif isinstance(spec, list):
        items = list(spec)

        def elements(user: VirtualUser) -> Iterator[Any]:
            return iter(items)

    else:
        count = spec

        def elements(user: VirtualUser) -> Iterator[Any]:
            return iter(range(1, count + 1))

    leave = len(body) + 1
    back = -(len(body) + 2)

    def enter(user: VirtualUser) -> None:
        user.loops[loop_id] = elements(user)

    def head(user: VirtualUser) -> int | None:
        for element in user.loops[loop_id]:
            user.vars[variable] = element
            return None
        del user.loops[loop_id]
        return leave

    def again(user: VirtualUser) -> int:
        return back

    return [enter, head, *body, again]


def _compile_call(step: CallStep, ctx: _Context) -> Step:
    script = ctx.shared.script
    assert script is not None  # the analysis reports a call without a module
    function = script.function(step.call)
    module_file = str(script.path)
    args = templating.compile_value(step.args, native=True) if step.args else templating.Constant({})
    save = step.save
    signal = ON_FAIL[step.on_error]

    def call(user: VirtualUser) -> None:
        try:
            value = function(user, **args(user.vars))
        except FlowSignal:
            raise
        except Exception as exc:
            message = describe(exc, module_file)
            if user.transactions:
                user.fail_transactions(message)
            error = ScriptError(message).with_traceback(exc.__traceback__)
            user.runtime.on_error(user, error)
            if signal is not None:
                raise signal(message) from None
            return
        if save is not None:
            user.vars[save] = value

    return call


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


def _headers(scenario: Scenario, user: User | None) -> Render:
    merged = {**(scenario.headers or {}), **((user.headers if user else None) or {})}
    return templating.compile_value(merged, native=False) if merged else templating.Constant({})


def _variables(scenario: Scenario, user: User | None) -> Callable[[dict[str, Any]], None]:
    """Render the initial variables into a new user's variables, in the order they were written."""
    mine = (user.variables if user else None) or {}
    parts = [
        (name, templating.compile_value(value, native=True))
        for name, value in {**(scenario.variables or {}), **mine}.items()
    ]

    def fill(variables: dict[str, Any]) -> None:
        for name, render in parts:
            value = render(variables)
            # each user gets its own lists and mappings: a Python step that appends to one must not change all
            variables[name] = copy.deepcopy(value) if isinstance(value, list | dict) else value

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
    """Whether the run must start the demo target."""
    hosts = [u.host for u in scenario.users.values()] + [host_override or scenario.host]
    return "demo" in hosts


def compile_scenario(loaded: LoadedScenario, options: CompileOptions = CompileOptions()) -> CompiledScenario:
    scenario = loaded.model
    document = loaded.document
    settings = scenario.http
    http = HttpSettings(
        settings.timeout,
        settings.connect_timeout,
        settings.max_redirects,
        settings.max_body,
        settings.discard_body,
        settings.http2,
    )

    def files_base(path: tuple) -> Path:
        return Path(document.mark(path).file).parent

    pools = {
        name: Pool(name, loaded.pool_data[name], spec, loaded.pool_sources.get(name, "inline"))
        for name, spec in (scenario.pools or {}).items()
    }
    shared = _Shared(files_base, pools, {}, loaded.script)
    shared.grpc, shared.grpc_ca = loaded.grpc, read_ca(files_base, scenario.grpc.ca if scenario.grpc else None)
    user_classes: list[type[VirtualUser]] = []
    phases: dict[str, type[VirtualUser]] = {}
    scenario_host = _resolve_host(options.host or scenario.host, options)
    with templating.functions(template_functions(loaded.script)), templating.limits(scenario.templates.max_output):
        for name, user in scenario.users.items():
            tasks = _selected_tasks(user, options)
            if tasks is None:
                continue
            ctx = _Context(scenario, user, shared)
            base = ("users", name)
            if user.sequence is not None:
                programs = [(1, _compile_steps(user.sequence, ctx, (*base, "sequence")))]
            else:
                index = {id(t): i for i, t in enumerate(user.tasks or [])}
                programs = [(t.weight, tuple(_compile_step(t, ctx, (*base, "tasks", index[id(t)])))) for t in tasks]
            pacing = compile_think(user.pacing)
            if pacing is not None:
                programs = [(weight, (*program, Think(pacing, pacing=True))) for weight, program in programs]
            attributes = {
                "host": _resolve_host(user.host, options) if user.host else scenario_host,
                "make_headers": staticmethod(_headers(scenario, user)),
                "make_variables": staticmethod(_variables(scenario, user)),
                "on_start_program": _compile_steps(user.on_start, ctx, (*base, "on_start")),
                "pick_iteration": staticmethod(_pick(programs)),
                "on_stop_program": _compile_steps(user.on_stop, ctx, (*base, "on_stop")),
                "weight": user.weight,
                "fixed_count": user.count,
            }
            own_http = http if user.http2 is None else dataclasses.replace(http, http2=user.http2)
            user_classes.append(_user_class(name, own_http, ctx, attributes))
        for phase in ("setup", "teardown"):
            steps = getattr(scenario, phase)
            if steps:
                ctx = _Context(scenario, None, shared)
                program = _compile_steps(steps, ctx, (phase,))
                attributes = {
                    "host": scenario_host,
                    "make_headers": staticmethod(_headers(scenario, None)),
                    "make_variables": staticmethod(_variables(scenario, None)),
                    "on_start_program": program,
                }
                phases[phase] = _user_class(phase, http, ctx, attributes)
    return CompiledScenario(
        loaded.name,
        user_classes,
        pools,
        shared.points,
        setup=phases.get("setup"),
        teardown=phases.get("teardown"),
        script=loaded.script,
        checkpoints=tuple(shared.checkpoints),
    )


def _user_class(name: str, http: HttpSettings, ctx: _Context, attributes: dict[str, Any]) -> type[VirtualUser]:
    attributes = {
        "__slots__": (),
        "type_name": name,
        "http": http,
        "pools": tuple(ctx.pools_read.values()),
        "pick_iteration": staticmethod(lambda: ()),
        **attributes,
    }
    return type(_class_name(name), (VirtualUser,), attributes)


__all__ = [
    "CompileOptions",
    "CompiledScenario",
    "compile_scenario",
    "compile_think",
    "needs_demo",
]
