"""A worker of a distributed run: a ``LocalRunner`` driven by the master's targets.

The worker says hello until the master answers (welcome or refusal), sets up the scenario — its own file, or
the files the master sent — and then: heartbeats every heartbeat interval (state, users, its own CPU and
memory), reports ``RequestStats.delta()`` every report interval, applies each newer ``Spawn`` (absolute
targets per user type) to its ``LocalRunner``, and on ``Stop`` stops its users, sends a final report and
``Stopped``. It exits on ``Quit``.

A worker that hears nothing from its master for ``master_timeout`` seconds stops its users at once and exits
(code 1): a load tool must not keep loading a system nobody controls.

``request(message)`` is the request/reply path for the worker's greenlets (data pools, rendezvous): it sends a
request with a fresh ``request_id`` and blocks on an ``AsyncResult`` until the receive loop hands it the reply.
"""

from __future__ import annotations

import collections
import dataclasses
import itertools
import logging
import os
import secrets
import signal
import socket
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gevent
import psutil
import zmq.green as zmq
from gevent.event import AsyncResult, Event

import runner
from runner.distributed import protocol as p
from runner.distributed.security import Keys, WorkerEnv
from runner.distributed.transport import Endpoint
from runner.engine.arrivals import ArrivalRunner
from runner.engine.dispatch import capped
from runner.engine.rows import RemoteRows
from runner.engine.runner import LocalRunner, freeze_heap
from runner.engine.runner_protocol import RateStage
from runner.engine.saturation import Saturation
from runner.engine.state import RunState
from runner.errors import LrunError, RunError
from runner.scenario import templating
from runner.scenario.numbers import MAX_USERS_PER_PROCESS
from runner.scenario.scripting import request_hook
from runner.stats import TransactionStats

log = logging.getLogger("lrun")

EXIT_OK, EXIT_LOST, EXIT_USAGE = 0, 1, 2
HELLO_EVERY = 1.0  # seconds between hellos until the master answers
HANDSHAKES = 3  # connections closed in the security handshake before a worker gives up (a wrong token)


class RequestError(Exception):
    """A request to the master failed: it answered RequestFailed, or nothing in time."""


@dataclass
class WorkerOptions:
    master_host: str = "127.0.0.1"
    master_port: int = p.DEFAULT_PORT
    token: str | None = None
    keys: Keys | None = None  # CURVE keys (runner.distributed.security); None: plain text, loopback masters
    allow_env: tuple[str, ...] = ()  # names (NAME, PREFIX*) the scenario's env() may read on this machine
    master_timeout: float = 10.0  # a silent master for this long: stop the users and exit
    connect_timeout: float = 60.0  # how long to look for a master before giving up
    data_dir: str | None = None  # --data-dir, for a worker with its own copy of the scenario


def _rss() -> int:
    """Resident memory of this process in bytes (psutil: Linux, macOS, Windows)."""
    return psutil.Process().memory_info().rss


class WorkerRunner:
    """One worker process's part of a distributed run; ``run()`` returns the exit code."""

    def __init__(self, options: WorkerOptions, scenario: Path | None = None) -> None:
        self.options = options
        self.scenario = scenario
        self.id = f"{_hostname()}-{os.getpid()}-{secrets.token_hex(2)}"
        self.welcome: p.Welcome | None = None
        self.runner: Any = None  # LocalRunner, once the first Spawn came
        self.stats: Any = None
        self.transactions: Any = None
        self.intended: Any = None  # the open model: RequestStats timed from the intended starts
        self.compiled: Any = None  # the CompiledScenario
        self.classes: list[Any] = []
        self.exit_code: int | None = None
        self.message = ""  # why it ended, when not all good
        self._endpoint: Endpoint | None = None
        self._logged_malformed = False
        self._answered = Event()  # welcome or refusal
        self._done = Event()
        self._last_heard = time.monotonic()
        self._spawn_seq = 0  # the last Spawn received
        self._applying = 0  # the seq of the spawn under way
        self._report_seq = 0
        self._user_ids: collections.deque[int] = collections.deque()  # ids the master gave for the next users
        self._local_id: Any = None
        self._failed_handshakes = 0
        self._said: set[str] = set()  # statistics warnings already sent
        self._arrivals_said: dict[str, Any] | None = None  # the arrival counts of the last report
        self._stopping = False  # told to stop (or interrupted): users do not end by themselves
        self._ids = itertools.count(1)
        self._pending: dict[int, AsyncResult] = {}
        self._greenlets: list[gevent.Greenlet] = []
        self._tempdir: tempfile.TemporaryDirectory[str] | None = None
        self._cpu = (time.monotonic(), time.process_time())  # (wall, CPU) at the last heartbeat

    # ------------------------------------------------------------------------------------------- the run

    def run(self) -> int:
        """Connect, take part until told to quit (or the master is lost); the exit code."""
        o = self.options
        address = f"tcp://{o.master_host}:{o.master_port}"
        self._endpoint = Endpoint.client(self.id, o.keys, self._handshake_failed)
        try:
            self._endpoint.connect(address)
        except zmq.ZMQError as exc:
            self._close()
            raise RunError(f"--master-host {o.master_host}: cannot connect to {address} ({exc.strerror})") from None
        self._endpoint.serve(self._receive)
        try:
            return self._run()
        finally:
            self._close()

    def _run(self) -> int:
        o = self.options
        where = f"{o.master_host}:{o.master_port}"
        deadline = time.monotonic() + o.connect_timeout
        log.info("worker %s looking for the master at %s", self.id, where)
        while not self._answered.is_set() and not self._done.is_set():
            if time.monotonic() >= deadline:
                self._end(
                    EXIT_USAGE,
                    f"no master answered at {where} within {o.connect_timeout:g}s: is it running, and can this "
                    "machine reach that address and port?",
                )
                return self._finish()
            self._send(self._hello())
            self._answered.wait(HELLO_EVERY)
        if self._done.is_set():
            return self._finish()
        welcome = self.welcome
        assert welcome is not None
        log.info("worker %s joined the master at %s", self.id, where)
        try:
            self._setup(welcome)
        except LrunError as exc:
            self._send(p.WorkerFailed(str(exc)))
            self._end(EXIT_USAGE, f"cannot run the scenario: {exc}")
            return self._finish()
        self._last_heard = time.monotonic()
        self._cpu = (time.monotonic(), time.process_time())  # not the imports and the compiling
        self._greenlets += [
            gevent.spawn(self._every, welcome.heartbeat_interval, self._heartbeat),
            gevent.spawn(self._every, welcome.report_interval, self._report),
            gevent.spawn(self._watchdog),
        ]
        self._heartbeat()
        self._done.wait()
        return self._finish()

    def _handshake_failed(self, event: dict[str, Any]) -> None:
        """The master's side closed the connection during the security handshake: keys that do not match."""
        definite = event["event"] != zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL  # a mechanism mismatch, a refused key
        self._failed_handshakes += 1
        if (self._failed_handshakes < HANDSHAKES and not definite) or self._answered.is_set():
            return
        where = f"{self.options.master_host}:{self.options.master_port}"
        self._end(
            EXIT_USAGE,
            f"the master at {where} refused the connection in the security handshake: "
            + (
                "its --master-token (or key files) and this worker's differ; give the worker the master's"
                if self.options.keys is not None
                else "it has a --master-token (or key files); give the worker the same (LRUN_MASTER_TOKEN)"
            ),
        )
        self._answered.set()

    def _hello(self) -> p.Hello:
        return p.Hello(
            worker_id=self.id,
            token=self.options.token or "",
            host=_hostname(),
            pid=os.getpid(),
            cores=os.cpu_count() or 1,
            lrun_version=runner.__version__,
            want_scenario=self.scenario is None,
            clock=time.time(),
        )

    def _setup(self, welcome: p.Welcome) -> None:
        """Load and compile the scenario as the master says (host, tags …)."""
        from runner.compile.compiler import CompileOptions, compile_scenario
        from runner.distributed.bundle import unpack
        from runner.scenario import load_scenario
        from runner.stats import RequestStats

        path = self.scenario
        if path is None:
            if not welcome.scenario_files:
                raise RunError("the master sent no scenario; give the worker the scenario file")
            if self._tempdir is None:  # a next test (NextTest) reuses the files
                self._tempdir = tempfile.TemporaryDirectory(prefix="lrun-worker-")
                unpack(welcome.scenario_files, Path(self._tempdir.name))
            path = Path(self._tempdir.name, *welcome.scenario_path.split("/"))
        loaded = load_scenario(path, self.options.data_dir if self.scenario is not None else None)
        compiled = compile_scenario(
            loaded,
            CompileOptions(
                host=welcome.host,
                demo_url=welcome.demo_url,
                tags=tuple(welcome.tags),
                exclude_tags=tuple(welcome.exclude_tags),
            ),
        )
        self.compiled = compiled
        self.classes = compiled.user_classes
        freeze_heap()  # now, not when the first users start
        templating.env_source = WorkerEnv(self.options.allow_env, welcome.env, self._warn).read
        self.stats = RequestStats(node=self.id)
        self.transactions = TransactionStats(node=self.id)

    def _run_state(self, variables: dict[str, Any]) -> RunState:
        """This test's state on the worker: the master's setup variables; sequential and unique pools, and every
        rendezvous, are the master's (this worker asks it for rows and tells it arrivals); random pools stay here."""
        assert self.compiled is not None and self.welcome is not None
        state = self.compiled.fresh_state(variables)
        for name, pool in self.compiled.pools.items():
            if pool.order != "random":
                fetch, tell = self._pool_fetcher(name), self._pool_teller(name)
                state.pools[name] = RemoteRows(len(pool.data), fetch, tell, pool.order == "unique", pool.returns)
        for point in state.points.values():
            point.enabled = self.welcome.rendezvous
            point.remote = lambda name, count: self._send(p.RendezvousArrive(name, count))
        return state

    def _pool_fetcher(self, pool: str) -> Any:
        def fetch(n: int, wait: float) -> tuple[list[int], bool]:
            reply = self.request(p.PoolTake(0, pool, n, wait), timeout=30.0 + wait)
            assert isinstance(reply, p.PoolRows)
            return list(reply.indices), reply.dry

        return fetch

    def _orphan(self, reply: p.Message) -> None:
        """Rows the master sent a user that no longer waits for them (killed, or it gave up): a unique + cycle
        row goes back to the master for the next user; other rows count as never handed out."""
        if not isinstance(reply, p.PoolRows) or not reply.indices or self.compiled is None:
            return
        pool = self.compiled.pools.get(reply.pool)
        if pool is not None:
            returned, unused = (list(reply.indices), 0) if pool.returns else ([], len(reply.indices))
            self._send(p.PoolNote(reply.pool, returned, unused, 0, 0, 0.0, 0))

    def _pool_teller(self, pool: str) -> Any:
        def tell(returned: Sequence[int], unused: int, waited: float | None, stopped: bool) -> None:
            note = p.PoolNote(pool, list(returned), unused, 0, int(waited is not None), waited or 0.0, int(stopped))
            self._send(note)

        return tell

    def _end(self, code: int, message: str = "") -> None:
        """The worker is done (the first reason given counts); ``run`` returns."""
        if self.exit_code is None:
            self.exit_code = code
            self.message = message
        self._done.set()

    def _finish(self) -> int:
        code = EXIT_OK if self.exit_code is None else self.exit_code
        if self.message:
            log.error("worker %s: %s", self.id, self.message)
        return code

    def _close(self) -> None:
        for greenlet in self._greenlets:
            greenlet.kill(block=False)
        if self.runner is not None and self.runner.state.value not in ("stopped",):
            self.runner.kill_now()
            self.runner.wait(5)
        if self._endpoint is not None:
            self._endpoint.close()
            self._endpoint = None
        if self._tempdir is not None:
            self._tempdir.cleanup()

    # ------------------------------------------------------------------------------------------- sending

    def _send(self, message: p.Message) -> None:
        if self._endpoint is not None:  # nobody takes it (the master is away)? the watchdog decides
            self._endpoint.send(message)

    def request(self, message: p.Message, timeout: float = 30.0) -> p.Message:
        """Send a request (``message.REPLY`` set) with a fresh ``request_id``; block until its reply.

        ``RequestError`` when the master answers ``RequestFailed`` or nothing within ``timeout`` seconds.
        """
        if message.REPLY is None:
            raise TypeError(f"{message.KIND} is not a request")
        request_id = next(self._ids)
        result: AsyncResult = AsyncResult()
        self._pending[request_id] = result
        try:
            self._send(dataclasses.replace(message, request_id=request_id))  # type: ignore[call-arg,type-var]
            reply = result.get(timeout=timeout)
        except gevent.Timeout:
            raise RequestError(f"no answer from the master to {message.KIND} within {timeout:g}s") from None
        except BaseException:  # the asking user is killed: what the master gave it is nobody's
            if result.ready():
                self._orphan(result.get())
            raise
        finally:
            self._pending.pop(request_id, None)
        if isinstance(reply, p.RequestFailed):
            raise RequestError(reply.message)
        return reply

    def _every(self, seconds: float, task: Any) -> None:
        due = time.monotonic()
        while True:
            due += seconds
            gevent.sleep(max(0.0, due - time.monotonic()))
            task()

    def _heartbeat(self) -> None:
        wall, used = time.monotonic(), time.process_time()
        span = wall - self._cpu[0]
        share = (used - self._cpu[1]) / span if span >= 0.1 else 0.0  # the first beat comes right after setup
        self._cpu = (wall, used)
        if self.runner is not None and self.runner.saturation is not None:
            self.runner.saturation.check(span)
        state = self.runner.state.value if self.runner is not None else "ready"
        users = self.runner.user_count if self.runner is not None else 0
        self._send(p.Heartbeat(state, users, round(share * 100, 1), _rss(), self._spawn_seq))

    def _report(self, final: bool = False) -> None:
        if self.stats is None:
            return
        for stats in (self.stats, self.transactions):
            if stats.capped and stats.capped not in self._said:  # too many request names: said once
                self._said.add(stats.capped)
                self._warn(stats.capped)
        seconds = self.welcome is not None and self.welcome.entry_seconds  # each row's seconds: its own charts
        delta = self.stats.delta(entry_seconds=seconds)
        transactions = self.transactions.delta(entry_seconds=seconds)
        checks = self.runner.run_state.checks.deltas() if self.runner is not None else []
        changed = delta["entries"] or delta["errors"]["failures"] or delta["errors"]["exceptions"]
        counts = self.runner.arrivals.to_wire() if isinstance(self.runner, ArrivalRunner) else None
        if final or changed or transactions["entries"] or checks or counts != self._arrivals_said:
            self._report_seq += 1
            users = self.runner.user_count if self.runner is not None else 0
            intended = self.intended.delta() if counts is not None else None
            ran = _ran(self.runner) if self.runner is not None else {}
            self._send(p.Report(self._report_seq, delta, users, transactions, checks, counts, intended, **ran))
            self._arrivals_said = counts

    def _watchdog(self) -> None:
        timeout = self.options.master_timeout
        while not self._done.is_set():
            silent = time.monotonic() - self._last_heard
            if silent > timeout:
                self._stop_users("the master is lost", now=True)
                self._end(
                    EXIT_LOST,
                    f"nothing heard from the master for {timeout:g}s: stopped the users and quit "
                    "(a load test nobody controls must not go on)",
                )
                return
            gevent.sleep(min(0.5, timeout - silent + 0.01))

    # ------------------------------------------------------------------------------------------- receiving

    def _receive(self, frames: list[bytes], peer: str | None) -> None:
        """A message from the master (the transport's receive loop calls this)."""
        try:
            message = p.decode(frames[-1])
        except p.VersionMismatch as exc:
            reason = exc.body.get("reason") if exc.kind == "Refused" else None
            self._end(
                EXIT_USAGE,
                f"the master refused this worker: {reason}"
                if isinstance(reason, str)
                else f"the master speaks {exc}: run the same lrun version on master and workers",
            )
            self._answered.set()
            return
        except p.ProtocolError as exc:
            if not self._logged_malformed:
                self._logged_malformed = True
                log.warning("dropped a malformed message from the master: %s", exc)
            return
        self._last_heard = time.monotonic()
        try:
            self._handle(message)
        except Exception:  # a bug must not leave a worker loading with nobody listening
            log.exception("internal error while handling %s", message.KIND)
            self._stop_users("internal error", now=True)
            self._end(EXIT_LOST, "internal error; stopped the users")

    def _handle(self, message: p.Message) -> None:
        if isinstance(message, p.Welcome):
            if self.welcome is None:
                self.welcome = message
                self._answered.set()
        elif isinstance(message, p.Refused):
            where = f"{self.options.master_host}:{self.options.master_port}"
            self._end(EXIT_USAGE, f"the master at {where} refused this worker: {message.reason}")
            self._answered.set()
        elif isinstance(message, p.Spawn):
            self._spawn(message)
        elif isinstance(message, p.Stop):
            self._stop_users(message.reason, now=message.now)
            if self.runner is None:
                self._report(final=True)
                self._send(p.Stopped(message.reason, False))
        elif isinstance(message, p.NextTest):
            self._next_test(message)
        elif isinstance(message, p.Quit):
            log.info("worker %s: the master says quit (%s)", self.id, message.reason)
            self._end(EXIT_OK)
        elif isinstance(message, p.Pong | p.RequestFailed | p.PoolRows | p.UserIdBlock):
            pending = self._pending.get(message.request_id)
            if pending is not None:
                pending.set(message)
            else:
                self._orphan(message)
        elif isinstance(message, p.RendezvousRelease):
            point = self.runner.run_state.points.get(message.name) if self.runner is not None else None
            if point is not None:
                point.open()
        # MasterHeartbeat: hearing it is all (self._last_heard)

    def _spawn(self, spawn: p.Spawn) -> None:
        if spawn.seq <= self._spawn_seq or self.stats is None:
            return
        self._spawn_seq = spawn.seq
        if self._stopping or (self.runner is not None and self.runner.state.value == "stopped"):
            return
        names = [c.type_name for c in self.classes]
        unknown = sorted(set(spawn.targets) - set(names))
        if unknown:
            text = (
                f"the master's user types {', '.join(unknown)} are not in this worker's scenario: give the worker "
                "the master's scenario, or none (it then receives it)"
            )
            self._send(p.WorkerFailed(text))
            self._end(EXIT_USAGE, text)
            return
        received = time.monotonic()
        if self.runner is None:
            self._start_runner(spawn)
        self._applying = spawn.seq
        if spawn.arrival_stages:  # the open model: this worker's share of the arrivals
            plan = [(since, int(index), int(count)) for since, index, count in spawn.arrival_plan]
            if self.runner.state.value == "ready":
                stages = [RateStage(duration, rate) for duration, rate in spawn.arrival_stages]
                elapsed = spawn.arrival_elapsed + time.monotonic() - received  # starting the runner took time
                self.runner.follow(stages, spawn.arrival_start_rate, elapsed, plan)
            self.runner.replan(plan, spawn.max_users)
            self._send(p.Spawned(spawn.seq, self.runner.user_count))
            return
        wanted = [spawn.targets.get(name, 0) for name in names]
        if sum(wanted) > MAX_USERS_PER_PROCESS:
            self._warn(
                f"the master asked this worker for {sum(wanted):,} users, more than one process runs "
                f"({MAX_USERS_PER_PROCESS:,}): running {MAX_USERS_PER_PROCESS:,}; add workers for more"
            )
            wanted = capped(wanted, MAX_USERS_PER_PROCESS)
        self.runner.set_counts(wanted, spawn.spawn_rate)

    def _start_runner(self, spawn: p.Spawn) -> None:
        """The first Spawn: the runner of this worker's users (an ArrivalRunner for the open model)."""
        from runner.stats import RequestStats

        assert self.welcome is not None
        hooks: dict[str, Any] = {
            "stop_timeout": self.welcome.stop_timeout,
            "on_warning": self._warn,
            "transactions": self.transactions,
            "on_stopping": self._release_waiters,
            "request_hook": request_hook(self.compiled.script, self._warn),
            "run_state": self._run_state(spawn.variables),  # the master's setup, this worker's pools and gates
        }
        if spawn.arrival_stages:
            self.intended = RequestStats(node=self.id)
            self.runner = ArrivalRunner(self.classes, self.stats, self.intended, max_users=spawn.max_users, **hooks)
        else:
            self.runner = LocalRunner(
                self.classes,
                self.stats,
                iterations=self.welcome.iterations,
                on_spawned=lambda count: self._send(p.Spawned(self._applying, count)),
                **hooks,
            )
        self.runner.started_at = time.time()
        if not spawn.arrival_stages:  # an arrival's user id is its place in the cluster's schedule
            self._local_id = self.runner.take_id
            self.runner.reserve_ids, self.runner.take_id = self._reserve_ids, self._take_id
        self.runner.saturation = Saturation(self._warn)  # its warning reaches the master's results
        self._greenlets += [gevent.spawn(self._await_runner), self.runner.saturation.lag.start()]

    def _next_test(self, settings: p.NextTest) -> None:
        """Another test follows: the users of the last one go, the scenario is set up afresh for the next."""
        if self.welcome is None:
            return
        if self.runner is not None and self.runner.state.value != "stopped":
            self.runner.kill_now()
        self.welcome = dataclasses.replace(
            self.welcome,
            host=settings.host,
            tags=settings.tags,
            exclude_tags=settings.exclude_tags,
            iterations=settings.iterations,
            stop_timeout=settings.stop_timeout,
        )
        try:
            self._setup(self.welcome)
        except LrunError as exc:
            self._send(p.WorkerFailed(str(exc)))
            self._end(EXIT_USAGE, f"cannot run the scenario: {exc}")
            return
        self.runner, self._stopping, self.intended, self._arrivals_said = None, False, None, None
        log.info("worker %s: set up for the next test", self.id)

    def _reserve_ids(self, count: int) -> None:
        """Before starting ``count`` users (in the spawner greenlet): the master hands out their ids."""
        need = count - len(self._user_ids)
        if need <= 0:
            return
        try:
            block = self.request(p.UserIds(0, need))
        except RequestError as exc:
            self._warn(f"no user ids from the master ({exc}): user_id may repeat across workers")
            return
        assert isinstance(block, p.UserIdBlock)
        self._user_ids.extend(range(block.first, block.first + block.count))

    def _take_id(self) -> int:
        return self._user_ids.popleft() if self._user_ids else self._local_id()

    def _warn(self, message: str) -> None:
        """A warning of this worker's users goes to the master's results too (the runner says each once)."""
        log.warning("%s", message)
        self._send(p.WorkerWarning(message[:2000]))

    def _release_waiters(self) -> None:
        """The users are stopping: nobody stays at a rendezvous."""
        if self.runner is not None:
            for point in self.runner.run_state.points.values():
                point.open()

    def _await_runner(self) -> None:
        """When the users are stopped (told to, or by themselves): the final report, then Stopped."""
        runner = self.runner
        runner.wait()
        if runner is not self.runner:  # a test that ended long ago (NextTest came before it stopped)
            return
        for name, rows in runner.run_state.pools.items():  # before Stopped: the master counts what users took
            if isinstance(rows, RemoteRows):
                rows.flush()
            elif rows.handed_out:  # a random pool, this worker's own
                self._send(p.PoolNote(name, [], 0, rows.handed_out, 0, 0.0, 0))
        self._report(final=True)
        self._send(p.Stopped(self.runner.stop_reason or "stopped", not self._stopping))

    def _stop_users(self, reason: str, *, now: bool) -> None:
        self._stopping = True
        if self.runner is None:
            return
        if now:
            self.runner.kill_now()
        else:
            self.runner.stop(reason)
        if self.runner.state.value == "stopped":  # stopped by itself before: say it again
            self._send(p.Stopped(self.runner.stop_reason, False))

    def interrupt(self, reason: str) -> None:
        """Ctrl-C or SIGTERM on the worker: stop the users, send the final report, say bye, exit."""
        if self._stopping:
            self._end(EXIT_OK)
            return
        self._stopping = True
        gevent.spawn(self._leave, reason)

    def _leave(self, reason: str) -> None:
        if self.runner is not None:
            self.runner.stop(reason)
            self.runner.wait(self.runner.stop_timeout + 10)
        if self.welcome is not None:
            self._report(final=True)
            self._send(p.Bye(reason))
        self._end(EXIT_OK)


def _hostname() -> str:
    try:
        return socket.gethostname() or "unknown"
    except OSError:
        return "unknown"


def run_worker(scenario: Path | None, options: WorkerOptions, *, exit_with_parent: bool = False) -> int:
    """``lrun [SCENARIO] --worker``: take part in the master's runs; the exit code."""
    worker = WorkerRunner(options, scenario)
    handlers = [
        gevent.signal_handler(signal.SIGINT, worker.interrupt, "interrupted on the worker"),
        gevent.signal_handler(signal.SIGTERM, worker.interrupt, "terminated"),
    ]
    if exit_with_parent:
        gevent.spawn(_watch_parent, worker)
    try:
        return worker.run()
    finally:
        for handler in handlers:
            handler.cancel()


def _watch_parent(worker: WorkerRunner) -> None:
    """``--processes``: stdin is a pipe from the parent; its end (EOF) means the parent is gone."""
    from runner.parent import wait_for_parent_exit

    wait_for_parent_exit()
    worker._stop_users("the parent process is gone", now=True)
    worker._end(EXIT_LOST, "the parent process is gone: stopped the users and quit")


def _ran(runner: LocalRunner) -> dict[str, Any]:
    """What a worker's users did, for its Report (``runner.drive._accounting`` on the master's side)."""
    return {
        "users_max": runner.user_count_max,
        "users_started": runner.users_started,
        "users_ended_early": runner.users_ended_early,
        "interrupted": [[method, name, count] for (method, name), count in runner.interrupted.items()],
    }
