"""The master of a distributed run: it runs no users, it drives workers and merges what they measure.

``MasterRunner`` has the public surface of ``LocalRunner`` (``start``, ``start_stages``, ``set_users``,
``stop``, ``kill_now``, ``wait``, ``user_count`` …), so ``runner.run.drive`` runs a distributed test exactly
like a local one: same load shape, thresholds, console, results and outputs. What differs happens here:

- a ROUTER socket takes workers' hellos (checking the token and the protocol version), welcomes them, and
  sends each absolute per-user-type targets (``runner.engine.dispatch.assign``) whenever the target, or the
  set of workers, changes: a worker joining, going missing, coming back or leaving rebalances the users;
- a worker unheard of for ``heartbeat_liveness`` heartbeat intervals is *missing*; its users go to the others;
  everything it reported stays counted;
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TextIO

import gevent
import zmq.green as zmq
from gevent.event import Event

import runner
from runner.config import RunSettings, load_given_by_user
from runner.distributed import protocol as p
from runner.distributed.bundle import collect
from runner.distributed.security import (
    Gatekeeper,
    HandshakeWatch,
    Keys,
    constant_env_names,
    keep_alive,
    keys_for,
    secure_server,
)
from runner.engine.dispatch import assign, distribute
from runner.engine.runner import LoadShape, State
from runner.engine.state import RunState
from runner.errors import RunError
from runner.events import Events
from runner.scenario import LoadedScenario

if TYPE_CHECKING:
    from runner.compiler import CompiledScenario
from runner.stats import RequestStats

log = logging.getLogger("lrun")

CPU_HOT = 90.0  # a worker above this % of a core for CPU_HOT_BEATS heartbeats measures its own queueing
CPU_HOT_BEATS = 3
MAX_LOGGED_PEERS = 1000  # peers whose malformed frames were logged (then only counted)
SKEW_WARNING = 1.0  # seconds of clock difference between a worker and the master worth a warning
LOCAL_MAX_WAIT = 60.0  # seconds --processes waits for its own workers to connect


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
    welcomed: float = -1e9  # monotonic time of the last Welcome sent
    ready: bool = False  # set up (scenario compiled) and heartbeating
    missing: bool = False
    gone: bool = False  # left, failed, or was told to quit
    finished: bool = False  # its users ended by themselves (iterations done, stop_test)
    stopped: bool = False  # sent Stopped: its final report is in
    state: str = "ready"
    users: int = 0
    users_max: int = 0
    cpu_percent: float = 0.0
    cpu_percent_max: float = 0.0
    memory_bytes: int = 0
    memory_bytes_max: int = 0
    hot_beats: int = 0  # heartbeats in a row above CPU_HOT
    warned_hot: bool = False
    targets: dict[str, int] = field(default_factory=dict)
    spawn: p.Spawn | None = None  # the last Spawn sent
    spawn_sent: float = 0.0  # monotonic
    spawn_received: int = 0  # the last Spawn seq it said it received
    spawn_done: int = 0  # the last Spawn seq it completed
    reports: int = 0
    requests: int = 0
    failures: int = 0
    samples: list[tuple[float, float, int]] = field(default_factory=list)  # (t, CPU %, RSS) for the report
    sample_every: float = 1.0  # seconds between samples; doubles when they are thinned

    def sample(self, now: float) -> None:
        """Remember CPU and memory from a heartbeat, at most every ``sample_every`` s and at most SAMPLES points:
        past that, every other point goes and the spacing doubles (memory stays flat in long runs)."""
        if self.samples and now - self.samples[-1][0] < self.sample_every:
            return
        self.samples.append((now, self.cpu_percent, self.memory_bytes))
        if len(self.samples) > SAMPLES:
            del self.samples[1::2]
            self.sample_every *= 2

    @property
    def active(self) -> bool:
        """Takes users: ready, heard from, not finished."""
        return self.ready and not (self.missing or self.gone or self.finished)

    def as_result(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "host": self.host,
            "pid": self.pid,
            "state": "missing" if self.missing else self.state,
            "users": self.users,
            "users_max": self.users_max,
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


SAMPLES = 300  # CPU and memory points kept per worker for the report's charts
MAX_WARNINGS = 100  # distinct warning texts from workers kept in the results


def is_loopback(host: str) -> bool:
    return host in ("localhost", "::1", "[::1]") or host.startswith("127.")


def _peer(identity: bytes) -> str:
    """A peer's identity for a log line: a worker id as text, anything else in hex."""
    text = identity.decode("utf-8", "replace")
    name = text if text.isprintable() and "\ufffd" not in text else identity.hex()
    return name if len(name) <= 40 else name[:37] + "..."


class MasterRunner(LoadShape):
    """Drives workers over ZeroMQ; the ``runner`` of a distributed run (see the module docstring)."""

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
        self.names = [c.type_name for c in self.classes]
        self.stats = stats
        self.options = options
        self.stop_timeout = stop_timeout
        self.on_spawned = on_spawned
        self.warn = on_warning or log.warning
        self.state = State.READY
        self.stop_reason = ""
        self.started_at: float | None = None
        self.user_count_max = 0
        self.workers: dict[bytes, WorkerInfo] = {}  # by ZeroMQ identity
        self.dropped = 0  # malformed or unexpected frames
        self.port: int | None = None
        self._target = 0
        self._rate = 1.0
        self._seq = 0
        self._spawn_reported = True  # on_spawned was called for the current target
        self._context: Any = None
        self._socket: Any = None
        self._greenlets: list[gevent.Greenlet] = []
        self._timers: list[gevent.Greenlet] = []
        self._changed = Event()  # a worker joined, got ready, stopped …
        self._done = Event()
        self._stop_deadline = 0.0
        self._logged: set[bytes] = set()
        self._order = 0
        self._requests: dict[type[p.Message], Callable[[WorkerInfo, Any], p.Message]] = {
            p.Ping: self._ping,
            p.PoolTake: self._pool_take,
            p.UserIds: self._user_ids,
        }
        self._rendezvous_watch: gevent.Greenlet | None = None
        self._gatekeeper: Gatekeeper | None = None
        self._handshakes: HandshakeWatch | None = None
        self.handshakes_failed = 0  # connections without the master's key
        self._next_user_id = 1  # user ids are the cluster's: 1..N across workers (UserIds requests)
        self._warnings: set[str] = set()  # workers' warnings already passed on

    # ------------------------------------------------------------------------------------------- sockets

    def bind(self) -> int:
        """Listen on the bind address; return the port. ``RunError`` for a port in use or a bad address."""
        self._context = zmq.Context()
        sock = self._context.socket(zmq.ROUTER)
        sock.setsockopt(zmq.LINGER, 1000)
        sock.setsockopt(zmq.ROUTER_HANDOVER, 0)  # a second connection under a connected worker's id gets nothing
        sock.setsockopt(zmq.MAXMSGSIZE, p.MAX_FRAME)  # a larger frame drops that connection, not the master
        keep_alive(sock)  # a dead connection goes within 30 s, so that its worker can come back under its id
        keys = self.options.keys
        if keys is not None:
            self._gatekeeper = Gatekeeper(self._context, keys.allowed)
            secure_server(sock, keys)
            self._handshakes = HandshakeWatch(sock, self._handshake_failed)
        host, port = self.options.bind_host, self.options.bind_port
        try:
            if port == 0:
                port = sock.bind_to_random_port(f"tcp://{host}")
            else:
                sock.bind(f"tcp://{host}:{port}")
        except zmq.ZMQError as exc:
            self._close_security()
            sock.close(0)
            self._context.term()
            if exc.errno == zmq.EADDRINUSE:
                raise RunError(
                    f"--master-bind-port {port}: the port is in use (another master?); "
                    "free it or choose another port with --master-bind-port"
                ) from None
            raise RunError(
                f"--master-bind-host {host}: cannot listen there ({exc.strerror}); "
                "give an address of this machine, 0.0.0.0 or * for all"
            ) from None
        self._socket = sock
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
        self._greenlets += [gevent.spawn(self._receive), gevent.spawn(self._watch)]

    def close(self) -> None:
        """Tell every worker to quit, then close the socket (idempotent)."""
        if self._socket is None:
            return
        for worker in self.workers.values():
            if not worker.gone:
                self._send(worker, p.Quit(self.stop_reason or "the master quit"))
        for greenlet in [*self._greenlets, *self._timers]:
            greenlet.kill(block=False)
        self._close_security()
        self._socket.close(linger=1000)
        self._context.term()
        self._socket = None

    def _close_security(self) -> None:
        if self._handshakes is not None:
            self._handshakes.close()
        if self._gatekeeper is not None:
            self._gatekeeper.close()

    def _send(self, worker: WorkerInfo, message: p.Message) -> None:
        self._send_to(worker.identity, message)

    def _send_to(self, identity: bytes, message: p.Message) -> None:
        if self._socket is None:
            return
        try:
            self._socket.send_multipart([identity, p.encode(message)], flags=zmq.NOBLOCK)
        except zmq.ZMQError as exc:  # the peer's queue is full or it is gone: heartbeats will tell
            log.debug("could not send %s to %s: %s", message.KIND, _peer(identity), exc)

    # ------------------------------------------------------------------------------------------- receiving

    def _receive(self) -> None:
        secure = self.options.keys is not None
        while True:
            try:
                if secure:  # each frame says which key's connection it came on
                    parts = self._socket.recv_multipart(copy=False)
                    peer = parts[-1].get("User-Id")
                    frames = [part.bytes for part in parts]
                else:
                    frames, peer = self._socket.recv_multipart(), None
            except zmq.ZMQError:
                if self._socket is None or self._socket.closed:
                    return
                gevent.sleep(0.01)
                continue
            try:
                self._handle(frames, peer)
            except Exception:  # a bug must not stop the master taking messages
                log.exception("internal error while handling a message from %s", _peer(frames[0]))

    def _drop(self, identity: bytes, why: str) -> None:
        self.dropped += 1
        if identity in self._logged or len(self._logged) >= MAX_LOGGED_PEERS:
            return
        self._logged.add(identity)
        log.warning("dropped a message from %s: %s (more from this peer are dropped silently)", _peer(identity), why)

    def _handle(self, frames: list[bytes], peer: str | None = None) -> None:
        identity = frames[0]
        if len(frames) != 2:
            self._drop(identity, f"expected one frame, got {len(frames) - 1}")
            return
        try:
            message = p.decode(frames[1])
        except p.VersionMismatch as exc:
            if exc.kind == "Hello":
                self._refuse_version(identity, exc)
            else:
                self._drop(identity, str(exc))
            return
        except p.ProtocolError as exc:
            self._drop(identity, str(exc))
            return
        worker = self.workers.get(identity)
        if worker is not None and worker.peer != peer:  # another connection presents this worker's id
            self._drop(identity, f"{message.KIND} under worker {worker.id}'s id from a connection with another key")
            return
        if isinstance(message, p.Hello):
            self._hello(identity, message, peer)
            return
        if worker is None:
            self._drop(identity, f"{message.KIND} from a peer that did not say hello")
            return
        worker.last_seen = time.monotonic()
        if worker.missing:
            self._back(worker)
        handler = self._handlers.get(type(message))
        if handler is not None:
            handler(self, worker, message)
        elif message.REPLY is not None:
            self._answer(worker, message)
        else:
            self._drop(identity, f"{message.KIND} is not a message for the master")

    def _refuse_version(self, identity: bytes, exc: p.VersionMismatch) -> None:
        theirs = exc.body.get("lrun_version")
        reason = (
            f"protocol version mismatch: the master runs lrun {runner.__version__} (protocol {p.PROTOCOL_VERSION}), "
            f"the worker lrun {theirs} (protocol {exc.version}); run the same lrun version on master and workers"
        )
        if identity not in self._logged:
            self._logged.add(identity)
            log.warning("refused worker %s: %s", _peer(identity), reason)
        self._send_to(identity, p.Refused("version", reason))

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
            self._send_to(
                identity,
                p.Refused(
                    "token",
                    f"{'wrong' if hello.token else 'missing'} token: start the worker with --master-token "
                    "(or LRUN_MASTER_TOKEN) set to the master's token",
                ),
            )
            return
        if self.state in (State.STOPPING, State.STOPPED):
            self._send_to(identity, p.Refused("stopping", "the test is ending; start the worker for the next one"))
            return
        worker = self.workers.get(identity)
        if worker is None or worker.id != hello.worker_id:
            self._order += 1
            worker = WorkerInfo(
                hello.worker_id, identity, peer, hello.host, hello.pid, hello.cores, self._order, time.monotonic()
            )
            self.workers[identity] = worker
            log.info(
                "worker %s connected (%s, pid %d, %d cores): %d worker(s)",
                worker.id,
                worker.host,
                worker.pid,
                worker.cores,
                sum(not w.gone for w in self.workers.values()),
            )
            skew = hello.clock - time.time()
            if abs(skew) > SKEW_WARNING:
                self.warn(
                    f"worker {worker.id}'s clock is {skew:+.1f}s off the master's: per-second charts mix seconds; "
                    "synchronise the clocks (NTP)"
                )
        now = time.monotonic()
        worker.last_seen = now
        if now - worker.welcomed < 1.0:  # hellos queued while the master was not up yet arrive together
            return
        worker.welcomed = now
        o = self.options
        files = o.scenario if hello.want_scenario else None
        if hello.want_scenario and files is None:
            self._send(worker, p.Refused("scenario", "the master has no scenario to send; give the worker one"))
            return
        self._send(
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
        first = not worker.ready
        worker.ready = True
        worker.state = beat.state
        self._set_users(worker, beat.users)
        worker.cpu_percent = beat.cpu_percent
        worker.cpu_percent_max = max(worker.cpu_percent_max, beat.cpu_percent)
        worker.memory_bytes = beat.memory_bytes
        worker.memory_bytes_max = max(worker.memory_bytes_max, beat.memory_bytes)
        worker.sample(time.time())
        worker.spawn_received = beat.spawn_seq
        self._send(worker, p.MasterHeartbeat(self.state.value, worker.spawn.seq if worker.spawn else 0))
        worker.hot_beats = worker.hot_beats + 1 if beat.cpu_percent > CPU_HOT else 0
        if worker.hot_beats >= CPU_HOT_BEATS and not worker.warned_hot:
            worker.warned_hot = True
            self.warn(
                f"worker {worker.id} ({worker.host}) uses more than {CPU_HOT:.0f}% of a core: response times "
                "it measures are inflated by its own queueing; add workers or run fewer users"
            )
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
            self._send(worker, worker.spawn)

    def _report(self, worker: WorkerInfo, report: p.Report) -> None:
        try:
            self.stats.merge(report.stats)
            if report.transactions is not None and self.transactions is not None:
                self.transactions.merge(report.transactions)
            if report.checks:
                self.run_state.checks.merge(report.checks)
        except (ValueError, TypeError) as exc:
            self._drop(worker.identity, f"statistics that do not merge: {exc}")
            return
        worker.reports += 1
        for entry in report.stats.get("entries", ()):
            worker.requests += int(entry["all"]["count"])  # merge() checked these
            worker.failures += int(entry["all"].get("failures", 0))
        self._set_users(worker, report.users)

    def _spawned(self, worker: WorkerInfo, done: p.Spawned) -> None:
        worker.spawn_done = max(worker.spawn_done, done.spawn_seq)
        self._set_users(worker, done.users)
        self._check_spawned()

    def _stopped(self, worker: WorkerInfo, stopped: p.Stopped) -> None:
        worker.stopped = True
        worker.state = State.STOPPED.value
        worker.users = 0
        self._changed.set()
        if not stopped.by_itself or self.state in (State.STOPPING, State.STOPPED):
            return
        worker.finished = True
        log.info("worker %s: %s", worker.id, stopped.reason)
        if stopped.reason.startswith("stop_test"):
            self.stop(stopped.reason)
        elif all(w.finished or not w.active or not any(w.targets.values()) for w in self.workers.values()):
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
        self._send(worker, p.Quit("it cannot run the scenario"))
        self._leave(worker, "failed")
        if self.state in (State.SPAWNING, State.RUNNING) and not any(w.active for w in self.workers.values()):
            self.stop(f"no worker can run the scenario: {failed.message}")

    def _leave(self, worker: WorkerInfo, state: str) -> None:
        worker.gone = True
        worker.state = state
        worker.users = 0
        self._count_users()
        self._changed.set()
        self._rebalance()

    # ------------------------------------------------------------------------------------------- rendezvous

    def _arrive(self, worker: WorkerInfo, arrive: p.RendezvousArrive) -> None:
        """Users of a worker arrived: the master's gate counts them against every worker's users."""
        point = self.compiled.rendezvous.get(arrive.name) if self.compiled is not None else None
        if point is None or arrive.count < 1:
            self._drop(worker.identity, f"RendezvousArrive for an unknown rendezvous {arrive.name[:40]!r}")
            return
        if point.gate.arrive(arrive.count, time.time(), self._target, self.user_count) is not None:
            self._release(point.gate)
        if self._rendezvous_watch is None:
            self._rendezvous_watch = gevent.spawn(self._watch_rendezvous)

    def _watch_rendezvous(self) -> None:
        """Timeouts between arrivals, and fewer running users meeting a percent_running policy."""
        assert self.compiled is not None
        gates = [point.gate for point in self.compiled.rendezvous.values()]
        while self.state not in (State.STOPPING, State.STOPPED):
            gevent.sleep(0.1)
            for gate in gates:
                if gate.check(time.time(), self._target, self.user_count) is not None:
                    self._release(gate)

    def _release(self, gate: Any, reason: str | None = None) -> None:
        """Tell every worker that the users waiting at ``gate`` go now."""
        release = p.RendezvousRelease(gate.name, len(gate.releases), reason or gate.releases[-1].reason)
        for worker in self.workers.values():
            if worker.active:
                self._send(worker, release)

    # ------------------------------------------------------------------------------------------- data pools

    def _pool_take(self, worker: WorkerInfo, take: p.PoolTake) -> p.Message:
        """The next rows of a pool the master owns, fewer near its end so that no worker sits on the last ones."""
        pool = self.compiled.pools.get(take.pool) if self.compiled is not None else None
        if pool is None or pool.order == "random":
            return p.RequestFailed(take.request_id, f"the master owns no pool {take.pool[:40]!r}")
        n = max(1, min(take.n, 1000))
        if pool.policy != "cycle":  # a row a worker holds when the pool runs dry is never used: keep blocks small
            active = sum(1 for w in self.workers.values() if w.active) or 1
            left = len(pool.data) - pool.rows.handed_out
            n = max(1, min(n, left // (8 * active)))
        indices = pool.rows.take(n)
        if not indices:
            pool.ran_dry = True
            if pool.policy == "stop_test" and self.state not in (State.STOPPING, State.STOPPED):
                self.stop(f"data pool '{pool.name}' ran out of rows ({pool.rows.handed_out} handed out)")
        return p.PoolRows(take.request_id, take.pool, indices, not indices)

    def share_variables(self, variables: dict[str, Any]) -> None:
        """What the setup steps and hooks defined goes to every user, with the spawn targets."""
        self.options.variables = variables

    _handlers: ClassVar[dict[type[p.Message], Callable[[MasterRunner, WorkerInfo, Any], None]]] = {
        p.Heartbeat: _heartbeat,
        p.Report: _report,
        p.Spawned: _spawned,
        p.Stopped: _stopped,
        p.Bye: _bye,
        p.WorkerFailed: _failed,
        p.WorkerWarning: _warning,
        p.RendezvousArrive: _arrive,
    }

    # request / reply (see the protocol module): REPLY-typed messages are answered by self._requests

    def _answer(self, worker: WorkerInfo, request: Any) -> None:
        handler = self._requests.get(type(request))
        if handler is None:
            reply: p.Message = p.RequestFailed(request.request_id, f"{request.KIND} is not handled by this master")
        else:
            try:
                reply = handler(worker, request)
            except Exception as exc:
                log.exception("internal error answering %s from %s", request.KIND, worker.id)
                reply = p.RequestFailed(request.request_id, f"the master failed: {exc}")
        self._send(worker, reply)

    def _user_ids(self, worker: WorkerInfo, ask: p.UserIds) -> p.Message:
        """The next ``count`` user ids of the cluster: users are numbered 1, 2, 3 … in the order workers ask."""
        count = max(0, min(ask.count, 1_000_000))
        first, self._next_user_id = self._next_user_id, self._next_user_id + count
        return p.UserIdBlock(ask.request_id, first, count)

    def _ping(self, worker: WorkerInfo, ping: p.Ping) -> p.Message:
        return p.Pong(ping.request_id, ping.sent)

    # ------------------------------------------------------------------------------------------- liveness

    def _watch(self) -> None:
        interval = self.options.heartbeat_interval
        limit = interval * self.options.heartbeat_liveness
        while True:
            gevent.sleep(interval)
            now = time.monotonic()
            lost = [w for w in self.workers.values() if not (w.gone or w.missing) and now - w.last_seen > limit]
            for worker in lost:
                worker.missing = True
                what = "its users go to the other workers; " if worker.ready and any(worker.targets.values()) else ""
                self.warn(
                    f"worker {worker.id} ({worker.host}) is missing: nothing heard for {limit:g}s; "
                    f"{what}what it reported stays in the results"
                )
            if lost:
                self._count_users()
                self._changed.set()
                self._rebalance()

    def _back(self, worker: WorkerInfo) -> None:
        worker.missing = False
        log.warning("worker %s (%s) is back", worker.id, worker.host)
        self._changed.set()
        self._rebalance()

    # ------------------------------------------------------------------------------------------- dispatch

    def _rebalance(self) -> None:
        """Send every active worker its share of the target (only to those whose share changed)."""
        if self.state not in (State.SPAWNING, State.RUNNING):
            return
        active = sorted((w for w in self.workers.values() if w.active), key=lambda w: w.order)
        if not active:
            if self._target:
                log.warning("no worker to run the users: waiting for one")
            return
        split = assign(distribute(self.classes, self._target), len(active))
        rate = self._rate / len(active)
        for worker, counts in zip(active, split, strict=True):
            targets = dict(zip(self.names, counts, strict=True))
            if targets == worker.targets and worker.spawn is not None:
                continue
            self._seq += 1
            worker.targets = targets
            worker.spawn = p.Spawn(self._seq, time.time(), targets, rate, self.options.variables)
            worker.spawn_sent = time.monotonic()
            self._send(worker, worker.spawn)
        self._check_spawned()

    def _check_spawned(self) -> None:
        active = [w for w in self.workers.values() if w.active]
        if not active or any(w.spawn is None or w.spawn_done < w.spawn.seq for w in active):
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
        return sum(w.users for w in self.workers.values() if not (w.gone or w.missing))

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
                ready = sum(w.ready and not (w.gone or w.missing) for w in self.workers.values())
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

    def _stop(self) -> None:
        self.state = State.STOPPING
        if self.on_stopping is not None:
            self.on_stopping()  # records who waited at a rendezvous; the workers let them go themselves
        for timer in self._timers:
            if timer is not gevent.getcurrent():
                timer.kill(block=False)
        for worker in self.workers.values():
            if not worker.gone and not worker.stopped:
                self._send(worker, p.Stop(self.stop_reason, False))
        o = self.options
        grace = o.heartbeat_interval * o.heartbeat_liveness + o.report_interval + 5
        self._stop_deadline = time.monotonic() + self.stop_timeout + grace
        while True:
            waiting = [w for w in self.workers.values() if not (w.gone or w.missing or w.stopped)]
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
        self.state = State.STOPPED
        self._done.set()

    def kill_now(self) -> None:
        """A second Ctrl-C: workers stop their users at once; wait for their reports only briefly."""
        self.stop("interrupted")
        for worker in self.workers.values():
            if not worker.gone and not worker.stopped:
                self._send(worker, p.Stop(self.stop_reason, True))
        self._stop_deadline = min(self._stop_deadline or float("inf"), time.monotonic() + 2)
        self._changed.set()

    def wait(self, timeout: float | None = None) -> bool:
        return self._done.wait(timeout)

    def results(self) -> dict[str, Any]:
        """The ``workers`` part of the results."""
        return {"workers": [w.as_result() for w in sorted(self.workers.values(), key=lambda w: w.order)]}


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
    from runner.distributed.local import QUIT_WAIT, LocalWorkers
    from runner.run import Live, drive, monitoring, runner_hooks

    if loaded.model.load.is_open and not load_given_by_user(settings):
        raise RunError(
            "the open model (arrival_rate, arrival_stages) does not run distributed yet: run it in one process, "
            "or give -u/-t for a closed-model run"
        )
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
    if settings.report_interval > 10:
        log.warning("--report-interval above 10s: the per-second series of the master lose the older seconds")

    stats = RequestStats(full_history=settings.csv_full_history, node="master")
    bundle = collect(loaded)
    live = Live(
        stats,
        None,
        settings,
        out,
        out.isatty(),
        lag=settings.report_interval + 1.0,
        events=events or Events(),
        **monitoring(loaded.model, settings),
    )
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
        entry_seconds=settings.csv_full_history,
        scenario=bundle,
        rendezvous=not settings.no_rendezvous,
        env={name: os.environ.get(name) for name in constant_env_names(bundle[1])},
    )
    master = MasterRunner(compiled.user_classes, stats, options, **runner_hooks(live, compiled))
    master.compiled = compiled
    live.runner = master
    live.extra_results = master.results
    port = master.bind()
    if demo_url and not is_loopback(bind_host):
        log.warning(
            "host: demo serves the demo target on this machine's loopback (%s): workers on other machines cannot "
            "reach it; give them a host they can reach with -H URL",
            demo_url,
        )
    log.info("master listening on %s:%d", "*" if bind_host in ("*", "0.0.0.0") else bind_host, port)
    level = "DEBUG" if settings.loglevel.upper() == "DEBUG" else "WARNING"  # workers' own log: problems only
    workers = LocalWorkers(
        local,
        port=port,
        token=token,
        scenario=Path(loaded.path).resolve(),
        loglevel=level,
        settings={"LRUN_ALLOW_ENV": "*"},  # the master's own machine: its workers read its environment
    )
    ran = False
    try:
        master.serve()
        workers.start()
        master.wait_for_workers(expected, max_wait, check=workers.check)
        live.started = time.time()
        ran = True
        return drive(loaded, compiled, settings, live, command=command)
    finally:
        master.close()
        workers.stop(quit_wait=QUIT_WAIT if ran else 1.0)
        if master.dropped:
            log.info("dropped %d malformed or unexpected message(s) during the run", master.dropped)
