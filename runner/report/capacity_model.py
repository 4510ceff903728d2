"""The ``capacity`` key of a results file: what ``lrun capacity`` searched, measured at each step, and found.

Its own module (a field of ``model.Results`` names it), so the run's results format and the search's grow apart.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Ms = int | float | None


class CapacityStep(BaseModel):
    """One step of the search: the open model held at one arrival rate, judged after its warm-up."""

    model_config = ConfigDict(extra="allow")

    rate: int | float = Field(description="Arrivals per second asked for.")
    phase: Literal["raise", "narrow"] = Field(
        description="raise: the rate went up by the growth rule; narrow: a bisection between good and bad."
    )
    achieved_rate: int | float = Field(
        description="Arrivals per second that started, over the whole step (warm-up included)."
    )
    planned: int = Field(description="Arrivals the step's schedule called for (warm-up included).")
    dropped: int = Field(description="Planned arrivals that never started (every user slot was busy until the end).")
    late_by_lrun: int = Field(
        description="Arrivals that found a slot free yet started late (lrun's own delay; shown, not judged)."
    )
    requests: int = Field(description="Requests in the judged part (after the warm-up).")
    rps: int | float = Field(description="Requests per second in the judged part.")
    p50_ms: Ms = Field(None, description="Median response time in the judged part, ms.")
    p95_ms: Ms = Field(None, description="95th percentile response time in the judged part, ms.")
    p99_ms: Ms = Field(None, description="99th percentile response time in the judged part, ms.")
    error_ratio: int | float = Field(description="Failed requests / requests in the judged part (0.01 is 1 %).")
    users_busy: int = Field(description="The most users running at once in the judged part.")
    conditions_met: bool = Field(description="Every --until condition held in the judged part.")
    generator_limited: bool = Field(
        description="More than 5 % of the arrivals were dropped (never started): the generator, or max_users, could "
        "not keep up; the step is not good, whatever its figures."
    )
    good: bool = Field(description="conditions_met and not generator_limited.")
    failed: list[str] = Field([], description='The conditions that did not hold, as "p95 < 200ms: measured 412.0 ms".')
    duration_s: int | float = Field(description="How long the step took, warm-up and start-up included, seconds.")
    warnings: list[str] = Field([], description="What the step's run warned of (dropped arrivals, lrun's CPU …).")


class Capacity(BaseModel):
    """``lrun capacity``: the highest open-model arrival rate that met every condition, and how it was found."""

    model_config = ConfigDict(extra="allow")

    until: list[str] = Field(description='The conditions every good step met ("p95 < 200ms", "errors < 1%").')
    start_rate: int | float = Field(description="The first step's arrival rate, per second.")
    growth: str = Field(description='How the rate rose between steps: "x2" (a factor) or "+10/s" (an increment).')
    max_rate: int | float = Field(description="The search never asked for more than this rate.")
    precision: int | float = Field(
        description="Narrowing stopped when (first bad - last good) / last good was at most this (0.05 is 5 %)."
    )
    step_s: int | float = Field(description="Seconds each step was judged over.")
    warmup_s: int | float = Field(description="Seconds at the step's rate before judging started.")
    max_time_s: int | float = Field(description="The search's time budget, seconds.")
    steps: list[CapacityStep] = Field([], description="Every step, in the order run.")
    capacity: int | float | None = Field(
        None, description="The answer: the highest rate (arrivals/s) whose step was good; null when none was."
    )
    first_bad: int | float | None = Field(
        None, description="The lowest rate whose step was not good; null when every step was good."
    )
    lower_bound: bool = Field(
        False,
        description="The first bad step was bad only because the generator could not keep up: the real capacity "
        "may be higher than the answer.",
    )
    knee: int | float | None = Field(
        None,
        description="The highest rate before latency bends: the last step (by rate) before the first whose p95 "
        "exceeds 1.5 x the p95 of the lowest rate; null when no step bent.",
    )
    stopped: str = Field(description="Why the search ended, for people.")
    elapsed_s: int | float = Field(description="How long the search took, seconds.")
