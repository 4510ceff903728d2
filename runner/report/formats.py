"""How the reports write values for people: one helper per kind of value, shared by console, HTML, charts and
JUnit. A missing value (``None``) is ``—`` in the HTML report and ``N/A`` on the console (Locust's)."""

from __future__ import annotations

from datetime import UTC, datetime

from runner.report.model import Verdict


def clock(seconds: float) -> str:
    """Elapsed time: ``0:45``, ``12:30``, ``1:02:03``."""
    seconds = round(seconds)
    minutes, secs = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def fmt_number(value: float) -> str:
    """``0``, ``0.25``, ``1.5``, ``42``, ``1,234``: as few digits as read well (chart axes, sizes)."""
    if value == 0:
        return "0"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.0f}"
    if abs(value) >= 1:
        return f"{value:.1f}".rstrip("0").rstrip(".")
    return f"{value:.2f}".rstrip("0").rstrip(".")


def fmt_bytes(value: float | None, missing: str = "—") -> str:
    """``512 B``, ``60 MiB``, ``1.5 GiB``: binary units, as memory is counted."""
    if value is None:
        return missing
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{fmt_number(value)} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def epoch_of(text: str | None) -> float | None:
    """Epoch seconds of an ISO 8601 time as written in the results (``2024-05-01T12:00:00.000Z``)."""
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def fmt_time(epoch: float | None) -> str:
    """``2024-05-01 12:00:00 UTC`` from epoch seconds; ``—`` when unknown."""
    if epoch is None:
        return "—"
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def fmt_ms(value: float | None) -> str:
    if value is None:
        return "—"
    if value >= 10_000:
        return f"{value / 1000:.1f} s"
    return f"{value:.0f} ms" if value >= 100 else f"{value:.1f} ms" if value >= 1 else f"{value:.2f} ms"


def fmt_num(value: float | None, digits: int = 0) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def fmt_rate(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:,.1f}" if value >= 10 else f"{value:.2f}"


def fmt_pct(value: float | None, digits: int = 2) -> str:
    """A ratio (0.0123) as a percentage (1.23%)."""
    return "—" if value is None else f"{value * 100:.{digits}f}%"


def fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    return f"{seconds:.1f} s" if seconds < 60 else clock(seconds)


def since(epoch: float | None, origin: float) -> str:
    """``+0:25``: a time of the run after its start."""
    return "—" if epoch is None else f"+{clock(epoch - origin)}"


def fmt_percent(value: float | None, missing: str = "—") -> str:
    """A percentage as measured (CPU: ``45%``), no decimals."""
    return missing if value is None else f"{value:.0f}%"


def threshold_figures(verdict: Verdict) -> tuple[str, str]:
    """(measured, limit) of a threshold's verdict in its rule's unit: ``("8.16%", "< 1.00%")``; the measured
    value is the verdict's detail where there was none (``no request named 'POST /checkout' was made``)."""
    from runner.scenario.windows import rule_text
    from runner.thresholds import parse_rule

    try:
        rule = parse_rule(rule_text(verdict.expression))
        measured, limit = rule.show(verdict.actual), rule.show(rule.limit)
    except ValueError:
        measured, limit = str(verdict.actual), str(verdict.limit)
    if verdict.actual is None:
        measured = verdict.detail or "no data"
    return measured, f"{verdict.operator} {limit}".strip()
