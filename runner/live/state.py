"""A run's context (what it runs, set once) and its live state, shared by the run loop and its periodic tasks."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TextIO

from runner.compile.compiler import CompiledScenario
from runner.config import RunSettings
from runner.engine.runner_protocol import Runner
from runner.engine.saturation import Saturation
from runner.events import Events
from runner.goal import GoalControl
from runner.monitor.local import ResourceMonitor, ResourceWatch
from runner.monitor.remote import RemoteMonitor
from runner.report.model import Results
from runner.scenario import LoadedScenario
from runner.slo import Slo
from runner.stats import RequestStats, TransactionStats

log = logging.getLogger("lrun")


@dataclass(frozen=True)
class RunContext:
    """What a test runs, with what: set once when it is made, never written."""

    loaded: LoadedScenario
    compiled: CompiledScenario
    settings: RunSettings
    command: str  # the command line (or the Python API's caller), as the results say it


@dataclass
class Live:
    """What the run loop shares with its periodic tasks."""

    context: RunContext
    stats: RequestStats
    out: TextIO
    tty: bool
    _runner: Runner | None = field(default=None, repr=False)  # set once, right after the runner is made
    transactions: TransactionStats = field(default_factory=TransactionStats)
    started: float = field(default_factory=time.time)
    warnings: list[str] = field(default_factory=list)
    progress_shown: bool = False
    monitor: ResourceMonitor = field(default_factory=ResourceMonitor)
    watch: ResourceWatch = field(default_factory=lambda: ResourceWatch([]))
    lag: float = 0.0  # seconds the statistics trail real time (a master hears its workers a report late)
    saturation: Saturation | None = None  # is lrun itself the bottleneck? (drive starts it)
    events: Events = field(default_factory=Events)  # the Python API's listeners
    notify: Callable[[str], None] = lambda text: None  # tell the live outputs a rule tripped (the webhook)
    remote: RemoteMonitor | None = None  # monitor.hosts and monitor.prometheus
    results: Results | None = None  # the run's results, once it ended
    users_seen: dict[int, int] = field(default_factory=dict)  # second -> the user count then (a few seconds)
    slo: Slo | None = None  # the live SLO windows (thresholds with over:), judged once a second
    goal: GoalControl | None = None  # goal-oriented load: users adjusted to reach a rate

    @property
    def settings(self) -> RunSettings:
        return self.context.settings

    @property
    def runner(self) -> Runner:
        """The test's runner (a LocalRunner, an ArrivalRunner, or a distributed run's MasterRunner). It takes the
        run's hooks (``drive.runner_hooks(live)``), so it is made after the ``Live`` and set before anyone reads."""
        if self._runner is None:
            raise RuntimeError("the test's runner is not made yet")
        return self._runner

    @runner.setter
    def runner(self, runner: Runner) -> None:
        self._runner = runner

    def users_at(self, second: int) -> int:
        """The user count of ``second``'s point: as the sampler saw it then (a master's points trail real time);
        before its first look, what it saw first; at the end, as it was when the test was stopped (not the none
        left after); else the count now."""
        seen = self.users_seen
        if second in seen:
            return seen[second]
        if seen and second < (first := min(seen)):
            return seen[first]
        stopped = self.runner.users_at_stop
        return self.runner.user_count if stopped is None else stopped

    def print(self, text: str) -> None:
        self.clear_progress()
        print(text, file=self.out, flush=True)

    def clear_progress(self) -> None:
        if self.progress_shown:
            self.out.write("\r\033[K")
            self.progress_shown = False

    def warn(self, message: str) -> None:
        self.warnings.append(message)
        self.clear_progress()
        log.warning(message)
