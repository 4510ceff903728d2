"""A loopback server for hostile-peer tests: ``script(conn, stop)`` runs for each connection, in threads, until
closed. With ``read_request`` it first reads what the client sent (one recv), for scripts that only answer.
``ws_handshake`` and ``ws_frame`` are a WebSocket server's side of the upgrade and its frames, for scripts."""

from __future__ import annotations

import base64
import hashlib
import socket
import struct
import threading
from collections.abc import Callable

Script = Callable[[socket.socket, threading.Event], None]


class Scripted:
    def __init__(self, script: Script, *, read_request: bool = False) -> None:
        self.script, self.read_request = script, read_request
        self.stop = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.2)
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            threading.Thread(target=self._run, args=(conn,), daemon=True).start()

    def _run(self, conn: socket.socket) -> None:
        try:
            if self.read_request:
                conn.recv(4096)
            self.script(conn, self.stop)
        except OSError:
            pass
        finally:
            conn.close()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        self.listener.close()


GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455's


def ws_handshake(conn: socket.socket, subprotocol: str | None = None) -> None:
    """Read a WebSocket upgrade request and accept it (with ``subprotocol`` when given)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(4096)
        if not chunk:
            raise ConnectionError("no request")
        data += chunk
    key = next(
        line.split(b":", 1)[1].strip() for line in data.split(b"\r\n") if line.lower().startswith(b"sec-websocket-key")
    )
    accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
    protocol = f"Sec-WebSocket-Protocol: {subprotocol}\r\n".encode() if subprotocol else b""
    conn.sendall(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        + protocol + b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n"
    )  # fmt: skip


def ws_frame(payload: bytes, opcode: int = 1, fin: bool = True, length: int | None = None) -> bytes:
    """A server's (unmasked) frame; ``length`` may lie about the payload's."""
    n = len(payload) if length is None else length
    head = bytes([(0x80 if fin else 0) | opcode])
    if n < 126:
        head += bytes([n])
    elif n < 65536:
        head += bytes([126]) + struct.pack("!H", n)
    else:
        head += bytes([127]) + struct.pack("!Q", n)
    return head + payload
