"""``lrun capacity``: the search's rules on made-up steps, then real searches against a server of known capacity.

The server (in this test, on loopback) has 4 slots and serves each request in 50 ms: 80 requests/s at most.
Above that its queue grows without end, and so does the latency: the search must find 80/s within 15 %, say in
one line when its first step already fails, and do the same over ``--processes 2``.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from helpers import TOKEN, Cluster, free_port, write

from conftest import ROOT, run_lrun
from runner.capacity.command import BadInput, Options, plan
from runner.capacity.search import Condition, Plan, Search, judge
from runner.report.capacity_model import CapacityStep
from runner.report.model import Results
from runner.scenario import load_scenario

SLOTS, SERVICE_S = 4, 0.05
CAPACITY = SLOTS / SERVICE_S  # 80 requests/s
SCENARIO = "name: slots\nhost: http://127.0.0.1:9\nusers:\n  u:\n    sequence:\n      - get: /work\n"


# ------------------------------------------------------------------------------------------ the rules, no I/O


def _results(p95: float, *, failures: int = 0, planned: int = 100, started: int = 100) -> dict[str, Any]:
    """A step's results as a run writes them, with just what the search reads."""
    total = {"method": "", "name": "Aggregated", "requests": 100, "failures": failures, "failure_ratio": failures / 100}
    total.update(rps=50.0, failures_per_s=failures / 2)
    total["percentiles"] = {"50": p95 / 2, "95": p95, "99": p95 * 1.2}
    return {"total": total, "arrivals": {"planned": planned, "started": started}, "series": [{"users": 3}]}


def _server_like(rate: float) -> float:
    """p95 of a server of capacity 80/s: flat below, steep above."""
    return 60.0 if rate <= CAPACITY else 60.0 + (rate - CAPACITY) * 40


def _search(plan: Plan, p95_at: Any = _server_like) -> Search:
    search = Search(plan)
    for _ in range(40):
        nxt = search.next_rate()
        if isinstance(nxt, str):
            search.stopped = nxt  # type: ignore[attr-defined]
            return search
        rate, phase = nxt
        search.steps.append(judge(plan, rate, phase, _results(p95_at(rate)), 3.0))
    raise AssertionError("the search did not end in 40 steps")


UNTIL = (Condition("p95 < 200ms"),)


def test_raises_then_narrows_to_the_precision() -> None:
    search = _search(Plan(UNTIL, start_rate=10, precision=0.05))
    rates = [s.rate for s in search.steps]
    assert rates[:5] == [10, 20, 40, 80, 160]  # x2 until the first bad step
    assert [s.phase for s in search.steps][:5] == ["raise"] * 5
    assert all(s.phase == "narrow" for s in search.steps[5:])
    best = search.best
    assert best is not None and search.first_bad is not None
    assert (search.first_bad - best.rate) / best.rate <= 0.05
    assert CAPACITY <= best.rate < CAPACITY * 1.05  # 80 + 3.5 ms/(40 ms per /s) of p95 headroom


def test_an_increment_and_the_max_rate_bound_the_raise() -> None:
    search = _search(Plan(UNTIL, start_rate=10, increment=25, max_rate=60), lambda rate: 50.0)
    assert [s.rate for s in search.steps] == [10, 35, 60]  # never above --max-rate
    assert "every step was good up to --max-rate 60/s" in search.stopped  # type: ignore[attr-defined]
    assert search.best is not None and search.best.rate == 60


def test_a_first_bad_step_gives_no_answer() -> None:
    search = _search(Plan(UNTIL, start_rate=200))
    assert len(search.steps) == 1 and search.best is None
    assert search.stopped == "even the first step was not good"  # type: ignore[attr-defined]


def test_dropped_arrivals_make_a_step_bad_and_the_answer_a_lower_bound() -> None:
    plan = Plan(UNTIL, start_rate=10)
    fine = judge(plan, 10, "raise", _results(50), 3.0)
    dropped = judge(plan, 20, "raise", _results(50, planned=100, started=90), 3.0)
    assert fine.good and dropped.conditions_met and dropped.generator_limited and not dropped.good
    search = Search(plan, [fine, dropped])
    assert search.lower_bound and search.best is fine
    one_at_the_end = judge(plan, 20, "raise", _results(50, planned=400, started=399), 3.0)
    assert one_at_the_end.good  # the last instant's arrival racing the stop is not the generator failing


def test_conditions_errors_and_unanswered_requests() -> None:
    plan = Plan((Condition("p95 < 200ms"), Condition("errors < 1%")))
    step = judge(plan, 10, "raise", _results(50, failures=5), 3.0)
    assert not step.good and step.failed == ["errors < 1%: measured 5.00%"]
    cut = {**_results(50), "interrupted": {"total": 3, "requests": []}}
    assert judge(plan, 10, "raise", cut, 3.0).failed == ["3 requests still unanswered 10s after the step's end"]


def test_the_knee_is_the_last_rate_before_p95_bends() -> None:
    search = Search(Plan(UNTIL))
    for rate, p95 in ((10, 50.0), (20, 52.0), (40, 70.0), (80, 90.0), (160, 400.0)):
        search.steps.append(CapacityStep.model_validate({**_step_fields(), "rate": rate, "p95_ms": p95}))
    assert search.knee() == 40  # 90 > 1.5 x 50 at 80/s
    flat = Search(Plan(UNTIL), [s.model_copy(update={"p95_ms": 50.0}) for s in search.steps])
    assert flat.knee() is None


def _step_fields() -> dict[str, Any]:
    return {
        "phase": "raise", "achieved_rate": 1, "planned": 1, "dropped": 0, "late_by_lrun": 0, "requests": 1,
        "rps": 1, "error_ratio": 0, "users_busy": 1, "conditions_met": True, "generator_limited": False,
        "good": True, "duration_s": 1,
    }  # fmt: skip


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"until": ("p95 <",)}, "--until 'p95 <': cannot read threshold"),
        ({"until": ("latency < 2s",)}, "--until 'latency < 2s': unknown metric 'latency'"),
        ({"start_rate": "500"}, "--start-rate 500 is above --max-rate 100"),
        ({"precision": "lots"}, "--precision: 'lots' is not a number"),
        ({"step": "10x"}, "--step:"),
        ({"max_time": "5s"}, "--max-time 5s is shorter than one step (3s + 10s)"),
        ({"max_rate": "1000000"}, "arrivals in a step: at most 3,000,000; lower --max-rate or --step"),
        ({"until": ()}, "say what must hold: --until 'p95 < 200ms'"),
    ],
)
def test_bad_options_say_what_is_wrong(change: dict[str, Any], message: str) -> None:
    given = {
        "until": ("p95 < 200ms",), "start_rate": "10", "factor": "2", "increment": None, "max_rate": "100",
        "precision": "5%", "step": "10s", "warmup": "3s", "max_time": "10m",
    }  # fmt: skip
    with pytest.raises(BadInput) as caught:
        plan(Options(**{**given, **change}), [])
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


# ------------------------------------------------------------------------------------------ real searches


class SlotServer:
    """HTTP on loopback with ``SLOTS`` slots of ``SERVICE_S`` each: a request waits for a free slot."""

    def __init__(self) -> None:
        slots = threading.Semaphore(SLOTS)
        self.served = 0
        lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                with slots:
                    time.sleep(SERVICE_S)
                with lock:
                    server.served += 1
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: object) -> None:
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            request_queue_size = 1024  # a queue of connections, not SYNs dropped (1 s retransmits)

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # a client gone after the step's end

        self.http = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}"
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.http.shutdown()
        self.http.server_close()


@pytest.fixture
def slots() -> Iterator[SlotServer]:
    server = SlotServer()
    try:
        yield server
    finally:
        server.close()


FAST = ["--step", "2s", "--warmup", "1s", "--drain", "3s", "--max-time", "4m"]


def _capacity(tmp_path: Path, url: str, *args: str, timeout: float = 300) -> tuple[Any, dict[str, Any] | None]:
    scenario = write(tmp_path, SCENARIO)
    out = tmp_path / "capacity.json"
    done = run_lrun("capacity", str(scenario), "-H", url, "--json", str(out), *FAST, *args, timeout=timeout)
    return done, json.loads(out.read_text()) if out.exists() else None


@pytest.mark.e2e
def test_the_search_finds_the_servers_capacity(tmp_path: Path, slots: SlotServer) -> None:
    html = tmp_path / "capacity.html"
    done, results = _capacity(
        tmp_path, slots.url, "--until", "p95 < 200ms", "--until", "errors < 1%", "--start-rate", "20",
        "--precision", "10%", "--html", str(html),
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert results is not None
    capacity = Results.model_validate(results).capacity
    assert capacity is not None and capacity.capacity is not None
    assert abs(capacity.capacity - CAPACITY) <= 0.15 * CAPACITY, done.stdout
    steps = capacity.steps
    assert [s.rate for s in steps][:3] == [20, 40, 80] or steps[2].rate == 80
    assert any(not s.good for s in steps) and any(s.phase == "narrow" for s in steps)
    assert capacity.first_bad is not None and capacity.first_bad > capacity.capacity
    assert [t["expression"] for t in results["thresholds"]] == ["p95 < 200ms", "errors < 1%"]
    assert all(t["passed"] for t in results["thresholds"]) and results["exit_code"] == 0  # judged on the best step
    measured = sum(s.requests for s in steps)
    assert slots.served >= measured  # the warm-ups' requests are served too, and not judged
    assert len(done.stdout.splitlines()) == len(steps) + 4  # heading, header, a row per step, end, answer
    assert done.stdout.splitlines()[-1].startswith(f"capacity: {capacity.capacity:g} arrivals/s met every condition")
    page = html.read_text()
    assert 'id="capacity"' in page and 'id="chart-capacity-latency"' in page and '<path class="line s0"' in page


@pytest.mark.e2e
def test_a_search_whose_first_step_fails_says_so(tmp_path: Path, slots: SlotServer) -> None:
    done, results = _capacity(tmp_path, slots.url, "--until", "p95 < 200ms", "--start-rate", "300")
    assert done.returncode == 1, done.stdout + done.stderr
    answer = [line for line in done.stdout.splitlines() if line.startswith("capacity:")]
    assert len(answer) == 1
    assert answer[0].startswith("capacity: no answer: even the first step (300/s) failed (p95 < 200ms: measured")
    assert answer[0].endswith("start lower with --start-rate")
    assert results is not None and results["capacity"]["capacity"] is None and len(results["capacity"]["steps"]) == 1


@pytest.mark.e2e
def test_bad_input_is_one_line_and_exit_2(tmp_path: Path) -> None:
    scenario = write(tmp_path, SCENARIO)
    for args, text in (
        (["--until", "p95 < fast"], "--until 'p95 < fast': 'fast' is not a time"),
        (["--until", "p95 < 1s", "--max-users", "0"], "--max-users: 0 is out of range (1 to 1e+06)"),
    ):
        done = run_lrun("capacity", str(scenario), "-H", "http://127.0.0.1:9", *args, timeout=60)
        assert done.returncode == 2 and text in done.stderr and len(done.stderr.strip().splitlines()) == 1, done


@pytest.mark.e2e
def test_the_search_over_two_processes(tmp_path: Path, slots: SlotServer) -> None:
    done, results = _capacity(
        tmp_path, slots.url, "--until", "p95 < 300ms", "--start-rate", "40", "--max-rate", "120",
        "--precision", "10%", "--processes", "2", timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert results is not None
    capacity = Results.model_validate(results).capacity
    assert capacity is not None and capacity.capacity is not None
    assert abs(capacity.capacity - CAPACITY) <= 0.15 * CAPACITY, done.stdout
    assert len(results["workers"]) == 2  # the best step's results: a distributed run's
    assert slots.served >= sum(s.requests for s in capacity.steps)


def test_a_condition_may_name_a_request() -> None:
    found = plan(
        Options(("GET /products: p95 < 100ms", "errors < 1%"), "10", "2", None, "100", "5%", "10s", "3s", "10m"), []
    )
    assert found.conditions == (Condition("p95 < 100ms", "GET /products"), Condition("errors < 1%"))


def test_the_guides_yaml_examples_are_valid(tmp_path: Path) -> None:
    blocks = (ROOT / "docs" / "how-to" / "capacity.md").read_text().split("```yaml\n")[1:]
    assert blocks
    for number, block in enumerate(blocks):
        load_scenario(write(tmp_path, block.split("```")[0], f"example-{number}.yaml"))


@pytest.mark.e2e
def test_the_search_over_a_master_and_a_worker(tmp_path: Path, slots: SlotServer, cluster: Cluster) -> None:
    """The workers stay connected from step to step: one worker process serves the whole search."""
    scenario, out, port = write(tmp_path, SCENARIO), tmp_path / "capacity.json", free_port()
    master = cluster.start(
        "capacity", str(scenario), "-H", slots.url, "--until", "p95 < 300ms", "--start-rate", "40",
        "--max-rate", "120", "--precision", "10%", "--master", "--master-bind-host", "127.0.0.1",
        "--master-bind-port", str(port), "--master-token", TOKEN, "--json", str(out), *FAST, name="master",
    )  # fmt: skip
    worker = cluster.worker(port, name="w1")
    assert master.wait(400) == 0, master.out + master.err
    assert worker.wait(60) == 0, worker.err  # told to quit once, at the search's end
    capacity = Results.model_validate(json.loads(out.read_text())).capacity
    assert capacity is not None and capacity.capacity is not None
    assert abs(capacity.capacity - CAPACITY) <= 0.15 * CAPACITY, master.out
    assert len(capacity.steps) >= 3 and slots.served >= sum(s.requests for s in capacity.steps)
