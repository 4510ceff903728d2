"""A loopback server for hostile-peer tests: ``script(conn, stop)`` runs for each connection, in threads, until
closed. With ``read_request`` it first reads what the client sent (one recv), for scripts that only answer."""

from __future__ import annotations

import socket
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
