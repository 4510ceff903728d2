"""Log-bucketed response-time histogram: about 3 significant digits, constant memory, mergeable.

Values are recorded in milliseconds and kept as integer microseconds ``us = int(ms * 1000)``. Below 1024 µs
every microsecond is its own bucket; above, a bucket keeps the 10 leading bits:
``key = (us >> s) << s`` with ``s = us.bit_length() - 10``, so a bucket is at most 1/512 of its value wide and
its midpoint is within 0.1% of anything in it. Buckets are a sparse ``{key: count}`` dict: at most
1024 + 512 per doubling of the largest value (≈ 8,000 buckets for 10 µs … 10 s), however many values.

Percentiles use the nearest-rank definition (the smallest recorded value with at least q% of the values at or
below it) and answer the midpoint of that value's bucket, clamped to the exact [min, max]; ``q <= 0`` is the
exact min and ``q >= 100`` the exact max.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Iterable
from itertools import accumulate
from typing import Any, Self

EXACT_BELOW_US = 1024  # keys below this are exact microseconds
# The percentiles lrun reports, and the keys they have in results ("50" … "99.9", "99.99", "100").
PERCENTILES: tuple[float, ...] = (50, 66, 75, 80, 90, 95, 98, 99, 99.9, 99.99, 100)
INF = math.inf


def percentile_key(q: float) -> str:
    """The results key of a percentile: 50 → "50", 99.9 → "99.9"."""
    return f"{q:g}"


def bucket_key(us: int) -> int:
    """The bucket of a non-negative number of microseconds."""
    if us < EXACT_BELOW_US:
        return us
    shift = us.bit_length() - 10
    return us >> shift << shift


def bucket_width(key: int) -> int:
    """The width in microseconds of the bucket ``key``."""
    return 1 if key < EXACT_BELOW_US else 1 << (key.bit_length() - 10)


def _rank(q: float, count: int) -> int:
    """1-based nearest rank of percentile ``q`` (0 < q < 100) among ``count`` values, in exact integers."""
    return max(1, -(-(round(q * 1_000_000) * count) // 100_000_000))


class Histogram:
    """Counts of response times by bucket, with the exact count, min, max, sum and sum of squares."""

    __slots__ = ("_max", "_min", "count", "counts", "sumsq", "total")

    def __init__(self) -> None:
        self.counts: dict[int, int] = {}
        self.count = 0
        self.total = 0.0  # sum of the values, ms
        self.sumsq = 0.0  # sum of their squares, for the standard deviation
        self._min = INF
        self._max = -INF

    def record(self, ms: float) -> None:
        """Record one value (finite ms; a negative one counts as 0)."""
        us = int(ms * 1000.0)
        if us >= EXACT_BELOW_US:
            shift = us.bit_length() - 10
            us = us >> shift << shift
        elif us < 0:
            us = 0
            ms = 0.0
        counts = self.counts
        counts[us] = counts.get(us, 0) + 1
        self.count += 1
        self.total += ms
        self.sumsq += ms * ms
        if ms < self._min:
            self._min = ms
        if ms > self._max:
            self._max = ms

    def merge(self, other: Histogram) -> None:
        """Add everything ``other`` recorded."""
        if not other.count:
            return
        counts = self.counts
        if not counts:
            self.counts = other.counts.copy()  # into an empty histogram (a new second of a master's ring): in C
        else:
            for key, n in other.counts.items():
                counts[key] = counts.get(key, 0) + n
        self.count += other.count
        self.total += other.total
        self.sumsq += other.sumsq
        self._min = min(self._min, other._min)
        self._max = max(self._max, other._max)

    # ----------------------------------------------------------------------------------------- reading

    def __bool__(self) -> bool:
        return self.count > 0

    def __repr__(self) -> str:
        return f"<{type(self).__name__} count={self.count} min={self.min} max={self.max} buckets={len(self.counts)}>"

    @property
    def min(self) -> float | None:
        return self._min if self.count else None

    @property
    def max(self) -> float | None:
        return self._max if self.count else None

    @property
    def mean(self) -> float | None:
        return self.total / self.count if self.count else None

    @property
    def stddev(self) -> float | None:
        """Population standard deviation."""
        if not self.count:
            return None
        mean = self.total / self.count
        return math.sqrt(max(0.0, self.sumsq / self.count - mean * mean))

    def _value(self, key: int) -> float:
        """The representative value of a bucket in ms: its midpoint, within the exact min and max."""
        ms = (key + bucket_width(key) / 2) / 1000.0
        return min(max(ms, self._min), self._max)

    def percentile(self, q: float) -> float | None:
        """The ``q``-th percentile (0 … 100) in ms, or None when nothing was recorded."""
        return self.percentiles((q,))[q]

    def percentiles(self, qs: Iterable[float]) -> dict[float, float | None]:
        """Several percentiles from one sort of the buckets: ``{q: ms}`` in the order given."""
        if not self.count:
            return dict.fromkeys(qs)
        found: dict[float, float | None] = {}
        keys: list[int] = []
        cumulative: list[int] = []
        for q in qs:
            if q <= 0:
                found[q] = self._min
            elif q >= 100:
                found[q] = self._max
            else:
                if not keys:
                    keys = sorted(self.counts)
                    cumulative = list(accumulate(map(self.counts.__getitem__, keys)))
                found[q] = self._value(keys[bisect_left(cumulative, _rank(q, self.count))])
        return found

    # ------------------------------------------------------------------------------------------ copying

    def copy(self) -> Self:
        new = type(self)()
        new.merge(self)
        return new

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form (JSON and msgpack): ``{"counts": {"key_us": n}, "count", "min", "max", "sum", "sumsq"}``."""
        keys = sorted(self.counts)
        return {
            "counts": dict(zip(map(str, keys), map(self.counts.__getitem__, keys), strict=True)),
            "count": self.count,
            "min": self.min,
            "max": self.max,
            "sum": self.total,
            "sumsq": self.sumsq,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        """The inverse of ``to_dict``; raises ``ValueError`` on anything else."""
        try:
            new = cls()
            new.counts = {int(key): int(n) for key, n in data["counts"].items()}
            new.count = int(data["count"])
            new.total = float(data["sum"])
            new.sumsq = float(data["sumsq"])
            if new.count:
                new._min = float(data["min"])
                new._max = float(data["max"])
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ValueError(f"not a histogram: {exc!r}") from None
        if sum(new.counts.values()) != new.count:
            raise ValueError("not a histogram: the bucket counts do not add up to its count")
        return new
