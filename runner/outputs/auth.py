"""The rule for anything lrun serves over HTTP: loopback by default; beyond loopback, basic auth.

One option for every endpoint: ``--web-auth USER:PASSWORD`` (or ``LRUN_WEB_AUTH``).
"""

from __future__ import annotations

import base64
import hmac
from collections.abc import Callable, Iterable
from typing import Any

from runner.errors import RunError
from runner.serving import LoginThrottle, is_loopback


def check_exposure(option: str, host: str, auth: str | None) -> None:
    """A listener beyond loopback needs ``--web-auth``; a malformed ``--web-auth`` is refused."""
    if auth is not None and (":" not in auth or not auth.split(":", 1)[0] or not auth.split(":", 1)[1]):
        raise RunError("--web-auth: expected USER:PASSWORD (or set LRUN_WEB_AUTH)")
    if not is_loopback(host) and auth is None:
        raise RunError(
            f"{option} {host} listens beyond loopback: set --web-auth USER:PASSWORD (or LRUN_WEB_AUTH) "
            "so that only you can read it, or listen on 127.0.0.1"
        )


def basic_auth(app: Callable[..., Iterable[bytes]], credentials: str) -> Callable[..., Iterable[bytes]]:
    """A WSGI app that answers 401 unless the request carries these ``USER:PASSWORD`` credentials; failed logins
    are logged and slowed per address, as on the web UI (``runner.serving.LoginThrottle``)."""
    expected = ("Basic " + base64.b64encode(credentials.encode()).decode()).encode()
    throttle = LoginThrottle(what="/metrics")

    def guarded(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        address = str(environ.get("REMOTE_ADDR", ""))
        wait = throttle.wait(address)
        if wait:
            start_response("429 Too Many Requests", [("Retry-After", f"{wait:.0f}"), ("Content-Length", "0")])
            return [b""]
        given = environ.get("HTTP_AUTHORIZATION", "").encode()
        if hmac.compare_digest(given, expected):
            throttle.succeeded(address)
            return app(environ, start_response)
        if given:  # a first request without credentials is no attempt
            throttle.failed(address, _user(given))
        start_response("401 Unauthorized", [("WWW-Authenticate", 'Basic realm="lrun"'), ("Content-Length", "0")])
        return [b""]

    return guarded


def _user(header: bytes) -> str:
    """The user name an ``Authorization: Basic`` header gives ("" when it gives none), for the log."""
    try:
        return base64.b64decode(header.partition(b" ")[2], validate=True).decode().partition(":")[0]
    except (ValueError, UnicodeDecodeError):
        return ""
