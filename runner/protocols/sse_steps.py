"""The server-sent events steps compiled: closures over ``runner.protocols.sse.SseStream``.

Results of method ``SSE``: ``SSE <url as written>`` (the request until the response head), ``SSE <conn> first
event`` (from the subscription to its first event), ``SSE receive <conn>`` (the wait for an event, its bytes) and
``SSE <conn> unread`` (each event no step took, timed as the gap since the previous event: between events).
The stream lives in ``user.channels`` under ``sse:<name>``.
"""

from __future__ import annotations

import time
from typing import Any

from jinja2 import TemplateError

from runner.engine.flow import StopUser
from runner.engine.user import Step, Think, VirtualUser
from runner.protocols.inbox import Message
from runner.protocols.sse import SseStream
from runner.protocols.websocket_steps import _matcher, _Reader, _received, _then, _think, report
from runner.scenario import templating
from runner.scenario.model import SseCloseStep, SseReceiveStep, SseSubscribeStep

METHOD = "SSE"


def _report(user: VirtualUser, name: str, url: str, elapsed_ms: float, size: int, failure: str | None) -> None:
    report(user, name, url, elapsed_ms, size, failure, METHOD, 200)


def compile_subscribe(step: SseSubscribeStep, ctx: Any) -> list[Step | Think]:
    url = templating.compile_template(step.sse_subscribe).render
    headers = templating.compile_value(step.headers, native=False) if step.headers else None
    conn, name, key = step.as_, step.name or step.sse_subscribe, f"sse:{step.as_}"
    timeout, max_event, buffer = step.timeout, step.max_event, step.buffer
    unread_name, first_name = f"{conn} unread", f"{conn} first event"

    def run(user: VirtualUser) -> None:
        before: SseStream | None = user.channels.get(key)
        if before is not None and before.closed is None:
            return  # subscribed in an earlier step or iteration
        try:
            target, extra = url(user.vars), (headers(user.vars) if headers is not None else {})
        except (TemplateError, ValueError, TypeError, ArithmeticError) as exc:
            _report(user, name, step.sse_subscribe, 0.0, 0, f"template error: {exc}")
            return

        def unread(message: Message) -> None:
            _report(user, unread_name, stream.url, message.gap_ms, message.size, None)

        def first(ms: float) -> None:
            _report(user, first_name, stream.url, ms, 0, None)

        stream = SseStream(conn, max_event, buffer, unread, before.last_id if before is not None else None, first)
        if before is not None:
            before.abort()
        user.channels[key] = stream
        user.in_flight = (METHOD, name)
        try:
            elapsed, failure = stream.subscribe(user.session, target, extra, timeout)
        except ValueError as exc:
            elapsed, failure = 0.0, str(exc)
        if user.past_deadline():
            raise StopUser("the run's deadline passed")
        user.in_flight = None
        _report(user, name, stream.url or target, elapsed, 0, failure)

    return _then(run, _think(step, ctx))


def compile_receive(step: SseReceiveStep, ctx: Any) -> list[Step | Think]:
    conn, timeout, event = step.connection, step.timeout, step.event
    key, name = f"sse:{conn}", step.name or f"receive {conn}"
    data_matcher = _matcher(step.sse_receive, ctx)
    reader = _Reader(name, step.extract, step.check, ctx, METHOD)

    def run(user: VirtualUser) -> None:
        stream: SseStream | None = user.channels.get(key)
        if stream is None:
            _report(user, name, "", 0.0, 0, f"no SSE stream '{conn}': subscribe with sse_subscribe first (as: {conn})")
            return
        matches = data_matcher(user, stream.url)
        if event is not None:
            data_matches = matches
            matches = lambda message: message.event == event and data_matches(message)  # noqa: E731
        user.in_flight = (METHOD, name)
        start = time.perf_counter()
        got = stream.wait(matches, timeout)
        if user.past_deadline():
            raise StopUser("the run's deadline passed")
        user.in_flight = None
        _received(user, reader, name, stream, got, start)

    return _then(run, _think(step, ctx))


def compile_close(step: SseCloseStep, ctx: Any) -> list[Step | Think]:
    key = f"sse:{step.sse_close or 'sse'}"

    def run(user: VirtualUser) -> None:
        stream = user.channels.pop(key, None)
        if stream is not None:
            stream.abort()

    return _then(run, _think(step, ctx))


SSE_COMPILERS: dict[type, Any] = {
    SseSubscribeStep: compile_subscribe,
    SseReceiveStep: compile_receive,
    SseCloseStep: compile_close,
}
