"""The rule for anything lrun serves over HTTP: loopback by default; beyond loopback, basic auth.

One option for every endpoint: ``--web-auth USER:PASSWORD`` (or ``LRUN_WEB_AUTH``).
"""

from __future__ import annotations

import base64
import hmac
import ipaddress
from collections.abc import Callable, Iterable
from typing import Any

from runner.errors import RunError


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


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
    """A WSGI app that answers 401 unless the request carries these ``USER:PASSWORD`` credentials."""
    expected = ("Basic " + base64.b64encode(credentials.encode()).decode()).encode()

    def guarded(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        given = environ.get("HTTP_AUTHORIZATION", "").encode()
        if hmac.compare_digest(given, expected):
            return app(environ, start_response)
        start_response("401 Unauthorized", [("WWW-Authenticate", 'Basic realm="lrun"'), ("Content-Length", "0")])
        return [b""]

    return guarded
