"""What the page shows, as plain data: the live snapshot (pushed once a second to every open page), the
series behind its charts, and Locust's ``/stats/requests`` JSON.

The snapshot is built once per second whatever the number of pages: no histogram buckets, no series (a page
fetches a series once, then appends the newest point each snapshot carries).

Resources are one series of their own (``/api/series?key=resources``): each point is a local sample (lrun, the
machine, ``--monitor``ed processes) with the remote values (``monitor.hosts``, ``monitor.prometheus``) of that
moment, so local and remote lines share the request charts' time axis.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from typing import Any

from pydantic import TypeAdapter

from runner.live.state import Live
from runner.live.view import LiveView
from runner.report.model import Entry, Transactions
from runner.slo import window_row
from runner.stats import RequestStats, Series, Snapshot, StatsEntry
from runner.stats.histogram import percentile_key
from runner.thresholds import evaluate, parse_rule
from runner.web.control import Controller, TestRun

_ENTRIES = TypeAdapter(list[Entry])
LOG_LINES = 300
RESOURCES = "resources"  # the series key of the resources panel
POINT_KEYS = ("t", "users", "rps", "failures_per_s", "p50_ms", "p95_ms", "p99_ms", "avg_ms")
# where the interval's time went: a point's ``timings`` averages (None where nothing was timed)
PHASE_KEYS = ("dns_ms", "connect_ms", "tls_ms", "send_ms", "ttfb_ms", "receive_ms")
COLUMNS = POINT_KEYS + PHASE_KEYS


class LogTail(logging.Handler):
    """The last LOG_LINES lines of lrun's log, numbered, for the page's log panel."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: deque[tuple[int, str]] = deque(maxlen=LOG_LINES)
        self.count = 0
        self.setFormatter(logging.Formatter("[%(asctime)s] %(levelname)s: %(message)s", "%H:%M:%S"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record)
        except Exception:  # a log line must never break a run
            return
        self.count += 1
        self.lines.append((self.count, text))


def entry_key(entry: StatsEntry | dict[str, Any]) -> str:
    """A row's key: "request:GET:/items", "transaction::browse"."""
    if isinstance(entry, StatsEntry):
        return f"{entry.kind}:{entry.method}:{entry.name}"
    return f"{entry.get('type', 'request')}:{entry.get('method') or ''}:{entry.get('name', '')}"


def compact(point: dict[str, Any]) -> list[Any]:
    """A series point as the charts take it (``COLUMNS``): [t, users, rps, failures/s, p50, p95, p99, avg,
    then the average ms of each phase]."""
    timings = point.get("timings") or {}
    return [point.get(key) for key in POINT_KEYS] + [timings.get(key) for key in PHASE_KEYS]


def _row(entry: StatsEntry, duration: float, now: float) -> dict[str, Any]:
    data = entry.to_dict(duration, histogram=False)
    pct = data.pop("percentiles")
    end = int(now)  # the last complete seconds of the window, read once for rates and percentiles
    window = entry.interval(end - entry.window, end)
    span = end - max(end - entry.window, entry.start_time)
    current = window.percentiles((50, 95)) if window.count else {50: None, 95: None}
    data.update(
        key=entry_key(entry),
        p50_ms=pct.get(percentile_key(50)),
        p95_ms=pct.get(percentile_key(95)),
        p99_ms=pct.get(percentile_key(99)),
        percentiles=pct,
        current_rps=round(window.count / span, 3) if span > 0 else 0.0,
        current_failures_per_s=round(window.failures / span, 3) if span > 0 else 0.0,
        current_p50_ms=current[50],
        current_p95_ms=current[95],
    )
    if entry.timings is not None:  # where the time went, on average: the server's wait and connecting
        data.update(ttfb_avg_ms=entry.timings.mean(4), connect_avg_ms=entry.timings.mean(1))
    return data


def _last_point(series: Series | None) -> list[Any] | None:
    return compact(series[-1]) if series is not None and len(series) else None


def _table(stats: RequestStats, start: float, now: float, lag: float) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    stats.total.flush()
    duration = max(1e-9, now - max(start, stats.start_time))
    rows = [_row(e, duration, now - lag) for e in sorted(stats.entries.values(), key=lambda e: (e.name, e.method))]
    total = _row(stats.total, duration, now - lag)
    total.update(key="total", name="Aggregated")
    return rows, total


def _figures(
    total: dict[str, Any], requests: list[dict[str, Any]], transactions: list[dict[str, Any]], tps: dict[str, Any]
) -> Snapshot:
    """The page's rows as the typed figures thresholds read (the rows are entries with a few more keys)."""
    entries = _ENTRIES.validate_python
    return Snapshot(
        total=Entry.model_validate(total),
        requests=entries(requests),
        series=[],
        errors=[],
        exceptions=[],
        transactions=Transactions(total=Entry.model_validate(tps), entries=entries(transactions)),
    )


def snapshot(controller: Controller, log_tail: LogTail | None = None) -> dict[str, Any]:
    """Everything the page shows now (see the module docstring)."""
    now = time.time()
    run = controller.current
    data: dict[str, Any] = {
        "now": now,
        "state": controller.state(),
        "run": None,
        "history": [r.summary() for r in controller.runs],
        "workers": controller.backend.workers(),
        "log": list(log_tail.lines)[-100:] if log_tail is not None else [],
    }
    if run is not None and run.live is not None:
        data["run"] = run_view(controller, run, now)
    return data


def run_view(controller: Controller, run: TestRun, now: float) -> dict[str, Any]:
    live = run.live
    assert live is not None
    view = LiveView(live)
    requests, total = _table(live.stats, live.started, now, live.lag)
    transactions, transactions_total = _table(live.transactions, live.started, now, live.lag)
    thresholds = []
    table = _figures(total, requests, transactions, transactions_total) if controller.loaded.model.thresholds else None
    windows = live.slo.live() if live.slo is not None else []
    for threshold in controller.loaded.model.thresholds:
        if threshold.over is not None:  # a live SLO window: its state now
            thresholds.append(window_row(windows.pop(0), threshold.abort) if windows else {})
            continue
        assert table is not None
        verdict = evaluate(parse_rule(threshold.expect), threshold.request, table)
        thresholds.append({**verdict, "abort": threshold.abort})
    thresholds = [t for t in thresholds if t]
    points = {"total": _last_point(live.stats.series)}
    for stats in (live.stats, live.transactions):
        for entry in stats.entries.values():
            points[entry_key(entry)] = _last_point(entry.series)
    end = run.ended or now
    return {
        "id": run.id,
        "started": run.started,
        "ended": run.ended,
        "elapsed_s": round(end - run.started, 1),
        "users": view.users,
        "target_users": view.target_users,
        "spawn_rate": run.settings.spawn_rate,
        "run_time": run.settings.run_time,
        "host": run.settings.host or controller.loaded.model.host or "",
        "stop_reason": view.stop_reason or run.error,
        "exit_code": run.exit_code,
        "total": total,
        "requests": requests,
        "transactions": transactions,
        "thresholds": thresholds,
        "windows": live.slo.live() if live.slo is not None else [],
        "errors": live.stats.errors.failure_list()[:100],
        "exceptions": live.stats.errors.exception_list()[:50],
        "checks": [c.model_dump() for c in view.checks()],
        "rendezvous": [
            {**point.gate.summary(), "waiting": point.gate.waiting, "enabled": point.enabled} for point in view.points()
        ],
        "pools": [p.model_dump() for p in view.pool_results()],
        "resources": live.monitor.last,
        "remote": live.remote.current() if live.remote is not None else None,
        "warnings": live.warnings[-50:],
        "points": points,
    }


def series(controller: Controller, key: str) -> list[list[Any]] | None:
    """The points of one chart line: "total", or a row's key; None for an unknown key."""
    run = controller.current
    if run is None or run.live is None:
        return None
    live = run.live
    if key == "total":
        return [compact(p) for p in live.stats.series]
    if key == RESOURCES:
        return resource_series(live)
    for stats in (live.stats, live.transactions):
        for entry in stats.entries.values():
            if entry_key(entry) == key:
                return [compact(p) for p in entry.series] if entry.series is not None else []
    return None


def resource_series(live: Live) -> list[Any]:
    """The local samples, each with the remote point of its moment (the last scrape before it, if recent)."""
    local = live.monitor.results()["series"]
    if live.remote is None:
        return [{**point, "hosts": {}, "queries": {}} for point in local]
    remote, recent = live.remote.points, 3 * live.remote.stride
    gap = {  # no scrape near that moment: every host and query, without values
        "hosts": {e.name: {} for e in live.remote.endpoints if e.kind == "host"},
        "queries": {e.name: None for e in live.remote.endpoints if e.kind == "query"},
    }
    out: list[Any] = []
    j = -1
    for point in local:
        while j + 1 < len(remote) and remote[j + 1]["t"] <= point["t"] + 0.5:
            j += 1
        near = remote[j] if j >= 0 and point["t"] - remote[j]["t"] <= recent else gap
        out.append({**point, "hosts": near["hosts"], "queries": near["queries"]})
    return out


# ----------------------------------------------------------------------------------------------- Locust's JSON


def _locust_row(row: dict[str, Any]) -> dict[str, Any]:
    pct = row.get("percentiles") or {}
    out = {
        "method": row.get("method") or "",
        "name": row.get("name", ""),
        "safe_name": row.get("name", ""),
        "num_requests": row.get("requests", 0),
        "num_failures": row.get("failures", 0),
        "avg_response_time": row.get("avg_ms") or 0,
        "min_response_time": row.get("min_ms"),
        "max_response_time": row.get("max_ms") or 0,
        "current_rps": row.get("current_rps", 0.0),
        "current_fail_per_sec": row.get("current_failures_per_s", 0.0),
        "median_response_time": row.get("median_ms") or 0,
        "ninetieth_response_time": pct.get("90") or 0,
        "ninety_ninth_response_time": pct.get("99") or 0,
        "avg_content_length": row.get("avg_bytes") or 0,
    }
    for q in ("50", "95", "99"):
        out[f"response_time_percentile_0.{q}" if q != "50" else "response_time_percentile_0.5"] = pct.get(q) or 0
    return out


def locust_stats(controller: Controller, now_snapshot: dict[str, Any]) -> dict[str, Any]:
    """``GET /stats/requests`` as Locust answers it (state, user_count, stats with the Aggregated row last …)."""
    run = now_snapshot.get("run")
    state = now_snapshot["state"]
    if run is None:
        return {
            "state": state,
            "user_count": 0,
            "total_rps": 0.0,
            "total_fail_per_sec": 0.0,
            "fail_ratio": 0.0,
            "stats": [],
            "errors": [],
            "current_response_time_percentiles": {},
            "workers": now_snapshot["workers"],
        }
    total = run["total"]
    rows = [_locust_row(r) for r in run["requests"]] + [_locust_row(total)]
    return {
        "state": state,
        "user_count": run["users"],
        "total_rps": total.get("current_rps", 0.0),
        "total_fail_per_sec": total.get("current_failures_per_s", 0.0),
        "fail_ratio": total.get("failure_ratio", 0.0),
        "stats": rows,
        "errors": [
            {
                "method": e.get("method", ""),
                "name": e.get("name", ""),
                "error": e.get("message", ""),
                "occurrences": e.get("count", 0),
            }
            for e in run["errors"]
        ],
        "current_response_time_percentiles": {
            "response_time_percentile_0.5": total.get("current_p50_ms"),
            "response_time_percentile_0.95": total.get("current_p95_ms"),
        },
        "workers": now_snapshot["workers"],
    }
