"""The local runner: starts and stops virtual users in one process and reports what they do to statistics.

States follow Locust's: ready → spawning → running → (spawning again when the user count changes) →
stopping → stopped. ``stop()`` is safe from anywhere, including a user's own greenlet: the stopping itself
runs in a greenlet of its own. Nothing starts in the constructor; ``start`` does.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Sequence
from typing import Protocol

import gevent
from gevent import GreenletExit
from gevent.event import Event
from gevent.pool import Group

from runner.engine.calls import RequestResult
from runner.engine.dispatch import distribute, spawn_order, start_order
from runner.engine.runner_protocol import Distributed, OpenModel, SharedVariables, Stage, State
from runner.engine.saturation import Saturation
from runner.engine.state import RunState
from runner.engine.user import INF as _INF
from runner.engine.user import Transaction, VirtualUser
from runner.http.unreachable import Unreachable


def freeze_heap() -> None:
    """What is alive before the first users start (modules, the compiled scenario) lives as long as the
    process: ``gc.freeze`` takes it out of the cyclic collector's walks, which otherwise stop every user
    for tens of milliseconds at each full collection. Once per process; later objects are collected as usual."""
    if gc.get_freeze_count() == 0:
        gc.collect()
        gc.freeze()


class StatsSink(Protocol):
    """What the runner feeds: ``runner.stats.RequestStats`` fits."""

    def log(
        self,
        method: str,
        name: str,
        ms: float,
        size: int,
        failure: str | None,
        retries: int = 0,
        http2: bool = False,
        timings: tuple[float, ...] | None = None,
    ) -> None: ...

    def log_error(self, error: BaseException, user_type: str) -> None: ...


class LoadShape:
    """What the local runner and a distributed run's master share: closed-model load shapes (a constant load
    for a run time, or stages) over their ``set_users``, and ``stop`` over their ``_stop``.

    They keep ``_target`` (the asked user count), ``_timers`` (greenlets to kill on stop), ``started_at``,
    ``state``, ``stop_reason`` and ``stop_timeout``.

    The run time is a deadline, also when the event loop is too busy to run the stopping timer on time:
    from ``ends_at`` (``time.monotonic()``) users begin no new iteration; from ``deadline`` (``ends_at`` plus the
    stop timeout) they begin no new step, and requests that began after it are not counted.
    """

    _target: int
    _timers: list[gevent.Greenlet]
    started_at: float | None
    state: State
    stop_reason: str
    stop_timeout: float
    ends_at: float = float("inf")
    deadline: float = float("inf")
    users_at_stop: int | None = None  # the user count when the test was stopped: the users of its last moments

    @property
    def user_count(self) -> int:
        raise NotImplementedError

    def _end_by(self, seconds: float) -> None:
        """The run ends ``seconds`` from now, or earlier if it was already due to."""
        self.ends_at = min(self.ends_at, time.monotonic() + seconds)
        self.deadline = min(self.deadline, self.ends_at + self.stop_timeout)

    def set_users(self, target: int, spawn_rate: float) -> None:
        raise NotImplementedError

    def _stop(self) -> None:
        raise NotImplementedError

    def stop(self, reason: str = "stopped") -> None:
        """Stop the test (idempotent; safe to call from a user's greenlet): the stopping runs in its own."""
        if self.state in (State.STOPPING, State.STOPPED) or self.stop_reason:
            return
        self.stop_reason = reason
        self.users_at_stop = self.user_count
        self._end_by(0.0)
        gevent.spawn(self._stop)

    def start(self, users: int, spawn_rate: float, run_time: float | None = None) -> None:
        """Start ``users`` at ``spawn_rate`` per second; stop by itself after ``run_time`` seconds."""
        self.started_at = time.time()
        if run_time is not None:
            self._end_by(run_time)
        self.set_users(users, spawn_rate)
        if run_time is not None:
            self._timers.append(gevent.spawn_later(run_time, self.stop, "run time reached"))

    def start_stages(self, stages: Sequence[Stage]) -> None:
        """Ramp through ``stages`` (ramp up, hold, ramp down …); stop when the last one ends."""
        self.started_at = time.time()
        self._end_by(sum(stage.duration for stage in stages))
        self._timers.append(gevent.spawn(self._run_stages, list(stages)))

    def _run_stages(self, stages: list[Stage]) -> None:
        for stage in stages:
            change = abs(stage.users - self._target)
            rate = change / stage.duration if stage.duration > 0 and change else float("inf")
            self.set_users(stage.users, rate)
            gevent.sleep(stage.duration)
        self.stop("stages completed")

    @property
    def target_users(self) -> int:
        """The user count the load asks for now (what 'percent of all users' is taken of)."""
        return self._target


class TransactionSink(Protocol):
    """Where transactions go: ``runner.stats.TransactionStats`` fits."""

    def log_transaction(self, name: str, ms: float, think_s: float, failure: str | None) -> None: ...


class LocalRunner(LoadShape):
    """Runs virtual users of the given classes in this process; it is their ``Runtime``."""

    trace = False
    think = True
    stop_when_idle = True  # the test ends when the last user finished (iterations, stop_user)
    saturation: Saturation | None = None  # told when a spawn rate is not reached

    def __init__(
        self,
        classes: Sequence[type[VirtualUser]],
        stats: StatsSink,
        *,
        iterations: int | None = None,
        stop_timeout: float = 0.0,
        on_spawned: Callable[[int], None] | None = None,
        on_warning: Callable[[str], None] | None = None,
        transactions: TransactionSink | None = None,
        on_stopping: Callable[[], None] | None = None,
        request_hook: Callable[[VirtualUser, RequestResult], None] | None = None,
        run_state: RunState | None = None,
    ) -> None:
        freeze_heap()
        self.classes = list(classes)
        self.run_state = run_state or RunState()  # what this test changes: checkpoint counts, setup variables
        self.stats = stats
        self.transactions = transactions
        self.on_stopping = on_stopping  # the test begins to stop (release rendezvous waiters …)
        self.request_hook = request_hook
        self.iterations = iterations
        self.stop_timeout = stop_timeout
        self.on_spawned = on_spawned
        self.warn = on_warning or (lambda message: None)
        self.state = State.READY
        self.stop_reason = ""
        self.started_at: float | None = None
        self.users: list[dict[int, VirtualUser]] = [{} for _ in self.classes]  # by class, in start order
        self.user_count_max = 0
        self.users_started = 0  # every user started, however short its life
        self.users_ended_early = 0  # ended on their own (not told to stop) while the test went on
        self.interrupted: dict[tuple[str, str], int] = {}  # (method, name) -> requests in flight at the stop
        self._group = Group()
        self._spawner: gevent.Greenlet | None = None
        self._timers: list[gevent.Greenlet] = []
        self._next_id = 1
        self._target = 0  # the user count the last set_users asked for
        self._done = Event()
        self._warned: set[str] = set()
        self.unreachable = Unreachable()  # says once when the target answers nothing but connection errors

    # ------------------------------------------------------------------------------------------- capabilities

    @property
    def open_model(self) -> OpenModel | None:
        return None  # the closed model (an ArrivalRunner is the open one)

    @property
    def distributed(self) -> Distributed | None:
        return None

    @property
    def shared_variables(self) -> SharedVariables | None:
        return None  # the users run here: they read the setup's variables from the run state

    # ------------------------------------------------------------------------------------------- Runtime

    def counts(self, result: RequestResult) -> bool:
        """A request counts unless it began after the deadline (a step already under way may send more)."""
        deadline = self.deadline
        return deadline == _INF or time.monotonic() - result.elapsed_ms / 1000 < deadline

    def on_request(self, user: VirtualUser, result: RequestResult) -> None:
        deadline = self.deadline
        if deadline != _INF and time.monotonic() - result.elapsed_ms / 1000 >= deadline:
            return  # it began after the deadline (``counts``, inlined: this runs for every request)
        self.stats.log(
            result.method,
            result.name,
            result.elapsed_ms,
            result.size,
            result.failure,
            result.retries,
            result.http2,
            result.timings,
        )
        unreachable = self.unreachable
        if (result.connect_failed or unreachable.since is not None) and (  # in a run of connection errors, or its end
            warning := unreachable.note(result.failure if result.connect_failed else None)
        ) is not None:
            self.warn(warning)
        if self.request_hook is not None:
            self.request_hook(user, result)

    def on_transaction(self, user: VirtualUser, transaction: Transaction, failure: str | None) -> None:
        if self.transactions is not None:
            ms = transaction.elapsed_ms(time.perf_counter())
            self.transactions.log_transaction(transaction.name, ms, transaction.think, failure)

    def on_think(self, user: VirtualUser, seconds: float) -> None:
        pass

    def on_warning(self, user: VirtualUser, message: str) -> None:
        if message not in self._warned and len(self._warned) < 100:  # say each distinct warning once
            self._warned.add(message)
            self.warn(f"{user.type_name}: {message}")

    def on_error(self, user: VirtualUser, error: BaseException) -> None:
        self.stats.log_error(error, user.type_name)

    # ------------------------------------------------------------------------------------------- control

    @property
    def user_count(self) -> int:
        return sum(len(users) for users in self.users)

    def set_users(self, target: int, spawn_rate: float) -> None:
        """Move to ``target`` users at ``spawn_rate`` per second (replaces a spawn under way)."""
        self.set_counts(distribute(self.classes, max(0, target)), spawn_rate)

    def set_counts(self, wanted: Sequence[int], spawn_rate: float) -> None:
        """Move to ``wanted[i]`` users of class i (a worker gets these from its master)."""
        if self.state in (State.STOPPING, State.STOPPED):
            return
        if self._spawner is not None:
            self._spawner.kill(block=False)
        self._target = sum(wanted)
        self._spawner = gevent.spawn(self._spawn, list(wanted), spawn_rate)

    def _spawn(self, wanted: list[int], rate: float) -> None:
        self.state = State.SPAWNING
        target = sum(wanted)
        current = [len(users) for users in self.users]
        self.reserve_ids(sum(max(0, w - c) for w, c in zip(wanted, current, strict=True)))
        interval = 1.0 / rate if rate > 0 and rate != float("inf") else 0.0
        due = began = time.monotonic()
        started = 0
        for index in start_order([max(0, w - c) for w, c in zip(wanted, current, strict=True)]):
            self._start_user(index)
            started += 1
            due += interval
            gevent.sleep(max(0.0, due - time.monotonic()))
        if self.saturation is not None and started:
            self.saturation.spawn_slipped(started, rate, time.monotonic() - began)
        for index in reversed(spawn_order([max(0, c - w) for w, c in zip(wanted, current, strict=True)])):
            self._stop_one(index)
            due += interval
            gevent.sleep(max(0.0, due - time.monotonic()))
        if self.state == State.SPAWNING:
            self.state = State.RUNNING
        if self.on_spawned:
            self.on_spawned(self.user_count)
        self._spawner = None
        if self.user_count == 0 and target > 0:
            self.stop("all users finished")

    def reserve_ids(self, count: int) -> None:
        """``count`` users are about to start (a worker asks its master for their ids: they are the cluster's)."""

    def take_id(self) -> int:
        """The next user's ``user_id``: 1, 2, 3 … in the order users start."""
        self._next_id += 1
        return self._next_id - 1

    def _start_user(self, index: int) -> VirtualUser:
        user = self.classes[index](self, self.take_id())
        self.users[index][user.user_id] = user
        user.greenlet = self._group.spawn(self._run_user, user, index)
        self.user_count_max = max(self.user_count_max, self.user_count)
        self.users_started += 1
        return user

    def _run_user(self, user: VirtualUser, index: int) -> None:
        """Run ``user`` until it thinks (then park it on a timer) or its life ends."""
        from runner.engine.flow import StopTest

        try:
            seconds = user.advance(self.iterations, self.ends_at, self.deadline)
        except StopTest as signal:
            self.stop(signal.reason if not signal.failed else f"stop_test: {signal.reason}".rstrip(": "))
            seconds = None
        except GreenletExit:
            user.close()
            seconds = None
        user.greenlet = None
        if seconds is None:
            if user.in_flight is not None:  # its request was cut off by the stop (killed, or past the deadline)
                self.interrupted[user.in_flight] = self.interrupted.get(user.in_flight, 0) + 1
            elif not user.stopping and not self.stop_reason and self.iterations is None:
                self.users_ended_early += 1
            self._forget(user, index)
        else:
            user.parked = timer = gevent.get_hub().loop.timer(seconds)
            timer.start(self._wake, user, index)

    def _wake(self, user: VirtualUser, index: int) -> None:
        user.parked = None
        user.greenlet = self._group.spawn(self._run_user, user, index)

    def _forget(self, user: VirtualUser, index: int) -> None:
        """A user's life ended: take it off the books; maybe that was the last one."""
        self.users[index].pop(user.user_id, None)
        if self.stop_when_idle and self.user_count == 0 and self._spawner is None and self.state == State.RUNNING:
            self.stop("all users finished")

    def _terminate(self, user: VirtualUser, index: int) -> None:
        """End a user now, wherever it is, without its on_stop."""
        if user.parked is not None:
            user.parked.stop()
            user.parked = None
            user.close()
            self._forget(user, index)
        elif user.greenlet is not None:
            user.greenlet.kill(block=False)

    def _stop_one(self, index: int) -> None:
        """Stop the newest user of a class: let it finish its iteration within the stop timeout."""
        if not self.users[index]:
            return
        user = self.users[index][next(reversed(self.users[index]))]
        user.stopping = True
        if self.stop_timeout > 0:
            gevent.spawn_later(self.stop_timeout, self._terminate_if_alive, user, index)
        else:
            self._terminate(user, index)

    def _terminate_if_alive(self, user: VirtualUser, index: int) -> None:
        if user.user_id in self.users[index]:
            self._terminate(user, index)

    def _stop(self) -> None:
        self.state = State.STOPPING
        if self.on_stopping is not None:
            self.on_stopping()
        if self._spawner is not None:
            self._spawner.kill(block=False)
        for timer in self._timers:
            if timer is not gevent.getcurrent():
                timer.kill(block=False)
        for users in self.users:
            for user in users.values():
                user.stopping = True
        while self.user_count and time.monotonic() < self.deadline:
            gevent.sleep(min(0.05, max(0.0, self.deadline - time.monotonic())))
        for index, users in enumerate(self.users):
            for user in list(users.values()):
                self._terminate(user, index)
        self._group.join(timeout=10)
        for users in self.users:  # killed before they first ran (the spawner's last ones): nothing else forgets them
            for user in users.values():
                user.close()
            users.clear()
        self.state = State.STOPPED
        self._done.set()

    def kill_now(self) -> None:
        """A second Ctrl-C: do not wait for iterations to finish."""
        self.stop_timeout = 0
        self.deadline = min(self.deadline, time.monotonic())
        self.stop("interrupted")
        for index, users in enumerate(self.users):
            for user in list(users.values()):
                self._terminate(user, index)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the runner stopped; True when it did."""
        return bool(self._done.wait(timeout))
