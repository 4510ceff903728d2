"""The open model: users arrive at a rate, whatever the system's speed, run one iteration and leave.

An arrival has an intended start. When ``max_users`` are busy, later arrivals wait in order for a free slot;
the wait is their lateness. An arrival that finds a slot free still starts a little after its intended start
(the scheduler's jitter, about a millisecond): only a start later than ``LATE_TOLERANCE_MS`` counts as late, and
then it is lrun's own delay (it could not keep up), not ``max_users``. Every request of an arrival is also
recorded from its intended start (service time + lateness) in ``intended`` statistics, so a slow system cannot
hide its queueing behind a generator that quietly sends less (coordinated omission).

In a distributed run every worker computes the cluster's whole schedule and takes its ``Share`` of it, like k6's
execution segments: arrival k is worker i's of n when ``k % n == i``, so the workers' arrivals interleave
(0, 2, 4 … and 1, 3, 5 …) instead of bunching at the same instants, and together they are the schedule exactly.
A share changes when the cluster does (a worker lost or joined), from an offset the master picks a little ahead.
"""

from __future__ import annotations

import bisect
import itertools
import time
from array import array
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import gevent
from gevent.event import Event

from runner.engine.calls import RequestResult
from runner.engine.dispatch import distribute, spawn_order
from runner.engine.runner import LocalRunner, StatsSink
from runner.engine.runner_protocol import OpenModel, RateStage, Runner, State
from runner.engine.user import VirtualUser
from runner.http.response import Response
from runner.report.model import Arrivals, FromIntendedStart
from runner.stats import RequestStats
from runner.stats.histogram import Histogram

LATE_TOLERANCE_MS = 10.0  # a start later than this after its intended start is late; below, it is jitter


_COUNTS = ("planned", "started", "late", "late_for_slot", "late_by_lrun", "waiting_at_end")  # summed across workers


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
            "dropped": max(0, self.planned - self.started),  # never started (k6's dropped_iterations)
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

    def results(self, *, stopped_early: bool) -> Arrivals:
        """The ``arrivals`` part of the results. A run stopped before its schedule ended (Ctrl-C, an abort) did not
        drop the arrivals not yet due: only those left waiting."""
        counts = self.as_dict()
        if stopped_early:
            counts["dropped"] = counts["waiting_at_end"]
        return Arrivals.model_validate(counts)

    def to_wire(self) -> dict[str, object]:
        """All the counts, the jitter histogram too: what a worker reports (absolute, so a resend is harmless)."""
        counts: dict[str, object] = {name: getattr(self, name) for name in _COUNTS}
        return {**counts, "max_late_ms": self.max_late_ms, "jitter": self.jitter.to_dict(compact=True)}

    def add(self, wire: dict[str, object]) -> None:
        """Add a worker's ``to_wire()`` counts to these (the master sums its workers'); ``ValueError`` if malformed."""
        try:
            for name in _COUNTS:
                setattr(self, name, getattr(self, name) + int(wire[name]))  # type: ignore[call-overload]
            self.max_late_ms = max(self.max_late_ms, float(wire["max_late_ms"]))  # type: ignore[arg-type]
            self.jitter.merge(Histogram.from_dict(wire["jitter"]))  # type: ignore[arg-type]
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            raise ValueError(f"arrival counts: {exc}") from None


def from_intended_start(intended: RequestStats, duration: float) -> FromIntendedStart:
    """The ``from_intended_start`` part of the results: each entry's response times from the intended start."""
    snapshot = intended.snapshot(duration=max(1e-9, duration), histograms=False)
    fields = ("avg_ms", "max_ms", "median_ms", "percentiles")
    return FromIntendedStart.model_validate(
        {
            "total": {k: getattr(snapshot.total, k) for k in fields},
            "requests": [
                {"method": e.method, "name": e.name, **{k: getattr(e, k) for k in fields}} for e in snapshot.requests
            ],
        }
    )


@dataclass
class Share:
    """This process's part of the arrivals: ``plan`` is ``(since, index, count)`` rows, ``since`` ascending;
    from offset ``since`` on, arrival k is ours when ``k % count == index``. One process: all of them."""

    plan: list[tuple[float, int, int]] = field(default_factory=lambda: [(0.0, 0, 1)])

    def takes(self, k: int, offset: float) -> bool:
        for since, index, count in reversed(self.plan):
            if offset >= since:
                return count > 0 and k % count == index
        return False


def arrival_times(stages: Sequence[RateStage], start_rate: float = 0.0) -> array[float]:
    """Intended arrival offsets (seconds from the start), rates changing linearly within each stage.

    The k-th arrival (k = 0, 1, …) is where the integral of the rate reaches k, so a constant 20/s for 2 s
    gives 0, 0.05, … 1.95: forty arrivals, none on the boundary where the run stops. 8 bytes an arrival (the
    scenario allows at most ``MAX_ARRIVALS``: 24 MB).
    """
    times: array[float] = array("d")
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
        self,
        classes: Sequence[type[VirtualUser]],
        stats: StatsSink,
        intended: RequestStats,
        *,
        max_users: int,
        **kw: Any,
    ) -> None:
        super().__init__(classes, stats, iterations=1, **kw)
        self.intended = intended
        self.max_users = max_users
        self.arrivals = ArrivalCounts()
        self._waiting: deque[tuple[float, int]] = deque()  # (intended start, k) of arrivals with no slot yet
        self._kinds = itertools.cycle(spawn_order(distribute(self.classes, 100)))
        self.share = Share()
        self._replanned = Event()  # a new share came while the schedule waits for its next arrival
        self._arrival = 0  # the index in the schedule of the arrival starting now

    @property
    def open_model(self) -> OpenModel:
        return self

    def arrival_results(self, *, stopped_early: bool) -> Arrivals:
        return self.arrivals.results(stopped_early=stopped_early)

    def on_request(self, user: VirtualUser, result: RequestResult) -> None:
        """As in the closed model (statistics, the request hook), and the time from the intended start."""
        super().on_request(user, result)
        if self.counts(result):
            self.intended.log(result.method, result.name, result.elapsed_ms + user.late_ms, result.size, result.failure)

    def on_response(self, user: VirtualUser, method: str, name: str, response: Response, failure: str | None) -> None:
        self.on_request(user, RequestResult.of(method, name, response, failure))

    def start_arrivals(self, stages: Sequence[RateStage], start_rate: float = 0.0) -> None:
        """Arrive along ``stages`` (a constant rate is one stage starting at that rate); stop at their end."""
        self.started_at = time.time()
        self.state = State.RUNNING
        offsets = arrival_times(stages, start_rate)
        duration = sum(s.duration for s in stages)
        self.arrivals.planned = len(offsets)
        self._end_by(duration)
        self._timers.append(gevent.spawn(self._arrive, offsets, time.monotonic(), duration, True))

    def follow(
        self, stages: Sequence[RateStage], start_rate: float, elapsed: float, plan: list[tuple[float, int, int]]
    ) -> None:
        """A worker's part of the cluster's arrivals: the schedule began ``elapsed`` seconds ago (on the master);
        ``plan`` is this worker's ``Share``. The master, not the schedule's end, stops it."""
        self.started_at = time.time() - elapsed
        self.state = State.RUNNING
        self.share.plan = plan
        offsets = arrival_times(stages, start_rate)
        duration = sum(s.duration for s in stages)
        self._timers.append(gevent.spawn(self._arrive, offsets, time.monotonic() - elapsed, duration, False))

    def replan(self, plan: list[tuple[float, int, int]], max_users: int) -> None:
        """A new share (the cluster changed): arrivals not yet due are judged by it."""
        self.share.plan = plan
        self.max_users = max_users
        while self._waiting and self.user_count < self.max_users and self._open():
            self._begin(*self._waiting.popleft())
        self._replanned.set()

    def _arrive(self, offsets: array[float], origin: float, duration: float, own_schedule: bool) -> None:
        k = 0
        while k < len(offsets):
            offset = offsets[k]
            if not self.share.takes(k, offset):
                k += 1
                continue
            intended = origin + offset
            if own_schedule:
                gevent.sleep(max(0.0, intended - time.monotonic()))
            elif self._replanned.wait(max(0.0, intended - time.monotonic())):  # judge what is not due yet again
                self._replanned.clear()
                since = max(self.share.plan[-1][0], time.monotonic() - origin)
                k = min(k, bisect.bisect_left(offsets, since))
                continue
            if not own_schedule:
                self.arrivals.planned += 1  # a worker's planned: its share's; the master counts the schedule
            if self.user_count < self.max_users and not self._waiting and self._open():
                self._begin(intended, k, queued=False)
            else:
                self._waiting.append((intended, k))
            k += 1
        if own_schedule:
            gevent.sleep(max(0.0, origin + duration - time.monotonic()))
            self.stop("run time reached")

    def take_id(self) -> int:
        """Arrival k's user is user k + 1: ids are dense and unique across a cluster's workers, with no asking."""
        return self._arrival + 1

    def _begin(self, intended: float, k: int, *, queued: bool = True) -> None:
        index = next(self._kinds)
        late_ms = max(0.0, (time.monotonic() - intended) * 1000)
        self._arrival = k
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

    def _open(self) -> bool:
        """Arrivals may still begin: running, and not past the run's end (``stop`` sets it before it stops)."""
        return self.state == State.RUNNING and time.monotonic() < self.ends_at

    def _forget(self, user: VirtualUser, index: int) -> None:
        super()._forget(user, index)
        if self._waiting and self._open():
            self._begin(*self._waiting.popleft())

    def _stop(self) -> None:
        self.arrivals.waiting_at_end = len(self._waiting)
        self._waiting.clear()
        super()._stop()


def _implements(local: LocalRunner, arrivals: ArrivalRunner) -> tuple[Runner, Runner]:
    """mypy checks here that both runners are ``Runner``s (never called)."""
    return local, arrivals
