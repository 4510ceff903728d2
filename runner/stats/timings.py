"""Where each request's time went: per request name, a histogram of each phase (``PHASES``: dns, connect, tls,
send, ttfb, receive), the same mergeable ``Histogram`` the response times use.

Only responses are timed (a request with no response has no first byte). A response on a kept-alive
connection spent 0 ms in dns, connect and tls: ``record`` counts it (``reused``) instead of writing three
zeros, and ``fold`` adds those to the three histograms' 0 bucket before anything reads them. Only the whole
run is kept (no per-second ring): a worker sends what it timed since its last report (``to_state``) and the
master adds it (``add_state``).
"""

from __future__ import annotations

from typing import Any

from runner.scenario.limits import PHASES
from runner.stats.histogram import PERCENTILES, Histogram, percentile_key

__all__ = ["PHASES", "PhaseTimes"]


def _ms(value: float | None) -> float | None:
    return None if value is None else round(float(value), 3)


class PhaseTimes:
    """A histogram per phase of the responses of one request name (or of all: the total)."""

    __slots__ = ("connections", "histograms", "reused")

    def __init__(self) -> None:
        self.histograms = tuple(Histogram() for _ in PHASES)
        self.connections = 0  # responses on a new connection
        self.reused = 0  # responses on a kept-alive connection not yet in the dns/connect/tls 0 buckets

    def record(self, phases: tuple[float, ...]) -> None:
        """One response's phases in ms (the hot path: ``Histogram.record`` inlined, as in ``RequestStats.log``)."""
        histograms = self.histograms
        if phases[1] or phases[0] or phases[2]:
            self.connections += 1
            first = 0
        else:
            self.reused += 1
            first = 3
        for index in range(first, 6):
            ms = phases[index]
            h = histograms[index]
            us = (ms * 1000.0).__trunc__()
            if us >= 1024:
                shift = us.bit_length() - 10
                us = us >> shift << shift
            elif us < 0:
                us = 0
                ms = 0.0
            counts = h.counts
            counts[us] = counts.get(us, 0) + 1
            h.count += 1
            h.total += ms
            h.sumsq += ms * ms
            if ms < h._min:
                h._min = ms
            if ms > h._max:
                h._max = ms

    def fold(self) -> None:
        """Add the kept-alive responses' zeros to the dns, connect and tls histograms."""
        reused = self.reused
        if reused:
            self.reused = 0
            for h in self.histograms[:3]:
                h.counts[0] = h.counts.get(0, 0) + reused
                h.count += reused
                h._min = 0.0
                h._max = max(h._max, 0.0)

    def merge(self, other: PhaseTimes) -> None:
        other.fold()
        self.connections += other.connections
        for mine, theirs in zip(self.histograms, other.histograms, strict=True):
            mine.merge(theirs)

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
        for h, data in zip(self.histograms, phases, strict=True):
            h.add_parsed(data)

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
