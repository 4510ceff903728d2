"""The demo target's WebSocket endpoints, served by ``wsproto`` on the socket of gevent's WSGI handler.

- ``/ws/echo``: every message comes back as it was sent (text or binary).
- ``/graphql``: GraphQL subscriptions over ``graphql-transport-ws`` (``runner.demo.graphql_ws``).
- ``/ws/prices``: a price feed. It greets with ``{"type": "welcome", "session": S}``; a client that sends
  ``{"type": "subscribe", "symbol": X, "session": S}`` (the session it was given: correlation) gets
  ``{"type": "subscribed", "symbol": X}``, then a ``{"type": "price", "symbol", "price", "seq"}`` tick every
  ``interval`` ms (query parameter, default 100); a wrong session gets ``{"type": "error"}``. ``{"type": "quote",
  "symbol": X, "id": N}`` is answered at once with ``{"type": "quote", "id": N, "price": P}``.

``DemoSockets`` counts what the tests compare with: upgrades, messages in and out per path, close codes.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

import gevent
from gevent.lock import Semaphore
from gevent.pywsgi import WSGIHandler
from wsproto import ConnectionType, WSConnection
from wsproto.connection import ConnectionState
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Ping,
    RejectConnection,
    Request,
    TextMessage,
)
from wsproto.utilities import ProtocolError

from runner.demo.graphql_ws import SUBPROTOCOL as GRAPHQL_WS
from runner.demo.graphql_ws import GraphqlWsConnection, GraphqlWsCounters
from runner.demo.sse import PATHS as SSE_PATHS
from runner.demo.sse import SseCounters, events

PATHS = ("/ws/echo", "/ws/prices", "/graphql")
_MAX_INTERVAL_MS = 60_000


class DemoSockets:
    """The WebSocket side of the demo's state: counters only (each connection keeps its own)."""

    def __init__(self) -> None:
        self.upgrades: dict[str, int] = {}
        self.received: dict[str, int] = {}  # messages from clients, by path
        self.sent: dict[str, int] = {}  # messages to clients, by path
        self.closes: dict[str, int] = {}  # close codes sent by clients ("none": the socket just ended)
        self.open = 0
        self.sse = SseCounters()  # the event stream's (runner.demo.sse)
        self.graphql = GraphqlWsCounters()  # the subscriptions' (runner.demo.graphql_ws), in /__stats "graphql"

    def stats(self) -> dict[str, Any]:
        return {
            "upgrades": self.upgrades,
            "received": self.received,
            "sent": self.sent,
            "closes": self.closes,
            "open": self.open,
            "sse": self.sse.stats(),
        }


class _Peer:
    """One client connection: the wsproto state, and one write at a time (the feed writes from its greenlet)."""

    def __init__(self, sock: Any, ws: WSConnection, path: str, counters: DemoSockets) -> None:
        self.sock, self.ws, self.path, self.counters = sock, ws, path, counters
        self.lock = Semaphore()

    def send(self, data: str | bytes) -> bool:
        """Send a message (whether it went: not once the connection is closing)."""
        event = TextMessage(data=data) if isinstance(data, str) else BytesMessage(data=data)
        with self.lock:
            if self.ws.state is not ConnectionState.OPEN:
                return False
            self.sock.sendall(self.ws.send(event))
        self.counters.sent[self.path] = self.counters.sent.get(self.path, 0) + 1
        return True

    def close(self, code: int, reason: str) -> None:
        """Close from the server's side (a protocol violation)."""
        with self.lock:
            if self.ws.state is ConnectionState.OPEN:
                self.sock.sendall(self.ws.send(CloseConnection(code=code, reason=reason)))

    def raw(self, event: Any) -> None:
        with self.lock:
            self.sock.sendall(self.ws.send(event))


def _request_bytes(environ: dict[str, Any]) -> bytes:
    """The upgrade request as it came (pywsgi parsed it already; wsproto wants the bytes)."""
    lines = [f"GET {environ.get('PATH_INFO', '/')} HTTP/1.1"]
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            lines.append(f"{key[5:].replace('_', '-').title()}: {value}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _echo(peer: _Peer, message: str | bytes, state: dict[str, Any]) -> None:
    peer.send(message)


def _prices(peer: _Peer, message: str | bytes, state: dict[str, Any]) -> None:
    try:
        data = json.loads(message)
    except ValueError:
        peer.send(json.dumps({"type": "error", "error": "not JSON"}))
        return
    kind = data.get("type") if isinstance(data, dict) else None
    if kind == "quote":
        peer.send(json.dumps({"type": "quote", "id": data.get("id"), "price": 100.0 + (hash(data.get("symbol")) % 50)}))
    elif kind == "subscribe" and data.get("session") == state["session"] and state.get("feed") is None:
        symbol = str(data.get("symbol", "ACME"))
        peer.send(json.dumps({"type": "subscribed", "symbol": symbol}))
        state["feed"] = gevent.spawn(_feed, peer, symbol, state["interval"])
    else:
        peer.send(json.dumps({"type": "error", "error": "unknown message or wrong session"}))


def _feed(peer: _Peer, symbol: str, interval: float) -> None:
    seq = 0
    try:
        while peer.ws.state is ConnectionState.OPEN:
            gevent.sleep(interval)
            seq += 1
            peer.send(json.dumps({"type": "price", "symbol": symbol, "price": 100 + seq % 7, "seq": seq}))
    except OSError:
        pass


def _graphql(peer: _Peer, message: str | bytes, state: dict[str, Any]) -> None:
    state["graphql"].on_message(message)


_HANDLERS: dict[str, Callable[[_Peer, str | bytes, dict[str, Any]], None]] = {
    "/ws/echo": _echo,
    "/ws/prices": _prices,
    "/graphql": _graphql,
}


def serve_websocket(sock: Any, environ: dict[str, Any], counters: DemoSockets) -> None:
    """Upgrade and serve one client until it closes (or the socket ends)."""
    path = environ.get("PATH_INFO", "/")
    ws = WSConnection(ConnectionType.SERVER)
    ws.receive_data(_request_bytes(environ))
    request = next((e for e in ws.events() if isinstance(e, Request)), None)
    if request is None:
        sock.sendall(ws.send(RejectConnection(status_code=400)))
        return
    if path == "/graphql" and GRAPHQL_WS not in request.subprotocols:  # its only protocol: no upgrade without it
        sock.sendall(ws.send(RejectConnection(status_code=400)))
        return
    chosen = GRAPHQL_WS if path == "/graphql" else request.subprotocols[0] if request.subprotocols else None
    sock.sendall(ws.send(AcceptConnection(subprotocol=chosen)))
    counters.upgrades[path] = counters.upgrades.get(path, 0) + 1
    counters.open += 1
    peer = _Peer(sock, ws, path, counters)
    query = parse_qs(environ.get("QUERY_STRING", ""))
    interval_ms = min(_MAX_INTERVAL_MS, max(1, int((query.get("interval") or ["100"])[0] or 100)))
    state: dict[str, Any] = {"session": secrets.token_hex(8), "interval": interval_ms / 1000.0}
    if path == "/graphql":
        state["graphql"] = GraphqlWsConnection(peer, counters.graphql)
    handle = _HANDLERS[path]
    parts: list[str | bytes] = []
    code = "none"
    try:
        if path == "/ws/prices":
            peer.send(json.dumps({"type": "welcome", "session": state["session"]}))
        while ws.state is ConnectionState.OPEN:
            data = sock.recv(65536)
            if not data:
                break
            ws.receive_data(data)
            for event in ws.events():
                if isinstance(event, TextMessage | BytesMessage):
                    parts.append(event.data if isinstance(event.data, str | bytes) else bytes(event.data))
                    if event.message_finished:
                        joined = "".join(parts) if isinstance(event.data, str) else b"".join(parts)  # type: ignore[arg-type]
                        parts = []
                        counters.received[path] = counters.received.get(path, 0) + 1
                        handle(peer, joined, state)
                elif isinstance(event, Ping):
                    peer.raw(event.response())
                elif isinstance(event, CloseConnection):
                    code = str(event.code)
                    if ws.state is ConnectionState.REMOTE_CLOSING:
                        peer.raw(event.response())
    except (OSError, ProtocolError):
        pass
    finally:
        counters.open -= 1
        counters.closes[code] = counters.closes.get(code, 0) + 1
        if state.get("feed") is not None:
            state["feed"].kill(block=False)
        if state.get("graphql") is not None:
            state["graphql"].close()


class DemoHandler(WSGIHandler):  # type: ignore[misc]
    """gevent's WSGI handler, which hands a WebSocket upgrade on the demo's paths to ``serve_websocket``, and
    streams the event stream's chunks as they come (the shop's handlers answer whole bodies)."""

    def run_application(self) -> None:
        environ = self.environ
        if environ.get("PATH_INFO") in SSE_PATHS and isinstance(
            getattr(self.application, "sockets", None), DemoSockets
        ):
            self.close_connection = True
            self.start_response("200 OK", [("Content-Type", "text/event-stream"), ("Cache-Control", "no-cache")])
            self.result = events(environ, self.application.sockets.sse)
            try:
                self.process_result()
            finally:
                self.result.close()
                self.result = None  # type: ignore[assignment]
            return
        if environ.get("HTTP_UPGRADE", "").lower() == "websocket" and environ.get("PATH_INFO") in PATHS:
            counters = getattr(self.application, "sockets", None)
            if isinstance(counters, DemoSockets):
                self.close_connection = True
                serve_websocket(self.socket, environ, counters)
                return
        super().run_application()
