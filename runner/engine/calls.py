"""What a user reports, and how Python code reports it: the ``RequestResult`` of one request (or any timed
call), ``user.client`` (HTTP, reported like the scenario's requests) and ``user.measure`` / ``user.report``
(any protocol: XML-RPC, gRPC, a database, a queue), all into the same statistics, thresholds and reports."""

from __future__ import annotations

import time
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol

from gevent import GreenletExit

from runner.engine.flow import FlowSignal, StopUser
from runner.http.response import Response

if TYPE_CHECKING:
    from runner.http.session import HttpSession


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
    retries: int = 0  # sent again on a new connection (a kept-alive one was found closed)
    connect_failed: bool = False  # no connection could be made (``failure`` says why)
    http2: bool = False  # it went over HTTP/2 (else HTTP/1.1, or not HTTP)
    response: Response | None = None
    trace_extracted: dict[str, Any] | None = None
    trace_checks: list[tuple[str, str | None]] | None = None
    trace_warnings: list[str] | None = None
    timings: tuple[float, ...] | None = None  # ms per phase (``runner.scenario.limits.PHASES``), HTTP responses only

    @classmethod
    def of(cls, method: str, name: str, response: Response, failure: str | None) -> RequestResult:
        """The result of an HTTP exchange: its URL, status, timing, size, retries and connect failure."""
        return cls(
            method,
            name,
            response.url,
            response.status,
            response.elapsed_ms,
            response.size,
            failure,
            response.retries,
            response.connect_failed,
            response.http2,
            timings=response.timings,
        )


class Caller(Protocol):
    """What a timed call needs of the user making it (an ``engine.user.VirtualUser``)."""

    in_flight: tuple[str, str] | None  # (method, name) of the request under way
    session: HttpSession

    def past_deadline(self) -> bool: ...

    def record(self, result: RequestResult) -> None: ...

    def report(
        self, method: str, name: str, elapsed_ms: float, *, size: int = 0, failure: str | None = None
    ) -> None: ...


class Measure:
    """``with user.measure("xmlrpc", "add") as call: ...`` times the block and reports it when it ends.

    An exception in the block is a failure (``TypeName: message``) and does not go further, as in Locust; the
    flow signals (stop the iteration, the user, the test) and greenlet kills pass through, and still report.
    Inside the block, ``call.fail("why")`` marks a failure without raising; ``call.size`` is the bytes moved.
    """

    __slots__ = ("_start", "_user", "failure", "method", "name", "size")

    def __init__(self, user: Caller, method: str, name: str) -> None:
        self._user = user
        self.method = method
        self.name = name
        self.size = 0
        self.failure: str | None = None
        self._start = 0.0

    def fail(self, failure: str) -> None:
        self.failure = failure

    def __enter__(self) -> Measure:
        self._start = time.perf_counter()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> bool:
        elapsed_ms = (time.perf_counter() - self._start) * 1000
        if exc is not None and self.failure is None:
            stopped = isinstance(exc, FlowSignal | GreenletExit)
            self.failure = None if stopped else f"{type(exc).__name__}: {exc}"
        self._user.report(self.method, self.name, elapsed_ms, size=self.size, failure=self.failure)
        return isinstance(exc, Exception) and not isinstance(exc, FlowSignal)


class Client:
    """``user.client`` in Python steps: the user's HTTP session, each request reported to the statistics.

    ``client.get(url, name=None, **kwargs)`` (and post, put, patch, delete, head, options, request) returns the
    response; a status of 400 or more, or no response, counts as a failure unless ``ok_status`` says otherwise.
    """

    __slots__ = ("_user",)

    def __init__(self, user: Caller) -> None:
        self._user = user

    def request(
        self, method: str, url: str, *, name: str | None = None, ok_status: Any = None, **kwargs: Any
    ) -> Response:
        user = self._user
        if user.past_deadline():  # the run is over: nothing more is sent
            raise StopUser("the run's deadline passed")
        user.in_flight = (method.upper(), name or url)
        response = user.session.request(method.upper(), url, **kwargs)
        if user.past_deadline():  # the run ended while it was under way: cut off, counted as interrupted
            raise StopUser("the run's deadline passed")
        user.in_flight = None
        failure = None
        if not response.status or response.error:  # no response, or one past max_redirects …
            failure = response.error or "no response"
        elif ok_status is not None:
            allowed = ok_status if isinstance(ok_status, list | tuple | set) else [ok_status]
            if response.status not in allowed:
                failure = f"HTTP {response.status}, expected {ok_status}"
        elif response.status >= 400:
            failure = f"HTTP {response.status}"
        user.record(RequestResult.of(method.upper(), name or url, response, failure))
        return response

    def get(self, url: str, **kwargs: Any) -> Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> Response:
        return self.request("POST", url, **kwargs)

    def put(self, url: str, **kwargs: Any) -> Response:
        return self.request("PUT", url, **kwargs)

    def patch(self, url: str, **kwargs: Any) -> Response:
        return self.request("PATCH", url, **kwargs)

    def delete(self, url: str, **kwargs: Any) -> Response:
        return self.request("DELETE", url, **kwargs)

    def head(self, url: str, **kwargs: Any) -> Response:
        return self.request("HEAD", url, **kwargs)

    def options(self, url: str, **kwargs: Any) -> Response:
        return self.request("OPTIONS", url, **kwargs)
