"""The master's picture of its workers, without sockets: membership, liveness and the users' split.

Every function here takes the time it acts at (``now``, monotonic seconds), so that the whole life of a cluster
— join, heartbeat, silence, return, leave, rebalance — is testable as plain calls (``tests/test_cluster.py``).

A worker's ``WorkerState``:

    JOINED --first heartbeat--> ACTIVE --users ended by themselves--> FINISHED
       |                          |  \\--sent Stopped (the master's stop)--> STOPPED
       +--silent for liveness × interval--> MISSING --heard again--> (where it was)
    any --left, failed, told to quit--> GONE

Only JOINED and ACTIVE workers are judged for liveness (a stopped worker owes nothing more), and none once the
cluster has ended (``end()``): a master starved of CPU at the end of a run must not call everyone missing.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from runner.distributed import protocol as p
from runner.engine.dispatch import assign

CPU_HOT = 90.0  # a worker above this % of a core for CPU_HOT_BEATS heartbeats measures its own queueing
CPU_HOT_BEATS = 3
SAMPLES = 300  # CPU and memory points kept per worker for the report's charts


class WorkerState(enum.Enum):
    JOINED = "joined"  # said hello, setting up (compiling the scenario)
    ACTIVE = "active"  # heartbeating: takes users
    MISSING = "missing"  # unheard for heartbeat_liveness intervals: its users went to the others
    FINISHED = "finished"  # its users ended by themselves (iterations done, stop_test)
    STOPPED = "stopped"  # sent Stopped: its final report is in
    GONE = "gone"  # left, failed, or was told to quit


@dataclass
class WorkerInfo:
    """What the master knows of one worker."""

    id: str
    identity: bytes
    peer: str | None  # the CURVE key it authenticated with (the frames' User-Id); None without security
    host: str
    pid: int
    cores: int
    order: int  # join order: the dispatch order
    last_seen: float  # monotonic
    state: WorkerState = WorkerState.JOINED
    was: WorkerState = WorkerState.JOINED  # the state it had before it went missing
    run_state: str = "ready"  # what the worker says it does (its heartbeats), or how it left: for the results
    welcomed: float = -1e9  # monotonic time of the last Welcome sent
    users: int = 0
    users_max: int = 0
    users_started: int = 0  # from its reports (absolute)
    users_ended_early: int = 0
    interrupted: list[list[Any]] = field(default_factory=list)  # [method, name, count]: in flight at the stop
    cpu_percent: float = 0.0
    cpu_percent_max: float = 0.0
    memory_bytes: int = 0
    memory_bytes_max: int = 0
    hot_beats: int = 0  # heartbeats in a row above CPU_HOT
    warned_hot: bool = False
    targets: dict[str, int] = field(default_factory=dict)
    plan: list[tuple[float, int, int]] = field(default_factory=list)  # open model: its Share, (since, index, n)
    max_users: int = 0  # open model: its part of max_users
    arrivals: dict[str, Any] | None = None  # open model: its last reported ArrivalCounts.to_wire()
    spawn: p.Spawn | None = None  # the last Spawn sent
    spawn_sent: float = 0.0  # monotonic
    spawn_received: int = 0  # the last Spawn seq it said it received
    spawn_done: int = 0  # the last Spawn seq it completed
    reports: int = 0
    requests: int = 0
    failures: int = 0
    samples: list[tuple[float, float, int]] = field(default_factory=list)  # (t, CPU %, RSS) for the report
    sample_every: float = 1.0  # seconds between samples; doubles when they are thinned

    @property
    def active(self) -> bool:
        """Takes users: set up, heard from, not finished, not gone."""
        return self.state is WorkerState.ACTIVE

    @property
    def present(self) -> bool:
        """Its users count: neither missing nor gone."""
        return self.state not in (WorkerState.MISSING, WorkerState.GONE)

    def beat(self, beat: p.Heartbeat, wall: float) -> bool:
        """Take a heartbeat's figures (``wall``: time.time()); True when the worker just turned CPU-hot."""
        self.run_state = beat.state
        self.cpu_percent = beat.cpu_percent
        self.cpu_percent_max = max(self.cpu_percent_max, beat.cpu_percent)
        self.memory_bytes = beat.memory_bytes
        self.memory_bytes_max = max(self.memory_bytes_max, beat.memory_bytes)
        self.sample(wall)
        self.spawn_received = beat.spawn_seq
        self.hot_beats = self.hot_beats + 1 if beat.cpu_percent > CPU_HOT else 0
        if self.hot_beats >= CPU_HOT_BEATS and not self.warned_hot:
            self.warned_hot = True
            return True
        return False

    def sample(self, now: float) -> None:
        """Remember CPU and memory from a heartbeat, at most every ``sample_every`` s and at most SAMPLES points:
        past that, every other point goes and the spacing doubles (memory stays flat in long runs)."""
        if self.samples and now - self.samples[-1][0] < self.sample_every:
            return
        self.samples.append((now, self.cpu_percent, self.memory_bytes))
        if len(self.samples) > SAMPLES:
            del self.samples[1::2]
            self.sample_every *= 2

    def as_result(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "host": self.host,
            "pid": self.pid,
            "state": "missing" if self.state is WorkerState.MISSING else self.run_state,
            "users": self.users,
            "users_max": self.users_max,
            "users_started": self.users_started,
            "users_ended_early": self.users_ended_early,
            "cpu_percent": round(self.cpu_percent, 1),
            "cpu_percent_max": round(self.cpu_percent_max, 1),
            "memory_bytes": self.memory_bytes,
            "memory_bytes_max": self.memory_bytes_max,
            "requests": self.requests,
            "failures": self.failures,
            "resources": [
                {"t": round(t, 3), "process_cpu_percent": cpu, "process_rss_bytes": rss} for t, cpu, rss in self.samples
            ],
        }


class Cluster:
    """The workers by ZeroMQ identity, and what happens to them as messages (and silence) arrive."""

    def __init__(self, names: Sequence[str], heartbeat_interval: float = 1.0, heartbeat_liveness: int = 3) -> None:
        self.names = list(names)  # the user types, in the scenario's order
        self.limit = heartbeat_interval * heartbeat_liveness  # seconds of silence that make a worker missing
        self.workers: dict[bytes, WorkerInfo] = {}
        self.ended = False
        self._order = 0

    # ------------------------------------------------------------------------------------------- membership

    def join(
        self, identity: bytes, worker_id: str, peer: str | None, host: str, pid: int, cores: int, now: float
    ) -> tuple[WorkerInfo, bool]:
        """A hello: the worker, and whether it is new (a hello again from a known worker only refreshes it)."""
        worker = self.workers.get(identity)
        new = worker is None or worker.id != worker_id
        if worker is None or new:
            self._order += 1
            worker = WorkerInfo(worker_id, identity, peer, host, pid, cores, self._order, now)
            self.workers[identity] = worker
        worker.last_seen = now
        return worker, new

    def heard(self, worker: WorkerInfo, now: float) -> bool:
        """Any message from ``worker``; True when it was missing and is back (where it was before)."""
        worker.last_seen = now
        if worker.state is not WorkerState.MISSING:
            return False
        worker.state = worker.was
        return True

    def ready(self, worker: WorkerInfo) -> bool:
        """A heartbeat: True for the first, which makes a joined worker active."""
        if worker.state is not WorkerState.JOINED:
            return False
        worker.state = WorkerState.ACTIVE
        return True

    def stopped(self, worker: WorkerInfo, by_itself: bool) -> bool:
        """It sent Stopped; True when its users ended by themselves (``by_itself``: and the run goes on): it is
        then FINISHED."""
        worker.run_state = "stopped"
        worker.users = 0
        finished = by_itself and worker.state is WorkerState.ACTIVE
        if worker.state is not WorkerState.GONE:
            worker.state = WorkerState.FINISHED if finished else WorkerState.STOPPED
        return finished

    def leave(self, worker: WorkerInfo, run_state: str) -> None:
        """It left (Bye), failed, or was told to quit."""
        worker.state = WorkerState.GONE
        worker.run_state = run_state
        worker.users = 0

    def end(self) -> None:
        """The run is over (the master stopped): from now on, nobody is judged missing."""
        self.ended = True

    # ------------------------------------------------------------------------------------------- liveness

    def lost(self, now: float) -> list[WorkerInfo]:
        """Mark and return the workers silent for longer than the limit (only joined and active ones)."""
        if self.ended:
            return []
        lost = [
            w
            for w in self.workers.values()
            if w.state in (WorkerState.JOINED, WorkerState.ACTIVE) and now - w.last_seen > self.limit
        ]
        for worker in lost:
            worker.was, worker.state = worker.state, WorkerState.MISSING
        return lost

    # ------------------------------------------------------------------------------------------- the users

    def active(self) -> list[WorkerInfo]:
        """The workers that take users, in join order (the dispatch order)."""
        return sorted((w for w in self.workers.values() if w.active), key=lambda w: w.order)

    @property
    def user_count(self) -> int:
        return sum(w.users for w in self.workers.values() if w.present)

    def ready_count(self) -> int:
        """Workers set up and heard from."""
        return sum(
            w.state not in (WorkerState.JOINED, WorkerState.MISSING, WorkerState.GONE) for w in self.workers.values()
        )

    def rebalance(self, per_type: Sequence[int]) -> list[WorkerInfo]:
        """Split the users (``per_type``: a count per user type) over the active workers: set each one's
        ``targets`` and return those whose share changed (they need a Spawn). Calling it again changes nothing."""
        active = self.active()
        if not active:
            return []
        changed = []
        for worker, counts in zip(active, assign(list(per_type), len(active)), strict=True):
            targets = dict(zip(self.names, counts, strict=True))
            if targets != worker.targets:
                worker.targets = targets
                changed.append(worker)
        return changed

    def reshare(self, since: float, max_users: int) -> list[WorkerInfo]:
        """The open model: give the active workers their segments of the arrivals from offset ``since`` on —
        the i-th of n active workers (join order) takes arrivals ``k % n == i`` — and their part of
        ``max_users`` (at least one slot each); return those whose share changed (they need a Spawn). Calling it
        again changes nothing.

        A worker's ``plan`` keeps its earlier segments: arrivals before ``since`` stay as they were given."""
        active = self.active()
        changed = []
        for i, (worker, slots) in enumerate(zip(active, assign([max_users], len(active)), strict=True)):
            segment, users = (i, len(active)), max(1, slots[0])  # a worker with no slot would only queue
            if not worker.plan or worker.plan[-1][1:] != segment:
                start = max(since, worker.plan[-1][0]) if worker.plan else since
                worker.plan = [*(row for row in worker.plan if row[0] < start), (start, *segment)]
            elif worker.max_users == users:
                continue
            worker.max_users = users
            changed.append(worker)
        return changed

    def spawned(self) -> bool:
        """Every active worker completed the last Spawn it was sent (and there is one)."""
        active = [w for w in self.workers.values() if w.active]
        return bool(active) and all(w.spawn is not None and w.spawn_done >= w.spawn.seq for w in active)

    def all_finished(self) -> bool:
        """No worker still runs users of its own: each finished, or is not active, or has none to run."""
        return all(
            w.state is WorkerState.FINISHED or not w.active or not any(w.targets.values())
            for w in self.workers.values()
        )

    def to_stop(self) -> list[WorkerInfo]:
        """On stop: the workers to tell (all but those gone or stopped; a missing one may come back)."""
        done = (WorkerState.GONE, WorkerState.STOPPED, WorkerState.FINISHED)
        return [w for w in self.workers.values() if w.state not in done]

    def waiting_for(self) -> list[WorkerInfo]:
        """On stop: the workers whose final report is still due (present, not stopped)."""
        done = (WorkerState.MISSING, WorkerState.GONE, WorkerState.STOPPED, WorkerState.FINISHED)
        return [w for w in self.workers.values() if w.state not in done]
