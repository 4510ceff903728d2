"""The results contract (JSON) and the Locust-compatible CSV files made from it."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest

import runner
from runner.errors import LrunError
from runner.report.csv import write_csv
from runner.report.model import Results
from runner.report.results import build_results, iso_time, read_json, write_json
from runner.stats import RequestStats

ENTRY_KEYS = {
    "type",
    "method",
    "name",
    "requests",
    "failures",
    "failure_ratio",
    "rps",
    "failures_per_s",
    "avg_ms",
    "min_ms",
    "max_ms",
    "median_ms",
    "stddev_ms",
    "avg_bytes",
    "total_bytes",
    "retries",
    "http2",
    "percentiles",
    "histogram",
}
PERCENTILE_KEYS = ["50", "66", "75", "80", "90", "95", "98", "99", "99.9", "99.99", "100"]

# Locust's headers, copied from locust/stats.py (StatsCSV, StatsCSVFileWriter).
LOCUST_STATS = (
    "Type,Name,Request Count,Failure Count,Median Response Time,Average Response Time,Min Response Time,"
    "Max Response Time,Average Content Size,Requests/s,Failures/s,50%,66%,75%,80%,90%,95%,98%,99%,99.9%,99.99%,100%"
)
LOCUST_HISTORY = (
    "Timestamp,User Count,Type,Name,Requests/s,Failures/s,50%,66%,75%,80%,90%,95%,98%,99%,99.9%,99.99%,100%,"
    "Total Request Count,Total Failure Count,Total Median Response Time,Total Average Response Time,"
    "Total Min Response Time,Total Max Response Time,Total Average Content Size"
)
LOCUST_FAILURES = "Method,Name,Error,Occurrences"
LOCUST_EXCEPTIONS = "Count,Message,Traceback,Nodes"


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def run_stats(full_history: bool = False, seconds: int = 5) -> tuple[RequestStats, float, float]:
    """A small run: GET /items and POST /login over ``seconds`` seconds, some failures, one exception."""
    start = 1_714_564_800.0  # 2024-05-01T12:00:00Z
    clock = Clock(start)
    stats = RequestStats(clock=clock, full_history=full_history)
    for second in range(seconds):
        for i in range(10):
            clock.now = start + second + i / 10
            stats.log("GET", "/items", 20.0 + i, 1500, "HTTP 500 Internal Server Error" if i == 9 else None)
            if i % 5 == 0:
                stats.log("POST", "/login", 80.0 + second, 200, None)
        stats.sample(start + second + 1.001, users=second + 1)
    try:
        raise ZeroDivisionError("division by zero")
    except ZeroDivisionError as error:
        stats.log_error(error, "shopper")
    return stats, start, start + seconds + 0.5


def results_of(stats: RequestStats, start: float, end: float, **overrides: Any) -> Results:
    arguments: dict[str, Any] = {
        "scenario": "quickstart",
        "scenario_file": "scenarios/quickstart.yaml",
        "host": "http://127.0.0.1:8089",
        "start": start,
        "end": end,
        "users_max": 5,
        "load": {"users": 5, "spawn_rate": 1.0, "run_time_s": 5.0},
        "command": "lrun scenarios/quickstart.yaml -u 5 -t 5s",
        "thresholds": [{"expression": "p95 < 500ms", "metric": "p95", "operator": "<", "limit": 500.0, "passed": True}],
        "stop_reason": "run time reached",
        "exit_code": 0,
    }
    arguments.update(overrides)
    return build_results(stats, **arguments)


# ---------------------------------------------------------------------------------------------- JSON


def test_results_have_the_documented_shape_and_are_strict_json() -> None:
    stats, start, end = run_stats()
    results = results_of(stats, start, end, extra={"warnings": ["slow"]}).to_dict()  # what the JSON file holds
    text = json.dumps(results, allow_nan=False)
    assert json.loads(text) == results
    assert (results["format"], results["format_version"], results["lrun_version"]) == (
        "lrun-results",
        1,
        runner.__version__,
    )
    assert results["start"] == "2024-05-01T12:00:00.000Z" and results["end"] == "2024-05-01T12:00:05.500Z"
    assert results["duration_s"] == 5.5 and results["measured_s"] == 5.5 and results["stats_start"] == results["start"]
    assert results["passed"] is True and results["exit_code"] == 0 and results["warnings"] == ["slow"]
    total = results["total"]
    assert set(total) == ENTRY_KEYS and (total["method"], total["name"]) == ("", "Aggregated")
    assert (total["requests"], total["failures"]) == (60, 5)
    assert total["rps"] == round(60 / 5.5, 3) and total["failure_ratio"] == round(5 / 60, 6)
    assert list(total["percentiles"]) == PERCENTILE_KEYS
    assert [(e["method"], e["name"]) for e in results["requests"]] == [("GET", "/items"), ("POST", "/login")]
    assert all(set(e) == ENTRY_KEYS for e in results["requests"])
    assert len(results["series"]) == 5 and results["series"][-1]["users"] == 5
    [failure] = results["errors"]
    assert (failure["method"], failure["name"], failure["count"]) == ("GET", "/items", 5)
    [exception] = results["exceptions"]
    assert exception["type"] == "ZeroDivisionError" and "Traceback" in exception["traceback"]


def test_a_run_without_requests_gives_nulls_not_zeros_or_nan() -> None:
    clock = Clock(1_000_000.0)
    stats = RequestStats(clock=clock)
    stats.entry("GET", "/never")  # known, never requested (as after --reset-stats)
    stats.sample(1_000_001.5, users=0)
    results = results_of(stats, 1_000_000.0, 1_000_000.0, exit_code=1, thresholds=[]).to_dict()
    json.dumps(results, allow_nan=False)
    for entry in (results["total"], results["requests"][0]):
        assert entry["requests"] == 0 and entry["rps"] == 0.0
        for key in ("avg_ms", "min_ms", "max_ms", "median_ms", "stddev_ms", "avg_bytes"):
            assert entry[key] is None, key
        assert all(value is None for value in entry["percentiles"].values())
        assert entry["histogram"]["min"] is None and entry["histogram"]["count"] == 0
    assert results["passed"] is False and results["duration_s"] == 0.0
    assert results["series"][0]["p95_ms"] is None


def test_rates_are_over_the_time_counted_after_a_reset() -> None:
    clock = Clock(2_000_000.0)
    stats = RequestStats(clock=clock)
    stats.log("GET", "/warmup", 5.0, 0, None)
    clock.now += 10
    stats.reset()
    for _ in range(20):
        clock.now += 0.5
        stats.log("GET", "/a", 5.0, 0, None)
    results = results_of(stats, 2_000_000.0, clock.now).to_dict()
    assert results["duration_s"] == 20.0 and results["measured_s"] == 10.0
    assert results["stats_start"] == iso_time(2_000_010.0)
    assert results["total"]["requests"] == 20 and results["total"]["rps"] == 2.0


def test_passed_needs_exit_code_zero_and_every_threshold() -> None:
    stats, start, end = run_stats(seconds=1)
    verdict = {"expression": "p95 < 500ms", "metric": "p95", "operator": "<", "limit": 500.0}
    verdicts = [{**verdict, "passed": True}, {**verdict, "passed": False}]
    assert not results_of(stats, start, end, thresholds=verdicts).passed
    assert not results_of(stats, start, end, exit_code=1).passed
    assert results_of(stats, start, end, thresholds=[]).passed
    with pytest.raises(ValueError, match="total"):
        results_of(stats, start, end, extra={"total": {}})


def test_write_and_read_back(tmp_path: Path) -> None:
    stats, start, end = run_stats()
    results = results_of(stats, start, end)
    path = tmp_path / "results.json"
    write_json(results, path)
    assert read_json(path) == results and json.loads(path.read_text()) == results.to_dict()
    write_json(results.model_copy(update={"scenario": "second"}), path)  # replaces the file whole
    assert read_json(str(path)).scenario == "second"
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]  # no temp file left behind


def test_write_json_refuses_nan(tmp_path: Path) -> None:
    results = results_of(*run_stats(seconds=1)).model_copy(update={"duration_s": float("nan")})
    with pytest.raises(ValueError):
        write_json(results, tmp_path / "bad.json")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no such results file"),
        ("", "empty file"),
        ('{"format": "lrun-results", "format_version": 1, "total": {"name": "Aggr', "truncated"),
        ('{"format": "lrun-results", "format_version": 1, "requests": [', "truncated"),
        ("{'single': 'quotes'}", "not JSON"),
        ('{"stats": []}', "not an lrun results file"),
        ("[1, 2, 3]", "not an lrun results file"),
        ('{"format": "lrun-results", "format_version": 2}', "newer lrun"),
        ('{"format": "lrun-results"}', "unknown results format version"),
    ],
)
def test_read_json_says_what_is_wrong(tmp_path: Path, content: str | None, message: str) -> None:
    path = tmp_path / "results.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(LrunError, match=message) as caught:
        read_json(path)
    assert str(path) in str(caught.value)


def test_read_json_of_a_real_file_cut_short(tmp_path: Path) -> None:
    stats, start, end = run_stats()
    path = tmp_path / "results.json"
    write_json(results_of(stats, start, end), path)
    text = path.read_text()
    path.write_text(text[: len(text) // 2])
    with pytest.raises(LrunError, match="truncated"):
        read_json(path)


def test_read_json_of_a_directory_or_binary(tmp_path: Path) -> None:
    with pytest.raises(LrunError, match="directory"):
        read_json(tmp_path)
    binary = tmp_path / "x.json"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(LrunError, match="not an lrun results file"):
        read_json(binary)


# ----------------------------------------------------------------------------------------------- CSV


def read_csv(path: Path) -> list[list[str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


def test_csv_headers_are_locusts_exactly(tmp_path: Path) -> None:
    stats, start, end = run_stats()
    paths = write_csv(results_of(stats, start, end), str(tmp_path / "run"))
    assert [p.name for p in paths] == [
        "run_stats.csv",
        "run_stats_history.csv",
        "run_failures.csv",
        "run_exceptions.csv",
    ]
    headers = [read_csv(p)[0] for p in paths]
    assert headers == [
        LOCUST_STATS.split(","),
        LOCUST_HISTORY.split(","),
        LOCUST_FAILURES.split(","),
        LOCUST_EXCEPTIONS.split(","),
    ]
    assert (tmp_path / "run_stats.csv").read_bytes().startswith(LOCUST_STATS.encode() + b"\r\n")  # csv's CRLF


def test_csv_stats_rows_parse_back(tmp_path: Path) -> None:
    stats, start, end = run_stats()
    stats.entry("DELETE", "/cart")  # no requests: N/A percentiles, zeros elsewhere
    results = results_of(stats, start, end)
    write_csv(results, str(tmp_path / "run"))
    header, *rows = read_csv(tmp_path / "run_stats.csv")
    assert [(r[0], r[1]) for r in rows] == [
        ("DELETE", "/cart"),
        ("GET", "/items"),
        ("POST", "/login"),
        ("", "Aggregated"),
    ]
    by_name = {r[1]: dict(zip(header, r, strict=True)) for r in rows}
    items = by_name["/items"]
    entry = next(e for e in results.to_dict()["requests"] if e["name"] == "/items")
    assert int(items["Request Count"]) == 50 and int(items["Failure Count"]) == 5
    assert int(items["Median Response Time"]) == round(entry["median_ms"])
    assert float(items["Average Response Time"]) == entry["avg_ms"] == 24.5
    assert float(items["Min Response Time"]) == 20.0 and float(items["Max Response Time"]) == 29.0
    assert float(items["Average Content Size"]) == 1500.0
    assert float(items["Requests/s"]) == entry["rps"] and float(items["Failures/s"]) == entry["failures_per_s"]
    assert [int(items[f"{k}%"]) for k in PERCENTILE_KEYS] == [round(entry["percentiles"][k]) for k in PERCENTILE_KEYS]
    cart = by_name["/cart"]
    assert [cart[f"{k}%"] for k in PERCENTILE_KEYS] == ["N/A"] * 11
    assert (cart["Request Count"], cart["Median Response Time"], cart["Min Response Time"]) == ("0", "0", "0")
    assert cart["Average Response Time"] == "0.0" and cart["Requests/s"] == "0.0"
    aggregated = by_name["Aggregated"]
    assert int(aggregated["Request Count"]) == 60 and int(aggregated["100%"]) == 84


def test_csv_history_failures_and_exceptions(tmp_path: Path) -> None:
    stats, start, end = run_stats()
    write_csv(results_of(stats, start, end), str(tmp_path / "run"))
    header, *rows = read_csv(tmp_path / "run_stats_history.csv")
    assert len(rows) == 5 and all(r[2:4] == ["", "Aggregated"] for r in rows)
    first = dict(zip(header, rows[0], strict=True))
    assert int(first["Timestamp"]) == int(start) + 1 and int(first["User Count"]) == 1
    assert first["Requests/s"] == "12.000000" and first["Failures/s"] == "1.000000"  # Locust's "%2f"
    assert int(first["Total Request Count"]) == 12 and int(first["Total Failure Count"]) == 1
    assert int(first["100%"]) == 80
    assert float(first["Total Average Content Size"]) == pytest.approx((10 * 1500 + 2 * 200) / 12, abs=1e-3)
    _, *failures = read_csv(tmp_path / "run_failures.csv")
    assert failures == [["GET", "/items", "HTTP 500 Internal Server Error", "5"]]
    _, *exceptions = read_csv(tmp_path / "run_exceptions.csv")
    [[count, message, traceback, nodes]] = exceptions
    assert (count, message, nodes) == ("1", "ZeroDivisionError: division by zero", "local")
    assert traceback.startswith("Traceback (most recent call last):")


def test_csv_full_history_adds_a_row_per_entry(tmp_path: Path) -> None:
    stats, start, end = run_stats(full_history=True)
    results = results_of(stats, start, end)
    json.dumps(results.to_dict(), allow_nan=False)
    write_csv(results, str(tmp_path / "run"), full_history=True)
    _, *rows = read_csv(tmp_path / "run_stats_history.csv")
    assert [r[3] for r in rows[:3]] == ["/items", "/login", "Aggregated"]
    assert len(rows) == 15 and {r[0] for r in rows[:3]} == {str(int(start) + 1)}
    login = rows[1]
    assert login[2] == "POST" and login[4] == "2.000000" and login[6] == "80"
    # without per-entry series in the results, full history falls back to the Aggregated rows
    write_csv(results_of(*run_stats()), str(tmp_path / "plain"), full_history=True)
    assert len(read_csv(tmp_path / "plain_stats_history.csv")) == 6


def test_csv_of_a_run_without_requests(tmp_path: Path) -> None:
    stats = RequestStats(clock=Clock(5_000_000.0))
    stats.sample(5_000_001.2, users=0)
    write_csv(results_of(stats, 5_000_000.0, 5_000_001.2), str(tmp_path / "none"))
    _, aggregated = read_csv(tmp_path / "none_stats.csv")
    assert aggregated[:4] == ["", "Aggregated", "0", "0"] and aggregated[-11:] == ["N/A"] * 11
    _, history = read_csv(tmp_path / "none_stats_history.csv")
    assert history[6:17] == ["N/A"] * 11 and history[17:] == ["0", "0", "0", "0.0", "0", "0", "0"]


def test_csv_into_a_missing_directory_is_a_user_error(tmp_path: Path) -> None:
    stats, start, end = run_stats(seconds=1)
    with pytest.raises(LrunError, match="cannot write"):
        write_csv(results_of(stats, start, end), str(tmp_path / "nowhere" / "run"))
