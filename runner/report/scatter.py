"""Response time against load: where it bends. A scatter of the series' points (one dot per interval: x the
active users or the throughput then, y its p50 and p95) with the median p95 per band of x drawn as a line, as
LoadRunner Analysis's "response time under load" and JMeter's "response time vs threads" show it. Inline SVG
on a numeric x axis (``charts.line_chart`` draws time); no ``data-box``, so the report's time read-out skips it.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from html import escape

from runner.report.charts import BOTTOM, HEIGHT, LEFT, RIGHT, TOP, WIDTH, Line, legend, nice_step, xy_grid
from runner.report.formats import fmt_number
from runner.report.model import Point

BANDS = 12  # the median line: at most this many bands of x (distinct user counts, when fewer)
MAX_DOTS = 300  # dots per series at most: dots on the same pixel drawn once, then a long run's thinned evenly


def bent_line(dots: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """The median y per band of x, in x order: one band per distinct x when there are few, else ``BANDS`` even ones."""
    if not dots:
        return []
    xs = sorted({x for x, _ in dots})
    if len(xs) <= BANDS:
        return [(x, statistics.median(y for dx, y in dots if dx == x)) for x in xs]
    low, high = xs[0], xs[-1]
    width = (high - low) / BANDS
    line = []
    for b in range(BANDS):
        left, right = low + b * width, low + (b + 1) * width
        ys = [y for x, y in dots if left <= x < right or (b == BANDS - 1 and x == high)]
        if ys:
            line.append(((left + right) / 2, statistics.median(ys)))
    return line


def _axis(top: float) -> tuple[float, float]:
    step = nice_step(top)
    return step, step * max(1, math.ceil(top / step)) if top > 0 else 1.0


Dots = list[tuple[float, float]]


def _dots(series: Sequence[Point], x_of: Callable[[Point], float], y_of: Callable[[Point], float | None]) -> Dots:
    return [(x_of(p), float(y)) for p in series if p.requests and (y := y_of(p)) is not None]


def _svg(
    chart_id: str, layers: Sequence[tuple[str, int, Dots]], lines: Sequence[tuple[str, int, bool, Dots]], x_unit: str
) -> str:
    """Dots of each layer (label, colour class, dots) and lines (label, colour class, dashed, points) on axes
    that hold them all; "no data" without a dot."""
    every_dot = [d for _, _, dots in layers for d in dots]
    if not every_dot:
        return f'<svg class="chart scatter empty" id="{escape(chart_id)}" viewBox="0 0 {WIDTH} {HEIGHT}"></svg>'
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    x_step, x1 = _axis(max(x for x, _ in every_dot))
    y_step, y1 = _axis(max(y for _, y in every_dot))

    def px(x: float) -> float:
        return LEFT + x / x1 * plot_w

    def py(y: float) -> float:
        return TOP + plot_h - y / y1 * plot_h

    parts = [
        f'<svg class="chart scatter" id="{escape(chart_id)}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'data-x1="{x1}" data-y1="{y1}" data-unit="ms"><g class="grid">'
    ]
    parts += xy_grid(
        px,
        py,
        x1,
        x_step,
        y1,
        y_step,
        lambda tick: f"{fmt_number(tick)}{x_unit}",
        lambda tick: f"{fmt_number(tick)} ms",
    )
    parts.append("</g>")
    for label, style, dots in layers:
        drawn = list(dict.fromkeys((round(px(x)), round(py(y))) for x, y in dots))
        every = max(1, math.ceil(len(drawn) / MAX_DOTS))
        circles = "".join(f'<circle cx="{x}" cy="{y}" r="2"/>' for x, y in drawn[::every])
        parts.append(f'<g class="dots s{style}" data-label="{escape(label)}">{circles}</g>')
    for label, style, dashed, line in lines:
        if len(line) > 1:  # a single band (the same users throughout) has no bend to show
            d = "".join(f"{'M' if i == 0 else 'L'}{px(x):.1f} {py(y):.1f}" for i, (x, y) in enumerate(line))
            css = f"line s{style}" + (" dashed" if dashed else "")
            parts.append(f'<path class="{css}" data-label="{escape(label)}" d="{d}"/>')
    return "".join(parts) + "</svg>"


def scatter_chart(chart_id: str, series: Sequence[Point], x_of: Callable[[Point], float], x_unit: str) -> str:
    """Dots of p50 and p95 against ``x_of(point)``, and the median p95 line; "no data" without a timed point."""
    dots95 = _dots(series, x_of, lambda p: p.p95_ms)
    dots50 = _dots(series, x_of, lambda p: p.p50_ms) if dots95 else []
    line = ("median p95", 2, False, bent_line(dots95))
    return _svg(chart_id, [("p50", 0, dots50), ("p95", 1, dots95)], [line], x_unit)


Run = tuple[str, Sequence[Point], int]  # a run's name, its series, its colour class


def runs_scatter(chart_id: str, runs: Sequence[Run], x_of: Callable[[Point], float], x_unit: str) -> str:
    """Several runs' p95 dots against ``x_of(point)``, each run in its colour with its median p95 line (the first
    run's dashed: the baseline), on one pair of axes: where each build bends."""
    found = [(name, style, _dots(series, x_of, lambda p: p.p95_ms)) for name, series, style in runs]
    lines = [(f"{name} median p95", style, i == 0, bent_line(dots)) for i, (name, style, dots) in enumerate(found)]
    return _svg(chart_id, [(f"{name} p95", style, dots) for name, style, dots in found], lines, x_unit)


def load_legend() -> str:
    return legend([Line("p50", [], style=0), Line("p95", [], style=1), Line("median p95", [], style=2)])


def runs_legend(runs: Sequence[Run]) -> str:
    return legend(
        [
            line
            for i, (name, _, style) in enumerate(runs)
            for line in (Line(f"{name} p95", [], style=style), Line(f"{name} median p95", [], i == 0, style))
        ]
    )
