"""Where each request's time went (issue 25, item 4): dns, connect, tls, send, ttfb and receive per request.

A loopback server in this process answers after a known delay (the first byte) and then trickles its body for a
known time: the phases show both within a few ms, connecting only on new connections, TLS only over https, and
they survive ``--processes 2`` (merged by the parent). Thresholds read them (``ttfb p95 < 100ms``).
"""

from __future__ import annotations

import re
import shutil
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import gevent
import pytest
from helpers import by_name, requests_sent, run_json, write

from conftest import ROOT, run_lrun
from runner.compile.parallel import compile_parallel
from runner.engine.user import Step, VirtualUser
from runner.http import session as session_module
from runner.http.response import Response
from runner.http.session import HttpSession
from runner.scenario.model import ParallelStep
from runner.stats import RequestStats

FIRST_BYTE_S = 0.150  # the server waits this long before its head
TRICKLE_S = 0.200  # then sends the body in pieces over this long
PIECES = 4
SLACK_MS = 100.0  # a busy shared machine: generous, but below the delays measured and their difference
EARLY_MS = 6.0  # the server's gevent timers (one per piece) may each fire a millisecond or so early (libev)


class Slow(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.server.requests += 1  # type: ignore[attr-defined]
        if self.path.startswith("/fast"):
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")
            return
        time.sleep(FIRST_BYTE_S)
        piece = b"x" * 256
        self.send_response(200)
        self.send_header("Content-Length", str(len(piece) * (PIECES + 1)))
        self.end_headers()  # the head goes out now, with the first piece right behind it
        self.wfile.write(piece)
        for _ in range(PIECES):
            time.sleep(TRICKLE_S / PIECES)
            self.wfile.write(piece)


def _serve(context: ssl.SSLContext | None = None) -> Iterator[tuple[str, ThreadingHTTPServer]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Slow)
    server.daemon_threads = True
    server.requests = 0  # type: ignore[attr-defined]
    if context is not None:
        server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    scheme = "https" if context is not None else "http"
    yield f"{scheme}://127.0.0.1:{server.server_address[1]}", server
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def slow() -> Iterator[tuple[str, ThreadingHTTPServer]]:
    yield from _serve()


@pytest.fixture(scope="module")
def slow_tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, ThreadingHTTPServer]]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl makes the test certificate")
    folder = tmp_path_factory.mktemp("tls")
    key, cert = folder / "key.pem", folder / "cert.pem"
    command = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost"]
    subprocess.run([*command, "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True, timeout=60)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    yield from _serve(context)


def test_session_phases_show_the_servers_delays(slow: tuple[str, ThreadingHTTPServer]) -> None:
    url, _ = slow
    session = HttpSession(url, timeout=10)
    first = session.request("GET", "/")
    again = session.request("GET", "/")
    for response in (first, again):
        assert response.status == 200 and response.timings is not None
        _, _, tls, _, ttfb, receive = response.timings
        assert FIRST_BYTE_S * 1000 - EARLY_MS <= ttfb <= FIRST_BYTE_S * 1000 + SLACK_MS, response.timings
        assert TRICKLE_S * 1000 - EARLY_MS <= receive <= TRICKLE_S * 1000 + SLACK_MS, response.timings
        assert sum(response.timings) == pytest.approx(response.elapsed_ms, abs=0.01)  # the phases add up
        assert tls == 0.0  # http://
    assert first.timings is not None and again.timings is not None
    assert first.timings[1] > 0  # a new connection: connect() took some time
    assert again.timings[:3] == (0.0, 0.0, 0.0)  # kept alive: no dns, connect or tls


def test_session_phases_over_tls(slow_tls: tuple[str, ThreadingHTTPServer]) -> None:
    url, _ = slow_tls
    session = HttpSession(url, timeout=10)
    first = session.request("GET", "/fast")
    again = session.request("GET", "/fast")
    assert (first.status, again.status) == (200, 200), (first.error, again.error)
    assert first.timings is not None and again.timings is not None
    assert first.timings[2] > 0.1  # a TLS handshake: well above a tenth of a ms even on loopback
    assert again.timings[:3] == (0.0, 0.0, 0.0)
    assert sum(first.timings) == pytest.approx(first.elapsed_ms, abs=0.01)


def test_no_response_has_no_timings() -> None:
    session = HttpSession("http://127.0.0.1:9", timeout=2, connect_timeout=1)  # discard port: refused
    response = session.request("GET", "/")
    assert response.status == 0 and response.timings is None


def test_stats_merge_timings_across_workers() -> None:
    """Two workers' deltas give the master the same phases as one process that saw every response."""
    one, left, right, master = RequestStats(), RequestStats(), RequestStats(), RequestStats()
    new = (1.0, 2.0, 3.0, 0.5, 150.0, 200.0)
    kept = (0.0, 0.0, 0.0, 0.25, 160.0, 210.0)
    for index, phases in enumerate([new, kept, kept, new, kept]):
        one.log("GET", "/", sum(phases), 10, None, timings=phases)
        (left if index % 2 else right).log("GET", "/", sum(phases), 10, None, timings=phases)
    master.merge(left.delta())
    master.merge(right.delta())
    merged = master.snapshot(duration=1.0).requests[0].model_dump()["timings"]
    assert merged == one.snapshot(duration=1.0).requests[0].model_dump()["timings"]
    assert (merged["responses"], merged["new_connections"]) == (5, 2)
    # values are their buckets' midpoints: within 0.1 %
    assert merged["connect"]["avg_ms"] == pytest.approx(2 * 2.0 / 5, rel=1e-3)  # kept-alive ones count 0
    assert merged["connect"]["percentiles"]["50"] <= 0.001  # the kept-alive ones: the 0 µs bucket
    assert merged["connect"]["max_ms"] == pytest.approx(2.0, rel=1e-3)
    assert merged["ttfb"]["min_ms"] == pytest.approx(150.0, rel=1e-3)
    assert merged["receive"]["max_ms"] == pytest.approx(210.0, rel=1e-3)
    assert not left.delta()["entries"]  # a delta forgets what it sent, timings too


def test_a_hostile_timings_delta_is_refused() -> None:
    stats = RequestStats()
    stats.log("GET", "/", 1.0, 0, None, timings=(0.0, 0.0, 0.0, 0.1, 0.5, 0.4))
    state = stats.delta()
    state["entries"][0]["timings"]["phases"] = state["entries"][0]["timings"]["phases"][:2]
    with pytest.raises(ValueError, match="timings"):
        RequestStats().merge(state)


SCENARIO = """\
name: timings
host: {url}
load: {{users: 2, spawn_rate: 2}}
thresholds:
  - ttfb p95 < 100ms
  - {{expect: "ttfb p50 < 1s", request: slow}}
  - connect avg < 1s
users:
  reader:
    sequence:
      - {{get: /, name: slow}}
      - {{get: /fast, name: fast}}
"""


@pytest.mark.parametrize("processes", [1, 2])
def test_run_breakdown_in_results_console_and_thresholds(
    tmp_path: Path, slow: tuple[str, ThreadingHTTPServer], processes: int
) -> None:
    url, server = slow
    before = server.requests  # type: ignore[attr-defined]
    scenario = write(tmp_path, SCENARIO.format(url=url))
    args = [str(scenario), "-i", "3", "--html", str(tmp_path / "report.html")]
    if processes > 1:
        args += ["--processes", str(processes)]
    result, results = run_json(tmp_path, *args, timeout=120)
    entries = by_name(results)
    slow_entry, fast_entry = entries["GET slow"], entries["GET fast"]
    assert slow_entry["requests"] == fast_entry["requests"] == 6  # 2 users x 3 iterations, over the processes
    assert server.requests - before == 12  # type: ignore[attr-defined]
    timings = slow_entry["timings"]
    assert timings["responses"] == 6
    assert timings["new_connections"] == 2  # each user's first request connects, the rest reuse it
    assert fast_entry["timings"]["new_connections"] == 0
    assert results["total"]["timings"]["responses"] == 12
    for key in ("avg_ms", "min_ms"):
        assert FIRST_BYTE_S * 1000 - EARLY_MS <= timings["ttfb"][key] <= FIRST_BYTE_S * 1000 + SLACK_MS, timings["ttfb"]
        assert TRICKLE_S * 1000 - EARLY_MS <= timings["receive"][key] <= TRICKLE_S * 1000 + SLACK_MS, timings["receive"]
    assert timings["tls"]["max_ms"] == 0.0
    assert timings["connect"]["max_ms"] > 0 and timings["connect"]["percentiles"]["50"] <= 0.001
    phases = sum(timings[p]["avg_ms"] for p in ("dns", "connect", "tls", "send", "ttfb", "receive"))
    assert phases == pytest.approx(slow_entry["avg_ms"], rel=2e-3)  # the averages add up to the response time

    verdicts = {v["expression"]: v for v in results["thresholds"]}
    assert not verdicts["ttfb p95 < 100ms"]["passed"]  # the total's p95 is the slow request's 150 ms
    assert verdicts["ttfb p95 < 100ms"]["actual"] >= FIRST_BYTE_S * 1000 - EARLY_MS
    assert verdicts["ttfb p50 < 1s"]["passed"] and verdicts["connect avg < 1s"]["passed"]
    assert result.returncode == 1

    assert "Where the time went" in result.stdout
    row = next(line for line in result.stdout.splitlines() if line.startswith("GET slow"))
    assert row.split()[2] == "2"  # new connections
    report = (tmp_path / "report.html").read_text()
    assert 'id="timings"' in report and "TTFB" in report


def test_validate_points_at_a_bad_phase_threshold(tmp_path: Path) -> None:
    scenario = write(
        tmp_path,
        "name: x\nhost: http://127.0.0.1:1\nthresholds:\n  - ttfb p95 < 1s\n  - tffb p95 < 100ms\n"
        "  - {expect: connect rps > 3}\nusers:\n  u:\n    tasks:\n      - get: /\n",
    )
    result = run_lrun("validate", str(scenario))
    assert result.returncode == 2
    lines = [line for line in (result.stdout + result.stderr).splitlines() if "scenario.yaml:" in line]
    assert any(":5:" in line and "unknown phase 'tffb'" in line for line in lines), lines
    assert any(":6:" in line and "a phase takes a time metric" in line for line in lines), lines
    assert "Traceback" not in result.stderr


def test_the_guide_examples_validate(tmp_path: Path) -> None:
    guide = (ROOT / "docs" / "how-to" / "timings.md").read_text()
    examples = re.findall(r"```yaml\n(.*?)```", guide, re.DOTALL)
    assert examples
    for index, text in enumerate(examples):
        result = run_lrun("validate", str(write(tmp_path, text, f"example{index}.yaml")))
        assert result.returncode == 0, result.stdout + result.stderr


def test_one_list_of_phases_and_percentiles() -> None:
    from runner.report import breakdown
    from runner.report.model import Timings
    from runner.scenario import limits
    from runner.stats.histogram import PERCENTILES, percentile_key

    assert breakdown.PHASES == limits.PHASES
    assert [f for f in Timings.model_fields if f in limits.PHASES] == list(limits.PHASES)
    assert tuple(map(percentile_key, PERCENTILES)) == limits.PHASE_PERCENTILES


def test_an_aborting_phase_threshold_stops_the_run(tmp_path: Path, slow: tuple[str, ThreadingHTTPServer]) -> None:
    url, _ = slow
    scenario = write(
        tmp_path,
        f"name: abort\nhost: {url}\nload: {{users: 2, spawn_rate: 2, run_time: 60s}}\n"
        "thresholds:\n  - {expect: ttfb p95 < 50ms, abort: true, delay: 1s}\n"
        "users:\n  u:\n    sequence:\n      - get: /\n",
    )
    started = time.monotonic()
    result, results = run_json(tmp_path, str(scenario), timeout=120)
    assert time.monotonic() - started < 40  # far from the 60 s run time
    assert results["stop_code"] == "threshold_abort", results["stop_reason"]
    assert "ttfb p95 < 50ms" in results["stop_reason"] and result.returncode == 1


def test_debug_prints_each_requests_phases(tmp_path: Path, slow: tuple[str, ThreadingHTTPServer]) -> None:
    url, _ = slow
    scenario = write(tmp_path, f"name: d\nhost: {url}\nusers:\n  u:\n    sequence:\n      - get: /\n      - get: /\n")
    result = run_lrun("debug", str(scenario), timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = [line.strip() for line in result.stdout.splitlines() if line.strip().startswith("time: ")]
    assert len(lines) == 2, result.stdout
    assert "connect " in lines[0] and "connect " not in lines[1]  # the second reuses the connection
    ttfb = [float(re.search(r"ttfb ([\d.]+)", line)[1]) for line in lines]  # type: ignore[index]
    assert all(FIRST_BYTE_S * 1000 - EARLY_MS <= ms <= FIRST_BYTE_S * 1000 + SLACK_MS for ms in ttfb), lines


class Delayed(BaseHTTPRequestHandler):
    """``/wait/<ms>``: the head and body after that many ms (a known wait for the first byte, per path)."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.server.requests += 1  # type: ignore[attr-defined]
        time.sleep(int(self.path.rsplit("/", 1)[1]) / 1000)
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")


def test_a_parallel_groups_requests_each_get_their_own_phases(monkeypatch: pytest.MonkeyPatch) -> None:
    """A parallel group's requests open their connections at once, in greenlets of one session: each response's
    dns, connect and ttfb are its own, not a sibling's (they once shared one set of marks). Two origins whose
    name resolution takes a known time (200 and 20 ms) answer after a known wait (50 and 400 ms): the slow-to-
    resolve one's first byte comes first, so any mark a sibling wrote over shows in the other's phases."""
    servers = []
    for _ in range(2):
        server = ThreadingHTTPServer(("127.0.0.1", 0), Delayed)
        server.daemon_threads = True
        server.requests = 0  # type: ignore[attr-defined]
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
    try:
        port_a, port_b = (server.server_address[1] for server in servers)
        resolving_ms = {port_a: 200, port_b: 20}
        real = session_module._addresses

        def resolve(host: str, port: int) -> list[Any]:
            gevent.sleep(resolving_ms[port] / 1000)
            return real(host, port)

        monkeypatch.setattr(session_module, "_addresses", resolve)
        session = HttpSession(f"http://127.0.0.1:{port_a}", timeout=10)
        waits = {port_a: 50, port_b: 400}
        responses: dict[int, Response] = {}

        def request(port: int) -> Step:
            def step(user: VirtualUser) -> None:
                responses[port] = session.request("GET", f"http://127.0.0.1:{port}/wait/{waits[port]}")

            return step

        user = cast(VirtualUser, SimpleNamespace(session=session))  # all the group's run reads of its user
        group = ParallelStep.model_validate({"parallel": [{"get": "/a"}, {"get": "/b"}]})
        [run] = compile_parallel(group, [request(port_a), request(port_b)], None)
        run(user)
        assert [server.requests for server in servers] == [1, 1]  # type: ignore[attr-defined]
        for port in (port_a, port_b):
            response = responses[port]
            assert response.status == 200 and response.timings is not None, response.error
            dns, connect, tls, send, ttfb, _ = phases = response.timings
            assert resolving_ms[port] - EARLY_MS <= dns <= resolving_ms[port] + SLACK_MS, (port, phases)
            assert waits[port] - EARLY_MS <= ttfb <= waits[port] + SLACK_MS, (port, phases)
            assert connect > 0 and tls == 0.0 and send >= 0, phases
            assert sum(phases) == pytest.approx(response.elapsed_ms, abs=0.01)  # the phases still add up
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()


WAIT_BEFORE_MS, WAIT_AFTER_MS, BODY_MS = 50, 250, 100  # first byte before / after the switch, then the body
SWITCH_AFTER_S = 1.6  # the server answers slower this long after its first request


class Switching(BaseHTTPRequestHandler):
    """``/``: the first byte after 50 ms, then (from 1.6 s after the first request on) after 250 ms; the body
    trickles over 100 ms. ``/fast``: at once (in one write: with the body in a second one, Nagle's algorithm
    and the client's delayed ACK hold it back some 40 ms, which the receive phase shows). Counts its requests."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        server: Any = self.server
        with server.lock:
            server.requests += 1
            if server.switch_at is None:
                server.switch_at = time.time() + SWITCH_AFTER_S
        if self.path.startswith("/fast"):  # head and body in one write: no Nagle wait between the two
            self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            return
        time.sleep((WAIT_BEFORE_MS if time.time() < server.switch_at else WAIT_AFTER_MS) / 1000)
        piece = b"x" * 256
        self.send_response(200)
        self.send_header("Content-Length", str(len(piece) * 3))
        self.end_headers()
        self.wfile.write(piece)
        for _ in range(2):
            time.sleep(BODY_MS / 2000)
            self.wfile.write(piece)


def _timed_points(series: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [p for p in series if p["timings"] is not None]


@pytest.mark.parametrize("processes", [1, 2])
def test_where_the_time_went_over_time(tmp_path: Path, processes: int) -> None:
    """The series' per-second phases follow the server: its first byte after 50 ms, then after 250 ms; the body in
    100 ms throughout; per name (--csv-full-history) and for all, locally and merged from two processes."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), Switching)
    server.daemon_threads = True
    server.requests, server.switch_at, server.lock = 0, None, threading.Lock()  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        scenario = write(
            tmp_path,
            f"name: over time\nhost: {url}\nload: {{users: 2, spawn_rate: 2, run_time: 4s}}\n"
            "users:\n  reader:\n    sequence:\n      - {get: /, name: slow}\n      - {get: /fast, name: fast}\n",
        )
        args = [str(scenario), "--csv-full-history", "--html", str(tmp_path / "report.html")]
        if processes > 1:
            args += ["--processes", str(processes)]
        result, results = run_json(tmp_path, *args, timeout=120)
    finally:
        server.shutdown()
        server.server_close()
    assert result.returncode == 0, result.stdout + result.stderr
    switch: float = server.switch_at  # type: ignore[attr-defined]
    entries = by_name(results)
    slow_points = _timed_points(entries["GET slow"]["series"])
    before = [p for p in slow_points if p["t"] <= switch]  # every response of the point ended before the switch
    after = [p for p in slow_points if p["t"] - p["interval_s"] >= switch + 0.5]  # began well after it
    assert before and after, slow_points
    for points, wait in ((before, WAIT_BEFORE_MS), (after, WAIT_AFTER_MS)):
        for p in points:
            assert wait - EARLY_MS <= p["timings"]["ttfb_ms"] <= wait + SLACK_MS, (wait, p["timings"])
            assert BODY_MS - EARLY_MS <= p["timings"]["receive_ms"] <= BODY_MS + SLACK_MS, p["timings"]
    for p in _timed_points(entries["GET fast"]["series"]):
        assert p["timings"]["ttfb_ms"] < WAIT_BEFORE_MS - EARLY_MS and p["timings"]["receive_ms"] < 20, p["timings"]
    # Each response is in one point: the points' responses add up to the total's, which are the server's requests
    # but those the stop cut off (no response).
    timed = _timed_points(results["series"])
    assert sum(p["timings"]["responses"] for p in timed) == results["total"]["timings"]["responses"]
    assert results["total"]["timings"]["responses"] == results["total"]["requests"]  # all got a response
    assert sum(requests_sent(results).values()) == server.requests  # type: ignore[attr-defined]
    # All requests' point is the per-name points weighted by their responses.
    by_t = {p["t"]: p for p in timed}
    for p in timed:
        parts = [q for e in entries.values() for q in _timed_points(e["series"]) if q["t"] == p["t"]]
        assert sum(q["timings"]["responses"] for q in parts) == p["timings"]["responses"]
        weighted = sum(q["timings"]["ttfb_ms"] * q["timings"]["responses"] for q in parts) / p["timings"]["responses"]
        assert by_t[p["t"]]["timings"]["ttfb_ms"] == pytest.approx(weighted, abs=0.01)
    report = (tmp_path / "report.html").read_text()
    assert 'id="chart-phases"' in report


@pytest.mark.parametrize(
    "phases", [[1.0] * 6, [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, -1.0], [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, float("nan")], "x"]
)
def test_a_hostile_seconds_phases_are_refused(phases: Any) -> None:
    """A worker's second whose phase sums are not 7 finite numbers ≥ 0 is refused before anything is added."""
    stats = RequestStats()
    stats.log("GET", "/", 1.0, 0, None, timings=(0.0, 0.0, 0.0, 0.1, 0.5, 0.4))
    state = stats.delta()
    (second,) = state["total_seconds"].values()
    assert second["phases"][0] == 1  # a response, timed
    second["phases"] = phases
    master = RequestStats()
    with pytest.raises(ValueError, match="phases"):
        master.merge(state)
    assert not master.entries


def test_older_results_without_phases_over_time_still_render() -> None:
    """Results written before the series had ``timings``: read as before, the report without the chart."""
    from report_data import run_results

    from runner.report.html import render_html
    from runner.report.model import Results

    data = run_results(5).to_dict()
    assert all(p["timings"] is not None for p in data["series"])  # this lrun writes them
    for point in data["series"]:
        del point["timings"]
    old = Results.model_validate(data)
    assert all(p.timings is None for p in old.series)
    page = render_html(old)
    assert 'id="chart-throughput"' in page and 'id="chart-phases"' not in page
    assert 'id="chart-phases"' in render_html(run_results(5))
