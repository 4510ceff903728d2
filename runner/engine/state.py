"""What one test run owns and changes; the compiled scenario and the settings stay as they were.

A ``RunState`` is made per test, so a second test in the same process (the web UI, the Python API) starts with
fresh checkpoint counts and setup variables.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from runner.stats.checks import CheckKey, CheckStats


@dataclass
class RunState:
    checks: CheckStats = field(default_factory=CheckStats)
    setup_vars: dict[str, Any] = field(default_factory=dict)  # what the scenario's setup steps defined
    run_time: float | None = None  # seconds the effective load shape lasts (-t, the stages, the arrivals)

    @classmethod
    def fresh(cls, checkpoints: tuple[CheckKey, ...]) -> RunState:
        return cls(CheckStats(checkpoints))
