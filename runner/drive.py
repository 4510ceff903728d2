"""A load test from start to outputs: ``run_local`` (in this process) and ``drive`` (the run's story, shared with
the master of a distributed run). ``runner.api.run`` compiles the scenario and picks one of them.

One direction: settings → (demo target) → compiled users → runner → statistics → results dict → outputs
(console, JSON, CSV, HTML, JUnit). Outputs are written from the results dict, also after Ctrl-C, SIGTERM, an
aborting threshold or a stop_test checkpoint.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

import gevent
from gevent import GreenletExit

from runner.compile.compiler import CompiledScenario
from runner.config import RunSettings, load_given_by_user
from runner.engine.arrivals import ArrivalRunner
from runner.engine.calls import RequestResult
from runner.engine.flow import StopTest
from runner.engine.runner import LocalRunner
from runner.engine.runner_protocol import RateStage, Stage
from runner.engine.saturation import Saturation
from runner.engine.state import RunState
from runner.engine.user import VirtualUser
from runner.events import Events
from runner.goal import start_goal
from runner.http.response import Response
from runner.live.assemble import assemble
from runner.live.state import Live, RunContext
from runner.live.view import LiveView
from runner.monitor.local import ResourceMonitor, ResourceRule, ResourceWatch
from runner.monitor.remote import RemoteMonitor
from runner.outputs import Outputs
from runner.report import console
from runner.report.model import Results
from runner.scenario import LoadedScenario, templating
from runner.scenario.scripting import HookEnvironment, Script, request_hook
from runner.slo import start as start_slo
from runner.stats import RequestStats
from runner.thresholds import evaluate, parse_rule

log = logging.getLogger("lrun")

CPU_LIMIT = 0.9  # above this share of a core for CPU_SECONDS, response times measured here are inflated
CPU_SECONDS = 3
TABLE_EVERY = 2.0


class _ClearProgress(logging.Filter):
    def __init__(self, live: Live) -> None:
        super().__init__()
        self.live = live

    def filter(self, record: logging.LogRecord) -> bool:
        self.live.clear_progress()
        return True


def _heap_trimmer() -> Callable[[], None]:
    """Give freed heap back to the OS (glibc's malloc_trim; elsewhere nothing).

    Spawning thousands of users at once leaves megabytes of freed greenlet stacks that glibc keeps: with
    10,000 idle users that was 3 KiB per user of resident memory nobody used.
    """
    try:
        import ctypes

        trim = ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return lambda: None
    return lambda: trim(0) and None


TRIM_HEAP = _heap_trimmer()
TRIM_EVERY = 2  # seconds: a trim costs about 4 ms when it returns memory, 0.3 ms when there is none


def _every(seconds: float, task: Callable[[], None]) -> gevent.Greenlet:
    def loop() -> None:
        due = time.monotonic()
        while True:
            due = max(due + seconds, time.monotonic())  # after a stall, go on from now: no burst to catch up
            gevent.sleep(max(0.0, due - time.monotonic()))
            task()

    return gevent.spawn(loop)


GENERATOR_HOT = ResourceRule.build(
    "generator_cpu",
    CPU_LIMIT * 100,
    for_s=CPU_SECONDS,
    message=f"lrun's own CPU use is above {CPU_LIMIT:.0%} of a core: response times measured now are inflated by the "
    "load generator itself; run fewer users per process",
)


def _resources(live: Live, now: float) -> None:
    """Sample CPU and memory; act on resource thresholds (warn, or stop the test)."""
    sample = live.monitor.sample(now)
    if live.remote is not None:
        sample = {**sample, **live.remote.current()}
    for rule, detail in live.watch.update(sample):
        if rule.action == "abort":
            live.runner.stop(f"resource threshold {rule.text} failed ({detail})")
        else:
            live.warn(rule.message or f"resource threshold {rule.text}: {detail}")
        if rule not in live.watch.builtin:
            live.notify(f"resource threshold {rule.text} tripped ({detail}): {rule.action}")


def _name_cap(live: Live) -> None:
    """Warn (once) when the statistics folded request names beyond their cap."""
    for stats in (live.stats, live.transactions):
        if stats.capped and stats.capped not in live.warnings:
            live.warn(stats.capped)


def _sampler(live: Live, outputs: Outputs) -> Callable[[], None]:
    view = LiveView(live)

    def sample() -> None:
        now = time.time()
        then = now - live.lag
        seen = live.users_seen
        seen[int(now)] = live.runner.user_count
        for second in [s for s in seen if s < then - 2]:
            del seen[second]
        users = live.users_at(int(then))  # the users of the second the point is for, not of now
        live.stats.sample(then, users)
        live.transactions.sample(then, users)
        _resources(live, now)
        if live.saturation is not None:
            live.saturation.check()
        _name_cap(live)
        outputs.tick(view, now)
        if live.tty:
            total = live.stats.total
            requests = total.num_requests
            ratio = total.num_failures / requests if requests else 0.0
            line = console.progress_line(
                now - live.started,
                live.runner.run_state.run_time,
                live.runner.user_count,
                total.current_rps(now - live.lag),
                ratio,
                resources=live.monitor.last,
                asked=live.runner.target_users,
            )
            if live.remote is not None:
                line += live.remote.progress()
            live.out.write("\r\033[K" + line)
            live.out.flush()
            live.progress_shown = True

    return sample


def _table(live: Live) -> Callable[[], None]:
    view = LiveView(live)

    def show() -> None:
        snapshot = view.snapshot(timings=False)  # the table does not show them
        live.print(console.stats_table(snapshot.requests, snapshot.total) + "\n")

    return show


def _abort_checks(live: Live, thresholds: list[Any]) -> Callable[[], None] | None:
    rules = [(parse_rule(t.expect), t.request, t.delay) for t in thresholds if t.abort and t.over is None]
    if not rules:
        return None

    view = LiveView(live)
    phases = any(rule.is_phase for rule, _, _ in rules)  # the phases cost a third of the read: only when read

    def check() -> None:
        elapsed = time.time() - view.started
        due = [(rule, request) for rule, request, delay in rules if elapsed >= delay]
        if not due:
            return
        snapshot = view.snapshot(timings=phases)
        for rule, request in due:
            verdict = evaluate(rule, request, snapshot)
            if verdict["actual"] is not None and not verdict["passed"]:
                scope = f" [{request}]" if request else ""
                live.runner.stop(f"threshold {rule.text}{scope} failed ({verdict['detail']})")
                live.notify(f"threshold {rule.text}{scope} tripped ({verdict['detail']}): abort")
                return

    return check


def _keys(live: Live) -> gevent.Greenlet | None:
    """w/W add 1/10 users, s/S remove 1/10, while stdin is a terminal (as in Locust's headless mode)."""
    if not (sys.stdin.isatty() and live.tty):
        return None
    import termios
    import tty

    from gevent.socket import wait_read

    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    tty.setcbreak(fd)

    def read() -> None:
        steps = {"w": 1, "W": 10, "s": -1, "S": -10}
        try:
            while True:
                wait_read(fd)
                key = os.read(fd, 1).decode(errors="ignore")
                if key in steps:
                    target = max(0, live.runner.user_count + steps[key])
                    live.runner.set_users(target, float("inf"))
                    log.info("users set to %d (key %s)", target, key)
        finally:
            termios.tcsetattr(fd, termios.TCSADRAIN, saved)

    greenlet = gevent.spawn(read)
    greenlet.restore = lambda: termios.tcsetattr(fd, termios.TCSADRAIN, saved)
    return greenlet


def run_local(
    loaded: LoadedScenario,
    compiled: CompiledScenario,
    settings: RunSettings,
    *,
    command: str,
    out: TextIO,
    events: Events | None = None,
) -> int:
    """A run in this process (a LocalRunner, or an ArrivalRunner for the open model); returns the exit code."""
    model = loaded.model
    classes = compiled.user_classes
    # Loading the scenario (a big CSV pool takes seconds) ran before the event loop: its cached time is stale,
    # and timers (the run time) count from it.
    gevent.get_hub().loop.update_now()
    stats = RequestStats(full_history=settings.csv_full_history)
    context = RunContext(loaded, compiled, settings, command)
    live = Live(context, stats, out, out.isatty(), events=events or Events(), **monitoring(model, settings))
    common = runner_hooks(live, compiled)
    runner: LocalRunner
    if model.load.is_open and not load_given_by_user(settings):  # -u or -t replace the scenario's arrivals
        runner = ArrivalRunner(classes, stats, RequestStats(), max_users=model.load.max_users, **common)
    else:
        runner = LocalRunner(classes, stats, iterations=settings.iterations, **common)
    live.runner = runner
    return drive(loaded, compiled, settings, live, command=command)


def runner_hooks(live: Live, compiled: CompiledScenario) -> dict[str, Any]:
    """The keyword arguments every runner takes from the run: stop timeout, what to do once spawned, warnings,
    where transactions go, what to release when the test stops, the Python module's request hook."""

    def spawned(count: int) -> None:
        if count:
            log.info("%d users running", count)
        else:
            log.info("spawning done: every user has already finished")
        TRIM_HEAP()
        if live.settings.reset_stats:
            live.stats.reset()
            live.transactions.reset()
        live.events.spawn.fire(count)

    state = compiled.fresh_state()  # fresh per test: counts, variables, pools and rendezvous start anew

    def stopping() -> None:
        for point in state.points.values():
            point.release_all("stopping")

    return {
        "run_state": state,
        "stop_timeout": live.settings.stop_timeout,
        "on_spawned": spawned,
        "on_warning": live.warn,
        "transactions": live.transactions,
        "on_stopping": stopping,
        "request_hook": _request_listeners(request_hook(compiled.script, live.warn), live.events),
    }


def _request_listeners(script_hook: Callable[..., None] | None, events: Events) -> Callable[..., None] | None:
    """The module's ``on_request`` and the API's request listeners as one hook (None when there is neither)."""
    if not events.request:
        return script_hook
    if script_hook is None:
        return events.request.fire

    def both(user: VirtualUser, result: Any) -> None:
        script_hook(user, result)
        events.request.fire(user, result)

    return both


def drive(
    loaded: LoadedScenario, compiled: CompiledScenario, settings: RunSettings, live: Live, *, command: str
) -> int:
    """The run with remote monitoring and its live outputs (Prometheus, OTLP, webhook) around it."""
    live.remote = RemoteMonitor.from_model(loaded.model.monitor, live.warn)
    outputs = Outputs.for_settings(settings)
    outputs.start(LiveView(live), live.warn)
    live.notify = outputs.notify
    if live.remote is not None:
        live.remote.start()
    try:
        return _drive(loaded, compiled, settings, live, outputs)
    finally:
        if live.remote is not None:
            live.remote.stop()
        outputs.stop()


def _drive(
    loaded: LoadedScenario, compiled: CompiledScenario, settings: RunSettings, live: Live, outputs: Outputs
) -> int:
    """Start the load shape on ``live.runner``, run the periodic tasks until it stops, then end the run: results,
    thresholds, outputs. A local run and the master of a distributed run both go through here; both run the
    scenario's setup, teardown and lifecycle hooks."""
    model, runner, script = loaded.model, live.runner, compiled.script
    closed_by_user = load_given_by_user(settings)  # -u or -t replace the scenario's stages
    state = runner.run_state
    _bind_rendezvous(compiled, state, settings, live, model)
    saturation = live.saturation = runner.saturation = Saturation(live.warn)
    env = HookEnvironment(
        loaded.name, settings.host or model.host or "", settings, state.setup_vars, live.stats, runner
    )
    once = Once(OnceRuntime(live), env.variables)
    for target in live.monitor.missing():
        live.warn(f"monitor: no process {target.label} is running now (looked for again every few seconds)")
    clear_first = _ClearProgress(live)  # a log line must not be glued to the progress line
    for handler in log.handlers:
        handler.addFilter(clear_first)

    interrupts = {"count": 0}

    def interrupted(reason: str) -> None:
        interrupts["count"] += 1
        if interrupts["count"] == 1:
            live.clear_progress()
            log.info("%s: stopping (again to stop at once)", reason)
            runner.stop(reason)
            once.interrupt(teardown_too=False)
        else:
            runner.kill_now()
            once.interrupt(teardown_too=True)

    gevent.signal_handler(signal.SIGINT, interrupted, "interrupted")
    gevent.signal_handler(signal.SIGTERM, interrupted, "terminated")

    _hook(script, "on_init", env, live)
    if compiled.setup is not None and (failure := once.run(compiled.setup, "setup")):
        runner.stop(failure)
    _hook(script, "on_test_start", env, live)
    if runner.shared_variables is not None:  # a master sends them to its workers
        runner.shared_variables.share_variables(env.variables)

    stages = model.load.stages if not closed_by_user else None
    if runner.stop_reason:
        run_time = settings.run_time
    elif (open_model := runner.open_model) is not None:  # an ArrivalRunner, or a master of an open-model run
        rate_stages = model.load.arrival_stages or []
        shape = [RateStage(s.duration, s.rate) for s in rate_stages] or [
            RateStage(settings.run_time or 0.0, model.load.arrival_rate or 0.0)
        ]
        start_rate = 0.0 if rate_stages else model.load.arrival_rate or 0.0
        log.info(
            "open model: arrivals for %gs, at most %d users at once", sum(s.duration for s in shape),
            open_model.max_users,
        )  # fmt: skip
        open_model.start_arrivals(shape, start_rate)
        run_time = sum(s.duration for s in shape)
    elif model.load.goal is not None and not closed_by_user:  # goal-oriented: users adjusted to a rate
        log.info("goal-oriented load: %s", model.load.goal.model_dump(exclude_none=True))
        run_time = start_goal(live, model.load)
    elif stages:
        log.info("ramping through %d stages", len(stages))
        runner.start_stages([Stage(s.duration, s.users) for s in stages])
        run_time = sum(s.duration for s in stages)
    else:
        log.info("starting %d users at %g/s", settings.users, settings.spawn_rate)
        runner.start(settings.users, settings.spawn_rate, settings.run_time)
        run_time = settings.run_time
    state.run_time = run_time  # the settings stay as given
    live.events.start.fire(live)  # e.g. lrun capacity resets the statistics after its warm-up

    tasks = [_every(1.0, _sampler(live, outputs)), _every(TRIM_EVERY, TRIM_HEAP)]
    saturation.lag.start()
    if not settings.only_summary:
        tasks.append(_every(TABLE_EVERY, _table(live)))
    abort = _abort_checks(live, model.thresholds)
    if abort:
        tasks.append(_every(1.0, abort))
    live.slo = start_slo(live, model.thresholds)
    if live.slo is not None:
        tasks.append(_every(1.0, live.slo.tick))
    keys = _keys(live)
    try:
        runner.wait()
        _hook(script, "on_test_stop", env, live)
        if compiled.teardown is not None and (failure := once.run(compiled.teardown, "teardown")):
            live.warn(failure)
    finally:
        for task in tasks:
            task.kill(block=False)
        saturation.lag.stop()
        if keys is not None:
            keys.kill(block=False)
            keys.restore()
        live.clear_progress()
        for handler in log.handlers:
            handler.removeFilter(clear_first)
    end = time.time()
    live.transactions.finish(end, live.users_at)
    return _finish(live, outputs, end)


def _bind_rendezvous(
    compiled: CompiledScenario, state: RunState, settings: RunSettings, live: Live, model: Any
) -> None:
    """This test's rendezvous points count the runner's users (all of them, and those running), unless switched
    off; before any user starts."""
    runner = live.runner
    stages = [] if load_given_by_user(settings) else model.load.stages or []
    most = max(settings.users, max((stage.users for stage in stages), default=0))
    for spec in compiled.rendezvous.values():
        point = state.point(spec)
        point.enabled = not settings.no_rendezvous
        point.population = lambda: (runner.target_users, runner.user_count)
        if point.enabled and spec.kind == "users" and spec.value > most and not model.load.is_open:
            live.warn(
                f"rendezvous '{spec.name}' waits for {spec.value:g} users, but the load has {most}: its timeout "
                f"({spec.timeout:g}s after the last arrival) will release whoever waits"
            )
    if settings.no_rendezvous and compiled.rendezvous:
        log.info("rendezvous switched off (--no-rendezvous): users pass %s at once", ", ".join(compiled.rendezvous))


def _hook(script: Script | None, name: str, env: HookEnvironment, live: Live) -> None:
    """Run a lifecycle hook of the scenario's module; its error, if any, is a warning."""
    failure = script.call_hook(name, env) if script is not None else None
    if failure:
        live.warn(failure)


class OnceRuntime:
    """The runtime of the setup and teardown users: their requests and transactions count like the others."""

    trace = False
    think = True

    def __init__(self, live: Live) -> None:
        self.live = live

    @property
    def run_state(self) -> RunState:
        return self.live.runner.run_state

    def on_response(self, user: VirtualUser, method: str, name: str, response: Response, failure: str | None) -> None:
        self.on_request(user, RequestResult.of(method, name, response, failure))

    def on_request(self, user: VirtualUser, result: Any) -> None:
        self.live.stats.log(
            result.method,
            result.name,
            result.elapsed_ms,
            result.size,
            result.failure,
            result.retries,
            result.http2,
            result.timings,
        )

    def on_think(self, user: VirtualUser, seconds: float) -> None:
        pass

    def on_warning(self, user: VirtualUser, message: str) -> None:
        self.live.warn(f"{user.type_name}: {message}")

    def on_error(self, user: VirtualUser, error: BaseException) -> None:
        self.live.stats.log_error(error, user.type_name)

    def on_transaction(self, user: VirtualUser, transaction: Any, failure: str | None) -> None:
        ms = transaction.elapsed_ms(time.perf_counter())
        self.live.transactions.log_transaction(transaction.name, ms, transaction.think, failure)


class Once:
    """Runs the scenario's setup and teardown steps: one user, once, reported like the others.

    Variables the setup defines join ``variables`` (given to every user). Ctrl-C stops the setup; the teardown
    still runs after it, and only a second Ctrl-C (or TEARDOWN_LIMIT seconds) cuts it short.
    """

    def __init__(self, runtime: OnceRuntime, variables: dict[str, Any]) -> None:
        self.runtime = runtime
        self.variables = variables
        self._current: tuple[gevent.Greenlet, str] | None = None

    def run(self, cls: type[VirtualUser], phase: str) -> str | None:
        """Run ``cls``'s on_start program; a message when it stopped the test or failed."""
        log.info("%s: %d step(s)", phase, len(cls.on_start_program))
        user = cls(self.runtime, 0)
        greenlet = gevent.spawn(user.run, 0)
        self._current = (greenlet, phase)
        try:
            greenlet.join(timeout=TEARDOWN_LIMIT if phase == "teardown" else None)
            if not greenlet.dead:
                greenlet.kill()
                return f"{phase} cut short after {TEARDOWN_LIMIT:g}s"
        finally:
            self._current = None
            user.close()
        if isinstance(greenlet.exception, StopTest):
            return f"stop_test in {phase}: {greenlet.exception.reason}"
        if isinstance(greenlet.value, GreenletExit) or greenlet.exception is not None:
            return f"{phase} interrupted"
        if phase == "setup":
            self.variables.update({k: v for k, v in user.vars.items() if k not in templating.RUNTIME_VARIABLES})
        return None

    def interrupt(self, teardown_too: bool) -> None:
        if self._current is not None and (teardown_too or self._current[1] != "teardown"):
            self._current[0].kill(block=False)


TEARDOWN_LIMIT = 60.0


def monitoring(model: Any, settings: RunSettings) -> dict[str, Any]:
    """The resource monitor (lrun, the machine, the scenario's and --monitor's processes) and its thresholds."""
    declared = model.monitor.processes if model.monitor else []
    thresholds = model.monitor.thresholds if model.monitor else []
    monitor = ResourceMonitor([*declared, *settings.monitor])
    return {
        "monitor": monitor,
        "watch": ResourceWatch([ResourceRule.of(t) for t in thresholds], builtin=[GENERATOR_HOT]),
    }


def _finish(live: Live, outputs: Outputs, end: float) -> int:
    """End the run: its results (said, given to the listeners), its outputs; the exit code."""
    live.stats.finish(end, live.users_at)
    _name_cap(live)
    results = live.results = assemble(live, end, ended=True)
    code = results.exit_code
    live.events.stop.fire(results)  # listeners (the Python API, the web UI) get the results the JSON file holds
    if not _write_outputs(results, live, outputs) and code == 0:
        code = 1  # the run passed, but what CI reads of it is missing
    outputs.finished(results)
    return code


def _write_outputs(results: Results, live: Live, outputs: Outputs) -> bool:
    """Write the files, say the summary and what was lost; False if a file was."""
    written, lost = outputs.write_files(results, live.warn)
    live.print(console.summary(results))
    if lost:
        rest = f"; the rest went to: {', '.join(written)}" if written else ""
        live.print(f"outputs lost: {', '.join(lost)}{rest}")
    return not lost
