"""The virtual user at run time: the base of the classes the compiler generates.

A user runs ``on_start``, then iterations until it is told to stop (or its iteration limit), then ``on_stop``.
Steps are prepared callables ``step(user)``; they report each request to the ``Runtime`` the user belongs to
and raise flow signals (``runner.engine.flow``) to end an iteration, the user or the test.
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


class VirtualUser:
    """Base of generated user classes. Class attributes are set by the compiler."""

    type_name: ClassVar[str] = "user"
    weight: ClassVar[int] = 1
    fixed_count: ClassVar[int | None] = None
    host: ClassVar[str] = ""
    http: ClassVar[HttpSettings] = HttpSettings()
    make_headers: ClassVar[Callable[[Mapping[str, Any]], dict[str, str]]]
    make_variables: ClassVar[Callable[[dict[str, Any]], None]]
    on_start_steps: ClassVar[tuple[Step, ...]] = ()
    iteration_step: ClassVar[Step]
    on_stop_steps: ClassVar[tuple[Step, ...]] = ()

    __slots__ = ("iteration", "late_ms", "runtime", "session", "stopping", "user_id", "vars")

    def __init__(self, runtime: Runtime, user_id: int) -> None:
        self.runtime = runtime
        self.user_id = user_id
        self.iteration = 0
        self.stopping = False
        self.late_ms = 0.0  # open model: how long after its intended start this user began
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

    def run(self, iterations: int | None = None) -> None:
        """Run the user's life; raises ``StopTest`` (after on_stop) when a step asked to stop the test.

        A user killed by its runner (after the stop timeout) ends at once, without its on_stop steps.
        """
        stop_test: StopTest | None = None
        killed = False
        try:
            self._steps(self.on_start_steps)
            step = self.iteration_step
            while not self.stopping and (iterations is None or self.iteration < iterations):
                self.iteration += 1
                self.vars["iteration"] = self.iteration
                try:
                    step(self)
                except StopIteration_:
                    continue
                except FlowSignal:
                    raise
                except Exception as exc:  # a bug in a user must not end the test: record it, go on
                    self.runtime.on_error(self, exc)
        except (StopIteration_, StopUser):
            pass
        except StopTest as exc:
            stop_test = exc
        except GreenletExit:
            killed = True
            raise
        except Exception as exc:
            self.runtime.on_error(self, exc)
        finally:
            if not killed:
                self._on_stop()
            self.session.close()
        if stop_test is not None:
            raise stop_test

    def _on_stop(self) -> None:
        try:
            self._steps(self.on_stop_steps)
        except FlowSignal:
            pass
        except Exception as exc:
            self.runtime.on_error(self, exc)

    def _steps(self, steps: tuple[Step, ...]) -> None:
        for step in steps:
            step(self)

    def think(self, seconds: float) -> None:
        self.runtime.on_think(self, seconds)
        if self.runtime.think and seconds > 0:
            gevent.sleep(seconds)

    def __repr__(self) -> str:
        return f"<{self.type_name} #{self.user_id}>"
