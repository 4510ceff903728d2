"""The comparison HTML report: one self-contained page in the run report's style (its stylesheet and script),
with the verdicts, the rule used, and both runs' latency distributions and percentiles side by side."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from html import escape
from pathlib import Path

from markupsafe import Markup

import runner
from runner.compare.console import SHOWN, change_text, headline, value_text
from runner.compare.gate import label
from runner.compare.model import Comparison
from runner.errors import LrunError
from runner.report.formats import fmt_ms, fmt_time
from runner.report.html import _environment
from runner.report.model import Entry, Results

BINS = 32
WIDTH, HEIGHT, LEFT, BOTTOM, TOP = 1180, 230, 56, 30, 10
SHOWN_PERCENTILES = ("50", "75", "90", "95", "99", "99.9", "100")
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


def render(comparison: Comparison, base: Results, new: Results) -> str:
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
        rows=rows,
        distributions=_distributions(base, new),
        more=max(0, len({label(e) for e in base.requests} & {label(e) for e in new.requests}) - DISTRIBUTIONS),
        legend=_legend(),
        generated=fmt_time(datetime.now(UTC).timestamp()),
        version=runner.__version__,
    )


def write_html(comparison: Comparison, base: Results, new: Results, path: str) -> None:
    try:
        Path(path).write_text(render(comparison, base, new), encoding="utf-8")
    except OSError as exc:
        raise LrunError(f"cannot write the HTML report {path}: {exc.strerror or exc}") from None
