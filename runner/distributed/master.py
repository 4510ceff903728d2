"""The master of a distributed run: it runs no users, it drives workers and merges what they measure.

``MasterRunner`` has the public surface of ``LocalRunner`` (``start``, ``start_stages``, ``set_users``,
``stop``, ``kill_now``, ``wait``, ``user_count`` …), so ``runner.drive.drive`` runs a distributed test exactly
like a local one: same load shape, thresholds, console, results and outputs. What differs happens here:

- a ROUTER socket takes workers' hellos (checking the token and the protocol version), welcomes them, and
  sends each absolute per-user-type targets (``runner.engine.dispatch.assign``) whenever the target, or the
  set of workers, changes: a worker joining, going missing, coming back or leaving rebalances the users;
- a worker unheard of for ``heartbeat_liveness`` heartbeat intervals is *missing*; its users go to the others;
  everything it reported stays counted;
- the open model (``start_arrivals``): each worker takes a share of the cluster's arrival schedule
  (``Cluster.reshare``: k6's execution segments), reshared from a moment just ahead whenever the set of workers
  changes, so the cluster's rate holds; the workers' arrival counts and intended-start statistics merge here;
- each ``Report`` is merged into the master's statistics (``RequestStats.merge``; totals are the exact sum of
  the deltas), and the master samples its series a report interval late, when the workers' seconds are in;
- on stop, workers stop their users, send a final report and say ``Stopped``; the master waits for them (within
  the stop timeout and a grace period), then the run writes its outputs, then workers are told to quit.

Nothing that arrives on the port can crash the master: a frame that does not decode, a message from a peer
that never said hello, a statistics delta that does not merge — each is dropped, and logged once per peer.
"""

from __future__ import annotations

import hmac
import logging
import os
import secrets
import signal
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TextIO

import gevent
import zmq.green as zmq
from gevent.event import Event

import runner
from runner.config import RunSettings, load_given_by_user
from runner.distributed import protocol as p
from runner.distributed.bundle import collect
from runner.distributed.cluster import CPU_HOT, Cluster, WorkerInfo, WorkerState
from runner.distributed.security import Keys, constant_env_names, keys_for
from runner.distributed.services import Services
from runner.distributed.transport import Endpoint, peer_name
from runner.engine.arrivals import ArrivalCounts, arrival_times
from runner.engine.dispatch import distribute
from runner.engine.runner import LoadShape
from runner.engine.runner_protocol import Distributed, OpenModel, RateStage, Runner, SharedVariables, State
from runner.engine.saturation import Saturation
from runner.engine.state import RunState
from runner.errors import RunError
from runner.events import Events
from runner.report.model import Arrivals, Worker
from runner.scenario import LoadedScenario
from runner.scenario.windows import windows_read_requests
from runner.serving import is_loopback

if TYPE_CHECKING:
    from runner.compile.compiler import CompiledScenario
from runner.stats import RequestStats

log = logging.getLogger("lrun")

MAX_LOGGED_PEERS = 1000  # peers whose malformed frames were logged (then only counted)
SKEW_WARNING = 1.0  # seconds of clock difference between a worker and the master worth a warning
LOCAL_MAX_WAIT = 60.0  # seconds --processes waits for its own workers to connect
MAX_WARNINGS = 100  # distinct warning texts from workers kept in the results
SHARE_LEAD = 0.5  # seconds ahead a new share of the arrivals begins: every worker has it by then


@dataclass
class MasterOptions:
    bind_host: str = "*"
    bind_port: int = p.DEFAULT_PORT  # 0: any free port
    token: str | None = None
    keys: Keys | None = None  # CURVE: every frame encrypted and authenticated (runner.distributed.security)
    heartbeat_interval: float = 1.0
    heartbeat_liveness: int = 3
    report_interval: float = 3.0
    iterations: int | None = None
    host: str | None = None
    demo_url: str | None = None
    tags: list[str] = field(default_factory=list)
    exclude_tags: list[str] = field(default_factory=list)
    entry_seconds: bool = False  # workers send each entry's seconds (for --csv-full-history)
    scenario: tuple[str, dict[str, bytes]] | None = None  # for workers without a copy: bundle.collect()
    variables: dict[str, Any] = field(default_factory=dict)  # for every user (setup steps, hooks)
    rendezvous: bool = True  # False: --no-rendezvous
    env: dict[str, str | None] = field(default_factory=dict)  # env('NAME') of the scenario, as the master has it


class MasterRunner(LoadShape):
    """Drives workers over ZeroMQ; the ``runner`` of a distributed run (see the module docstring)."""

    saturation: Saturation | None = None  # the master's own loop; its workers judge theirs

    def __init__(
        self,
        classes: Sequence[Any],
        stats: RequestStats,
        options: MasterOptions,
        *,
        stop_timeout: float = 0.0,
        on_spawned: Callable[[int], None] | None = None,
        on_warning: Callable[[str], None] | None = None,
        transactions: Any = None,
        on_stopping: Callable[[], None] | None = None,
        request_hook: Any = None,  # requests are made (and hooked) on the workers
        run_state: RunState | None = None,
    ) -> None:
        self.classes = list(classes)
        self.run_state = run_state or RunState()  # the workers' checkpoint counts merge here
        self.transactions = transactions  # TransactionStats: the workers' transaction deltas go here
        self.on_stopping = on_stopping
        self.compiled: CompiledScenario | None = None  # its pools and rendezvous are the cluster's
        self.stats = stats
        self.options = options
        self.stop_timeout = stop_timeout
        self.on_spawned = on_spawned
        self.warn = on_warning or log.warning
        self.state = State.READY
        self.stop_reason = ""
        self.started_at: float | None = None
        self.user_count_max = 0
        self.cluster = Cluster(
            [c.type_name for c in self.classes], options.heartbeat_interval, options.heartbeat_liveness
        )
        self.services = Services(self)
        self.services.variables = options.variables
        self.dropped = 0  # malformed or unexpected frames
        self.port: int | None = None
        self._target = 0  # users in all
        self._rate = 1.0
        self._seq = 0
        self._spawn_reported = True  # on_spawned was called for the current target
        self._endpoint: Endpoint | None = None
        self._greenlets: list[gevent.Greenlet] = []
        self._timers: list[gevent.Greenlet] = []
        self._changed = Event()  # a worker joined, got ready, stopped …
        self._done = Event()
        self._stop_deadline = 0.0
        self._logged: set[bytes] = set()
        self.handshakes_failed = 0  # connections without the master's key
        self._warnings: set[str] = set()  # workers' warnings already passed on
        self.max_users: int | None = None  # the open model's (run_master sets it); None: the closed model
        self.intended = RequestStats(node="master")  # the open model: the workers' times from intended starts
        self._schedule: tuple[list[RateStage], float] | None = None  # the open model's stages, start rate
        self._origin = 0.0  # monotonic time the arrival schedule began
        self._planned = 0

    @property
    def workers(self) -> dict[bytes, WorkerInfo]:
        return self.cluster.workers

    # ------------------------------------------------------------------------------------------- the port

    def bind(self) -> int:
        """Listen on the bind address; return the port. ``RunError`` for a port in use or a bad address."""
        keys = self.options.keys
        endpoint = Endpoint.server(keys, self._handshake_failed)
        host, port = self.options.bind_host, self.options.bind_port
        try:
            port = endpoint.bind(host, port)
        except zmq.ZMQError as exc:
            endpoint.close(linger=0)
            if exc.errno == zmq.EADDRINUSE:
                raise RunError(
                    f"--master-bind-port {port}: the port is in use (another master?); "
                    "free it or choose another port with --master-bind-port"
                ) from None
            raise RunError(
                f"--master-bind-host {host}: cannot listen there ({exc.strerror}); "
                "give an address of this machine, 0.0.0.0 or * for all"
            ) from None
        self._endpoint = endpoint
        self.port = port
        if keys is None and not is_loopback(host):
            log.warning(
                "the master listens on %s:%d without a token (--master-insecure): anyone who can reach it can "
                "join as a worker, and the traffic is not encrypted",
                "every interface" if host in ("*", "0.0.0.0") else host,
                port,
            )
        return port

    def _handshake_failed(self, event: dict[str, Any]) -> None:
        self.handshakes_failed += 1
        if self.handshakes_failed == 1:
            log.warning(
                "refused a connection that failed the security handshake: a worker without this master's "
                "--master-token (or key files), or not lrun; more are counted, not logged"
            )

    def serve(self) -> None:
        """Start taking messages and watching heartbeats."""
        assert self._endpoint is not None
        self._greenlets += [self._endpoint.serve(self._handle), gevent.spawn(self._watch)]

    def close(self) -> None:
        """Tell every worker to quit, then close the socket (idempotent)."""
        if self._endpoint is None:
            return
        for worker in self.workers.values():
            if worker.state is not WorkerState.GONE:
                self.send(worker, p.Quit(self.stop_reason or "the master quit"))
        for greenlet in [*self._greenlets, *self._timers]:
            greenlet.kill(block=False)
        self.services.close()
        self._endpoint.close()
        self._endpoint = None

    def send(self, worker: WorkerInfo, message: p.Message) -> None:
        if self._endpoint is not None:
            self._endpoint.send(message, worker.identity)

    def drop(self, identity: bytes, why: str) -> None:
        """A message that is not taken: counted, and logged once per peer."""
        self.dropped += 1
        if identity in self._logged or len(self._logged) >= MAX_LOGGED_PEERS:
            return
        self._logged.add(identity)
        log.warning(
            "dropped a message from %s: %s (more from this peer are dropped silently)", peer_name(identity), why
        )

    # ------------------------------------------------------------------------------------------- receiving

    def _handle(self, frames: list[bytes], peer: str | None = None) -> None:
        identity = frames[0]
        if len(frames) != 2:
            self.drop(identity, f"expected one frame, got {len(frames) - 1}")
            return
        try:
            message = p.decode(frames[1])
        except p.VersionMismatch as exc:
            if exc.kind == "Hello":
                self._refuse_version(identity, exc)
            else:
                self.drop(identity, str(exc))
            return
        except p.ProtocolError as exc:
            self.drop(identity, str(exc))
            return
        worker = self.workers.get(identity)
        if worker is not None and worker.peer != peer:  # another connection presents this worker's id
            self.drop(identity, f"{message.KIND} under worker {worker.id}'s id from a connection with another key")
            return
        if isinstance(message, p.Hello):
            self._hello(identity, message, peer)
            return
        if worker is None:
            self.drop(identity, f"{message.KIND} from a peer that did not say hello")
            return
        if self.cluster.heard(worker, time.monotonic()):
            self._back(worker)
        handler = self._handlers.get(type(message))
        if handler is not None:
            handler(self, worker, message)
        elif message.REPLY is not None:
            reply = self.services.answer(worker, message)
            if reply is not None:  # None: it comes later
                self.send(worker, reply)
        else:
            self.drop(identity, f"{message.KIND} is not a message for the master")

    def _refuse(self, identity: bytes, message: p.Refused) -> None:
        if self._endpoint is not None:
            self._endpoint.send(message, identity)

    def _refuse_version(self, identity: bytes, exc: p.VersionMismatch) -> None:
        theirs = exc.body.get("lrun_version")
        reason = (
            f"protocol version mismatch: the master runs lrun {runner.__version__} (protocol {p.PROTOCOL_VERSION}), "
            f"the worker lrun {theirs} (protocol {exc.version}); run the same lrun version on master and workers"
        )
        if identity not in self._logged:
            self._logged.add(identity)
            log.warning("refused worker %s: %s", peer_name(identity), reason)
        self._refuse(identity, p.Refused("version", reason))

    def _hello(self, identity: bytes, hello: p.Hello, peer: str | None = None) -> None:
        token = self.options.token
        if token and not hmac.compare_digest(hello.token.encode(), token.encode()):
            if identity not in self._logged:
                self._logged.add(identity)
                log.warning(
                    "refused worker %s (%s, pid %d): %s token",
                    hello.worker_id,
                    hello.host,
                    hello.pid,
                    "wrong" if hello.token else "no",
                )
            self._refuse(
                identity,
                p.Refused(
                    "token",
                    f"{'wrong' if hello.token else 'missing'} token: start the worker with --master-token "
                    "(or LRUN_MASTER_TOKEN) set to the master's token",
                ),
            )
            return
        if self.state in (State.STOPPING, State.STOPPED):
            self._refuse(identity, p.Refused("stopping", "the test is ending; start the worker for the next one"))
            return
        now = time.monotonic()
        worker, new = self.cluster.join(identity, hello.worker_id, peer, hello.host, hello.pid, hello.cores, now)
        if new:
            log.info(
                "worker %s connected (%s, pid %d, %d cores): %d worker(s)",
                worker.id,
                worker.host,
                worker.pid,
                worker.cores,
                sum(w.state is not WorkerState.GONE for w in self.workers.values()),
            )
            skew = hello.clock - time.time()
            queued = self._endpoint is not None and self._endpoint.pending()  # then the hello may have waited
            if abs(skew) > SKEW_WARNING and not queued:
                self.warn(
                    f"worker {worker.id}'s clock is {skew:+.1f}s off the master's: per-second charts mix seconds; "
                    "synchronise the clocks (NTP)"
                )
        if now - worker.welcomed < 1.0:  # hellos queued while the master was not up yet arrive together
            return
        worker.welcomed = now
        o = self.options
        files = o.scenario if hello.want_scenario else None
        if hello.want_scenario and files is None:
            self.send(worker, p.Refused("scenario", "the master has no scenario to send; give the worker one"))
            return
        self.send(
            worker,
            p.Welcome(
                worker_id=worker.id,
                heartbeat_interval=o.heartbeat_interval,
                report_interval=o.report_interval,
                host=o.host,
                demo_url=o.demo_url,
                tags=list(o.tags),
                exclude_tags=list(o.exclude_tags),
                iterations=o.iterations,
                stop_timeout=self.stop_timeout,
                entry_seconds=o.entry_seconds,
                scenario_path=files[0] if files else "",
                scenario_files=files[1] if files else None,
                rendezvous=o.rendezvous,
                env=o.env,
            ),
        )

    # ------------------------------------------------------------------------------------------- handlers

    def _heartbeat(self, worker: WorkerInfo, beat: p.Heartbeat) -> None:
        first = self.cluster.ready(worker)
        if worker.beat(beat, time.time()):
            self.warn(
                f"worker {worker.id} ({worker.host}) uses more than {CPU_HOT:.0f}% of a core: response times "
                "it measures are inflated by its own queueing; add workers or run fewer users"
            )
        self._set_users(worker, beat.users)
        self.send(worker, p.MasterHeartbeat(self.state.value, worker.spawn.seq if worker.spawn else 0))
        if first:
            self._changed.set()
            self._rebalance()
        elif (
            worker.spawn is not None
            and beat.spawn_seq < worker.spawn.seq
            and time.monotonic() - worker.spawn_sent > 2 * self.options.heartbeat_interval
        ):
            log.debug("worker %s is behind (spawn %d < %d): sending it again", worker.id, beat.spawn_seq, self._seq)
            worker.spawn_sent = time.monotonic()
            if worker.spawn.arrival_stages:  # the schedule's clock as it is now, not as it was
                worker.spawn = replace(worker.spawn, arrival_elapsed=time.monotonic() - self._origin)
            self.send(worker, worker.spawn)

    def _report(self, worker: WorkerInfo, report: p.Report) -> None:
        try:
            if report.arrivals is not None:
                ArrivalCounts().add(report.arrivals)  # checked before anything merges
            self.stats.merge(report.stats)
            if report.transactions is not None and self.transactions is not None:
                self.transactions.merge(report.transactions)
            if report.checks:
                self.run_state.checks.merge(report.checks)
            if report.intended is not None:
                self.intended.merge(report.intended)
            if report.arrivals is not None:
                worker.arrivals = report.arrivals
            worker.interrupted = [[str(m), str(n), int(c)] for m, n, c in report.interrupted]
        except (ValueError, TypeError) as exc:
            self.drop(worker.identity, f"statistics that do not merge: {exc}")
            return
        worker.reports += 1
        for entry in report.stats.get("entries", ()):
            worker.requests += int(entry["all"]["count"])  # merge() checked these
            worker.failures += int(entry["all"].get("failures", 0))
        self._set_users(worker, report.users)
        worker.users_started, worker.users_ended_early = report.users_started, report.users_ended_early
        worker.users_max = max(worker.users_max, report.users_max)  # users it ran between two reports count
        self.user_count_max = max(self.user_count_max, report.users_max)  # one worker's peak: the cluster's least

    @property
    def users_started(self) -> int:
        return sum(w.users_started for w in self.workers.values())

    @property
    def users_ended_early(self) -> int:
        return sum(w.users_ended_early for w in self.workers.values())

    @property
    def interrupted(self) -> dict[tuple[str, str], int]:
        """Requests in flight at the stop, summed over the workers' last reports."""
        cut: dict[tuple[str, str], int] = {}
        for worker in self.workers.values():
            for method, name, count in worker.interrupted:
                cut[(method, name)] = cut.get((method, name), 0) + count
        return cut

    def _spawned(self, worker: WorkerInfo, done: p.Spawned) -> None:
        worker.spawn_done = max(worker.spawn_done, done.spawn_seq)
        self._set_users(worker, done.users)
        self._check_spawned()

    def _stopped(self, worker: WorkerInfo, stopped: p.Stopped) -> None:
        running = self.state not in (State.STOPPING, State.STOPPED)
        finished = self.cluster.stopped(worker, stopped.by_itself and running)
        self._changed.set()
        if not finished:
            return
        log.info("worker %s: %s", worker.id, stopped.reason)
        if stopped.reason.startswith("stop_test"):
            self.stop(stopped.reason)
        elif self.cluster.all_finished():
            self.stop("all users finished")

    def _bye(self, worker: WorkerInfo, bye: p.Bye) -> None:
        log.warning("worker %s left: %s", worker.id, bye.reason)
        self._leave(worker, State.STOPPED.value)

    def _warning(self, worker: WorkerInfo, warning: p.WorkerWarning) -> None:
        """Said once in the results, whichever worker says it and how often (at most MAX_WARNINGS texts)."""
        if warning.message in self._warnings or len(self._warnings) >= MAX_WARNINGS:
            return
        self._warnings.add(warning.message)
        self.warn(f"{warning.message} (worker {worker.id})")

    def _failed(self, worker: WorkerInfo, failed: p.WorkerFailed) -> None:
        self.warn(f"worker {worker.id} ({worker.host}) cannot run the scenario: {failed.message}")
        self.send(worker, p.Quit("it cannot run the scenario"))
        self._leave(worker, "failed")
        if self.state in (State.SPAWNING, State.RUNNING) and not self.cluster.active():
            self.stop(f"no worker can run the scenario: {failed.message}")

    def _leave(self, worker: WorkerInfo, state: str) -> None:
        self.cluster.leave(worker, state)
        self._count_users()
        self._changed.set()
        self._rebalance()

    def _arrive(self, worker: WorkerInfo, arrive: p.RendezvousArrive) -> None:
        self.services.arrive(worker, arrive)

    def _pool_note(self, worker: WorkerInfo, note: p.PoolNote) -> None:
        self.services.pool_note(worker, note)

    def share_variables(self, variables: dict[str, Any]) -> None:
        """What the setup steps and hooks defined goes to every user, with the spawn targets."""
        self.services.variables = variables

    _handlers: ClassVar[dict[type[p.Message], Callable[[MasterRunner, WorkerInfo, Any], None]]] = {
        p.Heartbeat: _heartbeat,
        p.Report: _report,
        p.Spawned: _spawned,
        p.Stopped: _stopped,
        p.Bye: _bye,
        p.WorkerFailed: _failed,
        p.WorkerWarning: _warning,
        p.RendezvousArrive: _arrive,
        p.PoolNote: _pool_note,
    }

    # ------------------------------------------------------------------------------------------- liveness

    def _watch(self) -> None:
        while True:
            gevent.sleep(self.options.heartbeat_interval)
            if self._endpoint is not None and self._endpoint.pending():
                continue  # heartbeats may wait unread among them: a master behind judges nobody missing
            lost = self.cluster.lost(time.monotonic())
            for worker in lost:
                what = ""
                if worker.was is WorkerState.ACTIVE and worker.plan:
                    what = "its share of the arrivals goes to the other workers; "
                elif worker.was is WorkerState.ACTIVE and any(worker.targets.values()):
                    what = "its users go to the other workers; "
                self.warn(
                    f"worker {worker.id} ({worker.host}) is missing: nothing heard for {self.cluster.limit:g}s; "
                    f"{what}what it reported stays in the results"
                )
            if lost:
                self._count_users()
                self._changed.set()
                self._rebalance()

    def _back(self, worker: WorkerInfo) -> None:
        log.warning("worker %s (%s) is back", worker.id, worker.host)
        self._changed.set()
        self._rebalance()

    # ------------------------------------------------------------------------------------------- dispatch

    def _rebalance(self) -> None:
        """Send every active worker its share of the target (only to those whose share changed)."""
        if self.state not in (State.SPAWNING, State.RUNNING):
            return
        active = self.cluster.active()
        if not active:
            if self._target or self._schedule:
                log.warning("no worker to run the users: waiting for one")
            return
        if self._schedule is not None:
            self._reshare()
            return
        rate = self._rate / len(active)
        for worker in self.cluster.rebalance(distribute(self.classes, self._target)):
            self._seq += 1
            worker.spawn = p.Spawn(self._seq, time.time(), worker.targets, rate, self.services.variables)
            worker.spawn_sent = time.monotonic()
            self.send(worker, worker.spawn)
        self._check_spawned()

    def _reshare(self) -> None:
        """The open model: send the workers whose share of the arrivals changed their new share."""
        assert self._schedule is not None and self.max_users is not None
        stages, start_rate = self._schedule
        elapsed = time.monotonic() - self._origin
        since = elapsed + SHARE_LEAD if elapsed > 0.1 else 0.0  # at the start, the whole schedule
        for worker in self.cluster.reshare(since, self.max_users):
            self._seq += 1
            worker.spawn = p.Spawn(
                self._seq,
                time.time(),
                {},
                0.0,
                self.services.variables,
                arrival_stages=[[s.duration, s.rate] for s in stages],
                arrival_start_rate=start_rate,
                arrival_elapsed=time.monotonic() - self._origin,
                arrival_plan=[list(row) for row in worker.plan],
                max_users=worker.max_users,
            )
            worker.spawn_sent = time.monotonic()
            self.send(worker, worker.spawn)

    def _check_spawned(self) -> None:
        if not self.cluster.spawned():
            return
        if self.state == State.SPAWNING:
            self.state = State.RUNNING
        if not self._spawn_reported:
            self._spawn_reported = True
            if self.on_spawned:
                self.on_spawned(self._target)  # what every worker confirmed; their reports of it come later

    def _count_users(self) -> None:
        self.user_count_max = max(self.user_count_max, self.user_count)

    def _set_users(self, worker: WorkerInfo, users: int) -> None:
        if users == worker.users:  # the usual case: no sum over all workers for every message
            return
        worker.users = users
        worker.users_max = max(worker.users_max, users)
        self._count_users()

    # ------------------------------------------------------------------------------------------- the runner

    @property
    def user_count(self) -> int:
        return self.cluster.user_count

    def wait_for_workers(self, expected: int, max_wait: float | None, check: Callable[[], None] | None = None) -> None:
        """Block until ``expected`` workers are ready; ``RunError`` when ``max_wait`` passes first.

        ``check`` runs every second and may raise (``--processes`` checks its children are alive).
        """
        deadline = None if max_wait is None else time.monotonic() + max_wait
        interrupted = Event()
        handlers = [gevent.signal_handler(s, interrupted.set) for s in (signal.SIGINT, signal.SIGTERM)]
        told = 0.0
        try:
            while True:
                ready = self.cluster.ready_count()
                if ready >= expected:
                    log.info("%d worker(s) ready: starting the test", ready)
                    return
                if interrupted.is_set():
                    raise RunError(f"interrupted while waiting for workers ({ready} of {expected} ready); nothing ran")
                now = time.monotonic()
                if deadline is not None and now >= deadline:
                    raise RunError(
                        f"{ready} of {expected} expected worker(s) connected within {max_wait:g}s; start workers with "
                        f"lrun --worker --master-host <this host> --master-port {self.port}, or lower --expect-workers"
                    )
                if now - told >= 10:
                    told = now
                    log.info("waiting for %d worker(s) on port %d (%d ready)", expected, self.port, ready)
                if check is not None:
                    check()
                self._changed.clear()
                timeout = 1.0 if deadline is None else max(0.0, min(1.0, deadline - now))
                gevent.wait([self._changed, interrupted], timeout=timeout, count=1)
        finally:
            for handler in handlers:
                handler.cancel()

    def set_users(self, target: int, spawn_rate: float) -> None:
        if self.state in (State.STOPPING, State.STOPPED):
            return
        self._target = max(0, target)
        self._rate = spawn_rate
        self._spawn_reported = False
        self.state = State.SPAWNING
        self._rebalance()

    def start_arrivals(self, stages: list[RateStage], start_rate: float = 0.0) -> None:
        """The open model across the workers: each takes its share of the schedule (see ``Cluster.reshare``)."""
        duration = sum(s.duration for s in stages)
        self.started_at = time.time()
        self.state = State.RUNNING
        self._schedule, self._origin = (list(stages), start_rate), time.monotonic()
        self._planned = len(arrival_times(stages, start_rate))
        self._end_by(duration)
        self._timers.append(gevent.spawn_later(duration, self.stop, "run time reached"))
        self._rebalance()

    # ------------------------------------------------------------------------------------------- capabilities

    @property
    def open_model(self) -> OpenModel | None:
        return self if self.max_users is not None else None

    @property
    def distributed(self) -> Distributed:
        return self

    @property
    def shared_variables(self) -> SharedVariables:
        return self

    def arrival_results(self, *, stopped_early: bool) -> Arrivals | None:
        counts = self.arrivals
        return counts.results(stopped_early=stopped_early) if counts is not None else None

    def worker_states(self) -> dict[str, int]:
        counts = {"running": 0, "missing": 0, "gone": 0}
        for worker in list(self.workers.values()):
            state = worker.state.value
            counts[state if state in ("gone", "missing") else "running"] += 1
        return counts

    @property
    def arrivals(self) -> ArrivalCounts | None:
        """The open model: the cluster's arrival counts (the workers' summed; planned: the whole schedule)."""
        if self._schedule is None:
            return None
        counts = ArrivalCounts()
        for worker in self.workers.values():
            if worker.arrivals is not None:
                counts.add(worker.arrivals)
        counts.planned = self._planned
        return counts

    @property
    def target_users(self) -> int:
        return self.max_users if self._schedule is not None and self.max_users is not None else self._target

    def _stop(self) -> None:
        self.state = State.STOPPING
        if self.on_stopping is not None:
            self.on_stopping()  # records who waited at a rendezvous; the workers let them go themselves
        for timer in self._timers:
            if timer is not gevent.getcurrent():
                timer.kill(block=False)
        for worker in self.cluster.to_stop():
            self.send(worker, p.Stop(self.stop_reason, False))
        o = self.options
        grace = o.heartbeat_interval * o.heartbeat_liveness + o.report_interval + 5
        self._stop_deadline = time.monotonic() + self.stop_timeout + grace
        while True:
            waiting = self.cluster.waiting_for()
            if not waiting:
                break
            if time.monotonic() >= self._stop_deadline:
                self.warn(
                    f"{len(waiting)} worker(s) did not send their final statistics in time: "
                    + ", ".join(w.id for w in waiting)
                )
                break
            self._changed.clear()
            self._changed.wait(min(0.5, max(0.0, self._stop_deadline - time.monotonic())))
        self.cluster.end()
        self.state = State.STOPPED
        self._done.set()

    def kill_now(self) -> None:
        """A second Ctrl-C: workers stop their users at once; wait for their reports only briefly."""
        self.stop("interrupted")
        for worker in self.cluster.to_stop():
            self.send(worker, p.Stop(self.stop_reason, True))
        self._stop_deadline = min(self._stop_deadline or float("inf"), time.monotonic() + 2)
        self._changed.set()

    def wait(self, timeout: float | None = None) -> bool:
        return self._done.wait(timeout)

    def next_test(self, compiled: CompiledScenario, stats: RequestStats, **hooks: Any) -> None:
        """Get ready for another test with the same workers (``lrun --web``): fresh load state, statistics and run
        state (``compiled``'s pools and rendezvous); ``hooks`` as the constructor takes them. The workers set up
        afresh (``NextTest``) before their next Spawn; workers may join until the test starts."""
        self.classes = list(compiled.user_classes)
        self.names = [c.type_name for c in self.classes]
        self.compiled, self.stats = compiled, stats
        self.transactions = hooks.get("transactions")
        self.run_state = hooks.get("run_state") or RunState()  # this test's checkpoint counts
        self.stop_timeout = hooks.get("stop_timeout", 0.0)
        self.on_spawned, self.on_stopping = hooks.get("on_spawned"), hooks.get("on_stopping")
        self.warn = hooks.get("on_warning") or log.warning
        self.state, self.stop_reason, self.started_at, self.user_count_max = State.READY, "", None, 0
        self.users_at_stop = None
        self._target, self._timers, self._done, self._spawn_reported = 0, [], Event(), True
        self._warnings = set()
        self.intended, self._schedule, self._planned = RequestStats(node="master"), None, 0
        self.services.close()  # user ids from 1 again, no rendezvous watch left over
        self.services = Services(self)
        self.services.variables = self.options.variables
        o = self.options
        settings = p.NextTest(o.host, list(o.tags), list(o.exclude_tags), o.iterations, self.stop_timeout)
        for worker in self.workers.values():
            if worker.state in (WorkerState.FINISHED, WorkerState.STOPPED):
                worker.state = WorkerState.ACTIVE  # still heartbeating: it takes the next test's users
            worker.targets, worker.spawn, worker.plan, worker.max_users, worker.arrivals = {}, None, [], 0, None
            worker.users = worker.users_max = worker.requests = worker.failures = worker.reports = 0
            worker.users_started = worker.users_ended_early = 0
            worker.interrupted = []
            worker.samples, worker.sample_every = [], 1.0
            if worker.state is not WorkerState.GONE:
                self.send(worker, settings)

    def worker_results(self) -> list[Worker]:
        """The ``workers`` part of the results."""
        return [Worker.model_validate(w.as_result()) for w in sorted(self.workers.values(), key=lambda w: w.order)]


def _implements(master: MasterRunner) -> Runner:
    """mypy checks here that a master is a ``Runner`` (never called)."""
    return master


# ----------------------------------------------------------------------------------------------- a run


def run_master(
    loaded: LoadedScenario,
    compiled: CompiledScenario,
    settings: RunSettings,
    *,
    demo_url: str | None,
    command: str,
    out: TextIO = sys.stdout,
    events: Events | None = None,
) -> int:
    """A distributed run: the master, and with ``--processes N`` its N local workers. Returns the exit code."""
    from runner.distributed.local import QUIT_WAIT
    from runner.drive import drive, monitoring
    from runner.live.state import Live, RunContext

    if settings.report_interval > 10:
        log.warning("--report-interval above 10s: the per-second series of the master lose the older seconds")

    stats = RequestStats(full_history=settings.csv_full_history, node="master")
    live = Live(
        RunContext(loaded, compiled, settings, command),
        stats,
        out,
        out.isatty(),
        lag=settings.report_interval + 1.0,
        events=events or Events(),
        **monitoring(loaded.model, settings),
    )
    master, workers, expected, max_wait = cluster(loaded, compiled, settings, live, demo_url)
    ran = False
    try:
        master.serve()
        workers.start()
        master.wait_for_workers(expected, max_wait, check=workers.check)
        live.started = time.time()
        stats.reset()  # the statistics' clock starts with the test, not with the wait for the workers:
        live.transactions.reset()  # else the first point of the series spans that wait
        ran = True
        return drive(loaded, compiled, settings, live, command=command)
    finally:
        master.close()
        workers.stop(quit_wait=QUIT_WAIT if ran else 1.0)
        if master.dropped:
            log.info("dropped %d malformed or unexpected message(s) during the run", master.dropped)


def cluster(
    loaded: LoadedScenario, compiled: CompiledScenario, settings: RunSettings, live: Any, demo_url: str | None
) -> tuple[MasterRunner, Any, int, float | None]:
    """The bound master of ``live`` (its runner), the local workers to start (``--processes``), how many workers
    to expect and how long to wait for them."""
    from runner.distributed.local import LocalWorkers
    from runner.drive import runner_hooks

    local = settings.processes or 0
    token = settings.master_token
    bind_host, bind_port = settings.master_bind_host, settings.master_bind_port
    if local and not settings.master:  # all on this machine: loopback, any free port, a token of its own
        bind_host, bind_port = "127.0.0.1", 0
        token = token or secrets.token_hex(16)
    if local and settings.master_key_file:
        raise RunError("--processes with --master-key-file: local workers use a token; give --master-token instead")
    keys = keys_for(token, settings.master_key_file, settings.worker_keys, master=True)
    if keys is None and not is_loopback(bind_host) and not settings.master_insecure:
        raise RunError(
            f"--master-bind-host {bind_host}: a master listening beyond loopback needs --master-token (or "
            "LRUN_MASTER_TOKEN, or --master-key-file and --worker-keys): without one, anyone who can reach the "
            "port could join as a worker and read the setup's variables; listen on 127.0.0.1, or accept that "
            "with --master-insecure"
        )
    expected = settings.expect_workers or max(1, local)
    max_wait = settings.expect_workers_max_wait
    if max_wait is None and local and not settings.master:
        max_wait = LOCAL_MAX_WAIT
    bundle = collect(loaded)
    options = MasterOptions(
        bind_host=bind_host,
        bind_port=bind_port,
        token=token,
        keys=keys,
        heartbeat_interval=settings.heartbeat_interval,
        heartbeat_liveness=settings.heartbeat_liveness,
        report_interval=settings.report_interval,
        iterations=settings.iterations,
        host=settings.host,
        demo_url=demo_url,
        tags=list(settings.tags),
        exclude_tags=list(settings.exclude_tags),
        entry_seconds=settings.csv_full_history or windows_read_requests(loaded.model.thresholds),
        scenario=bundle,
        rendezvous=not settings.no_rendezvous,
        env={name: os.environ.get(name) for name in constant_env_names(bundle[1])},
    )
    master = MasterRunner(compiled.user_classes, live.stats, options, **runner_hooks(live, compiled))
    master.compiled = compiled
    if loaded.model.load.is_open and not load_given_by_user(settings):  # -u or -t replace the arrivals
        master.max_users = loaded.model.load.max_users
    live.runner = master
    port = master.bind()
    if demo_url and not is_loopback(bind_host):
        log.warning(
            "host: demo serves the demo target on this machine's loopback (%s): workers on other machines cannot "
            "reach it; give them a host they can reach with -H URL",
            demo_url,
        )
    log.info("master listening on %s:%d", "*" if bind_host in ("*", "0.0.0.0") else bind_host, port)
    # the workers' own log: errors only (their warnings reach this master, which says each once)
    level = "DEBUG" if settings.loglevel.upper() == "DEBUG" else "ERROR"
    workers = LocalWorkers(
        local,
        port=port,
        token=token,
        scenario=Path(loaded.path).resolve(),
        loglevel=level,
        settings={"LRUN_ALLOW_ENV": "*"},  # the master's own machine: its workers read its environment
    )
    return master, workers, expected, max_wait
