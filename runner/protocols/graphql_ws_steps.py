"""The GraphQL subscription step compiled: ``graphql_subscribe`` over ``runner.protocols.graphql_ws``.

The connection (``user.channels`` under its ``as``, default ``graphql``) is opened and acknowledged once, reported
as ``WS <url as written>`` (connect, upgrade and ``connection_ack``). Each step then subscribes with a new id and
waits, within its timeout, for its events: a number of them, the first that matches ``until``, or all of them (the
server's ``complete``). It reports, under the method ``GRAPHQL`` and the operation's name:

- ``<operation>``: the subscription, from ``subscribe`` to the event that ended the wait; its failure is the step's
  (an ``error`` message, an event whose payload has ``errors``, the timeout, the connection lost, a ``complete``
  before the events asked for), extractors and checkpoints read the last event's payload (``$.data…``);
- ``<operation> first event``: the time to the first event;
- ``<operation> event``: each event received, timed as the gap since the previous one (the first: since the
  subscribe): their count is the events received.

Then it sends ``complete`` (unless the server completed, or ended the subscription with an ``error``); events that
come after it are counted as the connection's unread (``WS <conn> unread``).
"""

from __future__ import annotations

import json
import time
from typing import Any

from jinja2 import TemplateError

from runner.compile.checkpoints import compile_checkpoint
from runner.engine.calls import RequestResult
from runner.engine.flow import StopUser
from runner.engine.user import Step, Think, VirtualUser
from runner.http.response import Response
from runner.protocols.graphql_steps import METHOD, deliver, error_messages
from runner.protocols.graphql_ws import GraphqlWebSocket
from runner.protocols.inbox import Message
from runner.protocols.websocket_steps import _Reader, _then, _think, report
from runner.scenario import templating
from runner.scenario.model import GraphqlSubscribeStep


def _payload_response(url: str, payload: Any) -> Response:
    """A ``next`` message's payload as a response, for extractors and checkpoints: ``$.data…`` as for a query."""
    text = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
    response = Response("MESSAGE", url, 200, "next", [], text.encode(), charset="utf-8")
    response._text = text
    response._json = (payload, None)
    return response


def compile_subscribe(step: GraphqlSubscribeStep, ctx: Any) -> list[Step | Think]:
    url = templating.compile_template(step.graphql_subscribe).render
    query = templating.compile_template(step.query).render
    variables = templating.compile_value(step.variables, native=True) if step.variables else None
    headers = templating.compile_value(step.headers, native=False) if step.headers else None
    params = templating.compile_value(step.connection_params, native=True) if step.connection_params else None
    operation = step.operation_name
    name = step.name or operation or "anonymous"
    first_name, event_name = f"{name} first event", f"{name} event"
    conn, timeout, wanted = step.as_, step.timeout, step.events
    connect_name, unread_name = step.graphql_subscribe, f"{conn} unread"
    until = compile_checkpoint(step.until, ctx.shared.script) if step.until is not None else None
    reader = _Reader(name, step.extract, step.check, ctx, METHOD)
    waits_for = (
        "an event that matches until"
        if until is not None
        else "the server's complete"
        if wanted == "all"
        else f"{wanted} event{'s' if wanted != 1 else ''}"
    )

    def failed(user: VirtualUser, target: str, elapsed_ms: float, size: int, failure: str) -> None:
        user.runtime.on_request(user, RequestResult(METHOD, name, target, 0, elapsed_ms, size, failure))
        if user.transactions:
            user.fail_transactions(failure)

    def channel(user: VirtualUser, target: str, extra: dict[str, str], init: Any) -> GraphqlWebSocket | str:
        """The user's open connection, opened now if need be: or why there is none."""
        socket = user.channels.get(conn)
        if socket is not None and not isinstance(socket, GraphqlWebSocket):
            return f"the connection '{conn}' is a plain WebSocket (ws_connect): give graphql_subscribe another as:"
        if socket is not None and socket.closed is None:
            return socket

        def unread(message: Message) -> None:
            report(user, unread_name, fresh.url, message.gap_ms, message.size, None)

        fresh = GraphqlWebSocket(conn, on_unread=unread)
        if socket is not None:
            socket.abort()
        user.channels[conn] = fresh
        user.in_flight = ("WS", connect_name)
        try:
            elapsed, failure = fresh.open(user.session, target, extra, init, timeout)
        except ValueError as exc:  # a URL the session cannot use
            elapsed, failure = 0.0, str(exc)
        if user.past_deadline():
            raise StopUser("the run's deadline passed")
        user.in_flight = None
        report(user, connect_name, fresh.url or target, elapsed, 0, failure)
        return failure if failure is not None else fresh

    def run(user: VirtualUser) -> None:
        try:
            payload: dict[str, Any] = {"query": query(user.vars)}
            if variables is not None:
                payload["variables"] = variables(user.vars)
            if operation is not None:
                payload["operationName"] = operation
            extra = headers(user.vars) if headers is not None else {}
            init = params(user.vars) if params is not None else None
            target = url(user.vars)
        except (TemplateError, ValueError, TypeError, ArithmeticError) as exc:
            failed(user, step.graphql_subscribe, 0.0, 0, f"template error: {exc}")
            return
        socket = channel(user, target, extra, init)
        if isinstance(socket, str):
            failed(user, target, 0.0, 0, socket)
            return
        ident = socket.next_id()
        user.in_flight = (METHOD, name)
        start = time.perf_counter()
        failure = socket.send_json({"id": ident, "type": "subscribe", "payload": payload})
        events = size = 0
        last: Response | None = None
        last_at = previous = start
        ended = failure is not None  # the subscription is over on the server's side (or never began)
        deadline = start + timeout
        while failure is None:
            got = socket.wait(lambda message: message.id == ident, max(0.0, deadline - time.perf_counter()))
            if isinstance(got, str):
                ended = socket.closed is not None
                if ended:
                    failure = f"{got} ({events} event{'s' if events != 1 else ''} received, waited for {waits_for})"
                else:
                    failure = f"{waits_for} did not come within {timeout:g}s ({events} received)"
                break
            kind = got.event
            if kind == "complete":
                ended, last_at = True, got.at
                if wanted != "all" or until is not None:
                    failure = f"the server completed the subscription after {events} event(s); waited for {waits_for}"
                break
            try:
                message = json.loads(got.data)
            except ValueError:  # cannot be: the connection parsed it
                message = {}
            if kind == "error":
                ended = True
                failure = error_messages({"errors": message.get("payload")}) or "GraphQL error (no message)"
                break
            if kind != "next":
                continue  # not a message of a subscription: not ours to judge
            events += 1
            size += got.size
            last_at = got.at
            event = message.get("payload")
            if events == 1:
                user.runtime.on_request(
                    user, RequestResult(METHOD, first_name, socket.url, 200, (got.at - start) * 1000.0, got.size)
                )
            user.runtime.on_request(
                user, RequestResult(METHOD, event_name, socket.url, 200, (got.at - previous) * 1000.0, got.size)
            )
            previous = got.at
            last = _payload_response(socket.url, event)
            errors = error_messages(event)
            if errors is not None:
                failure = errors
                break
            if until is not None:
                if until.check(last, user.vars) is None:
                    break
            elif wanted != "all" and events >= wanted:
                break
        if not ended and socket.closed is None:
            socket.send_json({"id": ident, "type": "complete"})
        if user.past_deadline():
            raise StopUser("the run's deadline passed")
        user.in_flight = None
        elapsed = (last_at if failure is None else time.perf_counter()) - start
        result = RequestResult(METHOD, name, socket.url, 200 if failure is None else 0, elapsed * 1000.0, size, failure)
        if failure is None and last is None and (reader.extractors or reader.checks):
            result.failure = "the server completed the subscription without an event to extract from or check"
        signal = None
        if failure is None and last is not None:
            signal = reader.read(user, last, result)
        elif user.runtime.trace and last is not None:
            result.response = last
        deliver(user, result, signal)

    return _then(run, _think(step, ctx))


SUBSCRIBE_COMPILERS: dict[type, Any] = {GraphqlSubscribeStep: compile_subscribe}
