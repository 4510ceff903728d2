"""A virtual user's WebSocket connection: ``wsproto`` (sans-IO) on the user's gevent socket.

The connection is opened like an HTTP request of the user (the same TCP/TLS connect, the user's headers and
cookie jar), then upgraded. A background greenlet reads: it answers pings, assembles fragmented messages (up
to ``max_message`` bytes: a bigger one closes the connection with 1009), and hands each message to the step
waiting for one that matches, or keeps it in a bounded buffer. A message no step took (the buffer overflowed,
a waiting step skipped it, the connection closed with it) is *unread*: ``on_unread`` counts it, so a flood the
scenario never reads costs CPU, never memory.

Every wait has a deadline; a peer that misbehaves (no upgrade, a 200 instead of 101, a frame over the limit,
closing mid-message) ends the connection with a reason that the waiting step reports.
"""

from __future__ import annotations

import base64
import contextlib
import ssl
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import gevent
from gevent.event import AsyncResult
from gevent.hub import Waiter
from gevent.lock import Semaphore
from wsproto import ConnectionType, WSConnection
from wsproto.connection import ConnectionState
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Ping,
    Pong,
    RejectConnection,
    RejectData,
    Request,
    TextMessage,
)
from wsproto.utilities import LocalProtocolError, RemoteProtocolError

from runner.http.session import HttpSession, _connect_error
from runner.protocols import ws_frames
from runner.protocols.inbox import Inbox, Matcher, Message

MAX_MESSAGE = 2**20  # bytes of one received message, by default
BUFFER = 1000  # received messages kept for later steps, by default
_RECV = 65536
_PENDING = 4096  # bytes of an unfinished common-case frame kept before wsproto takes it over
_YIELD_EVERY = 16  # reads in a row before the reader lets other users run (a flood must not starve them)


def http_url(url: str) -> str:
    """``ws://`` as ``http://`` and ``wss://`` as ``https://``: how the user's session resolves and connects."""
    lower = url[:6].lower()
    if lower.startswith("wss://"):
        return "https://" + url[6:]
    if lower.startswith("ws://"):
        return "http://" + url[5:]
    return url


class WebSocket(Inbox):
    """One open (or failed, or closed) WebSocket connection of a user."""

    kind = "WebSocket"

    def __init__(
        self,
        name: str,
        max_message: int = MAX_MESSAGE,
        buffer: int = BUFFER,
        on_unread: Callable[[Message], None] | None = None,
    ) -> None:
        super().__init__(name, buffer, on_unread)
        self.max_message = max_message
        self.subprotocol: str | None = None
        self.close_code: int | None = None
        self.sent = self.bytes_sent = 0
        self._ws: Any = WSConnection(ConnectionType.CLIENT)  # then its Connection alone, once open
        self._tls = False
        self._write_lock = Semaphore()
        self._pong: AsyncResult | None = None
        self._parts: list[str | bytes] = []
        self._pending = b""  # the start of a common-case frame (ws_frames) whose end has not arrived
        # wsproto holds nothing (no part of a frame or a message) and the connection is open: what is read next may
        # be decoded by ws_frames. Cleared whenever wsproto is given data or a close is sent; set again once wsproto
        # has given all its events and holds nothing.
        self._fast = False
        # One watcher of the socket's readability wakes whoever is parked on it: the user waiting for a reply (it
        # reads the socket itself, no hand-off from the reader) before the background reader. Both read with
        # _recv_now, which never waits: BlockingIOError when nothing is there (plain TCP: the kernel socket's recv;
        # TLS: _tls_recv on the SSL object, which may hold decrypted bytes the watcher cannot see: ``pending()``).
        self._io: Any = None
        self._recv_now: Callable[[int], bytes] | None = None
        self._raw: Any = None  # plain TCP: the kernel socket under the gevent one, read and written directly
        self._ssl: Any = None  # TLS: the SSL object under gevent's SSLSocket
        self._reader_waiter: Waiter | None = None
        self._user_waiter: Waiter | None = None
        self._busy = False  # received data being processed: by one greenlet at a time
        self._direct = False  # a waiting user reads the socket: the reader keeps off it
        self._timed_out = False
        self._timers: dict[float, Any] = {}  # a wait's seconds -> a reusable libev timer, made on first use
        self._slot = _Slot()  # where a message arrives for a user reading the socket itself (one wait at a time)

    # -- opening --------------------------------------------------------------------------------------------

    def connect(
        self,
        session: HttpSession,
        url: str,
        headers: dict[str, str],
        subprotocols: list[str],
        timeout: float,
    ) -> tuple[float, str | None]:
        """Connect and upgrade within ``timeout`` seconds: (milliseconds it took, None or why it failed)."""
        origin, target = session._resolve(http_url(url))
        scheme = "wss" if origin.https else "ws"
        self.url = f"{scheme}://{origin.host_header}{target}"
        start = time.perf_counter()
        try:
            with gevent.Timeout(timeout, _Timeout):
                failure = self._open(session, origin, target, headers, subprotocols)
        except _Timeout:
            failure = f"timed out after {timeout:g}s (opening the WebSocket)"
        elapsed = (time.perf_counter() - start) * 1000.0
        if failure is not None:
            self.closed = None
            self._drop(failure)
            return elapsed, failure
        self.closed = None
        self._last_at = time.perf_counter()
        self._leftover()
        if self._ws.connection is not None:
            self._ws = self._ws.connection  # the HTTP handshake's state is no longer needed: ~4 KiB less a user
        if self.closed is None:
            self._fast = self._idle()
            sock = self._sock
            if self._tls:
                self._ssl = sock._sslobj
                self._recv_now = self._tls_recv
            else:
                self._raw = sock._sock
                self._recv_now = self._raw.recv
            self._io = sock.hub.loop.io(sock.fileno(), 1)
            self._reader = gevent.spawn(self._read)
        return elapsed, None

    def _open(
        self, session: HttpSession, origin: Any, target: str, headers: dict[str, str], protocols: list[str]
    ) -> str | None:
        try:
            self._sock = session._connect(origin, [0.0] * 5)
            self._tls = origin.https
        except (OSError, RuntimeError) as exc:
            return _connect_error(exc, origin, session.connect_timeout) or f"cannot connect: {exc}"
        extra = [
            (k.encode("latin-1"), str(v).encode("latin-1"))
            for k, v in {**session.headers, **headers}.items()
            if k.lower() != "host"
        ]
        cookie = session.cookies.header(origin.host, target, origin.https)
        if cookie:
            extra.append((b"Cookie", cookie.encode("latin-1")))
        try:
            self._sock.sendall(
                self._ws.send(
                    Request(host=origin.host_header, target=target, extra_headers=extra, subprotocols=protocols)
                )
            )
            while True:
                data = self._sock.recv(_RECV)
                if not data:
                    return "the server closed the connection before answering the upgrade"
                self._ws.receive_data(data)
                for event in self._ws.events():
                    if isinstance(event, AcceptConnection):
                        self.subprotocol = event.subprotocol
                        set_cookies = [
                            v.decode("latin-1") for k, v in event.extra_headers if k.lower() == b"set-cookie"
                        ]
                        if set_cookies:
                            session.cookies.store(origin.host, target, set_cookies)
                        return None
                    if isinstance(event, RejectConnection):
                        return f"the server refused the upgrade: HTTP {event.status_code} instead of 101"
                    if isinstance(event, RejectData):
                        continue
        except RemoteProtocolError as exc:
            return f"malformed upgrade response: {exc}"
        except OSError as exc:
            return f"network error while upgrading: {exc.strerror or exc}"

    def _leftover(self) -> None:
        """Frames that came in the same read as the 101: parsed now (the reader starts after)."""
        for event in self._ws.events():
            self._on_event(event)

    # -- sending --------------------------------------------------------------------------------------------

    def send(self, payload: str | bytes) -> tuple[int, str | None]:
        """Send one message: (bytes of payload, None or why it could not be sent)."""
        if self.closed is not None:
            return 0, self.not_open()
        if isinstance(payload, str):
            data = payload.encode()
            wire = ws_frames.encode(data, ws_frames.TEXT)
        else:
            data = payload
            wire = ws_frames.encode(data, ws_frames.BINARY)
        size = len(data)
        if self._write_lock.locked():  # a write under way (it waits for the socket): after it
            failure = self._write(wire)
        elif self._raw is not None:  # no lock to take, and most writes fit the kernel's buffer: no wait
            try:
                sent = self._raw.send(wire)
            except BlockingIOError:
                sent = 0
            except OSError as exc:
                reason = f"connection lost while sending: {exc.strerror or exc}"
                self._end(reason)
                return size, reason
            failure = None if sent == len(wire) else self._write(wire[sent:] if sent else wire)
        elif self._ssl is not None:  # TLS writes the whole record or nothing (no partial writes)
            try:
                self._ssl.write(wire)
                failure = None
            except (ssl.SSLWantWriteError, ssl.SSLWantReadError):
                failure = self._write(wire)  # the same bytes again, waiting for the socket as gevent does
            except OSError as exc:
                reason = f"connection lost while sending: {exc.strerror or exc}"
                self._end(reason)
                return size, reason
        else:
            failure = self._write(wire)
        if failure is None:
            self.sent += 1
            self.bytes_sent += size
        return size, failure

    def _write(self, wire: bytes) -> str | None:
        try:
            with self._write_lock:
                sent = 0
                if self._raw is not None:  # most writes fit the kernel's buffer: no gevent wrapper, no wait
                    with contextlib.suppress(BlockingIOError):
                        sent = self._raw.send(wire)
                if sent < len(wire):
                    self._sock.sendall(wire[sent:] if sent else wire)
        except OSError as exc:
            reason = f"connection lost while sending: {exc.strerror or exc}"
            self._end(reason)
            return reason
        return None

    def ping(self, timeout: float) -> tuple[float, str | None]:
        """Send a ping and wait for its pong: (round trip in ms, None or why not)."""
        if self.closed is not None:
            return 0.0, self.not_open()
        pong = self._pong = AsyncResult()
        start = time.perf_counter()
        failure = self._write(self._ws.send(Ping(payload=b"lrun")))
        if failure is not None:
            return 0.0, failure
        try:
            arrived = pong.get(timeout=timeout)
        except gevent.Timeout:
            return (time.perf_counter() - start) * 1000.0, f"no pong within {timeout:g}s"
        finally:
            self._pong = None
        if isinstance(arrived, str):
            return (time.perf_counter() - start) * 1000.0, arrived
        return (arrived - start) * 1000.0, None

    # -- receiving ------------------------------------------------------------------------------------------

    def _read(self) -> None:
        """The reader greenlet: until the connection ends.

        It reads with ``_recv_now`` (never waiting) and parks on the connection's watcher when nothing is there, or
        while a user waiting for a reply reads; after ``_YIELD_EVERY`` reads that found data waiting, it sleeps a
        millisecond: ``sleep(0)`` would not let the loop's timers run, and a flood would hold the run past its end.
        """
        recv = self._recv_now
        assert recv is not None
        burst = 0
        try:
            while self.closed is None:
                if self._busy or self._direct:  # a waiting user reads, or processes what it read
                    self._park_reader()
                    continue
                try:
                    data = recv(_RECV)
                except BlockingIOError:
                    burst = 0
                    self._park_reader()
                    continue
                if self._process(data):
                    return
                burst += 1
                if burst >= _YIELD_EVERY:
                    burst = 0
                    gevent.sleep(0.001)
        except OSError as exc:
            self._end(f"connection lost: {exc.strerror or exc}")

    def _tls_recv(self, size: int) -> bytes:
        """Read what TLS has decrypted, without waiting: BlockingIOError when it needs more from the network."""
        try:
            return self._ssl.read(size)  # type: ignore[no-any-return]
        except ssl.SSLWantReadError:
            raise BlockingIOError from None
        except ssl.SSLWantWriteError:  # a renegotiation under way: gevent's read waits for the socket as it must
            return self._sock.recv(size)  # type: ignore[no-any-return]
        except ssl.SSLZeroReturnError:
            return b""
        except ssl.SSLError as exc:
            if exc.args[0] == ssl.SSL_ERROR_EOF:
                return b""
            raise

    def _process(self, data: bytes) -> bool:
        """Process what one read returned (b"": the end): whether the connection is over."""
        if not data:
            if self._parts or self._pending:
                self._end("the server closed the connection in the middle of a message")
            else:
                self._end("the server closed the connection without a close frame (1006)")
            return True
        self._busy = True
        try:
            if self._common(data):
                for event in self._ws.events():
                    self._on_event(event)
                    if self.closed is not None:
                        return True
                self._fast = self._idle()
            return self.closed is not None
        except RemoteProtocolError as exc:
            self._end(f"protocol error from the server: {exc}")
        except LocalProtocolError as exc:
            self._end(f"protocol error: {exc}")
        except OSError as exc:
            self._end(f"connection lost: {exc.strerror or exc}")
        finally:
            self._busy = False
            io = self._io
            if io is not None and not io.active and self._reader_waiter is not None and not self._direct:
                io.start(self._readable)  # stopped while this was processed
        return True

    def _park_reader(self) -> None:
        waiter = self._reader_waiter = Waiter(self._sock.hub)
        io = self._io
        if not io.active:
            io.start(self._readable)
        try:
            waiter.get()
        finally:
            self._reader_waiter = None

    def _wake_reader(self) -> None:
        if self._reader_waiter is not None and not self._direct and not self._busy:
            self._reader_waiter.switch(None)

    def _readable(self) -> None:
        """The watcher's callback, in the hub: wake the waiting user, else the reader (level-triggered: with
        nobody parked, or data being processed, it stops until someone parks)."""
        waiter = self._user_waiter if self._direct else self._reader_waiter
        if waiter is None or self._busy:
            self._io.stop()
        else:
            waiter.switch(None)

    def wait(self, matches: Matcher, timeout: float, since: float | None = None) -> Message | str:
        """``Inbox.wait``; on plain TCP, while nothing else processes received data, the waiting user reads the
        socket itself: no switch to the reader and back per message. A read that is one whole common-case frame
        (most replies) is decoded here; anything else goes through ``_process``."""
        if self._io is None or self._busy or self._waiting is not None or self._user_waiter is not None:
            return super().wait(matches, timeout, since)
        recv = self._recv_now
        assert recv is not None
        if self.buffer:
            found = self._buffered(matches, since)
            if found is not None:
                return found
        slot = self._slot
        slot.value = None
        self._waiting = (matches, slot, since is None)
        self._direct = True
        io, hub = self._io, self._sock.hub
        self._timed_out = False
        timer = self._timers.get(timeout)
        if timer is None:  # a repeating timer re-armed with again(): a one-shot libev timer cannot be restarted
            timer = self._timers[timeout] = hub.loop.timer(timeout, timeout)
        timer.again(self._timeout, update=True)
        burst = 0
        # a reply to what was just sent: not there yet, a read would find nothing (unless TLS holds some already)
        park = since is not None and not (self._ssl is not None and self._ssl.pending())
        try:
            while True:  # the message (or why none: slot.value), the time is up, or the connection is lost
                if park:  # until the socket is readable (the watcher is level-triggered) or the time is up
                    park = False
                    waiter = self._user_waiter = Waiter(hub)
                    if not io.active:
                        io.start(self._readable)
                    try:
                        waiter.get()
                    finally:
                        self._user_waiter = None
                    if slot.value is not None:
                        break
                    if self._timed_out:
                        return f"no matching message within {timeout:g}s"
                try:
                    data = recv(_RECV)
                except BlockingIOError:
                    burst = 0
                    park = True
                    continue
                except OSError as exc:
                    self._end(f"connection lost: {exc.strerror or exc}")
                    break
                size = len(data) - 2
                if (
                    size < 126  # one whole unmasked frame of a short text or binary message, nothing held back
                    and size >= 0
                    and data[1] == size
                    and self._fast
                    and not self._pending
                    and (data[0] == 0x81 or data[0] == 0x82)
                    and size <= self.max_message
                ):
                    if data[0] == 0x82:
                        self._deliver(data[2:], size)
                    else:
                        try:
                            text = data[2:].decode()
                        except UnicodeDecodeError:
                            self._process(data)  # wsproto closes with 1007
                        else:
                            self._deliver(text, size)
                else:
                    self._process(data)
                if slot.value is not None:
                    break
                burst += 1
                if burst >= _YIELD_EVERY:  # a flood of other messages: let others run
                    burst = 0
                    gevent.sleep(0.001)
                    if slot.value is not None:
                        break
                if self._timed_out:  # while a message was processed (a hook, a write) or others ran
                    return f"no matching message within {timeout:g}s"
        finally:
            self._waiting = None
            self._direct = False
            timer.stop()
            self._timed_out = False
            if self._io is not None and self._reader_waiter is not None:
                if self._ssl is not None and self._ssl.pending():  # TLS holds what the watcher cannot see: the reader's
                    hub.loop.run_callback(self._wake_reader)
                elif not io.active:
                    io.start(self._readable)  # stopped while no one else was to read: the reader's again
        value = slot.value
        slot.value = None
        return value if value is not None else self.not_open()

    def _timeout(self) -> None:
        self._timed_out = True
        if self._user_waiter is not None:
            self._user_waiter.switch(None)

    def _idle(self) -> bool:
        """Whether wsproto holds nothing (no part of a frame or of a message) and the connection is open."""
        ws = self._ws
        proto = ws._proto
        decoder = proto._frame_decoder
        return (
            decoder.header is None
            and not decoder.buffer.buffer
            and proto._message_decoder.opcode is None
            and ws.state is ConnectionState.OPEN
        )

    def _common(self, data: bytes) -> bool:
        """Deliver the common-case frames of ``data`` (``ws_frames``) while wsproto holds nothing; the rest goes to
        wsproto: whether it got some (its events are then read, and ``_fast`` set again)."""
        ws = self._ws
        if not self._fast:
            if self._pending:  # the start of a frame kept before a close was sent: wsproto's now, whole
                data, self._pending = self._pending + data, b""
            ws.receive_data(data)
            return True
        if self._pending:
            data = self._pending + data
        used, rest = ws_frames.decode(data, self._message, self._stopped)
        if rest:
            self._pending = b""
            self._fast = False
            ws.receive_data(data[used:])
            return True
        pending = data[used:] if used else data
        if len(pending) > _PENDING:  # a big frame dripping in: wsproto takes it piece by piece (no quadratic join)
            self._pending = b""
            self._fast = False
            ws.receive_data(pending)
            return True
        self._pending = pending
        return False

    def _stopped(self) -> bool:
        return self.closed is not None

    def _message(self, data: str | bytes, size: int) -> None:
        """A whole message (one frame)."""
        self._part_size = size
        if size > self.max_message:
            self._fail_close(1009, f"a message of more than {self.max_message} bytes (max_message)")
        else:
            self._deliver(data, size)

    def _on_event(self, event: Any) -> None:
        if isinstance(event, TextMessage | BytesMessage):
            data = event.data if isinstance(event.data, str | bytes) else bytes(event.data)
            size = len(data.encode()) if isinstance(data, str) else len(data)
            self._part_size += size
            if self._part_size > self.max_message:
                self._fail_close(1009, f"a message of more than {self.max_message} bytes (max_message)")
                return
            if event.message_finished and not self._parts:
                self._deliver(data, self._part_size)
            else:
                self._parts.append(data)
                if event.message_finished:
                    joined = "".join(self._parts) if isinstance(data, str) else b"".join(self._parts)  # type: ignore[arg-type]
                    self._parts = []
                    self._deliver(joined, self._part_size)
        elif isinstance(event, Ping):
            self._write(self._ws.send(event.response()))
        elif isinstance(event, Pong):
            if self._pong is not None:
                self._pong.set(time.perf_counter())
        elif isinstance(event, CloseConnection):
            self.close_code = event.code
            reason = f"closed by the server (code {event.code}{', ' + event.reason if event.reason else ''})"
            if self._parts:
                reason = f"closed by the server in the middle of a message (code {event.code})"
            if self._ws.state is ConnectionState.REMOTE_CLOSING:
                with contextlib.suppress(LocalProtocolError):
                    self._write(self._ws.send(event.response()))
            self._end(reason)

    # -- closing --------------------------------------------------------------------------------------------

    def close(self, code: int = 1000, reason: str = "", timeout: float = 5.0) -> tuple[float, str | None]:
        """Send a close frame and wait for the server's (or ``timeout``): (ms it took, None or why not clean)."""
        if self.closed is not None:
            return 0.0, self.not_open()
        start = time.perf_counter()
        self._fast = False  # the close handshake is wsproto's
        try:
            failure = self._write(self._ws.send(CloseConnection(code=code, reason=reason or None)))
        except LocalProtocolError as exc:
            failure = str(exc)
        if failure is None:
            try:
                self._closed_event.get(timeout=timeout)
            except gevent.Timeout:
                failure = f"the server did not answer the close within {timeout:g}s"
        elapsed = (time.perf_counter() - start) * 1000.0
        if failure is None and self.close_code not in (None, code, 1000, 1005):
            failure = f"the server closed with code {self.close_code}"
        self._drop("closed by the scenario")
        return elapsed, failure

    def _fail_close(self, code: int, reason: str) -> None:
        """A protocol limit was broken: tell the server (best effort) and end."""
        self._fast = False
        with contextlib.suppress(LocalProtocolError):
            self._write(self._ws.send(CloseConnection(code=code)))
        self._end(reason)

    def _end(self, reason: str) -> None:
        self._parts = []
        self._pending = b""
        self._fast = False
        self._raw = self._ssl = None
        if self._pong is not None:
            self._pong.set(reason)
        io, self._io = self._io, None
        if io is not None:  # before the socket closes; whoever is parked on it wakes and finds it closed
            io.close()
            callback = self._sock.hub.loop.run_callback if self._sock is not None else None
            for waiter in (self._user_waiter, self._reader_waiter):
                if waiter is not None and callback is not None:
                    callback(waiter.switch, None)
        super()._end(reason)


class _Slot:
    """Where ``_deliver`` puts the awaited message (or why there is none) for a user reading the socket itself."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value: Message | str | None = None

    def set(self, value: Message | str) -> None:
        self.value = value


class _Timeout(Exception):
    """Opening the WebSocket took longer than its timeout."""


def binary(text: str) -> bytes:
    """A binary message written in the scenario: base64 (as Chrome's HAR keeps binary frames)."""
    return base64.b64decode(text, validate=True)


def ws_path(url: str) -> str:
    """The path of a WebSocket URL (for names)."""
    return urlsplit(url).path or "/"
