"""The open model: users arrive at a rate, whatever the system's speed, run one iteration and leave.

An arrival has an intended start. When ``max_users`` are busy, later arrivals wait in order for a free slot;
the wait is their lateness. An arrival that finds a slot free still starts a little after its intended start
(the scheduler's jitter, about a millisecond): only a start later than ``LATE_TOLERANCE_MS`` counts as late, and
then it is lrun's own delay (it could not keep up), not ``max_users``. Every request of an arrival is also
recorded from its intended start (service time + lateness) in ``intended`` statistics, so a slow system cannot
hide its queueing behind a generator that quietly sends less (coordinated omission).
"""

from __future__ import annotations

import itertools
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

import gevent

from runner.engine.dispatch import distribute, spawn_order
from runner.engine.runner import LocalRunner, State, StatsSink
from runner.engine.user import RequestResult, VirtualUser
from runner.stats.histogram import Histogram


@dataclass(frozen=True)
class RateStage:
    """Go linearly from the previous rate to ``rate`` arrivals per second over ``duration`` seconds."""

    duration: float
    rate: float


LATE_TOLERANCE_MS = 10.0  # a start later than this after its intended start is late; below, it is jitter


@dataclass
class ArrivalCounts:
    planned: int = 0  # arrivals the schedule called for
    started: int = 0
    late: int = 0  # started more than LATE_TOLERANCE_MS after their intended start, of which
    late_for_slot: int = 0  # waited for a free slot (max_users were busy)
    late_by_lrun: int = 0  # found a slot free, yet started late: lrun could not keep up
    max_late_ms: float = 0.0
    waiting_at_end: int = 0  # never started: still queued when the run ended
    jitter: Histogram = field(default_factory=Histogram)  # start delay of the arrivals that found a slot free

    def as_dict(self) -> dict[str, float | int | None]:
        def ms(value: float | None) -> float | None:
            return None if value is None else round(value, 3)

        return {
            "planned": self.planned,
            "started": self.started,
            "late": self.late,
            "late_for_slot": self.late_for_slot,
            "late_by_lrun": self.late_by_lrun,
            "late_tolerance_ms": LATE_TOLERANCE_MS,
            "max_late_ms": round(self.max_late_ms, 3),
            "jitter_p50_ms": ms(self.jitter.percentile(50)),
            "jitter_p99_ms": ms(self.jitter.percentile(99)),
            "jitter_max_ms": ms(self.jitter.max),
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
        """As in the closed model (statistics, the request hook), and the time from the intended start."""
        super().on_request(user, result)
        if self.counts(result):
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
                self._begin(intended, queued=False)
            else:
                self._waiting.append(intended)
        gevent.sleep(max(0.0, origin + duration - time.monotonic()))
        self.stop("run time reached")

    def _begin(self, intended: float, *, queued: bool = True) -> None:
        index = next(self._kinds)
        late_ms = max(0.0, (time.monotonic() - intended) * 1000)
        user = self._start_user(index)
        user.late_ms = late_ms
        counts = self.arrivals
        counts.started += 1
        if not queued:
            counts.jitter.record(late_ms)
        if late_ms > LATE_TOLERANCE_MS:
            counts.late += 1
            counts.max_late_ms = max(counts.max_late_ms, late_ms)
            if queued:
                counts.late_for_slot += 1
            else:
                counts.late_by_lrun += 1
                if self.saturation is not None:
                    self.saturation.arrival_slipped(late_ms, counts.late_by_lrun, counts.started)

    def _forget(self, user: VirtualUser, index: int) -> None:
        super()._forget(user, index)
        if self._waiting and self.state == State.RUNNING:
            self._begin(self._waiting.popleft())

    def _stop(self) -> None:
        self.arrivals.waiting_at_end = len(self._waiting)
        self._waiting.clear()
        super()._stop()
