"""The report's written summary: what happened in a few sentences, made from the results alone.

``explain(results)`` is deterministic (same results, same sentences) and says, in this order:

1. **Trend** of the busiest requests (at most ``TREND_REQUESTS``, by count) — from each request's own series
   (``--csv-full-history``), or from the total series when there is one request name (the total is that request)
   or no per-request series (then it speaks of "all requests"). The *early* p95 is the median of the points' p95
   in the first third of the run. If a later point's p95, and the median of it and the next points (``SUSTAINED``
   in all), reached ``RISE`` × early (and at least ``MIN_RISE_MS`` more), the sentence names the time of the
   first such point and the users running then: "p95 of GET /orders rose from 120 ms to 900 ms at 14:02:05
   (0:42 into the run), when 300 users were running". Otherwise it compares the median p95 of the first and
   last thirds: "rose", "fell" (a change of ``RISE`` × or more) or "stayed near".
2. **Errors**: none; under 0.1 %; or the rate with the most frequent error, its count, first and last seen.
3. **SLO windows** that were breached: how often, when first, and the worst window value.
4. **Load warnings** (the load did not happen as planned) and **saturation** of lrun itself.
5. **Peaks** of the monitored hosts (CPU, memory), Prometheus queries and monitored processes, with their time.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from datetime import UTC, datetime

from runner.report.formats import clock, epoch_of, fmt_bytes, fmt_num, fmt_pct
from runner.report.model import Entry, Failure, Point, Results
from runner.report.windows import breach_text

TREND_REQUESTS = 3
RISE = 2.0  # a p95 this many times its early value is a rise (its inverse a fall)
MIN_RISE_MS = 10.0  # and at least this much more: 1 ms to 3 ms is noise, not a rise
SUSTAINED = 3  # the median p95 of the point and the next ones must rise too: one slow second is not a rise
LOW_ERROR_RATE = 0.001


def _ms(value: float) -> str:
    return f"{value:,.0f} ms" if value >= 10 else f"{value:.1f} ms"


def _at(t: float, origin: float) -> str:
    """``14:02:05 (0:42 into the run)``."""
    return f"{datetime.fromtimestamp(t, UTC).strftime('%H:%M:%S')} ({clock(max(0.0, t - origin))} into the run)"


def _trend(label: str, series: Sequence[Point], origin: float) -> str | None:
    points = [p for p in series if p.p95_ms is not None and p.requests]
    if len(points) < 3:
        return None
    third = max(1, len(points) // 3)
    early = statistics.median(p.p95_ms or 0.0 for p in points[:third])
    late = statistics.median(p.p95_ms or 0.0 for p in points[-third:])
    limit = max(early * RISE, early + MIN_RISE_MS)
    for i, point in enumerate(points[third:], start=third):
        held = statistics.median(p.p95_ms or 0.0 for p in points[i : i + SUSTAINED])
        if (point.p95_ms or 0.0) >= limit and held >= limit:
            peak = max(p.p95_ms or 0.0 for p in points[i:])
            users = f", when {fmt_num(point.users)} users were running" if point.users else ""
            back = " and came back down" if late < early * RISE else ""
            return (
                f"p95 of {label} rose from {_ms(early)} to {_ms(peak)} at {_at(point.t, origin)}{users}{back} "
                f"(last third: {_ms(late)})."
            )
    if late <= early / RISE and early - late >= MIN_RISE_MS:
        return f"p95 of {label} fell from {_ms(early)} in the first third of the run to {_ms(late)} in the last."
    return f"p95 of {label} stayed near {_ms(early)} (first third) to {_ms(late)} (last third)."


def _trends(results: Results, origin: float) -> list[str]:
    busiest = sorted((e for e in results.requests if e.requests), key=lambda e: (-e.requests, e.method, e.name))
    own = [e for e in busiest if e.series][:TREND_REQUESTS]
    if own:
        found = [_trend(_label(e), e.series or [], origin) for e in own]
    else:
        label = _label(busiest[0]) if len(busiest) == 1 else "all requests"
        found = [_trend(label, results.series, origin)]
    return sorted((s for s in found if s), key=lambda s: " rose " not in s)  # a rise first: it is the news


def _label(entry: Entry | Failure) -> str:
    return f"{entry.method} {entry.name}".strip()


def _errors(results: Results, origin: float) -> str | None:
    total = results.total
    if not total.requests:
        return None
    if not total.failures:
        return f"No request failed ({fmt_num(total.requests)} requests)."
    ratio = total.failures / total.requests
    counts = f"{fmt_num(total.failures)} of {fmt_num(total.requests)}"
    if ratio < LOW_ERROR_RATE:
        sentence = f"Errors stayed under 0.1 % ({counts} requests failed)"
    else:
        sentence = f"{fmt_pct(ratio)} of the requests failed ({counts})"
    groups = [e for e in results.errors if not e.other]
    if groups:
        top = max(groups, key=lambda e: e.count)
        seen = ""
        if top.first_seen is not None and top.last_seen is not None:
            seen = f", first at {_at(top.first_seen, origin)}, last at {_at(top.last_seen, origin)}"
        sentence += f"; the most frequent: {_label(top)}: {top.message} ×{fmt_num(top.count)}{seen}"
    return sentence + "."


def _windows(results: Results) -> list[str]:
    found = []
    for window in results.windows or []:
        if not window.breaches:
            continue
        scope = f" [{window.request}]" if window.request else ""
        times = "once" if len(window.breaches) == 1 else f"{len(window.breaches)} times"
        found.append(
            f"The SLO window {window.expression}{scope} was breached {times}; "
            f"first {breach_text(window, window.breaches[0])}."
        )
    return found


def _load(results: Results) -> list[str]:
    found = [f"The load did not happen as planned: {w.message}" for w in results.load_warnings or []]
    saturation = results.saturation
    if saturation and saturation.saturated:
        why = f" ({'; '.join(saturation.reasons)})" if saturation.reasons else ""
        found.append(f"lrun itself was saturated{why}: its response times include its own waiting.")
    return found


def _peak(seen: Sequence[tuple[float | None, float]]) -> tuple[float, float] | None:
    """The largest value and when it was first seen; None without a value."""
    present = [(v, t) for v, t in seen if v is not None]
    return max(present, key=lambda vt: (vt[0], -vt[1])) if present else None


def _peaks(results: Results, origin: float) -> list[str]:
    found = []
    remote = results.remote
    if remote and remote.series:
        for host in remote.hosts:
            figures = []
            for key, what, show in (
                ("cpu_percent", "CPU", lambda v: f"{v:.0f} %"),
                ("memory_used_bytes", "memory used", fmt_bytes),
            ):
                peak = _peak([(p.hosts.get(host.name, {}).get(key), p.t) for p in remote.series])
                if peak:
                    value, t = peak
                    figures.append(f"{what} reached {show(value)} at {_at(t, origin)}")
            if figures:
                found.append(f"The {host.name} host's " + "; its ".join(figures) + ".")
        for query in remote.queries:
            peak = _peak([(p.queries.get(query.name), p.t) for p in remote.series])
            if peak:
                value, t = peak
                found.append(f"The query {query.name} peaked at {value:,.4g} at {_at(t, origin)}.")
    resources = results.resources
    if resources:
        for target in resources.targets:
            most = resources.peak.targets.get(target.spec)
            if target.found and most and most.cpu_percent is not None:
                memory = f" and {fmt_bytes(most.rss_bytes)} resident" if most.rss_bytes is not None else ""
                found.append(
                    f"The monitored process {target.label or target.spec} "
                    f"peaked at {most.cpu_percent:.0f} % CPU{memory}."
                )
    return found


def explain(results: Results) -> list[str]:
    """The summary's sentences, in the order of the module's docstring; empty for a run without requests."""
    origin = epoch_of(results.start) or (results.series[0].t - 1 if results.series else 0.0)
    sentences: list[str] = []
    if results.total.requests:
        sentences += _trends(results, origin)
        sentences += [s for s in [_errors(results, origin)] if s]
    sentences += _windows(results)
    sentences += _load(results)
    sentences += _peaks(results, origin)
    return sentences
