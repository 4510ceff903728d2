"""Honest numbers under overload: the run time is a deadline, a starved event loop is flagged, CPU figures and
open-model lateness are measured, not guessed. Real lrun processes against a real (slow-ish) server on loopback."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from helpers import demo_reset, demo_stats, write

from conftest import lrun_command, run_lrun
from runner.engine.saturation import LoopLag, Saturation

# A gevent HTTP/1.1 server that answers every request after DELAY seconds (without holding a thread) and keeps,
# for /__stats, how many requests it received and when the last one arrived (time.time(): lrun's clock too).
SLOW_SERVER = r"""
import json, sys, time
import gevent
from gevent.pywsgi import WSGIServer

DELAY = float(sys.argv[1])
seen = {"count": 0, "last": 0.0}
BIG = json.dumps([{"id": i, "name": f"item {i}", "tags": ["a", "b"]} for i in range(4000)]).encode()  # 200 KB

def app(environ, start_response):
    if environ["PATH_INFO"] == "/__stats":
        body = json.dumps(seen).encode()
    else:
        seen["count"] += 1
        seen["last"] = time.time()
        gevent.sleep(DELAY)
        body = BIG if environ["PATH_INFO"] == "/json" else b"ok"
    start_response("200 OK", [("Content-Length", str(len(body)))])
    return [body]

server = WSGIServer(("127.0.0.1", 0), app, log=None, error_log=None, backlog=4096)
server.start()
print(server.server_port, flush=True)
server.serve_forever()
"""


# each response costs lrun a few ms of CPU (a 200 KB JSON body parsed for an extractor), the server little
PARSE_HEAVY = "users: {u: {sequence: [{get: /json, extract: {x: {jsonpath: '$[0].id'}}}, {get: /a}]}}\n"


@pytest.fixture
def slow_server() -> Iterator[str]:
    """The slow server in its own process (50 ms a response); its URL."""
    process = subprocess.Popen([sys.executable, "-c", SLOW_SERVER, "0.05"], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        port = int(process.stdout.readline())
        yield f"http://127.0.0.1:{port}"
    finally:
        process.kill()
        process.wait(10)


def server_stats(url: str) -> dict:
    with urllib.request.urlopen(f"{url}/__stats", timeout=10) as response:
        return json.loads(response.read())


def test_run_time_is_a_deadline_under_overload(tmp_path: Path, slow_server: str) -> None:
    """300 users with no think time, each response a 200 KB JSON body to parse: lrun's event loop runs seconds
    late. -t 6s --stop-timeout 1s still ends on time (it took 9.5-11 s before), and nothing is sent after it."""
    scenario = write(tmp_path, PARSE_HEAVY, "s.yaml")
    out = tmp_path / "r.json"
    args = ["-H", slow_server, "-u", "300", "-r", "1000", "-t", "6s", "--stop-timeout", "1s", "--json", str(out)]
    result = run_lrun(str(scenario), *args, "--only-summary", timeout=120)
    results = json.loads(out.read_text())
    server = server_stats(slow_server)
    start = datetime.fromisoformat(results["start"]).timestamp()
    assert server["count"] > 0, result.stdout + result.stderr
    # no request begins after the run time plus the stop timeout (1.5 s of margin for a starved loop)
    assert server["last"] - start < 6.0 + 1.0 + 1.5, (server["last"] - start, result.stderr[-2000:])
    # the run ends within the run time + the stop timeout + a generous margin
    assert results["duration_s"] < 6.0 + 1.0 + 3.0, results["duration_s"]
    # requests cut off at the deadline are not counted: lrun never counts more than the server received
    assert 0 < results["total"]["requests"] <= server["count"]
    assert results["stop_reason"] == "run time reached"


@pytest.fixture
def cpu_hog() -> Iterator[subprocess.Popen]:
    """A process that spins on CPU 0 until ended by its PID."""
    process = subprocess.Popen(["taskset", "-c", "0", sys.executable, "-c", "while True: pass"])
    try:
        yield process
    finally:
        process.kill()
        process.wait(10)


@pytest.mark.skipif(not shutil.which("taskset") or (os.cpu_count() or 1) < 2, reason="needs taskset and 2 CPUs")
def test_a_generator_sharing_its_core_is_flagged(tmp_path: Path, slow_server: str, cpu_hog: subprocess.Popen) -> None:
    """lrun pinned onto the core a CPU hog spins on: it says it is saturated, with the lag it measured."""
    # each response costs lrun a few ms of CPU (a 200 KB JSON body parsed for an extractor), the server little
    scenario = write(
        tmp_path, "users: {u: {sequence: [{get: /json, extract: {x: {jsonpath: '$[0].id'}}}]}}\n", "s.yaml"
    )
    out, html = tmp_path / "r.json", tmp_path / "r.html"
    command = ["taskset", "-c", "0", *lrun_command(), str(scenario), "-H", slow_server, "-u", "50", "-r", "50"]
    command += ["-t", "6s", "--json", str(out), "--html", str(html), "--only-summary"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, env={**os.environ, "NO_COLOR": "1"})
    results = json.loads(out.read_text())
    saturation = results["saturation"]
    assert saturation["saturated"], (saturation, result.stdout[-3000:])
    assert saturation["loop_lag_p50_ms"] > saturation["loop_lag_limit_ms"]
    assert saturation["loop_lag_p99_ms"] >= saturation["loop_lag_p50_ms"] and saturation["saturated_s"] >= 1
    assert any("lrun is saturated" in w for w in results["warnings"])
    assert "Load generator: SATURATED" in result.stdout
    assert "lrun was saturated" in html.read_text()
    # the server answers in 50 ms: what lrun measured above that is its own waiting
    print(f"lrun p50 {results['total']['median_ms']} ms vs server 50 ms; loop lag p50 {saturation['loop_lag_p50_ms']}")


@pytest.mark.skipif(not shutil.which("taskset") or (os.cpu_count() or 1) < 2, reason="needs taskset and 2 CPUs")
def test_a_saturated_worker_says_so_in_the_masters_results(
    tmp_path: Path, slow_server: str, cpu_hog: subprocess.Popen
) -> None:
    """--processes 1 on the hog's core: the worker measures its own loop, and its warning reaches the results."""
    scenario = write(tmp_path, PARSE_HEAVY, "s.yaml")
    out = tmp_path / "r.json"
    command = ["taskset", "-c", "0", *lrun_command(), str(scenario), "-H", slow_server, "-u", "200", "-r", "200"]
    command += ["-t", "6s", "--processes", "1", "--json", str(out), "--only-summary"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, env={**os.environ, "NO_COLOR": "1"})
    warnings = json.loads(out.read_text())["warnings"]
    assert any("lrun is saturated" in w and "(worker " in w for w in warnings), (warnings, result.stderr[-2000:])


# ---------------------------------------------------------------------------------------------- open model


def test_open_model_jitter_is_not_lateness_and_max_users_is_blamed_only_when_busy(
    tmp_path: Path, demo_url: str
) -> None:
    """20/s with room for 50 users: a scheduler's millisecond is jitter, reported as such, and max_users is not
    blamed; 20/s of 150 ms requests with 2 slots: arrivals wait for a slot, and that is what the summary says."""
    roomy = write(tmp_path, "host: demo\nload: {arrival_rate: 20, run_time: 2s, max_users: 50}\n"
                  "users: {u: {sequence: [{get: /items}]}}\n", "roomy.yaml")  # fmt: skip
    out = tmp_path / "roomy.json"
    result = run_lrun(str(roomy), "-H", demo_url, "--json", str(out), "--stop-timeout", "5s")
    arrivals = json.loads(out.read_text())["arrivals"]
    assert result.returncode == 0, result.stdout + result.stderr
    assert arrivals["started"] == arrivals["planned"] == 40
    assert arrivals["late_for_slot"] == 0 and "max_users" not in result.stdout
    assert arrivals["late"] == arrivals["late_by_lrun"] and arrivals["late_tolerance_ms"] == 10.0
    assert 0 <= arrivals["jitter_p50_ms"] <= arrivals["jitter_p99_ms"] <= arrivals["jitter_max_ms"]
    assert "start jitter (arrivals with a free slot): p50" in result.stdout

    tight = write(tmp_path, "host: demo\nload: {arrival_rate: 20, run_time: 2s, max_users: 2}\n"
                  "users: {u: {sequence: [{get: /slow?ms=150}]}}\n", "tight.yaml")  # fmt: skip
    out = tmp_path / "tight.json"
    result = run_lrun(str(tight), "-H", demo_url, "--json", str(out))
    arrivals = json.loads(out.read_text())["arrivals"]
    assert arrivals["late_for_slot"] > 0 and arrivals["late"] == arrivals["late_for_slot"] + arrivals["late_by_lrun"]
    assert f"{arrivals['late_for_slot']} late arrivals waited for a free user slot (max_users)" in result.stdout


# ---------------------------------------------------------------------------------------------- the judgement


def test_saturation_is_judged_on_the_last_seconds_of_loop_lag() -> None:
    warnings: list[str] = []
    lag = LoopLag()
    saturation = Saturation(warnings.append, lag)
    saturation.check()
    assert not saturation.saturated and saturation.results().loop_lag_p50_ms is None  # nothing measured yet
    for i in range(30):  # 3 s of a healthy loop, one garbage collection among them
        lag.record(200.0 if i == 10 else 1.0, now=i * 0.1)
    assert lag.window_median(now=3.0) == 1.0
    saturation.check()
    assert not saturation.saturated and warnings == []
    for i in range(5):  # a starved loop probes seldom: five probes in 3 s, each far late
        lag.record(400.0, now=3.5 + i * 0.6)
    assert lag.window_median(now=6.5) == 400.0
    saturation.check()
    saturation.check()
    results = saturation.results().model_dump()
    assert results["saturated"] and results["saturated_s"] == 2.0 and results["loop_lag_max_ms"] == 400.0
    assert results["probes"] == 35 and results["loop_lag_p99_ms"] == 400.0
    assert len(warnings) == 1 and "event loop ran 400 ms late" in warnings[0] and "--processes" in warnings[0]


def test_spawn_rate_and_arrivals_that_slip() -> None:
    warnings: list[str] = []
    saturation = Saturation(warnings.append)
    saturation.spawn_slipped(100, 100.0, 1.2)  # about on time
    saturation.spawn_slipped(100, float("inf"), 30.0)  # "all at once" has no rate to miss
    for slipped in range(1, 5):
        saturation.arrival_slipped(30.0, slipped, 100)  # a few late starts: a pause, not saturation
    assert not saturation.saturated and warnings == []
    saturation.spawn_slipped(100, 100.0, 10.0)
    spawn = saturation.results().model_dump(exclude_unset=True)["spawn"]
    assert spawn == {"users": 100, "asked_rate": 100.0, "reached_rate": 10.0}
    saturation.arrival_slipped(30.0, 6, 100)
    results = saturation.results().model_dump()
    assert results["arrivals_slipped"] == 6 and len(results["reasons"]) == 2
    assert len(warnings) == 1 and "spawn rate not reached: 100 users at 100/s took 10.0s" in warnings[0]


# ---------------------------------------------------------------------------------------------- reports


def test_reports_say_whether_lrun_kept_up_and_skip_empty_transactions() -> None:
    from lxml import html as lxml_html
    from report_data import run_results

    from runner.report import console
    from runner.report.html import render_html
    from runner.report.model import Results, Saturation

    data = run_results(10).to_dict()
    series = [{**point, "rps": 0.0, "failures_per_s": 0.0} for point in data["series"]]
    no_transactions = {**data["total"], "type": "transaction", "requests": 0, "failures": 0, "rps": 0.0}
    data["transactions"] = {"total": no_transactions, "entries": [], "series": series, "errors": []}
    data["saturation"] = {
        "saturated": True,
        "reasons": ["its event loop ran 171 ms late (median of the last 3 s; over 20 ms is too much)"],
        "loop_lag_p50_ms": 380.16,
        "loop_lag_p99_ms": 1139.31,
        "loop_lag_max_ms": 1139.31,
        "loop_lag_limit_ms": 20.0,
    }
    data["pools"] = [
        {"name": "products", "source": "inline", "order": "random", "update": "each_iteration",
         "when_empty": "cycle", "rows": 5, "handed_out": 79, "dry": False}
    ]  # fmt: skip
    results = Results.model_validate(data)
    doc = lxml_html.fromstring(render_html(results))
    verdict = " ".join(" ".join(doc.get_element_by_id("verdict").itertext()).split())
    assert "lrun was saturated (event loop lag p50 380 ms, p99 1139 ms, max 1139 ms): its event loop ran 171" in verdict
    text = " ".join(" ".join(doc.itertext()).split())
    assert "transactions/s" not in text and "Transactions per second" not in text  # none in this scenario
    summary = console.summary(results)
    assert "Load generator: SATURATED (event loop lag p50 380 ms, p99 1139 ms, max 1139 ms)" in summary
    assert "Data pool products (random, 5 rows): rows handed out 79 times" in summary and "79 of 5" not in summary

    results.saturation = Saturation.model_validate(
        {**data["saturation"], "saturated": False, "reasons": [], "loop_lag_p50_ms": 0.4}
    )
    doc = lxml_html.fromstring(render_html(results))
    verdict = " ".join(" ".join(doc.get_element_by_id("verdict").itertext()).split())
    assert "The load generator kept up (event loop lag p50 0.40 ms" in verdict and "saturated" not in verdict
    assert "Load generator: kept up (event loop lag p50 0.40 ms" in console.summary(results)


def test_a_python_step_sends_nothing_after_the_deadline(tmp_path: Path, demo_url: str) -> None:
    """A call step looping over ``user.client`` with 0.2 s of CPU between requests (the runner's timers run late):
    a request it makes once the run's deadline passed is not sent. It asks for /items then, /about before."""
    (tmp_path / "steps.py").write_text(
        "import time\n"
        "def browse(user):\n"
        "    for _ in range(60):\n"
        "        user.client.get('/items' if time.monotonic() >= user.deadline else '/about')\n"
        "        began = time.perf_counter()\n"
        "        while time.perf_counter() - began < 0.2:\n"
        "            pass\n"
    )
    scenario = write(tmp_path, "python: steps.py\nusers: {u: {sequence: [{call: browse}]}}\n", "s.yaml")
    demo_reset(demo_url)
    args = ["-H", demo_url, "-u", "1", "-t", "2s", "--stop-timeout", "0.5s", "--only-summary"]
    result = run_lrun(str(scenario), *args, timeout=120)
    server = demo_stats(demo_url)["by_path"]
    assert server.get("GET /about", 0) > 3, result.stdout + result.stderr
    assert server.get("GET /items", 0) == 0, (server, result.stderr[-2000:])
