"""What a user's stream connection (WebSocket, server-sent events) shares: received messages handed to the step
waiting for one that matches, or kept in a bounded buffer; what no step takes is *unread*, counted by
``on_unread`` and dropped, so a flood the scenario never reads costs CPU, never memory."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from time import perf_counter
from typing import Any

import gevent
from gevent.event import AsyncResult

from runner.http.response import Response


class Message:
    """A received message: its text (or bytes), its size and when its last byte arrived (perf_counter)."""

    __slots__ = ("_response", "at", "data", "event", "id", "previous", "size")

    def __init__(
        self, data: str | bytes, size: int, at: float, previous: float, event: str | None, id: str | None
    ) -> None:
        self.data = data
        self.event = event  # an SSE event's type
        self.id = id  # an SSE event's id
        self.size = size
        self.at = at
        self.previous = previous  # when the previous message on the connection arrived (``at`` for the first)
        self._response: Response | None = None

    @property
    def gap_ms(self) -> float:
        """Milliseconds since the previous message on the connection (0 for the first)."""
        return (self.at - self.previous) * 1000.0

    def response(self, url: str) -> Response:
        """The message as a response, for extractors and checkpoints (its body is the message)."""
        if self._response is None:
            data = self.data
            if isinstance(data, str):
                response = Response("MESSAGE", url, 200, "text message", [], data.encode(), charset="utf-8")
                response._text = data
            else:
                response = Response("MESSAGE", url, 200, "binary message", [], data)
            self._response = response
        return self._response


Matcher = Callable[[Message], bool]


class Inbox:
    """The receiving side of a connection; subclasses open it, read it (calling ``_deliver``) and close it."""

    kind = "connection"

    def __init__(self, name: str, buffer: int, on_unread: Callable[[Message], None] | None) -> None:
        self.name = name
        self.url = ""
        self.buffer: deque[Message] = deque()
        self.buffer_size = buffer
        self.on_unread = on_unread
        self.closed: str | None = "not connected"  # why nothing more can be received; None while open
        self.received = self.unread = self.bytes_received = 0
        self._sock: Any = None
        self._reader: gevent.Greenlet | None = None
        self.matchers: dict[Any, Matcher] = {}  # a step's matcher for this connection, by the step's factory
        # the matcher, what takes the message (``set``), and: passed-over messages are unread
        self._waiting: tuple[Matcher, Any, bool] | None = None
        self._closed_event = AsyncResult()
        self._part_size = 0
        self._last_at = 0.0

    def not_open(self) -> str:
        return f"{self.kind} '{self.name}' is not open: {self.closed}"

    def wait(self, matches: Matcher, timeout: float, since: float | None = None) -> Message | str:
        """The first message that ``matches`` (buffered, or arriving within ``timeout`` s), or why there was none.

        Buffered messages it passes over are unread. With ``since`` (a reply to what was sent then), only messages
        that arrived from then on count, and the others stay buffered for later steps."""
        found = self._buffered(matches, since)
        if found is not None:
            return found
        result = AsyncResult()
        self._waiting = (matches, result, since is None)
        try:
            arrived = result.get(timeout=timeout)
        except gevent.Timeout:
            return f"no matching message within {timeout:g}s"
        finally:
            self._waiting = None
        return arrived  # type: ignore[no-any-return]

    def _buffered(self, matches: Matcher, since: float | None) -> Message | str | None:
        """What ``wait`` finds without waiting: a buffered message that matches, or why nothing can come."""
        if since is not None:
            for message in self.buffer:  # the reply may have come while the send was under way
                if message.at >= since and matches(message):
                    self.buffer.remove(message)
                    return message
        else:
            while self.buffer:
                message = self.buffer.popleft()
                if matches(message):
                    return message
                self._unread(message)
        if self.closed is not None:
            return self.not_open()
        return None

    def _deliver(self, data: str | bytes, size: int, event: str | None = None, id: str | None = None) -> None:
        now = perf_counter()
        message = Message(data, size, now, self._last_at if self.received else now, event, id)
        self._last_at = now
        self._part_size = 0
        self.received += 1
        self.bytes_received += size
        waiting = self._waiting
        if waiting is not None:
            matches, result, passes_over = waiting
            try:
                matched = matches(message)
            except Exception as exc:  # a python matcher that raised: the waiting step fails with it
                self._waiting = None
                result.set(f"the matcher failed: {type(exc).__name__}: {exc}")
                matched = False
            if matched:
                self._waiting = None
                result.set(message)
                return
            if passes_over:  # a ws_receive / sse_receive passes it over
                self._unread(message)
                return
        buffer = self.buffer
        buffer.append(message)
        if len(buffer) > self.buffer_size:
            self._unread(buffer.popleft())

    def _unread(self, message: Message) -> None:
        self.unread += 1
        if self.on_unread is not None:
            self.on_unread(message)

    def _end(self, reason: str) -> None:
        """The connection is over (the reader found out): wake whoever waits, keep the buffer for later steps."""
        if self.closed is None:
            self.closed = reason
        waiting, self._waiting = self._waiting, None
        if waiting is not None:
            waiting[1].set(f"{self.kind} '{self.name}' is not open: {reason}")
        self._closed_event.set(reason)
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def _drop(self, reason: str) -> None:
        """Close from the user's side: the socket, the reader; what is left in the buffer is unread."""
        reader, self._reader = self._reader, None
        self._end(reason)
        if reader is not None and reader is not gevent.getcurrent():
            reader.kill(block=False)
        while self.buffer:
            self._unread(self.buffer.popleft())

    def abort(self) -> None:
        """The user is going away: drop the connection at once (no close handshake)."""
        self._drop("the user stopped")
