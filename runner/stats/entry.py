"""``StatsEntry``: the statistics of one (method, name), or of all of them (the "Aggregated" total).

An entry keeps three things:

- the current second (``_cur``, a ``Period``), the only thing a request touches on the hot path;
- a ring of per-second ``Period`` s for the last seconds (``window`` plus some slack), behind the "current"
  values: requests/s, failures/s and percentiles over the last ``window`` complete seconds;
- everything since the start (``_all``), for the totals.

When a request lands in a new second, or before anything is read (``flush``), the current second is folded
into the ring and the cumulative ``Period`` — and into the parent's, so the total never needs its own update
on the hot path. Everything an entry holds merges (workers → master) and serializes to plain data.
"""

from __future__ import annotations

import time
from typing import Any

from runner.stats.histogram import PERCENTILES, Histogram, percentile_key
from runner.stats.period import Period
from runner.stats.series import Series
from runner.stats.timings import PhaseTimes

WINDOW = 10  # seconds behind the "current" values
RING_SLACK = 10  # seconds kept beyond the window, for a late ``sample`` or late worker reports
MAX_PENDING = 64  # merged reports an entry holds before adding them up (a read adds them up anyway)


def _ms(value: float | None) -> float | None:
    return None if value is None else round(float(value), 3)


def periods_from_state(data: dict[str, Any]) -> dict[int, Period]:
    """``{"epoch second": Period.to_dict()}`` back to ``{second: Period}``; ``ValueError`` for anything else."""
    try:
        return {int(sec): Period.from_dict(p) for sec, p in data.items()}
    except (TypeError, ValueError, AttributeError) as exc:
        raise ValueError(f"not per-second statistics: {exc!r}") from None


class StatsEntry:
    """One line of the statistics. ``kind`` is "request" (or, later, "transaction")."""

    __slots__ = (
        "_all",
        "_children",
        "_cur",
        "_newest",
        "_parent",
        "_pending",
        "_sec",
        "_seconds",
        "_stale",
        "kind",
        "method",
        "name",
        "series",
        "start_time",
        "timings",
        "window",
    )

    def __init__(
        self,
        method: str,
        name: str,
        kind: str = "request",
        *,
        window: int = WINDOW,
        start_time: float | None = None,
        parent: StatsEntry | None = None,
    ) -> None:
        if window < 1:
            raise ValueError("the window is at least 1 second")
        self.method = method
        self.name = name
        self.kind = kind
        self.window = window
        self.start_time = time.time() if start_time is None else start_time  # when counting started
        self.series: Series | None = None  # per-entry history, only with RequestStats(full_history=True)
        self._parent = parent
        self._children: list[StatsEntry] = []  # the entries a total is made of
        self._all = Period()
        self._seconds: dict[int, Period] = {}
        self._newest = -1
        self._sec = -1
        self._cur = Period()
        self._stale = False  # a total whose children got data it has not: rebuild it on the next read
        self._pending: list[tuple[Any, ...]] = []  # merged data (Period.parse) not yet added to _all
        self.timings: PhaseTimes | None = None  # where the responses' time went, once one was timed

    def __repr__(self) -> str:
        return f"<StatsEntry {self.method} {self.name} requests={self.num_requests}>"

    # ------------------------------------------------------------------------------------------ writing

    def log(self, ms: float, size: int, failed: bool, now: float | None = None) -> None:
        """Count one request. ``RequestStats.log`` inlines this for speed; keep the two in step."""
        if now is None:
            now = time.time()
        sec = int(now)
        if sec != self._sec:
            self._roll(sec)
        cur = self._cur
        cur.record(ms)
        cur.bytes += size
        cur.last = now
        if failed:
            cur.failures += 1

    def _roll(self, sec: int) -> None:
        """The hot path moved to another second."""
        if self._cur.counts:
            self._fold()
        self._sec = sec

    def _fold(self) -> None:
        cur = self._cur
        self._cur = Period()
        cur.settle()
        if self.timings is not None:  # where the second's time went: once a second, not per request
            cur.phases = self.timings.close()
        self._add(cur, {self._sec: cur}, reuse=True)

    def _add(self, everything: Period, seconds: dict[int, Period], reuse: bool = False, parent: bool = True) -> None:
        """Add to the cumulative data and to the ring (``reuse``: the periods may be kept as they are), and to
        the parent's unless ``parent`` is false."""
        self._all.merge(everything, phases=False)  # the run's phases are in ``timings``: per second only
        ring = self._seconds
        for sec, period in seconds.items():
            slot = ring.get(sec)
            if slot is not None:
                slot.merge(period)
            elif sec > self._newest:
                ring[sec] = period if reuse else period.copy()
                self._newest = sec
                oldest = sec - self.window - RING_SLACK
                for old in [s for s in ring if s < oldest]:
                    del ring[old]
            elif sec >= self._newest - self.window - RING_SLACK:  # older data is in the totals only
                ring[sec] = period if reuse else period.copy()
        if self._parent is not None and parent:
            self._parent._add(everything, seconds)

    def flush(self) -> None:
        """Fold the current second (of every child, for a total) so that reads see every request."""
        for child in self._children:
            child.flush()
        if self._cur.counts:
            self._fold()
        if self._pending:
            self._add_pending()
        if self._stale:  # a total is the sum of its children: a master adds up once per read, not per report
            self._stale = False
            everything = Period()
            for child in self._children:
                everything.merge(child._all, phases=False)
            self._all = everything

    def add_later(self, parsed: tuple[Any, ...]) -> None:
        """Add ``Period.parse`` d data to the totals, at the next read: a master merging hundreds of reports a
        second adds each entry's in one go, with its buckets hot in the cache (twice as fast)."""
        self._pending.append(parsed)
        if len(self._pending) >= MAX_PENDING:
            self._add_pending()

    def _add_pending(self) -> None:
        everything = self._all
        for parsed in self._pending:
            everything.add_parsed(parsed)
        self._pending = []

    def merge(self, other: StatsEntry | dict[str, Any], *, parent: bool = True) -> None:
        """Add another entry's data (a worker's, as ``StatsEntry`` or ``to_state()`` dict); the parent follows,
        unless ``parent`` is false (the parent's data comes separately)."""
        parsed = isinstance(other, dict)
        if parsed:
            other = StatsEntry.from_state(other)  # type: ignore[arg-type]
        other.flush()  # type: ignore[union-attr]
        if other._all.count:  # type: ignore[union-attr]
            self._add(other._all, other._seconds, reuse=parsed, parent=parent)  # type: ignore[union-attr]

    def reset(self, now: float | None = None) -> None:
        """Forget everything; count from ``now`` on. (A total is reset on its own, not through children.)"""
        self.start_time = time.time() if now is None else now
        self.series = None
        self._all = Period()
        self._seconds = {}
        self._newest = -1
        self._sec = -1
        self._cur = Period()
        self._stale = False
        self._pending = []
        self.timings = None

    # ------------------------------------------------------------------------------------------ reading

    @property
    def histogram(self) -> Period:
        """All response times since the start (a ``Histogram`` with failures, bytes and last time)."""
        self.flush()
        return self._all

    @property
    def num_requests(self) -> int:
        return self.histogram.count

    @property
    def num_failures(self) -> int:
        return self.histogram.failures

    @property
    def total_content_length(self) -> int:
        return self.histogram.bytes

    @property
    def last_request_time(self) -> float | None:
        last = self.histogram.last
        return last or None

    def interval(self, begin: int, end: int) -> Period:
        """The requests of the whole seconds ``begin <= second < end`` still in the ring."""
        self.flush()
        period = Period()
        for sec, slot in self._seconds.items():
            if begin <= sec < end:
                period.merge(slot)
        return period

    def _window(self, now: float) -> tuple[Period, float]:
        """The last ``window`` complete seconds before ``now``, and how long of them counting was on."""
        end = int(now)
        begin = end - self.window
        return self.interval(begin, end), end - max(begin, self.start_time)

    def current_rps(self, now: float) -> float:
        period, span = self._window(now)
        return period.count / span if span > 0 else 0.0

    def current_failures_per_s(self, now: float) -> float:
        period, span = self._window(now)
        return period.failures / span if span > 0 else 0.0

    def current_percentile(self, q: float, now: float) -> float | None:
        """Percentile ``q`` of the last ``window`` complete seconds; None without requests in them."""
        return self._window(now)[0].percentile(q)

    def to_dict(self, duration: float, *, histogram: bool = True) -> dict[str, Any]:
        """This entry as it goes into the results (``runner.report.model.Entry``); ``histogram``: with its buckets."""
        h = self.histogram
        n = h.count
        percentiles = h.percentiles(PERCENTILES)
        data = {
            "type": self.kind,
            "method": self.method,
            "name": self.name,
            "requests": n,
            "failures": h.failures,
            "failure_ratio": round(h.failures / n, 6) if n else 0.0,
            "rps": round(n / duration, 3) if duration > 0 else 0.0,
            "failures_per_s": round(h.failures / duration, 3) if duration > 0 else 0.0,
            "avg_ms": _ms(h.mean),
            "min_ms": _ms(h.min),
            "max_ms": _ms(h.max),
            "median_ms": _ms(percentiles[50]),
            "stddev_ms": _ms(h.stddev),
            "avg_bytes": round(h.bytes / n, 3) if n else None,
            "total_bytes": h.bytes,
            "retries": h.retries,
            "http2": h.http2,
            "percentiles": {percentile_key(q): _ms(v) for q, v in percentiles.items()},
        }
        if histogram:
            data["histogram"] = Histogram.to_dict(h)  # without the Period extras
        return data

    # ---------------------------------------------------------------------------------- serialization

    def to_state(self, *, seconds: bool = True) -> dict[str, Any]:
        """Everything needed to rebuild or merge this entry, as plain data (not the series); without the
        per-second ring unless ``seconds``."""
        self.flush()
        return {
            "method": self.method,
            "name": self.name,
            "kind": self.kind,
            "start_time": self.start_time,
            "all": self._all.to_dict(compact=True),
            "seconds": {str(s): p.to_dict(compact=True) for s, p in sorted(self._seconds.items())} if seconds else {},
        }

    @classmethod
    def from_state(cls, data: dict[str, Any], *, window: int = WINDOW) -> StatsEntry:
        try:
            entry = cls(
                str(data["method"]),
                str(data["name"]),
                str(data.get("kind", "request")),
                window=window,
                start_time=float(data["start_time"]),
            )
            entry._all = Period.from_dict(data["all"])
            entry._seconds = periods_from_state(data.get("seconds", {}))
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            raise ValueError(f"not a statistics entry: {exc!r}") from None
        entry._newest = max(entry._seconds, default=-1)
        return entry
