"""Request statistics: what the load runner feeds, samples and turns into the results.

The runner calls ``log`` once per request (the hot path: one dict lookup for the entry, one bucket update in
its current second, no allocation), ``log_error`` for an exception inside a user, ``sample`` once per second
for the charts, and ``snapshot`` (a typed ``Snapshot`` of the results' entry models) for live reads and the end.

The total ("Aggregated") is not updated per request: each entry folds its finished seconds into it, and every
read flushes the seconds under way first, so reads always see every request.

Distributed runs: a worker sends ``delta()`` (what changed since the last delta, as plain data) and the master
``merge`` s it. Per-second data is merged by epoch second, so the master sees a second completely only once
every worker has reported it: sample the master a report interval late (``sample(now - lag, users)``).
Data for a second the master has already sampled still counts in every total, but not in that series point.
A delta carries each entry's totals and the total's seconds; each entry's own seconds only when asked
(``entry_seconds``: for ``--csv-full-history``), which makes it about five times cheaper to merge.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from runner.stats.entry import WINDOW, StatsEntry, periods_from_state
from runner.stats.errors import MAX_GROUPS, ErrorStats
from runner.stats.histogram import PERCENTILES, Histogram
from runner.stats.period import Period
from runner.stats.series import MAX_POINTS, Series
from runner.stats.snapshot import Snapshot
from runner.stats.timings import PhaseTimes

__all__ = [
    "PERCENTILES",
    "ErrorStats",
    "Histogram",
    "Period",
    "RequestStats",
    "Series",
    "Snapshot",
    "StatsEntry",
    "TransactionStats",
]

MAX_NAMES = 1000  # distinct (method, name) entries; more go to OTHER_NAME (a templated URL gives one per value)
OTHER_NAME = "(other names)"
DELTA_FORMAT = "lrun-stats-delta"
DELTA_VERSION = 1
TOTAL_NAME = "Aggregated"


class RequestStats:
    """All statistics of one run (or one worker): entries by (method, name), their total, errors, series.

    ``full_history`` keeps a series per entry too (for ``--csv-full-history``); memory stays bounded either way
    (≤ 3,600 points of 256 bytes per series).
    """

    __slots__ = (
        "_clock",
        "_index",
        "_sampled_until",
        "capped",
        "entries",
        "errors",
        "full_history",
        "max_names",
        "node",
        "series",
        "start_time",
        "total",
        "window",
    )

    def __init__(
        self,
        window: int = WINDOW,
        clock: Callable[[], float] = time.time,
        *,
        full_history: bool = False,
        max_groups: int = MAX_GROUPS,
        max_points: int = MAX_POINTS,
        node: str = "local",
        max_names: int = MAX_NAMES,
    ) -> None:
        self.window = window
        self.max_names = max_names
        self.capped: str | None = None  # why names were folded into OTHER_NAME (a warning, said once)
        self.full_history = full_history
        self.node = node
        self._clock = clock
        self.start_time = clock()  # when counting started (creation or the last reset)
        self.entries: dict[tuple[str, str], StatsEntry] = {}
        self._index: dict[str, dict[str, StatsEntry]] = {}  # name -> method -> entry: no tuple per log
        self.total = StatsEntry("", TOTAL_NAME, window=window, start_time=self.start_time)
        self.errors = ErrorStats(max_groups, node)
        self.series = Series(max_points)
        self._sampled_until = int(self.start_time)

    # --------------------------------------------------------------------------------------- hot path

    def log(
        self,
        method: str,
        name: str,
        ms: float,
        size: int,
        failure: str | None,
        retries: int = 0,
        http2: bool = False,
        timings: tuple[float, ...] | None = None,
    ) -> None:
        """Count one request: ``ms`` its response time (finite), ``size`` bytes, ``failure`` why it failed,
        ``retries`` how often it was sent again (so counts reconcile with the server's), ``http2`` whether it
        went over HTTP/2, ``timings`` its phases (``PhaseTimes.record``)."""
        now = self._clock()
        try:
            entry = self._index[name][method]
        except KeyError:
            entry = self.entry(method, name)
        # Inlined StatsEntry.log and Histogram.record (count is settled when the second is read).
        # x.__trunc__() is int(x) without the global lookup and the type call: ~10% of this method.
        us = (ms * 1000.0).__trunc__()
        if us >= 1024:
            shift = us.bit_length() - 10
            us = us >> shift << shift
        elif us < 0:
            us = 0
            ms = 0.0
        sec = now.__trunc__()
        if entry._sec != sec:
            entry._roll(sec)
        cur = entry._cur
        counts = cur.counts
        counts[us] = counts.get(us, 0) + 1
        cur.total += ms
        cur.sumsq += ms * ms
        if ms < cur._min:
            cur._min = ms
        if ms > cur._max:
            cur._max = ms
        cur.bytes += size
        cur.last = now
        if retries:
            cur.retries += retries
        if http2:
            cur.http2 += 1
        if failure is not None:
            cur.failures += 1
            self.errors.add_failure(method, name, failure, now)
        if timings is not None:
            phases = entry.timings
            if phases is None:
                phases = entry.timings = PhaseTimes()
            phases.record(timings)

    def log_error(self, error: BaseException, user_type: str) -> None:
        """An exception inside a user (not a failed request)."""
        self.errors.add_exception(error, user_type, self._clock())

    def entry(self, method: str, name: str, kind: str = "request") -> StatsEntry:
        """The entry of (method, name), created if new."""
        entry = self.entries.get((method, name))
        if entry is None and len(self.entries) >= self.max_names and name != OTHER_NAME:
            if self.capped is None:
                self.capped = _cap_warning(self.entries, self.max_names, name)
            return self.entry(method, OTHER_NAME, kind)
        if entry is None:
            entry = StatsEntry(method, name, kind, window=self.window, start_time=self.start_time, parent=self.total)
            self.entries[(method, name)] = entry
            self._index.setdefault(name, {})[method] = entry
            self.total._children.append(entry)
        return entry

    # ------------------------------------------------------------------------------------------ control

    def sample(self, now: float, users: int) -> None:
        """Add a series point for the whole seconds since the last one (none if no second ended since).

        Call it once per second, best just after the second turns (``now`` a few ms past it).
        """
        end = int(now)
        begin = self._sampled_until
        if end > begin:
            self._point(begin, end, end - max(begin, self.start_time), users)

    def finish(self, now: float, users_at: Callable[[int], int]) -> None:
        """The last points at the run's end ``now``, so that the points add up to the totals.

        A point for each whole second not sampled yet (a master's points trail real time, and would otherwise
        fold its last seconds into one), then one for the part-second up to ``now`` (``interval_s`` < 1) when
        requests ended in it.
        """
        second = int(now)
        for end in range(self._sampled_until + 1, second + 1):
            self.sample(end, users_at(end))
        span = now - max(second, self.start_time)
        if self._sampled_until == second and span > 0 and self.total.interval(second, second + 1).count:
            self._point(second, second + 1, span, users_at(second))

    def _point(self, begin: int, end: int, span: float, users: int) -> None:
        """The point of the seconds [begin, end), of which ``span`` seconds were counted."""
        self._sampled_until = end
        if self.full_history:
            for entry in self.entries.values():
                if entry.series is None:
                    entry.series = self.series.blank_copy()
                entry.series.add(end, end - begin, span, users, entry.interval(begin, end))
        self.series.add(end, end - begin, span, users, self.total.interval(begin, end))

    def reset(self) -> None:
        """Forget everything counted so far (``--reset-stats`` once users are spawned); entries stay listed."""
        now = self._clock()
        self.start_time = now
        for entry in self.entries.values():
            entry.reset(now)
        self.total.reset(now)
        self.errors.clear()
        self.series.clear()
        self._sampled_until = int(now)

    # ------------------------------------------------------------------------------------- distributed

    def state(self, *, entry_seconds: bool = True) -> dict[str, Any]:
        """Everything counted, as plain data that ``merge`` takes (entries with requests only, no series).

        ``entries``: each entry's totals, and its own seconds only when ``entry_seconds``; ``total_seconds``:
        the seconds of the total ("Aggregated"), whose totals are the sum of the entries'.
        """
        self.total.flush()
        return {
            "format": DELTA_FORMAT,
            "version": DELTA_VERSION,
            "node": self.node,
            "entries": [
                _with_timings(e, e.to_state(seconds=entry_seconds)) for e in self.entries.values() if e._all.count
            ],
            "total_seconds": self.total.to_state()["seconds"],
            "errors": self.errors.to_state(),
        }

    def delta(self, *, entry_seconds: bool = True) -> dict[str, Any]:
        """``state()``, then forget it: what a worker sends its master, once per report interval."""
        state = self.state(entry_seconds=entry_seconds)
        for entry in self.entries.values():
            entry.reset(entry.start_time)
        self.total.reset(self.total.start_time)
        self.errors.clear()
        return state

    def merge(self, other: RequestStats | dict[str, Any]) -> None:
        """Add another ``RequestStats`` or a ``delta()``/``state()`` dict. Series are not merged.

        A malformed dict (a hostile or broken worker) raises ``ValueError`` before anything is added.
        """
        state = other.state() if isinstance(other, RequestStats) else other
        if not isinstance(state, dict) or state.get("format") != DELTA_FORMAT:
            raise ValueError("not an lrun statistics delta")
        if state.get("version") != DELTA_VERSION:
            raise ValueError(f"statistics delta version {state.get('version')!r}; this lrun reads {DELTA_VERSION}")
        # Read everything first: a malformed delta raises ValueError and changes nothing.
        entries = state.get("entries", [])
        if not isinstance(entries, list):
            raise ValueError("not an lrun statistics delta: entries is not a list")
        parsed = []
        for data in entries:  # (method, name, kind, everything as Period.parse() read it, {second: Period}, timings)
            try:
                key = (str(data["method"]), str(data["name"]), str(data.get("kind", "request")))
                timings = PhaseTimes.parse(data["timings"]) if data.get("timings") is not None else None
                parsed.append((*key, Period.parse(data["all"]), periods_from_state(data.get("seconds") or {}), timings))
            except (KeyError, TypeError, AttributeError) as exc:
                raise ValueError(f"not a statistics entry: {exc!r}") from None
        seconds = periods_from_state(state["total_seconds"]) if "total_seconds" in state else None
        errors = ErrorStats(self.errors.max_groups, self.node)
        errors.merge(state.get("errors", {}))
        # Each entry's data goes to the entry (and to the total, which adds its children up when next read);
        # the total's seconds to the total's ring.
        for method, name, kind, everything, its_seconds, timings in parsed:
            if not everything[2]:  # no request
                continue
            entry = self.entry(method, name, kind)
            if timings is not None:
                if entry.timings is None:
                    entry.timings = PhaseTimes()
                entry.timings.add_parsed(timings)
            if seconds is None:  # a delta without the total's seconds: the entries' go to the total too
                period = Period()
                period.add_parsed(everything)
                entry._add(period, its_seconds, reuse=True)
            else:
                entry.add_later(everything)
                if its_seconds:
                    entry._add(Period(), its_seconds, reuse=True, parent=False)
        if seconds is not None:
            self.total._stale = True
            if seconds:
                self.total._add(Period(), seconds, reuse=True)
        self.errors.merge(errors)

    # ------------------------------------------------------------------------------------------ results

    def snapshot(
        self, *, duration: float, histograms: bool = True, timings: bool = True, series: bool = True
    ) -> Snapshot:
        """The "total", "requests", "series", "errors" and "exceptions" parts of the results, typed.

        ``duration`` is the time the requests were counted over (for the rates). ``histograms=False`` leaves
        the entries' buckets out: a third of the cost, for live tables and checks that read percentiles only;
        ``timings=False`` the phases of the responses' time (a live table that does not show them); ``series=False``
        the series (up to 3,600 points: what made a live read costly).
        """
        return Snapshot.of(self._parts(duration, histograms, timings, series))

    def _parts(self, duration: float, histograms: bool, timings: bool, series: bool = True) -> dict[str, Any]:
        self.total.flush()
        requests = []
        timed = PhaseTimes()
        for entry in sorted(self.entries.values(), key=lambda e: (e.kind, e.name, e.method)):
            data = entry.to_dict(duration, histogram=histograms)
            if self.full_history and entry.series is not None:
                data["series"] = [p for p in entry.series if p["total_requests"]]
            if timings and entry.timings is not None:
                data["timings"] = entry.timings.to_dict()
                timed.merge(entry.timings)
            requests.append(data)
        total = self.total.to_dict(duration, histogram=histograms)
        if timed.count:
            total["timings"] = timed.to_dict()
        return {
            "total": total,
            "requests": requests,
            "series": self.series.to_list() if series else [],
            "errors": self.errors.failure_list(),
            "exceptions": self.errors.exception_list(),
        }


def _with_timings(entry: StatsEntry, state: dict[str, Any]) -> dict[str, Any]:
    if entry.timings is not None:
        state["timings"] = entry.timings.to_state()
    return state


_VARYING = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F-]{27}|[0-9a-fA-F]{16,}|\d+")


def _cap_warning(entries: dict[tuple[str, str], StatsEntry], cap: int, name: str) -> str:
    """Say which name pattern (digits and ids replaced by [id]) made the most names: the usual culprit."""
    shapes = Counter(f"{method} {_VARYING.sub('[id]', entry_name)}" for method, entry_name in entries)
    shape, count = shapes.most_common(1)[0] if shapes else (name, 0)
    return (
        f"more than {cap} request names (the last one: {name!r}); the rest count as '{OTHER_NAME}'. "
        f"Worst offender: {count} names like {shape!r}: give such requests a fixed name (name: /items/[id])"
    )


class TransactionStats(RequestStats):
    """Statistics of transactions: entries of kind "transaction" (method ""), and the think time excluded
    from each (``think_s`` by name), merged and reported with them."""

    __slots__ = ("think",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.think: dict[str, float] = {}

    def entry(self, method: str, name: str, kind: str = "transaction") -> StatsEntry:
        return super().entry(method, name, "transaction")

    def log_transaction(self, name: str, ms: float, think_s: float, failure: str | None) -> None:
        self.log("", name, ms, 0, failure)
        if think_s:
            self.think[name] = self.think.get(name, 0.0) + think_s

    def reset(self) -> None:
        super().reset()
        self.think.clear()

    def state(self, *, entry_seconds: bool = True) -> dict[str, Any]:
        return {**super().state(entry_seconds=entry_seconds), "think": dict(self.think)}

    def delta(self, *, entry_seconds: bool = True) -> dict[str, Any]:
        state = super().delta(entry_seconds=entry_seconds)
        self.think.clear()
        return state

    def merge(self, other: RequestStats | dict[str, Any]) -> None:
        state = other.state() if isinstance(other, RequestStats) else other
        think = state.get("think") or {} if isinstance(state, dict) else {}
        if not isinstance(think, dict) or not all(isinstance(v, int | float) for v in think.values()):
            raise ValueError("a transaction delta's think times are not numbers")
        super().merge(state)
        for name, seconds in think.items():
            self.think[str(name)] = self.think.get(str(name), 0.0) + float(seconds)

    def _parts(self, duration: float, histograms: bool, timings: bool, series: bool = True) -> dict[str, Any]:
        snapshot = super()._parts(duration, histograms, timings, series)
        for entry in snapshot["requests"]:
            entry["think_s"] = round(self.think.get(entry["name"], 0.0), 3)
        snapshot["total"]["think_s"] = round(sum(self.think.values()), 3)
        return snapshot
