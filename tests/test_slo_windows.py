"""Live SLO windows (``p95 < 300ms over 10s``), end to end: a real target on loopback whose latency jumps for a few
seconds and recovers (it notes when), real ``lrun`` runs — in one process, with ``--processes 2``, and a master with
two workers — and what the results, the console, JUnit and the HTML report say of it."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from helpers import FAST, Cluster, free_port, run_json, write
from web_process import WebLrun, http, wait_for

from conftest import run_lrun

pytestmark = pytest.mark.e2e

SLOW_MS = 400  # the target's latency while it is slow; 5 ms otherwise


class Spiky:
    """A real HTTP/1.1 server on loopback: fast, then slow (SLOW_MS) from ``after`` seconds past its first request
    for ``lasting`` seconds, then fast again. It notes (epoch seconds) when it began and stopped being slow."""

    def __init__(self, after: float, lasting: float) -> None:
        self.first: float | None = None
        self.slow_began: float | None = None  # the first slow answer's start
        self.slow_ended: float | None = None  # the last slow answer's end
        self.requests = 0
        lock = threading.Lock()
        spiky = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                now = time.time()
                with lock:
                    spiky.requests += 1
                    if spiky.first is None:
                        spiky.first = now
                    slow = spiky.first + after <= now < spiky.first + after + lasting
                    if slow and spiky.slow_began is None:
                        spiky.slow_began = now
                time.sleep(SLOW_MS / 1000 if slow else 0.005)
                if slow:
                    with lock:
                        spiky.slow_ended = max(spiky.slow_ended or 0.0, time.time())
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def long_spike() -> Iterator[Spiky]:
    """Slow from 6 s on for 20 s: long enough to abort any window."""
    server = Spiky(after=6, lasting=20)
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def short_spike() -> Iterator[Spiky]:
    """Slow from 6 s on for 2 s: one window's worth."""
    server = Spiky(after=6, lasting=2)
    try:
        yield server
    finally:
        server.close()


def scenario(tmp_path: Path, url: str, thresholds: str) -> Path:
    return write(
        tmp_path,
        f"host: {url}\nusers: {{u: {{think: 20ms, sequence: [{{get: /api, name: /api}}]}}}}\nthresholds:\n{thresholds}",
    )


def window(results: dict) -> dict:
    (only,) = results["windows"]
    return only


def spike_breaches(verdict: dict, server: Spiky, over: int, lag: float = 0.0) -> list[dict]:
    """The breaches that opened while the server was slow or a window after (the machine is shared: a stall of
    its own may breach a window too, at another time)."""
    assert server.slow_began is not None
    return [b for b in verdict["breaches"] if server.slow_began - 1 <= b["start"] <= server.slow_began + over + lag + 2]


def assert_aborted_on_time(results: dict, server: Spiky, over: int, delay: float, lag: float = 0.0) -> None:
    """The window aborted the run after the server slowed, within its window + delay (+ a master's lag)."""
    assert server.slow_began is not None
    verdict = window(results)
    assert verdict["aborted"] is True and verdict["passed"] is False
    breach = verdict["breaches"][0]
    assert breach["counted"] is True
    # the first failing window ends after the first slow answer began (it holds slow answers), and soon after
    assert server.slow_began - 1 <= breach["start"] <= server.slow_began + over + lag + 2
    assert breach["worst"] >= SLOW_MS * 0.9
    ended = time.mktime(time.strptime(results["end"][:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone
    assert ended - server.slow_began < over + delay + lag + 10, "stopped too late"
    assert results["stop_code"] == "threshold_abort"
    assert results["stop_reason"].startswith(f"threshold {verdict['expression']}")
    assert results["exit_code"] == 1
    assert any(not v["passed"] and v["expression"] == verdict["expression"] for v in results["thresholds"])


def test_a_window_aborts_soon_after_the_target_slows(tmp_path: Path, long_spike: Spiky) -> None:
    path = scenario(tmp_path, long_spike.url, '  - {expect: "p95 < 300ms over 4s", abort: true, delay: 2s}\n')
    started = time.time()
    junit = tmp_path / "j.xml"
    result, results = run_json(tmp_path, str(path), "-u", "3", "-r", "10", "-t", "60s", "--junit", str(junit))
    assert result.returncode == 1, result.stderr
    assert time.time() - started < 40  # long before its 60 s
    assert_aborted_on_time(results, long_spike, over=4, delay=2)
    assert "SLO window p95 < 300ms over 4s breached" in result.stderr
    text = junit.read_text()
    assert "p95 &lt; 300ms over 4s" in text and "ThresholdFailed" in text
    assert "breached 1 time" in result.stdout


def test_for_3_rides_out_a_one_window_spike(tmp_path: Path, short_spike: Spiky) -> None:
    """A 2 s spike under a 6 s window fails windows for about 8 s, not the 12 s that 3 windows in a row need: no
    abort, the breach is in the results (not counted), and the run (16 s) passes; so does its whole-run p95."""
    thresholds = '  - {expect: "p95 < 300ms over 6s", for: 3, abort: true, delay: 1s}\n  - "p95 < 300ms"\n'
    path = scenario(tmp_path, short_spike.url, thresholds)
    html = tmp_path / "report.html"
    result, results = run_json(tmp_path, str(path), "-u", "3", "-r", "10", "-t", "16s", "--html", str(html))
    assert short_spike.slow_began is not None and short_spike.slow_ended is not None
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert results["stop_code"] == "run_time"
    verdict = window(results)
    assert verdict["passed"] is True and verdict["aborted"] is False
    (breach,) = spike_breaches(verdict, short_spike, over=6)
    assert not any(b["counted"] for b in verdict["breaches"])
    assert breach["end"] is not None
    # the last failing window still held slow answers; the first passing one ended a window after them at most
    assert short_spike.slow_ended - 1 <= breach["end"] <= short_spike.slow_ended + 6 + 2
    assert breach["end"] - breach["start"] < 2 * 6
    whole_run = [v for v in results["thresholds"] if v["expression"] == "p95 < 300ms"]
    assert whole_run[0]["passed"] is True
    assert "SLO window p95 < 300ms over 6s for 3 recovered" in result.stderr
    assert "(shorter than 3 windows in a row: not counted)" in result.stdout
    page = html.read_text()
    # on the throughput, the response-time and the where-the-time-went charts
    assert page.count('class="slo-band"') == 3 and 'id="chart-phases"' in page
    assert "worst window" in page and "(never for 3 in a row)" in page


def test_processes_2_judge_the_merged_window(tmp_path: Path, long_spike: Spiky) -> None:
    """With --processes 2 the parent (the master) judges every worker's requests: a per-request window."""
    thresholds = '  - {expect: "p95 < 300ms over 4s", request: /api, abort: true, delay: 2s}\n'
    path = scenario(tmp_path, long_spike.url, thresholds)
    result, results = run_json(
        tmp_path, str(path), "-u", "4", "-r", "10", "-t", "60s", "--processes", "2", *FAST, timeout=120
    )
    assert result.returncode == 1, result.stderr
    assert_aborted_on_time(results, long_spike, over=4, delay=2, lag=1.5)
    assert len(results["workers"]) == 2


def test_a_master_with_two_workers_aborts_on_a_window(tmp_path: Path, long_spike: Spiky, cluster: Cluster) -> None:
    path = scenario(tmp_path, long_spike.url, '  - {expect: "p95 < 300ms over 4s", abort: true, delay: 2s}\n')
    port = free_port()
    master = cluster.master(path, port, "-u", "4", "-r", "10", "-t", "60s", "--expect-workers", "2")
    cluster.worker(port, name="w1")
    cluster.worker(port, name="w2")
    assert master.wait(90) == 1, master.err[-3000:]
    results = cluster.results()
    assert_aborted_on_time(results, long_spike, over=4, delay=2, lag=1.5)
    assert {w["requests"] > 0 for w in results["workers"]} == {True}


def test_window_thresholds_validate(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """host: http://127.0.0.1:9
users: {u: {sequence: [{get: /}]}}
thresholds:
  - "p95 < 300ms over 10s"
  - {expect: "errors < 1%", over: 30s, abort: true, delay: 5s, for: 3}
  - {expect: "rps > 100 over 10s", request: "GET /"}
""",
    )
    result = run_lrun("validate", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("threshold", "column", "message"),
    [
        ('"p95 < 300ms over 500ms"', 5, "a window of 0.5s is shorter than the sampling interval (1s)"),
        ('"arrivals_dropped < 1% over 10s"', 5, "arrivals_dropped is a share of the whole run's arrivals"),
        ('{expect: "p95 < 1s", over: 10s, for: 0}', 42, "a window must fail at least once to count"),
        ('"p95 < 1s over 10x"', 5, "'10x' is not a duration"),
        ('{expect: "p95 < 1s", for: 3}', 31, "'for' counts windows in a row: add a window"),
        ('{expect: "p95 < 1s", over: 10 parsecs}', 32, "'over': '10 parsecs' is not a duration"),
    ],
)
def test_bad_windows_are_one_line_with_a_position(tmp_path: Path, threshold: str, column: int, message: str) -> None:
    users = "users: {u: {sequence: [{get: /}]}}"
    path = write(tmp_path, f"host: http://127.0.0.1:9\n{users}\nthresholds:\n  - {threshold}\n")
    result = run_lrun("validate", str(path))
    assert result.returncode == 2
    first = result.stdout.splitlines()[0] if result.stdout.strip() else result.stderr.splitlines()[0]
    assert first.startswith(f"{path}:4:{column}: "), first
    assert message in first
    assert "Traceback" not in result.stdout + result.stderr


def test_lrun_report_reads_the_windows_back(tmp_path: Path, short_spike: Spiky) -> None:
    """``lrun report`` re-renders the bands and the JUnit case from the results file (the typed model)."""
    path = scenario(tmp_path, short_spike.url, '  - {expect: "p95 < 300ms over 2s", delay: 1s}\n')
    _, results = run_json(tmp_path, str(path), "-u", "2", "-r", "10", "-t", "12s")
    assert results["windows"][0]["judged"] > 0 and results["windows"][0]["breaches"]
    html, junit = tmp_path / "again.html", tmp_path / "again.xml"
    again = run_lrun("report", str(tmp_path / "results.json"), "-o", str(html), "--junit", str(junit))
    assert again.returncode == 0, again.stderr
    assert 'class="slo-band"' in html.read_text()
    assert "p95 &lt; 300ms over 2s" in junit.read_text()


def test_the_web_ui_shows_each_window_live(tmp_path: Path, long_spike: Spiky) -> None:
    """--web: the snapshot has each window's state (ok, then breached since when), the thresholds table says it,
    and the page draws the breaches as bands on its charts."""
    path = scenario(tmp_path, long_spike.url, '  - {expect: "p95 < 300ms over 3s", delay: 1s}\n')
    with WebLrun(str(path), "--autostart", "-u", "3", "-r", "10", "-t", "40s") as web:

        def windows() -> list[dict]:
            run = http(f"{web.url}/api/state").json()["snapshot"]["run"]
            return run["windows"] if run else []

        ok = wait_for(lambda: [w for w in windows() if w["state"] == "ok"], timeout=30, what="a window judged ok")
        assert ok[0]["expression"] == "p95 < 300ms over 3s" and ok[0]["value"] < 300
        breached = wait_for(lambda: [w for w in windows() if w["state"] == "breached"], timeout=40, what="a breach")
        assert long_spike.slow_began is not None
        assert long_spike.slow_began - 1 <= breached[0]["since"] <= long_spike.slow_began + 3 + 3
        run = http(f"{web.url}/api/state").json()["snapshot"]["run"]
        (row,) = run["thresholds"]
        assert row["passed"] is False and row["detail"].startswith("breached since")
        assert "sloBands" in http(f"{web.url}/static/app.js").text


def test_processes_2_ride_out_a_one_window_spike_with_for_3(tmp_path: Path, short_spike: Spiky) -> None:
    """The master's merged windows see the 2 s spike (a breach, the server's times) and do not count it."""
    thresholds = '  - {expect: "p95 < 300ms over 6s", for: 3, abort: true, delay: 1s}\n'
    path = scenario(tmp_path, short_spike.url, thresholds)
    result, results = run_json(tmp_path, str(path), "-u", "4", "-r", "10", "-t", "18s", "--processes", "2", *FAST)
    assert short_spike.slow_began is not None and short_spike.slow_ended is not None
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    verdict = window(results)
    assert verdict["passed"] is True and verdict["aborted"] is False
    (breach,) = spike_breaches(verdict, short_spike, over=6, lag=1.5)
    assert not any(b["counted"] for b in verdict["breaches"])
    assert breach["end"] is not None and breach["end"] >= short_spike.slow_ended - 1
    assert sum(w["requests"] for w in results["workers"]) == results["total"]["requests"]
