"""The open model: users arrive at a rate, whatever the system's speed, run one iteration and leave.

An arrival has an intended start. When ``max_users`` are busy, later arrivals wait in order for a free slot;
the wait is their lateness. Every request of a late arrival is also recorded from its intended start
(service time + lateness) in ``intended`` statistics, so a slow system cannot hide its queueing behind a
generator that quietly sends less (coordinated omission).
"""

from __future__ import annotations

import itertools
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import gevent

from runner.engine.dispatch import distribute, spawn_order
from runner.engine.runner import LocalRunner, State, StatsSink
from runner.engine.user import RequestResult, VirtualUser


@dataclass(frozen=True)
class RateStage:
    """Go linearly from the previous rate to ``rate`` arrivals per second over ``duration`` seconds."""

    duration: float
    rate: float


@dataclass
class ArrivalCounts:
    planned: int = 0  # arrivals the schedule called for
    started: int = 0
    late: int = 0  # started more than 1 ms after their intended start
    max_late_ms: float = 0.0
    waiting_at_end: int = 0  # never started: still queued when the run ended

    def as_dict(self) -> dict[str, float | int]:
        return {
            "planned": self.planned,
            "started": self.started,
            "late": self.late,
            "max_late_ms": round(self.max_late_ms, 3),
            "waiting_at_end": self.waiting_at_end,
        }


def arrival_times(stages: Sequence[RateStage], start_rate: float = 0.0) -> list[float]:
    """Intended arrival offsets (seconds from the start), rates changing linearly within each stage.

    The k-th arrival (k = 0, 1, …) is where the integral of the rate reaches k, so a constant 20/s for 2 s
    gives 0, 0.05, … 1.95: forty arrivals, none on the boundary where the run stops.
    """
    times: list[float] = []
    offset, rate_before, arrived = 0.0, start_rate, 0.0  # arrived: the integral of the rate so far
    for stage in stages:
        slope = (stage.rate - rate_before) / stage.duration if stage.duration > 0 else 0.0
        k = len(times)
        while True:
            need = k - arrived  # arrivals still due at the start of this stage, plus k
            if abs(slope) < 1e-12:
                t = need / rate_before if rate_before else float("inf")
            else:
                disc = rate_before**2 + 2 * slope * need
                t = (-rate_before + disc**0.5) / slope if disc >= 0 else float("inf")
            if t >= stage.duration - 1e-9:
                break
            times.append(offset + t)
            k += 1
        arrived += rate_before * stage.duration + slope * stage.duration**2 / 2
        offset += stage.duration
        rate_before = stage.rate
    return times


class ArrivalRunner(LocalRunner):
    """Starts a user per arrival, each for one iteration; at most ``max_users`` at once."""

    stop_when_idle = False  # between arrivals no user may be running: that is not the end

    @property
    def target_users(self) -> int:
        return self.max_users

    def __init__(
        self, classes: Sequence[type[VirtualUser]], stats: StatsSink, intended: StatsSink, *, max_users: int, **kw
    ) -> None:
        super().__init__(classes, stats, iterations=1, **kw)
        self.intended = intended
        self.max_users = max_users
        self.arrivals = ArrivalCounts()
        self._waiting: deque[float] = deque()  # intended start times (monotonic) of arrivals with no slot yet
        self._kinds = itertools.cycle(spawn_order(distribute(self.classes, 100)))

    def on_request(self, user: VirtualUser, result: RequestResult) -> None:
        if not self.counts(result):
            return
        self.stats.log(result.method, result.name, result.elapsed_ms, result.size, result.failure)
        self.intended.log(result.method, result.name, result.elapsed_ms + user.late_ms, result.size, result.failure)

    def start_arrivals(self, stages: Sequence[RateStage], start_rate: float = 0.0) -> None:
        """Arrive along ``stages`` (a constant rate is one stage starting at that rate); stop at their end."""
        self.started_at = time.time()
        self.state = State.RUNNING
        offsets = arrival_times(stages, start_rate)
        self._end_by(sum(s.duration for s in stages))
        self._timers.append(gevent.spawn(self._arrive, offsets, sum(s.duration for s in stages)))

    def _arrive(self, offsets: list[float], duration: float) -> None:
        origin = time.monotonic()
        self.arrivals.planned = len(offsets)
        for offset in offsets:
            intended = origin + offset
            gevent.sleep(max(0.0, intended - time.monotonic()))
            if self.user_count < self.max_users and not self._waiting:
                self._begin(intended)
            else:
                self._waiting.append(intended)
        gevent.sleep(max(0.0, origin + duration - time.monotonic()))
        self.stop("run time reached")

    def _begin(self, intended: float) -> None:
        index = next(self._kinds)
        late_ms = max(0.0, (time.monotonic() - intended) * 1000)
        user = self._start_user(index)
        user.late_ms = late_ms
        self.arrivals.started += 1
        if late_ms > 1.0:
            self.arrivals.late += 1
            self.arrivals.max_late_ms = max(self.arrivals.max_late_ms, late_ms)

    def _forget(self, user: VirtualUser, index: int) -> None:
        super()._forget(user, index)
        if self._waiting and self.state == State.RUNNING:
            self._begin(self._waiting.popleft())

    def _stop(self) -> None:
        self.arrivals.waiting_at_end = len(self._waiting)
        self._waiting.clear()
        super()._stop()
