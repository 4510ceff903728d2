"""The HTML report's capacity section: the search's steps, and latency and errors against the arrival rate.

The charts put the rate on x (each step a marked point, joined by rate), so the bend of the latency curve and
the answer read at a glance; a dashed vertical line marks the answer, a dotted one the knee.
"""

from __future__ import annotations

import math
from html import escape
from typing import Any

from markupsafe import Markup

from runner.report.capacity_model import Capacity, CapacityStep
from runner.report.charts import (
    BOTTOM,
    FORMATS,
    HEIGHT,
    LEFT,
    PALETTE,
    RIGHT,
    TOP,
    WIDTH,
    Line,
    legend,
    nice_step,
    xy_grid,
)


def rate_chart(
    chart_id: str, lines: list[Line], *, unit: str, marks: list[tuple[str, float | None]], x_max: float
) -> str:
    """An SVG chart of values against the rate (x from 0 to ``x_max`` arrivals/s); ``marks``: labelled x lines."""
    ys = [y for line in lines for _, y in line.points if y is not None]
    if not ys:
        return f'<svg class="chart empty" id="{escape(chart_id)}" viewBox="0 0 {WIDTH} {HEIGHT}"></svg>'
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    top = max(ys)
    step = nice_step(top) if top > 0 else 1.0
    y1 = step * max(1, math.ceil(top / step)) if top > 0 else 1.0
    x_step = nice_step(x_max)
    x1 = x_step * max(1, math.ceil(x_max / x_step))
    fmt = FORMATS.get(unit, FORMATS[""])

    def px(x: float) -> float:
        return LEFT + x / x1 * plot_w

    def py(y: float) -> float:
        return TOP + plot_h - y / y1 * plot_h

    parts = [f'<svg class="chart rate" id="{escape(chart_id)}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img">']
    grid = xy_grid(px, py, x1, x_step, y1, step, lambda tick: f"{tick:g}/s", fmt)
    parts.append('<g class="grid">' + "".join(grid) + "</g>")
    for index, line in enumerate(lines):
        points = sorted((x, y) for x, y in line.points if y is not None)
        d = "".join(f"{'M' if i == 0 else 'L'}{px(x):.1f} {py(y):.1f}" for i, (x, y) in enumerate(points))
        css = f"line s{index % PALETTE}"
        parts.append(f'<path class="{css}" data-label="{escape(line.label)}" d="{d}"/>')
        for x, y in points:
            parts.append(f'<circle class="{css}" cx="{px(x):.1f}" cy="{py(y):.1f}" r="2.5"/>')
    for label, at in marks:
        if at is not None:
            parts.append(
                f'<line class="mark" x1="{px(at):.1f}" x2="{px(at):.1f}" y1="{TOP}" y2="{TOP + plot_h}" '
                f'stroke="currentColor" stroke-dasharray="4 3"/>'
                f'<text class="xl" x="{px(at):.1f}" y="{TOP + 10}">{escape(label)}</text>'
            )
    parts.append("</svg>")
    return "".join(parts)


def _verdict(step: CapacityStep) -> str:
    if step.good:
        return "good"
    if step.failed:
        return "; ".join(step.failed)
    return f"the generator (or max_users) could not keep up: {step.dropped} of {step.planned} arrivals dropped"


def capacity_view(capacity: Capacity | None) -> dict[str, Any] | None:
    """What the template's capacity section shows; None for a run that was not a capacity search."""
    if capacity is None:
        return None
    steps = capacity.steps
    x_max = max((s.rate for s in steps), default=1.0)
    marks = [("capacity", capacity.capacity), ("knee", capacity.knee)]
    latency = [
        Line(label, [(s.rate, getattr(s, key)) for s in steps])
        for label, key in (("p50", "p50_ms"), ("p95", "p95_ms"), ("p99", "p99_ms"))
    ]
    errors = [Line("errors", [(s.rate, s.error_ratio * 100) for s in steps])]
    return {
        "capacity": capacity,
        "latency": Markup(rate_chart("chart-capacity-latency", latency, unit="ms", marks=marks, x_max=x_max)),
        "latency_legend": Markup(legend(latency)),
        "errors": Markup(rate_chart("chart-capacity-errors", errors, unit="%", marks=marks, x_max=x_max)),
        "steps": [{"step": s, "verdict": _verdict(s)} for s in steps],
    }
