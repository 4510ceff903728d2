"""Where the responses' time went, for the live outputs: a Prometheus histogram and OTLP gauges with a ``phase``
label (dns, connect, tls, send, ttfb, receive), read from the run's statistics when scraped or exported (nothing
per request). On a master, these are the cluster's merged timings."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable
from itertools import accumulate
from typing import Any

from prometheus_client.core import HistogramMetricFamily

from runner.stats.timings import PHASES

# seconds: a phase is often far below a whole response (a connect on a LAN, a request written)
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_LIMITS_US = [b * 1e6 for b in BUCKETS]
_BOUNDS = [*map(str, BUCKETS), "+Inf"]
OTEL_PERCENTILES = (50.0, 95.0, 99.0)


def _timed(entries: Iterable[Any]) -> list[tuple[Any, Any]]:
    """(entry, its PhaseTimes) of every request entry with timed responses, the phases folded."""
    found = []
    for entry in entries:
        timings = entry.timings
        if timings is not None:
            timings.fold()
            found.append((entry, timings))
    return found


def prometheus_family(entries: Iterable[Any]) -> HistogramMetricFamily:
    """``lrun_request_phase_seconds{method, name, phase}``: each phase's times since the start."""
    family = HistogramMetricFamily(
        "lrun_request_phase_seconds",
        "Where the responses' time went: dns, connect, tls (0 on a kept-alive connection), send, ttfb, receive.",
        labels=["method", "name", "phase"],
    )
    for entry, timings in _timed(entries):
        for phase, h in zip(PHASES, timings.histograms, strict=True):
            per_bucket = [0] * (len(BUCKETS) + 1)
            for us, count in h.counts.items():
                per_bucket[bisect_left(_LIMITS_US, us)] += count
            buckets = list(zip(_BOUNDS, accumulate(per_bucket), strict=True))
            family.add_metric([entry.method, entry.name, phase], buckets, h.total / 1000.0)
    return family


def otel_callback(view: Any, observation: Callable[..., Any]) -> Callable[[Any], Iterable[Any]]:
    """The callback of the ``lrun.request.phase`` gauge: percentiles 50, 95, 99 and the mean of each phase, in
    seconds, since the start (attributes: method, name, ``phase``, ``percentile`` or "avg")."""

    def callback(options: Any) -> Iterable[Any]:
        out = []
        for entry, timings in _timed(view.requests()):
            for phase, h in zip(PHASES, timings.histograms, strict=True):
                if not h.count:
                    continue
                base = {"http.request.method": entry.method, "lrun.name": entry.name, "phase": phase}
                for q, ms in h.percentiles(OTEL_PERCENTILES).items():
                    out.append(observation(ms / 1000.0, {**base, "percentile": f"{q:g}"}))
                out.append(observation(h.mean / 1000.0, {**base, "percentile": "avg"}))
        return out

    return callback
