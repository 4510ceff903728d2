"""``Period``: what one statistics entry saw over some time — one second, a window, or the whole run."""

from __future__ import annotations

from typing import Any

from runner.stats.histogram import Histogram


class Period(Histogram):
    """A response-time histogram plus the failures, the bytes received, the retries (requests sent again on a
    new connection after a kept-alive one was found closed) and the time of the last request.

    The hot path (``RequestStats.log``) writes the buckets, sums, min and max of the current second's
    ``Period`` directly and leaves ``count`` to ``settle()``, which runs before the second is read or folded.
    """

    __slots__ = ("bytes", "failures", "http2", "last", "retries")

    def __init__(self) -> None:
        super().__init__()
        self.failures = 0
        self.bytes = 0
        self.retries = 0
        self.http2 = 0  # requests that went over HTTP/2
        self.last = 0.0  # epoch s of the last request, 0 when none

    def settle(self) -> None:
        """Make ``count`` agree with the buckets after hot-path writes."""
        self.count = sum(self.counts.values())

    def merge(self, other: Histogram) -> None:
        super().merge(other)
        if isinstance(other, Period):
            self.failures += other.failures
            self.bytes += other.bytes
            self.retries += other.retries
            self.http2 += other.http2
            self.last = max(self.last, other.last)

    def to_dict(self, *, compact: bool = False) -> dict[str, Any]:
        data = super().to_dict(compact=compact)
        data.update(failures=self.failures, bytes=self.bytes, last=self.last)
        if self.retries:
            data["retries"] = self.retries
        if self.http2:
            data["http2"] = self.http2
        return data

    @staticmethod
    def parse(data: dict[str, Any]) -> tuple[Any, ...]:
        """``Histogram.parse`` plus ``(failures, bytes, last, retries, http2)``."""
        parsed = Histogram.parse(data)
        try:
            extras = (int(data.get("failures", 0)), int(data.get("bytes", 0)), float(data.get("last", 0.0)))
            return (*parsed, *extras, int(data.get("retries", 0)), int(data.get("http2", 0)))
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
