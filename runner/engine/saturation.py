"""Is lrun itself the bottleneck? Measured, not guessed from CPU use.

A load generator that cannot get the CPU it needs (too many users for one process, or a core shared with other
work) measures its own waiting: a response that arrived is read only when the event loop comes round to it.
lrun's CPU use cannot tell (a core taken by another process leaves lrun idle and late); event-loop lag can.
``LoopLag`` asks a timer to fire every ``INTERVAL`` seconds and records how late it fires: that is how long a
ready greenlet waited, and so roughly what each measured response time carries of lrun's own queueing.

``Saturation`` gathers the three signs: the loop's lag, a spawn rate not reached, open-model arrivals that
started late while a user slot was free. It says so once (a warning) and gives the ``saturation`` object of the
results (documented in ``runner.report.model``).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from statistics import median
from typing import Any

import gevent

from runner.report import model
from runner.stats.histogram import Histogram

INTERVAL = 0.1  # seconds between lag probes
WINDOW = 3.0  # seconds of probes judged each second (at least MIN_PROBES probes: a starved loop probes seldom)
MIN_PROBES = 3
LAG_LIMIT_MS = 20.0  # a window whose median lag is above this is saturated


class LoopLag:
    """How late a timer fires, probe by probe; started and stopped by its owner."""

    def __init__(self, interval: float = INTERVAL, window: float = WINDOW) -> None:
        self.interval = interval
        self.window = window
        self.histogram = Histogram()
        self.recent: deque[tuple[float, float]] = deque(maxlen=int(window / interval) + 1)  # (when, lag ms)
        self._greenlet: gevent.Greenlet | None = None

    def start(self) -> gevent.Greenlet:
        self._greenlet = gevent.spawn(self._probe)
        return self._greenlet

    def stop(self) -> None:
        if self._greenlet is not None:
            self._greenlet.kill(block=False)
            self._greenlet = None

    def _probe(self) -> None:
        while True:
            asked = time.perf_counter()
            gevent.sleep(self.interval)
            now = time.perf_counter()
            self.record(max(0.0, (now - asked - self.interval) * 1000), now)

    def record(self, lag_ms: float, now: float) -> None:
        self.histogram.record(lag_ms)
        self.recent.append((now, lag_ms))

    def window_median(self, now: float | None = None) -> float | None:
        """The median lag of the probes of the last ``window`` seconds (or of the last MIN_PROBES, when fewer);
        None before MIN_PROBES probes."""
        if len(self.recent) < MIN_PROBES:
            return None
        since = (time.perf_counter() if now is None else now) - self.window
        lags = [lag for when, lag in self.recent if when >= since]
        if len(lags) < MIN_PROBES:
            lags = [lag for _, lag in list(self.recent)[-MIN_PROBES:]]
        return median(lags)


class Saturation:
    """The signs that lrun could not keep up, and the one warning that says so."""

    def __init__(self, warn: Callable[[str], None], lag: LoopLag | None = None, limit_ms: float = LAG_LIMIT_MS):
        self.warn = warn
        self.lag = lag or LoopLag()
        self.limit_ms = limit_ms
        self.saturated_s = 0.0  # seconds judged saturated
        self.worst_window_ms = 0.0
        self.spawn: dict[str, Any] | None = None  # the slowest spawn, when a spawn rate was not reached
        self.arrivals_slipped = 0
        self.reasons: dict[str, str] = {}  # by sign: "loop_lag", "spawn", "arrivals"; the worst case seen
        self._warned = False

    def check(self, seconds: float = 1.0) -> None:
        """Judge the last window (called once a second)."""
        window = self.lag.window_median()
        if window is None:
            return
        self.worst_window_ms = max(self.worst_window_ms, window)
        if window > self.limit_ms:
            self.saturated_s += seconds
            self._flag(
                "loop_lag",
                f"lrun is saturated: its event loop ran {window:.0f} ms late (median of the last 3 s; over "
                f"{self.limit_ms:g} ms is too much), so response times measured now include lrun's own waiting",
            )

    def spawn_slipped(self, users: int, asked_rate: float, seconds: float) -> None:
        """A spawn of ``users`` at ``asked_rate`` took ``seconds``: flag it when well short of the rate."""
        if users < 2 or not 0 < asked_rate < float("inf") or seconds <= users / asked_rate * 1.25 + 1.0:
            return
        reached = users / seconds
        if self.spawn is None or reached < self.spawn["reached_rate"]:
            self.spawn = {"users": users, "asked_rate": asked_rate, "reached_rate": round(reached, 2)}
        message = f"spawn rate not reached: {users} users at {asked_rate:g}/s took {seconds:.1f}s ({reached:.1f}/s)"
        self._flag("spawn", f"lrun is saturated: {message}")

    def arrival_slipped(self, late_ms: float, slipped: int, started: int) -> None:
        """An open-model arrival with a free user slot started ``late_ms`` late: lrun's own delay. ``slipped`` of
        ``started`` arrivals did so: a few (a garbage collection) are not yet saturation, 5 % are."""
        self.arrivals_slipped = slipped
        if slipped < 5 or slipped < 0.05 * started:
            return
        message = f"open-model arrivals start late with a user slot free ({late_ms:.0f} ms)"
        self._flag("arrivals", f"lrun is saturated: {message}")

    def _flag(self, sign: str, message: str) -> None:
        self.reasons.setdefault(sign, message.removeprefix("lrun is saturated: "))
        if not self._warned:
            self._warned = True
            self.warn(f"{message}: give lrun a core of its own, or spread the users over processes (--processes)")

    @property
    def saturated(self) -> bool:
        return bool(self.reasons)

    def results(self) -> model.Saturation:
        """The ``saturation`` part of the results."""
        h = self.lag.histogram
        p50, p99 = (h.percentile(50), h.percentile(99)) if h else (None, None)
        return model.Saturation.model_validate(
            {
                "saturated": self.saturated,
                "reasons": list(self.reasons.values()),
                "loop_lag_p50_ms": _round(p50),
                "loop_lag_p99_ms": _round(p99),
                "loop_lag_max_ms": _round(h.max),
                "loop_lag_worst_window_ms": _round(self.worst_window_ms) if h else None,
                "loop_lag_limit_ms": self.limit_ms,
                "probes": h.count,
                "saturated_s": self.saturated_s,
                "spawn": self.spawn,
                "arrivals_slipped": self.arrivals_slipped,
            }
        )


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)
