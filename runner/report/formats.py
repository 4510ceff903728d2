"""How the reports write values for people: one helper per kind of value, shared by console, HTML and JUnit."""

from __future__ import annotations

from runner.report.model import Verdict


def threshold_figures(verdict: Verdict) -> tuple[str, str]:
    """(measured, limit) of a threshold's verdict in its rule's unit: ``("8.16%", "< 1.00%")``; the measured
    value is the verdict's detail where there was none (``no request named 'POST /checkout' was made``)."""
    from runner.thresholds import parse_rule

    try:
        rule = parse_rule(verdict.expression)
        measured, limit = rule.show(verdict.actual), rule.show(rule.limit)
    except ValueError:
        measured, limit = str(verdict.actual), str(verdict.limit)
    if verdict.actual is None:
        measured = verdict.detail or "no data"
    return measured, f"{verdict.operator} {limit}".strip()
