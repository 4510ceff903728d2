"""The read-only view of a running test: what the console table, the web UI's page, Prometheus, OTLP, the
JSON-lines stream and the abort checks read, and nothing they could change. None of them reaches into the runner
or its run state: they ask the view.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from runner.engine.rendezvous import Gate, RendezvousPoint
from runner.report.model import Arrivals, CheckCount, LoadWarning, Pool

if TYPE_CHECKING:
    from runner.live.state import Live, RunContext
    from runner.stats import Snapshot, StatsEntry


@dataclass(frozen=True)
class PoolNow:
    """A data pool's rows as a gauge reads them: left in this pass (a cycling pool starts again), handed out."""

    name: str
    rows_left: int
    handed_out: int

    @classmethod
    def of(cls, pool: Pool) -> PoolNow:
        rows, out = pool.rows, pool.handed_out
        this_pass = out
        if pool.when_empty == "cycle" and rows:
            this_pass = out % rows if out % rows or not out else rows  # a pass just ended: all handed out
        return cls(pool.name, max(0, rows - this_pass), out)


class LiveView:
    """A running test, read-only (``live.view``)."""

    def __init__(self, live: Live) -> None:
        self._live = live

    # ------------------------------------------------------------------------------------------- the run

    @property
    def context(self) -> RunContext:
        return self._live.context

    @property
    def started(self) -> float:
        return self._live.started

    @property
    def lag(self) -> float:
        """Seconds the statistics trail real time (a master hears its workers a report late)."""
        return self._live.lag

    def now(self) -> float:
        """The time the statistics have reached."""
        return time.time() - self._live.lag

    @property
    def stop_reason(self) -> str:
        return self._live.runner.stop_reason

    @property
    def state(self) -> str:
        return self._live.runner.state.value

    @property
    def warnings(self) -> tuple[str, ...]:
        return tuple(self._live.warnings)

    # ------------------------------------------------------------------------------------------- users

    @property
    def users(self) -> int:
        """Virtual users running now."""
        return self._live.runner.user_count

    @property
    def target_users(self) -> int:
        """Users the load asks for now."""
        return self._live.runner.target_users

    @property
    def users_max(self) -> int:
        return self._live.runner.user_count_max

    def users_at(self, second: int) -> int:
        return self._live.users_at(second)

    # ------------------------------------------------------------------------------------------- statistics

    @property
    def total(self) -> StatsEntry:
        return self._live.stats.total

    def requests(self) -> Iterator[StatsEntry]:
        """Each request entry (a copy of the list: safe while requests arrive)."""
        return iter(list(self._live.stats.entries.values()))

    def transactions(self) -> Iterator[StatsEntry]:
        return iter(list(self._live.transactions.entries.values()))

    def snapshot(self, *, timings: bool = True) -> Snapshot:
        """The statistics so far, as the results' entries are (without histograms and series; ``timings``: with the
        phases)."""
        elapsed = max(1e-9, time.time() - self._live.started)
        return self._live.stats.snapshot(duration=elapsed, histograms=False, timings=timings, series=False)

    # ------------------------------------------------------------------------------------------- parts

    def checks(self) -> list[CheckCount]:
        return self._live.runner.run_state.checks.results()

    def gates(self) -> list[Gate]:
        """This test's rendezvous gates."""
        return [point.gate for point in self.points()]

    def points(self) -> list[RendezvousPoint]:
        """This test's rendezvous points (a gate, and whether it is switched on)."""
        state = self._live.runner.run_state
        return [state.point(spec) for spec in self.context.compiled.rendezvous.values()]

    def pool_results(self) -> list[Pool]:
        """The data pools some user type reads, as the results will show them."""
        return self.context.compiled.pool_results(self._live.runner.run_state)

    def pools(self) -> list[PoolNow]:
        """Every data pool of the scenario, with this test's rows."""
        state, compiled = self._live.runner.run_state, self.context.compiled
        return [PoolNow.of(Pool.model_validate(p.summary(state.rows(p)))) for p in compiled.pools.values()]

    def arrivals(self) -> Arrivals | None:
        """The open model's arrivals so far; None in the closed model."""
        open_model = self._live.runner.open_model
        return open_model.arrival_results(stopped_early=False) if open_model is not None else None

    def worker_states(self) -> dict[str, int] | None:
        """Workers by state (running, missing, gone); None without workers."""
        distributed = self._live.runner.distributed
        return distributed.worker_states() if distributed is not None else None

    @property
    def resources(self) -> dict[str, Any]:
        """lrun's and the machine's CPU and memory at the last sample."""
        return self._live.monitor.last or {}

    def metric_families(self) -> list[Callable[[], Iterable[Any]]]:
        """More Prometheus metric families: remote monitoring's, when the scenario monitors hosts or queries."""
        remote = self._live.remote
        return [remote.families] if remote is not None else []

    def warn(self, message: str) -> None:
        """Say something went wrong without failing the run (it joins the results' warnings)."""
        self._live.warn(message)

    def shortfalls(self) -> list[LoadWarning]:
        """How the load falls short of the plan so far (``runner.report.shortfalls``)."""
        from runner.live.assemble import assemble
        from runner.report.shortfalls import load_warnings

        return load_warnings(assemble(self._live, time.time(), ended=False))
