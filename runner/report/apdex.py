"""Apdex of an entry from its histogram: ``(satisfied + tolerating / 2) / requests``.

A response is *satisfied* when its time is at most T, *tolerating* when at most 4 T, *frustrated* above 4 T.
A failed request is frustrated whatever its time (as JMeter's dashboard counts it): the failures are taken out of
the fastest buckets first, where quick errors land. T defaults to 500 ms (``lrun report --apdex-t``). A bucket
counts by its midpoint (about 0.1 % from any time in it).
"""

from __future__ import annotations

from runner.report.model import Entry
from runner.scenario.types import parse_duration
from runner.stats.histogram import bucket_width

APDEX_T_MS = 500.0


def apdex(entry: Entry, t_ms: float = APDEX_T_MS) -> float | None:
    """The entry's Apdex score in [0, 1]; None without a histogram or a response."""
    histogram = entry.histogram
    if histogram is None or not histogram.count:
        return None
    t_us = t_ms * 1000
    satisfied = tolerating = 0
    for key, count in histogram.counts.items():
        us = int(key)
        middle = us + bucket_width(us) / 2 if bucket_width(us) > 1 else us
        if middle <= t_us:
            satisfied += count
        elif middle <= 4 * t_us:
            tolerating += count
    failed = min(entry.failures, histogram.count)
    taken = min(failed, satisfied)
    satisfied -= taken
    tolerating = max(0, tolerating - (failed - taken))
    return (satisfied + tolerating / 2) / histogram.count


def fmt_apdex(score: float | None) -> str:
    """``0.94``, ``—`` without a score."""
    return "—" if score is None else f"{score:.2f}"


def parse_apdex_t(text: str) -> float:
    """T in milliseconds from ``500ms``, ``0.5s``; ``ValueError`` for a bare number (ms or s?) or zero."""
    if not text.strip() or text.strip()[-1].isdigit():
        raise ValueError("give a unit, such as 500ms or 1.5s")
    seconds = parse_duration(text)
    if seconds <= 0:
        raise ValueError("T must be longer than 0ms")
    return seconds * 1000
