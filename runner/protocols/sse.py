"""A virtual user's server-sent events stream: a GET on the user's gevent socket, read by ``h11`` (chunked or
not), its ``text/event-stream`` parsed into events (type, data, id) and handed to ``Inbox``.

The stream remembers the last event id; subscribing again after the stream ended sends it as ``Last-Event-ID``,
so the server resumes where it stopped. An event (or a line) longer than ``max_event`` bytes, a stream with no
newlines, ends the stream with that reason instead of growing memory.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import gevent
import h11

from runner.http.session import HttpSession, _connect_error
from runner.protocols.inbox import Inbox, Message
from runner.protocols.websocket import _RECV, _YIELD_EVERY

MAX_EVENT = 2**20


class _Timeout(Exception):
    """Subscribing took longer than its timeout."""


class SseStream(Inbox):
    """One subscription of a user to an event stream."""

    kind = "SSE stream"

    def __init__(
        self,
        name: str,
        max_event: int = MAX_EVENT,
        buffer: int = 1000,
        on_unread: Callable[[Message], None] | None = None,
        last_id: str | None = None,
        on_first: Callable[[float], None] | None = None,
    ) -> None:
        super().__init__(name, buffer, on_unread)
        self.max_event = max_event
        self.last_id = last_id  # sent as Last-Event-ID when subscribing
        self.first_event_ms: float | None = None  # from the subscription's start to its first event
        self.on_first = on_first  # told first_event_ms when the first event arrives
        self._http = h11.Connection(h11.CLIENT)
        self._tls = False
        self._start = 0.0
        self._pending = b""
        self._data: list[str] = []
        self._event: str | None = None
        self._id: str | None = None

    def subscribe(
        self, session: HttpSession, url: str, headers: dict[str, str], timeout: float
    ) -> tuple[float, str | None]:
        """Send the GET and read the response head within ``timeout`` s: (ms it took, None or why it failed)."""
        origin, target = session._resolve(url)
        self.url = f"{origin.url}{target}"
        self._start = time.perf_counter()
        try:
            with gevent.Timeout(timeout, _Timeout):
                failure = self._open(session, origin, target, headers)
        except _Timeout:
            failure = f"timed out after {timeout:g}s (subscribing to the event stream)"
        elapsed = (time.perf_counter() - self._start) * 1000.0
        if failure is not None:
            self.closed = None
            self._drop(failure)
            return elapsed, failure
        self.closed = None
        self._last_at = time.perf_counter()
        self._drain()
        if self.closed is None:
            self._reader = gevent.spawn(self._read)
        return elapsed, None

    def _open(self, session: HttpSession, origin: Any, target: str, headers: dict[str, str]) -> str | None:
        try:
            self._sock = session._connect(origin, [0.0] * 5)
            self._tls = origin.https
        except (OSError, RuntimeError) as exc:
            return _connect_error(exc, origin, session.connect_timeout) or f"cannot connect: {exc}"
        fields = {"host": origin.host_header, "accept": "text/event-stream", "cache-control": "no-cache"}
        fields.update({k.lower(): str(v) for k, v in {**session.headers, **headers}.items()})
        if self.last_id is not None:
            fields["last-event-id"] = self.last_id
        cookie = session.cookies.header(origin.host, target, origin.https)
        if cookie:
            fields["cookie"] = cookie
        try:
            self._sock.sendall(self._http.send(h11.Request(method="GET", target=target, headers=list(fields.items()))))
            self._sock.sendall(self._http.send(h11.EndOfMessage()))
            while True:
                event = self._http.next_event()
                if event is h11.NEED_DATA:
                    data = self._sock.recv(_RECV)
                    if not data:
                        return "the server closed the connection before answering"
                    self._http.receive_data(data)
                    continue
                if isinstance(event, h11.Response):
                    set_cookies = [v.decode("latin-1") for k, v in event.headers if k == b"set-cookie"]
                    if set_cookies:
                        session.cookies.store(origin.host, target, set_cookies)
                    if event.status_code != 200:
                        return f"HTTP {event.status_code} instead of an event stream"
                    ctype = dict(event.headers).get(b"content-type", b"").decode("latin-1")
                    if not ctype.lower().startswith("text/event-stream"):
                        return f"not an event stream: Content-Type {ctype or 'missing'}"
                    return None
                if isinstance(event, h11.InformationalResponse):
                    continue
                return f"unexpected {type(event).__name__} from the server"
        except h11.RemoteProtocolError as exc:
            return f"malformed response: {exc}"
        except OSError as exc:
            return f"network error while subscribing: {exc.strerror or exc}"

    def _read(self) -> None:
        """The reader greenlet, until the stream ends (like the WebSocket reader, it yields during a flood)."""
        sock = self._sock
        burst = 0
        try:
            while self.closed is None:
                data = sock.recv(_RECV)
                self._http.receive_data(data)
                if not data:
                    self._drain()
                    self._end("the server closed the connection")
                    return
                self._drain()
                burst += 1
                if burst >= _YIELD_EVERY:
                    burst = 0
                    gevent.sleep(0.001)
        except h11.RemoteProtocolError as exc:
            self._end(f"malformed stream: {exc}")
        except OSError as exc:
            self._end(f"connection lost: {exc.strerror or exc}")

    def _drain(self) -> None:
        """Parse what h11 has: body data into events; the end of the response ends the stream."""
        while self.closed is None:
            event = self._http.next_event()
            if isinstance(event, h11.Data):
                self._feed(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                self._end("the server ended the stream")
            else:
                return

    def _feed(self, chunk: bytes) -> None:
        pending = self._pending + chunk
        end = max(pending.rfind(b"\n"), pending.rfind(b"\r"))
        if end == len(pending) - 1 and pending.endswith(b"\r"):
            end = max(pending.rfind(b"\n", 0, end), pending.rfind(b"\r", 0, end))  # its \n may follow
        if end < 0:
            self._pending = pending
        else:
            self._pending = pending[end + 1 :]
            text = pending[: end + 1].decode("utf-8", "replace")
            for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")[:-1]:
                self._line(line)
                if self.closed is not None:
                    return
        if len(self._pending) > self.max_event:
            self._end(f"a line of more than {self.max_event} bytes without a newline (max_event)")

    def _line(self, line: str) -> None:
        if not line:
            if self._data:
                data = "\n".join(self._data)
                size = self._part_size
                self._data, self._part_size = [], 0
                if self.first_event_ms is None:
                    self.first_event_ms = (time.perf_counter() - self._start) * 1000.0
                    if self.on_first is not None:
                        self.on_first(self.first_event_ms)
                self._deliver(data, size, self._event or "message", self._id)
            self._event = None
            return
        if line[0] == ":":
            return  # a comment (a keep-alive)
        field, _, value = line.partition(":")
        value = value[1:] if value[:1] == " " else value
        if field == "data":
            self._data.append(value)
            self._part_size += len(value) + 1
            if self._part_size > self.max_event:
                self._end(f"an event of more than {self.max_event} bytes (max_event)")
        elif field == "event":
            self._event = value
        elif field == "id" and "\0" not in value:
            self._id = self.last_id = value
