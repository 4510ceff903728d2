"""The WebSocket steps compiled: closures ``step(user)`` over ``runner.protocols.websocket.WebSocket``.

Each step reports one result of method ``WS`` to the same statistics as HTTP requests:

- ``WS <url as written>``: connecting and the upgrade (the connect time);
- ``WS send <conn>``: a message sent (the time to write it; its bytes), or with ``expect``,
  ``WS <conn> round trip``: from the send to the last byte of the matching reply;
- ``WS receive <conn>``: the wait for a (matching) message, its bytes;
- ``WS ping <conn>`` / ``WS close <conn>``: ping → pong, close → the server's close;
- ``WS <conn> unread``: each message no step took, timed as the gap since the previous message on the
  connection (a feed's cadence), its bytes. Their count per second is the messages received that nobody read.

The connection lives in ``user.channels`` under its name, across steps and iterations, until ``ws_close`` or
the user's end.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from time import perf_counter
from typing import Any

from jinja2 import TemplateError

from runner.compile.checkpoints import Checkpoint, compile_checkpoint, default_status
from runner.compile.extract import compile_extractor
from runner.engine.calls import RequestResult
from runner.engine.flow import ON_FAIL, StopUser
from runner.engine.user import Step, Think, VirtualUser
from runner.http.response import Response
from runner.protocols.inbox import Inbox, Message
from runner.protocols.websocket import WebSocket, binary
from runner.scenario import templating
from runner.scenario.model import (
    Check,
    Extract,
    WsCloseStep,
    WsConnectStep,
    WsPayload,
    WsPingStep,
    WsReceiveStep,
    WsSendStep,
)

METHOD = "WS"


def report(
    user: VirtualUser,
    name: str,
    url: str,
    elapsed_ms: float,
    size: int,
    failure: str | None,
    method: str = METHOD,
    ok: int = 101,
) -> None:
    """One result of a kept connection into the user's statistics (``ok``, 101 for an upgraded WebSocket, or 0 for
    a failure); a failure fails the open transactions. SSE reports through it with its own method and 200."""
    status = 0 if failure is not None else ok
    user.runtime.on_request(user, RequestResult(method, name, url, status, elapsed_ms, size, failure))
    if failure is not None and user.transactions:
        user.fail_transactions(failure)


def _then(run: Step, think: Callable[[], float] | None) -> list[Step | Think]:
    return [run] if think is None else [run, Think(think)]


def _think(step: Any, ctx: Any) -> Callable[[], float] | None:
    return ctx.compile_think(step.think) if step.think is not None else ctx.default_think


# -- connect --------------------------------------------------------------------------------------------------


def compile_connect(step: WsConnectStep, ctx: Any) -> list[Step | Think]:
    url = templating.compile_template(step.ws_connect).render
    headers = templating.compile_value(step.headers, native=False) if step.headers else None
    conn, name = step.as_, step.name or step.ws_connect
    protocols, timeout = list(step.subprotocols), step.timeout
    max_message, buffer = step.max_message, step.buffer
    unread_name = f"{conn} unread"

    def run(user: VirtualUser) -> None:
        channels = user.channels
        open_one = channels.get(conn)
        if open_one is not None and open_one.closed is None:
            return  # kept from an earlier step or iteration
        try:
            target, extra = url(user.vars), (headers(user.vars) if headers is not None else {})
        except (TemplateError, ValueError, TypeError, ArithmeticError) as exc:
            report(user, name, step.ws_connect, 0.0, 0, f"template error: {exc}")
            return

        def unread(message: Message) -> None:
            report(user, unread_name, socket.url, message.gap_ms, message.size, None)

        socket = WebSocket(conn, max_message, buffer, unread)
        if open_one is not None:
            open_one.abort()
        channels[conn] = socket
        user.in_flight = (METHOD, name)
        try:
            elapsed, failure = socket.connect(user.session, target, extra, protocols, timeout)
        except ValueError as exc:  # a URL the session cannot use
            elapsed, failure = 0.0, str(exc)
        if user.past_deadline():
            raise StopUser("the run's deadline passed")
        user.in_flight = None
        report(user, name, socket.url or target, elapsed, 0, failure)

    return _then(run, _think(step, ctx))


# -- what a received message is checked with ------------------------------------------------------------------


class _Reader:
    """A step's extractors and checkpoints on a received message, with their counters and flow signals."""

    def __init__(
        self,
        method_name: str,
        extract: dict[str, Extract] | None,
        checks: list[Check],
        ctx: Any,
        method: str = METHOD,
        first: list[Checkpoint] | None = None,
    ) -> None:
        self.method = method
        self.status = 101 if method == METHOD else 200  # of a received message
        script = ctx.shared.script
        self.extractors = [compile_extractor(var, spec, script) for var, spec in (extract or {}).items()]
        checkpoints = [*(first or []), *(compile_checkpoint(spec, script) for spec in checks)]
        if first and not any(spec.subject == "status" for spec in checks):
            checkpoints.insert(0, default_status())  # an HTTP response: 4xx and 5xx fail, as for a request
        signals = [ON_FAIL[c.on_fail] for c in checkpoints]
        first_slot = len(ctx.shared.checkpoints)
        ctx.shared.checkpoints.extend((method, method_name, c.description) for c in checkpoints)
        self.checks = tuple(zip(checkpoints, signals, range(first_slot, first_slot + len(checkpoints)), strict=True))
        self.idle = not self.extractors and not self.checks  # nothing to read: no Response built (unless traced)

    def read(self, user: VirtualUser, response: Response, result: RequestResult) -> Any:
        """Extract, then check; fills ``result`` (failure, trace); returns the flow signal to raise, if any."""
        variables, trace = user.vars, user.runtime.trace
        extracted: dict[str, Any] | None = {} if trace else None
        warnings: list[str] | None = [] if trace else None
        verdicts: list[tuple[str, str | None]] | None = [] if trace else None
        missing = failure = None
        for extractor in self.extractors:
            message = extractor.extract(response, variables, user.session.cookies)
            if message is not None:
                if extractor.fail_on_miss:
                    missing = missing or message
                else:
                    user.runtime.on_warning(user, message)
                    if warnings is not None:
                        warnings.append(message)
            if extracted is not None and extractor.variable in variables:
                extracted[extractor.variable] = variables[extractor.variable]
        signal = None
        counts = user.check_counts
        for checkpoint, on_fail, slot in self.checks:
            message = checkpoint.check(response, variables)
            if verdicts is not None:
                verdicts.append((checkpoint.label(variables), message))
            if message is None:
                counts[slot][0] += 1
                continue
            counts[slot][1] += 1
            failure = failure or message
            if on_fail is not None and signal is None:
                signal = on_fail(message)
        result.failure = failure or missing
        if trace:
            result.response = response
            result.trace_extracted = extracted
            result.trace_checks = verdicts
            result.trace_warnings = warnings
        return signal


def _matcher(spec: Check | str | None, ctx: Any) -> Callable[[VirtualUser, str], Callable[[Message], bool]]:
    """A matcher factory: for a user and the connection's URL, a predicate on messages."""
    if spec is None or isinstance(spec, str):

        def anything(user: VirtualUser, url: str) -> Callable[[Message], bool]:
            return lambda message: True

        return anything
    checkpoint: Checkpoint = compile_checkpoint(spec, ctx.shared.script)
    on_text = checkpoint.text_test()
    if on_text is not None:  # a text message is matched as it is, without a Response built for it

        def matching_text(user: VirtualUser, url: str) -> Callable[[Message], bool]:
            variables = user.vars

            def matches(message: Message) -> bool:
                data = message.data
                if isinstance(data, str):
                    return on_text(data)
                return checkpoint.check(message.response(url), variables) is None

            return matches

        return matching_text

    def matching(user: VirtualUser, url: str) -> Callable[[Message], bool]:
        variables = user.vars
        return lambda message: checkpoint.check(message.response(url), variables) is None

    return matching


def _channel(user: VirtualUser, conn: str) -> WebSocket | str:
    socket = user.channels.get(conn)
    if socket is None:
        return f"no WebSocket '{conn}': open it with ws_connect first (as: {conn})"
    return socket


def _received(user: VirtualUser, reader: _Reader, name: str, socket: Inbox, got: Message | str, start: float) -> None:
    """Report a wait's outcome: the message (timed from ``start`` to its last byte) or why none came."""
    method = reader.method
    if isinstance(got, str):
        result = RequestResult(method, name, socket.url, 0, (perf_counter() - start) * 1000.0, 0, got)
        user.runtime.on_request(user, result)
        if user.transactions:
            user.fail_transactions(got)
        return
    elapsed = (got.at - start) * 1000.0
    result = RequestResult(method, name, socket.url, reader.status, elapsed if elapsed > 0.0 else 0.0, got.size)
    if reader.idle and not user.runtime.trace:
        user.runtime.on_request(user, result)
        return
    signal = reader.read(user, got.response(socket.url), result)
    user.runtime.on_request(user, result)
    if result.failure is not None and user.transactions:
        user.fail_transactions(result.failure)
    if signal is not None:
        raise signal


# -- send -----------------------------------------------------------------------------------------------------


def _payload(spec: str | WsPayload) -> Callable[[dict[str, Any]], str | bytes]:
    if isinstance(spec, str):
        return templating.compile_template(spec).render  # type: ignore[no-any-return]
    kind = spec.kind
    if kind == "text":
        return templating.compile_template(spec.text or "").render  # type: ignore[no-any-return]
    if kind == "binary":
        render = templating.compile_template(spec.binary or "").render
        return lambda variables: binary(str(render(variables)))
    value = templating.compile_value(spec.json_, native=True)
    return lambda variables: json.dumps(value(variables), separators=(",", ":"), ensure_ascii=False)


def compile_send(step: WsSendStep, ctx: Any) -> list[Step | Think]:
    payload = _payload(step.ws_send)
    conn, timeout = step.connection, step.timeout
    expect = step.expect
    name = step.name or (f"{conn} round trip" if expect is not None else f"send {conn}")
    matcher = _matcher(expect, ctx) if expect is not None else None
    reader = _Reader(name, step.extract, step.check, ctx)
    in_flight = (METHOD, name)

    def run(user: VirtualUser) -> None:
        socket = user.channels.get(conn)
        if socket is None:
            report(user, name, "", 0.0, 0, _channel(user, conn))  # type: ignore[arg-type]
            return
        try:
            data = payload(user.vars)
        except (TemplateError, ValueError, TypeError, ArithmeticError) as exc:
            report(user, name, socket.url, 0.0, 0, f"template error: {exc}")
            return
        if matcher is None:
            start = perf_counter()
            size, failure = socket.send(data)
            report(user, name, socket.url, (perf_counter() - start) * 1000.0, size, failure)
            return
        matches = socket.matchers.get(matcher)  # made once per connection: it reads the user's variables when called
        if matches is None:
            matches = socket.matchers[matcher] = matcher(user, socket.url)
        user.in_flight = in_flight
        start = perf_counter()
        failure = socket.send(data)[1]
        got: Message | str = failure if failure is not None else socket.wait(matches, timeout, start)
        if user.past_deadline():
            raise StopUser("the run's deadline passed")
        user.in_flight = None
        _received(user, reader, name, socket, got, start)

    return _then(run, _think(step, ctx))


# -- receive, ping, close -------------------------------------------------------------------------------------


def compile_receive(step: WsReceiveStep, ctx: Any) -> list[Step | Think]:
    conn, timeout = step.connection, step.timeout
    name = step.name or f"receive {conn}"
    matcher = _matcher(step.ws_receive, ctx)
    reader = _Reader(name, step.extract, step.check, ctx)

    def run(user: VirtualUser) -> None:
        socket = _channel(user, conn)
        if isinstance(socket, str):
            report(user, name, "", 0.0, 0, socket)
            return
        user.in_flight = (METHOD, name)
        start = perf_counter()
        matches = socket.matchers.get(matcher)
        if matches is None:
            matches = socket.matchers[matcher] = matcher(user, socket.url)
        got = socket.wait(matches, timeout)
        if user.past_deadline():
            raise StopUser("the run's deadline passed")
        user.in_flight = None
        _received(user, reader, name, socket, got, start)  # a message that waited in the buffer took no time

    return _then(run, _think(step, ctx))


def compile_ping(step: WsPingStep, ctx: Any) -> list[Step | Think]:
    conn, timeout = step.ws_ping or "ws", step.timeout
    name = step.name or f"ping {conn}"

    def run(user: VirtualUser) -> None:
        socket = _channel(user, conn)
        if isinstance(socket, str):
            report(user, name, "", 0.0, 0, socket)
            return
        elapsed, failure = socket.ping(timeout)
        report(user, name, socket.url, elapsed, 0, failure)

    return _then(run, _think(step, ctx))


def compile_close(step: WsCloseStep, ctx: Any) -> list[Step | Think]:
    conn, timeout, code, reason = step.ws_close or "ws", step.timeout, step.code, step.reason
    name = step.name or f"close {conn}"

    def run(user: VirtualUser) -> None:
        socket = _channel(user, conn)
        if isinstance(socket, str):
            report(user, name, "", 0.0, 0, socket)
            return
        elapsed, failure = socket.close(code, reason, timeout)
        del user.channels[conn]
        report(user, name, socket.url, elapsed, 0, failure)

    return _then(run, _think(step, ctx))


WS_COMPILERS: dict[type, Callable[[Any, Any], list[Step | Think]]] = {
    WsConnectStep: compile_connect,
    WsSendStep: compile_send,
    WsReceiveStep: compile_receive,
    WsPingStep: compile_ping,
    WsCloseStep: compile_close,
}
