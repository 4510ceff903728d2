"""A data pool as compiled: its rows plus the update and out-of-rows policies (never changed by a run).

Before each step that reads the pool, ``refresh(user, rows)`` applies them to a user with the test's own row source
(``RunState.rows(pool)``: a second test in the same process starts from the first row again).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from runner.engine.flow import StopTest, StopUser
from runner.engine.rows import Held, Holder, RowSource, make_source
from runner.scenario.data import PoolData

if TYPE_CHECKING:
    from runner.scenario.model import Pool as PoolSpec


class Pool:
    """A pool as compiled: data and policies. Which rows are handed out is a test's (its ``RowSource``); users
    hold rows in ``user.pool_rows``."""

    def __init__(self, name: str, data: PoolData, spec: PoolSpec, source: str = "inline") -> None:
        self.name = name
        self.data = data
        self.order = spec.order
        self.update = spec.update
        self.policy = spec.empty_policy
        self.wait = spec.wait_seconds  # how long a user waits for a row given back (unique + cycle), 0: never
        self.returns = self.order == "unique" and self.policy == "cycle"  # rows given back are handed out again
        self.source_name = source

    def new_rows(self) -> RowSource:
        """A fresh row source for a test: the first row (or a random one) comes next."""
        return make_source(self.order, len(self.data), self.policy)

    def refresh(self, user: Holder, rows: RowSource) -> None:
        """Before a step that reads the pool: give the user a new row from ``rows`` if its update policy says so.

        With unique + cycle the user gives its row back first (it may get it again when nobody else wants one),
        and a user that finds no free row waits up to the pool's ``wait`` for one before it stops."""
        held = user.pool_rows.get(self.name)
        if held is not None and (
            self.update == "once" or (self.update == "each_iteration" and held.epoch == max(user.iteration, 1))
        ):
            return
        if held is not None and self.returns:
            rows.give_back([held.index])
            del user.pool_rows[self.name]
            held = None
        taken = rows.take(1)
        index = taken[0] if taken else self._wait(rows)
        if index is None:
            self._out_of_rows(user, held, rows)
            return
        row = self.data.row(index)
        user.pool_rows[self.name] = Held(index, row, max(user.iteration, 1))
        user.vars[self.name] = row

    def _wait(self, rows: RowSource) -> int | None:
        if self.wait <= 0:
            return None
        started = time.monotonic()
        index = rows.wait(self.wait)
        rows.note(waited=time.monotonic() - started)
        return index

    def _out_of_rows(self, user: Holder, held: Held | None, rows: RowSource) -> None:
        what = f"data pool '{self.name}' ran out of rows ({len(self.data)} handed out)"
        if self.policy == "keep_last" and held is not None:
            held.epoch = max(user.iteration, 1)
            return
        if self.policy == "stop_test":
            raise StopTest(what, failed=False)
        if self.policy == "cycle":  # unique + cycle: every row is held by another user right now
            waited = f" (waited {self.wait:g}s for one)" if self.wait > 0 else ""
            what = f"data pool '{self.name}': all {len(self.data)} rows are held by other users{waited}"
        rows.note(stopped=True)
        if not rows.warned:  # a warning (in the results too), once: the pool's users_stopped counts them all
            rows.warned = True
            user.warn(f"{what}: users stop (counted in the results' pools: users_stopped)")
        raise StopUser(what)

    def release(self, user: Holder, rows: RowSource) -> None:
        """The user ends: a unique row it holds is free again (with cycle)."""
        held = user.pool_rows.pop(self.name, None)
        if held is not None and self.returns:
            rows.give_back([held.index])

    def summary(self, rows: RowSource) -> dict[str, Any]:
        """This pool's part of the results, with the test's row source."""
        return {
            "name": self.name,
            "source": self.source_name,
            "rows": len(self.data),
            "order": self.order,
            "update": self.update,
            "when_empty": self.policy,
            "handed_out": rows.handed_out,
            "dry": rows.dry_at is not None,  # a take found no row (the source notes when)
            "dry_at": rows.dry_at,
            "users_stopped": rows.users_stopped,
            "waits": rows.waits,
            "wait_time": round(rows.wait_time, 3),
        }
