"""The open model across workers, with real processes on loopback: the servers count what arrives.

Each worker takes a share of the cluster's arrival schedule (``Cluster.reshare``, unit-tested in
``test_cluster.py``); here the whole cluster puts the schedule's requests on a real server, and when a worker is
killed by PID the survivor takes the full rate. Every process is known by its PID and killed in a ``finally``.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from helpers import FAST, Cluster, demo_reset, demo_stats, free_port, log_shows, request_counts, wait_until, write
from web_process import WebLrun, http, wait_for

from runner.engine.arrivals import RateStage, arrival_times

pytestmark = pytest.mark.e2e

OPEN = "load: {arrival_rate: 40, run_time: 8s, max_users: 50}\nusers: {u: {sequence: [{get: /items}]}}\n"


class Stamps:
    """A real HTTP/1.1 server on loopback that notes when (its monotonic clock) each request came."""

    def __init__(self) -> None:
        stamps: list[float] = []
        paths: list[str] = []
        self.stamps, self.paths = stamps, paths

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                stamps.append(time.monotonic())
                paths.append(self.path)
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

    def between(self, start: float, end: float) -> int:
        return sum(start <= t < end for t in list(self.stamps))

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def stamps() -> Iterator[Stamps]:
    server = Stamps()
    try:
        yield server
    finally:
        server.close()


def test_processes_share_the_arrivals(tmp_path: Path, demo_url: str, cluster: Cluster) -> None:
    """The issue's case: --processes 2, 40 arrivals/s for 8 s put 320 requests on the server, from both workers."""
    path = write(tmp_path, OPEN)
    demo_reset(demo_url)
    run = cluster.start(
        "run", str(path), "-H", demo_url, "--processes", "2", "--only-summary",
        "--json", str(tmp_path / "results.json"), *FAST, name="run",
    )  # fmt: skip
    assert run.wait(90) == 0, run.out + run.err
    server = demo_stats(demo_url)["by_path"]["GET /items"]
    assert 288 <= server <= 352, server  # 320 within 10 %
    results = cluster.results()
    workers = results["workers"]
    assert len(workers) == 2 and all(w["requests"] > 0 for w in workers)
    assert sum(w["requests"] for w in workers) == results["total"]["requests"] == server
    arrivals = results["arrivals"]
    assert arrivals["planned"] == 320 and arrivals["started"] == server  # the cluster's counts, merged
    assert arrivals["waiting_at_end"] == 0
    assert all(abs(w["requests"] - server / 2) <= 2 for w in workers)  # every other arrival each
    assert results["from_intended_start"]["requests"][0]["name"] == "/items"
    assert "arrivals: 320 planned" in run.out and "Traceback" not in run.err


def test_a_rate_profile_across_two_workers_with_queued_arrivals(
    tmp_path: Path, demo_url: str, cluster: Cluster
) -> None:
    """Stages ramp the cluster's rate; one slot per worker and a slow page make arrivals queue: counted for the
    cluster, late and still waiting at the end."""
    stages = "[{duration: 2s, rate: 30}, {duration: 2s, rate: 30}, {duration: 2s, rate: 0}]"
    path = write(
        tmp_path,
        f"load: {{arrival_stages: {stages}, max_users: 2}}\n"
        "users: {u: {sequence: [{get: /items}, {get: /slow, query: {ms: 300}}]}}\n",
    )
    planned = len(arrival_times([RateStage(2, 30), RateStage(2, 30), RateStage(2, 0)]))
    port = free_port()
    demo_reset(demo_url)
    master = cluster.master(path, port, "-H", demo_url, "--expect-workers", "2")
    for i in range(2):
        cluster.worker(port, name=f"w{i}")
    assert master.wait(90) == 0, master.out + master.err
    results = cluster.results()
    arrivals = results["arrivals"]
    assert arrivals["planned"] == planned == 120  # 30 ramping up, 60, 30 ramping down
    # 2 slots for 300 ms each serve about 6.7 arrivals a second of the 20 on average: most wait
    assert arrivals["late_for_slot"] > 20 and arrivals["waiting_at_end"] > 20
    server = demo_stats(demo_url)["by_path"]["GET /items"]
    cut = {(r["method"], r["name"]): r["count"] for r in (results.get("interrupted") or {}).get("requests", [])}
    cut_items = cut.get(("GET", "/items"), 0)  # an arrival let in at the stop: its first request cut, and said so
    counted = request_counts(results)["GET /items"]
    assert arrivals["started"] == counted + cut_items, (arrivals, cut)  # each arrival's first request
    assert counted <= server <= counted + cut_items
    assert arrivals["started"] + arrivals["waiting_at_end"] <= planned
    assert all(w["requests"] > 0 and w["users_max"] == 1 for w in results["workers"])  # max_users split


def test_a_killed_worker_s_share_goes_to_the_survivor(tmp_path: Path, cluster: Cluster, stamps: Stamps) -> None:
    path = write(tmp_path, OPEN.replace("run_time: 8s", "run_time: 14s"))
    port = free_port()
    master = cluster.master(path, port, "-H", stamps.url, "--expect-workers", "2")
    workers = [cluster.worker(port, name=f"w{i}") for i in range(2)]
    wait_until(lambda: len(stamps.stamps) >= 80, 60, "two seconds of arrivals")  # about 2 s at 40/s
    started = stamps.stamps[0]
    os.kill(workers[1].pid, signal.SIGKILL)
    killed = time.monotonic()
    wait_until(log_shows(master, "is missing"), 30, "the master to miss the killed worker")
    assert master.wait(60) == 0, master.err
    # the survivor alone, from 2 s after the kill (missing after 0.6 s, its share 0.5 s ahead) to the end
    window = (killed + 2.0, started + 13.5)
    assert window[1] - window[0] >= 4.0, "the kill came late: the machine is too slow for this test"
    rate = stamps.between(*window) / (window[1] - window[0])
    assert 30 <= rate <= 50, rate  # the cluster's 40/s; alone at its old share it would do 20/s
    results = cluster.results()
    state = {w["pid"]: w for w in results["workers"]}
    assert state[workers[1].pid]["state"] == "missing"
    assert any("is missing" in w and "share of the arrivals" in w for w in results["warnings"])
    assert results["arrivals"]["planned"] == 560
    assert results["arrivals"]["started"] <= len(stamps.stamps) <= 560


def test_a_worker_joining_mid_run_shares_the_rate(tmp_path: Path, cluster: Cluster, stamps: Stamps) -> None:
    path = write(tmp_path, OPEN.replace("run_time: 8s", "run_time: 8s"))
    port = free_port()
    master = cluster.master(path, port, "-H", stamps.url)
    cluster.worker(port, name="first")
    wait_until(lambda: len(stamps.stamps) >= 40, 60, "a second of arrivals")
    cluster.worker(port, name="second")
    assert master.wait(60) == 0, master.err
    results = cluster.results()
    workers = results["workers"]
    assert len(workers) == 2 and all(w["requests"] > 0 for w in workers)
    assert 288 <= len(stamps.stamps) <= 320  # the rate held: nothing twice, nothing lost at the change
    assert results["arrivals"]["planned"] == 320 and results["arrivals"]["started"] == len(stamps.stamps)


def test_user_ids_are_the_cluster_s(tmp_path: Path, cluster: Cluster, stamps: Stamps) -> None:
    """Each arrival is a new user: its user_id comes from the master, so 1..N across the workers, each once."""
    path = write(
        tmp_path,
        "load: {arrival_rate: 40, run_time: 3s, max_users: 50}\n"
        "users: {u: {sequence: [{get: '/who?id={{ user_id }}', name: /who}]}}\n",
    )
    run = cluster.start(
        "run", str(path), "-H", stamps.url, "--processes", "2", "--only-summary",
        "--json", str(tmp_path / "results.json"), *FAST, name="run",
    )  # fmt: skip
    assert run.wait(90) == 0, run.out + run.err
    ids = sorted(int(p.split("id=")[1]) for p in stamps.paths)
    assert ids == list(range(1, 121))
    assert all(w["requests"] == 60 for w in cluster.results()["workers"])


def test_the_cluster_page_shows_each_worker_s_share(tmp_path: Path, demo_url: str) -> None:
    """lrun --web --processes 2 --autostart of an open-model scenario: the page's workers say which arrivals."""
    path = write(tmp_path, OPEN.replace("run_time: 8s", "run_time: 4s"))
    with WebLrun(str(path), "-H", demo_url, "--processes", "2", "--autostart", "--heartbeat-interval", "0.5") as web:
        url = web.url
        shares = wait_for(lambda: sorted(w["share"] for w in _workers(url)) or None, what="two workers' shares")
        assert shares == ["1 of 2", "2 of 2"]
        wait_for(lambda: http(f"{url}/stats/requests").json()["state"] == "stopped", what="the end", timeout=60)
        result = http(f"{url}/api/runs/1/results.json").json()
        assert result["arrivals"]["planned"] == 160 and all(w["requests"] > 0 for w in result["workers"])
    assert web.process.returncode == 0, "".join(web.stderr)


def _workers(url: str) -> list[dict]:
    workers = http(f"{url}/stats/requests").json()["workers"]
    return workers if len(workers) == 2 and all(w["share"] for w in workers) else []
