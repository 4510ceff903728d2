"""Results for report tests, built with the real statistics code plus the optional keys written by hand.

The optional keys (transactions, checks, rendezvous, pools, workers) follow the shapes documented in
``runner.report.results``; other parts of lrun write them, the report only reads them.
"""

from __future__ import annotations

import copy
from typing import Any

from runner.monitor.local import ResourceRule, ResourceWatch
from runner.report.model import Results
from runner.report.results import build_results
from runner.stats import RequestStats

START = 1_714_564_800.0  # 2024-05-01T12:00:00Z


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _phases(ms: float) -> tuple[float, ...]:
    """A kept-alive response's phases: 0.2 ms sending, 70 % of the rest waiting for the first byte."""
    return (0.0, 0.0, 0.0, 0.2, (ms - 0.2) * 0.7, (ms - 0.2) * 0.3)


def run_results(seconds: int = 30, *, per_second: int = 10, full_history: bool = False, slow: float = 1.0) -> Results:
    """A run of ``seconds`` seconds: GET /items, POST /login (slower), GET /fail (always 500), one exception."""
    clock = Clock(START)
    stats = RequestStats(clock=clock, full_history=full_history)
    for second in range(seconds):
        for i in range(per_second):
            clock.now = START + second + i / per_second
            ms = (20.0 + i) * slow
            stats.log("GET", "/items", ms, 1500, None, timings=_phases(ms))
            if i % 5 == 0:
                ms = (80.0 + second % 50) * slow
                stats.log("POST", "/login", ms, 200, None, timings=_phases(ms))
            if i == 9:
                stats.log("GET", "/fail", 3.0, 10, "HTTP 500 Internal Server Error")
        stats.sample(START + second + 1.0, users=min(10, second + 1))
    try:
        raise ZeroDivisionError("division by zero")
    except ZeroDivisionError as error:
        stats.log_error(error, "shopper")
    return build_results(
        stats,
        scenario="shop checkout",
        scenario_file="scenarios/shop.yaml",
        host="http://127.0.0.1:8089",
        start=START,
        end=START + seconds,
        users_max=10,
        load={"users": 10, "spawn_rate": 1.0, "run_time_s": float(seconds)},
        command="lrun scenarios/shop.yaml -u 10 -t 30s --html report.html",
        thresholds=[
            {
                "expression": "p95 < 500ms",
                "request": None,
                "metric": "p95",
                "operator": "<",
                "limit": 500.0,
                "actual": 95.0,
                "passed": True,
                "detail": "measured 95.0 ms",
                "abort": False,
            },
            {
                "expression": "errors < 1%",
                "request": None,
                "metric": "errors",
                "operator": "<",
                "limit": 0.01,
                "actual": 0.0816,
                "passed": False,
                "detail": "measured 8.16%",
                "abort": False,
            },
            {
                "expression": "p99 < 800ms",
                "request": "POST /checkout",
                "metric": "p99",
                "operator": "<",
                "limit": 800.0,
                "actual": None,
                "passed": False,
                "detail": "no request named 'POST /checkout' was made",
                "abort": True,
            },
        ],
        stop_reason="run time reached",
        exit_code=1,
        extra={"warnings": ["resource threshold generator_cpu above 90% for 10s: measured 97.0% for 10s"]},
    )


def _resources(seconds: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    series = []
    for second in range(seconds):
        series.append(
            {
                "t": START + second + 1,
                "process_cpu_percent": 40.0 + (57.0 if 5 <= second < 16 else 0.0),
                "process_rss_bytes": 60 * 2**20 + second * 1000,
                "system_cpu_percent": 35.0,
                "system_memory_used_bytes": 3 * 2**30,
                "system_memory_total_bytes": 8 * 2**30,
                "targets": {
                    "nginx": {"cpu_percent": 12.5, "rss_bytes": 400 * 2**20 + second * 2**20, "processes": 3},
                    "4321": {"cpu_percent": None, "rss_bytes": None, "processes": 0},
                },
            }
        )
    rules = [
        ResourceRule.build("generator_cpu", "90%", for_s=10),
        ResourceRule.build("target_memory", "500MiB", process="nginx", action="abort"),
        ResourceRule.build("system_cpu", "95%"),
    ]
    watch = ResourceWatch(rules)
    for sample in series:
        watch.update(sample)
    resources = {
        "interval_s": 1.0,
        "cpu_count": 2,
        "available": True,
        "series": series,
        "targets": [
            {"spec": "nginx", "label": "nginx", "pid": None, "name": "nginx", "pids": [10, 11, 12], "found": True},
            {"spec": "4321", "label": "4321", "pid": 4321, "name": None, "pids": [4321], "found": False},
        ],
        "peak": {
            "process_cpu_percent": 97.0,
            "process_rss_bytes": series[-1]["process_rss_bytes"],
            "system_cpu_percent": 35.0,
            "system_memory_used_bytes": 3 * 2**30,
            "targets": {
                "nginx": {"cpu_percent": 12.5, "rss_bytes": series[-1]["targets"]["nginx"]["rss_bytes"]},
                "4321": {"cpu_percent": None, "rss_bytes": None},
            },
        },
    }
    return resources, watch.verdicts()


def full_results(seconds: int = 30, **options: Any) -> Results:
    """``run_results`` with every optional key: resources, transactions, checks, rendezvous, pools, workers."""
    results = run_results(seconds, **options).to_dict()
    results["resources"], results["resource_thresholds"] = _resources(seconds)
    login = next(e for e in results["requests"] if e["name"] == "/login")
    transaction = {**copy.deepcopy(login), "type": "transaction", "method": "", "name": "checkout", "think_s": 12.5}
    transaction.pop("series", None)
    results["transactions"] = {
        "total": {**copy.deepcopy(transaction), "name": "Aggregated"},
        "entries": [transaction],
        "series": [{**p, "rps": p["rps"] / 5} for p in results["series"]],
        "errors": [
            {
                "method": "",
                "name": "checkout",
                "message": "POST /login failed",
                "count": 2,
                "first_seen": START + 3.0,
                "last_seen": START + 9.0,
                "other": False,
            }
        ],
    }
    results["checks"] = [
        {"method": "GET", "name": "/items", "check": "status 200", "passed": 300, "failed": 0},
        {"method": "GET", "name": "/fail", "check": "status 200", "passed": 0, "failed": 30},
        {"method": "POST", "name": "/login", "check": "jsonpath $.status equals 'ok'", "passed": 58, "failed": 2},
    ]
    results["rendezvous"] = [
        {
            "name": "flash_sale",
            "policy": "50 users",
            "timeout_s": 30.0,
            "arrivals": 75,
            "releases": [
                {"t": START + 10.0, "released": 50, "reason": "policy", "waited_ms": 4100.0},
                {"t": START + 25.0, "released": 25, "reason": "timeout", "waited_ms": 30000.0},
            ],
        }
    ]
    results["pools"] = [
        {
            "name": "accounts",
            "source": "data/accounts.csv",
            "rows": 100,
            "order": "unique",
            "update": "once",
            "when_empty": "stop_user",
            "handed_out": 100,
            "dry": True,
            "dry_at": START + 20.0,
        },
        {
            "name": "items",
            "source": "inline",
            "rows": 3,
            "order": "random",
            "update": "each_iteration",
            "when_empty": "cycle",
            "handed_out": 412,
            "dry": False,
            "dry_at": None,
        },
    ]
    results["workers"] = [
        {
            "id": f"worker-{n}",
            "host": "127.0.0.1",
            "state": "running" if n else "missing",
            "users": 5,
            "cpu_percent": 50.0 + n,
            "memory_bytes": (70 + n) * 2**20,
            "resources": [
                {**s, "process_cpu_percent": s["process_cpu_percent"] / 2 + n} for s in results["resources"]["series"]
            ],
        }
        for n in range(2)
    ]
    return Results.model_validate(results)


def empty_results() -> Results:
    """A run that made no request at all (the target refused every connection before the first one, say)."""
    stats = RequestStats(clock=Clock(START))
    return build_results(
        stats,
        scenario="nothing",
        scenario_file="nothing.yaml",
        host="http://127.0.0.1:9",
        start=START,
        end=START + 2.0,
        users_max=0,
        load={"users": 0},
        command="lrun nothing.yaml",
        thresholds=[],
        stop_reason="all users finished",
        exit_code=1,
        extra={"warnings": ["no request was made"]},
    )
