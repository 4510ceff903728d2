"""What the reports say of live SLO windows (``Results.windows``): the bands on the charts where a window was
breached, for the HTML report and the web UI."""

from __future__ import annotations

from runner.report.formats import epoch_of, fmt_time
from runner.report.model import Results, WindowBreach, WindowVerdict


def breach_text(window: WindowVerdict, breach: WindowBreach) -> str:
    """``failing 14:02:05–14:02:21 UTC, worst 812.0 ms`` (the worst in the metric's unit)."""
    until = _clock(breach.end) if breach.end is not None else "the end"
    counted = "" if breach.counted else f" (shorter than {window.for_windows} windows in a row: not counted)"
    return f"failing {_clock(breach.start)}–{until} UTC, worst {_show(window, breach.worst)}{counted}"


def breach_title(window: WindowVerdict, breach: WindowBreach) -> str:
    """``p95 < 300ms over 10s [GET /]: failing …``: a band's tooltip."""
    scope = f" [{window.request}]" if window.request else ""
    return f"{window.expression}{scope}: {breach_text(window, breach)}"


def _clock(epoch: float) -> str:
    return fmt_time(epoch).split(" ")[1]


def _show(window: WindowVerdict, value: float) -> str:
    if window.metric in ("errors", "error_rate"):
        return f"{value * 100:.2f}%"
    if window.metric in ("requests", "failures", "rps", "failures_per_s"):
        return f"{value:.1f}"
    return f"{value:.1f} ms"


def slo_bands(results: Results) -> list[tuple[float, float, str]]:
    """(from, to, title) in epoch seconds of every breach; one still open at the end runs to the end."""
    end = epoch_of(results.end) or 0.0
    return [
        (float(b.start), float(b.end if b.end is not None else end), breach_title(w, b))
        for w in results.windows or []
        for b in w.breaches
    ]


MAX_LINES = 10  # breaches listed per window on the console; the results have them all


def breach_lines(results: Results) -> list[str]:
    """The console's lines under the thresholds: each SLO window's breaches, when it had some."""
    lines = []
    for window in results.windows or []:
        if not window.breaches:
            continue
        lines.append(f"  SLO window {window.expression}{f' [{window.request}]' if window.request else ''}:")
        for breach in window.breaches[:MAX_LINES]:
            lines.append("    " + breach_text(window, breach))
        if len(window.breaches) > MAX_LINES:
            lines.append(f"    … {len(window.breaches) - MAX_LINES} more in the results")
    return lines
