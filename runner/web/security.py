"""Who may talk to the web UI: basic auth, the Host allow-list (DNS rebinding), and same-origin writes (CSRF).

- With ``--web-auth USER:PASSWORD`` every request needs it (HTTP basic auth); binding beyond loopback requires it.
- ``Host`` must be a name the UI is served as: a loopback name, an IP address, the bind address, this machine's
  name, or one given with ``--web-allowed-host``. A page of another site that rebinds its DNS name to 127.0.0.1
  sends its own name and is refused.
- Failed logins are logged (address and user name, never the password). After ``FREE_FAILURES`` in a row from
  one address, that address is refused (429, ``Retry-After``) for 1 s, then 2, 4 … at most ``MAX_BLOCK`` s, before
  its credentials are even compared: guessing goes from thousands a second to a few a minute.
- A state-changing request (any POST, Locust's ``GET /stop`` and ``GET /stats/reset``) with a foreign ``Origin``
  or a cross-site ``Sec-Fetch-Site`` is refused: a page elsewhere cannot drive a test through the user's browser.
  Scripts (curl, requests) send neither header and keep working.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hmac
import ipaddress
import logging
import socket
import time
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

from runner.errors import LrunError

log = logging.getLogger("lrun")
LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


class WebSettingsError(LrunError):
    """A web option that cannot work (a public bind without auth, half a TLS pair …)."""


def is_loopback(host: str) -> bool:
    host = host.strip("[]")
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_auth(value: str | None) -> tuple[str, str] | None:
    if value is None:
        return None
    user, sep, password = value.partition(":")
    if not sep or not user or not password:
        raise WebSettingsError("--web-auth: expected USER:PASSWORD (both not empty)")
    return user, password


def _hostname(host_header: str) -> str:
    """The name part of a Host header: "127.0.0.1:8089" → "127.0.0.1", "[::1]:80" → "::1"."""
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


class LoginThrottle:
    """Failed logins per address: each logged, and after a few in a row the address waits, doubling each time."""

    FREE_FAILURES = 5  # in a row from one address before it must wait
    MAX_BLOCK = 60.0  # seconds an address waits at most
    MAX_ADDRESSES = 4096  # addresses remembered (the oldest forgotten first)

    def __init__(self, clock: Any = time.monotonic) -> None:
        self.clock = clock
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
            "web UI: failed login from %s as %r (%d in a row)%s",
            address,
            shown,
            failures,
            f"; it waits {block:g}s before its next attempt" if block else "",
        )

    def succeeded(self, address: str) -> None:
        if address in self._seen:
            del self._seen[address]


class Guard:
    """Decides whether a request may go on; ``check`` returns None, or (status, message)."""

    def __init__(self, bind_host: str, *, auth: tuple[str, str] | None = None, allowed: Iterable[str] = ()) -> None:
        self.auth = auth
        self.throttle = LoginThrottle()
        names = set(LOOPBACK_NAMES) | {bind_host.lower().strip("[]")} | {a.lower() for a in allowed}
        if not is_loopback(bind_host):
            with contextlib.suppress(OSError):
                names |= {socket.gethostname().lower(), socket.getfqdn().lower()}
        self.names = names
        self._expected = (
            "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode() if auth is not None else ""
        )

    def host_allowed(self, host_header: str) -> bool:
        name = _hostname(host_header)
        return bool(name) and (name in self.names or _is_ip(name))

    def authorized(self, header: str) -> bool:
        return self._credentials(header)[0]

    def _credentials(self, header: str) -> tuple[bool, str]:
        """Whether the Authorization header holds the right user and password, and the user name it gives."""
        if self.auth is None:
            return True, ""
        try:
            scheme, _, token = header.partition(" ")
            decoded = base64.b64decode(token, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return False, ""
        if scheme.lower() != "basic":
            return False, ""
        user, _, password = decoded.partition(":")
        # compare both always: no early exit that times which part was wrong
        ok_user = hmac.compare_digest(user.encode(), self.auth[0].encode())
        ok_password = hmac.compare_digest(password.encode(), self.auth[1].encode())
        return ok_user and ok_password, user

    @staticmethod
    def same_origin(environ: Mapping[str, Any]) -> bool:
        """No browser header saying the request comes from another site."""
        site = environ.get("HTTP_SEC_FETCH_SITE")
        if site is not None and site not in ("same-origin", "none"):
            return False
        origin = environ.get("HTTP_ORIGIN")
        if origin is None:
            return True
        if origin == "null":
            return False
        parts = urlsplit(origin)
        return parts.netloc.lower() == str(environ.get("HTTP_HOST", "")).lower()

    def check(self, environ: Mapping[str, Any], *, changes_state: bool) -> tuple[str, str] | None:
        if not self.host_allowed(str(environ.get("HTTP_HOST", ""))):
            return "403 Forbidden", "this Host is not one the lrun web UI is served as (see --web-allowed-host)"
        if self.auth is not None:
            address = str(environ.get("REMOTE_ADDR", ""))
            wait = self.throttle.wait(address)
            if wait:
                return "429 Too Many Requests", f"too many failed logins from {address}: try again in {wait:.0f}s"
            ok, user = self._credentials(str(environ.get("HTTP_AUTHORIZATION", "")))
            if not ok:
                if "HTTP_AUTHORIZATION" in environ:  # a browser's first request (no credentials yet) is no attempt
                    self.throttle.failed(address, user)
                return "401 Unauthorized", "log in with the user and password of --web-auth"
            self.throttle.succeeded(address)
        if changes_state and not self.same_origin(environ):
            return "403 Forbidden", "a request from another site may not change the test (Origin / Sec-Fetch-Site)"
        return None
