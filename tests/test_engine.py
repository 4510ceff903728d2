"""The runner in this process: thinking users hold no greenlet, and stopping ends parked users at once."""

from __future__ import annotations

import time
from pathlib import Path

import gevent
from helpers import demo_reset, demo_stats

from runner.compile.compiler import CompileOptions, compile_scenario
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


class Recorder:
    """A runtime that records the order of set steps (through a 'log' list variable) and nothing else."""

    trace = False
    think = False

    def __init__(self) -> None:
        self.transactions: list[tuple[str, str | None]] = []

    def on_request(self, user, result) -> None:  # type: ignore[no-untyped-def]
        pass

    def on_response(self, user, method, name, response, failure) -> None:  # type: ignore[no-untyped-def]
        pass

    def on_think(self, user, seconds) -> None:  # type: ignore[no-untyped-def]
        pass

    def on_warning(self, user, message) -> None:  # type: ignore[no-untyped-def]
        pass

    def on_error(self, user, error) -> None:  # type: ignore[no-untyped-def]
        raise AssertionError(f"unexpected error: {error}")

    def on_transaction(self, user, transaction, failure) -> None:  # type: ignore[no-untyped-def]
        self.transactions.append((transaction.name, failure))


def test_nested_loops_branches_and_transactions_run_in_order(tmp_path: Path) -> None:
    """Loops and branches are jumps in a flat program: nesting, empty loops and else branches all land right."""
    path = tmp_path / "s.yaml"
    path.write_text(
        """
host: http://127.0.0.1:9
variables: {log: [], empty: []}
users:
  u:
    sequence:
      - loop: 2
        as: outer
        steps:
          - transaction: inner
            steps:
              - loop: "{{ ['a', 'b'] }}"
                as: letter
                steps:
                  - if: "letter == 'a'"
                    then: [{set: {log: "{{ log + [outer ~ letter] }}"}}]
                    else: [{set: {log: "{{ log + [outer ~ '!'] }}"}}, {think: 1s}]
      - loop: "{{ empty }}"
        steps: [{set: {log: "{{ log + ['never'] }}"}}]
      - if: false
        then: [{set: {log: "{{ log + ['no'] }}"}}]
      - set: {log: "{{ log + ['end'] }}"}
"""
    )
    (cls,) = compile_scenario(load_scenario(path), CompileOptions()).user_classes
    runtime = Recorder()
    user = cls(runtime, 1)
    user.run(iterations=2)
    assert user.vars["log"] == ["1a", "1!", "2a", "2!", "end"] * 2
    assert runtime.transactions == [("inner", None)] * 4


def test_the_open_model_gives_each_request_to_the_request_hook_too(tmp_path: Path) -> None:
    """The scenario module's on_request and the API's request listeners hear the open model's requests (they
    used to hear the closed model's only)."""
    from runner.engine.arrivals import ArrivalRunner, RateStage

    (tmp_path / "calls.py").write_text('def publish(user):\n    user.report("queue", "publish", 1.5)\n')
    (tmp_path / "s.yaml").write_text("python: calls.py\nusers: {u: {sequence: [{call: publish}]}}\n")
    classes = compile_scenario(
        load_scenario(tmp_path / "s.yaml"), CompileOptions(host="http://127.0.0.1:9")
    ).user_classes
    heard: list[str] = []
    stats, intended = RequestStats(), RequestStats()
    runner = ArrivalRunner(
        classes, stats, intended, max_users=5, request_hook=lambda user, result: heard.append(result.name)
    )
    runner.start_arrivals([RateStage(0.5, 20.0)], 20.0)
    assert runner.wait(20)
    assert stats.total.num_requests > 0
    assert heard == ["publish"] * stats.total.num_requests
    assert intended.total.num_requests == stats.total.num_requests
