"""What the run (``drive``), the results assembly and the live outputs may ask of a runner: the ``Runner``
protocol. ``LocalRunner``, ``ArrivalRunner`` and the distributed run's ``MasterRunner`` implement it (mypy checks
each, see the assignments at the end of their modules).

What only some runners can do is an explicit capability, None where the runner has none, never a probe:
``open_model`` (arrivals at a rate: an ``ArrivalRunner``, or a master of an open-model run), ``distributed``
(workers: a master) and ``shared_variables`` (the setup's variables sent on to the workers: a master).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from runner.engine.saturation import Saturation
    from runner.engine.state import RunState
    from runner.report.model import Arrivals, Worker
    from runner.stats import RequestStats


class State(StrEnum):
    """A runner's state, as Locust names them."""

    READY = "ready"
    SPAWNING = "spawning"
    RUNNING = "running"
    CLEANUP = "cleanup"
    STOPPING = "stopping"
    STOPPED = "stopped"
    MISSING = "missing"  # a worker the master has not heard from


@dataclass(frozen=True)
class Stage:
    """Go linearly from the current number of users to ``users`` over ``duration`` seconds."""

    duration: float
    users: int


@dataclass(frozen=True)
class RateStage:
    """Go linearly from the previous rate to ``rate`` arrivals per second over ``duration`` seconds."""

    duration: float
    rate: float


class OpenModel(Protocol):
    """Arrivals at a rate, whatever the system's speed (the open model)."""

    @property
    def max_users(self) -> int | None: ...

    @property
    def intended(self) -> RequestStats: ...  # response times from each arrival's intended start

    def arrival_results(self, *, stopped_early: bool) -> Arrivals | None:
        """How the planned arrivals were started (None before the schedule began). A run stopped early did not
        drop the arrivals not yet due."""
        ...

    def start_arrivals(self, stages: list[RateStage], start_rate: float = 0.0) -> None: ...


class Distributed(Protocol):
    """Workers behind the runner (a master)."""

    def worker_results(self) -> list[Worker]: ...

    def worker_states(self) -> dict[str, int]:
        """Workers by state: running, missing, gone."""
        ...


class SharedVariables(Protocol):
    """Variables the setup defined, sent on to where the users run (a master's workers)."""

    def share_variables(self, variables: dict[str, Any]) -> None: ...


class Runner(Protocol):
    """A test's runner: starts, changes and stops its users, and says how many ran."""

    run_state: RunState  # what the test changes: checkpoint counts, setup variables, pools' rows, gates
    state: State
    stop_reason: str  # why it stopped ("" while it runs)
    user_count_max: int
    users_at_stop: int | None  # the user count when the test was stopped
    saturation: Saturation | None  # told when a spawn rate or an arrival slips (the run sets it)

    @property
    def user_count(self) -> int: ...

    @property
    def target_users(self) -> int: ...

    @property
    def users_started(self) -> int: ...

    @property
    def users_ended_early(self) -> int: ...

    @property
    def interrupted(self) -> Mapping[tuple[str, str], int]: ...  # requests in flight at the stop

    @property
    def open_model(self) -> OpenModel | None: ...

    @property
    def distributed(self) -> Distributed | None: ...

    @property
    def shared_variables(self) -> SharedVariables | None: ...

    def start(self, users: int, spawn_rate: float, run_time: float | None = None) -> None: ...

    def start_stages(self, stages: Sequence[Stage]) -> None: ...

    def set_users(self, target: int, spawn_rate: float) -> None: ...

    def stop(self, reason: str = "stopped") -> None: ...

    def kill_now(self) -> None: ...

    def wait(self, timeout: float | None = None) -> bool: ...
