"""The capacity search, with no I/O: which rate to try next, how a step is judged, the answer and the knee.

Raise: the first step runs at ``start_rate``; each next one at ``rate x factor`` (or ``rate + increment``), never
above ``max_rate``, until a step is bad. Narrow: bisect between the highest good rate below the lowest bad one and
that bad one until ``(bad - good) / good <= precision``. A step is good when every condition held in its judged
part, no request was still unanswered ``drain_s`` after the step's end (the slowest would go unseen), and the
generator kept up (at most ``DROP_SHARE`` of the arrivals dropped: never started by the step's end).

The knee (``knee``): by rate, the last step before the first whose p95 exceeds ``KNEE_FACTOR`` x the p95 of the
lowest rate: up to there latency is flat, after it bends.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any, Literal

from runner.report.capacity_model import CapacityStep
from runner.stats import Snapshot
from runner.thresholds import evaluate, parse_rule

KNEE_FACTOR = 1.5
# Arrivals never started above this share (and one a process) fail a step. A run's last instants race its stop: a
# worker hears the master's stop a message late, and the arrivals it had still to start then count as dropped.
DROP_SHARE = 0.05


@dataclass(frozen=True)
class Condition:
    """One ``--until`` condition: a threshold expression, on all requests or on one (``request``)."""

    expect: str
    request: str | None = None

    @property
    def label(self) -> str:
        return f"{self.request}: {self.expect}" if self.request else self.expect


@dataclass(frozen=True)
class Plan:
    conditions: tuple[Condition, ...]
    start_rate: float = 10.0
    factor: float = 2.0
    increment: float | None = None  # given: the rate rises by this instead of by the factor
    max_rate: float = 10_000.0
    precision: float = 0.05
    step_s: float = 10.0
    warmup_s: float = 3.0
    max_time_s: float = 600.0
    drain_s: float = 10.0  # after a step's last arrival, its requests in flight may take this long to finish

    @property
    def growth(self) -> str:
        return f"+{self.increment:g}/s" if self.increment else f"x{self.factor:g}"


def judge(
    plan: Plan, rate: float, phase: Literal["raise", "narrow"], results: dict[str, Any], wall_s: float
) -> CapacityStep:
    """A finished step's figures and verdict, from its run's results (as the JSON file holds them); ``wall_s``: how
    long the step took, start-up included."""
    total = results.get("total") or {}
    arrivals = results.get("arrivals") or {}
    planned = int(arrivals.get("planned") or 0)
    started = int(arrivals.get("started") or 0)
    dropped = int(arrivals.get("dropped") or max(0, planned - started))
    late = int(arrivals.get("late_by_lrun") or 0)
    failed = []
    figures = Snapshot.of_results(results)
    for condition in plan.conditions:
        verdict = evaluate(parse_rule(condition.expect), condition.request, figures)
        if not verdict["passed"]:
            failed.append(f"{condition.label}: {verdict['detail']}")
    unanswered = int((results.get("interrupted") or {}).get("total") or 0)
    if unanswered:  # a request that never finished is slower than any measured one: none may go unseen
        failed.append(f"{unanswered} requests still unanswered {plan.drain_s:g}s after the step's end")
    processes = len(results.get("workers") or []) or 1  # each may lose its last instant's arrival to the stop
    limited = dropped > max(DROP_SHARE * planned, processes)  # not late starts: a request is timed from its start
    percentiles = total.get("percentiles") or {}
    users = [p.get("users") or 0 for p in results.get("series") or []]
    return CapacityStep(
        rate=rate,
        phase=phase,
        achieved_rate=round(started / (plan.warmup_s + plan.step_s), 3),
        planned=planned,
        dropped=dropped,
        late_by_lrun=late,
        requests=int(total.get("requests") or 0),
        rps=total.get("rps") or 0.0,
        p50_ms=percentiles.get("50"),
        p95_ms=percentiles.get("95"),
        p99_ms=percentiles.get("99"),
        error_ratio=total.get("failure_ratio") or 0.0,
        users_busy=max(users, default=int(results.get("users_max") or 0)),
        conditions_met=not failed,
        generator_limited=limited,
        good=not failed and not limited,
        failed=failed,
        duration_s=round(wall_s, 3),
        warnings=list(results.get("warnings") or []),
    )


def _rate(value: float) -> float:
    """Rates are asked with 2 decimals: enough for any precision, and readable."""
    return round(value, 2)


@dataclass
class Search:
    plan: Plan
    steps: list[CapacityStep] = field(default_factory=list)

    @property
    def first_bad(self) -> float | None:
        return min((s.rate for s in self.steps if not s.good), default=None)

    @property
    def best(self) -> CapacityStep | None:
        """The good step of the highest rate below the first bad one: the answer."""
        bad = self.first_bad
        good = [s for s in self.steps if s.good and (bad is None or s.rate < bad)]
        return max(good, key=lambda s: s.rate, default=None)

    def next_rate(self) -> tuple[float, Literal["raise", "narrow"]] | str:
        """The next step's rate and phase, or why the search is over."""
        plan = self.plan
        if not self.steps:
            return _rate(min(plan.start_rate, plan.max_rate)), "raise"
        bad, best = self.first_bad, self.best
        if bad is None:
            last = self.steps[-1].rate
            if last >= plan.max_rate:
                return f"every step was good up to --max-rate {plan.max_rate:g}/s: the capacity is at least that"
            up = last + plan.increment if plan.increment else last * plan.factor
            return _rate(min(up, plan.max_rate)), "raise"
        if best is None:
            return "even the first step was not good"
        if (bad - best.rate) / best.rate <= plan.precision + 1e-9:
            return f"narrowed to {plan.precision * 100:g} % (between {best.rate:g}/s and {bad:g}/s)"
        middle = _rate((best.rate + bad) / 2)
        if middle in (best.rate, bad):
            return f"narrowed as far as rates go (between {best.rate:g}/s and {bad:g}/s)"
        return middle, "narrow"

    @property
    def lower_bound(self) -> bool:
        """The first bad step met every condition; only the generator failed it."""
        bad = self.first_bad
        return any(s.rate == bad and s.conditions_met and s.generator_limited for s in self.steps)

    def knee(self) -> float | None:
        """See the module docstring: the last rate before p95 bends above KNEE_FACTOR x its lowest-rate value."""
        by_rate: dict[float, CapacityStep] = {}
        for step in self.steps:
            if step.p95_ms is not None:
                by_rate[step.rate] = step  # a rate run twice: its latest figures
        ordered = [by_rate[r] for r in sorted(by_rate)]
        if len(ordered) < 2:
            return None
        base = ordered[0].p95_ms or 0.0
        for before, step in itertools.pairwise(ordered):
            if (step.p95_ms or 0.0) > KNEE_FACTOR * base:
                return before.rate
        return None
