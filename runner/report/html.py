"""The HTML report: one self-contained file made from the JSON results, to forward without editing.

``render_html(results)`` is a pure function of the typed results (``runner.report.model.Results``) — never of a
live runner — so ``lrun run --html`` and ``lrun report results.json`` give the same page. A list of results renders a
side-by-side comparison (the first is the baseline; the others show deltas against it).

The page has no external resource: the stylesheet and a few lines of script are inline, the charts are inline
SVG drawn by ``runner.report.charts``. It opens from disk, needs no network, and prints (the script only adds
table sorting and the hover read-out of charts). Every optional part of the results (transactions, checks,
rendezvous, pools, workers, resources, open-model arrivals) is shown when present and skipped when absent.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, TypedDict, TypeVar

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

import runner
from runner.errors import LrunError
from runner.report import charts
from runner.report.apdex import APDEX_T_MS, apdex, fmt_apdex
from runner.report.breakdown import PHASES, STYLES, TITLES, timing_bars
from runner.report.capacity_html import capacity_view
from runner.report.charts import Line
from runner.report.explain import explain
from runner.report.formats import (
    epoch_of,
    fmt_bytes,
    fmt_duration,
    fmt_ms,
    fmt_num,
    fmt_pct,
    fmt_percent,
    fmt_rate,
    fmt_time,
    since,
    threshold_figures,
)
from runner.report.model import (
    CheckCount,
    Entry,
    Point,
    Remote,
    Resources,
    Results,
    Sample,
    Saturation,
    TargetFigures,
    Worker,
)
from runner.report.scatter import load_legend, scatter_chart
from runner.report.top_errors import top_errors
from runner.report.windows import slo_bands
from runner.scenario.windows import split_over

TEMPLATE = "report.html.j2"
PER_REQUEST_LINES = 8  # at most this many request names get their own line in the per-request chart
PERCENTILE_CHARTS = 4  # the busiest requests with a series get a chart of their percentiles over time


# ----------------------------------------------------------------------------------------------- formatting


def _sort_value(value: float | str | None) -> str:
    """``data-v`` of a table cell: numbers sort as numbers, missing values last."""
    if isinstance(value, bool) or value is None:
        return "" if value is None else str(int(value))
    if isinstance(value, int | float):
        return repr(float(value))
    return str(value)


# ----------------------------------------------------------------------------------------------- the run view

P = TypeVar("P")
Series = list[tuple[float, float | None]]


def _series(points: Iterable[P], t: Callable[[P], float], value: Callable[[P], float | None]) -> Series:
    return [(float(t(p)), value(p)) for p in points]


def _points(points: Iterable[Point], value: Callable[[Point], float | None]) -> Series:
    return _series(points, lambda p: p.t, value)


def _samples(samples: Iterable[Sample], value: Callable[[Sample], float | None]) -> Series:
    return _series(samples, lambda s: s.t, value)


class Chart(TypedDict):
    id: str
    title: str
    svg: Markup
    legend: Markup | str
    note: str


def _chart(
    chart_id: str,
    title: str,
    lines: list[Line],
    *,
    note: str = "",
    unit: str = "",
    x_origin: float = 0.0,
    y_max: float | None = None,
    bands: charts.Bands = (),
) -> Chart:
    with_data = [line for line in lines if any(y is not None for _, y in line.points)]
    lines = with_data or lines[:1]  # a line that never had a value (a target never found) is left out
    return {
        "id": chart_id,
        "title": title,
        "svg": Markup(charts.line_chart(chart_id, lines, unit=unit, x_origin=x_origin, y_max=y_max, bands=bands)),
        "legend": Markup(charts.legend(lines)) if len(lines) > 1 or (lines and lines[0].label) else "",
        "note": note,
    }


def _run_charts(results: Results, origin: float) -> list[Chart]:
    series = results.series
    bands = slo_bands(results)
    found = [
        _chart(
            "chart-throughput",
            "Throughput",
            [
                Line("requests/s", _points(series, lambda p: p.rps)),
                Line("failures/s", _points(series, lambda p: p.failures_per_s), style=3),
            ],
            unit="/s",
            x_origin=origin,
            bands=bands,
        ),
        _chart(
            "chart-response-times",
            "Response times",
            [
                Line("p50", _points(series, lambda p: p.p50_ms)),
                Line("p95", _points(series, lambda p: p.p95_ms), style=1),
                Line("p99", _points(series, lambda p: p.p99_ms), style=2),
                Line("average", _points(series, lambda p: p.avg_ms), dashed=True, style=4),
            ],
            unit="ms",
            x_origin=origin,
            bands=bands,
        ),
    ]
    found += phase_charts(results, origin, bands)
    with_series = [e for e in results.requests if e.series]
    if with_series:
        busiest = sorted(with_series, key=lambda e: -e.requests)[:PER_REQUEST_LINES]
        found.append(
            _chart(
                "chart-per-request",
                "p95 per request",
                [Line(_label(e), _points(e.series or [], lambda p: p.p95_ms)) for e in busiest],
                unit="ms",
                x_origin=origin,
                note=f"the {len(busiest)} busiest requests" if len(with_series) > len(busiest) else "",
            )
        )
    found += _percentile_charts(results, origin, bands)
    users = [Line("users", _points(series, lambda p: p.users))]
    found.append(_chart("chart-users", "Active users", users, x_origin=origin))
    transactions = results.transactions
    if transactions and transactions.series and transactions.entries:
        tps = transactions.series
        found.append(
            _chart(
                "chart-tps",
                "Transactions per second",
                [
                    Line("transactions/s", _points(tps, lambda p: p.rps)),
                    Line("failed/s", _points(tps, lambda p: p.failures_per_s), style=3),
                ],
                unit="/s",
                x_origin=origin,
            )
        )
    found += _resource_charts(results.resources, origin)
    found += _worker_charts(results.workers or [], origin)
    found += _remote_charts(results.remote, origin)
    return found


def phase_lines(
    series: Sequence[Point], x: Callable[[Point], float] = lambda p: p.t, run: str = "", dashed: bool = False
) -> list[Line]:
    """A line per phase of the average ms of each point's responses (``Point.timings``), in the breakdown's
    colours, its label after ``run``; a phase at 0 throughout (DNS for an IP address, TLS over http://) is left
    out."""
    lines = []
    for phase in PHASES:
        key = f"{phase}_ms"
        points = [(x(p), getattr(p.timings, key) if p.timings else None) for p in series]
        if any(y for _, y in points):
            lines.append(Line(f"{run}{TITLES[phase]}", points, dashed=dashed, style=STYLES[phase]))
    return lines


PHASES_NOTE = "average per phase of the responses of each interval; a phase at 0 throughout is left out"


def phase_charts(results: Results, origin: float, bands: charts.Bands = ()) -> list[Chart]:
    """Where the time went, over time: all requests, then the busiest requests with their own series
    (--csv-full-history); none for results without the figures (older files, no HTTP response)."""
    found = []
    if any(p.timings for p in results.series):
        lines = phase_lines(results.series)
        found.append(_chart("chart-phases", "Where the time went, over time", lines, unit="ms", x_origin=origin,
                            note=PHASES_NOTE, bands=bands))  # fmt: skip
    timed = [e for e in results.requests if e.series and any(p.timings for p in e.series)]
    for i, e in enumerate(sorted(timed, key=lambda e: -e.requests)[:PERCENTILE_CHARTS] if len(timed) > 1 else []):
        found.append(_chart(f"chart-phases-{i}", f"{_label(e)}: where the time went", phase_lines(e.series or []),
                            unit="ms", x_origin=origin, bands=bands))  # fmt: skip
    return found


def _percentile_charts(results: Results, origin: float, bands: charts.Bands) -> list[Chart]:
    """p50, p95 and p99 over time of each of the busiest requests with their own series (--csv-full-history)."""
    busiest = sorted((e for e in results.requests if e.series), key=lambda e: -e.requests)[:PERCENTILE_CHARTS]
    return [
        _chart(
            f"chart-pct-{i}",
            f"{_label(e)}: percentiles",
            [
                Line("p50", _points(e.series or [], lambda p: p.p50_ms)),
                Line("p95", _points(e.series or [], lambda p: p.p95_ms), style=1),
                Line("p99", _points(e.series or [], lambda p: p.p99_ms), style=2),
            ],
            unit="ms",
            x_origin=origin,
            bands=bands,
        )
        for i, e in enumerate(busiest)
    ]


def _label(entry: Entry | CheckCount) -> str:
    return f"{entry.method} {entry.name}".strip()


def _resource_charts(resources: Resources | None, origin: float) -> list[Chart]:
    if not resources or not resources.series:
        return []
    points = resources.series
    labels = {t.spec: t.label or t.spec for t in resources.targets}

    def target(spec: str, value: Callable[[TargetFigures], float | None]) -> Series:
        return _samples(points, lambda s: value(s.targets[spec]) if spec in s.targets else None)

    def share(s: Sample) -> float | None:
        used, total = s.system_memory_used_bytes, s.system_memory_total_bytes
        return used / total * 100 if used is not None and total else None

    cpu = [Line("lrun", _samples(points, lambda s: s.process_cpu_percent))]
    cpu += [Line(labels[s], target(s, lambda f: f.cpu_percent), style=i + 1) for i, s in enumerate(labels)]
    memory = [Line("lrun", _samples(points, lambda s: s.process_rss_bytes))]
    memory += [Line(labels[s], target(s, lambda f: f.rss_bytes), style=i + 1) for i, s in enumerate(labels)]
    machine = [
        Line("CPU", _samples(points, lambda s: s.system_cpu_percent)),
        Line("memory used", _samples(points, share), style=1),
    ]
    cores = resources.cpu_count
    return [
        _chart("chart-cpu", "CPU of processes", cpu, unit="%", x_origin=origin,
               note="% of one core (200% = two busy cores)"),
        _chart("chart-memory", "Memory of processes (resident)", memory, unit="bytes", x_origin=origin),
        _chart("chart-machine", "Machine", machine, unit="%", x_origin=origin, y_max=100,
               note=f"% of all {cores} cores and of all memory" if cores else "% of all cores and of all memory"),
    ]  # fmt: skip


def _remote_charts(remote: Remote | None, origin: float) -> list[Chart]:
    """monitor.hosts and monitor.prometheus: one chart per figure, a line per host (gaps where it was down)."""
    if not remote or not remote.series:
        return []
    points = remote.series
    hosts = [h.name for h in remote.hosts]
    queries = [q.name for q in remote.queries]

    def host(name: str, key: str) -> Series:
        return _series(points, lambda p: p.t, lambda p: p.hosts.get(name, {}).get(key))

    def query(name: str) -> Series:
        return _series(points, lambda p: p.t, lambda p: p.queries.get(name))

    def lines(key: str) -> list[Line]:
        return [Line(name, host(name, key), style=i) for i, name in enumerate(hosts)]

    found = []
    if hosts:
        traffic = [Line(f"{n} in", host(n, "network_rx_bytes_per_s"), style=i) for i, n in enumerate(hosts)]
        traffic += [
            Line(f"{n} out", host(n, "network_tx_bytes_per_s"), style=i, dashed=True) for i, n in enumerate(hosts)
        ]
        disk = [Line(f"{n} read", host(n, "disk_read_bytes_per_s"), style=i) for i, n in enumerate(hosts)]
        disk += [
            Line(f"{n} written", host(n, "disk_write_bytes_per_s"), style=i, dashed=True) for i, n in enumerate(hosts)
        ]
        silent = [n for n in hosts if not any(v is not None for _, v in host(n, "memory_used_bytes"))]
        no_data = f"; no data from {', '.join(silent)}" if silent else ""
        found += [
            _chart("chart-host-cpu", "Monitored hosts: CPU", lines("cpu_percent"), unit="%", x_origin=origin,
                   y_max=100, note=f"% of all the host's cores (node_exporter){no_data}"),
            _chart("chart-host-memory", "Monitored hosts: memory used", lines("memory_used_bytes"), unit="bytes",
                   x_origin=origin),
            _chart("chart-host-load", "Monitored hosts: load (1 min)", lines("load1"), x_origin=origin),
            _chart("chart-host-network", "Monitored hosts: network", traffic, unit="bytes", x_origin=origin,
                   note="bytes per second, all interfaces but lo"),
            _chart("chart-host-disk", "Monitored hosts: disk", disk, unit="bytes", x_origin=origin,
                   note="bytes per second"),
        ]  # fmt: skip
    if queries:
        query_lines = [Line(name, query(name), style=i) for i, name in enumerate(queries)]
        found.append(_chart("chart-queries", "Prometheus queries", query_lines, x_origin=origin))
    return found


def _worker_charts(workers: list[Worker], origin: float) -> list[Chart]:
    with_samples = [w for w in workers if w.resources]
    if not with_samples:
        return []
    cpu = [Line(w.id, _samples(w.resources, lambda s: s.process_cpu_percent)) for w in with_samples]
    memory = [Line(w.id, _samples(w.resources, lambda s: s.process_rss_bytes)) for w in with_samples]
    return [
        _chart("chart-worker-cpu", "CPU per worker", cpu, unit="%", x_origin=origin, note="% of one core"),
        _chart("chart-worker-memory", "Memory per worker", memory, unit="bytes", x_origin=origin),
    ]


def _threshold_rows(results: Results) -> list[dict[str, str]]:
    rows = []
    for verdict in results.thresholds:
        measured, limit = threshold_figures(verdict)
        window = bool(split_over(verdict.expression)[1])  # a live SLO window: its worst window, its breaches
        rows.append(
            {
                "what": verdict.expression,
                "scope": verdict.request or "all requests",
                "measured": f"worst window {measured}" if window and verdict.actual is not None else measured,
                "limit": limit,
                "state": "pass" if verdict.passed else "fail",
                "note": verdict.detail if window else "aborts the run" if verdict.abort else "",
            }
        )
    for rv in results.resource_thresholds or []:
        peak = "no data" if rv.peak is None else f"{rv.peak:.1f}%" if rv.unit == "percent" else fmt_bytes(rv.peak)
        rows.append(
            {
                "what": rv.expression,
                "scope": rv.process or ("each monitored process" if rv.metric.startswith("target_") else ""),
                "measured": f"peak {peak}",
                "limit": f"> {rv.above}" + (f" for {rv.for_s:g}s" if rv.for_s else ""),
                "state": "pass" if rv.passed else "fail" if rv.action == "abort" else "warn",
                "note": rv.detail,
            }
        )
    return rows


def _summary(results: Results) -> list[dict[str, Any]]:
    total = results.total
    tiles: list[dict[str, Any]] = [
        {"label": "requests", "value": fmt_num(total.requests)},
        {
            "label": "failures",
            "value": fmt_num(total.failures),
            "sub": fmt_pct(total.failure_ratio),
            "bad": bool(total.failures),
        },
        {"label": "requests/s", "value": fmt_rate(total.rps)},
    ]
    if results.transactions and results.transactions.entries:
        tiles.append({"label": "transactions/s", "value": fmt_rate(results.transactions.total.rps)})
    tiles += [{"label": f"p{q}", "value": fmt_ms(total.percentiles.get(q))} for q in ("50", "90", "95", "99")]
    tiles += [
        {"label": "average", "value": fmt_ms(total.avg_ms)},
        {"label": "max", "value": fmt_ms(total.max_ms)},
        {"label": "peak users", "value": fmt_num(results.users_max), **_asked(results)},
        {"label": "received", "value": fmt_bytes(total.total_bytes)},
    ]
    if total.http2:  # which protocol the requests went over, once any went over HTTP/2
        tiles.append({"label": "HTTP/2", "value": fmt_num(total.http2), "sub": f"of {fmt_num(total.requests)}"})
    return tiles


def _asked(results: Results) -> dict[str, Any]:
    """The peak users tile's note: of how many asked (red when fewer ran)."""
    users = results.user_counts
    if users is None or users.asked is None:
        return {}
    return {"sub": f"of {fmt_num(users.asked)} asked", "bad": users.peak < users.asked}


def _entry_row(entry: Entry, name: str | None = None, apdex_t_ms: float = APDEX_T_MS) -> dict[str, Any]:
    percentiles = entry.percentiles
    score = apdex(entry, apdex_t_ms)
    cells: list[tuple[float | None, str]] = [
        (entry.requests, fmt_num(entry.requests)),
        (entry.failures, fmt_num(entry.failures)),
        (entry.failure_ratio, fmt_pct(entry.failure_ratio)),
        (entry.avg_ms, fmt_ms(entry.avg_ms)),
        (entry.min_ms, fmt_ms(entry.min_ms)),
        *((percentiles.get(q), fmt_ms(percentiles.get(q))) for q in ("50", "90", "95", "99")),
        (entry.max_ms, fmt_ms(entry.max_ms)),
        (entry.rps, fmt_rate(entry.rps)),
        (entry.avg_bytes, fmt_bytes(entry.avg_bytes)),
    ]
    return {
        "type": entry.type,
        "method": "" if name else entry.method,
        "name": name or entry.name,
        "cells": cells,
        "think": entry.think_s,
        "apdex": (score, fmt_apdex(score)),
        "bad": bool(entry.failures),
    }


ENTRY_COLUMNS = ["# requests", "# failures", "failed", "avg", "min", "p50", "p90", "p95", "p99", "max", "per s", "size"]


def _origin(results: Results) -> float:
    start = epoch_of(results.start)
    if start is not None:
        return start
    return float(results.series[0].t) - 1 if results.series else 0.0


def _saturation(saturation: Saturation | None) -> dict[str, Any] | None:
    """The verdict's line on the load generator: saturated (and why), or kept up; None when not measured."""
    if not saturation or saturation.loop_lag_p50_ms is None:
        return None
    lag = (
        f"event loop lag p50 {fmt_ms(saturation.loop_lag_p50_ms)}, "
        f"p99 {fmt_ms(saturation.loop_lag_p99_ms)}, max {fmt_ms(saturation.loop_lag_max_ms)}"
    )
    return {"saturated": saturation.saturated, "lag": lag, "reasons": saturation.reasons}


def _ran(results: Results) -> str:
    """What actually ran: users beside users asked, requests cut off at the stop, arrivals never started."""
    parts = []
    users = results.user_counts
    if users is not None:
        asked = f" of {fmt_num(users.asked)} asked" if users.asked is not None else ""
        started = f", {fmt_num(users.started)} started in all" if users.started is not None else ""
        early = f", {fmt_num(users.ended_early)} ended early" if users.ended_early else ""
        parts.append(f"Users: at most {fmt_num(users.peak)} running at once{asked}{started}{early}.")
    if results.interrupted and results.interrupted.total:
        parts.append(
            f"{fmt_num(results.interrupted.total)} requests were in flight when the run stopped "
            "(sent; their answers are not in the statistics)."
        )
    arrivals = results.arrivals
    if arrivals is not None and arrivals.dropped is not None:
        parts.append(
            f"Arrivals: {fmt_num(arrivals.planned)} planned, {fmt_num(arrivals.started)} started, "
            f"{fmt_num(arrivals.dropped)} never started."
        )
    return " ".join(parts)


def run_view(results: Results, apdex_t_ms: float | None = None) -> dict[str, Any]:
    """Everything the template shows for one run, formatted; optional parts are None or empty. Apdex's T is
    ``apdex_t_ms``, else the one the run used (``results.apdex_t_ms``), else 500 ms."""
    apdex_t_ms = apdex_t_ms or results.apdex_t_ms or APDEX_T_MS
    origin = _origin(results)
    total, transactions, workers = results.total, results.transactions, results.workers or []
    asked = f" ({results.load.users} asked)" if results.load.users is not None and not results.load.stages else ""
    if results.user_counts is not None:
        asked = f" ({results.user_counts.asked} asked)" if results.user_counts.asked is not None else ""
    return {
        "results": results,
        "origin": origin,
        "title": results.scenario or "lrun run",
        "passed": results.passed,
        "no_requests": not total.requests,
        "header": [
            ("scenario", results.scenario or "—"),
            ("scenario file", results.scenario_file or "—"),
            ("host", results.host or "—"),
            ("start", fmt_time(epoch_of(results.start))),
            ("end", fmt_time(epoch_of(results.end))),
            ("duration", fmt_duration(results.duration_s)),
            ("users", f"{fmt_num(results.users_max)} at most{asked}"),
            ("workers", f"{len(workers)} ({', '.join(w.host for w in workers[:6])})" if workers else "1"),
            ("stopped", results.stop_reason or "—"),
            ("lrun", results.lrun_version or "—"),
        ],
        "command": results.command,
        "exit_code": results.exit_code,
        "stop_reason": results.stop_reason,
        "thresholds": _threshold_rows(results),
        "explain": explain(results),
        "warnings": results.warnings or [],
        "load_warnings": results.load_warnings or [],
        "ran": _ran(results),
        "saturation": _saturation(results.saturation),
        "summary": _summary(results),
        "charts": _run_charts(results, origin),
        "load_charts": _load_charts(results.series),
        "distribution": Markup(
            charts.bar_chart(
                "chart-distribution",
                charts.distribution(total.histogram.counts if total.histogram else {}),
                width=1180,
                height=240,
                empty="no responses",
            )
        ),
        "entries": [_entry_row(e, apdex_t_ms=apdex_t_ms) for e in results.requests],
        "total_row": _entry_row(total, "All requests", apdex_t_ms),
        "transactions": [_entry_row(e, apdex_t_ms=apdex_t_ms) for e in transactions.entries] if transactions else [],
        "transactions_total": _entry_row(transactions.total, "All transactions", apdex_t_ms) if transactions else None,
        "apdex_t": fmt_ms(apdex_t_ms),
        "errors": [
            *results.errors,
            *(e.model_copy(update={"method": "transaction"}) for e in (transactions.errors if transactions else [])),
        ],
        "top_errors": top_errors(results),
        "exceptions": results.exceptions,
        "checks": [_check_row(c) for c in results.checks or []],
        "rendezvous": results.rendezvous or [],
        "pools": results.pools or [],
        "workers": workers,
        "resources": _resource_table(results.resources),
        "arrivals": results.arrivals,
        "intended": results.from_intended_start.total.percentiles if results.from_intended_start else {},
        "service": total.percentiles,
        "series_note": _series_note(results.series),
        "capacity": capacity_view(results.capacity),
        "timings": Markup(timing_bars(results.requests)),
    }


def _load_charts(series: list[Point]) -> list[Chart]:
    """Response time against active users and against throughput (report/scatter.py); none without points."""
    if not any(p.requests for p in series):
        return []
    found: list[Chart] = []
    for chart_id, title, x_of, unit in (
        ("chart-rt-users", "Response time against active users", lambda p: float(p.users), ""),
        ("chart-rt-rps", "Response time against throughput", lambda p: float(p.rps), "/s"),
    ):
        svg = Markup(scatter_chart(chart_id, series, x_of, unit))
        found.append({"id": chart_id, "title": title, "svg": svg, "legend": Markup(load_legend()), "note": ""})
    found[0]["note"] = "a dot per interval of the series; the line: median p95 per band of users"
    return found


def _series_note(series: list[Point]) -> str:
    widest = max((p.interval_s for p in series[1:]), default=1)
    return f"one point per {widest:g} s (a long run's points are merged)" if widest > 1 else ""


def _check_row(check: CheckCount) -> dict[str, Any]:
    runs = check.passed + check.failed
    ratio = check.passed / runs if runs else None
    return {
        "request": _label(check),
        "check": check.check,
        "passed": check.passed,
        "failed": check.failed,
        "ratio": ratio,
        "ratio_text": fmt_pct(ratio, 1),
    }


def _resource_table(resources: Resources | None) -> list[dict[str, str]]:
    if not resources:
        return []
    peak = resources.peak
    rows = [
        {
            "what": "lrun (load generator)",
            "cpu": fmt_percent(peak.process_cpu_percent),
            "memory": fmt_bytes(peak.process_rss_bytes),
        }
    ]
    if peak.system_cpu_percent is not None:
        total = resources.series[-1].system_memory_total_bytes if resources.series else None
        rows.append(
            {
                "what": f"machine ({resources.cpu_count or '?'} cores, {fmt_bytes(total)})",
                "cpu": fmt_percent(peak.system_cpu_percent) + " of all cores",
                "memory": fmt_bytes(peak.system_memory_used_bytes) + " used",
            }
        )
    for target in resources.targets:
        values = peak.targets.get(target.spec) or TargetFigures()
        rows.append(
            {
                "what": target.label or target.spec,
                "cpu": fmt_percent(values.cpu_percent) if target.found else "not found",
                "memory": fmt_bytes(values.rss_bytes) if target.found else "not found",
            }
        )
    return rows


# ----------------------------------------------------------------------------------------------- comparison

Better = Literal["lower", "higher"] | None
COMPARED: list[tuple[str, Callable[[Results], float | None], Callable[[float | None], str], Better]] = [
    ("requests", lambda r: r.total.requests, fmt_num, None),
    ("failures", lambda r: r.total.failures, fmt_num, "lower"),
    ("error rate", lambda r: r.total.failure_ratio, fmt_pct, "lower"),
    ("requests/s", lambda r: r.total.rps, fmt_rate, "higher"),
    ("transactions/s", lambda r: r.transactions.total.rps if r.transactions else None, fmt_rate, "higher"),
    ("p50", lambda r: r.total.percentiles.get("50"), fmt_ms, "lower"),
    ("p90", lambda r: r.total.percentiles.get("90"), fmt_ms, "lower"),
    ("p95", lambda r: r.total.percentiles.get("95"), fmt_ms, "lower"),
    ("p99", lambda r: r.total.percentiles.get("99"), fmt_ms, "lower"),
    ("average", lambda r: r.total.avg_ms, fmt_ms, "lower"),
    ("max", lambda r: r.total.max_ms, fmt_ms, "lower"),
    ("peak users", lambda r: r.users_max, fmt_num, None),
    ("duration", lambda r: r.duration_s, fmt_duration, None),
]


def delta(base: float | None, value: float | None, better: Better) -> dict[str, str]:
    """``+12.5%`` and whether that is better or worse than the baseline."""
    if base is None or value is None:
        return {"text": "", "css": ""}
    if base == value:
        return {"text": "±0", "css": "same"}
    change = f"{(value - base) / base * 100:+.1f}%" if base else ("+∞" if value > 0 else "-∞")
    if better is None:
        return {"text": change, "css": ""}
    improved = value < base if better == "lower" else value > base
    return {"text": change, "css": "better" if improved else "worse"}


def apdex_delta(base: float | None, value: float | None) -> dict[str, str]:
    """An Apdex score's change in points of the score (``+0.03``), better when higher."""
    if base is None or value is None:
        return {"text": "", "css": ""}
    if round(value, 2) == round(base, 2):
        return {"text": "±0", "css": "same"}
    return {"text": f"{value - base:+.2f}", "css": "better" if value > base else "worse"}


def _request_cells(entries: Sequence[Entry | None], apdex_t_ms: float = APDEX_T_MS) -> list[dict[str, Any]]:
    """One run's p50, p95, req/s, failures and Apdex of a request per cell; deltas against the first run."""
    first = entries[0]
    first_apdex = apdex(first, apdex_t_ms) if first else None
    cells = []
    for i, entry in enumerate(entries):
        p95, rps, failures = (entry.percentiles.get("95"), entry.rps, entry.failures) if entry else (None, None, None)
        p50 = entry.percentiles.get("50") if entry else None
        score = apdex(entry, apdex_t_ms) if entry else None
        cells.append(
            {
                "requests": entry.requests if entry else None,
                "requests_text": fmt_num(entry.requests if entry else None),
                "p50": p50,
                "p50_text": fmt_ms(p50),
                "p50_delta": delta(first.percentiles.get("50") if first else None, p50, "lower") if i else None,
                "apdex": score,
                "apdex_text": fmt_apdex(score),
                "apdex_delta": apdex_delta(first_apdex, score) if i else None,
                "p95": p95,
                "p95_text": fmt_ms(p95),
                "p95_delta": delta(first.percentiles.get("95") if first else None, p95, "lower") if i else None,
                "rps": rps,
                "rps_text": fmt_rate(rps),
                "rps_delta": delta(first.rps if first else None, rps, "higher") if i else None,
                "failures": failures,
                "failures_text": fmt_num(failures),
                "failures_delta": delta(first.failures if first else None, failures, "lower") if i else None,
            }
        )
    return cells


def compare_view(runs: Sequence[Results], labels: Sequence[str], apdex_t_ms: float | None = None) -> dict[str, Any]:
    """The comparison of runs; Apdex by ``apdex_t_ms``, else the T the first run used, else 500 ms."""
    apdex_t_ms = apdex_t_ms or runs[0].apdex_t_ms or APDEX_T_MS
    metrics = []
    for label, value, fmt, better in COMPARED:
        values = [value(r) for r in runs]
        if all(v is None for v in values):
            continue
        cells = [{"text": fmt(v), "delta": delta(values[0], v, better) if i else None} for i, v in enumerate(values)]
        metrics.append({"label": label, "cells": cells})
    by_name = [{_label(e): e for e in r.requests} for r in runs]
    names = dict.fromkeys(name for entries in by_name for name in entries)
    requests = [{"name": name, "cells": _request_cells([e.get(name) for e in by_name], apdex_t_ms)} for name in names]
    thresholds: dict[str, list[str]] = {}
    for i, r in enumerate(runs):
        for row in _threshold_rows(r):
            key = f"{row['what']} [{row['scope']}]" if row["scope"] else row["what"]
            thresholds.setdefault(key, [""] * len(runs))[i] = f"{row['state']}|{row['measured']}"
    overlays = []
    for chart_id, title, value, unit in (
        ("chart-cmp-rps", "Throughput (requests/s)", lambda p: p.rps, "/s"),
        ("chart-cmp-p95", "p95 response time", lambda p: p.p95_ms, "ms"),
        ("chart-cmp-users", "Active users", lambda p: p.users, ""),
    ):
        lines = []
        for i, r in enumerate(runs):
            origin = _origin(r)
            lines.append(Line(labels[i], [(t - origin, v) for t, v in _points(r.series, value)], style=i))
        overlays.append(_chart(chart_id, title, lines, unit=unit, x_origin=0.0))
    return {
        "runs": [
            {
                "label": labels[i],
                "results": r,
                "passed": r.passed,
                "scenario": r.scenario or "—",
                "start": fmt_time(epoch_of(r.start)),
                "duration": fmt_duration(r.duration_s),
                "host": r.host or "—",
                "command": r.command,
                "version": r.lrun_version or "—",
                "stop_reason": r.stop_reason or "—",
            }
            for i, r in enumerate(runs)
        ],
        "metrics": metrics,
        "requests": requests,
        "thresholds": [
            {"what": k, "cells": [c.split("|", 1) if c else ["", ""] for c in v]} for k, v in thresholds.items()
        ],
        "charts": overlays,
        "apdex_t": fmt_ms(apdex_t_ms),
    }


# ----------------------------------------------------------------------------------------------- rendering


def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("runner.report", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(ms=fmt_ms, num=fmt_num, pct=fmt_pct, bytes=fmt_bytes, rate=fmt_rate, sv=_sort_value, since=since)
    return env


def render_html(
    results: Results | Sequence[Results], *, labels: Sequence[str] | None = None, apdex_t_ms: float | None = None
) -> str:
    """The report of one run, or the comparison of several (a list; the first is the baseline)."""
    runs = [results] if isinstance(results, Results) else list(results)
    if not runs:
        raise ValueError("render_html needs at least one results")
    template = _environment().get_template(TEMPLATE)
    generated = fmt_time(datetime.now(UTC).timestamp())
    if len(runs) == 1:
        view = run_view(runs[0], apdex_t_ms)
        return template.render(mode="run", run=view, title=f"lrun report: {view['title']}", generated=generated,
                               version=runner.__version__)  # fmt: skip
    names = list(labels or [])
    names += [f"run {chr(ord('A') + i)}" for i in range(len(names), len(runs))]
    view = compare_view(runs, names, apdex_t_ms)
    title = "lrun comparison: " + " vs ".join(r.scenario or "?" for r in runs)
    return template.render(mode="compare", cmp=view, title=title, generated=generated, version=runner.__version__)


def write_html(
    results: Results | Sequence[Results],
    path: str | os.PathLike[str],
    *,
    labels: Sequence[str] | None = None,
    apdex_t_ms: float | None = None,
) -> None:
    """Render and write the report atomically; ``LrunError`` when the file cannot be written."""
    text = render_html(results, labels=labels, apdex_t_ms=apdex_t_ms)
    path = Path(path)
    try:
        fd, temp = tempfile.mkstemp(
            prefix=f".{path.name}.", suffix=".tmp", dir=path.parent if str(path.parent) else "."
        )
    except OSError as exc:
        raise LrunError(f"cannot write the HTML report {path}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(temp, 0o666 & ~mask)
        os.replace(temp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise LrunError(f"cannot write the HTML report {path}: {exc.strerror or exc}") from None
