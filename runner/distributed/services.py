"""What the master serves its workers besides their targets: data pools' rows, rendezvous, user ids, setup.

Requests (protocol messages with a ``REPLY``) are answered by ``Services.answer``; rendezvous arrivals are
counted here against every worker's users, and released to all active workers at once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import gevent

from runner.distributed import protocol as p
from runner.distributed.cluster import WorkerInfo
from runner.engine.runner import State

if TYPE_CHECKING:
    from runner.distributed.master import MasterRunner

log = logging.getLogger("lrun")

MAX_USER_IDS = 1_000_000  # user ids handed out in one answer
MAX_POOL_ROWS = 1000  # rows of a data pool handed out in one answer


class Services:
    """The cluster-wide state the master keeps for its workers' users (see the module docstring)."""

    def __init__(self, master: MasterRunner) -> None:
        self.master = master
        self.variables: dict[str, Any] = {}  # what the setup steps and hooks defined, for every user
        self._next_user_id = 1  # user ids are the cluster's: 1..N across workers
        self._rendezvous_watch: gevent.Greenlet | None = None
        self._requests: dict[type[p.Message], Callable[[WorkerInfo, Any], p.Message]] = {
            p.Ping: self.ping,
            p.PoolTake: self.pool_take,
            p.UserIds: self.user_ids,
        }

    def answer(self, worker: WorkerInfo, request: Any) -> p.Message:
        """The reply to a request; ``RequestFailed`` for one this master does not handle, or that failed."""
        handler = self._requests.get(type(request))
        if handler is None:
            return p.RequestFailed(request.request_id, f"{request.KIND} is not handled by this master")
        try:
            return handler(worker, request)
        except Exception as exc:
            log.exception("internal error answering %s from %s", request.KIND, worker.id)
            return p.RequestFailed(request.request_id, f"the master failed: {exc}")

    def ping(self, worker: WorkerInfo, ping: p.Ping) -> p.Message:
        return p.Pong(ping.request_id, ping.sent)

    def user_ids(self, worker: WorkerInfo, ask: p.UserIds) -> p.Message:
        """The next ``count`` user ids of the cluster: users are numbered 1, 2, 3 … in the order workers ask."""
        count = max(0, min(ask.count, MAX_USER_IDS))
        first, self._next_user_id = self._next_user_id, self._next_user_id + count
        return p.UserIdBlock(ask.request_id, first, count)

    # ------------------------------------------------------------------------------------------- data pools

    def pool_take(self, worker: WorkerInfo, take: p.PoolTake) -> p.Message:
        """The next rows of a pool the master owns, fewer near its end so that no worker sits on the last ones."""
        master = self.master
        pool = master.compiled.pools.get(take.pool) if master.compiled is not None else None
        if pool is None or pool.order == "random":
            return p.RequestFailed(take.request_id, f"the master owns no pool {take.pool[:40]!r}")
        rows = master.run_state.rows(pool)  # this test's
        n = max(1, min(take.n, MAX_POOL_ROWS))
        if pool.policy != "cycle":  # a row a worker holds when the pool runs dry is never used: keep blocks small
            active = len(master.cluster.active()) or 1
            left = len(pool.data) - rows.handed_out
            n = max(1, min(n, left // (8 * active)))
        indices = rows.take(n)
        if not indices and pool.policy == "stop_test" and master.state not in (State.STOPPING, State.STOPPED):
            master.stop(f"data pool '{pool.name}' ran out of rows ({rows.handed_out} handed out)")
        return p.PoolRows(take.request_id, take.pool, indices, not indices)

    # ------------------------------------------------------------------------------------------- rendezvous

    def arrive(self, worker: WorkerInfo, arrive: p.RendezvousArrive) -> None:
        """Users of a worker arrived: the master's gate counts them against every worker's users."""
        master = self.master
        spec = master.compiled.rendezvous.get(arrive.name) if master.compiled is not None else None
        if spec is None or arrive.count < 1:
            master.drop(worker.identity, f"RendezvousArrive for an unknown rendezvous {arrive.name[:40]!r}")
            return
        point = master.run_state.point(spec)  # this test's gate
        if point.gate.arrive(arrive.count, time.time(), master.target_users, master.user_count) is not None:
            self._release(point.gate)
        if self._rendezvous_watch is None:
            self._rendezvous_watch = gevent.spawn(self._watch_rendezvous)

    def _watch_rendezvous(self) -> None:
        """Timeouts between arrivals, and fewer running users meeting a percent_running policy."""
        master = self.master
        assert master.compiled is not None
        gates = [master.run_state.point(spec).gate for spec in master.compiled.rendezvous.values()]
        while master.state not in (State.STOPPING, State.STOPPED):
            gevent.sleep(0.1)
            for gate in gates:
                if gate.check(time.time(), master.target_users, master.user_count) is not None:
                    self._release(gate)

    def _release(self, gate: Any) -> None:
        """Tell every active worker that the users waiting at ``gate`` go now."""
        release = p.RendezvousRelease(gate.name, len(gate.releases), gate.releases[-1].reason)
        for worker in self.master.cluster.active():
            self.master.send(worker, release)

    def close(self) -> None:
        if self._rendezvous_watch is not None:
            self._rendezvous_watch.kill(block=False)
