"""``Period``: what one statistics entry saw over some time — one second, a window, or the whole run."""

from __future__ import annotations

import math
from operator import add
from typing import Any

from runner.stats.histogram import Histogram

PHASE_SUMS = 7  # responses timed, then the ms spent in each of the 6 phases (stats.timings.PHASES)


def _phase_sums(value: Any) -> tuple[float, ...] | None:
    """A period's ``phases`` from plain data: None, or 7 finite numbers not below 0; ``ValueError`` else."""
    if value is None:
        return None
    if not isinstance(value, list | tuple) or len(value) != PHASE_SUMS:
        raise ValueError(f"not a period: phases is a list of {PHASE_SUMS} numbers")
    sums = tuple(float(x) for x in value if type(x) in (int, float))
    if len(sums) != PHASE_SUMS or not all(0.0 <= x < math.inf for x in sums):
        raise ValueError(f"not a period: phases is a list of {PHASE_SUMS} finite numbers, none below 0")
    return sums


class Period(Histogram):
    """A response-time histogram plus the failures, the bytes received, the retries (requests sent again on a
    new connection after a kept-alive one was found closed) and the time of the last request.

    The hot path (``RequestStats.log``) writes the buckets, sums, min and max of the current second's
    ``Period`` directly and leaves ``count`` to ``settle()``, which runs before the second is read or folded.

    ``phases``: where the time of the responses timed in the period went, as ``[responses, dns ms, connect ms,
    tls ms, send ms, ttfb ms, receive ms]`` sums (None when none was timed). Not written per request: when an
    entry folds its second, ``PhaseTimes.close`` gives what was timed since the last fold (``StatsEntry._fold``).
    """

    __slots__ = ("bytes", "failures", "http2", "last", "phases", "retries")

    def __init__(self) -> None:
        super().__init__()
        self.failures = 0
        self.bytes = 0
        self.retries = 0
        self.http2 = 0  # requests that went over HTTP/2
        self.last = 0.0  # epoch s of the last request, 0 when none
        self.phases: list[float] | None = None

    def add_phases(self, sums: list[float] | tuple[float, ...] | None) -> None:
        """Add ``[responses, ms per phase …]`` sums (a copy: the list given stays the caller's)."""
        if sums is None:
            return
        mine = self.phases
        self.phases = list(sums) if mine is None else list(map(add, mine, sums))

    def settle(self) -> None:
        """Make ``count`` agree with the buckets after hot-path writes."""
        self.count = sum(self.counts.values())

    def merge(self, other: Histogram, *, phases: bool = True) -> None:
        """Add ``other``; its ``phases`` too unless ``phases`` is false (a whole run's ``Period``: the run's
        phases are in its histograms, ``PhaseTimes``)."""
        super().merge(other)
        if isinstance(other, Period):
            self.failures += other.failures
            self.bytes += other.bytes
            self.retries += other.retries
            self.http2 += other.http2
            self.last = max(self.last, other.last)
            if phases and other.phases is not None:
                self.add_phases(other.phases)

    def to_dict(self, *, compact: bool = False) -> dict[str, Any]:
        data = super().to_dict(compact=compact)
        data.update(failures=self.failures, bytes=self.bytes, last=self.last)
        if self.retries:
            data["retries"] = self.retries
        if self.http2:
            data["http2"] = self.http2
        if self.phases is not None:
            data["phases"] = list(self.phases)
        return data

    @staticmethod
    def parse(data: dict[str, Any]) -> tuple[Any, ...]:
        """``Histogram.parse`` plus ``(failures, bytes, last, retries, http2, phases)``."""
        parsed = Histogram.parse(data)
        try:
            extras = (int(data.get("failures", 0)), int(data.get("bytes", 0)), float(data.get("last", 0.0)))
            more = (int(data.get("retries", 0)), int(data.get("http2", 0)), _phase_sums(data.get("phases")))
            return (*parsed, *extras, *more)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"not a period: {exc!r}") from None

    def add_parsed(self, parsed: tuple[Any, ...]) -> None:
        super().add_parsed(parsed)
        if len(parsed) > 7 and parsed[2]:
            self.failures += parsed[7]
            self.bytes += parsed[8]
            self.last = max(self.last, parsed[9])
            self.retries += parsed[10] if len(parsed) > 10 else 0
            self.http2 += parsed[11] if len(parsed) > 11 else 0
            if len(parsed) > 12 and parsed[12] is not None:
                self.add_phases(parsed[12])
