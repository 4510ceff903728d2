"""The web UI over a distributed run (``--processes N`` or ``--master``): one master for the whole session.

The master binds once and its workers (local processes, or remote ones that connect) stay connected from one test
to the next: each test calls ``MasterRunner.next_test``, which gives the master fresh statistics and run state and
tells every worker to set the scenario up afresh (``NextTest``). ``drive`` runs each test as it runs a headless
distributed one.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from runner.compile.compiler import CompiledScenario, CompileOptions, compile_scenario
from runner.config import RunSettings, load_given_by_user
from runner.distributed.cluster import WorkerState
from runner.distributed.local import QUIT_WAIT
from runner.distributed.master import MasterRunner, cluster
from runner.drive import drive, runner_hooks
from runner.engine.runner_protocol import Runner, State
from runner.live.state import Live, RunContext
from runner.scenario import LoadedScenario
from runner.stats import RequestStats


def _share(worker: Any) -> str:
    """The open model: which of the arrivals the worker takes now, "1 of 2" (every other, the first); else ""."""
    if not worker.plan:
        return ""
    _, index, count = worker.plan[-1]
    return f"{index + 1} of {count}"


class ClusterBackend:
    """A master and its workers behind the ``Controller`` (see the module docstring)."""

    def __init__(self, loaded: LoadedScenario, settings: RunSettings, demo_url: str | None) -> None:
        self.loaded = loaded
        self.settings = settings
        self.demo_url = demo_url
        self.lag = settings.report_interval + 1.0
        self.master: MasterRunner | None = None
        self.local: Any = None  # LocalWorkers of --processes
        self.expected = 1
        self.max_wait: float | None = None

    def open(self) -> None:
        """Bind the master, start the local workers; they connect while the page opens."""
        s = self.settings
        tags, exclude = tuple(s.tags), tuple(s.exclude_tags)
        compiled = compile_scenario(self.loaded, CompileOptions(s.host, self.demo_url, tags, exclude))
        context = RunContext(self.loaded, compiled, s, "")
        live = Live(context, RequestStats(node="master"), sys.stdout, False, lag=self.lag)
        self.master, self.local, self.expected, self.max_wait = cluster(self.loaded, compiled, s, live, self.demo_url)
        self.master.options.entry_seconds = True  # each row's seconds, for its own charts
        self.master.serve()
        self.local.start()

    def ready_error(self) -> str | None:
        """Why a test cannot start now (too few workers), or None."""
        assert self.master is not None
        ready = self.master.cluster.ready_count()
        if ready >= self.expected:
            return None
        return (
            f"{ready} of {self.expected} expected worker(s) ready: start workers with lrun --worker --master-host "
            f"<this host> --master-port {self.master.port}, or lower --expect-workers"
        )

    def runner(self, compiled: CompiledScenario, live: Live) -> Runner:
        master = self.master
        assert master is not None
        s = live.settings
        o = master.options
        o.host, o.tags, o.exclude_tags, o.iterations = s.host, list(s.tags), list(s.exclude_tags), s.iterations
        o.rendezvous = not s.no_rendezvous
        master.next_test(compiled, live.stats, **runner_hooks(live, compiled))
        load = self.loaded.model.load
        master.max_users = load.max_users if load.is_open and not load_given_by_user(s) else None
        return master

    def run(self, loaded: LoadedScenario, compiled: CompiledScenario, live: Live, command: str) -> int:
        live.started = time.time()
        try:
            return drive(loaded, compiled, live.settings, live, command=command)
        finally:
            if self.master is not None:  # between tests, workers may join (a stopped master refuses them)
                self.master.state = State.READY

    def workers(self) -> list[dict[str, Any]]:
        if self.master is None:
            return []
        now = time.monotonic()
        rows = []
        for worker in sorted(self.master.workers.values(), key=lambda w: w.order):
            present = worker.state not in (WorkerState.MISSING, WorkerState.GONE)
            state = worker.run_state if present else worker.state.value  # what it does, or why it is not there
            rows.append(
                {
                    "id": worker.id,
                    "host": worker.host,
                    "pid": worker.pid,
                    "state": state,
                    "users": worker.users,
                    "cpu_percent": round(worker.cpu_percent, 1),
                    "memory_bytes": worker.memory_bytes,
                    "requests": worker.requests,
                    "failures": worker.failures,
                    "heartbeat_ago_s": round(now - worker.last_seen, 1),
                    "share": _share(worker) if present else "",
                }
            )
        return rows

    def close(self) -> None:
        if self.master is not None:
            self.master.close()
            self.master = None
        if self.local is not None:
            self.local.stop(quit_wait=QUIT_WAIT)
            self.local = None
