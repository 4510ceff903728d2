"""Charts for the HTML report, drawn as inline SVG by lrun's own code: no library, no script needed to see them.

A line chart takes lines of ``(x, y)`` points (x in seconds, y in the chart's unit; ``None`` breaks a line) and
draws them on "nice" axes. Long series are reduced before drawing to the smallest and largest point of each
group of about two pixels (``downsample``): a spike stays visible and a 1-hour run (3,600 points a line) draws
the same few hundred points as a 5-minute one, so the report stays small.

Every chart is an ``<svg class="chart">`` whose data attributes give its scales (``data-x0``, ``data-x1``,
``data-y0``, ``data-y1``, plot box ``data-box``) and whose paths carry their label (``data-label``): the report's
few lines of script read them back for the hover read-out, and the browser test checks that each chart drew
points. Colours are CSS classes (``s0`` … ``s7``), so the stylesheet (and print) decides them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from html import escape
from typing import Any, NamedTuple

from runner.report.formats import clock, fmt_bytes, fmt_number

WIDTH, HEIGHT = 600, 220
LEFT, RIGHT, TOP, BOTTOM = 64, 14, 12, 28  # plot margins
MAX_DRAWN = 600  # points per line at most, after downsampling
PALETTE = 8

Point = tuple[float, float | None]


class Band(NamedTuple):
    """A shaded stretch of a time chart (an SLO window's breach): x from, x to, its tooltip, and a CSS class
    beside ``slo-band`` (which run's, in a comparison)."""

    begin: float
    end: float
    title: str
    css: str = ""


Bands = Sequence[tuple[float, float, str] | Band]


@dataclass
class Line:
    label: str
    points: list[Point]
    dashed: bool = False
    style: int | None = None  # colour class; default: the line's position


# ----------------------------------------------------------------------------------------------- numbers


def nice_step(span: float, ticks: int = 5) -> float:
    """A step of 1, 2 or 5 × 10^k that cuts ``span`` into about ``ticks`` parts."""
    if span <= 0 or not math.isfinite(span):
        return 1.0
    raw = span / ticks
    power: float = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 2.5, 5, 10):
        if raw <= factor * power:
            return factor * power
    return 10 * power  # pragma: no cover - the loop always returns


def nice_time_step(span: float, ticks: int = 6) -> float:
    """A step in seconds that reads well on a clock: 1, 2, 5, 10, 15, 30 s, 1, 2, 5, 10, 15, 30 min, 1 h …"""
    for step in (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400):
        if span / step <= ticks:
            return float(step)
    return 86400.0 * math.ceil(span / 86400 / ticks)


FORMATS: dict[str, Callable[[float], str]] = {
    "ms": lambda v: f"{fmt_number(v)} ms",
    "/s": lambda v: f"{fmt_number(v)}/s",
    "%": lambda v: f"{fmt_number(v)}%",
    "bytes": fmt_bytes,
    "": fmt_number,
}


def byte_step(span: float, ticks: int = 5) -> float:
    """Steps of 1, 2, 5 × a power of 1024's unit, so memory axes read 256 MiB, 512 MiB …"""
    unit: int = 1024 ** max(0, min(4, int(math.log(max(span, 1), 1024))))
    return nice_step(span / unit, ticks) * unit


# ----------------------------------------------------------------------------------------------- downsampling


def downsample(points: Sequence[Point], buckets: int) -> list[Point]:
    """At most ~2 × ``buckets`` points: the lowest and the highest of each run of consecutive points.

    Gaps (``None``) are kept, so a broken line stays broken.
    """
    if len(points) <= 2 * buckets:
        return list(points)
    size = len(points) / buckets
    out: list[Point] = []
    for b in range(buckets):
        chunk = points[int(b * size) : int((b + 1) * size)]
        values = [p for p in chunk if p[1] is not None]
        if len(values) < len(chunk) and (not out or out[-1][1] is not None):
            out.append((chunk[0][0], None))
        if not values:
            continue
        low = min(values, key=lambda p: p[1])  # type: ignore[arg-type, return-value]
        high = max(values, key=lambda p: p[1])  # type: ignore[arg-type, return-value]
        out.extend(sorted({low, high}, key=lambda p: p[0]))
    return out


# ----------------------------------------------------------------------------------------------- drawing


def _attrs(**values: Any) -> str:
    return " ".join(f'{k.rstrip("_").replace("_", "-")}="{escape(str(v))}"' for k, v in values.items())


def _empty(chart_id: str, message: str, width: int, height: int) -> str:
    return (
        f'<svg class="chart empty" id="{escape(chart_id)}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{escape(message)}"><text x="{width / 2}" y="{height / 2}" class="nodata">{escape(message)}</text>'
        "</svg>"
    )


def line_chart(
    chart_id: str,
    lines: Sequence[Line],
    *,
    unit: str = "",
    x_origin: float = 0.0,
    width: int = WIDTH,
    height: int = HEIGHT,
    y_max: float | None = None,
    empty: str = "no data",
    bands: Bands = (),
) -> str:
    """An SVG line chart; x values are seconds, shown as elapsed time since ``x_origin``; ``bands`` (x from, x to,
    title) shade where an SLO window was breached."""
    drawn = [line for line in lines if any(y is not None for _, y in line.points)]
    if not drawn:
        return _empty(chart_id, empty, width, height)
    plot_w, plot_h = width - LEFT - RIGHT, height - TOP - BOTTOM
    xs = [x for line in drawn for x, y in line.points if y is not None]
    ys = [y for line in drawn for _, y in line.points if y is not None]
    x0, x1 = min(xs) - x_origin, max(xs) - x_origin
    if x1 - x0 < 1:
        x1 = x0 + 1
    top = max(ys) if y_max is None else max(y_max, max(ys))
    bytes_axis = unit == "bytes"
    step = byte_step(top) if bytes_axis else nice_step(top)
    y1 = step * max(1, math.ceil(top / step)) if top > 0 else 1.0
    if bytes_axis and top <= 0:
        step = y1 = 1024.0
    fmt = FORMATS.get(unit, fmt_number)

    def px(x: float) -> float:
        return LEFT + (x - x_origin - x0) / (x1 - x0) * plot_w

    def py(y: float) -> float:
        return TOP + plot_h - y / y1 * plot_h

    parts = [
        f'<svg class="chart" id="{escape(chart_id)}" viewBox="0 0 {width} {height}" role="img" '
        + _attrs(
            data_x0=round(x0 + x_origin, 3),
            data_x1=round(x1 + x_origin, 3),
            data_origin=round(x_origin, 3),
            data_y0=0,
            data_y1=y1,
            data_unit=unit,
            data_box=f"{LEFT} {TOP} {plot_w} {plot_h}",
        )
        + ">"
    ]
    grid = []
    tick = 0.0
    while tick <= y1 + step / 1000:
        y = round(py(tick), 1)
        grid.append(f'<line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{y}" y2="{y}"/>')
        grid.append(f'<text class="yl" x="{LEFT - 6}" y="{y + 4}">{escape(fmt(tick))}</text>')
        tick += step
    x_step = nice_time_step(x1 - x0)
    tick = math.ceil(x0 / x_step) * x_step
    while tick <= x1 + 1e-9:
        x = round(LEFT + (tick - x0) / (x1 - x0) * plot_w, 1)
        grid.append(f'<line class="v" x1="{x}" x2="{x}" y1="{TOP}" y2="{TOP + plot_h}"/>')
        grid.append(f'<text class="xl" x="{x}" y="{height - 8}">{clock(tick)}</text>')
        tick += x_step
    parts.append('<g class="grid">' + "".join(grid) + "</g>")
    for band in bands:
        begin, end, title = band[0], band[1], band[2]
        css = f"slo-band {band.css}".strip() if isinstance(band, Band) else "slo-band"
        left, right = max(px(begin), LEFT), min(px(end), LEFT + plot_w)
        if right > left:
            parts.append(
                f'<rect class="{escape(css)}" x="{left:.1f}" y="{TOP}" width="{right - left:.1f}" height="{plot_h}">'
                f"<title>{escape(title)}</title></rect>"
            )
    buckets = max(10, min(MAX_DRAWN // 2, plot_w // 2))
    for index, line in enumerate(lines):
        if line not in drawn:
            continue
        d = []
        pen_up = True
        for x, y in downsample(sorted(line.points, key=lambda p: p[0]), buckets):  # type: ignore[assignment]
            if y is None:
                pen_up = True
                continue
            d.append(f"{'M' if pen_up else 'L'}{px(x):.1f} {py(y):.1f}")
            pen_up = False
        style = index if line.style is None else line.style
        css = f"line s{style % PALETTE}" + (" dashed" if line.dashed else "")
        parts.append(f'<path class="{css}" data-label="{escape(line.label)}" d="{"".join(d)}"/>')
    parts.append("</svg>")
    return "".join(parts)


def legend(lines: Sequence[Line]) -> str:
    items = []
    for index, line in enumerate(lines):
        style = index if line.style is None else line.style
        dashed = " dashed" if line.dashed else ""
        items.append(f'<span><i class="key s{style % PALETTE}{dashed}"></i>{escape(line.label)}</span>')
    return '<div class="legend">' + "".join(items) + "</div>"


def bar_chart(
    chart_id: str,
    bars: Sequence[tuple[str, float]],
    *,
    unit: str = "",
    width: int = WIDTH,
    height: int = HEIGHT,
    empty: str = "no data",
) -> str:
    """Vertical bars with a label under each (every few when crowded), heights on a nice axis."""
    if not bars or not any(v for _, v in bars):
        return _empty(chart_id, empty, width, height)
    plot_w, plot_h = width - LEFT - RIGHT, height - TOP - BOTTOM - 10
    top = max(v for _, v in bars)
    step = nice_step(top)
    y1 = step * math.ceil(top / step)
    fmt = FORMATS.get(unit, fmt_number)
    slot = plot_w / len(bars)
    parts = [
        f'<svg class="chart bars" id="{escape(chart_id)}" viewBox="0 0 {width} {height}" role="img" '
        + _attrs(data_y1=y1, data_box=f"{LEFT} {TOP} {plot_w} {plot_h}")
        + ">"
    ]
    grid = []
    tick = 0.0
    while tick <= y1 + step / 1000:
        y = round(TOP + plot_h - tick / y1 * plot_h, 1)
        grid.append(f'<line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{y}" y2="{y}"/>')
        grid.append(f'<text class="yl" x="{LEFT - 6}" y="{y + 4}">{escape(fmt(tick))}</text>')
        tick += step
    every = max(1, math.ceil(len(bars) / (plot_w / 46)))
    for index, (label, _) in enumerate(bars):
        if index % every == 0:
            x = round(LEFT + slot * (index + 0.5), 1)
            grid.append(f'<text class="xl" x="{x}" y="{height - 12}">{escape(label)}</text>')
    parts.append('<g class="grid">' + "".join(grid) + "</g>")
    for index, (label, value) in enumerate(bars):
        h = value / y1 * plot_h
        x = LEFT + slot * index + slot * 0.1
        parts.append(
            f'<rect class="bar" x="{x:.1f}" y="{TOP + plot_h - h:.1f}" width="{slot * 0.8:.1f}" height="{h:.1f}">'
            f"<title>{escape(label)}: {escape(fmt(value))}</title></rect>"
        )
    parts.append("</svg>")
    return "".join(parts)


# ----------------------------------------------------------------------------------------------- histograms

_STEPS_PER_DECADE = (1, 1.5, 2, 3, 5, 7)


def distribution(counts: Mapping[str, int], *, max_bins: int = 40) -> list[tuple[str, float]]:
    """Response-time bins (label ``≤ 20 ms``, count) from a results histogram's counts (``{"µs": n}``).

    Bin edges are 1, 1.5, 2, 3, 5, 7 × 10^k ms between the fastest and the slowest response, merged pairwise
    until there are at most ``max_bins``.
    """
    found = {int(us): n for us, n in counts.items() if n > 0}
    if not found:
        return []
    low, high = max(min(found), 1) / 1000, max(max(found), 1) / 1000
    edges: list[float] = []
    decade = 10.0 ** math.floor(math.log10(low))
    while not edges or edges[-1] < high:
        edges += [f * decade for f in _STEPS_PER_DECADE if low <= f * decade and (not edges or edges[-1] < high)]
        decade *= 10
    edges = [e for i, e in enumerate(edges) if i == 0 or edges[i - 1] < high]  # stop at the first edge >= high
    while len(edges) > max_bins:
        edges = edges[1::2] if len(edges) % 2 == 0 else [*edges[1::2], edges[-1]]
    bins = [0] * len(edges)
    for us, n in found.items():
        ms = us / 1000
        bins[next((i for i, edge in enumerate(edges) if ms <= edge), len(edges) - 1)] += n
    return [(f"≤{_edge(edge)}", float(n)) for edge, n in zip(edges, bins, strict=True)]


def _edge(ms: float) -> str:
    return f"{ms:.4g} ms" if ms < 1000 else f"{ms / 1000:.4g} s"


def xy_grid(
    px: Callable[[float], float],
    py: Callable[[float], float],
    x_max: float,
    x_step: float,
    y_max: float,
    y_step: float,
    x_label: Callable[[float], str],
    y_label: Callable[[float], str],
) -> list[str]:
    """The grid of a chart whose x axis is a quantity, not the clock (load, rate): horizontal lines with their
    labels every ``y_step``, vertical ones every ``x_step`` (SVG elements, labels escaped)."""
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    grid = []
    tick = 0.0
    while tick <= y_max + y_step / 1000:
        y = round(py(tick), 1)
        grid.append(f'<line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{y}" y2="{y}"/>')
        grid.append(f'<text class="yl" x="{LEFT - 6}" y="{y + 4}">{escape(y_label(tick))}</text>')
        tick += y_step
    tick = 0.0
    while tick <= x_max + x_step / 1000:
        x = round(px(tick), 1)
        grid.append(f'<line class="v" x1="{x}" x2="{x}" y1="{TOP}" y2="{TOP + plot_h}"/>')
        grid.append(f'<text class="xl" x="{x}" y="{HEIGHT - 8}">{escape(x_label(tick))}</text>')
        tick += x_step
    return grid
