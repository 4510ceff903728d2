"""HTTP/2 for ``HttpSession``: one connection per user and origin, its requests multiplexed as streams.

On https the session offers ``h2`` by ALPN (unless told ``http2=False``); when the server picks it, the new
connection becomes a ``Connection`` kept on the origin, and every exchange with that origin comes here
(``exchange``) with the request as the session rendered it for HTTP/1.1. What comes back has the shape of the
HTTP/1.1 parsers (``get_code()``, ``headers``, ``body``, ``received`` …), so cookies, redirects, decoding,
extractors and checkpoints work as they do on HTTP/1.1. The sans-IO ``h2`` library speaks the protocol (frames,
HPACK, SETTINGS, flow control) over the session's own gevent TLS socket.

Greenlets of one user (a parallel group) share the connection: whoever waits for its stream reads the socket for
all (one reader at a time; the others sleep on their reply's event and one takes over when the reader leaves);
writes go out under a lock, so frames never interleave.

A hostile peer is bounded: server push is refused (SETTINGS_ENABLE_PUSH 0; a PUSH_PROMISE is then a protocol
error that ends the connection), a header list is limited to 64 KiB (h2's HPACK decoder; CONTINUATION floods are
cut by h2 too), body bytes past the request's limit are counted and dropped with their flow-control credit given
back, and an endless body ends at the request's deadline. A GOAWAY fails the streams the server says it did not
handle, and an RST_STREAM its stream, each with its reason; an idempotent request the server refused unprocessed
(GOAWAY past it, REFUSED_STREAM, or the connection lost before any of its response arrived) is sent once more on
a new connection, like HTTP/1.1's stale keep-alive retry (and counted in ``retries``).
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from contextlib import suppress
from time import perf_counter
from typing import Any, Protocol

import gevent
import gevent.event
import gevent.lock
import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
from gevent import monkey
from h2.errors import ErrorCodes
from h2.settings import SettingCodes

MAX_HEADER_LIST = 64 * 1024  # bytes of one response's decoded header list
WINDOW = 4 * 2**20  # receive window of each stream and of the connection
_RECV = 65536
_FRESH = 1.0  # seconds: an idle connection is looked at (a GOAWAY, a close) before reuse after this long
_select = monkey.get_original("select", "select")  # the real, non-blocking select (gevent may patch it)
_IDEMPOTENT = frozenset(("GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE"))
# connection-specific fields HTTP/2 forbids (RFC 9113 8.2.2); Host becomes :authority
_DROPPED = frozenset(("host", "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "te"))


class H2Error(str):
    """The error of an exchange over HTTP/2 (so the failed request still counts as an HTTP/2 one)."""

    __slots__ = ()


class Origin(Protocol):
    """What this module needs of the session's ``_Origin``."""

    h2: Any  # the Connection, a _Pending while one is being opened, or None
    host_header: str


def _code(code: Any) -> str:
    return code.name if isinstance(code, ErrorCodes) else str(code)


class Reply:
    """One stream's response, in the shape the session reads from its HTTP/1.1 parsers."""

    __slots__ = (
        "body", "done", "ended", "error", "event", "first", "headers", "limit", "received", "refused", "sent", "status",
        "waiting",
    )  # fmt: skip

    http2 = True
    plain = False  # the session looks at every header
    lines = None  # headers are split already
    charset = None
    reason = ""  # HTTP/2 has no reason phrase
    trailing = False

    def __init__(self, limit: int) -> None:
        self.limit = limit  # body bytes kept at most; beyond, counted and dropped
        self.status = 0
        self.headers: list[tuple[str, str]] = []
        self.body = bytearray()
        self.received = 0
        self.done = False
        self.error: str | None = None
        self.refused = False  # the server did not process it: safe to send again
        self.waiting = False
        self.event = gevent.event.Event()
        self.sent = self.first = self.ended = 0.0  # perf_counter: request written, response head, stream end

    def get_code(self) -> int:
        return self.status

    def should_keep_alive(self) -> bool:
        return True

    def add(self, data: bytes) -> None:
        self.received += len(data)
        if self.received <= self.limit:
            self.body += data
        elif self.body:
            self.body = bytearray()  # over the limit: the session keeps none of it

    def finish(self, error: str | None = None, *, refused: bool = False) -> None:
        if not self.done:
            self.done, self.error, self.refused = True, error, refused
            self.ended = perf_counter()
            self.event.set()


class _Pending:
    """An origin's connection being opened by one greenlet: the others wait to learn whether it is HTTP/2."""

    __slots__ = ("event",)

    def __init__(self) -> None:
        self.event = gevent.event.Event()

    def close(self) -> None:
        pass


class Connection:
    """One HTTP/2 connection: the h2 state machine, the TLS socket, the streams under way."""

    def __init__(self, sock: Any) -> None:
        self.sock = sock
        # frames go out as they are made (a request's HEADERS, a WINDOW_UPDATE, a PING's ACK): Nagle would hold a
        # small one back until the previous one is acknowledged, the server's delayed ACK making every request late
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # the session made the headers valid (token names, no CR/LF) and lower-cased here: h2 need not check them
        # again; what the server sends is read as data (a bad :status is a malformed response), never sent back:
        # h2's checks on both sides were a fifth of its cost per request
        config = h2.config.H2Configuration(
            client_side=True,
            header_encoding=None,
            validate_outbound_headers=False,
            normalize_outbound_headers=False,
            validate_inbound_headers=False,
        )
        conn = self.conn = h2.connection.H2Connection(config)
        conn.local_settings = h2.settings.Settings(
            client=True,
            initial_values={
                SettingCodes.ENABLE_PUSH: 0,
                SettingCodes.MAX_CONCURRENT_STREAMS: 100,
                SettingCodes.INITIAL_WINDOW_SIZE: WINDOW,
                SettingCodes.MAX_HEADER_LIST_SIZE: MAX_HEADER_LIST,
            },
        )
        conn.decoder.max_header_list_size = MAX_HEADER_LIST
        conn.initiate_connection()
        conn.increment_flow_control_window(WINDOW - 65535)
        self.streams: dict[int, Reply] = {}
        self.reader: Reply | None = None  # the reply whose greenlet reads the socket now
        self.lock = gevent.lock.Semaphore()
        self.gone: str | None = None  # why no new stream may start (GOAWAY, closed, protocol error)
        self.idle_since = perf_counter()
        self.reads = 0
        self._flush()

    @property
    def usable(self) -> bool:
        return self.gone is None

    def check(self) -> None:
        """Before reuse after an idle while: read what arrived meanwhile (a GOAWAY, the close)."""
        if self.streams or perf_counter() - self.idle_since < _FRESH:
            return
        with suppress(OSError, ValueError):
            while self.gone is None and (self.sock.pending() or _select([self.sock], [], [], 0.0)[0]):
                self._read()

    def close(self) -> None:
        self.gone = self.gone or "closed"
        for reply in list(self.streams.values()):
            reply.finish(H2Error("connection closed"))
        self.streams.clear()
        self.sock.close()

    # -- one exchange ------------------------------------------------------------------------------------

    def open(self, headers: list[tuple[str, str]], body: bytes, limit: int) -> Reply:
        """Start a stream: send the request's headers and body; the reply fills as frames arrive."""
        reply = Reply(limit)
        if self.gone is not None:
            reply.finish(H2Error(f"HTTP/2 connection unusable: {self.gone}"), refused=True)
            return reply
        try:
            stream = self.conn.get_next_available_stream_id()
            self.conn.send_headers(stream, headers, end_stream=not body)
        except h2.exceptions.H2Error as exc:
            reply.finish(H2Error(f"HTTP/2 error: {exc}"), refused=True)
            return reply
        self.streams[stream] = reply
        self._flush()
        view = memoryview(body)
        while view and not reply.done:
            try:
                size = min(self.conn.local_flow_control_window(stream), self.conn.max_outbound_frame_size, len(view))
            except h2.exceptions.H2Error:
                break  # the stream ended meanwhile (reset): the reply says why
            if size <= 0:
                self._wait(reply, lambda: reply.done or self._window(stream) > 0)
                continue
            self.conn.send_data(stream, bytes(view[:size]), end_stream=size == len(view))
            view = view[size:]
            self._flush()
        reply.sent = perf_counter()
        return reply

    def _window(self, stream: int) -> int:
        """Bytes the server lets this stream send now; 1 once the stream ended (stop waiting: the reply says why)."""
        try:
            return int(self.conn.local_flow_control_window(stream))
        except h2.exceptions.H2Error:
            return 1

    def wait(self, reply: Reply) -> None:
        self._wait(reply, lambda: reply.done)

    def forget(self, reply: Reply, *, cancel: bool = False) -> None:
        """The exchange is over; with ``cancel`` (a deadline, a kill) the stream is reset (RST_STREAM CANCEL)."""
        for stream, held in list(self.streams.items()):
            if held is reply:
                del self.streams[stream]
                if cancel and self.gone is None:
                    with suppress(Exception):
                        self.conn.reset_stream(stream, ErrorCodes.CANCEL)
                        self._flush()
        self.idle_since = perf_counter()
        if self.gone is not None and not self.streams:
            self.sock.close()

    # -- the socket --------------------------------------------------------------------------------------

    def _wait(self, reply: Reply, until: Callable[[], bool]) -> None:
        while not until():
            if self.reader is None:
                self.reader = reply
                try:
                    while not until():
                        self._read()
                finally:
                    self.reader = None
                    for other in self.streams.values():  # hand the reading over to a stream still waiting
                        if other.waiting and not other.done:
                            other.event.set()
                            break
            else:
                reply.waiting = True
                try:
                    reply.event.wait()
                finally:
                    reply.waiting = False
                    if not reply.done:
                        reply.event.clear()

    def _flush(self) -> None:
        with self.lock:
            data = self.conn.data_to_send()
            if data:
                try:
                    self.sock.sendall(data)
                except OSError as exc:
                    self._lost(f"connection lost while sending ({exc.strerror or exc})")

    def _read(self) -> None:
        self.reads += 1
        if not self.reads & 15:
            gevent.sleep(0)  # data that never stops arriving never blocks: let the deadline's timer run
        try:
            data = self.sock.recv(_RECV)
        except OSError as exc:
            self._lost(f"connection lost ({exc.strerror or exc})")
            return
        if not data:
            self._lost("connection closed by the server")
            return
        try:
            events = self.conn.receive_data(data)
        except h2.exceptions.ProtocolError as exc:
            self._flush()  # h2 queued a GOAWAY saying why
            self._lost(f"HTTP/2 protocol error from the server: {exc}")
            return
        for event in events:
            self._on(event)
        self._flush()  # acknowledgements: SETTINGS, PING, WINDOW_UPDATE

    def _on(self, event: Any) -> None:
        kind = event.__class__
        reply = self.streams.get(getattr(event, "stream_id", None) or 0)
        if kind is h2.events.DataReceived:
            with suppress(h2.exceptions.H2Error):
                self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            if reply is not None:
                reply.add(event.data)
        elif kind is h2.events.ResponseReceived:
            if reply is not None:
                reply.first = perf_counter()
                for name, value in event.headers:
                    if name == b":status":
                        reply.status = int(value) if value.isdigit() and len(value) == 3 else -1
                    elif name[:1] != b":":
                        reply.headers.append((name.decode("latin-1"), value.decode("latin-1")))
        elif kind is h2.events.StreamEnded:
            if reply is not None:
                reply.finish(None if reply.status > 0 else H2Error("malformed response: no valid :status"))
        elif kind is h2.events.StreamReset:
            if reply is not None:
                code = event.error_code
                refused = code == ErrorCodes.REFUSED_STREAM
                reply.finish(H2Error(f"stream reset by the server (RST_STREAM {_code(code)})"), refused=refused)
        elif kind is h2.events.ConnectionTerminated:
            last = event.last_stream_id if event.last_stream_id is not None else 0
            code = _code(event.error_code)
            self.gone = f"server sent GOAWAY ({code})"
            for stream, waiting in self.streams.items():
                if stream > last:  # never handled by the server
                    waiting.finish(H2Error(f"server sent GOAWAY ({code}) before handling the request"), refused=True)
                elif event.error_code != ErrorCodes.NO_ERROR:
                    waiting.finish(H2Error(f"server sent GOAWAY ({code})"))

    def _lost(self, why: str) -> None:
        self.gone = why if why.startswith("connection") else f"connection failed: {why}"
        for reply in self.streams.values():  # nothing of a response arrived: as HTTP/1.1, worth one retry
            reply.finish(H2Error(why), refused=not reply.status)


def connect(origin: Origin, open_socket: Callable[[], Any]) -> Any:
    """The origin's HTTP/2 connection when it has a usable one; else a new connection (``open_socket``): a
    ``Connection``, kept on the origin, when ALPN chose h2, or the plain socket for HTTP/1.1.

    While one greenlet opens it, the others of the user wait to share it (a parallel group's first requests)."""
    while True:
        held = origin.h2
        if held is None:
            break
        if held.__class__ is _Pending:
            held.event.wait()
            continue
        held.check()
        if held.usable:
            return held
        origin.h2 = None
        if not held.streams:
            held.sock.close()
    pending = origin.h2 = _Pending()
    try:
        sock = open_socket()
    finally:
        if origin.h2 is pending:
            origin.h2 = None
        pending.event.set()
    if sock.selected_alpn_protocol() != "h2":
        return sock
    connection = origin.h2 = Connection(sock)
    return connection


def exchange(
    connection: Connection,
    origin: Origin,
    method: str,
    wire: bytes,
    limit: int,
    started: float,
    reconnect: Callable[[], Any],
) -> tuple[Reply | None, float, str | None, bool]:
    """One request over HTTP/2: (reply, seconds, None, retried) or (None, seconds, error, retried), as the
    session's HTTP/1.1 exchange gives them. ``reconnect`` gives a new connection for the one retry."""
    headers, body = _request(wire, origin)
    retried = False
    while True:
        reply = connection.open(headers, body, limit)
        try:
            connection.wait(reply)
        except BaseException:
            connection.forget(reply, cancel=True)
            raise
        connection.forget(reply)
        if reply.error is None:
            return reply, perf_counter() - started, None, retried
        if reply.refused and not retried and method in _IDEMPOTENT:
            retried = True
            fresh = reconnect()
            if fresh.__class__ is Connection:
                connection = fresh
                continue
            fresh.close()  # the server no longer offers HTTP/2 on a new connection: fail this one
        return None, perf_counter() - started, reply.error, retried


def _request(wire: bytes, origin: Origin) -> tuple[list[tuple[str, str]], bytes]:
    """The HTTP/2 headers and the body of a request the session rendered for HTTP/1.1."""
    head, _, body = wire.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, target, _ = lines[0].split(" ", 2)
    authority = origin.host_header
    fields: list[tuple[str, str]] = []
    for line in lines[1:]:
        name, _, value = line.partition(":")
        lname = name.lower()
        if lname == "host":
            authority = value.strip()
        elif lname not in _DROPPED:
            fields.append((lname, value.strip()))
    return [(":method", method), (":scheme", "https"), (":authority", authority), (":path", target), *fields], body


def phases(reply: Reply, started: float, marks: list[float], new_connection: bool) -> tuple[float, ...]:
    """A stream's phases in ms, as ``Response.timings`` (dns, connect, tls, send, ttfb, receive): the connection's
    only when this request opened it (its own ``marks[0:3]`` from connecting), as on HTTP/1.1. A stream that
    waited for a sibling's connection (a parallel group's) counts that wait in its send phase."""
    ready = marks[2] if new_connection else started
    sent = max(reply.sent or ready, ready)
    first = max(reply.first or reply.ended, sent)
    ended = max(reply.ended, first)
    opening = (
        ((marks[0] - started) * 1000.0, (marks[1] - marks[0]) * 1000.0, (marks[2] - marks[1]) * 1000.0)
        if new_connection
        else (0.0, 0.0, 0.0)
    )
    return (*opening, (sent - ready) * 1000.0, (first - sent) * 1000.0, (ended - first) * 1000.0)
