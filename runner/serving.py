"""What lrun serves over HTTP (the web UI, ``/metrics``): one loopback rule, a failed-login throttle for basic auth,
and gevent's WSGI server with TCP_NODELAY.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import socket
import time
from collections import OrderedDict
from typing import Any

from gevent.pywsgi import WSGIServer

log = logging.getLogger("lrun")
LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


def is_loopback(host: str) -> bool:
    """``host`` (a name or an IP address, IPv6 with or without brackets) is this machine's loopback only.

    By address, not by text: ``127.evil.example`` is a name like any other, ``::ffff:127.0.0.1`` is not loopback.
    """
    host = host.strip().strip("[]").lower()
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class LoginThrottle:
    """Failed logins per address: each logged, and after a few in a row the address waits, doubling each time."""

    FREE_FAILURES = 5  # in a row from one address before it must wait
    MAX_BLOCK = 60.0  # seconds an address waits at most
    MAX_ADDRESSES = 4096  # addresses remembered (the oldest forgotten first)

    def __init__(self, clock: Any = time.monotonic, what: str = "web UI") -> None:
        self.clock = clock
        self.what = what  # what the log line names
        self._seen: OrderedDict[str, tuple[int, float]] = OrderedDict()  # address -> (failures in a row, until)

    def wait(self, address: str) -> float:
        """Seconds ``address`` must still wait before its credentials are looked at (0: go on)."""
        until = self._seen.get(address, (0, 0.0))[1]
        return max(0.0, until - self.clock())

    def failed(self, address: str, user: str) -> None:
        failures, _ = self._seen.pop(address, (0, 0.0))
        failures += 1
        block = min(self.MAX_BLOCK, 2.0 ** (failures - self.FREE_FAILURES)) if failures >= self.FREE_FAILURES else 0.0
        self._seen[address] = (failures, self.clock() + block)
        while len(self._seen) > self.MAX_ADDRESSES:
            self._seen.popitem(last=False)
        shown = user if len(user) <= 64 else user[:64] + "…"
        log.warning(
            "%s: failed login from %s as %r (%d in a row)%s",
            self.what,
            address,
            shown,
            failures,
            f"; it waits {block:g}s before its next attempt" if block else "",
        )

    def succeeded(self, address: str) -> None:
        if address in self._seen:
            del self._seen[address]


class Server(WSGIServer):
    """gevent's WSGI server with TCP_NODELAY on every connection.

    gevent writes a response's head and its body in two ``sendall`` calls: with Nagle's algorithm on, the body
    waits for the ACK of the head, which the client delays (40 ms on Linux) on a kept-alive connection. Every
    REST call and page poll paid ~44 ms for it (0.9 ms on a fresh connection); with NODELAY both go at once.
    """

    def handle(self, sock: Any, address: Any) -> None:
        with contextlib.suppress(OSError):  # not TCP (a test's socket pair): nothing to tune
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().handle(sock, address)
