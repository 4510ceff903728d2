"""One results assembly: the same short test run through the CLI and through the web UI gives the same results
document, key by key, and the document the web UI gives while the test runs has every part the end has.

Real ``lrun run`` and ``lrun --web`` processes against the demo target on loopback. What legitimately differs is
left out by name: the times (start, end, durations, series, response times, resource samples: they depend on
when and how fast the machine ran) and the command line (``lrun run …`` beside ``lrun … --web``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from helpers import write
from web_process import WebLrun, http, wait_for

from conftest import run_lrun

pytestmark = pytest.mark.e2e

SCENARIO = """
name: one results
thresholds:
  - errors < 1%
  - {expect: "p95 < 10s", request: GET /items}
pools:
  sizes: {rows: [S, M, L], order: sequential, when_empty: cycle}
users:
  shopper:
    think: 0.3s
    tasks:
      - sequence:
          - transaction: browse
            steps:
              - get: /items?size={{ sizes.value }}
                name: /items
                check: {status: 200}
              - get: /about
"""

KEYED_BY_VALUE = {"counts", "percentiles"}  # a histogram's buckets, the percentiles reached: keys that are data
ITERATIONS = 4
USERS = 2
TIMING = {"start", "end", "duration_s", "stats_start", "measured_s", "command", "series", "resources", "saturation"}


def timed(key: str) -> bool:
    """A figure that depends on how fast the target answered and when: times, rates, sizes per second, series."""
    return key.endswith(("_ms", "_s", "rps")) or key in {"series", "histogram", "percentiles", "t", "dry_at"}


def shape(value: Any) -> Any:
    """The keys of a document, recursively (a list: the keys its items have, together). Without the series: their
    points are timing, and an entry's own series is kept by the web UI always (for its charts), by the CLI with
    --csv-full-history (and for requests only)."""
    if isinstance(value, dict):
        return {key: None if key in KEYED_BY_VALUE else shape(item) for key, item in value.items() if key != "series"}
    if isinstance(value, list):
        merged: dict[str, Any] = {}
        for item in value:
            if isinstance(item, dict):
                merged.update(shape(item))
        return [merged] if merged else []
    return None


def steady(results: dict[str, Any]) -> dict[str, Any]:
    """``results`` without what depends on timing: times, response times, the machine's figures."""

    def strip(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if not timed(k)}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    kept = {k: strip(v) for k, v in results.items() if k not in TIMING}
    kept["thresholds"] = [{k: t[k] for k in ("expression", "request", "passed", "abort")} for t in kept["thresholds"]]
    kept["warnings"] = [w for w in kept["warnings"] if "CPU" not in w and "saturat" not in w]  # the busy machine's
    kept["user_counts"].pop("ended_early")  # a user whose iterations ended before the other's: timing
    return kept


def test_the_cli_and_the_web_ui_give_the_same_results(tmp_path: Path, demo_url: str) -> None:
    scenario = write(tmp_path, SCENARIO)
    out = tmp_path / "cli.json"
    load = ["-u", str(USERS), "-r", "20", "--iterations", str(ITERATIONS), "-H", demo_url]
    # --csv-full-history: each entry's own series, as the web UI always keeps them (for its charts)
    ran = run_lrun("run", str(scenario), *load, "--json", str(out), "--only-summary", "--csv-full-history")
    assert out.exists(), ran.stdout + ran.stderr
    cli = json.loads(out.read_text())

    with WebLrun(str(scenario), *load) as web:
        form = {"user_count": USERS, "spawn_rate": 20, "host": demo_url}
        started = http(f"{web.url}/swarm", method="POST", data=form)
        assert started.status == 200, started.text
        during = wait_for(  # the results downloaded while the test runs: built by the same assembly
            lambda: (r := http(f"{web.url}/api/runs/1/results.json").json())["total"]["requests"] > 0 and r,
            what="requests counted",
        )
        wait_for(lambda: http(f"{web.url}/stats/requests").json()["state"] == "stopped", what="the test's end")
        final = http(f"{web.url}/api/runs/1/results.json").json()

    requests = USERS * ITERATIONS * 2
    assert cli["total"]["requests"] == final["total"]["requests"] == requests, (cli["total"], final["total"])
    assert cli["exit_code"] == final["exit_code"] == 0 and cli["stop_code"] == final["stop_code"]
    assert shape(final) == shape(cli), _diff(shape(final), shape(cli))
    assert steady(final) == steady(cli), _diff(steady(final), steady(cli))
    # while running: every part of the end but the load's verdict (judged once the test ended), "running"
    assert during["stop_reason"] == "running"
    assert set(cli) - set(during) == {"load_warnings"} & set(cli)
    for part in ("saturation", "user_counts", "interrupted", "resource_thresholds", "checks", "pools"):
        assert part in during, part
    assert during["load"] == cli["load"] and during["load"]["iterations"] == ITERATIONS


def _diff(a: Any, b: Any, path: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = [f"{path}.{k}: only in one" for k in set(a) ^ set(b)]
        return out + [d for k in set(a) & set(b) for d in _diff(a[k], b[k], f"{path}.{k}")]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b, strict=True)) for d in _diff(x, y, f"{path}[{i}]")]
    return [] if a == b else [f"{path}: {a!r} != {b!r}"[:300]]
