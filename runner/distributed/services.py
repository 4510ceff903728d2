"""What the master serves its workers besides their targets: data pools' rows, rendezvous, user ids, setup.

Requests (protocol messages with a ``REPLY``) are answered by ``Services.answer``; rendezvous arrivals are
counted here against every worker's users, and released to all active workers at once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

import gevent
from gevent.pool import Group

from runner.distributed import protocol as p
from runner.distributed.cluster import Cluster, WorkerInfo
from runner.engine.runner_protocol import State
from runner.engine.state import RunState

if TYPE_CHECKING:
    from runner.compile.compiler import CompiledScenario
    from runner.engine.rows import RowSource

log = logging.getLogger("lrun")

MAX_USER_IDS = 1_000_000  # user ids handed out in one answer
MAX_POOL_ROWS = 1000  # rows of a data pool handed out in one answer
MAX_POOL_WAIT = 3600.0  # seconds a worker's user may wait for a unique row


class Master(Protocol):
    """What the services use of the master that serves them (``master.MasterRunner``)."""

    compiled: CompiledScenario | None  # its pools and rendezvous are the cluster's
    run_state: RunState  # this test's row sources and gates
    cluster: Cluster
    state: State

    @property
    def target_users(self) -> int: ...

    @property
    def user_count(self) -> int: ...

    def send(self, worker: WorkerInfo, message: p.Message) -> None: ...

    def drop(self, identity: bytes, why: str) -> None: ...

    def stop(self, reason: str = "stopped") -> None: ...


class Services:
    """The cluster-wide state the master keeps for its workers' users (see the module docstring)."""

    def __init__(self, master: Master) -> None:
        self.master = master
        self.variables: dict[str, Any] = {}  # what the setup steps and hooks defined, for every user
        self._next_user_id = 1  # user ids are the cluster's: 1..N across workers
        self._rendezvous_watch: gevent.Greenlet | None = None
        self._waits = Group()  # workers' users waiting for a unique row
        self._holders: dict[str, dict[int, bytes]] = {}  # unique + cycle pools: row -> the worker it is at
        self._requests: dict[type[p.Message], Callable[[WorkerInfo, Any], p.Message | None]] = {
            p.Ping: self.ping,
            p.PoolTake: self.pool_take,
            p.UserIds: self.user_ids,
        }

    def answer(self, worker: WorkerInfo, request: Any) -> p.Message | None:
        """The reply to a request; ``RequestFailed`` for one this master does not handle, or that failed; None
        when the reply comes later (a user waiting for a row)."""
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

    def pool_take(self, worker: WorkerInfo, take: p.PoolTake) -> p.Message | None:
        """The next rows of a pool the master owns: a unique pool's one at a time (no worker holds rows another
        worker's users wait for), a sequential pool's in blocks, fewer near its end so that no worker sits on the
        last ones. With ``wait`` and no free row, the answer comes when a row is given back (None now)."""
        master = self.master
        pool = master.compiled.pools.get(take.pool) if master.compiled is not None else None
        if pool is None or pool.order == "random":
            return p.RequestFailed(take.request_id, f"the master owns no pool {take.pool[:40]!r}")
        rows = master.run_state.rows(pool)  # this test's
        n = 1 if pool.order == "unique" else max(1, min(take.n, MAX_POOL_ROWS))
        if pool.policy != "cycle":  # a row a worker holds when the pool runs dry is never used: keep blocks small
            active = len(master.cluster.active()) or 1
            left = len(pool.data) - rows.handed_out
            n = max(1, min(n, left // (8 * active)))
        indices = rows.take(n)
        if pool.returns:
            self._hold(pool.name, indices, worker)
        if not indices and pool.returns and take.wait > 0:
            self._waits.spawn(self._wait_for_row, worker, take, rows)
            return None
        if not indices and pool.policy == "stop_test" and master.state not in (State.STOPPING, State.STOPPED):
            master.stop(f"data pool '{pool.name}' ran out of rows ({rows.handed_out} handed out)")
        return p.PoolRows(take.request_id, take.pool, indices, not indices)

    def _wait_for_row(self, worker: WorkerInfo, take: p.PoolTake, rows: RowSource) -> None:
        """A worker's user waits for a unique row: it gets the next one given back (first come, first served
        with the other waiting users of every worker), or none after ``take.wait`` seconds."""
        index = rows.wait(min(take.wait, MAX_POOL_WAIT))
        indices = [] if index is None else [index]
        if index is not None and not worker.active:
            rows.give_back(indices)  # the worker left meanwhile: the row goes to the next one
            return
        self._hold(take.pool, indices, worker)
        self.master.send(worker, p.PoolRows(take.request_id, take.pool, indices, not indices))

    def _hold(self, pool: str, indices: list[int], worker: WorkerInfo) -> None:
        """Unique + cycle rows handed to ``worker``: only it may give them back (never two holders of a row)."""
        holders = self._holders.setdefault(pool, {})
        for index in indices:
            holders[index] = worker.identity

    def pool_note(self, worker: WorkerInfo, note: p.PoolNote) -> None:
        """Rows a worker's users gave back, and their waits and stops, counted in this test's results."""
        master = self.master
        pool = master.compiled.pools.get(note.pool) if master.compiled is not None else None
        if pool is None or any(not 0 <= i < len(pool.data) for i in note.returned):
            master.drop(worker.identity, f"PoolNote for an unknown pool or row {note.pool[:40]!r}")
            return
        rows = master.run_state.rows(pool)
        if note.returned and pool.returns:
            holders = self._holders.setdefault(pool.name, {})
            mine = all(holders.get(i) == worker.identity for i in note.returned)
            if not mine or len(set(note.returned)) != len(note.returned):
                master.drop(worker.identity, f"PoolNote gives back a row of {pool.name[:40]!r} it does not hold")
                return
            for index in note.returned:
                del holders[index]
            rows.give_back(note.returned)
        rows.handed_out = max(0, rows.handed_out - max(0, note.unused) + max(0, note.taken))
        rows.waits += max(0, note.waits)
        rows.wait_time += min(max(0.0, note.wait_time), MAX_POOL_WAIT)  # NaN and inf too
        rows.users_stopped += max(0, note.users_stopped)

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
        self._waits.kill(block=False)
        if self._rendezvous_watch is not None:
            self._rendezvous_watch.kill(block=False)
