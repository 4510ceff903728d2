"""The runner in this process: thinking users hold no greenlet, and stopping ends parked users at once."""

from __future__ import annotations

import time
from pathlib import Path

import gevent
from test_cli import demo_reset, demo_stats

from runner.compiler import CompileOptions, compile_scenario
from runner.engine.runner import LocalRunner, State
from runner.scenario import load_scenario
from runner.stats import RequestStats


def test_thinking_users_are_parked_without_a_greenlet(tmp_path: Path, demo_url: str) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(
        "users:\n  u:\n    on_stop: [{get: /about}]\n    sequence: [{get: /items, think: 30s}, {get: /xml}]\n"
    )
    classes = compile_scenario(load_scenario(path), CompileOptions(host=demo_url)).user_classes
    demo_reset(demo_url)
    stats = RequestStats()
    runner = LocalRunner(classes, stats)
    runner.start(20, 1000)
    deadline = time.monotonic() + 20
    while stats.total.num_requests < 20 and time.monotonic() < deadline:
        gevent.sleep(0.05)
    gevent.sleep(0.2)
    users = list(runner.users[0].values())
    assert len(users) == 20 and runner.state == State.RUNNING
    assert all(u.greenlet is None and u.parked is not None for u in users)  # waiting on a timer, not a greenlet

    started = time.monotonic()
    runner.stop("test over")
    assert runner.wait(10)
    assert time.monotonic() - started < 5  # nobody waited out a 30 s think
    assert runner.user_count == 0 and all(u.parked is None for u in users)
    by_path = demo_stats(demo_url)["by_path"]
    assert by_path["GET /items"] == 20
    assert "GET /xml" not in by_path and "GET /about" not in by_path  # stopped mid-iteration: no on_stop
