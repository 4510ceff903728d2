"""What one test run owns and changes; the compiled scenario and the settings stay as they were.

A ``RunState`` is made per test (``compiled.fresh_state()``), so a second test of the same compiled scenario in
the same process (the web UI, the Python API) starts with fresh checkpoint counts, setup variables, data pools'
row sources and rendezvous gates. The compiled steps find the test's pools and points here, by name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from runner.engine.rendezvous import RendezvousPoint, RendezvousSpec
from runner.stats.checks import CheckStats

if TYPE_CHECKING:
    from runner.engine.rows import Pooled, RowSource


@dataclass
class RunState:
    checks: CheckStats = field(default_factory=CheckStats)
    setup_vars: dict[str, Any] = field(default_factory=dict)  # what the scenario's setup steps defined
    run_time: float | None = None  # seconds the effective load shape lasts (-t, the stages, the arrivals)
    pools: dict[str, RowSource] = field(default_factory=dict)  # which row each data pool hands out next
    points: dict[str, RendezvousPoint] = field(default_factory=dict)  # the rendezvous gates, by name

    def rows(self, pool: Pooled) -> RowSource:
        """The row source of ``pool`` in this test (made on first use where ``fresh_state`` did not make it)."""
        rows = self.pools.get(pool.name)
        if rows is None:
            rows = self.pools[pool.name] = pool.new_rows()
        return rows

    def point(self, spec: RendezvousSpec) -> RendezvousPoint:
        """The rendezvous point ``spec`` in this test (made on first use, switched off, like in ``debug``)."""
        point = self.points.get(spec.name)
        if point is None:
            point = self.points[spec.name] = RendezvousPoint.of(spec)
        return point
