"""The virtual user at run time: the base of the classes the compiler generates.

A user runs ``on_start``, then iterations until it is told to stop (or its iteration limit), then ``on_stop``.
Steps are prepared callables ``step(user)``; they report each request to the ``Runtime`` the user belongs to
and raise flow signals (``runner.engine.flow``) to end an iteration, the user or the test. Think times are
``Think`` markers between steps, where a user can wait without holding a greenlet.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import gevent
from gevent import GreenletExit

from runner.engine.flow import FlowSignal, StopIteration_, StopTest, StopUser
from runner.http.response import Response
from runner.http.session import HttpSession

Step = Callable[["VirtualUser"], None]


@dataclass(slots=True)
class RequestResult:
    """What one request step did. The ``trace_*`` fields are filled only when the runtime traces."""

    method: str
    name: str
    url: str
    status: int
    elapsed_ms: float
    size: int
    failure: str | None = None
    response: Response | None = None
    trace_extracted: dict[str, Any] | None = None
    trace_checks: list[tuple[str, str | None]] | None = None
    trace_warnings: list[str] | None = None


class Runtime(Protocol):
    """What virtual users report to: the debug printer, or the load runner's statistics."""

    trace: bool  # collect every extractor value and checkpoint verdict (debug); off under load
    think: bool  # honour think time (off in debug unless asked)

    def on_request(self, user: VirtualUser, result: RequestResult) -> None: ...

    def on_think(self, user: VirtualUser, seconds: float) -> None: ...

    def on_warning(self, user: VirtualUser, message: str) -> None: ...

    def on_error(self, user: VirtualUser, error: BaseException) -> None: ...


@dataclass(frozen=True, slots=True)
class HttpSettings:
    timeout: float = 60.0
    connect_timeout: float = 10.0
    max_redirects: int = 10


class Think:
    """A pause in a user's program. ``sample()`` gives the seconds to wait."""

    __slots__ = ("sample",)

    def __init__(self, sample: Callable[[], float]) -> None:
        self.sample = sample


Program = tuple[Step | Think, ...]

ON_START, ITERATING, ON_STOP, DONE = range(4)


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

    __slots__ = (
        "_pc",
        "_phase",
        "_program",
        "_stop_test",
        "greenlet",
        "iteration",
        "late_ms",
        "parked",
        "runtime",
        "session",
        "stopping",
        "user_id",
        "vars",
    )

    def __init__(self, runtime: Runtime, user_id: int) -> None:
        self.runtime = runtime
        self.user_id = user_id
        self.iteration = 0
        self.stopping = False
        self.late_ms = 0.0  # open model: how long after its intended start this user began
        self.greenlet: Any = None  # the runner's bookkeeping: the greenlet running it, or
        self.parked: Any = None  # the timer that will wake it
        self._phase = ON_START
        self._program: Program = self.on_start_program
        self._pc = 0
        self._stop_test: StopTest | None = None
        self.vars: dict[str, Any] = {
            "user_id": user_id,
            "user_type": self.type_name,
            "iteration": 0,
            "host": self.host,
        }
        self.make_variables(self.vars)
        self.session = HttpSession(
            self.host,
            headers=self.make_headers(self.vars),
            connect_timeout=self.http.connect_timeout,
            timeout=self.http.timeout,
            max_redirects=self.http.max_redirects,
        )

    def advance(self, iterations: int | None = None) -> float | None:
        """Run until the next think (return its seconds) or the end of the user's life (return None).

        A failed step's flow signal ends the iteration (``stop_iteration``), the user (``stop_user``: on_stop
        still runs) or the test (``stop_test``: on_stop runs, then ``StopTest`` is raised from here). An
        exception inside a step is reported and ends the iteration: a bug in a user must not end the test.
        """
        while True:
            program, pc = self._program, self._pc
            if pc >= len(program):
                if not self._next_program(iterations):
                    return None
                continue
            item = program[pc]
            self._pc = pc + 1
            if item.__class__ is Think:
                seconds = item.sample()  # type: ignore[union-attr]
                self.runtime.on_think(self, seconds)
                if seconds > 0 and self.runtime.think:
                    return seconds
                continue
            try:
                item(self)  # type: ignore[operator]
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
                self.runtime.on_error(self, exc)
                self._end_program(stop_user=self._phase == ON_START)

    def _end_program(self, stop_user: bool) -> None:
        """Skip the rest of the current program; with ``stop_user``, go to on_stop (or end, from on_stop)."""
        self._pc = len(self._program)
        if stop_user and self._phase in (ON_START, ITERATING):
            self._enter(ON_STOP, self.on_stop_program)

    def _enter(self, phase: int, program: Program) -> None:
        self._phase, self._program, self._pc = phase, program, 0

    def _next_program(self, iterations: int | None) -> bool:
        if self._phase in (ON_START, ITERATING):
            if not self.stopping and (iterations is None or self.iteration < iterations):
                self.iteration += 1
                self.vars["iteration"] = self.iteration
                self._enter(ITERATING, self.pick_iteration())
            else:
                self._enter(ON_STOP, self.on_stop_program)
            return True
        self._phase = DONE
        self.close()
        if self._stop_test is not None:
            signal, self._stop_test = self._stop_test, None
            raise signal
        return False

    @property
    def done(self) -> bool:
        return self._phase == DONE

    def close(self) -> None:
        """Release the user's connections (also when it was killed without its on_stop)."""
        self.session.close()

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
