"""Sliding windows over the per-second statistics: the math behind live SLO windows (``runner.slo`` judges).

A ``SecondRing`` keeps the last seconds' ``Period`` s (a mergeable histogram with failures, per second) of the
entries a window threshold reads; a window is the merge of its seconds, so its p95 is the p95 of every request in
it (not the worst of the per-second p95s) and a master's window holds every worker's requests. Nothing re-reads
raw samples: the seconds are those the statistics already keep (``StatsEntry.interval``).
"""

from __future__ import annotations

from collections import deque

from runner.scenario.limits import COUNT_METRICS, PERCENTILE, RATE_METRICS
from runner.stats.period import Period


class SecondRing:
    """The Periods of the last ``size`` seconds, oldest first; a second without requests is not kept."""

    __slots__ = ("seconds", "size")

    def __init__(self, size: int) -> None:
        self.size = size
        self.seconds: deque[tuple[int, Period]] = deque()

    def push(self, second: int, period: Period) -> None:
        if period.count:
            self.seconds.append((second, period))
        oldest = second - self.size
        while self.seconds and self.seconds[0][0] <= oldest:
            self.seconds.popleft()

    def window(self, end: int, over: int) -> Period:
        """The requests of the seconds ``end - over <= second < end``."""
        merged = Period()
        for second, period in self.seconds:
            if end - over <= second < end:
                merged.merge(period)
        return merged


def window_value(metric: str, period: Period, span: float) -> float | None:
    """A threshold metric over one window of ``span`` seconds (None: no data to judge). Times in ms, the error
    rate as a ratio, rates per second, counts as counted in the window."""
    count = period.count
    if metric in RATE_METRICS:
        return period.failures / count if count else None
    if metric in COUNT_METRICS:
        failures = period.failures
        per_s = span if span > 0 else 1.0
        return {"requests": count, "failures": failures, "rps": count / per_s, "failures_per_s": failures / per_s}[
            COUNT_METRICS[metric]
        ]
    if metric == "avg":
        return period.mean
    if metric == "min":
        return period.min
    if metric == "max":
        return period.max
    if metric == "median":
        return period.percentile(50)
    if PERCENTILE.match(metric):
        return period.percentile(float(metric[1:]))
    raise ValueError(f"{metric} cannot be judged over a window")
