"""Serve the demo shop with gevent's WSGI server until SIGINT/SIGTERM (or a stop event)."""

from __future__ import annotations

import contextlib
import signal
import socket
import threading
from collections.abc import Callable
from typing import Any

import gevent
from gevent.event import Event
from gevent.pywsgi import WSGIServer

from runner.demo import grpc_service
from runner.demo.app import make_app
from runner.demo.websocket import DemoHandler
from runner.errors import RunError

BACKLOG = 2048  # many virtual users connect at once; the kernel caps it at somaxconn anyway


class _Server(WSGIServer):
    """pywsgi sends the headers and the body in two writes: without TCP_NODELAY, Nagle's algorithm and the
    client's delayed ACK add ~40 ms to every keep-alive response. A connection that opens with HTTP/2's preface
    is a gRPC client's: it goes to the demo's gRPC service (``grpc_service``), when grpcio is installed."""

    grpc_port = 0

    def handle(self, sock: socket.socket, address: Any) -> None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.grpc_port and grpc_service.is_grpc(sock):
            return grpc_service.relay(sock, self.grpc_port)
        super().handle(sock, address)


def url_for(host: str, port: int) -> str:
    """The URL a client on this machine uses to reach a server bound to ``host``."""
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


DEMO_PORT = 8090  # not 8089: Locust's web UI port, and lrun's


def serve(
    host: str = "127.0.0.1",
    port: int = DEMO_PORT,
    *,
    ready: Callable[[str], None] | None = None,
    stop: Event | None = None,
) -> None:
    """Serve the demo shop on ``host:port`` (port 0: any free port) until SIGINT/SIGTERM or ``stop`` is set.

    ``ready(url)`` is called with the actual URL once the socket listens. Raises ``RunError`` if the address
    cannot be bound. Returns normally on a signal (no ``KeyboardInterrupt``).
    """
    app = make_app()
    server = _Server((host, port), app, log=None, backlog=BACKLOG, handler_class=DemoHandler)
    app.grpc = grpc_service.start(app)
    server.grpc_port = app.grpc.port if app.grpc is not None else 0
    try:
        server.start()
    except OSError as e:
        if app.grpc is not None:
            app.grpc.stop()
        raise RunError(f"the demo target cannot listen on {host}:{port}: {e.strerror or e}") from e
    if stop is None:
        stop = Event()
    watchers = []
    if threading.current_thread() is threading.main_thread():
        watchers = [gevent.signal_handler(sig, stop.set) for sig in (signal.SIGINT, signal.SIGTERM)]
    try:
        if ready is not None:
            ready(url_for(host, server.server_port))
        stop.wait()
    finally:
        for watcher in watchers:
            watcher.cancel()
        server.stop(timeout=2)
        if app.grpc is not None:
            app.grpc.stop()
