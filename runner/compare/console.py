"""The comparison for people on a terminal: a table (request, metric, base, new, change, verdict) and a verdict."""

from __future__ import annotations

from runner.compare.model import Comparison, Gated
from runner.report.formats import fmt_ms, fmt_pct, fmt_rate

SHOWN = {
    "regression": "REGRESSION",
    "improvement": "improved",
    "within_limit": "within limit",
    "noise": "noise",
    "no_data": "no data",
    "off": "not gated",
}


def value_text(metric: str, value: float | None) -> str:
    if metric == "errors":
        return fmt_pct(value)
    if metric == "rps":
        return fmt_rate(value) + ("/s" if value is not None else "")
    return fmt_ms(value)


def change_text(row: Gated) -> str:
    if row.change is None:
        return "—"
    if row.metric == "errors":
        return f"{row.change * 100:+.2f}pp"
    ratio = f" ({row.change_ratio * 100:+.1f}%)" if row.change_ratio is not None else ""
    unit = "/s" if row.metric == "rps" else " ms"
    return f"{row.change:+.3g}{unit}{ratio}"


def headline(comparison: Comparison) -> str:
    """One line: the verdict, and the worst regressions."""
    if comparison.passed:
        better = f", {comparison.improvements} improved" if comparison.improvements else ""
        return f"PASSED: no regression beyond noise and the rules{better}"
    worst = [m for m in comparison.metrics if m.verdict == "regression"][:3]
    named = "; ".join(f"{m.metric} of {m.request} {change_text(m)}" for m in worst)
    more = f" and {comparison.regressions - len(worst)} more" if comparison.regressions > len(worst) else ""
    return f"REGRESSION: {named}{more}"


def table(comparison: Comparison) -> str:
    rows = [("Request", "Metric", "Base", "New", "Change", "Verdict")]
    for m in comparison.metrics:
        rows.append(
            (
                m.request,
                m.metric,
                value_text(m.metric, m.base),
                value_text(m.metric, m.new),
                change_text(m),
                SHOWN[m.verdict],
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(6)]
    lines = []
    for index, row in enumerate(rows):
        cells = [row[0].ljust(widths[0]), row[1].ljust(widths[1])]
        cells += [c.rjust(w) for c, w in zip(row[2:5], widths[2:5], strict=True)] + [row[5]]
        lines.append("  ".join(cells).rstrip())
        if index == 0:
            lines.append("-" * len(lines[0]))
    return "\n".join(lines)


def report(comparison: Comparison) -> str:
    """The whole console output of ``lrun compare``."""
    base, new = comparison.base, comparison.new
    parts = [
        f"base: {base.file} ({base.scenario}, {base.start}, {base.requests:,} requests)",
        f"new:  {new.file} ({new.scenario}, {new.start}, {new.requests:,} requests)",
        "",
        table(comparison),
    ]
    for item in comparison.unmatched:
        parts.append(f"only in the {'baseline' if item.only_in == 'base' else 'new run'}: {item.request} "
                     f"({item.requests:,} requests): not compared")  # fmt: skip
    parts += [f"warning: {w}" for w in comparison.warnings]
    parts += ["", f"rules: {', '.join(comparison.rules)}", f"method: {comparison.method}", "", headline(comparison)]
    return "\n".join(parts)
