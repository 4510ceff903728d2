"""Goal-oriented load (``load: {goal: {rps: N}}``): the users are adjusted until the rate reaches the goal.

A real server on loopback (many slots, 20 ms each) and a user that thinks 200 ms: one user makes about 4.5
requests a second, so 60/s needs about 13 users; the server counts what arrives.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from helpers import run_json, write

from conftest import run_lrun
from runner.report.html import render_html
from runner.report.model import Results

pytestmark = pytest.mark.e2e


class Counting:
    def __init__(self) -> None:
        self.served = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                time.sleep(0.02)
                server.served += 1
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: object) -> None:
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            request_queue_size = 256

        self.http = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}"
        threading.Thread(target=self.http.serve_forever, daemon=True).start()


@pytest.fixture
def server() -> Iterator[Counting]:
    counting = Counting()
    try:
        yield counting
    finally:
        counting.http.shutdown()
        counting.http.server_close()


def _scenario(tmp_path: Path, url: str, goal: str) -> Path:
    text = f"name: goal\nhost: {url}\nload:\n  run_time: 16s\n  goal: {goal}\nthink: 200ms\n"
    return write(tmp_path, text + "users:\n  u:\n    sequence:\n      - get: /work\n")


def test_the_users_are_adjusted_to_reach_and_hold_the_goal(tmp_path: Path, server: Counting) -> None:
    path = _scenario(tmp_path, server.url, "{rps: 60, min_users: 4, max_users: 30, adjust_every: 2s}")
    done, results = run_json(tmp_path, str(path))
    assert done.returncode == 0, done.stderr
    goal: dict[str, Any] = results["goal"]
    assert goal["reached"] and goal["limited"] is None, goal
    assert abs(goal["held_rate"] - 60) <= 6, goal  # held within 10 %
    assert goal["points"][0]["users"] == 4 and max(p["next_users"] for p in goal["points"]) > 8
    assert server.served >= results["total"]["requests"]  # what lrun counted, the server saw
    page = render_html(Results.model_validate(results))
    assert 'id="goal"' in page and "<strong>reached</strong>" in page and 'id="goal-points"' in page


def test_a_goal_out_of_reach_says_why(tmp_path: Path, server: Counting) -> None:
    path = _scenario(tmp_path, server.url, "{rps: 200, min_users: 1, max_users: 2, adjust_every: 2s}")
    done, results = run_json(tmp_path, str(path))
    goal = results["goal"]
    assert not goal["reached"] and goal["held_rate"] is None
    assert goal["limited"].startswith("goal 200 rps not reached:") and "max_users 2" in goal["limited"]
    assert goal["limited"] in done.stderr


@pytest.mark.parametrize(
    ("goal", "message"),
    [
        ("{rps: 10, tps: 5}", "a goal is either rps: or tps: (exactly one of them)"),
        ("{rps: 10, min_users: 5, max_users: 2}", "min_users 5 is above max_users 2"),
    ],
)
def test_a_bad_goal_is_one_line(tmp_path: Path, goal: str, message: str) -> None:
    path = _scenario(tmp_path, "http://127.0.0.1:9", goal)
    done = run_lrun("validate", str(path), timeout=60)
    assert done.returncode == 2 and message in done.stderr + done.stdout, done


def test_the_guides_yaml_examples_are_valid(tmp_path: Path) -> None:
    from conftest import ROOT
    from runner.scenario import load_scenario

    blocks = (ROOT / "docs" / "how-to" / "goal-oriented-load.md").read_text().split("```yaml\n")[1:]
    assert blocks
    for number, block in enumerate(blocks):
        load = load_scenario(write(tmp_path, block.split("```")[0], f"example-{number}.yaml")).model.load
        assert load.goal is not None


def test_the_goal_over_two_processes(tmp_path: Path, server: Counting) -> None:
    path = _scenario(tmp_path, server.url, "{rps: 60, min_users: 4, max_users: 30, adjust_every: 2s}")
    done, results = run_json(tmp_path, str(path), "--processes", "2", "--report-interval", "1s", timeout=300)
    assert done.returncode == 0, done.stderr
    goal = results["goal"]
    assert goal["adjust_every_s"] == 2 and goal["reached"], goal  # two report intervals of the master
    assert abs(goal["held_rate"] - 60) <= 9, goal  # within 15 %: the master's figures trail by a report
    assert len(results["workers"]) == 2 and server.served >= results["total"]["requests"]


class _Runner:
    def __init__(self, users: int) -> None:
        self.user_count, self.asked = users, []  # type: ignore[var-annotated]

    def set_users(self, users: int, rate: float) -> None:
        self.asked.append(users)
        self.user_count = users


class _Live:
    def __init__(self, users: int) -> None:
        from runner.config import RunSettings

        self.runner, self.settings, self.warnings = _Runner(users), RunSettings(), []  # type: ignore[var-annotated]
        self.extra_results = None

    def warn(self, message: str) -> None:
        self.warnings.append(message)


def test_the_adjustment_rule() -> None:
    from runner.goal import GoalControl
    from runner.scenario.model import Goal

    live = _Live(10)
    control = GoalControl(live, Goal(rps=100, min_users=2, max_users=30), 60.0)
    assert control.adjust(5, 80.0, (5.0, 400)) == 12  # proportional: 10 x 100 / 80 (rounded)
    assert control.adjust(10, 20.0, (10.0, 500)) == 24  # at most doubled at a time (12 x 5 = 60)
    assert control.adjust(15, 400.0, (15.0, 2500)) == 12  # at most halved at a time
    assert control.adjust(20, 98.0, (20.0, 3000)) == 12 and control.reached_after == 20  # within 5 %: reached
    live.runner.user_count = 30
    assert control.adjust(25, 50.0, (25.0, 3300)) == 30 and live.warnings == [control.limited]
    assert control.limited is not None and "max_users 30" in control.limited
    assert control.adjust(30, 50.0, (30.0, 3600)) == 30 and len(live.warnings) == 1  # said once


def test_a_goal_in_transactions_per_second(tmp_path: Path, server: Counting) -> None:
    """tps: the transactions' own rate is measured; each transaction here is two requests."""
    text = (
        f"name: goal\nhost: {server.url}\nload:\n  run_time: 14s\n"
        "  goal: {tps: 20, min_users: 2, max_users: 30, adjust_every: 2s}\nthink: 200ms\n"
        "users:\n  u:\n    sequence:\n      - transaction: pair\n        steps:\n"
        "          - get: /work\n          - get: /work\n"
    )
    done, results = run_json(tmp_path, str(write(tmp_path, text)))
    goal = results["goal"]
    assert done.returncode == 0, done.stderr
    assert goal["metric"] == "tps" and goal["reached"], goal
    assert abs(goal["held_rate"] - 20) <= 3, goal  # transactions/s, not the requests' 40/s
    assert results["total"]["requests"] >= 2 * results["transactions"]["total"]["requests"] - 40
