"""Where each request's time went, for people: the console table and the HTML report's stacked bars, both from
the results' ``timings`` (``runner.report.model.Timings``)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from html import escape

from runner.report.model import Entry, Timings

PHASES = ("dns", "connect", "tls", "send", "ttfb", "receive")  # the fields of Timings, in the order of a request
TITLES = {"dns": "DNS", "connect": "Connect", "tls": "TLS", "send": "Send", "ttfb": "TTFB", "receive": "Receive"}
STYLES = {"dns": 6, "connect": 1, "tls": 3, "send": 4, "ttfb": 0, "receive": 5}  # the charts' colour classes
COLORS = {phase: f"var(--s{style})" for phase, style in STYLES.items()}  # the bars': the same colours


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.0f}" if value >= 100 else f"{value:.1f}" if value >= 1 else f"{value:.2f}"


def _timed(entries: Iterable[Entry]) -> list[tuple[Entry, Timings]]:
    return [(e, e.timings) for e in entries if e.timings is not None and e.timings.responses]


def _label(entry: Entry) -> str:
    text = f"{entry.method} {entry.name}".strip()
    return text if len(text) <= 60 else text[:57] + "..."


def timing_table(entries: Iterable[Entry], total: Entry) -> str:
    """Avg / p95 of each phase (ms) per request name and for all; empty when nothing was timed."""
    rows = _timed(entries)
    if not rows:
        return ""
    if total.timings is not None and total.timings.responses:
        rows.append((total.model_copy(update={"method": "", "name": "Aggregated"}), total.timings))
    width = min(max(24, *(len(_label(e)) for e, _ in rows)), 60)
    head = f"{'Name':<{width}} {'new conn':>8} " + " ".join(f"{TITLES[p]:>15}" for p in PHASES)
    lines = ["Where the time went (avg / p95, ms; a reused connection has no DNS, connect or TLS)", head]
    lines.append("-" * len(head))
    for entry, timings in rows:
        if entry.name == "Aggregated" and not entry.method:
            lines.append("-" * len(head))
        cells = []
        for phase in PHASES:
            time = getattr(timings, phase)
            cells.append(f"{_ms(time.avg_ms) + ' / ' + _ms(time.percentiles.get('95')):>15}")
        lines.append(f"{_label(entry):<{width}} {timings.new_connections:>8} " + " ".join(cells))
    return "\n".join(lines)


def _total_ms(timings: Timings) -> float:
    return sum(getattr(timings, p).avg_ms or 0.0 for p in PHASES)


def _legend() -> str:
    return " ".join(
        f'<span style="display:inline-block;width:10px;height:10px;background:{COLORS[p]}"></span> {TITLES[p]}'
        for p in PHASES
    )


def _head(note: str) -> list[str]:
    return [
        '<section id="timings"><h2>Where the time went</h2>',
        "<style>#timings span { print-color-adjust: exact; -webkit-print-color-adjust: exact; }</style>",
        f'<p class="note">{note} {_legend()}</p>',
        '<table class="timings">',
    ]


def _bar_row(name: str, timings: Timings, longest: float, who: str = "") -> str:
    """One row: the name, the bar of its phases (``longest`` ms is the full width), the total and the figures."""
    parts = []
    tips = []
    for phase in PHASES:
        avg = getattr(timings, phase).avg_ms or 0.0
        tips.append(f"{TITLES[phase]} {_ms(avg)}")
        if avg > 0:
            parts.append(
                f'<span title="{TITLES[phase]}: {_ms(avg)} ms" style="display:inline-block;height:14px;'
                f'width:{avg / longest * 100:.3f}%;background:{COLORS[phase]}"></span>'
            )
    run = f'<td class="note">{escape(who)}</td>' if who else ""
    return (
        f'<tr><td class="name">{escape(name)}</td>{run}'
        f'<td style="width:55%;white-space:nowrap">{"".join(parts)}</td>'
        f'<td class="n">{_ms(_total_ms(timings))} ms</td><td class="note">{escape(", ".join(tips))}; '
        f"{timings.new_connections} new connections of {timings.responses}</td></tr>"
    )


NOTE = "Average time per phase of each request (ms); a reused keep-alive connection has no DNS, connect or TLS time."


def timing_bars(entries: Iterable[Entry]) -> str:
    """An HTML section: per request name a bar of its average response time split by phase (inline CSS, no
    script: readable offline and printed); empty when nothing was timed."""
    rows = _timed(entries)
    if not rows:
        return ""
    longest = max(_total_ms(t) for _, t in rows) or 1.0
    out = _head(NOTE)
    out += [_bar_row(_label(entry), timings, longest) for entry, timings in rows]
    out.append("</table></section>")
    return "\n".join(out)


def paired_timing_bars(runs: Sequence[tuple[str, Iterable[Entry]]]) -> str:
    """``timing_bars`` of several runs (``(its name, its entries)``) side by side: per request name a bar of each
    run that timed it, on one scale; empty when no run timed anything."""
    timed = [(who, {_label(e): t for e, t in _timed(entries)}) for who, entries in runs]
    names = list(dict.fromkeys(name for _, by_name in timed for name in by_name))
    if not names:
        return ""
    longest = max(_total_ms(t) for _, by_name in timed for t in by_name.values()) or 1.0
    out = _head(NOTE + " One bar per run, on the same scale.")
    for name in names:
        out += [_bar_row(name, by_name[name], longest, who) for who, by_name in timed if name in by_name]
    out.append("</table></section>")
    return "\n".join(out)
