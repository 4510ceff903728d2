"""Threshold expressions and resource limits as written in a scenario: read and checked here (validation needs
nothing more), evaluated on results by ``runner.thresholds`` and on samples by ``runner.monitor.local``."""

from __future__ import annotations

import operator
import re
from collections.abc import Callable

from runner.scenario.types import parse_duration
from runner.suggest import did_you_mean

OPERATORS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
}
TIME_METRICS = {"avg": "avg_ms", "min": "min_ms", "max": "max_ms", "median": "median_ms"}
COUNT_METRICS = {"requests": "requests", "failures": "failures", "rps": "rps", "failures_per_s": "failures_per_s"}
RATE_METRICS = ("errors", "error_rate")
RUN_METRICS = ("arrivals_dropped",)  # of the whole run, not of an entry: a percentage of the planned arrivals
# the phases of a request's time (results: an entry's ``timings``), in order; they add up to its response time
PHASES = ("dns", "connect", "tls", "send", "ttfb", "receive")
PHASE_PERCENTILES = ("50", "66", "75", "80", "90", "95", "98", "99", "99.9", "99.99", "100")  # stats' PERCENTILES
PHASE_ALIASES = {"waiting": "ttfb", "sending": "send", "receiving": "receive", "connecting": "connect"}  # k6's
_EXPRESSION = re.compile(r"^\s*([A-Za-z_][\w.]*)\s*(<=|>=|==|<|>)\s*(\S+)\s*$")
PERCENTILE = re.compile(r"^p(\d+(?:\.\d+)?)$")
METRICS_HELP = (
    "p50 … p99.9, avg, min, max, median (times); errors (a %); requests, failures, rps, failures_per_s; "
    "arrivals_dropped (a % of the planned arrivals); a phase of the time before a time metric: 'ttfb p95', "
    "'connect avg' (phases: dns, connect, tls, send, ttfb, receive)"
)
_PHASED = re.compile(r"^\s*([A-Za-z_]+)\s+([A-Za-z_][\w.]*\s*(?:<=|>=|==|<|>).*)$", re.DOTALL)


def _phased(text: str) -> tuple[str, str, float] | None:
    """``ttfb p95 < 100ms`` → ("ttfb p95", "<", 100.0): a time metric of one phase; None without a phase."""
    match = _PHASED.match(text)
    if match is None:
        return None
    word, rest = match[1].lower(), match[2]
    phase = PHASE_ALIASES.get(word, word)
    if phase not in PHASES:
        hint = did_you_mean(word, [*PHASES, *PHASE_ALIASES])
        raise ValueError(
            f"unknown phase '{word}'{' (' + hint + ')' if hint else ''}: write a phase of the request's time "
            f"({', '.join(PHASES)}) before a time metric, e.g. 'ttfb p95 < 100ms'"
        )
    metric, op, limit = parse_expression(rest)
    if metric not in TIME_METRICS and not PERCENTILE.match(metric):
        raise ValueError(
            f"'{phase} {metric}': a phase takes a time metric (avg, min, max, median, p50 … p99.9), "
            f"e.g. '{phase} p95 < 100ms'"
        )
    if metric[0] == "p" and f"{float(metric[1:]):g}" not in PHASE_PERCENTILES:
        raise ValueError(f"'{phase} {metric}': the phases keep the percentiles {', '.join(PHASE_PERCENTILES)}")
    return f"{phase} {metric}", op, limit


def parse_expression(text: str) -> tuple[str, str, float]:
    """``p95 < 500ms`` → (metric, operator, limit); raises ``ValueError`` with what to write instead. A phase
    before a time metric (``ttfb p95 < 100ms``) gives the metric "ttfb p95"."""
    phased = _phased(text)
    if phased is not None:
        return phased
    match = _EXPRESSION.match(text)
    if not match:
        raise ValueError(f"cannot read threshold {text!r}: write METRIC OPERATOR LIMIT, e.g. 'p95 < 500ms'")
    metric, op, raw = match.groups()
    metric = metric.lower()
    if metric in RATE_METRICS or metric in RUN_METRICS:
        if not raw.endswith("%"):
            what = "the error rate" if metric in RATE_METRICS else metric
            raise ValueError(f"write {what} as a percentage: '{metric} {op} {raw}%'")
        try:
            limit = float(raw[:-1]) / 100
        except ValueError:
            raise ValueError(f"{raw!r} is not a percentage") from None
    elif metric in TIME_METRICS or PERCENTILE.match(metric):
        try:
            limit = float(raw) if re.fullmatch(r"\d+(\.\d+)?", raw) else parse_duration(raw) * 1000
        except ValueError:
            raise ValueError(f"{raw!r} is not a time: write 500ms, 1.5s or a number of milliseconds") from None
        if PERCENTILE.match(metric) and float(metric[1:]) > 100:
            raise ValueError(f"{metric}: a percentile is at most p100")
    elif metric in COUNT_METRICS:
        try:
            limit = float(raw)
        except ValueError:
            raise ValueError(f"{raw!r} is not a number") from None
    else:
        hint = did_you_mean(metric, [*TIME_METRICS, *COUNT_METRICS, *RATE_METRICS, *RUN_METRICS, "p95", "p99"])
        raise ValueError(f"unknown metric '{metric}'{' (' + hint + ')' if hint else ''}: use {METRICS_HELP}")
    return metric, op, limit


# resource limits

CPU_METRICS = ("generator_cpu", "system_cpu", "target_cpu", "host_cpu")
MEMORY_METRICS = ("generator_memory", "system_memory", "target_memory", "host_memory")
NUMBER_METRICS = ("host_load", "query")  # plain numbers (remote: runner.monitor.remote)
METRICS = CPU_METRICS + MEMORY_METRICS + NUMBER_METRICS
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B?|B)?\s*$", re.IGNORECASE)
_PERCENT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*%\s*$")
SIZE_HELP = "a size such as 500MB, 1.5GiB or a number of bytes, or a percentage of the machine's memory (80%)"


def parse_size(text: str | int | float) -> float:
    """Bytes from ``500MB`` (10^6), ``512MiB`` (2^20), ``2G``, ``1048576``; ValueError otherwise."""
    if isinstance(text, bool):
        raise ValueError(f"expected {SIZE_HELP}")
    if isinstance(text, int | float):
        return float(text)
    match = _SIZE.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a size: use {SIZE_HELP}")
    number, unit = float(match.group(1)), (match.group(2) or "B").upper()
    if unit == "B":
        return number
    power = "KMGT".index(unit[0]) + 1
    base = 1024 if "I" in unit else 1000
    return number * base**power


def parse_percent(text: str | int | float) -> float:
    if isinstance(text, bool):
        raise ValueError("expected a percentage such as 90%")
    if isinstance(text, int | float):
        return float(text)
    match = _PERCENT.match(text)
    if not match:
        try:
            return float(text)
        except ValueError:
            raise ValueError(f"{text!r} is not a percentage: write 90%") from None
    return float(match.group(1))


def resource_limit(metric: str, above: str | float, process: str | int | None = None) -> tuple[float, bool]:
    """The limit of a resource threshold (percent, or bytes) and whether it is a percentage of the machine's
    memory; ValueError with what to write instead."""
    if metric not in METRICS:
        hint = did_you_mean(metric, METRICS)
        raise ValueError(f"unknown metric '{metric}'{' (' + hint + ')' if hint else ''}: use {', '.join(METRICS)}")
    if process is not None and not metric.startswith(("target_", "host_", "query")):
        raise ValueError(f"'process' applies to target_cpu and target_memory, not {metric}")
    percent_of_memory = False
    try:
        if metric in NUMBER_METRICS:
            limit = float(above)
        elif metric in CPU_METRICS:
            limit = parse_percent(above)
        elif isinstance(above, str) and _PERCENT.match(above):
            limit, percent_of_memory = parse_percent(above), True
        else:
            limit = parse_size(above)
    except ValueError as exc:
        raise ValueError(f"above: {exc}") from None
    return limit, percent_of_memory
