"""Where each request's time went: per request name, a histogram of each phase (``PHASES``: dns, connect, tls,
send, ttfb, receive), the same mergeable ``Histogram`` the response times use.

Only responses are timed (a request with no response has no first byte). A response on a kept-alive
connection spent 0 ms in dns, connect and tls: ``record`` counts it (``reused``) instead of writing three
zeros, and ``fold`` adds those to the three histograms' 0 bucket before anything reads them. The histograms
hold the whole run: a worker sends what it timed since its last report (``to_state``) and the master adds it
(``add_parsed``). Over time: ``close`` gives the count and the sums per phase timed since the last ``close``
(the histograms' deltas), which the entry keeps with its second (``Period.phases``) once a second, when it folds
that second; so the per-second figures cost nothing per request, and travel and merge with the seconds.
"""

from __future__ import annotations

from operator import attrgetter, mul, sub
from typing import Any

from runner.scenario.limits import PHASES
from runner.stats.histogram import PERCENTILES, Histogram, bucket_width, percentile_key

__all__ = ["PHASES", "PhaseTimes"]


class _Midpoints(dict[int, float]):
    """Bucket key (µs) -> its midpoint in ms, as percentiles read it; 0 is exactly 0 (a kept-alive connection).
    Filled as keys are first seen: at most the buckets of the times seen (≈ 1,536 per doubling)."""

    def __missing__(self, key: int) -> float:
        ms = (key + bucket_width(key) / 2) / 1000.0 if key else 0.0
        self[key] = ms
        return ms


_MIDPOINTS = _Midpoints()
_TOTAL = attrgetter("total")


def _add_buckets(h: Histogram, counts: dict[int, int]) -> None:
    """Add ``{bucket: count}`` to ``h``, each value taken as its bucket's midpoint (as percentiles read them).

    Once a second per request name and phase (``close``): the sums in C (``map``), not a loop per bucket.
    """
    keys, ns = list(counts), list(counts.values())
    mids = list(map(_MIDPOINTS.__getitem__, keys))
    total = sum(map(mul, mids, ns))
    sumsq = sum(map(mul, map(mul, mids, mids), ns))
    h.add_parsed((keys, ns, sum(ns), total, sumsq, min(mids), max(mids)))


def _ms(value: float | None) -> float | None:
    return None if value is None else round(float(value), 3)


class PhaseTimes:
    """A histogram per phase of the responses of one request name (or of all: the total)."""

    __slots__ = ("_closed", "connections", "histograms", "pending", "reused")

    def __init__(self) -> None:
        self.histograms = tuple(Histogram() for _ in PHASES)
        self.pending: tuple[dict[int, int], ...] = tuple({} for _ in PHASES)  # bucket -> responses, not yet folded
        self.connections = 0  # responses on a new connection
        self.reused = 0  # responses on a kept-alive connection not yet in the dns/connect/tls 0 buckets
        self._closed = [0.0] * (len(PHASES) + 1)  # responses and sums per phase at the last close (or added)

    def record(self, phases: tuple[float, ...]) -> None:
        """One response's phases in ms (finite, not negative: perf_counter differences).

        The hot path: only a bucket count per phase (as ``Histogram.record`` keys it); ``fold`` makes the
        histograms' count, sum, min and max from the buckets (their midpoints: within 0.1 %).
        """
        pending = self.pending
        if phases[1] or phases[0] or phases[2]:  # a new connection (the rarer case): dns, connect, tls
            self.connections += 1
            for index in range(3):
                us = (phases[index] * 1000.0).__trunc__()
                if us >= 1024:
                    shift = us.bit_length() - 10
                    us = us >> shift << shift
                counts = pending[index]
                counts[us] = counts.get(us, 0) + 1
        else:
            self.reused += 1
        # send, ttfb, receive: unrolled (a quarter cheaper than the loop)
        us = (phases[3] * 1000.0).__trunc__()
        if us >= 1024:
            shift = us.bit_length() - 10
            us = us >> shift << shift
        counts = pending[3]
        try:
            counts[us] += 1
        except KeyError:  # a bucket's first value (a dict's get() call costs more on every other one)
            counts[us] = 1
        us = (phases[4] * 1000.0).__trunc__()
        if us >= 1024:
            shift = us.bit_length() - 10
            us = us >> shift << shift
        counts = pending[4]
        try:
            counts[us] += 1
        except KeyError:
            counts[us] = 1
        us = (phases[5] * 1000.0).__trunc__()
        if us >= 1024:
            shift = us.bit_length() - 10
            us = us >> shift << shift
        counts = pending[5]
        try:
            counts[us] += 1
        except KeyError:
            counts[us] = 1

    def fold(self) -> None:
        """Add the recorded buckets, and the kept-alive responses' zeros, to the histograms."""
        reused = self.reused
        if reused:  # zeros add to the count only (a sum of zeros is 0): no list, no loop over buckets
            self.reused = 0
            for h in self.histograms[:3]:
                zeros = h.counts
                zeros[0] = zeros.get(0, 0) + reused
                h.count += reused
                h._min = min(h._min, 0.0)
                h._max = max(h._max, 0.0)
        self._fold_buckets()

    def _fold_buckets(self) -> None:
        """Add the recorded buckets to the histograms (not the kept-alive zeros: ``close`` does not need them)."""
        for h, counts in zip(self.histograms, self.pending, strict=True):
            if not counts:
                continue
            if len(counts) == 1:  # a quiet second's one response: no lists to build
                ((key, n),) = counts.items()
                ms = _MIDPOINTS[key]
                found = h.counts
                found[key] = found.get(key, 0) + n
                h.count += n
                h.total += ms * n
                h.sumsq += ms * ms * n
                if ms < h._min:
                    h._min = ms
                if ms > h._max:
                    h._max = ms
            else:
                _add_buckets(h, counts)
            counts.clear()

    def close(self) -> list[float] | None:
        """``[responses, ms in dns, connect, tls, send, ttfb, receive]`` timed since the last close (sums, the
        bucket midpoints as ``fold`` counts them), None if none: once a second per entry, never per request.
        The responses are receive's count (every response has one); the zeros of the kept-alive ones wait for
        ``fold``, as they add nothing to a sum."""
        self._fold_buckets()
        histograms, closed = self.histograms, self._closed
        responses = histograms[5].count - closed[0]
        if not responses:
            return None
        now = [float(histograms[5].count), *map(_TOTAL, histograms)]
        self._closed = now
        sums = list(map(sub, now, closed))
        return sums if min(sums) >= 0.0 else [max(0.0, x) for x in sums]  # rounding of merged-in sums

    def merge(self, other: PhaseTimes) -> None:
        other.fold()
        self.connections += other.connections
        for mine, theirs in zip(self.histograms, other.histograms, strict=True):
            mine.merge(theirs)
        # What is added from elsewhere was not timed here: no ``close`` gives it (add_parsed likewise).
        closed = self._closed
        closed[0] += other.histograms[5].count
        for i, h in enumerate(other.histograms):
            closed[i + 1] += h.total

    def mean(self, phase: int) -> float | None:
        """The average ms of one phase (an index of ``PHASES``), None before a response; for live tables."""
        self.fold()
        return _ms(self.histograms[phase].mean)

    @property
    def count(self) -> int:
        """Responses timed."""
        return self.histograms[5].count

    # ------------------------------------------------------------------------------------- distributed

    def to_state(self) -> dict[str, Any]:
        """Plain data (msgpack) that ``parse`` reads: the new connections and a compact histogram per phase."""
        self.fold()
        return {"connections": self.connections, "phases": [h.to_dict(compact=True) for h in self.histograms]}

    @staticmethod
    def parse(data: Any) -> tuple[int, list[tuple[Any, ...]]]:
        """Check a ``to_state`` form (a worker's) without adding anything; ``ValueError`` if it is not one."""
        try:
            connections, phases = data["connections"], data["phases"]
        except (KeyError, TypeError) as exc:
            raise ValueError(f"not request timings: {exc!r}") from None
        if (
            type(connections) is not int
            or connections < 0
            or not isinstance(phases, list)
            or len(phases) != len(PHASES)
        ):
            raise ValueError(f"not request timings: a count and a list of {len(PHASES)} histograms expected")
        return connections, [Histogram.parse(h) for h in phases]

    def add_parsed(self, parsed: tuple[int, list[tuple[Any, ...]]]) -> None:
        connections, phases = parsed
        self.connections += connections
        closed = self._closed
        for i, (h, data) in enumerate(zip(self.histograms, phases, strict=True)):
            h.add_parsed(data)
            if data[2]:  # its count
                closed[i + 1] += data[3]  # its sum
        closed[0] += phases[5][2]

    # ------------------------------------------------------------------------------------------ results

    def to_dict(self) -> dict[str, Any]:
        """The ``timings`` of a results entry: responses timed, of which on a new connection, then per phase
        avg, min, max and percentiles in ms."""
        self.fold()
        data: dict[str, Any] = {"responses": self.count, "new_connections": self.connections}
        for phase, h in zip(PHASES, self.histograms, strict=True):
            data[phase] = {
                "avg_ms": _ms(h.mean),
                "min_ms": _ms(h.min),
                "max_ms": _ms(h.max),
                "percentiles": {percentile_key(q): _ms(v) for q, v in h.percentiles(PERCENTILES).items()},
            }
        return data
