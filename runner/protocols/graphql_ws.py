"""A GraphQL connection over a WebSocket speaking ``graphql-transport-ws`` (the protocol of ``graphql-ws``).

The connection offers the subprotocol, sends ``connection_init`` and waits for ``connection_ack`` before any
subscription. Its reader answers the server's ``ping`` with a ``pong`` at once (whether a step waits or not) and
hands ``next``, ``error`` and ``complete`` messages to the waiting step with their type and subscription id
(``Message.event``, ``Message.id``), so a step waits for its own subscription's messages only. A message that is
not a JSON object with a ``type`` breaks the protocol: the connection closes with 4400, as a server would.
"""

from __future__ import annotations

import json
import time
from typing import Any

import gevent
from gevent.event import AsyncResult

from runner.http.session import HttpSession
from runner.protocols.websocket import WebSocket

SUBPROTOCOL = "graphql-transport-ws"
_PONG = '{"type":"pong"}'


class GraphqlWebSocket(WebSocket):
    """A user's graphql-transport-ws connection: acknowledged once, then subscriptions with ids of their own."""

    kind = "GraphQL WebSocket"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._ack = AsyncResult()  # True, or why the connection ended before the ack
        self.last_id = 0

    def open(
        self, session: HttpSession, url: str, headers: dict[str, str], params: Any, timeout: float
    ) -> tuple[float, str | None]:
        """Connect, upgrade with the subprotocol, ``connection_init`` → ``connection_ack``, all within ``timeout``
        seconds: (milliseconds it took, None or why it failed)."""
        start = time.perf_counter()
        _, failure = self.connect(session, url, headers, [SUBPROTOCOL], timeout)
        if failure is None and self.subprotocol != SUBPROTOCOL:
            failure = f"the server did not accept the {SUBPROTOCOL} subprotocol (it chose {self.subprotocol or 'none'})"
        if failure is None:
            init: dict[str, Any] = {"type": "connection_init"}
            if params is not None:
                init["payload"] = params
            _, failure = self.send(json.dumps(init, separators=(",", ":"), ensure_ascii=False))
        if failure is None:
            try:
                acked = self._ack.get(timeout=max(0.0, timeout - (time.perf_counter() - start)))
            except gevent.Timeout:
                acked = f"no connection_ack within {timeout:g}s"
            if acked is not True:
                failure = acked if "connection_ack" in acked else f"no connection_ack: {acked}"
        if failure is not None:
            self._drop(failure)
        return (time.perf_counter() - start) * 1000.0, failure

    def next_id(self) -> str:
        self.last_id += 1
        return str(self.last_id)

    def send_json(self, message: dict[str, Any]) -> str | None:
        return self.send(json.dumps(message, separators=(",", ":"), ensure_ascii=False))[1]

    def _deliver(self, data: str | bytes, size: int, event: str | None = None, id: str | None = None) -> None:
        try:
            message = json.loads(data)
        except ValueError:
            message = None
        kind = message.get("type") if isinstance(message, dict) else None
        if not isinstance(kind, str):
            self._fail_close(4400, f"the server sent what is not a {SUBPROTOCOL} message: {str(data)[:80]!r}")
            return
        if kind in ("ping", "pong", "connection_ack"):
            self._part_size = 0
            if kind == "ping":
                self.send(_PONG)
            elif kind == "connection_ack" and not self._ack.ready():
                self._ack.set(True)
            return
        assert isinstance(message, dict)
        ident = message.get("id")
        super()._deliver(data, size, kind, None if ident is None else str(ident))

    def _end(self, reason: str) -> None:
        if not self._ack.ready():
            self._ack.set(reason)
        super()._end(reason)
