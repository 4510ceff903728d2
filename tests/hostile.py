"""Hostile HTTP servers for tests: real sockets on loopback, each connection handled in its own thread.

Threads, not greenlets, so the servers answer while the test blocks on an ``lrun`` subprocess as well as while
an ``HttpSession`` runs under gevent in the test process. Every wait is bounded: sockets time out, and
``stop()`` closes the listener and every open connection.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType


@dataclass
class Request:
    conn: int  # which connection, in accept order
    index: int  # which request on that connection
    method: str
    target: str
    headers: dict[str, str]  # lower-case names
    body: bytes


Handler = Callable[["Connection", Request], bool]  # answer (or not) one request; False ends the connection


@dataclass
class Connection:
    server: HostileServer
    sock: socket.socket
    number: int
    pending: bytes = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read_request(self, index: int) -> Request | None:
        """The next request on this connection, or None when the client closed it."""
        while b"\r\n\r\n" not in self.pending:
            data = self.sock.recv(65536)
            if not data:
                return None
            self.pending += data
        head, _, rest = self.pending.partition(b"\r\n\r\n")
        first, *lines = head.decode("latin-1").split("\r\n")
        method, target, _ = first.split(" ", 2)
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
        length = int(headers.get("content-length", "0"))
        while len(rest) < length:
            data = self.sock.recv(65536)
            if not data:
                return None
            rest += data
        self.pending = rest[length:]
        return Request(self.number, index, method, target, headers, rest[:length])


@dataclass
class HostileServer:
    """Calls ``handler(connection, request)`` for every request it reads; counts what it received."""

    handler: Handler
    requests: list[Request] = field(default_factory=list)
    connections: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _socks: list[socket.socket] = field(default_factory=list)
    _stopped: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0), backlog=64)
        self._listener.settimeout(0.2)
        self.port = self._listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                sock, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            sock.settimeout(30)
            with self._lock:
                number = self.connections
                self.connections += 1
                self._socks.append(sock)
            threading.Thread(target=self._serve, args=(Connection(self, sock, number),), daemon=True).start()

    def _serve(self, connection: Connection) -> None:
        try:
            index = 0
            while not self._stopped.is_set():
                request = connection.read_request(index)
                if request is None:
                    return
                with self._lock:
                    self.requests.append(request)
                index += 1
                if not self.handler(connection, request):
                    return
        except OSError:
            pass
        finally:
            connection.sock.close()

    def stop(self) -> None:
        self._stopped.set()
        self._listener.close()
        with self._lock:
            for sock in self._socks:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()

    def __enter__(self) -> HostileServer:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()


def response(status: int = 200, body: bytes = b"ok", headers: dict[str, str] | None = None) -> bytes:
    lines = [f"HTTP/1.1 {status} X", f"Content-Length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def answer(status: int = 200, body: bytes = b"ok", headers: dict[str, str] | None = None) -> Handler:
    """A handler that always answers the same, keeping the connection open."""
    data = response(status, body, headers)

    def handle(connection: Connection, request: Request) -> bool:
        connection.send(data)
        return True

    return handle
