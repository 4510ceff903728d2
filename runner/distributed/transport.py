"""The socket layer shared by master and worker: one ZeroMQ socket, its security, its receive loop.

The master's ``Endpoint`` is a bound ROUTER (each frame comes with the sender's identity, and with CURVE the
key of its connection); a worker's is a DEALER connected to the master under the worker's id. Both send
without blocking (a full queue or a gone peer drops the message: heartbeats tell), watch failed security
handshakes, and hand each received frame to one handler that a bug in cannot stop.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import gevent
import zmq.green as zmq

from runner.distributed import protocol as p
from runner.distributed.security import Gatekeeper, HandshakeWatch, Keys, keep_alive, secure_client, secure_server

log = logging.getLogger("lrun")

Handler = Callable[[list[bytes], str | None], None]  # (frames, the CURVE key of the connection or None)
FAIR_EVERY = 64  # messages handled in a row before the receive loop lets timers and other greenlets run


def peer_name(identity: bytes) -> str:
    """A peer's identity for a log line: a worker id as text, anything else in hex."""
    text = identity.decode("utf-8", "replace")
    name = text if text.isprintable() and "\ufffd" not in text else identity.hex()
    return name if len(name) <= 40 else name[:37] + "..."


class Endpoint:
    """One end of the master port: ``Endpoint.server(…)`` for the master, ``Endpoint.client(…)`` for a worker."""

    def __init__(self, kind: int, keys: Keys | None, on_handshake_failed: Callable[[dict[str, Any]], None]) -> None:
        self.keys = keys
        self.context: Any = zmq.Context()
        self.socket: Any = self.context.socket(kind)
        self.socket.setsockopt(zmq.LINGER, 1000)
        self.socket.setsockopt(zmq.MAXMSGSIZE, p.MAX_FRAME)  # a larger frame drops that connection, not the peer
        self._gatekeeper: Gatekeeper | None = None
        self._on_handshake_failed = on_handshake_failed
        self._handshakes: HandshakeWatch | None = None
        self._receiver: gevent.Greenlet | None = None

    @classmethod
    def server(cls, keys: Keys | None, on_handshake_failed: Callable[[dict[str, Any]], None]) -> Endpoint:
        end = cls(zmq.ROUTER, keys, on_handshake_failed)
        end.socket.setsockopt(zmq.ROUTER_HANDOVER, 0)  # a second connection under a connected worker's id gets none
        keep_alive(end.socket)  # a dead connection goes within 30 s, so that its worker can come back under its id
        if keys is not None:
            end._gatekeeper = Gatekeeper(end.context, keys.allowed)
            secure_server(end.socket, keys)
            end._handshakes = HandshakeWatch(end.socket, on_handshake_failed)
        return end

    @classmethod
    def client(
        cls, identity: str, keys: Keys | None, on_handshake_failed: Callable[[dict[str, Any]], None]
    ) -> Endpoint:
        end = cls(zmq.DEALER, keys, on_handshake_failed)
        end.socket.setsockopt(zmq.IDENTITY, identity.encode())
        if keys is not None:
            secure_client(end.socket, keys)
        end._handshakes = HandshakeWatch(end.socket, on_handshake_failed)  # also: a token given to a plain master
        return end

    @property
    def closed(self) -> bool:
        return self.socket is None

    def bind(self, host: str, port: int) -> int:
        """Listen on ``host:port`` (0: any free port); the port. ``zmq.ZMQError`` as libzmq raises it."""
        if port == 0:
            return int(self.socket.bind_to_random_port(f"tcp://{host}"))
        self.socket.bind(f"tcp://{host}:{port}")
        return port

    def connect(self, address: str) -> None:
        self.socket.connect(address)

    def send(self, message: p.Message, to: bytes | None = None) -> None:
        """Send without blocking, to the peer ``to`` (a ROUTER's) or to the master (a DEALER's)."""
        if self.socket is None:
            return
        try:
            if to is None:
                self.socket.send(p.encode(message), flags=zmq.NOBLOCK)
            else:
                self.socket.send_multipart([to, p.encode(message)], flags=zmq.NOBLOCK)
        except zmq.ZMQError as exc:  # the peer's queue is full or it is gone: heartbeats will tell
            log.debug("could not send %s to %s: %s", message.KIND, peer_name(to or b"the master"), exc)

    def serve(self, handle: Handler) -> gevent.Greenlet:
        """Receive in a greenlet until closed; each message's frames go to ``handle``."""
        self._receiver = gevent.spawn(self._receive, handle)
        return self._receiver

    def pending(self) -> bool:
        """Messages wait on the socket, unread: the receive loop is behind.

        ``get``, never ``getsockopt``: on a zmq.green socket ``getsockopt`` is libzmq's own, and reading EVENTS
        there consumes the edge of the socket's file descriptor that the receive loop waits on, which then waits
        forever on a readable socket (a master deaf to every worker).
        """
        return self.socket is not None and bool(self.socket.get(zmq.EVENTS) & zmq.POLLIN)

    def _receive(self, handle: Handler) -> None:
        secure = self.keys is not None and self._gatekeeper is not None  # a server's frames say which key sent them
        handled = 0
        while True:
            handled += 1
            if handled % FAIR_EVERY == 0:  # a socket that always has more must not starve the run's timers
                gevent.sleep(0)
            try:
                if secure:
                    parts = self.socket.recv_multipart(copy=False)
                    peer = parts[-1].get("User-Id")
                    frames = [part.bytes for part in parts]
                else:
                    frames, peer = self.socket.recv_multipart(), None
            except zmq.ZMQError:
                if self.socket is None or self.socket.closed:
                    return
                gevent.sleep(0.01)
                continue
            try:
                handle(frames, peer)
            except Exception:  # a bug must not stop the endpoint taking messages
                log.exception("internal error while handling a message from %s", peer_name(frames[0]))

    def close(self, linger: int = 1000) -> None:
        """Stop receiving, close the socket and its context (idempotent)."""
        if self.socket is None:
            return
        if self._receiver is not None:
            self._receiver.kill(block=False)
        if self._handshakes is not None:
            self._handshakes.close()
        if self._gatekeeper is not None:
            self._gatekeeper.close()
        self.socket.close(linger=linger)
        self.context.term()
        self.socket = None
