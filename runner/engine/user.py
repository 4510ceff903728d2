"""The virtual user at run time: the base of the classes the compiler generates.

A user runs ``on_start``, then iterations until it is told to stop (or its iteration limit), then ``on_stop``.
Steps are prepared callables ``step(user)``; they report each request to the ``Runtime`` the user belongs to
and raise flow signals (``runner.engine.flow``) to end an iteration, the user or the test. Think times are
``Think`` markers between steps, where a user can wait without holding a greenlet.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import gevent
from gevent import GreenletExit

from runner.engine.calls import Client, Measure, RequestResult
from runner.engine.flow import FlowSignal, StopIteration_, StopTest, StopUser
from runner.engine.rows import Held
from runner.engine.state import RunState
from runner.http.response import Response
from runner.http.session import HttpSession
from runner.stats.checks import SCRATCH

Step = Callable[["VirtualUser"], int | None]  # returns None, or a jump: how many items to skip (or go back)


class Runtime(Protocol):
    """What virtual users report to: the debug printer, or the load runner's statistics."""

    trace: bool  # collect every extractor value and checkpoint verdict (debug); off under load
    think: bool  # honour think time (off in debug unless asked)

    def on_request(self, user: VirtualUser, result: RequestResult) -> None: ...

    def on_response(self, user: VirtualUser, method: str, name: str, response: Response, failure: str | None) -> None:
        """A scenario request's response when not tracing: ``on_request`` of ``RequestResult.of(...)``, which a
        load runner may skip (the hot path: no result object unless something reads it)."""
        ...

    def on_think(self, user: VirtualUser, seconds: float) -> None: ...

    def on_warning(self, user: VirtualUser, message: str) -> None: ...

    def on_error(self, user: VirtualUser, error: BaseException) -> None: ...

    def on_transaction(self, user: VirtualUser, transaction: Transaction, failure: str | None) -> None: ...


@dataclass(frozen=True, slots=True)
class HttpSettings:
    timeout: float = 60.0
    connect_timeout: float = 10.0
    max_redirects: int = 10
    max_body: int = 10 * 2**20
    discard_body: bool = False
    http2: bool = True  # offer HTTP/2 by ALPN on https


class Think:
    """A pause in a user's program. ``sample()`` gives the seconds to wait.

    A ``pacing`` think ends an iteration: it waits what is left of ``sample()`` seconds since the iteration began.
    """

    __slots__ = ("pacing", "sample")

    def __init__(self, sample: Callable[[], float], pacing: bool = False) -> None:
        self.sample = sample
        self.pacing = pacing


@dataclass(slots=True)
class Transaction:
    """A transaction under way in a user: its clock excludes think time and rendezvous waits."""

    name: str
    start: float  # perf_counter
    excluded: float = 0.0  # seconds of think time and rendezvous waits inside
    think: float = 0.0  # of which think time
    failure: str | None = None

    def elapsed_ms(self, now: float) -> float:
        return max(0.0, now - self.start - self.excluded) * 1000.0


Program = tuple[Step | Think, ...]

ON_START, ITERATING, ON_STOP, DONE = range(4)
INF = float("inf")


class VirtualUser:
    """Base of generated user classes. Class attributes are set by the compiler.

    A user's life is three flat programs: ``on_start``, one iteration (picked anew each time), ``on_stop``.
    ``advance`` runs the user until its next think (and returns the seconds to wait) or the end of its life
    (and returns None). A waiting user needs no greenlet: the runner parks it on a timer, and a fresh greenlet
    continues where it stopped. That is what keeps 10,000 thinking users cheap.
    """

    type_name: ClassVar[str] = "user"
    weight: ClassVar[int] = 1
    fixed_count: ClassVar[int | None] = None
    host: ClassVar[str] = ""
    http: ClassVar[HttpSettings] = HttpSettings()
    make_headers: ClassVar[Callable[[Mapping[str, Any]], dict[str, str]]]
    make_variables: ClassVar[Callable[[dict[str, Any]], None]]
    on_start_program: ClassVar[Program] = ()
    pick_iteration: ClassVar[Callable[[], Program]]
    on_stop_program: ClassVar[Program] = ()

    pools: ClassVar[tuple[Any, ...]] = ()  # the data pools this user type reads (runner.compile.pools.Pool)

    __slots__ = (
        "_iteration_start",
        "_paused_at",
        "_pc",
        "_phase",
        "_program",
        "_stop_test",
        "channels",
        "check_counts",
        "deadline",
        "greenlet",
        "in_flight",
        "iteration",
        "late_ms",
        "loops",
        "parked",
        "pool_rows",
        "run_state",
        "runtime",
        "session",
        "stopping",
        "transactions",
        "user_id",
        "vars",
    )

    def __init__(self, runtime: Runtime, user_id: int) -> None:
        self.runtime = runtime
        self.user_id = user_id
        # what the test owns: checkpoint counters, setup variables, pools' row sources, rendezvous gates; a runtime
        # without one (a unit test's) gives this user a state of its own
        state = self.run_state = getattr(runtime, "run_state", None) or RunState()
        # a runner given no RunState for the compiled scenario (a probe, a test) counts verdicts nowhere
        self.check_counts = state.checks.counts if state.checks.keys else SCRATCH
        self.iteration = 0
        self.stopping = False
        self.deadline = INF  # time.monotonic() from which this user may begin nothing (``advance`` sets it)
        self.late_ms = 0.0  # open model: how long after its intended start this user began
        self.in_flight: tuple[str, str] | None = None  # (method, name) of the request under way: cut off at the stop?
        self.greenlet: Any = None  # the runner's bookkeeping: the greenlet running it, or
        self.parked: Any = None  # the timer that will wake it
        self._phase = ON_START
        self._program: Program = self.on_start_program
        self._pc = 0
        self._stop_test: StopTest | None = None
        self._iteration_start = 0.0
        self._paused_at = 0.0
        self.transactions: list[Transaction] = []  # open ones, innermost last
        self.loops: dict[int, Any] = {}  # loop state by loop id
        self.pool_rows: dict[str, Held] = {}  # the row held in each pool
        self.channels: dict[Any, Any] = {}  # other protocols' open connections (WebSocket, SSE, gRPC): .abort()
        self.vars: dict[str, Any] = {
            "user_id": user_id,
            "user_type": self.type_name,
            "iteration": 0,
            "host": self.host,
            **state.setup_vars,
        }
        self.make_variables(self.vars)  # type: ignore[call-arg,misc]
        self.session = HttpSession(
            self.host,
            headers=self.make_headers(self.vars),  # type: ignore[call-arg,misc]
            connect_timeout=self.http.connect_timeout,
            timeout=self.http.timeout,
            max_redirects=self.http.max_redirects,
            max_body=self.http.max_body,
            discard_body=self.http.discard_body,
            http2=self.http.http2,
        )

    def advance(self, iterations: int | None = None, stop_at: float = INF, deadline: float = INF) -> float | None:
        """Run until the next think (return its seconds) or the end of the user's life (return None).

        A failed step's flow signal ends the iteration (``stop_iteration``), the user (``stop_user``: on_stop
        still runs) or the test (``stop_test``: on_stop runs, then ``StopTest`` is raised from here). An
        exception inside a step is reported and ends the iteration: a bug in a user must not end the test.

        From ``stop_at`` (``time.monotonic()``) no new iteration begins; from ``deadline`` no new step does and
        the user's life ends here (without on_stop). Both are checked by the user itself, so they hold even when
        the runner's own timers fire late on a saturated event loop.
        """
        if self._paused_at:
            self._resume_transactions()
        self.deadline = deadline
        while True:
            program, pc = self._program, self._pc
            if deadline != INF and time.monotonic() >= deadline:
                self.transactions.clear()  # cut short: never finished, not reported
                self._phase = DONE
                self.close()
                return None
            if pc >= len(program):
                if stop_at != INF and time.monotonic() >= stop_at:
                    self.stopping = True
                if not self._next_program(iterations):
                    return None
                continue
            item = program[pc]
            self._pc = pc + 1
            if item.__class__ is Think:
                seconds = item.sample()
                if item.pacing:
                    seconds -= time.monotonic() - self._iteration_start
                    if seconds <= 0:
                        continue
                self.runtime.on_think(self, seconds)
                if seconds > 0 and self.runtime.think:
                    if self.transactions:
                        self._paused_at = time.perf_counter()
                        for transaction in self.transactions:
                            transaction.think += seconds
                    return seconds
                continue
            try:
                jump = item(self)  # type: ignore[operator]
                if jump is not None:
                    self._pc += jump
            except StopIteration_:
                self._end_program(stop_user=self._phase == ON_START)
            except StopUser:
                self._end_program(stop_user=True)
            except StopTest as signal:
                self._stop_test = signal
                self._end_program(stop_user=True)
            except FlowSignal:  # pragma: no cover - the three above are all there are
                self._end_program(stop_user=True)
            except Exception as exc:
                self.in_flight = None
                self.runtime.on_error(self, exc)
                if self.transactions:
                    self.fail_transactions(f"{type(exc).__name__}: {exc}")
                self._end_program(stop_user=self._phase == ON_START)

    def _resume_transactions(self) -> None:
        paused = time.perf_counter() - self._paused_at
        self._paused_at = 0.0
        for transaction in self.transactions:
            transaction.excluded += paused

    def begin_transaction(self, name: str) -> None:
        self.transactions.append(Transaction(name, time.perf_counter()))

    def end_transaction(self, failure: str | None = None) -> None:
        """End the innermost transaction and report it (failed if anything inside failed, or ``failure``)."""
        transaction = self.transactions.pop()
        transaction.failure = transaction.failure or failure
        self.runtime.on_transaction(self, transaction, transaction.failure)

    def fail_transactions(self, failure: str) -> None:
        """A request or checkpoint failed: every transaction under way fails with it."""
        for transaction in self.transactions:
            if transaction.failure is None:
                transaction.failure = failure

    def exclude_from_transactions(self, seconds: float) -> None:
        """Time that is not the system's (a rendezvous wait) does not count in the transactions under way."""
        for transaction in self.transactions:
            transaction.excluded += seconds

    def _end_program(self, stop_user: bool) -> None:
        """Skip the rest of the current program; with ``stop_user``, go to on_stop (or end, from on_stop).

        Transactions under way that saw a failure are reported failed; the others never finished and are not
        reported (a pool that ran dry, a test stopping). An iteration still keeps its pacing (its last item).
        """
        while self.transactions:
            if self.transactions[-1].failure is not None:
                self.end_transaction()
            else:
                self.transactions.pop()
        program = self._program
        last = program[-1] if program else None
        paced = self._phase == ITERATING and last.__class__ is Think and last.pacing
        self._pc = len(program) - 1 if paced and not stop_user else len(program)
        if stop_user and self._phase in (ON_START, ITERATING):
            self._enter(ON_STOP, self.on_stop_program)

    def _enter(self, phase: int, program: Program) -> None:
        self._phase, self._program, self._pc = phase, program, 0

    def _next_program(self, iterations: int | None) -> bool:
        if self._phase in (ON_START, ITERATING):
            if not self.stopping and (iterations is None or self.iteration < iterations):
                self.iteration += 1
                self.vars["iteration"] = self.iteration
                self._iteration_start = time.monotonic()
                self._enter(ITERATING, self.pick_iteration())  # type: ignore[misc]
            else:
                self._enter(ON_STOP, self.on_stop_program)
            return True
        self._phase = DONE
        self.close()
        if self._stop_test is not None:
            signal, self._stop_test = self._stop_test, None
            raise signal
        return False

    def past_deadline(self) -> bool:
        """The run's deadline passed (a response that arrives after it is neither checked nor counted)."""
        return self.deadline != INF and time.monotonic() >= self.deadline

    @property
    def done(self) -> bool:
        return self._phase == DONE

    @property
    def client(self) -> Client:
        """An HTTP client for Python steps: its requests are reported like the scenario's own."""
        return Client(self)

    def measure(self, method: str, name: str) -> Measure:
        """``with user.measure("xmlrpc", "add") as call:`` times any action and reports it as a request of
        ``method`` named ``name`` (an exception in the block, or ``call.fail(why)``, makes it a failure)."""
        return Measure(self, method, name)

    def report(self, method: str, name: str, elapsed_ms: float, *, size: int = 0, failure: str | None = None) -> None:
        """Report a call timed elsewhere: a request of ``method`` (``xmlrpc``, ``grpc``, ``sql`` …) named ``name``;
        ``failure`` (a message) makes it a failed one, and fails the user's open transactions."""
        self.record(RequestResult(method, name, name, 0, elapsed_ms, size, failure))  # no HTTP status: 0

    def record(self, result: RequestResult) -> None:
        """Report the result of a call made from Python (``client``, ``measure``, ``report``) to the runtime; a
        failed one fails the user's open transactions."""
        self.runtime.on_request(self, result)
        if result.failure is not None and self.transactions:
            self.fail_transactions(result.failure)

    def warn(self, message: str) -> None:
        """Something went wrong that does not stop the user (a warning of the run, and in its results)."""
        self.runtime.on_warning(self, message)

    def close(self) -> None:
        """Release the user's connections and pool rows (also when it was killed without its on_stop)."""
        self.session.close()
        for channel in self.channels.values():
            channel.abort()
        self.channels.clear()
        for pool in self.pools:
            if pool.name in self.pool_rows:
                pool.release(self, self.run_state.rows(pool))

    def run(self, iterations: int | None = None) -> None:
        """Run the whole life in this greenlet, sleeping through think times (debug, tests)."""
        try:
            while (seconds := self.advance(iterations)) is not None:
                gevent.sleep(seconds)
        except GreenletExit:
            self.close()
            raise

    def __repr__(self) -> str:
        return f"<{self.type_name} #{self.user_id}>"
