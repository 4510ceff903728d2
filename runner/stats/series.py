"""``Series``: the time series behind the charts and the history CSV, bounded whatever the run's length.

One point per ``RequestStats.sample`` call, stored as 32 floats in one flat ``array('d')`` (256 bytes a point).
At most ``max_points`` (3,600) points: when a new point would exceed that, adjacent pairs are merged and the
interval doubles — 1 s points for the first hour, then 2 s, 4 s … so a 24-hour soak still has ≤ 3,600 points.
While the interval is above one second, new seconds are merged into the last point until it spans an interval.
The cumulative ("total_*") values are those of the points so far, so they always agree with the points
(requests that reach a second after it was sampled, like late worker reports, count in the results' totals only).

Merging two points: counts and sums add (so rates and averages stay exact), the percentiles take the larger
of the two (a merged point's p95 is the worst p95 of its seconds: pessimistic, never hides a spike), users
and the cumulative ("total_*") values take the later point's.

A point as a dict (``to_list``, ``series[i]``; ms rounded to 3 decimals, None where there is no data)::

    t                 end of the interval, epoch s (int); the point covers [t - interval_s, t)
    interval_s        seconds covered (the first and the last point may cover less than a second)
    users             users running when the point was taken
    requests, failures            in the interval
    rps, failures_per_s           over the interval
    avg_ms, p50_ms, p95_ms, p99_ms                 of the interval's response times
    percentiles       {"50" … "100": ms} of the interval (all of PERCENTILES)
    total_requests, total_failures                 cumulative at t
    total_avg_ms, total_median_ms, total_min_ms, total_max_ms, total_avg_bytes   cumulative at t
    timings           where the interval's time went: {"responses", "dns_ms", "connect_ms", "tls_ms", "send_ms",
                      "ttfb_ms", "receive_ms"} (average ms per phase of the responses timed), None when none was
                      (counts and sums per phase are kept, so merged points stay exact averages)
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterator
from typing import Any

from runner.stats.histogram import PERCENTILES, percentile_key
from runner.stats.period import PHASE_SUMS, Period

MAX_POINTS = 3600
NAN = math.nan

_T, _SECONDS, _SPAN, _USERS, _REQUESTS, _FAILURES, _SUM = range(7)
_P0 = 7  # first percentile column
_C0 = _P0 + len(PERCENTILES)  # first cumulative column
_C_REQUESTS, _C_FAILURES, _C_SUM, _C_MEDIAN, _C_MIN, _C_MAX, _C_BYTES = range(_C0, _C0 + 7)
_PH0 = _C0 + 7  # responses timed, then the ms per phase (Period.phases): summed
WIDTH = _PH0 + PHASE_SUMS

# How two adjacent points merge, column by column: "last", "sum" or "max".
_RULES = (
    *("last", "sum", "sum", "last", "sum", "sum", "sum"),
    *("max",) * len(PERCENTILES),
    *("last",) * 7,
    *("sum",) * PHASE_SUMS,
)
_KEYS = [percentile_key(q) for q in PERCENTILES]
_PHASE_KEYS = ("dns_ms", "connect_ms", "tls_ms", "send_ms", "ttfb_ms", "receive_ms")
_NO_PHASES = (0.0,) * PHASE_SUMS


def _max(a: float, b: float) -> float:
    if a != a:  # NaN: no data on that side
        return b
    if b != b:
        return a
    return a if a > b else b


def _merge(a: array, b: array) -> list[float]:
    out = []
    for rule, x, y in zip(_RULES, a, b, strict=True):
        out.append(y if rule == "last" else x + y if rule == "sum" else _max(x, y))
    return out


def _ms(x: float) -> float | None:
    return None if x != x else round(x, 3)


def _timings(p: array) -> dict[str, Any] | None:
    responses = p[_PH0]
    if not responses:
        return None
    averages = {key: round(p[_PH0 + 1 + i] / responses, 3) for i, key in enumerate(_PHASE_KEYS)}
    return {"responses": int(responses), **averages}


class Series:
    """Points of one statistics entry over time; see the module docstring."""

    __slots__ = ("_data", "cumulative", "interval", "max_points")

    def __init__(self, max_points: int = MAX_POINTS) -> None:
        if max_points < 2:
            raise ValueError("a series needs room for at least 2 points")
        self.max_points = max_points
        self.interval = 1  # seconds a full point spans
        self.cumulative = Period()  # every interval added so far: the "total_*" values
        self._data = array("d")

    def __len__(self) -> int:
        return len(self._data) // WIDTH

    def clear(self) -> None:
        self._data = array("d")
        self.interval = 1
        self.cumulative = Period()

    def blank_copy(self) -> Series:
        """A series with this one's times and users and no requests: the start of an entry created later."""
        new = Series(self.max_points)
        new.interval = self.interval
        blank = [0.0] * WIDTH
        for i in range(_P0, _C0):
            blank[i] = NAN
        blank[_C_MEDIAN] = blank[_C_MIN] = blank[_C_MAX] = NAN
        data = self._data
        for start in range(0, len(data), WIDTH):
            blank[_T], blank[_SECONDS], blank[_SPAN], blank[_USERS] = data[start : start + 4]
            new._data.extend(blank)
        return new

    def add(self, t: int, seconds: int, span: float, users: int, interval: Period) -> None:
        """Add the point for ``interval``: the requests of the seconds [t - seconds, t)."""
        cumulative = self.cumulative
        cumulative.merge(interval)
        pct = interval.percentiles(PERCENTILES)
        median = cumulative.percentile(50)
        point = [
            float(t),
            float(seconds),
            span,
            float(users),
            float(interval.count),
            float(interval.failures),
            interval.total,
            *(NAN if pct[q] is None else pct[q] for q in PERCENTILES),
            float(cumulative.count),
            float(cumulative.failures),
            cumulative.total,
            NAN if median is None else median,
            NAN if cumulative.min is None else cumulative.min,
            NAN if cumulative.max is None else cumulative.max,
            float(cumulative.bytes),
            *(interval.phases or _NO_PHASES),
        ]
        data = self._data
        if data and data[len(data) - WIDTH + _SECONDS] < self.interval:
            last = len(data) - WIDTH
            data[last:] = array("d", _merge(data[last:], array("d", point)))
            return
        data.extend(point)  # type: ignore[arg-type]
        if len(data) // WIDTH > self.max_points:
            self._halve()

    def _halve(self) -> None:
        data, new = self._data, array("d")
        n = len(data) // WIDTH
        for i in range(0, n - 1, 2):
            a = data[i * WIDTH : (i + 1) * WIDTH]
            b = data[(i + 1) * WIDTH : (i + 2) * WIDTH]
            new.extend(_merge(a, b))
        if n % 2:
            new.extend(data[(n - 1) * WIDTH :])
        self._data = new
        self.interval *= 2

    # ----------------------------------------------------------------------------------------- reading

    def __getitem__(self, index: int) -> dict[str, Any]:
        n = len(self)
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError("series index out of range")
        return self._point(self._data[index * WIDTH : (index + 1) * WIDTH])

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for i in range(len(self)):
            yield self[i]

    def to_list(self) -> list[dict[str, Any]]:
        return list(self)

    @staticmethod
    def _point(p: array) -> dict[str, Any]:
        span, requests, failures = p[_SPAN], int(p[_REQUESTS]), int(p[_FAILURES])
        total_requests = int(p[_C_REQUESTS])
        percentiles = {key: _ms(p[_P0 + i]) for i, key in enumerate(_KEYS)}
        return {
            "t": int(p[_T]),
            "interval_s": round(span, 3),
            "users": int(p[_USERS]),
            "requests": requests,
            "failures": failures,
            "rps": round(requests / span, 3) if span > 0 else 0.0,
            "failures_per_s": round(failures / span, 3) if span > 0 else 0.0,
            "avg_ms": round(p[_SUM] / requests, 3) if requests else None,
            "p50_ms": percentiles["50"],
            "p95_ms": percentiles["95"],
            "p99_ms": percentiles["99"],
            "percentiles": percentiles,
            "total_requests": total_requests,
            "total_failures": int(p[_C_FAILURES]),
            "total_avg_ms": round(p[_C_SUM] / total_requests, 3) if total_requests else None,
            "total_median_ms": _ms(p[_C_MEDIAN]),
            "total_min_ms": _ms(p[_C_MIN]),
            "total_max_ms": _ms(p[_C_MAX]),
            "total_avg_bytes": round(p[_C_BYTES] / total_requests, 3) if total_requests else None,
            "timings": _timings(p),
        }
