"""The SLO windows' judge (``runner.slo``) on real statistics with a scripted clock: when a breach opens, closes and
counts (``for``), what a window without data does, catching up after a stall, and the window math."""

from __future__ import annotations

from typing import Any

import pytest

from runner.scenario.model import Threshold
from runner.scenario.windows import threshold_input
from runner.slo import Slo
from runner.stats import RequestStats, TransactionStats
from runner.stats.period import Period
from runner.stats.windows import SecondRing, window_value

T0 = 1_800_000_000


class Clock:
    def __init__(self) -> None:
        self.now = float(T0)

    def __call__(self) -> float:
        return self.now


def judge(*thresholds: Any) -> tuple[Slo, RequestStats, Clock, list[str]]:
    clock = Clock()
    stats = RequestStats(clock=clock)
    stopped: list[str] = []
    models = [Threshold.model_validate(threshold_input(t)) for t in thresholds]
    slo = Slo.of(
        models,
        sources=lambda: [stats, TransactionStats()],
        started=lambda: float(T0),
        lag=0.0,
        stop=stopped.append,
        clock=clock,
    )
    assert slo is not None
    return slo, stats, clock, stopped


def play(slo: Slo, stats: RequestStats, clock: Clock, seconds: int, plan: Any, per_s: int = 20) -> None:
    """Second by second from T0: ``plan(second)`` gives (ms, failing) of its ``per_s`` requests, or None for no
    request; the judge ticks just after each second turns, as the run's task does."""
    for second in range(seconds):
        step = plan(second)
        if step is not None:
            ms, failing = step
            for i in range(per_s):
                clock.now = T0 + second + i / per_s
                stats.log("GET", "/a", ms, 10, "HTTP 500" if i < failing else None)
        clock.now = T0 + second + 1.01
        slo.tick()


def test_a_breach_opens_counts_after_for_windows_and_aborts_once() -> None:
    slo, stats, clock, stopped = judge({"expect": "p95 < 100ms over 5s", "for": 3, "abort": True, "delay": 0})
    play(slo, stats, clock, 40, lambda s: (10 if s < 10 else 500, 0))
    (window,) = slo.results()
    (breach,) = window["breaches"]
    assert breach["start"] == T0 + 11  # the window [6, 11) holds 20 of 100 slow requests: its p95 is slow
    assert breach["counted"] is True and window["aborted"] is True
    assert len(stopped) == 1 and stopped[0].startswith("threshold p95 < 100ms over 5s for 3 failed (")
    # judged until it counted at (for - 1) x over = 10 s after it opened, and no more
    assert window["judged"] == 21 - 0 and breach["windows"] == 11
    assert breach["end"] is None and window["passed"] is False


def test_a_spike_shorter_than_the_windows_in_a_row_is_recorded_not_counted() -> None:
    slo, stats, clock, stopped = judge({"expect": "p95 < 100ms over 5s", "for": 3, "abort": True, "delay": 0})
    play(slo, stats, clock, 30, lambda s: (500 if 10 <= s < 12 else 10, 0))
    (window,) = slo.results()
    (breach,) = window["breaches"]
    assert (breach["start"], breach["end"]) == (T0 + 11, T0 + 17)  # the first window without the spike: [12, 17)
    assert breach["counted"] is False and not stopped
    assert window["passed"] is True and breach["worst"] == pytest.approx(500, rel=0.01)
    assert slo.verdict(0)["passed"] is True and "(never for 3 in a row)" in slo.verdict(0)["detail"]


def test_a_window_without_data_is_not_judged_but_throughput_falls_to_zero() -> None:
    slo, stats, clock, stopped = judge("p95 < 100ms over 2s", "rps > 10 over 2s", {"expect": "p95 < 1s", "delay": 0})
    play(slo, stats, clock, 20, lambda s: (10, 0) if s < 12 else None)  # then silence
    latency, rps = slo.results()
    assert latency["judged"] == 4 and not latency["breaches"]  # after the delay (10 s) windows ending 10 … 13 have data
    assert rps["breaches"][0]["start"] == T0 + 13 and rps["breaches"][0]["worst"] == 0
    assert rps["passed"] is False and not stopped
    verdict = slo.verdict(1)
    assert verdict["actual"] == 0 and verdict["passed"] is False


def test_a_late_tick_judges_every_second_it_missed() -> None:
    slo, stats, clock, _ = judge({"expect": "errors < 10% over 3s", "delay": 0})
    for second in range(10):
        for i in range(20):
            clock.now = T0 + second + i / 20
            stats.log("GET", "/a", 10, 10, "HTTP 500" if i < 5 else None)
    clock.now = T0 + 10.5  # one tick, late: ten seconds to judge
    slo.tick()
    (window,) = slo.results()
    assert window["judged"] == 10 and window["breaches"][0]["start"] == T0 + 1
    assert window["worst"] == pytest.approx(0.25)


def test_the_window_merges_histograms_not_percentiles() -> None:
    """A p95 over 10 seconds is the p95 of all their requests: 40 slow requests in one second of ten (4 %) are not
    the window's p95 (the worst per-second p95 would say 1 s), but they are its p99."""
    ring = SecondRing(10)
    for second in range(10):
        period = Period()
        for i in range(100):
            period.record(1000.0 if second == 3 and i < 40 else 10.0)
        period.settle()
        ring.push(second, period)
    window = ring.window(10, 10)
    assert window.count == 1000
    assert window_value("p95", window, 10) < 11
    assert window_value("p99", window, 10) == pytest.approx(1000, rel=0.01)
    assert window_value("rps", window, 10) == 100
    ring.push(25, Period())  # older seconds leave the ring
    assert ring.window(26, 10).count == 0 and not ring.seconds
