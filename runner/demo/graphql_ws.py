"""The demo target's GraphQL subscriptions: ``graphql-transport-ws`` on ``/graphql`` (a WebSocket upgrade on the
path of the HTTP endpoint). One subscription field:

    type Subscription { priceChanged(symbol: String!, count: Int = 5, interval: Int = 100): Price }
    type Price        { symbol: String  price: Float  seq: Int }

It emits ``count`` events (at most 1000), one every ``interval`` ms (at most 60,000), then ``complete``. A symbol
other than ACME, GLOBEX or INITECH gets one ``next`` whose payload has ``errors`` (``unknown symbol``), then
``complete``; a field other than ``priceChanged``, or a query or mutation, gets an ``error`` message. The protocol
is kept as graphql-ws servers keep it: a ``subscribe`` before the ``connection_ack`` closes with 4401, a second
``connection_init`` with 4429, an id in use with 4409, what is not a protocol message with 4400; a ``ping`` gets a
``pong``; a client's ``complete`` stops its subscription.

``GraphqlWsCounters`` counts what the tests compare with (``/__stats`` "graphql" "subscriptions").
"""

from __future__ import annotations

import json
import re
from typing import Any, Protocol

import gevent

SUBPROTOCOL = "graphql-transport-ws"
SYMBOLS = {"ACME": 100.0, "GLOBEX": 50.0, "INITECH": 20.0}
_MAX_COUNT, _MAX_INTERVAL_MS = 1000, 60_000
_SUBSCRIPTION = re.compile(
    r"^\s*(subscription|query|mutation)?\s*([A-Za-z_]\w*)?\s*(?:\(([^)]*)\))?\s*\{\s*([A-Za-z_]\w*)\s*"
    r"(?:\(([^)]*)\))?\s*\{([^{}]*)\}\s*\}\s*$",
    re.DOTALL,
)
_ARGUMENT = re.compile(r"([A-Za-z_]\w*)\s*:\s*(\$[A-Za-z_]\w*|-?\d+(?:\.\d+)?|\"[^\"]*\")")
_FIELDS = ("symbol", "price", "seq")


class Peer(Protocol):
    def send(self, data: str | bytes) -> bool: ...

    def close(self, code: int, reason: str) -> None: ...


class GraphqlWsCounters:
    """Connections acknowledged, subscriptions started, events sent, completes sent by the server and by clients,
    ``error`` messages and ``next`` payloads with errors."""

    def __init__(self) -> None:
        self.connections = self.subscriptions = self.events = 0
        self.completed = self.cancelled = self.errors = 0
        self.by_operation: dict[str, int] = {}

    def stats(self) -> dict[str, Any]:
        return {
            "connections": self.connections,
            "subscriptions": self.subscriptions,
            "by_operation": self.by_operation,
            "events": self.events,
            "completed": self.completed,
            "cancelled": self.cancelled,
            "errors": self.errors,
        }


class GraphqlWsConnection:
    """One client's graphql-transport-ws conversation."""

    def __init__(self, peer: Peer, counters: GraphqlWsCounters) -> None:
        self.peer, self.counters = peer, counters
        self.initialised = False
        self.feeds: dict[str, gevent.Greenlet] = {}

    def on_message(self, data: str | bytes) -> None:
        try:
            message = json.loads(data)
        except ValueError:
            message = None
        kind = message.get("type") if isinstance(message, dict) else None
        if not isinstance(message, dict) or not isinstance(kind, str):
            self.peer.close(4400, "Invalid message received")
            return
        if kind == "connection_init":
            if self.initialised:
                self.peer.close(4429, "Too many initialisation requests")
                return
            self.initialised = True
            self.counters.connections += 1
            self._send({"type": "connection_ack"})
        elif kind == "ping":
            self._send({"type": "pong"})
        elif kind == "pong":
            pass
        elif kind == "subscribe":
            if not self.initialised:
                self.peer.close(4401, "Unauthorized")
                return
            ident = str(message.get("id", ""))
            if ident in self.feeds:
                self.peer.close(4409, f"Subscriber for {ident} already exists")
                return
            self._subscribe(ident, message.get("payload") or {})
        elif kind == "complete":
            feed = self.feeds.pop(str(message.get("id", "")), None)
            if feed is not None:
                feed.kill(block=False)
                self.counters.cancelled += 1
        else:
            self.peer.close(4400, f"Invalid message type '{kind}'")

    def _send(self, message: dict[str, Any]) -> bool:
        return self.peer.send(json.dumps(message, separators=(",", ":")))

    def _subscribe(self, ident: str, payload: dict[str, Any]) -> None:
        counters = self.counters
        query, variables = str(payload.get("query") or ""), payload.get("variables") or {}
        match = _SUBSCRIPTION.match(query)
        name = payload.get("operationName") or (match[2] if match else None) or "anonymous"
        counters.by_operation[name] = counters.by_operation.get(name, 0) + 1
        if match is None or (match[1] or "query") != "subscription":
            self._error(ident, "this demo's WebSocket serves one subscription: priceChanged(symbol: String!)")
            return
        if match[4] != "priceChanged":
            self._error(ident, f"Cannot query field '{match[4]}' on type 'Subscription'")
            return
        selection = match[6].split()
        unknown = [f for f in selection if f not in _FIELDS]
        if unknown:
            self._error(ident, f"Cannot query field '{unknown[0]}' on type 'Price'")
            return
        args: dict[str, Any] = {}
        for key, raw in _ARGUMENT.findall(match[5] or ""):
            args[key] = variables.get(raw[1:]) if raw.startswith("$") else json.loads(raw)
        counters.subscriptions += 1
        self.feeds[ident] = gevent.spawn(self._feed, ident, args, selection)

    def _error(self, ident: str, message: str) -> None:
        self.counters.errors += 1
        self._send({"id": ident, "type": "error", "payload": [{"message": message}]})

    def _feed(self, ident: str, args: dict[str, Any], selection: list[str]) -> None:
        counters = self.counters
        symbol = str(args.get("symbol"))
        try:
            if symbol not in SYMBOLS:
                counters.errors += 1
                self._send(
                    {
                        "id": ident,
                        "type": "next",
                        "payload": {
                            "data": {"priceChanged": None},
                            "errors": [{"message": f"unknown symbol {symbol}"}],
                        },
                    }
                )
            else:
                count = min(_MAX_COUNT, max(0, _number(args.get("count"), 5)))
                interval = min(_MAX_INTERVAL_MS, max(0, _number(args.get("interval"), 100))) / 1000.0
                for seq in range(1, count + 1):
                    gevent.sleep(interval)
                    price = {"symbol": symbol, "price": SYMBOLS[symbol] + seq % 7, "seq": seq}
                    event = {"priceChanged": {f: price[f] for f in selection}}
                    if self._send({"id": ident, "type": "next", "payload": {"data": event}}):
                        counters.events += 1
            self.feeds.pop(ident, None)
            self._send({"id": ident, "type": "complete"})
            counters.completed += 1
        except OSError:
            self.feeds.pop(ident, None)

    def close(self) -> None:
        for feed in self.feeds.values():
            feed.kill(block=False)
        self.feeds.clear()


def _number(value: Any, default: int) -> int:
    try:
        return int(value) if value is not None else default
    except (TypeError, ValueError):
        return default
