"""The demo target's server-sent events stream: ``GET /sse/prices``.

Events ``price`` (data ``{"symbol", "price", "seq"}``, id ``seq``) every ``interval`` ms (default 100), and every
fifth one a ``news`` event; ``count=N`` ends the stream after N events. A client that sends ``Last-Event-ID: K``
resumes at K + 1. The counters (subscriptions, resumed ones, events sent) are in ``/__stats`` under "sse".
"""

from __future__ import annotations

import json
from collections.abc import Generator
from typing import Any
from urllib.parse import parse_qs

import gevent

PATHS = ("/sse/prices",)
_MAX_INTERVAL_MS = 60_000


class SseCounters:
    def __init__(self) -> None:
        self.subscriptions = 0
        self.resumed = 0
        self.events = 0

    def stats(self) -> dict[str, int]:
        return {"subscriptions": self.subscriptions, "resumed": self.resumed, "events": self.events}


def _number(query: dict[str, list[str]], name: str, default: int, most: int) -> int:
    try:
        return min(most, max(1, int((query.get(name) or [str(default)])[0])))
    except ValueError:
        return default


def events(environ: dict[str, Any], counters: SseCounters) -> Generator[bytes, None, None]:
    """The stream's chunks: a retry hint and a comment, then the events."""
    query = parse_qs(environ.get("QUERY_STRING", ""))
    interval = _number(query, "interval", 100, _MAX_INTERVAL_MS) / 1000.0
    count = _number(query, "count", 10**9, 10**9)
    last = environ.get("HTTP_LAST_EVENT_ID", "")
    first = int(last) + 1 if last.isdigit() else 1
    counters.subscriptions += 1
    counters.resumed += bool(last)
    yield b"retry: 1000\n: welcome\n\n"
    for seq in range(first, first + count):
        gevent.sleep(interval)
        kind = "news" if seq % 5 == 0 else "price"
        data = {"symbol": "ACME", "price": 100 + seq % 7, "seq": seq}
        counters.events += 1
        yield f"event: {kind}\nid: {seq}\ndata: {json.dumps(data)}\n\n".encode()
