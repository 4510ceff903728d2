"""Goal-oriented load (LoadRunner's goal-oriented scenario): reach a rate and hold it by adjusting the users.

The closed model starts ``min_users``. Every ``adjust_every`` the rate of the last period is measured (requests,
or transactions, per second: the master's merged figures in a distributed run) and the users are set to
``users x goal / rate`` — with a fixed response time a closed model's rate is proportional to its users — at
most doubled or halved at a time, within ``min_users`` .. ``max_users``. A distributed run's master adjusts at
most every two report intervals: its figures trail its workers' by one. The goal is reached when a period's
rate is within ``REACHED`` of it; the rate held is counted from then to the end.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import gevent

log = logging.getLogger("lrun")

REACHED = 0.05  # a rate within 5 % of the goal has reached it


class GoalControl:
    def __init__(self, live: Any, goal: Any, run_time: float) -> None:
        self.live, self.goal, self.run_time = live, goal, run_time
        self.metric = "rps" if goal.rps is not None else "tps"
        self.target = float(goal.rps if goal.rps is not None else goal.tps)
        self.points: list[dict[str, Any]] = []
        self.reached_at: tuple[float, int] | None = None  # (monotonic time, count then)
        self.reached_after: float | None = None  # seconds from the start
        self.limited: str | None = None
        self._greenlet: gevent.Greenlet | None = None
        self.period = float(goal.adjust_every)
        settings = live.settings
        if settings.processes or settings.master:  # the master hears its workers a report late: measure over 2
            self.period = max(self.period, 2 * settings.report_interval)

    def _count(self) -> int:
        stats = self.live.stats if self.metric == "rps" else self.live.transactions
        return int(stats.total.num_requests)

    def start(self) -> None:
        """Start ``min_users`` for the run time, and the adjusting loop; chain the results' ``goal`` key."""
        runner, users = self.live.runner, self.goal.min_users
        runner.start(users, float(max(1, users)), self.run_time)
        self._greenlet = gevent.spawn(self._loop)
        self.live.goal = self  # the results' goal key (live.assemble)

    def _loop(self) -> None:
        began = time.monotonic()
        last = (began, self._count())
        runner = self.live.runner
        while not runner.stop_reason:
            gevent.sleep(self.period)
            if runner.stop_reason:
                return
            now, count = time.monotonic(), self._count()
            rate = (count - last[1]) / max(1e-9, now - last[0])
            last = (now, count)
            self.adjust(now - began, rate, (now, count))

    def adjust(self, t: float, rate: float, at: tuple[float, int]) -> int:
        """One adjustment after a period whose rate was ``rate``; the users asked for next."""
        goal, runner = self.goal, self.live.runner
        users = max(1, runner.user_count)
        if self.reached_at is None and abs(rate - self.target) <= REACHED * self.target:
            self.reached_at, self.reached_after = at, round(t, 3)
        wanted = round(users * self.target / rate) if rate > 0 else users * 2
        wanted = max(goal.min_users, min(goal.max_users, users * 2, max(users // 2, wanted)))
        if wanted == goal.max_users == users and rate < (1 - REACHED) * self.target and self.limited is None:
            self.limited = (
                f"goal {self.target:g} {self.metric} not reached: {rate:.1f}/s with max_users {goal.max_users} "
                "running (raise max_users, or the system is at its limit)"
            )
            self.live.warn(self.limited)
        if wanted != users:
            runner.set_users(wanted, float(max(1, abs(wanted - users))))  # within about a second
        self.points.append({"t": round(t, 3), "rate": round(rate, 3), "users": users, "next_users": wanted})
        return wanted

    def results(self) -> dict[str, Any]:
        held = None
        if self.reached_at is not None:
            since, count = self.reached_at
            held = round((self._count() - count) / max(1e-9, time.monotonic() - since), 3)
            log.info("goal %g %s reached after %gs; held at %.1f/s", self.target, self.metric, self.reached_after, held)
        return {
            "metric": self.metric,
            "target": self.target,
            "min_users": self.goal.min_users,
            "max_users": self.goal.max_users,
            "adjust_every_s": self.period,
            "reached": self.reached_at is not None,
            "reached_after_s": self.reached_after,
            "held_rate": held,
            "users_final": self.live.runner.users_at_stop or self.live.runner.user_count,
            "limited": self.limited,
            "points": self.points,
        }


def start_goal(live: Any, load: Any) -> float:
    """Start the goal-oriented load of ``load`` (the scenario's ``load`` section) on ``live.runner``; its run time."""
    control = GoalControl(live, load.goal, float(load.run_time))
    control.start()
    return float(load.run_time)
