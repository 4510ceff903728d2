"""The steps of a distributed capacity search (``--processes N`` or ``--master``): one master for the whole search.

As the web UI does (``web.cluster.ClusterBackend``), the master binds once and its workers stay connected from one
step to the next: each step is a test of the same session (``MasterRunner.next_test``), driven by ``drive`` like a
headless distributed run. Workers are started (or awaited) once, not once a step.
"""

from __future__ import annotations

import io
import time
from typing import Any

import gevent

from runner.capacity.step import step_scenario, step_settings, warmup_reset
from runner.compile.compiler import CompileOptions, compile_scenario
from runner.config import RunSettings
from runner.drive import monitoring
from runner.errors import RunError
from runner.events import Events
from runner.live.state import Live, RunContext
from runner.scenario import LoadedScenario
from runner.stats import RequestStats, TransactionStats
from runner.web.cluster import ClusterBackend


class ClusterSteps:
    """``run_step`` over one master and its workers, opened on the first step and closed by ``close``."""

    def __init__(self, loaded: LoadedScenario, settings: RunSettings, demo_url: str | None) -> None:
        self.loaded, self.settings = loaded, settings
        self.backend = ClusterBackend(loaded, settings, demo_url)
        self.opened = False

    def _ready(self) -> None:
        if not self.opened:
            self.backend.open()
            self.opened = True
        deadline = time.monotonic() + (self.backend.max_wait or float("inf"))
        if self.settings.master and (problem := self.backend.ready_error()) is not None:
            print(f"capacity: waiting: {problem}", flush=True)  # the log is quiet during the search
        while (problem := self.backend.ready_error()) is not None:
            if time.monotonic() > deadline:
                raise RunError(problem)
            gevent.sleep(0.2)

    def run_step(
        self, rate: float, *, warmup: float, seconds: float, drain: float, command: str
    ) -> tuple[dict[str, Any], float]:
        started = time.monotonic()
        self._ready()
        loaded = step_scenario(self.loaded, rate, warmup + seconds)
        settings = step_settings(self.settings, drain)
        s = settings
        compiled = compile_scenario(
            loaded, CompileOptions(s.host, self.backend.demo_url, tuple(s.tags), tuple(s.exclude_tags))
        )
        events = Events()
        pending = warmup_reset(events, warmup)
        live = Live(
            RunContext(loaded, compiled, settings, command),
            RequestStats(node="master"),
            io.StringIO(),
            False,
            transactions=TransactionStats(),
            lag=self.backend.lag,
            events=events,
            **monitoring(loaded.model, settings),
        )
        self.backend.loaded = loaded  # the step's open-model load, for the master's max_users
        live.runner = self.backend.runner(compiled, live)
        try:
            self.backend.run(loaded, compiled, live, command)
        finally:
            for greenlet in pending:
                greenlet.kill(block=False)
        return (live.results.to_dict() if live.results is not None else {}), time.monotonic() - started

    def close(self) -> None:
        if self.opened:
            self.backend.close()
