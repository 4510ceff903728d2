"""The ``goal`` key of a results file: how a goal-oriented load (``load: {goal: …}``) reached and held its rate."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class GoalPoint(BaseModel):
    """One adjustment: the rate measured over the last period, and the users asked for next."""

    model_config = ConfigDict(extra="allow")

    t: int | float = Field(description="Seconds since the start of the run.")
    rate: int | float = Field(description="The rate measured over the last adjust_every, per second.")
    users: int = Field(description="Users running when it was measured.")
    next_users: int = Field(description="Users asked for from then on.")


class GoalOutcome(BaseModel):
    """Goal-oriented load: the users were adjusted every ``adjust_every`` to bring the rate to the goal."""

    model_config = ConfigDict(extra="allow")

    metric: Literal["rps", "tps"] = Field(description="rps: requests per second; tps: transactions per second.")
    target: int | float = Field(description="The goal, per second.")
    min_users: int = Field(description="Never fewer users.")
    max_users: int = Field(description="Never more users.")
    adjust_every_s: int | float = Field(
        description="Seconds between adjustments: adjust_every, or two report intervals in a distributed run."
    )
    reached: bool = Field(description="The measured rate came within 5 % of the goal at least once.")
    reached_after_s: int | float | None = Field(None, description="Seconds from the start until it first did.")
    held_rate: int | float | None = Field(
        None, description="The rate from the time the goal was reached to the end, per second; null if never."
    )
    users_final: int = Field(description="Users running at the end.")
    limited: str | None = Field(None, description="Why the goal stayed out of reach (max_users), for people.")
    points: list[GoalPoint] = Field([], description="Each adjustment, in order.")
