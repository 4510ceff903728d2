"""The comparison HTML report: one self-contained page in the run report's style (its stylesheet and script) for
a person who was not there: the verdict and a written summary (``summary``), both runs on the same charts over
time (time since each run's start), the requests of both runs with their Apdex, where the time went in both, the
verdicts with the rule used, and both runs' latency distributions and percentiles side by side. The charts,
tables and bars are the run report's (``runner.report``), drawn for two runs."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime
from html import escape
from pathlib import Path
from typing import Any

from markupsafe import Markup

import runner
from runner.compare.console import SHOWN, change_text, headline, value_text
from runner.compare.gate import label
from runner.compare.model import Comparison
from runner.compare.summary import summary
from runner.errors import LrunError
from runner.report.apdex import APDEX_T_MS
from runner.report.breakdown import paired_timing_bars
from runner.report.charts import Band, Line
from runner.report.formats import fmt_ms, fmt_time
from runner.report.html import (
    PERCENTILE_CHARTS,
    PHASES_NOTE,
    Chart,
    _chart,
    _environment,
    _origin,
    _points,
    _request_cells,
    phase_lines,
)
from runner.report.model import Entry, Point, Results
from runner.report.scatter import Run, runs_legend, runs_scatter
from runner.report.top_errors import top_errors
from runner.report.windows import slo_bands

BINS = 32
WIDTH, HEIGHT, LEFT, BOTTOM, TOP = 1180, 230, 56, 30, 10
SHOWN_PERCENTILES = ("50", "75", "90", "95", "99", "99.9", "100")
RUNS = ("baseline", "new run")
STYLES = (4, 0)  # the runs' colours in the scatter charts and the distributions: grey the baseline, blue the new run
Series = list[tuple[float, float | None]]
Figures = list[tuple[str, Callable[[Point], float | None], int]]  # a figure's name, its value, its colour
DISTRIBUTIONS = 12  # requests with a distribution of their own: the busiest (all are in the verdicts table)


def _edges(low_us: int, high_us: int) -> list[float]:
    """Geometric bin edges in ms from the fastest to the slowest response of both runs."""
    low, high = max(low_us, 1) / 1000, max(high_us, 1) / 1000 * 1.0001
    if high <= low:
        return [low, high + 0.001]
    ratio = (high / low) ** (1 / BINS)
    return [low * ratio**i for i in range(BINS + 1)]


def _binned(counts: dict[str, int], edges: list[float]) -> list[float]:
    """Each run's share of responses per bin (so runs of different lengths compare)."""
    bins = [0.0] * (len(edges) - 1)
    total = sum(counts.values()) or 1
    for key, n in counts.items():
        ms = int(key) / 1000
        index = next((i for i in range(len(bins)) if ms < edges[i + 1]), len(bins) - 1)
        bins[index] += n / total
    return bins


def paired_bars(chart_id: str, base: dict[str, int], new: dict[str, int]) -> str:
    """Both runs' latency distributions as paired bars (baseline grey, new run blue), share of requests per bin."""
    keys = [int(k) for k, n in (*base.items(), *new.items()) if n > 0]
    if not keys:
        return '<p class="note">no responses</p>'
    edges = _edges(min(keys), max(keys))
    runs = [_binned(base, edges), _binned(new, edges)]
    top = max(max(r) for r in runs) or 1.0
    plot_w, plot_h = WIDTH - LEFT - 14, HEIGHT - TOP - BOTTOM
    slot = plot_w / (len(edges) - 1)
    parts = [f'<svg class="chart bars" id="{escape(chart_id)}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img">']
    for tick in (0, 0.5, 1):
        y = TOP + plot_h - tick * plot_h
        parts.append(f'<g class="grid"><line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{y:.1f}" y2="{y:.1f}"/>'
                     f'<text class="yl" x="{LEFT - 6}" y="{y + 4:.1f}">{tick * top * 100:.0f}%</text></g>')  # fmt: skip
    every = max(1, math.ceil((len(edges) - 1) / 16))
    for i in range(len(edges) - 1):
        x = LEFT + slot * i
        for j, share in enumerate(r[i] for r in runs):
            h = share / top * plot_h
            style = "fill:var(--s4)" if j == 0 else "fill:var(--s0)"
            which = "baseline" if j == 0 else "new run"
            parts.append(
                f'<rect class="bar" style="{style}" x="{x + slot * (0.1 + 0.4 * j):.1f}" y="{TOP + plot_h - h:.1f}" '
                f'width="{slot * 0.4:.1f}" height="{h:.1f}"><title>{which}, {fmt_ms(edges[i])}–{fmt_ms(edges[i + 1])}: '
                f"{share * 100:.1f}%</title></rect>"
            )
        if i % every == 0:
            parts.append(f'<text class="xl" x="{x + slot / 2:.1f}" y="{HEIGHT - 12}">{escape(fmt_ms(edges[i]))}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _legend() -> Markup:
    keys = '<span><i class="key s4"></i>baseline</span><span><i class="key s0"></i>new run</span>'
    return Markup(f'<div class="legend">{keys}</div>')


def _distributions(base: Results, new: Results) -> list[dict[str, object]]:
    """The total's and each common request's distributions and percentiles, both runs."""
    pairs: list[tuple[str, Entry, Entry]] = [("All requests", base.total, new.total)]
    new_by = {label(e): e for e in new.requests}
    common = [e for e in base.requests if label(e) in new_by]
    busiest = sorted(common, key=lambda e: -e.requests)[:DISTRIBUTIONS]
    pairs += [(label(e), e, new_by[label(e)]) for e in busiest]
    found: list[dict[str, object]] = []
    for index, (name, b, n) in enumerate(pairs):
        rows = []
        for q in SHOWN_PERCENTILES:
            vb, vn = b.percentiles.get(q), n.percentiles.get(q)
            change = f"{(vn - vb) / vb * 100:+.1f}%" if vb and vn is not None else ""
            rows.append(
                {"q": "max" if q == "100" else f"p{q}", "base": fmt_ms(vb), "new": fmt_ms(vn), "change": change}
            )
        svg = paired_bars(
            f"chart-dist-{index}", b.histogram.counts if b.histogram else {}, n.histogram.counts if n.histogram else {}
        )
        found.append({"name": name, "svg": Markup(svg), "rows": rows})
    return found


def _relative(results: Results, series: list[Point], value: Callable[[Point], float | None]) -> Series:
    """A run's series against the seconds since its start, so that two runs share the time axis."""
    origin = _origin(results)
    return [(t - origin, v) for t, v in _points(series, value)]


def _both(
    base: Results, new: Results, base_series: list[Point], new_series: list[Point], figures: Figures
) -> list[Line]:
    """A line per figure and run: the same colour for a figure, the baseline dashed."""
    return [
        Line(f"{run} {name}", _relative(results, series, value), dashed=not i, style=style)
        for i, (run, results, series) in enumerate(((RUNS[0], base, base_series), (RUNS[1], new, new_series)))
        for name, value, style in figures
    ]


PERCENTILES: Figures = [("p50", lambda p: p.p50_ms, 0), ("p95", lambda p: p.p95_ms, 1), ("p99", lambda p: p.p99_ms, 2)]


def _since(origin: float) -> Callable[[Point], float]:
    return lambda p: p.t - origin


def breach_bands(base: Results, new: Results) -> list[Band]:
    """Each run's SLO window breaches (``Results.windows``) against the time since its start, the baseline's
    grey (``base``), the new run's red (``new``), each titled with its run."""
    return [
        Band(begin - origin, end - origin, f"{run}: {title}", css)
        for run, results, css in ((RUNS[0], base, "base"), (RUNS[1], new, "new"))
        for origin in (_origin(results),)
        for begin, end, title in slo_bands(results)
    ]


def over_time(base: Results, new: Results) -> list[Chart]:
    """Both runs on the same charts, against the time since each run's start: all requests' percentiles,
    throughput, where the time went and users, then the percentiles of the busiest requests both runs kept a
    series of (``--csv-full-history``); each run's SLO window breaches shaded on the charts of times and rates."""
    throughput: Figures = [("requests/s", lambda p: p.rps, 0), ("failures/s", lambda p: p.failures_per_s, 3)]
    users: Figures = [("users", lambda p: p.users, 5)]
    bands = breach_bands(base, new)
    note = "dashed: the baseline" + ("; shaded: SLO windows breached (grey: the baseline, red: the new run)"
                                     if bands else "")  # fmt: skip
    found = [
        _chart("chart-cmp-times", "Response times, all requests", _both(base, new, base.series, new.series,
               PERCENTILES), unit="ms", note=note, bands=bands),
        _chart("chart-cmp-throughput", "Throughput", _both(base, new, base.series, new.series, throughput),
               unit="/s", note=note, bands=bands),
    ]  # fmt: skip
    if any(p.timings for p in (*base.series, *new.series)):
        lines = [
            line
            for i, (run, results) in enumerate(((RUNS[0], base), (RUNS[1], new)))
            for origin in (_origin(results),)
            for line in phase_lines(results.series, _since(origin), f"{run} ", dashed=not i)
        ]
        found.append(_chart("chart-cmp-phases", "Where the time went, over time", lines, unit="ms",
                            note=f"{PHASES_NOTE}; dashed: the baseline", bands=bands))  # fmt: skip
    found.append(_chart("chart-cmp-users", "Active users", _both(base, new, base.series, new.series, users),
                        note="dashed: the baseline"))  # fmt: skip
    new_by = {label(e): e for e in new.requests}
    both = [(e, new_by[label(e)]) for e in base.requests if e.series and (n := new_by.get(label(e))) and n.series]
    busiest = sorted(both, key=lambda pair: -pair[0].requests)[:PERCENTILE_CHARTS]
    for index, (b, n) in enumerate(busiest):
        lines = _both(base, new, b.series or [], n.series or [], PERCENTILES)
        found.append(_chart(f"chart-cmp-pct-{index}", f"{label(b)}: percentiles", lines, unit="ms",
                            note=note, bands=bands))  # fmt: skip
    return found


def under_load(base: Results, new: Results) -> list[Chart]:
    """Response time against active users and against throughput, both runs' dots and median p95 lines on the
    same axes (``report/scatter.py``): where each build bends. None when neither run has a timed point."""
    runs: list[Run] = [(RUNS[0], base.series, STYLES[0]), (RUNS[1], new.series, STYLES[1])]
    if not any(p.requests for _, series, _ in runs for p in series):
        return []
    legend = Markup(runs_legend(runs))
    found: list[Chart] = []
    for chart_id, title, x_of, unit in (
        ("chart-cmp-rt-users", "Response time against active users", lambda p: float(p.users), ""),
        ("chart-cmp-rt-rps", "Response time against throughput", lambda p: float(p.rps), "/s"),
    ):
        svg = Markup(runs_scatter(chart_id, runs, x_of, unit))
        found.append({"id": chart_id, "title": title, "svg": svg, "legend": legend, "note": ""})
    found[0]["note"] = "a dot per interval of each run's series; the lines: median p95 per band of users"
    return found


def _requests(base: Results, new: Results, apdex_t_ms: float) -> list[dict[str, object]]:
    """All requests, then each request name of either run: both runs' figures and Apdex, deltas against the
    baseline (the run report's comparison cells)."""
    base_by, new_by = {label(e): e for e in base.requests}, {label(e): e for e in new.requests}
    rows: list[dict[str, object]] = [
        {"name": "All requests", "cells": _request_cells([base.total, new.total], apdex_t_ms), "total": True}
    ]
    for name in dict.fromkeys([*base_by, *new_by]):
        rows.append({"name": name, "cells": _request_cells([base_by.get(name), new_by.get(name)], apdex_t_ms)})
    return rows


def _top_errors(base: Results, new: Results) -> list[dict[str, Any]]:
    """Each run's failing requests with their most frequent messages (the run report's top errors), the times
    since that run's start."""
    return [
        {**row, "run": run, "origin": _origin(results)}
        for run, results in zip(RUNS, (base, new), strict=True)
        for row in top_errors(results)
    ]


def render(comparison: Comparison, base: Results, new: Results, apdex_t_ms: float | None = None) -> str:
    """The comparison report; Apdex by ``apdex_t_ms``, else the T the baseline used, else 500 ms."""
    apdex_t_ms = apdex_t_ms or base.apdex_t_ms or APDEX_T_MS
    rows = [
        {
            "request": m.request,
            "metric": m.metric,
            "base": value_text(m.metric, m.base),
            "new": value_text(m.metric, m.new),
            "change": change_text(m),
            "verdict": SHOWN[m.verdict],
            "state": {"regression": "fail", "improvement": "pass"}.get(m.verdict, ""),
            "rule": m.rule,
            "test": m.test,
        }
        for m in comparison.metrics
    ]
    template = _environment().get_template("gate.html.j2")
    return template.render(
        title=f"lrun regression gate: {comparison.new.scenario}",
        c=comparison,
        headline=headline(comparison),
        summary=summary(comparison),
        charts=over_time(base, new),
        load_charts=under_load(base, new),
        per_request_series=any(e.series for e in (*base.requests, *new.requests)),
        requests=_requests(base, new, apdex_t_ms),
        apdex_t=fmt_ms(apdex_t_ms),
        top_errors=_top_errors(base, new),
        timings=Markup(paired_timing_bars([(RUNS[0], base.requests), (RUNS[1], new.requests)])),
        rows=rows,
        distributions=_distributions(base, new),
        more=max(0, len({label(e) for e in base.requests} & {label(e) for e in new.requests}) - DISTRIBUTIONS),
        legend=_legend(),
        generated=fmt_time(datetime.now(UTC).timestamp()),
        version=runner.__version__,
    )


def write_html(comparison: Comparison, base: Results, new: Results, path: str, apdex_t_ms: float | None = None) -> None:
    try:
        Path(path).write_text(render(comparison, base, new, apdex_t_ms), encoding="utf-8")
    except OSError as exc:
        raise LrunError(f"cannot write the HTML report {path}: {exc.strerror or exc}") from None
