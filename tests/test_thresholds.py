"""Thresholds: parsed once with clear errors, evaluated on results entries."""

from __future__ import annotations

import pytest
from helpers import figures

from runner.thresholds import evaluate, parse_rule

RESULTS = {
    "total": {
        "requests": 200,
        "failures": 4,
        "failure_ratio": 0.02,
        "rps": 50.0,
        "avg_ms": 100.0,
        "percentiles": {"50": 80.0, "95": 420.0, "99": 900.0},
    },
    "requests": [
        {
            "method": "POST",
            "name": "/orders",
            "requests": 10,
            "failures": 0,
            "failure_ratio": 0.0,
            "percentiles": {"99": 900.0},
            "avg_ms": 300.0,
        },
        {"method": "GET", "name": "/items", "requests": 0, "failures": 0, "failure_ratio": 0.0, "percentiles": {}},
    ],
}


@pytest.mark.parametrize(
    ("text", "request_name", "passed", "actual"),
    [
        ("p95 < 500ms", None, True, 420.0),
        ("p95 < 0.4s", None, False, 420.0),
        ("p99 <= 900", None, True, 900.0),
        ("errors < 1%", None, False, 0.02),
        ("errors < 5%", None, True, 0.02),
        ("rps > 40", None, True, 50.0),
        ("failures == 0", "POST /orders", True, 0),
        ("p99 < 800ms", "/orders", False, 900.0),
        ("avg < 200ms", "POST /orders", False, 300.0),
    ],
)
def test_verdicts(text: str, request_name: str | None, passed: bool, actual: float) -> None:
    verdict = evaluate(parse_rule(text), request_name, figures(RESULTS))
    assert (verdict["passed"], verdict["actual"]) == (passed, actual)


def test_no_data_and_unknown_requests_fail_with_a_reason() -> None:
    assert evaluate(parse_rule("p95 < 1s"), "GET /items", figures(RESULTS))["detail"] == "no data"
    verdict = evaluate(parse_rule("p95 < 1s"), "/nope", figures(RESULTS))
    assert not verdict["passed"] and verdict["detail"] == "no request named '/nope' was made"


def test_uncommon_percentiles_come_from_the_histogram() -> None:
    from runner.stats.histogram import Histogram

    histogram = Histogram()
    for value in range(1, 1001):
        histogram.record(float(value))
    entry = {"requests": 1000, "percentiles": {}, "histogram": histogram.to_dict()}
    verdict = evaluate(parse_rule("p97 < 1s"), None, figures({"total": entry}))
    assert verdict["actual"] == pytest.approx(970, rel=0.01)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("p95 500ms", "write METRIC OPERATOR LIMIT"),
        ("errors < 1", "write the error rate as a percentage: 'errors < 1%'"),
        ("latency < 5", "unknown metric 'latency'"),
        ("p95 < soon", "'soon' is not a time"),
        ("rps > many", "'many' is not a number"),
        ("p101 < 1s", "a percentile is at most p100"),
    ],
)
def test_mistakes(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_rule(text)


def test_the_results_are_figures_too() -> None:
    """``lrun capacity`` and a results file's reader judge the typed Results as the run judged its snapshot."""
    from runner.report.model import Results

    snapshot = figures(RESULTS)
    base = {"lrun_version": "x", "scenario": "s", "start": "a", "end": "b", "duration_s": 1, "measured_s": 1}
    results = Results(**base, total=snapshot.total, requests=snapshot.requests, passed=True, exit_code=0)
    for text, request in (("p95 < 500ms", None), ("avg < 200ms", "POST /orders"), ("p95 < 1s", "GET /items")):
        rule = parse_rule(text)
        assert evaluate(rule, request, results) == evaluate(rule, request, snapshot)
    assert evaluate(parse_rule("p99 < 800ms"), "/orders", results)["actual"] == 900.0
