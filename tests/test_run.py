"""End to end: ``lrun run`` as a user runs it, against the demo target and a misbehaving server on loopback."""

from __future__ import annotations

import csv
import json
import signal
import socket
import socketserver
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import by_name, demo_reset, demo_stats, run_json, write

from conftest import ROOT, lrun_command, run_lrun

LOCUST_STATS_HEADER = (
    "Type,Name,Request Count,Failure Count,Median Response Time,Average Response Time,Min Response Time,"
    "Max Response Time,Average Content Size,Requests/s,Failures/s,50%,66%,75%,80%,90%,95%,98%,99%,99.9%,99.99%,100%"
)
LOCUST_HISTORY_HEADER = (
    "Timestamp,User Count,Type,Name,Requests/s,Failures/s,50%,66%,75%,80%,90%,95%,98%,99%,99.9%,99.99%,100%,"
    "Total Request Count,Total Failure Count,Total Median Response Time,Total Average Response Time,"
    "Total Min Response Time,Total Max Response Time,Total Average Content Size"
)


def test_counts_match_the_servers_own_count(tmp_path: Path, demo_url: str) -> None:
    path = write(
        tmp_path,
        """
host: demo
users:
  reader:
    think: 10ms  # long enough for all 8 users to be running at once
    sequence:
      - get: /items
      - get: "/items/{{ random_int(1, 10) }}"
        name: /items/[id]
      - get: /about
""",
    )
    demo_reset(demo_url)
    result, results = run_json(tmp_path, str(path), "-H", demo_url, "-u", "8", "-r", "100", "--iterations", "25")
    assert result.returncode == 0, result.stdout + result.stderr
    server = demo_stats(demo_url)["by_path"]
    mine = by_name(results)
    assert mine["GET /items"]["requests"] == server["GET /items"] == 8 * 25
    assert mine["GET /items/[id]"]["requests"] == server["GET /items/<id>"] == 8 * 25
    assert mine["GET /about"]["requests"] == server["GET /about"] == 8 * 25
    assert results["total"]["requests"] == sum(server.values()) == 600
    assert results["stop_reason"] == "all users finished"
    assert results["users_max"] == 8
    assert results["total"]["failures"] == 0 and results["passed"] is True


def test_weights_are_honoured(tmp_path: Path, demo_url: str) -> None:
    path = write(
        tmp_path,
        """
host: demo
users:
  a:
    weight: 1
    tasks: [{get: /about}]
  b:
    weight: 3
    tasks:
      - {weight: 1, get: /}
      - {weight: 2, get: /items}
      - {weight: 3, get: /json}
""",
    )
    result, results = run_json(tmp_path, str(path), "-H", demo_url, "-u", "8", "-r", "100", "--iterations", "300")
    assert result.returncode == 0, result.stdout + result.stderr
    counts = {name: entry["requests"] for name, entry in by_name(results).items()}
    assert counts["GET /about"] == 2 * 300  # 8 users at 1:3 are 2 and 6
    b_total = 6 * 300
    assert sum(counts[k] for k in ("GET /", "GET /items", "GET /json")) == b_total
    for name, share in (("GET /", 1 / 6), ("GET /items", 2 / 6), ("GET /json", 3 / 6)):
        assert abs(counts[name] / b_total - share) < 0.05, (name, counts)


def test_thresholds_decide_the_exit_code(tmp_path: Path, demo_url: str) -> None:
    scenario = """
host: demo
users:
  u:
    sequence: [{get: /items}, {get: /fail}]
thresholds:
  - p95 < 10s
  - {expect: "errors < {limit}", request: GET /fail}
  - {expect: "rps > 0", request: GET /items}
"""
    passing = write(tmp_path, scenario.replace("{limit}", "100.1%"), "pass.yaml")
    result, results = run_json(tmp_path, str(passing), "-H", demo_url, "-u", "2", "-i", "5")
    assert result.returncode == 0, result.stdout
    assert [t["passed"] for t in results["thresholds"]] == [True, True, True]
    assert "pass  p95 < 10s" in result.stdout

    failing = write(tmp_path, scenario.replace("{limit}", "50%"), "fail.yaml")
    result, results = run_json(tmp_path, str(failing), "-H", demo_url, "-u", "2", "-i", "5")
    assert result.returncode == 1
    verdict = results["thresholds"][1]
    assert (verdict["passed"], verdict["actual"], verdict["request"]) == (False, 1.0, "GET /fail")
    assert "FAIL  errors < 50% [GET /fail]: measured 100.00%" in result.stdout
    assert results["passed"] is False and results["exit_code"] == 1


def test_without_thresholds_failures_set_the_exit_code(tmp_path: Path, demo_url: str) -> None:
    path = write(tmp_path, "host: demo\nusers: {u: {sequence: [{get: /fail}]}}\n")
    result, results = run_json(tmp_path, str(path), "-H", demo_url, "-u", "1", "-i", "3")
    assert result.returncode == 1
    assert results["errors"][0]["message"] == "HTTP 500 Internal Server Error"
    assert results["errors"][0]["count"] == 3
    custom = run_lrun("run", str(path), "-H", demo_url, "-u", "1", "-i", "1", "--exit-code-on-error", "3")
    assert custom.returncode == 3


def test_an_aborting_threshold_stops_the_run(tmp_path: Path, demo_url: str) -> None:
    path = write(
        tmp_path,
        """
host: demo
users: {u: {think: 100ms, sequence: [{get: /fail}]}}
thresholds:
  - {expect: "errors < 10%", abort: true, delay: 1s}
""",
    )
    started = time.monotonic()
    result, results = run_json(tmp_path, str(path), "-H", demo_url, "-u", "2", "-t", "60s")
    assert result.returncode == 1
    assert time.monotonic() - started < 30  # stopped long before its run time
    assert results["stop_reason"].startswith("threshold errors < 10% failed")


def test_stop_test_checkpoint_ends_the_run(tmp_path: Path, demo_url: str) -> None:
    path = write(
        tmp_path,
        "host: demo\nusers: {u: {sequence: [{get: /items}, {get: /fail, check: {status: 200, on_fail: stop_test}}]}}\n",
    )
    result, results = run_json(tmp_path, str(path), "-H", demo_url, "-u", "3", "-t", "60s")
    assert result.returncode == 1
    assert results["stop_reason"].startswith("stop_test: status 500, expected 200")


def test_stages_ramp_up_hold_and_down(tmp_path: Path, demo_url: str) -> None:
    path = write(
        tmp_path,
        """
host: demo
load:
  stages:
    - {duration: 2s, users: 4}
    - {duration: 2s, users: 4}
    - {duration: 1s, users: 0}
users: {u: {think: 200ms, sequence: [{get: /items}]}}
""",
    )
    result, results = run_json(tmp_path, str(path), "-H", demo_url)
    assert result.returncode == 0, result.stdout + result.stderr
    assert results["stop_reason"] == "stages completed"
    assert results["users_max"] == 4
    users = [point["users"] for point in results["series"]]
    assert max(users) == 4 and users[-1] == 0
    assert 4.5 <= results["duration_s"] < 10
    series = results["series"]  # the run's part-second at the end has its point: the points add up
    assert sum(point["requests"] for point in series) == results["total"]["requests"] > 0
    assert series[-1]["interval_s"] <= 1 and all(point["interval_s"] == 1 for point in series[1:-1])


def test_the_last_points_show_the_users_that_ran_until_the_end(tmp_path: Path, demo_url: str) -> None:
    path = write(tmp_path, "host: demo\nusers: {u: {think: 100ms, sequence: [{get: /items}]}}\n")
    result, results = run_json(tmp_path, str(path), "-H", demo_url, "-u", "3", "-r", "100", "-t", "3s")
    assert result.returncode == 0, result.stdout + result.stderr
    series = results["series"]
    assert sum(point["requests"] for point in series) == results["total"]["requests"] > 0
    assert series[-1]["users"] == 3, series  # stopped by the run time: 3 ran to the end, not the 0 left after


def test_ctrl_c_still_writes_every_output(tmp_path: Path, demo_url: str) -> None:
    path = write(tmp_path, "host: demo\nusers: {u: {think: 50ms, sequence: [{get: /items}]}}\n")
    prefix = tmp_path / "run"
    process = subprocess.Popen(
        [
            *lrun_command(),
            "run",
            str(path),
            "-H",
            demo_url,
            "-u",
            "3",
            "-t",
            "60s",
            "--json",
            str(tmp_path / "r.json"),
            "--csv",
            str(prefix),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        deadline = time.monotonic() + 30
        for line in process.stderr:
            if "users running" in line or time.monotonic() > deadline:
                break
        time.sleep(1.5)
        process.send_signal(signal.SIGINT)
        stdout, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
    assert process.returncode == 0, stdout
    results = json.loads((tmp_path / "r.json").read_text())
    assert results["stop_reason"] == "interrupted" and results["total"]["requests"] > 0
    for suffix in ("stats", "stats_history", "failures", "exceptions"):
        assert (tmp_path / f"run_{suffix}.csv").exists()
    assert "Response time percentiles" in stdout


def test_csv_follows_locusts_layout(tmp_path: Path, demo_url: str) -> None:
    path = write(tmp_path, "host: demo\nusers: {u: {sequence: [{get: /items}, {get: /fail}]}}\n")
    prefix = tmp_path / "out"
    run_lrun("run", str(path), "-H", demo_url, "-u", "2", "-i", "4", "--csv", str(prefix), "--only-summary")
    stats = (tmp_path / "out_stats.csv").read_text().splitlines()
    assert stats[0] == LOCUST_STATS_HEADER
    assert (tmp_path / "out_stats_history.csv").read_text().splitlines()[0] == LOCUST_HISTORY_HEADER
    assert (tmp_path / "out_failures.csv").read_text().splitlines()[0] == "Method,Name,Error,Occurrences"
    assert (tmp_path / "out_exceptions.csv").read_text().splitlines()[0] == "Count,Message,Traceback,Nodes"
    rows = list(csv.DictReader(stats))
    assert [r["Name"] for r in rows] == ["/fail", "/items", "Aggregated"]
    assert rows[-1]["Type"] == "" and rows[-1]["Request Count"] == "16" and rows[-1]["Failure Count"] == "8"


def test_tags_select_tasks(tmp_path: Path, demo_url: str) -> None:
    path = write(
        tmp_path,
        """
host: demo
users:
  u:
    tasks:
      - {get: /items, tags: [browse]}
      - {get: /about, tags: [info]}
  other:
    tags: [info]
    sequence: [{get: /xml}]
""",
    )
    _, results = run_json(tmp_path, str(path), "-H", demo_url, "-u", "4", "-i", "5", "--tags", "browse")
    assert set(by_name(results)) == {"GET /items"}
    _, results = run_json(tmp_path, str(path), "-H", demo_url, "-u", "4", "-i", "5", "--exclude-tags", "info")
    assert set(by_name(results)) == {"GET /items"}


def test_settings_from_environment_and_config_file(tmp_path: Path, demo_url: str) -> None:
    path = write(tmp_path, "host: demo\nload: {users: 1}\nusers: {u: {sequence: [{get: /items}]}}\n")
    (tmp_path / "lrun.conf").write_text("users = 3\niterations = 2\nonly-summary = true\n")
    env_run = subprocess.run(
        [*lrun_command(), "run", str(path), "-H", demo_url, "--json", "r.json"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env={**__import__("os").environ, "LRUN_ITERATIONS": "4"},
    )
    assert env_run.returncode == 0, env_run.stderr
    results = json.loads((tmp_path / "r.json").read_text())
    assert results["load"]["users"] == 3  # from lrun.conf, over the scenario's 1
    assert results["total"]["requests"] == 3 * 4  # LRUN_ITERATIONS over lrun.conf's 2


def test_run_is_the_default_command(demo_url: str) -> None:
    result = run_lrun("scenarios/extract_jsonpath.yaml", "-H", demo_url, "-u", "1", "-i", "1", "--only-summary")
    assert result.returncode == 0, result.stderr
    assert "PASSED: 2 requests, 0 failed" in result.stdout


def test_bad_options_are_usage_errors(tmp_path: Path) -> None:
    for args, message in (
        (["-t", "soon"], "--run-time from command line: 'soon' is not a duration"),
        (["-H", "example"], "-H: host 'example' is not a URL"),
        (["-L", "LOUD"], "unknown level 'LOUD'"),
    ):
        result = run_lrun("run", "scenarios/quickstart.yaml", *args)
        assert result.returncode == 2 and message in result.stderr, (args, result.stderr)


# ---------------------------------------------------------------------------------------------- faults


class Misbehaving(socketserver.ThreadingTCPServer):
    """Answers each connection with one kind of fault, in turn; counts what it saw."""

    allow_reuse_address = True
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), MisbehavingHandler)
        self.seen = 0
        self.lock = threading.Lock()


class MisbehavingHandler(socketserver.BaseRequestHandler):
    FAULTS = ("reset", "garbage", "short_body", "close", "ok")

    def handle(self) -> None:
        server: Misbehaving = self.server  # type: ignore[assignment]
        conn: socket.socket = self.request
        conn.settimeout(5)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(4096)
            if not chunk:
                return
            data += chunk
        with server.lock:
            fault = self.FAULTS[server.seen % len(self.FAULTS)]
            server.seen += 1
        if fault == "reset":
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        elif fault == "garbage":
            conn.sendall(b"NOT HTTP AT ALL\r\n\r\n")
        elif fault == "short_body":
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly a part")
        elif fault == "ok":
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
        conn.close()


@pytest.fixture
def misbehaving() -> Iterator[Misbehaving]:
    server = Misbehaving()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def test_faults_are_counted_failures_not_crashes(tmp_path: Path, misbehaving: Misbehaving) -> None:
    port = misbehaving.server_address[1]
    path = write(tmp_path, "users: {u: {sequence: [{get: /}]}}\n")
    result, results = run_json(tmp_path, str(path), "-H", f"http://127.0.0.1:{port}", "-u", "2", "-i", "10")
    assert result.returncode == 1
    assert "Traceback (most recent call last)" not in result.stdout + result.stderr
    total = results["total"]
    assert total["requests"] == 20
    assert total["failures"] >= 12  # reset, garbage, short body, close: 4 of every 5 answers
    messages = " | ".join(e["message"] for e in results["errors"])
    assert "malformed response" in messages
    assert "connection" in messages


def test_refused_and_timeouts_are_failures(tmp_path: Path, demo_url: str) -> None:
    path = write(tmp_path, "users: {u: {sequence: [{get: /}]}}\n")
    result, results = run_json(tmp_path, str(path), "-H", "http://127.0.0.1:1", "-u", "2", "-i", "3")
    assert result.returncode == 1
    assert results["total"]["failures"] == 6
    assert results["errors"][0]["message"].startswith("connection refused")

    slow = write(tmp_path, "host: demo\nusers: {u: {sequence: [{get: /slow?ms=3000, timeout: 200ms}]}}\n", "s.yaml")
    result, results = run_json(tmp_path, str(slow), "-H", demo_url, "-u", "2", "-i", "2")
    assert result.returncode == 1
    assert results["total"]["failures"] == 4
    assert "timed out after 0.2s" in results["errors"][0]["message"]


# ---------------------------------------------------------------------------------------------- open model


def test_open_model_arrives_at_the_rate_whatever_the_response(tmp_path: Path, demo_url: str) -> None:
    path = write(
        tmp_path,
        "host: demo\nload: {arrival_rate: 20, run_time: 2s, max_users: 50}\n"
        "users: {u: {on_start: [{get: /about}], sequence: [{get: /items}]}}\n",
    )
    demo_reset(demo_url)
    result, results = run_json(tmp_path, str(path), "-H", demo_url, "--stop-timeout", "5s")  # let the last finish
    assert result.returncode == 0, result.stdout + result.stderr
    arrivals = results["arrivals"]
    assert arrivals["planned"] == arrivals["started"] == 40
    server = demo_stats(demo_url)["by_path"]
    assert server["GET /items"] == server["GET /about"] == 40  # each arrival: on_start and one iteration
    assert results["stop_reason"] == "run time reached"


def test_open_model_reports_time_from_the_intended_start(tmp_path: Path, demo_url: str) -> None:
    path = write(
        tmp_path,
        "host: demo\nload: {arrival_rate: 20, run_time: 2s, max_users: 2}\n"
        "users: {u: {sequence: [{get: /slow?ms=150, name: slow}]}}\n",
    )
    result, results = run_json(tmp_path, str(path), "-H", demo_url)
    assert result.returncode == 0, result.stdout + result.stderr
    arrivals = results["arrivals"]
    assert arrivals["planned"] == 40 and arrivals["late"] > 0 and arrivals["waiting_at_end"] > 0
    service = results["total"]["percentiles"]["95"]
    intended = results["from_intended_start"]["total"]["percentiles"]["95"]
    assert service < 400 and intended > 2 * service  # two slots for 150 ms requests cannot keep up with 20/s
    assert "from the intended start" in result.stdout


@pytest.mark.parametrize("extra", [[], ["--processes", "1"]])
def test_gevent_is_patched_before_the_scenarios_module_is_imported(
    tmp_path: Path, extra: list[str], demo_url: str
) -> None:
    """A module that keeps ``socket.socket`` or starts a lock at import must get gevent's, not the blocking ones."""
    (tmp_path / "steps.py").write_text(
        "import os, socket\nfrom gevent import monkey\n"
        "with open(os.path.join(os.path.dirname(__file__), f'patched-{os.getpid()}.txt'), 'w') as f:\n"
        "    f.write(str(monkey.is_module_patched('socket') and socket.socket.__module__ == 'gevent._socket3'))\n"
        "def noop(user):\n    return 1\n"
    )
    steps = "users: {u: {sequence: [{call: noop}, {get: /}]}}\n"
    path = write(tmp_path, f"host: {demo_url}\npython: steps.py\n" + steps)
    result = run_lrun("run", str(path), "-u", "1", "-i", "1", "--headless", *extra, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    marks = sorted(tmp_path.glob("patched-*.txt"))
    assert marks and all(m.read_text() == "True" for m in marks), [m.read_text() for m in marks]
