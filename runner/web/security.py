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
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

from runner.errors import LrunError
from runner.serving import LOOPBACK_NAMES, LoginThrottle, is_loopback

log = logging.getLogger("lrun")


class WebSettingsError(LrunError):
    """A web option that cannot work (a public bind without auth, half a TLS pair …)."""


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
