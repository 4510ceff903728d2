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
from itertools import accumulate, repeat
from operator import add
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
            self.counts = other.counts.copy()
        else:  # counts[key] += n for every key of other, iterated in C: 4x faster than the loop (a master's work)
            keys = other.counts.keys()
            counts.update(zip(keys, map(add, other.counts.values(), map(counts.get, keys, repeat(0))), strict=True))
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

    def to_dict(self, *, compact: bool = False) -> dict[str, Any]:
        """Plain-data form (JSON and msgpack): ``{"counts": {"key_us": n}, "count", "min", "max", "sum", "sumsq"}``.

        ``compact`` (for msgpack between processes): ``"counts": [[key_us, …], [n, …]]``, integers, no text to
        parse: a master reads a worker's report three times faster.
        """
        keys = sorted(self.counts)
        counts = list(map(self.counts.__getitem__, keys))
        return {
            "counts": [keys, counts] if compact else dict(zip(map(str, keys), counts, strict=True)),
            "count": self.count,
            "min": self.min,
            "max": self.max,
            "sum": self.total,
            "sumsq": self.sumsq,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        """The inverse of ``to_dict``; raises ``ValueError`` on anything else."""
        new = cls()
        new.add_parsed(cls.parse(data))
        return new

    @staticmethod
    def parse(data: dict[str, Any]) -> tuple[Any, ...]:
        """Check a ``to_dict`` form without building anything: ``(keys, counts, count, sum, sumsq, min, max)``
        for ``add_parsed``. A master reads every worker's report through here: what it can, it checks in C."""
        try:
            counts = data["counts"]
            if isinstance(counts, list):  # compact: integers, no text to parse
                keys, ns = counts
                if not {*map(type, keys), *map(type, ns)} <= {int} or (keys and (min(keys) < 0 or max(keys) >> 48)):
                    raise ValueError("bucket keys and counts must be integers, keys from 0 to 2**48")
                if len(keys) != len(ns) or len(set(keys)) != len(keys):
                    raise ValueError("one count for each bucket, each bucket once")
            else:
                keys, ns = list(map(int, counts.keys())), list(map(int, counts.values()))
            count = int(data["count"])
            parsed = (keys, ns, count, float(data["sum"]), float(data["sumsq"]))
            parsed += (float(data["min"]), float(data["max"])) if count else (INF, -INF)  # type: ignore[assignment]
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ValueError(f"not a histogram: {exc!r}") from None
        if sum(ns) != count:
            raise ValueError("not a histogram: the bucket counts do not add up to its count")
        return parsed

    def add_parsed(self, parsed: tuple[Any, ...]) -> None:
        """Add what ``parse`` read (as ``merge`` adds a histogram, without building one)."""
        keys, ns, count, total, sumsq, low, high = parsed[:7]
        if not count:
            return
        counts = self.counts
        if counts:
            counts.update(zip(keys, map(add, ns, map(counts.get, keys, repeat(0))), strict=True))
        else:
            self.counts = dict(zip(keys, ns, strict=True))
        self.count += count
        self.total += total
        self.sumsq += sumsq
        self._min = min(self._min, low)
        self._max = max(self._max, high)
