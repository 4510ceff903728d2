"""The HTML report: one self-contained file made from the JSON results, to forward without editing.

``render_html(results)`` is a pure function of the results dict (``runner.report.results``) — never of a live
runner — so ``lrun run --html`` and ``lrun report results.json`` give the same page. A list of results renders a
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
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

import runner
from runner.errors import LrunError
from runner.report import charts
from runner.report.charts import Line
from runner.report.model import Results

TEMPLATE = "report.html.j2"
PER_REQUEST_LINES = 8  # at most this many request names get their own line in the per-request chart


# ----------------------------------------------------------------------------------------------- formatting


def epoch_of(text: Any) -> float | None:
    """Epoch seconds of an ISO 8601 time as written in the results (``2024-05-01T12:00:00.000Z``)."""
    if isinstance(text, int | float):
        return float(text)
    if not isinstance(text, str) or not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def fmt_time(epoch: Any) -> str:
    """``2024-05-01 12:00:00 UTC`` from epoch seconds or an ISO string; ``—`` when unknown."""
    value = epoch_of(epoch)
    if value is None:
        return "—"
    return datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def fmt_ms(value: Any) -> str:
    if not isinstance(value, int | float):
        return "—"
    if value >= 10_000:
        return f"{value / 1000:.1f} s"
    return f"{value:.0f} ms" if value >= 100 else f"{value:.1f} ms" if value >= 1 else f"{value:.2f} ms"


def fmt_num(value: Any, digits: int = 0) -> str:
    if not isinstance(value, int | float):
        return "—"
    return f"{value:,.{digits}f}"


def fmt_rate(value: Any) -> str:
    if not isinstance(value, int | float):
        return "—"
    return f"{value:,.1f}" if value >= 10 else f"{value:.2f}"


def fmt_pct(value: Any, digits: int = 2) -> str:
    """A ratio (0.0123) as a percentage (1.23%)."""
    return f"{value * 100:.{digits}f}%" if isinstance(value, int | float) else "—"


def fmt_bytes(value: Any) -> str:
    if not isinstance(value, int | float):
        return "—"
    return charts.fmt_bytes(float(value))


def fmt_duration(seconds: Any) -> str:
    if not isinstance(seconds, int | float):
        return "—"
    if seconds < 60:
        return f"{seconds:.1f} s"
    return charts.clock(seconds)


def _sort_value(value: Any) -> str:
    """``data-v`` of a table cell: numbers sort as numbers, missing values last."""
    if isinstance(value, bool) or value is None:
        return "" if value is None else str(int(value))
    if isinstance(value, int | float):
        return repr(float(value))
    return str(value)


# ----------------------------------------------------------------------------------------------- the run view


def _entries(results: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for e in results.get("requests") or [] if isinstance(e, dict)]


def _series(points: Any, key: str, scale: float = 1.0) -> list[tuple[float, float | None]]:
    out = []
    for point in points or []:
        t = point.get("t") if isinstance(point, dict) else None
        if not isinstance(t, int | float):
            continue
        value = point.get(key)
        out.append((float(t), value * scale if isinstance(value, int | float) else None))
    return out


def _chart(chart_id: str, title: str, lines: list[Line], *, note: str = "", **options: Any) -> dict[str, Any]:
    with_data = [line for line in lines if any(y is not None for _, y in line.points)]
    lines = with_data or lines[:1]  # a line that never had a value (a target never found) is left out
    return {
        "id": chart_id,
        "title": title,
        "svg": Markup(charts.line_chart(chart_id, lines, **options)),
        "legend": Markup(charts.legend(lines)) if len(lines) > 1 or (lines and lines[0].label) else "",
        "note": note,
    }


def _run_charts(results: dict[str, Any], origin: float) -> list[dict[str, Any]]:
    series = results.get("series") or []
    found = []
    found.append(
        _chart(
            "chart-throughput",
            "Throughput",
            [
                Line("requests/s", _series(series, "rps")),
                Line("failures/s", _series(series, "failures_per_s"), style=3),
            ],
            unit="/s",
            x_origin=origin,
        )
    )
    found.append(
        _chart(
            "chart-response-times",
            "Response times",
            [
                Line("p50", _series(series, "p50_ms")),
                Line("p95", _series(series, "p95_ms"), style=1),
                Line("p99", _series(series, "p99_ms"), style=2),
                Line("average", _series(series, "avg_ms"), dashed=True, style=4),
            ],
            unit="ms",
            x_origin=origin,
        )
    )
    with_series = [e for e in _entries(results) if e.get("series")]
    if with_series:
        busiest = sorted(with_series, key=lambda e: -(e.get("requests") or 0))[:PER_REQUEST_LINES]
        found.append(
            _chart(
                "chart-per-request",
                "p95 per request",
                [Line(_label(e), _series(e["series"], "p95_ms")) for e in busiest],
                unit="ms",
                x_origin=origin,
                note=f"the {len(busiest)} busiest requests" if len(with_series) > len(busiest) else "",
            )
        )
    found.append(_chart("chart-users", "Active users", [Line("users", _series(series, "users"))], x_origin=origin))
    transactions = results.get("transactions")
    if isinstance(transactions, dict) and transactions.get("series") and transactions.get("entries"):
        tps = transactions["series"]
        found.append(
            _chart(
                "chart-tps",
                "Transactions per second",
                [
                    Line("transactions/s", _series(tps, "rps")),
                    Line("failed/s", _series(tps, "failures_per_s"), style=3),
                ],
                unit="/s",
                x_origin=origin,
            )
        )
    found += _resource_charts(results.get("resources"), origin)
    found += _worker_charts(results.get("workers"), origin)
    found += _remote_charts(results.get("remote"), origin)
    return found


def _label(entry: dict[str, Any]) -> str:
    return f"{entry.get('method') or ''} {entry.get('name') or ''}".strip()


def _resource_charts(resources: Any, origin: float) -> list[dict[str, Any]]:
    if not isinstance(resources, dict) or not resources.get("series"):
        return []
    points = resources["series"]
    targets = [t for t in resources.get("targets") or [] if isinstance(t, dict)]
    labels = {t.get("spec"): t.get("label") or t.get("spec") for t in targets}

    def target(spec: str, key: str) -> list[tuple[float, float | None]]:
        return [
            (p["t"], ((p.get("targets") or {}).get(spec) or {}).get(key))
            for p in points
            if isinstance(p.get("t"), int | float)
        ]

    cpu = [Line("lrun", _series(points, "process_cpu_percent"))]
    cpu += [Line(str(labels[s]), target(s, "cpu_percent"), style=i + 1) for i, s in enumerate(labels)]  # type: ignore[arg-type]
    memory = [Line("lrun", _series(points, "process_rss_bytes"))]
    memory += [Line(str(labels[s]), target(s, "rss_bytes"), style=i + 1) for i, s in enumerate(labels)]  # type: ignore[arg-type]
    machine_memory = []
    for p in points:
        used, total = p.get("system_memory_used_bytes"), p.get("system_memory_total_bytes")
        ok = isinstance(used, int | float) and isinstance(total, int | float) and total > 0
        machine_memory.append((p["t"], used / total * 100 if ok else None))
    cores = resources.get("cpu_count")
    return [
        _chart(
            "chart-cpu",
            "CPU of processes",
            cpu,
            unit="%",
            x_origin=origin,
            note="% of one core (200% = two busy cores)",
        ),
        _chart("chart-memory", "Memory of processes (resident)", memory, unit="bytes", x_origin=origin),
        _chart(
            "chart-machine",
            "Machine",
            [Line("CPU", _series(points, "system_cpu_percent")), Line("memory used", machine_memory, style=1)],
            unit="%",
            x_origin=origin,
            y_max=100,
            note=f"% of all {cores} cores and of all memory" if cores else "% of all cores and of all memory",
        ),
    ]


def _remote_charts(remote: Any, origin: float) -> list[dict[str, Any]]:
    """monitor.hosts and monitor.prometheus: one chart per figure, a line per host (gaps where it was down)."""
    if not isinstance(remote, dict) or not remote.get("series"):
        return []
    points = [p for p in remote["series"] if isinstance(p, dict) and isinstance(p.get("t"), int | float)]
    hosts = [str(h.get("name")) for h in remote.get("hosts") or [] if isinstance(h, dict)]
    queries = [str(q.get("name")) for q in remote.get("queries") or [] if isinstance(q, dict)]

    def host(name: str, key: str) -> list[tuple[float, float | None]]:
        return [(p["t"], ((p.get("hosts") or {}).get(name) or {}).get(key)) for p in points]

    def lines(key: str) -> list[Line]:
        return [Line(name, host(name, key), style=i) for i, name in enumerate(hosts)]

    charts = []
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
        charts += [
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
        query_lines = [
            Line(name, [(p["t"], (p.get("queries") or {}).get(name)) for p in points], style=i)
            for i, name in enumerate(queries)
        ]
        charts.append(_chart("chart-queries", "Prometheus queries", query_lines, x_origin=origin))
    return charts


def _worker_charts(workers: Any, origin: float) -> list[dict[str, Any]]:
    if not isinstance(workers, list):
        return []
    with_samples = [w for w in workers if isinstance(w, dict) and w.get("resources")]
    if not with_samples:
        return []
    return [
        _chart(
            "chart-worker-cpu",
            "CPU per worker",
            [Line(str(w.get("id")), _series(w["resources"], "process_cpu_percent")) for w in with_samples],
            unit="%",
            x_origin=origin,
            note="% of one core",
        ),
        _chart(
            "chart-worker-memory",
            "Memory per worker",
            [Line(str(w.get("id")), _series(w["resources"], "process_rss_bytes")) for w in with_samples],
            unit="bytes",
            x_origin=origin,
        ),
    ]


def _threshold_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    from runner.thresholds import parse_rule

    rows = []
    for verdict in results.get("thresholds") or []:
        if not isinstance(verdict, dict):
            continue
        try:
            rule = parse_rule(str(verdict.get("expression")))
            measured, limit = rule.show(verdict.get("actual")), rule.show(rule.limit)
        except ValueError:
            measured, limit = str(verdict.get("actual")), str(verdict.get("limit"))
        if not isinstance(verdict.get("actual"), int | float):
            measured = verdict.get("detail") or "no data"
        rows.append(
            {
                "what": verdict.get("expression"),
                "scope": verdict.get("request") or "all requests",
                "measured": measured,
                "limit": f"{verdict.get('operator', '')} {limit}".strip(),
                "state": "pass" if verdict.get("passed") else "fail",
                "note": "aborts the run" if verdict.get("abort") else "",
            }
        )
    for verdict in results.get("resource_thresholds") or []:
        if not isinstance(verdict, dict):
            continue
        percent = verdict.get("unit") == "percent"
        peak = verdict.get("peak")
        measured = "no data" if not isinstance(peak, int | float) else f"{peak:.1f}%" if percent else fmt_bytes(peak)
        breached = not verdict.get("passed")
        held = (
            f" for {verdict['for_s']:g}s" if isinstance(verdict.get("for_s"), int | float) and verdict["for_s"] else ""
        )
        rows.append(
            {
                "what": verdict.get("expression"),
                "scope": verdict.get("process")
                or ("each monitored process" if str(verdict.get("metric")).startswith("target_") else ""),
                "measured": f"peak {measured}",
                "limit": f"> {verdict.get('above')}{held}",
                "state": ("fail" if verdict.get("action") == "abort" else "warn") if breached else "pass",
                "note": verdict.get("detail") or "",
            }
        )
    return rows


def _summary(results: dict[str, Any]) -> list[dict[str, str]]:
    total = results.get("total") or {}
    percentiles = total.get("percentiles") or {}
    tiles = [
        {"label": "requests", "value": fmt_num(total.get("requests"))},
        {
            "label": "failures",
            "value": fmt_num(total.get("failures")),
            "sub": fmt_pct(total.get("failure_ratio")),
            "bad": bool(total.get("failures")),
        },
        {"label": "requests/s", "value": fmt_rate(total.get("rps"))},
    ]
    transactions = results.get("transactions")
    if isinstance(transactions, dict) and isinstance(transactions.get("total"), dict) and transactions.get("entries"):
        tiles.append({"label": "transactions/s", "value": fmt_rate(transactions["total"].get("rps"))})
    for q in ("50", "90", "95", "99"):
        tiles.append({"label": f"p{q}", "value": fmt_ms(percentiles.get(q))})
    tiles += [
        {"label": "average", "value": fmt_ms(total.get("avg_ms"))},
        {"label": "max", "value": fmt_ms(total.get("max_ms"))},
        {"label": "peak users", "value": fmt_num(results.get("users_max"))},
        {"label": "received", "value": fmt_bytes(total.get("total_bytes"))},
    ]
    return tiles  # type: ignore[return-value]


def _entry_row(entry: dict[str, Any]) -> dict[str, Any]:
    percentiles = entry.get("percentiles") or {}
    return {
        "type": entry.get("type") or "request",
        "method": entry.get("method") or "",
        "name": entry.get("name") or "",
        "cells": [
            (entry.get("requests"), fmt_num(entry.get("requests"))),
            (entry.get("failures"), fmt_num(entry.get("failures"))),
            (entry.get("failure_ratio"), fmt_pct(entry.get("failure_ratio"))),
            (entry.get("avg_ms"), fmt_ms(entry.get("avg_ms"))),
            (entry.get("min_ms"), fmt_ms(entry.get("min_ms"))),
            (percentiles.get("50"), fmt_ms(percentiles.get("50"))),
            (percentiles.get("90"), fmt_ms(percentiles.get("90"))),
            (percentiles.get("95"), fmt_ms(percentiles.get("95"))),
            (percentiles.get("99"), fmt_ms(percentiles.get("99"))),
            (entry.get("max_ms"), fmt_ms(entry.get("max_ms"))),
            (entry.get("rps"), fmt_rate(entry.get("rps"))),
            (entry.get("avg_bytes"), fmt_bytes(entry.get("avg_bytes"))),
        ],
        "think": entry.get("think_s"),
        "bad": bool(entry.get("failures")),
    }


ENTRY_COLUMNS = ["# requests", "# failures", "failed", "avg", "min", "p50", "p90", "p95", "p99", "max", "per s", "size"]


def _origin(results: dict[str, Any]) -> float:
    start = epoch_of(results.get("start"))
    if start is not None:
        return start
    series = results.get("series") or []
    return float(series[0]["t"]) - 1 if series and isinstance(series[0].get("t"), int | float) else 0.0


def _elapsed(epoch: Any, origin: float) -> str:
    return f"+{charts.clock(epoch - origin)}" if isinstance(epoch, int | float) else "—"


def _saturation(saturation: Any) -> dict[str, Any] | None:
    """The verdict's line on the load generator: saturated (and why), or kept up; None when not measured."""
    if not isinstance(saturation, dict) or saturation.get("loop_lag_p50_ms") is None:
        return None
    lag = (
        f"event loop lag p50 {fmt_ms(saturation.get('loop_lag_p50_ms'))}, "
        f"p99 {fmt_ms(saturation.get('loop_lag_p99_ms'))}, max {fmt_ms(saturation.get('loop_lag_max_ms'))}"
    )
    reasons = [str(r) for r in saturation.get("reasons") or []]
    return {"saturated": bool(saturation.get("saturated")), "lag": lag, "reasons": reasons}


def run_view(results: dict[str, Any]) -> dict[str, Any]:
    """Everything the template shows for one run, formatted; optional parts are None or empty."""
    origin = _origin(results)
    total = results.get("total") or {}
    transactions = results.get("transactions") if isinstance(results.get("transactions"), dict) else None
    workers = [w for w in results.get("workers") or [] if isinstance(w, dict)]
    resources = results.get("resources") if isinstance(results.get("resources"), dict) else None
    load = results.get("load") if isinstance(results.get("load"), dict) else {}
    return {
        "results": results,
        "title": results.get("scenario") or "lrun run",
        "passed": bool(results.get("passed")),
        "no_requests": not total.get("requests"),
        "header": [
            ("scenario", results.get("scenario") or "—"),
            ("scenario file", results.get("scenario_file") or "—"),
            ("host", results.get("host") or "—"),
            ("start", fmt_time(results.get("start"))),
            ("end", fmt_time(results.get("end"))),
            ("duration", fmt_duration(results.get("duration_s"))),
            ("users", f"{fmt_num(results.get('users_max'))} at most" + _asked(load)),  # type: ignore[arg-type]
            ("workers", f"{len(workers)} ({', '.join(str(w.get('host')) for w in workers[:6])})" if workers else "1"),
            ("stopped", results.get("stop_reason") or "—"),
            ("lrun", results.get("lrun_version") or "—"),
        ],
        "command": results.get("command") or "",
        "exit_code": results.get("exit_code"),
        "stop_reason": results.get("stop_reason") or "",
        "thresholds": _threshold_rows(results),
        "warnings": [str(w) for w in results.get("warnings") or []],
        "saturation": _saturation(results.get("saturation")),
        "summary": _summary(results),
        "charts": _run_charts(results, origin),
        "distribution": Markup(
            charts.bar_chart(
                "chart-distribution",
                charts.distribution(total.get("histogram")),
                width=1180,
                height=240,
                empty="no responses",
            )
        ),
        "entries": [_entry_row(e) for e in _entries(results)],
        "total_row": _entry_row({**total, "name": "All requests", "method": ""}) if total else None,
        "transactions": [_entry_row(e) for e in (transactions or {}).get("entries") or [] if isinstance(e, dict)],
        "transactions_total": _entry_row({**transactions["total"], "name": "All transactions", "method": ""})
        if transactions and isinstance(transactions.get("total"), dict)
        else None,
        "errors": [
            {**e, "first": _elapsed(e.get("first_seen"), origin), "last": _elapsed(e.get("last_seen"), origin)}
            for e in [
                *(results.get("errors") or []),
                *(
                    {**e, "method": "transaction"}
                    for e in (transactions or {}).get("errors") or []
                    if isinstance(e, dict)
                ),
            ]
            if isinstance(e, dict)
        ],
        "exceptions": [
            {**e, "first": _elapsed(e.get("first_seen"), origin), "last": _elapsed(e.get("last_seen"), origin)}
            for e in results.get("exceptions") or []
            if isinstance(e, dict)
        ],
        "checks": _checks(results.get("checks")),
        "rendezvous": [
            {
                **r,
                "releases_shown": [
                    {**x, "when": _elapsed(x.get("t"), origin), "wait": fmt_ms(x.get("waited_ms"))}
                    for x in r.get("releases") or []
                    if isinstance(x, dict)
                ],
            }
            for r in results.get("rendezvous") or []
            if isinstance(r, dict)
        ],
        "pools": [
            {**p, "dry_when": _elapsed(p.get("dry_at"), origin) if p.get("dry") else ""}
            for p in results.get("pools") or []
            if isinstance(p, dict)
        ],
        "workers": workers,
        "resources": _resource_table(resources),
        "arrivals": results.get("arrivals") if isinstance(results.get("arrivals"), dict) else None,
        "intended": ((results.get("from_intended_start") or {}).get("total") or {}).get("percentiles") or {},
        "service": total.get("percentiles") or {},
        "series_note": _series_note(results.get("series") or []),
    }


def _asked(load: dict[str, Any]) -> str:
    users = load.get("users")
    return f" ({users} asked)" if isinstance(users, int) and not load.get("stages") else ""


def _series_note(series: list[Any]) -> str:
    intervals = {p.get("interval_s") for p in series[1:] if isinstance(p, dict)}
    widest = max((i for i in intervals if isinstance(i, int | float)), default=1)
    return f"one point per {widest:g} s (a long run's points are merged)" if widest > 1 else ""


def _checks(checks: Any) -> list[dict[str, Any]]:
    rows = []
    for check in checks or []:
        if not isinstance(check, dict):
            continue
        passed, failed = check.get("passed") or 0, check.get("failed") or 0
        ratio = passed / (passed + failed) if passed + failed else None
        rows.append({**check, "request": _label(check), "ratio": ratio, "ratio_text": fmt_pct(ratio, 1)})
    return rows


def _resource_table(resources: dict[str, Any] | None) -> list[dict[str, str]]:
    if not resources:
        return []
    peak = resources.get("peak") or {}
    rows = [
        {
            "what": "lrun (load generator)",
            "cpu": _percent(peak.get("process_cpu_percent")),
            "memory": fmt_bytes(peak.get("process_rss_bytes")),
        }
    ]
    if peak.get("system_cpu_percent") is not None:
        total = next((p.get("system_memory_total_bytes") for p in reversed(resources.get("series") or []) if p), None)
        rows.append(
            {
                "what": f"machine ({resources.get('cpu_count') or '?'} cores, {fmt_bytes(total)})",
                "cpu": _percent(peak.get("system_cpu_percent")) + " of all cores",
                "memory": fmt_bytes(peak.get("system_memory_used_bytes")) + " used",
            }
        )
    for target in resources.get("targets") or []:
        values = (peak.get("targets") or {}).get(target.get("spec")) or {}
        found = target.get("found")
        rows.append(
            {
                "what": str(target.get("label") or target.get("spec")),
                "cpu": _percent(values.get("cpu_percent")) if found else "not found",
                "memory": fmt_bytes(values.get("rss_bytes")) if found else "not found",
            }
        )
    return rows


def _percent(value: Any) -> str:
    return f"{value:.0f}%" if isinstance(value, int | float) else "—"


# ----------------------------------------------------------------------------------------------- comparison

COMPARED = [
    # key path, label, format, "lower" or "higher" is better
    (("total", "requests"), "requests", fmt_num, None),
    (("total", "failures"), "failures", fmt_num, "lower"),
    (("total", "failure_ratio"), "error rate", fmt_pct, "lower"),
    (("total", "rps"), "requests/s", fmt_rate, "higher"),
    (("transactions", "total", "rps"), "transactions/s", fmt_rate, "higher"),
    (("total", "percentiles", "50"), "p50", fmt_ms, "lower"),
    (("total", "percentiles", "90"), "p90", fmt_ms, "lower"),
    (("total", "percentiles", "95"), "p95", fmt_ms, "lower"),
    (("total", "percentiles", "99"), "p99", fmt_ms, "lower"),
    (("total", "avg_ms"), "average", fmt_ms, "lower"),
    (("total", "max_ms"), "max", fmt_ms, "lower"),
    (("users_max",), "peak users", fmt_num, None),
    (("duration_s",), "duration", fmt_duration, None),
]


def _dig(data: Any, path: Sequence[str]) -> Any:
    for key in path:
        data = data.get(key) if isinstance(data, dict) else None
    return data


def delta(base: Any, value: Any, better: str | None) -> dict[str, str]:
    """``+12.5%`` and whether that is better or worse than the baseline."""
    if not isinstance(base, int | float) or not isinstance(value, int | float):
        return {"text": "", "css": ""}
    if base == value:
        return {"text": "±0", "css": "same"}
    change = f"{(value - base) / base * 100:+.1f}%" if base else ("+∞" if value > 0 else "-∞")
    if better is None:
        return {"text": change, "css": ""}
    improved = value < base if better == "lower" else value > base
    return {"text": change, "css": "better" if improved else "worse"}


def compare_view(runs: Sequence[dict[str, Any]], labels: Sequence[str]) -> dict[str, Any]:
    metrics = []
    for path, label, fmt, better in COMPARED:
        values = [_dig(r, path) for r in runs]
        if all(v is None for v in values):
            continue
        metrics.append(
            {
                "label": label,
                "cells": [
                    {"text": fmt(v), "delta": delta(values[0], v, better) if i else None} for i, v in enumerate(values)
                ],
            }
        )
    names: dict[str, None] = {}
    for r in runs:
        for e in _entries(r):
            names.setdefault(_label(e))
    requests = []
    for name in names:
        entries = [next((e for e in _entries(r) if _label(e) == name), None) for r in runs]
        cells = []
        for i, entry in enumerate(entries):
            p95 = _dig(entry, ("percentiles", "95"))
            rps, failures = _dig(entry, ("rps",)), _dig(entry, ("failures",))
            first = entries[0]
            cells.append(
                {
                    "p95": p95,
                    "p95_text": fmt_ms(p95),
                    "p95_delta": delta(_dig(first, ("percentiles", "95")), p95, "lower") if i else None,
                    "rps": rps,
                    "rps_text": fmt_rate(rps),
                    "rps_delta": delta(_dig(first, ("rps",)), rps, "higher") if i else None,
                    "failures": failures,
                    "failures_text": fmt_num(failures),
                    "failures_delta": delta(_dig(first, ("failures",)), failures, "lower") if i else None,
                }
            )
        requests.append({"name": name, "cells": cells})
    thresholds: dict[str, list[str]] = {}
    for i, r in enumerate(runs):
        for row in _threshold_rows(r):
            key = f"{row['what']} [{row['scope']}]" if row["scope"] else str(row["what"])
            thresholds.setdefault(key, [""] * len(runs))[i] = f"{row['state']}|{row['measured']}"
    overlays = []
    for chart_id, title, key, unit in (
        ("chart-cmp-rps", "Throughput (requests/s)", "rps", "/s"),
        ("chart-cmp-p95", "p95 response time", "p95_ms", "ms"),
        ("chart-cmp-users", "Active users", "users", ""),
    ):
        lines = []
        for i, r in enumerate(runs):
            origin = _origin(r)
            lines.append(Line(labels[i], [(t - origin, v) for t, v in _series(r.get("series"), key)], style=i))
        overlays.append(_chart(chart_id, title, lines, unit=unit, x_origin=0.0))
    return {
        "runs": [
            {
                "label": labels[i],
                "results": r,
                "passed": bool(r.get("passed")),
                "scenario": r.get("scenario") or "—",
                "start": fmt_time(r.get("start")),
                "duration": fmt_duration(r.get("duration_s")),
                "host": r.get("host") or "—",
                "command": r.get("command") or "",
                "version": r.get("lrun_version") or "—",
                "stop_reason": r.get("stop_reason") or "—",
            }
            for i, r in enumerate(runs)
        ],
        "metrics": metrics,
        "requests": requests,
        "thresholds": [
            {"what": k, "cells": [c.split("|", 1) if c else ["", ""] for c in v]} for k, v in thresholds.items()
        ],
        "charts": overlays,
    }


# ----------------------------------------------------------------------------------------------- rendering


def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("runner.report", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        ms=fmt_ms, num=fmt_num, pct=fmt_pct, bytes=fmt_bytes, rate=fmt_rate, time=fmt_time, sv=_sort_value
    )
    return env


def render_html(results: Results | Sequence[Results], *, labels: Sequence[str] | None = None) -> str:
    """The report of one run, or the comparison of several (a list; the first is the baseline)."""
    runs = [r.to_dict() for r in ([results] if isinstance(results, Results) else results)]
    if not runs:
        raise ValueError("render_html needs at least one results dict")
    template = _environment().get_template(TEMPLATE)
    generated = fmt_time(datetime.now(UTC).timestamp())
    if len(runs) == 1:
        view = run_view(runs[0])
        return template.render(mode="run", run=view, title=f"lrun report: {view['title']}", generated=generated,
                               version=runner.__version__)  # fmt: skip
    names = list(labels or [])
    names += [f"run {chr(ord('A') + i)}" for i in range(len(names), len(runs))]
    view = compare_view(runs, names)
    title = "lrun comparison: " + " vs ".join(str(r.get("scenario") or "?") for r in runs)
    return template.render(mode="compare", cmp=view, title=title, generated=generated, version=runner.__version__)


def write_html(
    results: Results | Sequence[Results],
    path: str | os.PathLike[str],
    *,
    labels: Sequence[str] | None = None,
) -> None:
    """Render and write the report atomically; ``LrunError`` when the file cannot be written."""
    text = render_html(results, labels=labels)
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
