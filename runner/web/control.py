"""What the web UI (and Locust's REST API) may do to a session of tests, over whichever runner is behind it.

A ``Controller`` owns one scenario for the life of ``lrun --web``: it starts a test from form values, changes
users and spawn rate while it runs, stops it, resets its statistics, and starts the next one after it ends. The
scenario is compiled once per host and tags; each test gets its own run state (a fresh ``RunState``: setup
variables, data pools' rows, rendezvous gates, checkpoint tallies) and its own statistics; finished tests stay in
the history with their results. The runner behind it is a ``Backend``: ``LocalBackend`` (users in this process)
or ``runner.web.cluster.ClusterBackend`` (a master whose workers stay connected between tests). The page reads
``snapshot()`` and never a runner.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import time
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TextIO

import gevent

from runner.compile.compiler import CompiledScenario, CompileOptions, compile_scenario, needs_demo
from runner.config import RunSettings, load_given_by_user, users_limit
from runner.drive import drive, monitoring, runner_hooks
from runner.engine.arrivals import ArrivalRunner
from runner.engine.runner import LocalRunner
from runner.engine.runner_protocol import Runner
from runner.engine.user import VirtualUser
from runner.errors import LrunError
from runner.live.assemble import assemble
from runner.live.state import Live, RunContext
from runner.report.model import Results
from runner.scenario import LoadedScenario
from runner.scenario.model import check_host
from runner.scenario.numbers import rate, whole
from runner.scenario.types import parse_duration
from runner.stats import RequestStats, TransactionStats

log = logging.getLogger("lrun")

MAX_HISTORY = 20  # finished tests kept with their results (the newest keeps its live statistics too)
FORM_SOURCE = "web form"


class FormError(LrunError):
    """Bad values from the start form or ``POST /swarm``: a message per field."""

    def __init__(self, errors: Mapping[str, str]) -> None:
        self.errors = dict(errors)
        super().__init__("; ".join(f"{name}: {message}" for name, message in self.errors.items()))


class Backend(Protocol):
    """Makes the runner of one test and runs it (see ``runner.drive.drive``)."""

    lag: float  # seconds the statistics trail real time
    max_wait: float | None  # how long --autostart waits for ready_error() to clear

    def ready_error(self) -> str | None: ...

    def runner(self, compiled: CompiledScenario, live: Live) -> Runner: ...

    def run(self, loaded: LoadedScenario, compiled: CompiledScenario, live: Live, command: str) -> int: ...

    def workers(self) -> list[dict[str, Any]]: ...

    def close(self) -> None: ...


class LocalBackend:
    """Users in this process: a ``LocalRunner`` per test."""

    lag = 0.0
    max_wait: float | None = None

    def ready_error(self) -> str | None:
        return None

    def __init__(self, loaded: LoadedScenario) -> None:
        self.loaded = loaded

    def runner(self, compiled: CompiledScenario, live: Live) -> Runner:
        hooks = runner_hooks(live, compiled)
        load = self.loaded.model.load
        if load.is_open and not load_given_by_user(live.settings):  # --autostart of an open-model scenario
            return ArrivalRunner(compiled.user_classes, live.stats, RequestStats(), max_users=load.max_users, **hooks)
        return LocalRunner(compiled.user_classes, live.stats, iterations=live.settings.iterations, **hooks)

    def run(self, loaded: LoadedScenario, compiled: CompiledScenario, live: Live, command: str) -> int:
        return drive(loaded, compiled, live.settings, live, command=command)

    def workers(self) -> list[dict[str, Any]]:
        return []

    def close(self) -> None:
        pass


@dataclass
class TestRun:
    """One test of the session: running, or finished with its results."""

    id: int
    settings: RunSettings
    compiled: CompiledScenario
    live: Live | None
    started: float = field(default_factory=time.time)
    ended: float | None = None
    exit_code: int | None = None
    results: Results | None = None
    greenlet: gevent.Greenlet | None = None
    error: str = ""
    packed: bytes = b""  # an older test's results: zlib'd JSON, read back on download (see pack)
    brief: dict[str, Any] = field(default_factory=dict)  # what the history shows of packed results

    def pack(self) -> None:
        """Keep the results as compressed JSON: the history holds 20 tests, and a test's results as objects weigh
        ~33 KB a second (a series point per request name: 1.96 MB for a minute of quickstart, ~115 MB for an
        hour), packed 60 times less (32 KB for that minute)."""
        results = self.results
        if results is None:
            return
        self.brief = _brief(results)
        self.packed = zlib.compress(json.dumps(results.to_dict(), separators=(",", ":"), allow_nan=False).encode(), 6)
        self.results = None

    def unpacked(self) -> Results | None:
        if self.results is not None or not self.packed:
            return self.results
        return Results.model_validate(json.loads(zlib.decompress(self.packed)))

    def summary(self) -> dict[str, Any]:
        """A History row: the settings asked, and what ran (from the results, or their brief once packed)."""
        results = self.results
        if results is None and self.brief:
            return {**self._settings(), **self.brief, "exit_code": self.exit_code}
        if results is None:
            empty = {"requests": None, "failures": None, "passed": None, "stop_reason": self.error}
            return {**self._settings(), **empty, "exit_code": self.exit_code}
        brief = _brief(results)
        return {
            **self._settings(),
            **brief,
            "stop_reason": brief["stop_reason"] or self.error,
            "exit_code": self.exit_code,
        }

    def _settings(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "started": self.started,
            "ended": self.ended,
            "users": self.settings.users,
            "spawn_rate": self.settings.spawn_rate,
            "run_time": self.settings.run_time,
            "host": self.settings.host,
        }


def _brief(results: Results) -> dict[str, Any]:
    """What the History shows of a test's results: its counts and verdict, and what ran beside what was asked
    ("5 of 10") with why the load was not as planned."""
    asked = results.user_counts.asked if results.user_counts is not None else None
    return {
        "requests": results.total.requests,
        "failures": results.total.failures,
        "passed": results.passed,
        "stop_reason": results.stop_reason,
        "users_asked": asked,
        "users_max": results.users_max,
        "users_ran": f"{results.users_max} of {asked}" if asked is not None else str(results.users_max),
        "load_warnings": [w.message for w in results.load_warnings or []],
    }


def _with_mix(cls: type[VirtualUser], value: int) -> type[VirtualUser]:
    """``cls`` with the form's weight (or fixed count, for a type that has one); ``cls`` itself stays as compiled."""
    mix = {"fixed_count": value} if cls.fixed_count is not None else {"weight": value}
    return type(cls.__name__, (cls,), {"__slots__": (), **mix})


def _field(form: Mapping[str, Any], name: str, errors: dict[str, str], parse: Callable[[Any], Any]) -> Any:
    """The form's value of ``name`` read by ``parse`` (``runner.scenario.numbers``), None when empty or bad."""
    value = form.get(name, "")
    if isinstance(value, str) and not value.strip():
        return None
    try:
        return parse(value)
    except ValueError as exc:
        errors[name] = str(exc)
        return None


class Controller:
    """One scenario, tests one after the other; see the module docstring. Every method is called from a
    greenlet of the web server (or the entry point) and returns at once: tests run in their own greenlet."""

    def __init__(
        self,
        loaded: LoadedScenario,
        settings: RunSettings,
        backend: Backend,
        *,
        command: str,
        demo_url: str | None,
        out: TextIO,
    ) -> None:
        self.loaded = loaded
        self.base = settings
        self.backend = backend
        self.command = command
        self.demo_url = demo_url
        self.out = out
        self.runs: list[TestRun] = []
        self.ended_at: float | None = None  # when the last test ended (for --autoquit)
        self._next_id = 1
        self._compiled: dict[CompileOptions, CompiledScenario] = {}  # compiled once per host and tags
        self.on_change: Callable[[], None] = lambda: None  # the page wants a fresh snapshot now
        self.start_demo: Callable[[], str] | None = None  # a test asks for host: demo, not running yet

    # ------------------------------------------------------------------------------------------- reading

    @property
    def current(self) -> TestRun | None:
        return self.runs[-1] if self.runs else None

    @property
    def running(self) -> bool:
        run = self.current
        return run is not None and run.ended is None

    def user_types(self) -> list[dict[str, Any]]:
        return [
            {"name": name, "weight": user.weight, "fixed_count": user.count, "tags": list(user.tags)}
            for name, user in self.loaded.model.users.items()
        ]

    def defaults(self) -> dict[str, Any]:
        s = self.base
        return {
            "user_count": s.users,
            "spawn_rate": s.spawn_rate,
            "host": s.host or self.loaded.model.host or "",
            "run_time": "" if s.run_time is None else f"{s.run_time:g}s",
            "tags": ",".join(s.tags),
        }

    def get(self, run_id: int) -> TestRun | None:
        return next((r for r in self.runs if r.id == run_id), None)

    def state(self) -> str:
        """Locust's state names: ready (nothing ran yet), spawning, running, stopping, stopped."""
        run = self.current
        if run is None:
            return "ready"
        if run.ended is not None or run.live is None:
            return "stopped"
        value = run.live.runner.state.value
        return "spawning" if value == "ready" else value

    # ------------------------------------------------------------------------------------------- acting

    def users_limit(self) -> int:
        """The most users a test may ask for: a process's, or the cluster's."""
        return users_limit(self.base)

    def parse_form(self, form: Mapping[str, Any], *, starting: bool) -> dict[str, Any]:
        """The values of a start (or change) form, checked as the command line checks them; ``FormError``."""
        errors: dict[str, str] = {}
        values: dict[str, Any] = {}
        limit = self.users_limit()
        values["users"] = _field(form, "user_count", errors, lambda v: whole(v, low=1 if starting else 0, high=limit))
        values["spawn_rate"] = _field(form, "spawn_rate", errors, rate)
        if "user_count" not in errors and values["users"] is None:
            errors["user_count"] = "give the number of users"
        if not starting:
            return self._raise(errors) or values
        host = str(form.get("host", "")).strip()
        if host:
            try:
                values["host"] = check_host(host)
            except ValueError as exc:
                errors["host"] = str(exc)
        run_time = _field(form, "run_time", errors, parse_duration)
        if run_time is not None:
            values["run_time"] = run_time
            if run_time <= 0:
                errors["run_time"] = "must be a positive duration, such as 30s or 5m"
        if "tags" in form:
            values["tags"] = [t.strip() for t in str(form["tags"]).split(",") if t.strip()]
        weights = {}
        for name in self.loaded.model.users:
            key = f"weight.{name}"
            if key in form:
                weight = _field(form, key, errors, whole)
                weights[name] = 0 if weight is None and key not in errors else weight
        if weights and not any(weights.values()) and not errors:
            errors[f"weight.{next(iter(weights))}"] = "give at least one user type a weight above 0"
        values["weights"] = weights
        self._raise(errors)
        return values

    @staticmethod
    def _raise(errors: dict[str, str]) -> None:
        if errors:
            raise FormError(errors)

    def start(self, form: Mapping[str, Any] | None = None) -> TestRun:
        """Start a test: with the form's values, or (``form`` None) with the settings as given (``--autostart``).

        ``FormError`` for bad values or a test under way; ``LrunError`` when the scenario cannot run so.
        """
        if self.running:
            raise FormError({"user_count": "a test is running: stop it first, or change its users"})
        problem = self.backend.ready_error()
        if problem:
            raise FormError({"form": problem})
        sources, changes = dict(self.base.sources), {}
        weights: dict[str, int] = {}
        if form is not None:
            values = self.parse_form(form, starting=True)
            for name in ("users", "spawn_rate", "host", "run_time", "tags"):
                if name in values and values[name] is not None:
                    changes[name] = values[name]
                    sources[name] = FORM_SOURCE
            if "run_time" not in values:  # an empty run time: until stopped
                changes["run_time"] = None
            sources["users"] = FORM_SOURCE  # the form's load replaces the scenario's stages
            weights = values["weights"]
        settings = dataclasses.replace(copy.deepcopy(self.base), sources=sources, **changes)  # settings are frozen
        compiled = self._compile(settings, weights)
        live = Live(
            RunContext(self.loaded, compiled, settings, self.command),
            RequestStats(full_history=True, node="master" if self.backend.lag else "local"),
            self.out,
            False,
            transactions=TransactionStats(full_history=True),
            lag=self.backend.lag,
            **monitoring(self.loaded.model, settings),
        )
        live.runner = self.backend.runner(compiled, live)
        run = TestRun(self._next_id, settings, compiled, live)
        self._next_id += 1
        live.events.stop.add_listener(lambda results: setattr(run, "results", results))
        for old in self.runs:
            if old.results is not None or old.packed:  # keep the newest run's live data only
                old.live = None
                old.pack()
        self.runs.append(run)
        del self.runs[:-MAX_HISTORY]
        run.greenlet = gevent.spawn(self._run, run)
        log.info("test %d started from the web UI: %d users at %g/s", run.id, settings.users, settings.spawn_rate)
        self.on_change()
        return run

    def _compile(self, settings: RunSettings, weights: Mapping[str, int]) -> CompiledScenario:
        if self.demo_url is None and self.start_demo is not None and needs_demo(self.loaded.model, settings.host):
            self.demo_url = self.start_demo()
        options = CompileOptions(settings.host, self.demo_url, tuple(settings.tags), tuple(settings.exclude_tags))
        if options not in self._compiled:
            self._compiled[options] = compile_scenario(self.loaded, options)
        compiled = self._compiled[options]
        classes = [_with_mix(c, weights[c.type_name]) if c.type_name in weights else c for c in compiled.user_classes]
        compiled = dataclasses.replace(  # a compiled scenario is frozen: this test's own, with the form's mix
            compiled,
            user_classes=[c for c in classes if (c.fixed_count if c.fixed_count is not None else c.weight) > 0],
        )
        if not compiled.user_classes:
            raise FormError({"tags": "no user type left to run: change the tags or the weights"})
        missing = [c.type_name for c in compiled.user_classes if not c.host]
        if missing:
            raise FormError({"host": f"no host for {', '.join(missing)}: give one (a URL, or 'demo')"})
        return compiled

    def _run(self, run: TestRun) -> None:
        assert run.live is not None
        try:
            run.exit_code = self.backend.run(self.loaded, run.compiled, run.live, self.command)
        except LrunError as exc:
            run.error = str(exc)
            run.exit_code = 2
            log.error("test %d: %s", run.id, exc)
        except Exception as exc:  # the UI stays up for the next test
            run.error = f"internal error: {exc}"
            run.exit_code = 2
            log.exception("test %d failed", run.id)
        finally:
            # the live statistics stay for the page; the results are read back on download. Packing an hour's
            # results takes seconds of CPU: in a thread, so the UI (and /stop) keep answering meanwhile
            gevent.get_hub().threadpool.apply(run.pack)
            run.ended = self.ended_at = time.time()
            self.on_change()

    def set_users(self, users: int, spawn_rate: float | None) -> None:
        run = self._running()
        rate = spawn_rate if spawn_rate is not None else run.settings.spawn_rate
        run.settings = dataclasses.replace(run.settings, spawn_rate=rate)
        runner = run.live.runner  # type: ignore[union-attr]
        runner.set_users(users, rate)
        log.info("test %d: users set to %d at %g/s from the web UI", run.id, users, rate)
        self.on_change()

    def stop(self) -> bool:
        """Stop the test under way (False when none is)."""
        if not self.running:
            return False
        run = self.current
        assert run is not None and run.live is not None
        run.live.runner.stop("stopped from the web UI")
        self.on_change()
        return True

    def reset_stats(self) -> None:
        run = self.current
        if run is None or run.live is None or run.ended is not None:
            return
        run.live.stats.reset()
        run.live.transactions.reset()
        log.info("test %d: statistics reset from the web UI", run.id)
        self.on_change()

    def _running(self) -> TestRun:
        if not self.running:
            raise FormError({"user_count": "no test is running: start one first"})
        run = self.current
        assert run is not None
        return run

    def wait(self, timeout: float | None = None) -> None:
        """Until the test under way (if any) ended."""
        run = self.current
        if run is not None and run.greenlet is not None:
            run.greenlet.join(timeout)

    # ------------------------------------------------------------------------------------------- results

    def results(self, run: TestRun | None = None) -> Results | None:
        """The results of ``run`` (default: the newest): its final ones, or built now from its live statistics
        (the same shape, so the same CSV and HTML report as at the end)."""
        run = run or self.current
        if run is None:
            return None
        if run.results is not None:
            return run.results
        if run.packed:
            return gevent.get_hub().threadpool.apply(run.unpacked)  # type: ignore[no-any-return]
        live = run.live
        if live is None:
            return None
        return assemble(live, time.time(), ended=False)

    def close(self) -> None:
        """Stop the test under way, wait for its end (outputs written), let the backend go."""
        if self.stop():
            self.wait(timeout=None)
        self.backend.close()
