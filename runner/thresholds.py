"""Thresholds (the SLA): ``p95 < 500ms``, ``errors < 1%``, ``rps > 100`` — parsed once, evaluated on results.

A threshold reads one entry (the total, or the entry of one request name) of typed figures, a
``stats.Snapshot`` while the test runs or the ``Results`` at its end, and compares one metric with a limit.
Time metrics are in milliseconds (``500ms``, ``1.5s``; a bare number means ms), the error rate is a
percentage, counts and rates are plain numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from runner.report.model import Arrivals, Entry, PhaseTime, Transactions
from runner.scenario.limits import (
    COUNT_METRICS,
    OPERATORS,
    PERCENTILE,
    RATE_METRICS,
    RUN_METRICS,
    TIME_METRICS,
    parse_expression,
)

_FIGURES = {**COUNT_METRICS, **TIME_METRICS}  # an entry's attribute for each metric read as it is


class Figures(Protocol):
    """What a threshold reads: a ``stats.Snapshot`` or a ``report.model.Results``."""

    @property
    def total(self) -> Entry: ...
    @property
    def requests(self) -> list[Entry]: ...
    @property
    def transactions(self) -> Transactions | None: ...
    @property
    def arrivals(self) -> Arrivals | None: ...


@dataclass(frozen=True)
class Rule:
    metric: str  # as written: p95, errors, rps …
    op: str
    limit: float  # ms for times, a ratio (0.01) for errors, a number otherwise
    text: str  # the expression as written

    def measure(self, entry: Entry) -> float | None:
        """The metric's value in a results entry (None when there is no data)."""
        if " " in self.metric:  # "ttfb p95": a time metric of one phase of the responses' time
            phase, metric = self.metric.split(" ", 1)
            times: PhaseTime | None = getattr(entry.timings, phase, None) if entry.timings is not None else None
            if times is None:
                return None
            value: float | None
            if metric in TIME_METRICS:
                value = getattr(times, TIME_METRICS[metric]) if metric != "median" else times.percentiles.get("50")
            else:
                quantile = metric[1:]
                value = times.percentiles.get(quantile, times.percentiles.get(_normal_key(quantile)))
            return value
        if self.metric in RATE_METRICS:
            return entry.failure_ratio if entry.requests else None
        if self.metric in COUNT_METRICS or self.metric in TIME_METRICS:
            figure: float | None = getattr(entry, _FIGURES[self.metric])
            return figure
        quantile = self.metric[1:]
        percentiles = entry.percentiles
        key = quantile if quantile in percentiles else _normal_key(quantile)
        if key in percentiles:
            return percentiles[key]
        if entry.histogram is None or not entry.requests:
            return None
        from runner.stats.histogram import Histogram

        return Histogram.from_dict(entry.histogram.model_dump()).percentile(float(quantile))

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
    def is_phase(self) -> bool:
        """A metric of one phase of the responses' time (``ttfb p95``)."""
        return " " in self.metric

    @property
    def is_time(self) -> bool:
        return self.metric in TIME_METRICS or bool(PERCENTILE.match(self.metric)) or " " in self.metric


def _normal_key(quantile: str) -> str:
    value = float(quantile)
    return str(int(value)) if value.is_integer() else str(value)


def parse_rule(text: str) -> Rule:
    """``p95 < 500ms`` → Rule; raises ``ValueError`` with what to write instead."""
    return Rule(*parse_expression(text), text.strip())


def find_entry(figures: Figures, request: str | None) -> Entry | None:
    """The entry a threshold reads: the total, or one request (or transaction) by 'NAME' or 'METHOD NAME'."""
    if request is None:
        return figures.total
    transactions = figures.transactions.entries if figures.transactions is not None else []
    for entry in [*figures.requests, *transactions]:
        if request in (entry.name, f"{entry.method} {entry.name}".strip()):
            return entry
    return None


def evaluate(rule: Rule, request: str | None, figures: Figures) -> dict[str, Any]:
    """One threshold's verdict as it goes into the results."""
    if rule.metric in RUN_METRICS:
        return _verdict(rule, request, *_run_metric(rule, figures.arrivals))
    entry = find_entry(figures, request)
    value = rule.measure(entry) if entry else None
    if entry is None:
        detail = f"no request named {request!r} was made"
    elif value is None:
        detail = "no data"
    else:
        detail = f"measured {rule.show(value)}"
    return _verdict(rule, request, value, detail)


def _run_metric(rule: Rule, arrivals: Arrivals | None) -> tuple[float | None, str]:
    """``arrivals_dropped``: the share of the planned arrivals that never started (open model only)."""
    planned = arrivals.planned if arrivals is not None else None
    if arrivals is None or not planned:
        return None, "no planned arrivals (arrivals_dropped is for the open model)"
    dropped = arrivals.dropped
    dropped = max(0, planned - (arrivals.started or 0)) if dropped is None else dropped
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
