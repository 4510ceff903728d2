"""A small, fast cookie jar: what a virtual user's browser tab would keep (RFC 6265, minus public suffixes).

The ``Cookie`` header for a (host, secure) pair is cached until the jar changes, so a request against a jar
that did not change costs a dict lookup and, when some cookie is not ``Path=/``, a short path filter.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Iterator
from email.utils import mktime_tz, parsedate_tz
from typing import NamedTuple

_ANY_HOST = ""  # domain of cookies set by hand without a domain: sent to every host


class Cookie:
    __slots__ = ("domain", "expires", "host_only", "name", "path", "secure", "seq", "value")

    def __init__(
        self,
        name: str,
        value: str,
        domain: str,
        path: str,
        *,
        host_only: bool = False,
        secure: bool = False,
        expires: float | None = None,
        seq: int = 0,
    ) -> None:
        self.name = name
        self.value = value
        self.domain = domain  # lower-case, no leading dot; "" matches any host
        self.path = path
        self.host_only = host_only
        self.secure = secure
        self.expires = expires  # epoch seconds, None for a session cookie
        self.seq = seq  # creation order, for "latest" and header ordering

    def matches_host(self, host: str) -> bool:
        domain = self.domain
        if domain in (host, _ANY_HOST):
            return True
        return not self.host_only and host.endswith(domain) and host[-len(domain) - 1] == "."

    def __repr__(self) -> str:
        return f"<Cookie {self.name}={self.value} domain={self.domain or '*'} path={self.path}>"


def _path_matches(cookie_path: str, path: str) -> bool:
    if cookie_path == "/" or path == cookie_path:
        return True
    return path.startswith(cookie_path) and (cookie_path[-1] == "/" or path[len(cookie_path)] == "/")


def _default_path(request_path: str) -> str:
    """RFC 6265 5.1.4: the request path up to, not including, its last slash."""
    if not request_path.startswith("/"):
        return "/"
    cut = request_path.rfind("/")
    return request_path[:cut] if cut > 0 else "/"


def _is_ip(host: str) -> bool:
    return ":" in host or host.replace(".", "").isdigit()


def _parse_expires(value: str) -> float | None:
    try:
        parsed = parsedate_tz(value)
    except (ValueError, OverflowError, IndexError):
        return None
    if parsed is None:
        return None
    if parsed[9] is None:  # no zone given: cookie dates are GMT
        parsed = (*parsed[:9], 0)
    return float(mktime_tz(parsed))


class SetCookie(NamedTuple):
    """One ``Set-Cookie`` header value, parsed (RFC 6265 5.2)."""

    name: str
    value: str
    domain: str  # lower-case, no leading dot; "" when not given
    path: str  # as given ("" when not given)
    secure: bool
    expires: float | None  # epoch seconds (Max-Age wins over Expires), None for a session cookie

    def deleted(self, now: float) -> bool:
        """Whether this header expires the cookie at ``now`` (deletes it)."""
        return self.expires is not None and self.expires <= now


_MAX_AGE = re.compile(r"-?[0-9]+")


def parse_set_cookie(line: str, now: float | None = None) -> SetCookie | None:
    """Parse one ``Set-Cookie`` value; None when it sets nothing (no ``=`` or no name).

    The one parser of the jar and the cookie extractor. An invalid ``Max-Age`` (not digits) is ignored, as
    RFC 6265 5.2.2 says, so ``Expires`` decides; a valid one wins over ``Expires``.
    """
    pair, *attrs = line.split(";")
    name, eq, value = pair.partition("=")
    name = name.strip()
    if not eq or not name:
        return None
    domain = path = ""
    secure = False
    max_age: int | None = None
    expires: float | None = None
    for attr in attrs:
        key, _, val = attr.partition("=")
        key = key.strip().lower()
        val = val.strip()
        if key == "path":
            path = val
        elif key == "domain":
            domain = val.lstrip(".").lower()
        elif key == "max-age":
            if _MAX_AGE.fullmatch(val):
                max_age = int(val)
        elif key == "expires":
            when = _parse_expires(val)
            if when is not None:
                expires = when
        elif key == "secure":
            secure = True
    if max_age is not None:
        expires = (time.time() if now is None else now) + max_age if max_age > 0 else 0.0
    return SetCookie(name, value.strip(), domain, path, secure, expires)


class _HostEntry:
    """The cookies that may go to one (host, secure) pair, in header order, and their header if path-free."""

    __slots__ = ("cookies", "expires", "header", "version")

    def __init__(self, version: int, cookies: list[Cookie]) -> None:
        self.version = version
        self.cookies = cookies
        expiring = [c.expires for c in cookies if c.expires is not None]
        self.expires = min(expiring) if expiring else None
        # when every cookie is Path=/ the header does not depend on the request path
        if all(c.path == "/" for c in cookies):
            self.header: str | None = "; ".join(f"{c.name}={c.value}" for c in cookies)
        else:
            self.header = None


class CookieJar:
    def __init__(self) -> None:
        self._cookies: dict[tuple[str, str, str], Cookie] = {}  # (domain, path, name) -> cookie
        self._version = 0  # bumped on every change; invalidates ``_by_host``
        self._seq = 0
        self._by_host: dict[tuple[str, bool], _HostEntry] = {}

    # -- reading ---------------------------------------------------------------------------------------------

    def header(self, host: str, target: str, secure: bool) -> str | None:
        """The ``Cookie`` header value for a request to ``host`` (lower-case) at ``target`` (path?query)."""
        if not self._cookies:
            return None
        entry = self._by_host.get((host, secure))
        if entry is None or entry.version != self._version:
            entry = self._host_entry(host, secure)
        if entry.expires is not None and entry.expires <= time.time():
            self._purge_expired()
            entry = self._host_entry(host, secure)
        if entry.header is not None:
            return entry.header or None
        path = target.split("?", 1)[0]
        text = "; ".join(f"{c.name}={c.value}" for c in entry.cookies if _path_matches(c.path, path))
        return text or None

    def get(self, name: str) -> str | None:
        """The value of cookie ``name``: the most specific (domain, then path), among equals the latest."""
        best: Cookie | None = None
        now = time.time()
        for cookie in self._cookies.values():
            if cookie.name != name or (cookie.expires is not None and cookie.expires <= now):
                continue
            if best is None or _specificity(cookie) > _specificity(best):
                best = cookie
        return None if best is None else best.value

    def as_dict(self) -> dict[str, str]:
        """Every live cookie by name; for a name stored more than once, the value ``get`` returns."""
        now = time.time()
        live = [c for c in self._cookies.values() if c.expires is None or c.expires > now]
        live.sort(key=_specificity)
        return {c.name: c.value for c in live}

    def __len__(self) -> int:
        return len(self._cookies)

    def __iter__(self) -> Iterator[Cookie]:
        return iter(list(self._cookies.values()))

    # -- writing ---------------------------------------------------------------------------------------------

    def set(self, name: str, value: str, domain: str | None = None, path: str = "/") -> None:
        """Store a cookie by hand; without ``domain`` it is sent to every host."""
        if "\r" in value or "\n" in value or ";" in name:
            raise ValueError(f"invalid cookie {name!r}={value!r}")
        domain = domain.lstrip(".").lower() if domain else _ANY_HOST
        self._put(Cookie(name, value, domain, path or "/"))

    def clear(self) -> None:
        self._cookies.clear()
        self._changed()

    def store(self, host: str, target: str, set_cookie_values: Iterable[str]) -> None:
        """Apply the ``Set-Cookie`` header values of a response from ``host`` to a request at ``target``."""
        now = time.time()
        for line in set_cookie_values:
            parsed = parse_set_cookie(line, now)
            if parsed is None:
                continue
            domain = parsed.domain
            if domain and domain != host and (_is_ip(host) or not host.endswith("." + domain)):
                continue  # a domain the host may not set cookies for
            path = parsed.path if parsed.path.startswith("/") else _default_path(target.split("?", 1)[0])
            cookie_domain = domain or host
            if parsed.deleted(now):
                if self._cookies.pop((cookie_domain, path, parsed.name), None) is not None:
                    self._changed()
                continue
            self._put(
                Cookie(
                    parsed.name,
                    parsed.value,
                    cookie_domain,
                    path,
                    host_only=not domain,
                    secure=parsed.secure,
                    expires=parsed.expires,
                )
            )

    # -- internals -------------------------------------------------------------------------------------------

    def _put(self, cookie: Cookie) -> None:
        self._seq += 1
        cookie.seq = self._seq
        self._cookies[cookie.domain, cookie.path, cookie.name] = cookie
        self._changed()

    def _changed(self) -> None:
        self._version += 1
        if len(self._by_host) > 64:
            self._by_host.clear()

    def _host_entry(self, host: str, secure: bool) -> _HostEntry:
        cookies = [c for c in self._cookies.values() if (secure or not c.secure) and c.matches_host(host)]
        # RFC 6265 5.4: longer paths first, then earlier creation
        cookies.sort(key=lambda c: (-len(c.path), c.seq))
        entry = _HostEntry(self._version, cookies)
        self._by_host[(host, secure)] = entry
        return entry

    def _purge_expired(self) -> None:
        now = time.time()
        dead = [key for key, c in self._cookies.items() if c.expires is not None and c.expires <= now]
        for key in dead:
            del self._cookies[key]
        if dead:
            self._changed()


def _specificity(cookie: Cookie) -> tuple[int, int, int]:
    return (len(cookie.domain), len(cookie.path), cookie.seq)
