"""Rendezvous points: the release policies, the timeout between arrivals, and the record of every release."""

from __future__ import annotations

import time

import gevent
import pytest

from runner.engine.rendezvous import Gate, RendezvousPoint


@pytest.mark.parametrize(
    ("kind", "value", "total", "running", "needed"),
    [
        ("users", 50, 10, 10, 50),
        ("percent", 50, 10, 4, 5),
        ("percent", 33, 10, 10, 4),  # 3.3 users: the fourth completes the group
        ("percent_running", 100, 50, 7, 7),
        ("percent_running", 10, 50, 3, 1),  # never less than one
    ],
)
def test_how_many_users_a_policy_needs(kind: str, value: float, total: int, running: int, needed: int) -> None:
    assert Gate("p", kind, value, 30).needed(total, running) == needed


def test_gate_releases_by_policy_then_by_timeout_and_records_both() -> None:
    gate = Gate("sale", "users", 3, timeout=2)
    assert gate.arrive(1, 100.0, 10, 10) is None
    assert gate.arrive(1, 100.5, 10, 10) is None
    release = gate.arrive(1, 101.0, 10, 10)
    assert release is not None and (release.released, release.reason, release.waited_ms) == (3, "policy", 1000.0)
    assert gate.arrive(1, 105.0, 10, 10) is None
    assert gate.check(106.9, 10, 10) is None  # 1.9 s since the last arrival
    late = gate.check(107.0, 10, 10)
    assert late is not None and (late.released, late.reason) == (1, "timeout")
    assert gate.summary()["arrivals"] == 4 and len(gate.summary()["releases"]) == 2
    assert gate.policy == "3 users"


def test_users_wait_and_go_together() -> None:
    point = RendezvousPoint("sale", "users", 5, timeout=10)
    point.enabled = True
    point.population = lambda: (5, 5)
    gone: list[float] = []

    def user(delay: float) -> None:
        gevent.sleep(delay)
        point.wait()
        gone.append(time.monotonic())

    greenlets = [gevent.spawn(user, i * 0.05) for i in range(5)]
    gevent.joinall(greenlets, timeout=5)
    assert len(gone) == 5 and max(gone) - min(gone) < 0.02
    (release,) = point.gate.releases
    assert release.released == 5 and release.reason == "policy" and release.waited_ms >= 190


def test_fewer_running_users_release_a_percent_running_group() -> None:
    """Users that leave while others wait lower what percent_running needs: the watcher notices."""
    running = {"n": 4}
    point = RendezvousPoint("p", "percent_running", 100, timeout=30)
    point.enabled = True
    point.population = lambda: (4, running["n"])
    waiting = [gevent.spawn(point.wait) for _ in range(3)]
    gevent.sleep(0.1)
    assert not any(g.dead for g in waiting)
    running["n"] = 3  # the fourth user stopped before it arrived
    gevent.joinall(waiting, timeout=3)
    assert all(g.dead for g in waiting)
    assert [(r.released, r.reason) for r in point.gate.releases] == [(3, "policy")]


def test_stopping_releases_everybody_and_disabled_points_never_wait() -> None:
    point = RendezvousPoint("p", "users", 10, timeout=30)
    point.enabled = True
    point.population = lambda: (10, 10)
    waiting = [gevent.spawn(point.wait) for _ in range(2)]
    gevent.sleep(0.05)
    point.release_all()
    gevent.joinall(waiting, timeout=2)
    assert all(g.dead for g in waiting)
    assert [(r.released, r.reason) for r in point.gate.releases] == [(2, "stopping")]
    off = RendezvousPoint("q", "users", 10, timeout=30)
    assert off.wait() == 0.0 and off.gate.arrivals == 1 and off.gate.releases == []
