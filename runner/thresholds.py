"""Thresholds (the SLA): ``p95 < 500ms``, ``errors < 1%``, ``rps > 100`` — parsed once, evaluated on results.

A threshold reads one entry of the results (the total, or the entry of one request name) and compares one
metric with a limit. Time metrics are in milliseconds (``500ms``, ``1.5s``; a bare number means ms), the
error rate is a percentage, counts and rates are plain numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from runner.scenario.limits import (
    COUNT_METRICS,
    OPERATORS,
    PERCENTILE,
    RATE_METRICS,
    RUN_METRICS,
    TIME_METRICS,
    parse_expression,
)


@dataclass(frozen=True)
class Rule:
    metric: str  # as written: p95, errors, rps …
    op: str
    limit: float  # ms for times, a ratio (0.01) for errors, a number otherwise
    text: str  # the expression as written

    def measure(self, entry: dict[str, Any]) -> float | None:
        """The metric's value in a results entry (None when there is no data)."""
        if " " in self.metric:  # "ttfb p95": a time metric of one phase of the responses' time
            phase, metric = self.metric.split(" ", 1)
            times = ((entry.get("timings") or {}).get(phase)) or {}
            if metric in TIME_METRICS:
                return times.get(TIME_METRICS[metric]) if metric != "median" else times.get("percentiles", {}).get("50")
            quantile = metric[1:]
            percentiles = times.get("percentiles") or {}
            return percentiles.get(quantile, percentiles.get(_normal_key(quantile)))
        if self.metric in RATE_METRICS:
            return entry.get("failure_ratio") if entry.get("requests") else None
        if self.metric in COUNT_METRICS:
            return entry.get(COUNT_METRICS[self.metric])
        if self.metric in TIME_METRICS:
            return entry.get(TIME_METRICS[self.metric])
        quantile = self.metric[1:]
        percentiles = entry.get("percentiles") or {}
        key = quantile if quantile in percentiles else _normal_key(quantile)
        if key in percentiles:
            return percentiles[key]
        histogram = entry.get("histogram")
        if not histogram or not entry.get("requests"):
            return None
        from runner.stats.histogram import Histogram

        return Histogram.from_dict(histogram).percentile(float(quantile))

    def passes(self, value: float) -> bool:
        return OPERATORS[self.op](value, self.limit)

    def show(self, value: float | None) -> str:
        """A measured value in the rule's unit."""
        if value is None:
            return "no data"
        if self.metric in RATE_METRICS or self.metric in RUN_METRICS:
            return f"{value * 100:.2f}%"
        if self.is_time:
            return f"{value:.1f} ms"
        return f"{value:g}" if self.metric != "rps" else f"{value:.1f}"

    @property
    def is_time(self) -> bool:
        return self.metric in TIME_METRICS or bool(PERCENTILE.match(self.metric)) or " " in self.metric


def _normal_key(quantile: str) -> str:
    value = float(quantile)
    return str(int(value)) if value.is_integer() else str(value)


def parse_rule(text: str) -> Rule:
    """``p95 < 500ms`` → Rule; raises ``ValueError`` with what to write instead."""
    return Rule(*parse_expression(text), text.strip())


def find_entry(results: dict[str, Any], request: str | None) -> dict[str, Any] | None:
    """The results entry a threshold reads: the total, or one request (or transaction) by 'NAME' or 'METHOD NAME'."""
    if request is None:
        return results.get("total")
    entries = [*(results.get("requests") or []), *((results.get("transactions") or {}).get("entries") or [])]
    for entry in entries:
        if request in (entry.get("name"), f"{entry.get('method')} {entry.get('name')}".strip()):
            return entry
    return None


def evaluate(rule: Rule, request: str | None, results: dict[str, Any]) -> dict[str, Any]:
    """One threshold's verdict as it goes into the results."""
    if rule.metric in RUN_METRICS:
        return _verdict(rule, request, *_run_metric(rule, results))
    entry = find_entry(results, request)
    value = rule.measure(entry) if entry else None
    if entry is None:
        detail = f"no request named {request!r} was made"
    elif value is None:
        detail = "no data"
    else:
        detail = f"measured {rule.show(value)}"
    return _verdict(rule, request, value, detail)


def _run_metric(rule: Rule, results: dict[str, Any]) -> tuple[float | None, str]:
    """``arrivals_dropped``: the share of the planned arrivals that never started (open model only)."""
    arrivals = results.get("arrivals") or {}
    planned = arrivals.get("planned")
    if not planned:
        return None, "no planned arrivals (arrivals_dropped is for the open model)"
    dropped = arrivals.get("dropped")
    dropped = max(0, planned - arrivals.get("started", 0)) if dropped is None else dropped
    return dropped / planned, f"measured {rule.show(dropped / planned)} ({dropped} of {planned} never started)"


def _verdict(rule: Rule, request: str | None, value: float | None, detail: str) -> dict[str, Any]:
    return {
        "expression": rule.text,
        "request": request,
        "metric": rule.metric,
        "operator": rule.op,
        "limit": rule.limit,
        "actual": value,
        "passed": value is not None and rule.passes(value),
        "detail": detail,
    }
